"""``{test}`name``` : a test of the suite, shown as ``tests/…/file.py::name``.

The role finds the test by its name in every ``test_*.py`` under ``cocalc_tests_dir`` (read
with ``ast``, nothing imported), so the page names the file the test is in today, wherever the
test files move. ``{test}`file.py::name``` picks one of several tests of that name. A name
that is not found, or found in several files, fails the build: a table of promises cannot
name a test that does not exist.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst.states import Inliner
from sphinx.application import Sphinx


@cache
def suite_index(tests_dir: Path) -> dict[str, list[str]]:
    """Test function name → the paths (from the repository root) of the files defining it."""
    index: dict[str, list[str]] = defaultdict(list)
    for path in sorted(tests_dir.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and node.name.startswith("test"):
                index[node.name].append(path.relative_to(tests_dir.parent).as_posix())
    return dict(index)


def resolve(tests_dir: Path, reference: str) -> str:
    """``file::name`` for a test name (or ``file.py::name``); ValueError if not exactly one."""
    file_name, _, name = reference.rpartition("::")
    paths = suite_index(tests_dir).get(name, [])
    if file_name:
        paths = [p for p in paths if p.endswith("/" + file_name)]
    if len(paths) != 1:
        found = ", ".join(paths) or "nowhere"
        raise ValueError(f"test {reference!r} must be in exactly one file, found in {found}")
    return f"{paths[0]}::{name}"


def test_reference_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Inliner,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    env = inliner.document.settings.env
    tests_dir = (Path(env.app.confdir) / env.config.cocalc_tests_dir).resolve()
    try:
        target = resolve(tests_dir, text)
    except ValueError as error:
        message = inliner.reporter.error(str(error), line=lineno)
        problem = inliner.problematic(rawtext, rawtext, message)
        return [problem], [message]
    env.note_dependency(str(tests_dir / target.split("::")[0].removeprefix("tests/")))
    return [nodes.literal(rawtext, target, classes=["test-reference"])], []


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("cocalc_tests_dir", "../tests", "env")
    app.add_role("test", test_reference_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
