"""Which build the suite is running on: the pure-Python package or the compiled one.

``./scripts/test`` runs the whole suite twice, on the pure-Python package (the default
build) and on the compiled one (``scripts/compiled``: setup.py's modules through mypyc),
and says which through ``COAPKIT_EXPECT_COMPILED``; this checks that the modules under
test really are the ones that build has, so a compiled run cannot pass on Python code.
"""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

from coapkit.compiled import is_compiled

ROOT = Path(__file__).resolve().parents[2]


def compiled_modules() -> list[str]:
    """The module names setup.py compiles (its ``COMPILED`` list), read without running it."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED":
            paths = ast.literal_eval(node.value)
            return ["coapkit." + path.replace("/", ".") for path in paths]
    raise AssertionError("setup.py has no COMPILED list")


def test_setup_compiles_the_hot_path() -> None:
    modules = compiled_modules()
    for name in ("coapkit.codec.message", "coapkit.messaging.layer", "coapkit.endpoint"):
        assert name in modules
    for name in modules:  # every entry names a real module
        assert (ROOT / "src" / (name.replace(".", "/") + ".py")).is_file(), name


@pytest.mark.skipif(
    "COAPKIT_EXPECT_COMPILED" not in os.environ, reason="./scripts/test says which build runs"
)
def test_the_suite_runs_on_the_build_it_was_asked_to() -> None:
    compiled = os.environ["COAPKIT_EXPECT_COMPILED"] == "1"
    assert is_compiled() is compiled
    for name in compiled_modules():
        origin = importlib.import_module(name).__file__ or ""
        assert origin.endswith(".py") is not compiled, (name, origin)
    assert importlib.import_module("coapkit.resources.site").__file__.endswith(".py")
