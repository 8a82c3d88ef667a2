"""The configuration page, generated from the traits: ``{config-options} CocalcSync``.

A configurable class is named by its config section (``c.<Section>.<name>``); ``conf.py``
says where each one is imported from (``cocalc_config_classes``), the only place that names
their modules. For every ``config=True`` trait the package itself defines (not those every
jupyter_server extension inherits) the table gives the name, the type, the default, the
environment variable it is read from (trait metadata ``env``) and the help text.

A default computed at run time (``@default``) is documented from the trait's ``default_doc``
metadata; without it, a trait read from an environment variable is documented with the value
a fresh instance takes when that variable is unset. Any other computed default fails the
build, so no table can show a default the server does not use.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from doc_nodes import code, paragraphs, table
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective
from traitlets import Bool, Container, Dict, Enum, Float, Int, TraitType, Unicode
from traitlets.config import Configurable
from traitlets.traitlets import DefaultHandler

#: the package whose own traits are documented
PACKAGE = "jupyter_cocalc_sync"

_SIMPLE_TYPES: dict[type[TraitType[Any, Any]], str] = {
    Bool: "bool",
    Int: "int",
    Float: "float",
    Unicode: "str",
    Dict: "dict",
}


@dataclass(frozen=True)
class ConfigOption:
    section: str
    name: str
    type: str
    default: str
    env: str | None
    help: str


def import_object(dotted: str) -> Any:
    """``package.module.Name`` → the object."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def type_name(trait: TraitType[Any, Any]) -> str:
    if isinstance(trait, Enum):
        return "one of " + ", ".join(repr(v) for v in trait.values or ())
    if isinstance(trait, Container):
        inner = getattr(trait, "_trait", None)
        return f"list of {type_name(inner)}" if inner is not None else "list"
    for kind, name in _SIMPLE_TYPES.items():
        if isinstance(trait, kind):
            return name
    return trait.info()


def _own_traits(cls: type[Configurable]) -> Iterator[TraitType[Any, Any]]:
    """The package's config traits of ``cls``, base classes first, in definition order."""
    seen: set[str] = set()
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(PACKAGE):
            continue
        for name, value in vars(klass).items():
            if isinstance(value, TraitType) and value.metadata.get("config") and name not in seen:
                seen.add(name)
                yield value


def _computed_default(cls: type[Configurable], name: str) -> bool:
    for klass in cls.__mro__:
        handler = vars(klass).get("_trait_default_generators", {}).get(name)
        if handler is not None:
            return isinstance(handler, DefaultHandler)
    return False


@contextmanager
def _environment_without(names: list[str]) -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _default(cls: type[Configurable], trait: TraitType[Any, Any], env_names: list[str]) -> str:
    name = trait.name or ""
    if "default_doc" in trait.metadata:
        return str(trait.metadata["default_doc"])
    if not _computed_default(cls, name):
        return trait.default_value_repr()
    if trait.metadata.get("env"):
        with _environment_without(env_names):
            return repr(getattr(cls(), name))
    raise ExtensionError(
        f"{cls.__name__}.{name} has a default computed at run time: give the trait a "
        "default_doc tag saying what it is"
    )


def config_options(cls: type[Configurable]) -> list[ConfigOption]:
    traits = list(_own_traits(cls))
    env_names = [t.metadata["env"] for t in traits if t.metadata.get("env")]
    return [
        ConfigOption(
            section=cls.__name__,
            name=trait.name or "",
            type=type_name(trait),
            default=_default(cls, trait, env_names),
            env=trait.metadata.get("env"),
            help=trait.help,
        )
        for trait in traits
    ]


def configurable(app_config: Any, section: str) -> type[Configurable]:
    """The class configured as ``c.<section>`` among ``conf.py``'s ``cocalc_config_classes``."""
    for dotted in app_config.cocalc_config_classes:
        cls = import_object(dotted)
        if cls.__name__ == section:
            return cls
    raise ExtensionError(f"no class for config section {section!r} in cocalc_config_classes")


class ConfigOptionsDirective(SphinxDirective):
    """A table of one config section's options."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        options = config_options(configurable(self.config, self.arguments[0]))
        with_env = any(option.env for option in options)
        headers = ["option", "type", "default"]
        headers += ["environment"] if with_env else []
        headers += ["meaning"]
        rows = []
        for option in options:
            cells: list[Any] = [code(option.name), option.type, code(option.default)]
            if with_env:
                cells.append(code(option.env) if option.env else "–")
            cells.append(paragraphs(option.help or "(no help text)"))
            rows.append(cells)
        return [table(headers, rows)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("cocalc_config_classes", [], "env")
    app.add_directive("config-options", ConfigOptionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
