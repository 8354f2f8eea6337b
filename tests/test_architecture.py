"""docs/architecture.md rules 1 and 9, checked over every module of the package.

Rule 1: the sans-I/O core imports nothing that does I/O, reads a clock or draws
randomness of its own.  Rule 9: a module imports only from layers below its own
(or from its own package); ``testing`` may import anything and nothing imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "coapkit"

#: the layer of each top-level part, lowest first (docs/architecture.md rule 9)
LAYERS: dict[str, float] = {
    "errors": 0,
    "compiled": 0,
    "randomness": 0,
    "address": 0,
    "codec": 1,
    "dtls": 1.5,  # DTLS sessions: under the message layer, whose datagrams they carry
    "messaging": 2,
    "connections": 2.5,  # builds on messaging's records and events
    "reliability": 3,
    "exchanges": 4,
    "observe": 5,
    "blockwise": 5.5,  # the client's block-wise layer orders notifications by observe's rule
    "endpoint": 6,
    "resources": 7,
    "cache": 7.5,  # a proxy's response cache: built on resources' Response
    "trace": 7,
    "oscore": 7.5,  # wraps a site of resources; protects what the client and server send
    "edhoc": 7.6,  # sets up OSCORE contexts; its resource lives on a site
    "security": 8,
    "transports": 8,
    "runtime": 9,
    "bus": 9.5,  # notifications across processes (asyncio; Redis when installed)
    "client": 10,
    "server": 10,
    "rd": 10.5,  # the resource directory: a service on the client and the server
    "proxy": 10.5,  # built on the client and the server's site
    "cli": 11,
    "__init__": 12,
    "__main__": 12,
    "testing": 13,
}
CORE = {
    "codec",
    "dtls",
    "messaging",
    "connections",
    "reliability",
    "exchanges",
    "blockwise",
    "cache",
    "observe",
    "resources",
    "endpoint",
    "oscore",
    "edhoc",
}
FORBIDDEN_IN_CORE = {
    "asyncio",
    "socket",
    "time",
    "random",
    "secrets",
    "os",
    "selectors",
    "threading",
}


#: imports made inside a function, on purpose, against the order (name: why)
ALLOWED = {
    ("coapkit.errors", "coapkit.codec.codes"): "an error response names its code, when shown",
    ("coapkit.compiled", "coapkit.codec.message"): "asks whether the codec was compiled",
}


def part_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(relative.parts)
        name = name.removesuffix(".__init__")
        found.append((name, path))
    return found


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(coapkit modules, other top-level modules) imported, type-checking-only ones left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for sub in node.body for child in ast.walk(sub))
    ours, others = set(), set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            (ours if node.module.startswith("coapkit") else others).add(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.startswith("coapkit") else others).add(alias.name)
    return ours, {name.split(".")[0] for name in others}


MODULES = modules()


def test_every_part_has_a_layer() -> None:
    parts = {part_of(name) for name, _ in MODULES if name != "coapkit"}
    assert parts <= set(LAYERS), parts - set(LAYERS)


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_layer_order(name: str, path: Path) -> None:
    ours, others = imports(path)
    part = "__init__" if name == "coapkit" else part_of(name)
    rank = LAYERS[part]
    for imported in ours:
        other = part_of(imported)
        if other == part or imported == "coapkit" or (name, imported) in ALLOWED:
            continue
        assert other != "testing", f"{name} imports {imported}: nothing imports testing"
        assert LAYERS[other] < rank or part == "testing", (
            f"{name} (layer {part}) imports {imported} (layer {other}): rule 9"
        )
    if part in CORE:
        assert others.isdisjoint(FORBIDDEN_IN_CORE), (name, others & FORBIDDEN_IN_CORE)
