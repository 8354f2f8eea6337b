"""Without the oscore extra, OSCORE fails with one line naming it (and coapkit still imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

CODE = """
import sys
sys.modules["cryptography"] = None  # as if it were not installed
import coapkit.oscore
from coapkit.oscore import ContextParameters, SecurityContext, OscoreUnavailable
try:
    SecurityContext(ContextParameters(bytes(16), b"\\x01", b"\\x02"))
except OscoreUnavailable as exc:
    print(exc)
    print(isinstance(exc, ImportError), exc.extra)
"""


def test_missing_cryptography_is_one_line_naming_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    assert result.stdout.splitlines() == [
        "OSCORE needs the oscore extra: pip install 'coapkit[oscore]' "
        "(cryptography is not installed)",
        "True oscore",
    ]
