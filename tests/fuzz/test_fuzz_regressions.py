"""Every failing input the fuzzers found, replayed through its harness.

``fuzz/regressions/<harness>/`` holds the inputs (the harness is ``fuzz/fuzz_<harness>.py``);
each one broke an invariant once, and the fix is named in the file name and in
tests/robustness/test_found_bugs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harnesses import FUZZ, load

CASES = sorted(p for p in (FUZZ / "regressions").glob("*/*") if p.is_file())


def test_there_are_regressions() -> None:
    assert CASES


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_regression(path: Path) -> None:
    harness = load(f"fuzz_{path.parent.name}")
    harness.TestOneInput(path.read_bytes())
