"""A flood of distinct CON requests on a real (loopback) socket: memory stays flat.

bench/bench_flood.py does the measurement (a coapkit server in a subprocess,
coapflood from ../shared/tools compiled with gcc, RSS from /proc, a fresh client
probing during the flood); this runs it on 200,000 requests and asserts.  Marked
slow (about a minute): ``pytest -m slow tests/robustness/test_flood.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024  # KiB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build coapflood"),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
    pytest.mark.skipif(
        not (
            Path(os.environ.get("COAPFLOOD_SRC", "/nonexistent")).is_file()
            or (ROOT.parent / "shared/tools/coapflood.c").is_file()
        ),
        reason="needs ../shared/tools/coapflood.c (or COAPFLOOD_SRC)",
    ),
]

REQUESTS = 200_000


def load_bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_flood", ROOT / "bench" / "bench_flood.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_flood"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def check_service(result: object) -> None:
    flood = result.flood  # type: ignore[attr-defined]
    assert flood["sent"] == REQUESTS
    assert flood["ok"] >= 0.999 * REQUESTS
    probes = result.probes  # type: ignore[attr-defined]
    assert len(probes) >= 5
    assert all(p is not None and p < 10.0 for p in probes), probes
    assert all(result.libcoap_probes)  # type: ignore[attr-defined]


def test_default_caps_memory_flat_and_others_served() -> None:
    bench = load_bench()
    result = asyncio.run(bench.run_flood("default", REQUESTS, 100_000, 1024))
    print("\n" + "\n".join(bench.describe(result)))
    check_service(result)
    # 4 source ports of coapflood, 1,024 entries each at most, plus one per probe.
    assert result.peak_dedup() <= 4 * 1024 + len(result.probes) + len(result.libcoap_probes) + 2
    assert result.rss_at(1.0) - result.rss_at(0.25) < 2 * MIB


def test_total_cap_reached_then_memory_flat() -> None:
    bench = load_bench()
    result = asyncio.run(bench.run_flood("capped", REQUESTS, 40_000, 65_536))
    print("\n" + "\n".join(bench.describe(result)))
    check_service(result)
    assert result.peak_dedup() == 40_000  # reached at a fifth of the flood
    filling = result.rss_at(0.2) - result.baseline_kib
    assert filling > 3 * MIB  # the entries cost memory while the table fills (~145 B each)...
    # ... and nothing more once it is full (one more dict table, 2.5 MiB, may be allocated
    # while the oldest source port's entries are evicted).  Before the peer <-> stream
    # cycle was broken this grew by ~45 bytes per request: +5 MiB over the second half.
    assert result.rss_at(1.0) - result.rss_at(0.25) < 4 * MIB
    # Against the highest RSS seen by half-time, not the sample at half-time: when the first
    # source port's last entry is evicted (65,536 + 40,000 requests in), that port's peer is
    # forgotten and its 2.5 MiB dict table freed, and a sample taken just then reads 2.5 MiB
    # low for a moment (the same before and after the per-peer holds of issue 15).
    halfway = max(s.rss_kib for s in result.samples if s.received <= 0.5 * REQUESTS)
    assert result.rss_at(1.0) - halfway < 1.5 * MIB
