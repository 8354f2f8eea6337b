"""Without the ``ws`` extra, CoAP over WebSockets says so in one line; the core needs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import coapkit.transports
from coapkit.transports import WS_EXTRA, MissingExtra, require_websockets

SRC = Path(coapkit.transports.__file__).parents[2]

#: run first in a child interpreter: makes ``import websockets`` fail as if not installed
BLOCK_WEBSOCKETS = "import sys; sys.modules['websockets'] = None; "


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_WEBSOCKETS + code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=60,
        check=False,
    )


def test_importing_the_transport_without_websockets_names_the_extra() -> None:
    result = run("import coapkit.transports.websocket")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"coapkit.transports.MissingExtra: {WS_EXTRA}"
    assert WS_EXTRA == "CoAP over WebSockets needs the ws extra: pip install 'coapkit[ws]'"
    assert "During handling" not in result.stderr  # no chained ImportError from inside


def test_the_check_and_the_core_need_no_websockets() -> None:
    code = (
        "import coapkit, coapkit.client, coapkit.server, coapkit.transports.tcp\n"
        "from coapkit.transports import require_websockets, MissingExtra\n"
        "try:\n"
        "    require_websockets()\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, isinstance(exc, ImportError), exc)\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ws True {WS_EXTRA}"


def test_a_websockets_older_than_15_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    version = pytest.importorskip("websockets.version")
    monkeypatch.setattr(version, "version", "14.2")
    with pytest.raises(MissingExtra, match=r"needs the ws extra.*websockets 14\.2 is too old"):
        require_websockets()
    monkeypatch.setattr(version, "version", "15.0.1")
    require_websockets()
