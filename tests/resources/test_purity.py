"""The resources layer is sans-I/O (docs/architecture.md rule 1), and its doctests hold."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import coapkit.resources

FORBIDDEN = {"asyncio", "socket", "time", "random", "secrets", "os", "selectors", "threading"}
MODULES = sorted(
    f"coapkit.resources.{info.name}" for info in pkgutil.iter_modules(coapkit.resources.__path__)
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_module_is_checked() -> None:
    assert MODULES == [
        "coapkit.resources.request",
        "coapkit.resources.resource",
        "coapkit.resources.response",
        "coapkit.resources.routing",
        "coapkit.resources.site",
        "coapkit.resources.well_known",
    ]


@pytest.mark.parametrize("name", ["coapkit.resources", *MODULES])
def test_no_io_clock_or_randomness(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert imported_modules(Path(module.__file__)).isdisjoint(FORBIDDEN)
    assert module.__doc__ and "RFC" in module.__doc__


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
