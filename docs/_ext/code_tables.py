"""Pages generated from the package's own code: ``{package-map}`` and ``{notebook-actions}``.

``{package-map}`` lists every folder of the package with its ``__init__`` docstring and every
module with the first paragraph of its docstring, read with ``ast`` (nothing is imported), so
the map follows the code wherever modules move. A package or module without a docstring
fails the build.

``{notebook-actions}`` lists the notebook actions: the public coroutine methods of the class
``conf.py`` names in ``cocalc_actions_class``, with their parameters (the signature, without
the keyword-only ones the server fills in) and their docstrings.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

from config_tables import import_object
from doc_nodes import code, inline, paragraphs, table
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective


def first_paragraph(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not docstring:
        raise ExtensionError(f"{path} has no docstring: say what the module is for")
    return " ".join(docstring.split("\n\n")[0].split())


def package_map(package: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """``(folder, what it holds, [(module, what it does)])``: the top level first."""
    folders = [package, *sorted(p for p in package.iterdir() if (p / "__init__.py").is_file())]
    strays = sorted(
        p.name for p in package.iterdir() if p.is_dir() and any(p.glob("*.py")) and p not in folders
    )
    if strays:
        raise ExtensionError(f"folders of Python modules without __init__.py: {strays}")
    result = []
    for folder in folders:
        modules = [
            (path.name, first_paragraph(path))
            for path in sorted(folder.glob("*.py"))
            if path.name != "__init__.py" and not path.name.startswith("_")
        ]
        name = f"{package.name}/" if folder == package else f"{folder.name}/"
        result.append((name, first_paragraph(folder / "__init__.py"), modules))
    return result


class PackageMapDirective(SphinxDirective):
    """Every folder and module of the package, with what its docstring says it holds."""

    def run(self) -> list[nodes.Node]:
        package = Path(importlib.import_module(self.config.cocalc_package).__file__ or "").parent
        for path in package.rglob("*.py"):
            self.env.note_dependency(str(path))
        rows = []
        for folder, summary, modules in package_map(package):
            listing = nodes.bullet_list()
            for module, what in modules:
                listing += nodes.list_item(
                    "", nodes.paragraph("", "", code(module), nodes.Text(": "), *inline(what))
                )
            rows.append([[code(folder)], [nodes.paragraph("", "", *inline(summary)), listing]])
        return [table(["folder", "what lives there"], rows)]


def _parameter_text(parameter: inspect.Parameter) -> str:
    """``name: type = default``, the type as written in the code."""
    annotation = parameter.annotation
    text = parameter.name
    if annotation is not inspect.Parameter.empty:
        shown = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        text += f": {shown}"
    if parameter.default is not inspect.Parameter.empty:
        text += f" = {parameter.default!r}"
    return text


def action_methods(cls: type) -> list[tuple[str, list[str], str]]:
    """``(name, parameters, docstring)`` of each public coroutine method, in source order."""
    result = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        parameters = [
            _parameter_text(parameter)
            for parameter in list(inspect.signature(member).parameters.values())[1:]
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        if not member.__doc__:
            raise ExtensionError(f"{cls.__name__}.{name} has no docstring: say what it does")
        result.append((name, parameters, member.__doc__))
    return result


class NotebookActionsDirective(SphinxDirective):
    """A table of the notebook actions: name, parameters, what each does."""

    def run(self) -> list[nodes.Node]:
        cls = import_object(self.config.cocalc_actions_class)
        self.env.note_dependency(inspect.getfile(cls))
        rows = [
            [
                [code(name)],
                [nodes.paragraph("", "", code(p)) for p in parameters] or "–",
                paragraphs(doc),
            ]
            for name, parameters, doc in action_methods(cls)
        ]
        return [table(["action", "parameters", "does"], rows)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("cocalc_package", "", "env")
    app.add_config_value("cocalc_actions_class", "", "env")
    app.add_directive("package-map", PackageMapDirective)
    app.add_directive("notebook-actions", NotebookActionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
