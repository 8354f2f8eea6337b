"""10,000 ClientHellos from 10,000 source ports, none returning its cookie: the DTLS server
keeps no state for any of them (RFC 6347 §4.2.1), its memory stays flat, and a legitimate
client completes its whole handshake during the flood.

bench/bench_dtls_flood.py does the measurement (a coapkit coaps:// server in a
subprocess, a flooder subprocess with 10,000 UDP sockets, RSS from /proc, the server's
own count of sessions and handshakes every 0.25 s, a fresh PSK client every 0.5 s).

Marked slow (about 10 s): ``pytest -m slow tests/robustness/test_dtls_flood.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import select
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.dtls.conftest import require_pyopenssl

ROOT = Path(__file__).resolve().parents[2]
HELLOS = 10_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
    pytest.mark.skipif(not hasattr(select, "epoll"), reason="the flooder needs epoll"),
]


def load_bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    path = ROOT / "bench" / "bench_dtls_flood.py"
    spec = importlib.util.spec_from_file_location("bench_dtls_flood", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dtls_flood"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_client_hellos_without_cookies_leave_no_state() -> None:
    require_pyopenssl()
    bench = load_bench()
    result = asyncio.run(bench.run_dtls_flood(HELLOS, HELLOS, 5_000.0))
    print("\n".join(bench.describe(result)))
    flood = result.flood
    assert flood["sent"] == HELLOS
    assert flood["cookies"] >= HELLOS * 0.99  # each answered, statelessly
    final = result.samples[-1].stats
    assert final["cookies"] >= flood["cookies"]
    # nothing held for the flood: at most the probes' own sessions, for a moment
    assert result.peak("sessions") <= 2 and result.peak("handshakes") <= 2
    assert final["sessions"] == 0 and final["handshakes"] == 0
    # memory: no growth with the number of sources (bytes of RSS per ClientHello)
    assert result.peak_rss_kib - result.baseline_kib < 1024
    # the legitimate clients made their handshakes, all of them, during the flood
    answered = [latency for latency in result.probes if latency is not None]
    assert len(result.probes) >= 3 and len(answered) == len(result.probes)
    assert final["established"] >= len(answered)
