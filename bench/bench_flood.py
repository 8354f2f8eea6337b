"""Flood a coapkit server on a real socket; its memory stays flat once the dedup caps are reached.

coapflood (../shared/tools/coapflood.c, compiled into bench/build/ as
bench_server.py does) sends N distinct CON ``GET /hello`` requests, 64 at a
time, to bench/servers/coapkit_server.py (the server pinned to CPU 0, coapflood
to CPU 1).  coapflood opens a new source port every 65,536 requests, so
1,000,000 requests come from 16 remotes.  Meanwhile this script

* samples the server's resident set size (VmRSS in /proc/PID/status) and its
  deduplication table (the server's ``--stats`` lines) every 0.25 s;
* asks for ``/hello`` every 0.5 s from a fresh coapkit Client (and every 5 s
  with libcoap's coap-client-notls when it is installed): the server must
  still answer other clients while it is flooded.

Three runs (``--runs``):

* ``default``: the default caps (100,000 in total, 1,024 per peer);
* ``capped``: a total cap of 200,000 and 65,536 per peer, reached a fifth of the
  way through 1,000,000 requests: memory grows until then, and not after;
* ``unbounded``: caps large enough to hold every entry (the run takes less
  than EXCHANGE_LIFETIME), for the memory per deduplication entry:
  (RSS growth) / (entries), and the same relative to the default run.

Nothing is asserted (tests/robustness/test_flood.py does, on a smaller flood).

    .venv/bin/python bench/bench_flood.py [--requests 1000000] [--runs default,capped,unbounded]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from bench_server import (  # noqa: E402
    build_coapflood,
    free_port,
    machine,
    parse_flood,
    pin,
    print_table,
)

from coapkit.client import Client  # noqa: E402

SERVER = HERE / "servers" / "coapkit_server.py"

RUNS: dict[str, tuple[int, int]] = {
    "default": (100_000, 1024),
    "capped": (200_000, 65_536),
    "unbounded": (10_000_000, 1_000_000),
}


@dataclass
class Sample:
    time: float
    rss_kib: int
    dedup: int
    received: int


@dataclass
class FloodResult:
    name: str
    requests: int
    cap_total: int
    cap_per_peer: int
    flood: dict[str, float] = field(default_factory=dict)
    baseline_kib: int = 0
    samples: list[Sample] = field(default_factory=list)
    probes: list[float | None] = field(default_factory=list)  #: latency in s, None: failed
    libcoap_probes: list[bool] = field(default_factory=list)
    wall: float = 0.0

    @property
    def final(self) -> Sample:
        return self.samples[-1]

    def rss_at(self, fraction: float) -> int:
        """RSS (KiB) at the first sample where ``fraction`` of the requests had arrived."""
        target = fraction * self.requests
        for sample in self.samples:
            if sample.received >= target:
                return sample.rss_kib
        return self.final.rss_kib

    def peak_dedup(self) -> int:
        return max(sample.dedup for sample in self.samples)


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


async def probe_loop(port: int, interval: float, out: list[float | None]) -> None:
    """GET /hello from a fresh client every ``interval`` s; latency, or None on failure."""
    async with Client() as client:
        while True:
            start = time.monotonic()
            try:
                response = await asyncio.wait_for(
                    client.get(f"coap://127.0.0.1:{port}/hello"), 60.0
                )
                ok = response.payload == b"Hello, CoAP!"
            except Exception:
                ok = False
            out.append(time.monotonic() - start if ok else None)
            await asyncio.sleep(interval)


async def libcoap_loop(port: int, interval: float, out: list[bool]) -> None:
    binary = shutil.which("coap-client-notls")
    if binary is None:
        return
    while True:
        process = await asyncio.create_subprocess_exec(
            binary,
            "-m",
            "get",
            "-B",
            "30",
            f"coap://127.0.0.1:{port}/hello",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        stdout, _ = await process.communicate()
        out.append(b"Hello, CoAP!" in stdout)
        await asyncio.sleep(interval)


async def run_flood(
    name: str,
    requests: int,
    cap_total: int,
    cap_per_peer: int,
    *,
    window: int = 64,
    sample_interval: float = 0.25,
    probe_interval: float = 0.5,
) -> FloodResult:
    result = FloodResult(name, requests, cap_total, cap_per_peer)
    flood = build_coapflood()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{HERE / 'servers'}")
    server = await asyncio.create_subprocess_exec(
        *pin(0),
        sys.executable,
        str(SERVER),
        "--port",
        str(port),
        "--stats",
        str(sample_interval),
        "--dedup-cap-total",
        str(cap_total),
        "--dedup-cap-per-peer",
        str(cap_per_peer),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    tasks: list[asyncio.Task[None]] = []
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        pid = int(line.split("pid=")[1])
        latest = {"dedup": 0, "received": 0}

        async def read_stats() -> None:
            assert server.stdout is not None
            while line := (await server.stdout.readline()).decode():
                values = dict(re.findall(r"(\w+)=([\d.]+)", line))
                latest["dedup"] = int(values["dedup"])
                latest["received"] = int(values["received"])

        async def sample() -> None:
            start = time.monotonic()
            while True:
                result.samples.append(
                    Sample(
                        time.monotonic() - start,
                        rss_kib(pid),
                        latest["dedup"],
                        latest["received"],
                    )
                )
                await asyncio.sleep(sample_interval)

        tasks.append(asyncio.create_task(read_stats()))
        # One request first: the server is up and has served once (lazy imports, caches).
        async with Client() as client:
            await asyncio.wait_for(client.get(f"coap://127.0.0.1:{port}/hello"), 30)
        await asyncio.sleep(1.0)
        result.baseline_kib = rss_kib(pid)
        tasks.append(asyncio.create_task(sample()))
        tasks.append(asyncio.create_task(probe_loop(port, probe_interval, result.probes)))
        tasks.append(asyncio.create_task(libcoap_loop(port, 5.0, result.libcoap_probes)))
        start = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *pin(1),
            str(flood),
            "-t",
            "con",
            "-w",
            str(window),
            "-n",
            str(requests),
            f"coap://127.0.0.1:{port}/hello",
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await process.communicate()
        result.wall = time.monotonic() - start
        result.flood = parse_flood(stdout.decode())
        await asyncio.sleep(2 * sample_interval + 0.1)  # a last stats line after the flood
        result.samples.append(
            Sample(time.monotonic() - start, rss_kib(pid), latest["dedup"], latest["received"])
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.terminate()
        await server.wait()
    return result


def describe(result: FloodResult) -> list[str]:
    flood = result.flood
    final = result.final
    answered = [p for p in result.probes if p is not None]
    lines = [
        f"### {result.name}: dedup caps {result.cap_total:,} total, "
        f"{result.cap_per_peer:,} per peer",
        "",
        f"- coapflood: sent={flood.get('sent', 0):,.0f} ok={flood.get('ok', 0):,.0f} "
        f"lost={flood.get('lost', 0):,.0f} rps={flood.get('rps', 0):,.0f} "
        f"p50={flood.get('p50_us', 0):,.0f} us p99={flood.get('p99_us', 0):,.0f} us, "
        f"{result.wall:.1f} s",
        f"- server requests received {final.received:,}, dedup entries at the end "
        f"{final.dedup:,} (peak {result.peak_dedup():,})",
        f"- RSS: {result.baseline_kib / 1024:.1f} MiB before the flood; at 10/25/50/75/100 % "
        "of the requests: "
        + ", ".join(f"{result.rss_at(f) / 1024:.1f}" for f in (0.1, 0.25, 0.5, 0.75, 1.0))
        + f" MiB; end {final.rss_kib / 1024:.1f} MiB",
        f"- RSS growth over the second half: "
        f"{(result.rss_at(1.0) - result.rss_at(0.5)) / 1024:+.1f} MiB",
        f"- a fresh coapkit Client every 0.5 s: {len(answered)}/{len(result.probes)} answered"
        + (
            f", latency median {statistics.median(answered) * 1000:.1f} ms, "
            f"max {max(answered) * 1000:.0f} ms"
            if answered
            else ""
        ),
    ]
    if result.libcoap_probes:
        lines.append(
            f"- coap-client-notls every 5 s: {sum(result.libcoap_probes)}/"
            f"{len(result.libcoap_probes)} answered"
        )
    return lines


async def amain(args: argparse.Namespace) -> None:
    results: dict[str, FloodResult] = {}
    for name in args.runs.split(","):
        cap_total, cap_per_peer = RUNS[name]
        print(f"running {name} ({args.requests:,} requests)...", flush=True)
        results[name] = await run_flood(name, args.requests, cap_total, cap_per_peer)
        print("\n".join(describe(results[name])), flush=True)
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
    ]
    for result in results.values():
        lines += [*describe(result), ""]
    unbounded = results.get("unbounded")
    if unbounded is not None:
        entries = unbounded.final.dedup
        growth = (unbounded.final.rss_kib - unbounded.baseline_kib) * 1024
        lines.append(
            f"Bytes per deduplication entry (unbounded run): RSS growth {growth / 2**20:.1f} MiB "
            f"/ {entries:,} entries = {growth / max(entries, 1):.0f} B"
        )
        default = results.get("default")
        if default is not None:
            extra = (unbounded.final.rss_kib - default.final.rss_kib) * 1024
            more = entries - default.final.dedup
            lines.append(
                f"Relative to the default run (same traffic, {default.final.dedup:,} entries): "
                f"{extra / 2**20:.1f} MiB / {more:,} entries = {extra / max(more, 1):.0f} B"
            )
    print_table(lines, args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", default="default,capped,unbounded")
    parser.add_argument("--markdown", type=Path, help="also write the summary to this file")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
