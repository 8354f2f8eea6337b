"""coapkit.observe is sans-I/O (docs/architecture.md rule 1) and sits where rule 9 puts it."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import coapkit.observe
from tests.resources.test_purity import FORBIDDEN, imported_modules

MODULES = sorted(
    f"coapkit.observe.{info.name}" for info in pkgutil.iter_modules(coapkit.observe.__path__)
)
#: observe sits above exchanges, messaging, codec and errors, beside blockwise (rule 9)
ALLOWED_COAPKIT = (
    "coapkit.codec",
    "coapkit.errors",
    "coapkit.messaging",
    "coapkit.reliability",
    "coapkit.exchanges",
)


def coapkit_imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coapkit"):
            names.add(node.module)
    return names


def test_every_module_is_checked() -> None:
    assert MODULES == [
        "coapkit.observe.ordering",
        "coapkit.observe.registry",
        "coapkit.observe.server",
    ]


@pytest.mark.parametrize("name", MODULES)
def test_no_io_clock_or_randomness_and_only_lower_layers(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    path = Path(module.__file__)
    assert imported_modules(path).isdisjoint(FORBIDDEN)
    assert module.__doc__ and "RFC" in module.__doc__
    for imported in coapkit_imports(path):
        assert imported.startswith((*ALLOWED_COAPKIT, "coapkit.observe")), imported
