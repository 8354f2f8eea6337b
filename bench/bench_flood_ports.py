"""Requests from 2,000 source ports in turn, on a real socket: the server's memory stays flat.

The field trial of issue 15 sent NON requests interleaved over 2,000 source ports: each
NON answer holds its message ID for EXCHANGE_LIFETIME, and while the holds were one
global FIFO merged only with the run before, every answer cost a run of ~140 bytes for
247 s (RSS 28 -> 723 MB after 5 million NONs).  This runs that traffic against
bench/servers/coapkit_server.py (pinned to CPU 0):

* a flooder (this script with ``--flooder``, pinned to CPU 1) opens ``--ports`` UDP
  sockets and sends from each in turn at ``--rate`` requests per second, each socket
  with its own message IDs, and counts the answers.  ``--kind non``: NON ``GET /hello``.
  ``--kind block1``: the first block of a body that never gets a second (CON POST
  ``/hello?n=<i>`` with Block1 0/more/16 bytes, each a new body): abandoned bodies, the
  other half of the field report (each new body scanned all others, 8.5 ms per body at
  50,000 bodies, and a concurrent GET waited 844 ms at the median);
* the server prints its peers, message-ID hold runs, deduplication entries and runs,
  Block1 bodies and requests received every 0.25 s; this script samples its resident
  set size (VmRSS);
* a fresh coapkit Client asks for ``/hello`` every 0.5 s meanwhile.

Nothing is asserted here (tests/robustness/test_flood_ports.py does, on a shorter run).
``--src`` points the server at another source tree, for the numbers before a change.

    .venv/bin/python bench/bench_flood_ports.py [--kind non|block1] [--requests 1000000]
        [--ports 2000] [--rate 15000] [--src PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import select
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from bench_flood import probe_loop, rss_kib  # noqa: E402
from bench_server import free_port, machine, pin, print_table  # noqa: E402

from coapkit.client import Client  # noqa: E402

SERVER = HERE / "servers" / "coapkit_server.py"
URI_PATH_HELLO = b"\xb5hello"  # Uri-Path (11), 5 bytes
KINDS = ("non", "block1")


def datagram(kind: str, mid: int, token: bytes, serial: int) -> bytes:
    """One request of the flood: see the module docstring."""
    if kind == "non":
        return bytes((0x52, 0x01, mid >> 8, mid & 0xFF)) + token + URI_PATH_HELLO
    query = b"n=%d" % serial  # Uri-Query (15): a new body key each time
    return (
        bytes((0x42, 0x02, mid >> 8, mid & 0xFF))  # CON POST, 2-byte token
        + token
        + URI_PATH_HELLO
        + bytes((0x40 | len(query),))
        + query
        + b"\xc1\x08"  # Block1 (27, delta 12): num 0, more, szx 0 (16 bytes)
        + b"\xff"
        + bytes(16)
    )


@dataclass
class Sample:
    time: float
    rss_kib: int
    stats: dict[str, int]


@dataclass
class PortsResult:
    kind: str
    requests: int
    ports: int
    rate: float
    flood: dict[str, float] = field(default_factory=dict)
    baseline_kib: int = 0
    samples: list[Sample] = field(default_factory=list)
    probes: list[float | None] = field(default_factory=list)  #: latency in s, None: failed

    def at(self, fraction: float) -> Sample:
        """The first sample where the server had received ``fraction`` of the requests."""
        target = fraction * self.requests
        for sample in self.samples:
            if sample.stats.get("received", 0) >= target:
                return sample
        return self.samples[-1]

    def rss_at(self, fraction: float) -> int:
        return self.at(fraction).rss_kib

    def peak(self, name: str) -> int:
        return max(sample.stats.get(name, 0) for sample in self.samples)


# -- the flooder (a subprocess) -----------------------------------------------------------------


def flood(kind: str, port: int, ports: int, requests: int, rate: float) -> dict[str, float]:
    """Send ``requests`` requests from ``ports`` sockets in turn at ``rate`` per second."""
    sockets = []
    for _ in range(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    by_fd = {sock.fileno(): sock for sock in sockets}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    rng = random.Random(15)
    mids = [rng.getrandbits(16) for _ in sockets]
    answered = dropped = 0

    def drain(timeout: float) -> int:
        got = 0
        for fd, _ in poller.poll(timeout):
            sock = by_fd[fd]
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                got += 1
        return got

    start = time.monotonic()
    for i in range(requests):
        index = i % ports
        mid = mids[index] = (mids[index] + 1) & 0xFFFF
        token = (i & 0xFFFF).to_bytes(2, "big")
        try:
            sockets[index].send(datagram(kind, mid, token, i))
        except BlockingIOError:
            dropped += 1
        if i % 256 == 255:
            answered += drain(0)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        answered += drain(0.1)
    return {"sent": requests, "answered": answered, "dropped": dropped, "elapsed": elapsed}


# -- the run --------------------------------------------------------------------------------------


async def run_ports_flood(
    kind: str,
    requests: int,
    ports: int,
    rate: float,
    *,
    src: Path | None = None,
    sample_interval: float = 0.25,
    probe_interval: float = 0.5,
) -> PortsResult:
    result = PortsResult(kind, requests, ports, rate)

    async def ready(port: int) -> None:
        async with Client() as client:  # the server is up and has served once
            await asyncio.wait_for(client.get(f"coap://127.0.0.1:{port}/hello"), 30)

    def flooder(port: int) -> list[str]:
        return [
            "--kind", kind, "--port", str(port), "--ports", str(ports),
            "--requests", str(requests), "--rate", str(rate),
        ]  # fmt: skip

    await monitored_flood(
        SERVER,
        result,
        source=src or ROOT / "src",
        ready=ready,
        probe=probe_loop,
        flooder=(Path(__file__), flooder),
        sample_interval=sample_interval,
        probe_interval=probe_interval,
    )
    return result


class Monitored(Protocol):
    """What :func:`monitored_flood` fills in: a result of this module's or of
    bench_dtls_flood's."""

    flood: dict[str, float]
    baseline_kib: int
    samples: list[Sample]
    probes: list[float | None]


async def monitored_flood(
    script: Path,
    result: Monitored,
    *,
    source: Path,
    ready: Callable[[int], Awaitable[None]],
    probe: Callable[[int, float, list[float | None]], Coroutine[Any, Any, None]],
    flooder: tuple[Path, Callable[[int], list[str]]],
    sample_interval: float,
    probe_interval: float,
) -> None:
    """The harness of the flood benchmarks: ``script`` serving on a free port (CPU 0),
    printing ``pid=`` and then its statistics every ``sample_interval`` s; its RSS and
    statistics sampled into ``result.samples``; ``probe`` run every ``probe_interval`` s
    once ``ready`` says the server has served once; the flooder script (CPU 1, with
    ``--flooder`` and the arguments for the port) run to its end, its ``name=value``
    output in ``result.flood``; a last sample after the flood."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{source}{os.pathsep}{HERE / 'servers'}")
    server = await asyncio.create_subprocess_exec(
        *pin(0),
        sys.executable,
        str(script),
        "--port",
        str(port),
        "--stats",
        str(sample_interval),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    tasks: list[asyncio.Task[None]] = []
    latest: dict[str, int] = {}
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        pid = int(line.split("pid=")[1])

        async def read_stats() -> None:
            assert server.stdout is not None
            while line := (await server.stdout.readline()).decode():
                for name, value in re.findall(r"(\w+)=(-?[\d.]+)", line):
                    latest[name] = int(float(value))

        async def sample() -> None:
            start = time.monotonic()
            while True:
                result.samples.append(Sample(time.monotonic() - start, rss_kib(pid), dict(latest)))
                await asyncio.sleep(sample_interval)

        tasks.append(asyncio.create_task(read_stats()))
        await ready(port)
        await asyncio.sleep(1.0)
        result.baseline_kib = rss_kib(pid)
        tasks.append(asyncio.create_task(sample()))
        tasks.append(asyncio.create_task(probe(port, probe_interval, result.probes)))
        flooder_script, flooder_args = flooder
        process = await asyncio.create_subprocess_exec(
            *pin(1),
            sys.executable,
            str(flooder_script),
            "--flooder",
            *flooder_args(port),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await process.communicate()
        result.flood = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", stdout.decode())}
        await asyncio.sleep(2 * sample_interval + 0.1)  # a last stats line after the flood
        result.samples.append(Sample(result.samples[-1].time, rss_kib(pid), dict(latest)))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.terminate()
        await server.wait()


def describe(result: PortsResult) -> list[str]:
    flood = result.flood
    final = result.samples[-1]
    answered = [p for p in result.probes if p is not None]
    mib = 1024
    what = "NON GET /hello" if result.kind == "non" else "abandoned Block1 bodies"
    return [
        f"### {what} from {result.ports:,} source ports in turn, "
        f"{result.requests:,} requests at {result.rate:,.0f}/s",
        "",
        f"- flooder: sent={flood.get('sent', 0):,.0f} answered={flood.get('answered', 0):,.0f} "
        f"in {flood.get('elapsed', 0):.1f} s",
        f"- server at the end: received {final.stats.get('received', 0):,}, "
        f"peers {final.stats.get('peers', 0):,}, message-ID hold runs "
        f"{final.stats.get('holds', 0):,} (peak {result.peak('holds'):,}), dedup entries "
        f"{final.stats.get('dedup', 0):,}, dedup runs {final.stats.get('dedup_runs', 0):,} "
        f"(peak {result.peak('dedup_runs'):,}), Block1 bodies {final.stats.get('bodies', 0):,} "
        f"(peak {result.peak('bodies'):,})",
        f"- RSS: {result.baseline_kib / mib:.1f} MiB before; at 10/25/50/75/100 % of the "
        "requests: "
        + ", ".join(f"{result.rss_at(f) / mib:.1f}" for f in (0.1, 0.25, 0.5, 0.75, 1.0))
        + " MiB",
        f"- RSS growth over the second half: "
        f"{(result.rss_at(1.0) - result.rss_at(0.5)) / mib:+.1f} MiB "
        f"({(result.rss_at(1.0) - result.rss_at(0.5)) * 1024 / (result.requests / 2):.1f} "
        "B per request)",
        f"- a fresh coapkit Client every 0.5 s: {len(answered)}/{len(result.probes)} answered"
        + (
            f", latency median {statistics.median(answered) * 1000:.1f} ms, "
            f"max {max(answered) * 1000:.0f} ms"
            if answered
            else ""
        ),
    ]


async def amain(args: argparse.Namespace) -> None:
    print(f"flooding {args.requests:,} requests from {args.ports:,} ports...", flush=True)
    result = await run_ports_flood(args.kind, args.requests, args.ports, args.rate, src=args.src)
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
        *describe(result),
    ]
    print_table(lines, args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="non")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--ports", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=15_000.0)
    parser.add_argument("--src", type=Path, help="the coapkit source tree the server runs")
    parser.add_argument("--markdown", type=Path, help="also write the summary to this file")
    parser.add_argument("--flooder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flooder:
        summary = flood(args.kind, args.port, args.ports, args.requests, args.rate)
        print(" ".join(f"{name}={value:.3f}" for name, value in summary.items()), flush=True)
        return
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
