"""The documentation's python examples pass ``mypy --strict``, as a reader's program must.

Each page's blocks are checked as one module, laid out as they run
(:func:`tests.docs.examples.page_module`), against this checkout's ``src``.  A block
that cannot be checked says why on its first line (``# not type-checked: ...``); its
errors are not counted, and it must have some (a stale marker is a failure too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.examples import ROOT, blocks, not_type_checked, page_module, pages

PYTHON_PAGES = [p for p in pages() if any(b.language == "python" for b in blocks(p))]


def module_name(page: Path) -> str:
    relative = page.relative_to(ROOT / "docs").with_suffix("")
    return "doc_" + "_".join(relative.parts).replace("-", "_")


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str]]]:
    """mypy's errors per page, ``(line, message)``: one run over every page."""
    directory = tmp_path_factory.mktemp("doc-types")
    for page in PYTHON_PAGES:
        source, _ = page_module(page)
        (directory / f"{module_name(page)}.py").write_text(source, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--hide-error-context",
            "--no-error-summary",
            *sorted(str(path) for path in directory.glob("*.py")),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, MYPYPATH=str(ROOT / "src")),
        cwd=directory,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    found: dict[str, list[tuple[int, str]]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(?:.*[/\\])?(\w+)\.py:(\d+): error: (.*)", line)
        if match:
            found.setdefault(match.group(1), []).append((int(match.group(2)), match.group(3)))
    return found


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_the_examples_pass_mypy_strict(
    page: Path, errors: dict[str, list[tuple[int, str]]]
) -> None:
    _, skipped = page_module(page)
    found = errors.get(module_name(page), [])
    counted = [f"{page.name}:{line}: {message}" for line, message in found if line not in skipped]
    assert not counted, "\n".join(counted)
    for block in blocks(page):
        if block.language == "python" and not_type_checked(block) is not None:
            lines = range(block.line, block.line + block.code.count("\n"))
            assert any(line in lines for line, _ in found), (
                f"{block.where} is marked not type-checked but passes: drop the marker"
            )


def test_marked_blocks_give_a_reason() -> None:
    marked = [b for p in PYTHON_PAGES for b in blocks(p) if not_type_checked(b) is not None]
    assert marked  # the aiocoap example of the migration guide at least
    for block in marked:
        reason = not_type_checked(block)
        assert reason is not None and len(reason) >= 10, block.where
