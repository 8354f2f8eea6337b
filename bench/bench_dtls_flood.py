"""10,000 ClientHellos from 10,000 source ports that never return their cookie: no state.

RFC 6347 §4.2.1: a DTLS server answers a ClientHello with a HelloVerifyRequest carrying
a cookie, and keeps nothing for its source until a ClientHello returns that cookie
(proving the source receives at its address).  This floods
bench/servers/coapkit_dtls_server.py (pinned to CPU 0) with first ClientHellos:

* a flooder (this script with ``--flooder``, pinned to CPU 1) opens ``--ports`` UDP
  sockets and sends ``--hellos`` ClientHellos (an OpenSSL client's first, each with a
  random of its own) from them in turn at ``--rate`` per second, and counts the
  HelloVerifyRequests that come back;
* the server prints its DTLS sessions, handshakes in progress and cookies sent every
  0.25 s; this script samples its resident set size (VmRSS);
* a fresh coapkit Client makes a whole PSK handshake and asks for ``/hello`` every
  0.5 s meanwhile.

Nothing is asserted here (tests/robustness/test_dtls_flood.py does).

    .venv/bin/python bench/bench_dtls_flood.py [--hellos 10000] [--ports 10000]
        [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
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

from bench_flood_ports import Sample, monitored_flood  # noqa: E402
from bench_server import machine, print_table  # noqa: E402

from coapkit.client import Client  # noqa: E402

SERVER = HERE / "servers" / "coapkit_dtls_server.py"
RANDOM = slice(13 + 12 + 2, 13 + 12 + 2 + 32)  #: the ClientHello's random in its datagram


def first_client_hello() -> bytes:
    """The first datagram an OpenSSL DTLS 1.2 client sends: a ClientHello, no cookie."""
    from coapkit.security.dtls import DtlsCredentials
    from coapkit.security.openssl_dtls import OpenSslClientEngine

    engine = OpenSslClientEngine()
    _, step = engine.connect(("127.0.0.1", 5684), None, DtlsCredentials(b"bench", b"benchkey"))
    [hello] = step.datagrams
    return hello


@dataclass
class FloodResult:
    hellos: int
    ports: int
    rate: float
    flood: dict[str, float] = field(default_factory=dict)
    baseline_kib: int = 0
    samples: list[Sample] = field(default_factory=list)
    probes: list[float | None] = field(default_factory=list)  #: latency in s, None: failed

    def peak(self, name: str) -> int:
        return max(sample.stats.get(name, 0) for sample in self.samples)

    @property
    def peak_rss_kib(self) -> int:
        return max(sample.rss_kib for sample in self.samples)


# -- the flooder (a subprocess) -----------------------------------------------------------------


def flood(port: int, ports: int, hellos: int, rate: float) -> dict[str, float]:
    template = bytearray(first_client_hello())
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
    answered = dropped = 0

    def drain(timeout: float) -> int:
        got = 0
        for fd, _ in poller.poll(timeout):
            sock = by_fd[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                if len(data) > 13 and data[13] == 3:  # a HelloVerifyRequest
                    got += 1
        return got

    start = time.monotonic()
    for i in range(hellos):
        template[RANDOM] = os.urandom(32)
        try:
            sockets[i % ports].send(template)
        except BlockingIOError:
            dropped += 1
        if i % 128 == 127:
            answered += drain(0)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        answered += drain(0.1)
    return {"sent": hellos, "cookies": answered, "dropped": dropped, "elapsed": elapsed}


# -- the run --------------------------------------------------------------------------------------


async def probe_loop(port: int, interval: float, out: list[float | None]) -> None:
    """A whole PSK handshake and GET /hello from a fresh client every ``interval`` s."""
    from coapkit.security.dtls import DtlsCredentials

    credentials = DtlsCredentials(psk_identity=b"bench", psk=b"benchkey")
    while True:
        start = time.monotonic()
        try:
            async with Client(dtls=credentials) as client:
                response = await asyncio.wait_for(
                    client.get(f"coaps://127.0.0.1:{port}/hello"), 30.0
                )
            ok = response.payload == b"Hello, CoAP!"
        except Exception:
            ok = False
        out.append(time.monotonic() - start if ok else None)
        await asyncio.sleep(interval)


async def run_dtls_flood(
    hellos: int,
    ports: int,
    rate: float,
    *,
    sample_interval: float = 0.25,
    probe_interval: float = 0.5,
) -> FloodResult:
    result = FloodResult(hellos, ports, rate)

    async def ready(port: int) -> None:
        await asyncio.wait_for(probe_once(port, []), 30)  # up, and has served once

    def flooder(port: int) -> list[str]:
        return [
            "--port", str(port), "--ports", str(ports),
            "--hellos", str(hellos), "--rate", str(rate),
        ]  # fmt: skip

    await monitored_flood(
        SERVER,
        result,
        source=ROOT / "src",
        ready=ready,
        probe=probe_loop,
        flooder=(Path(__file__), flooder),
        sample_interval=sample_interval,
        probe_interval=probe_interval,
    )
    return result


async def probe_once(port: int, out: list[float | None]) -> None:
    task = asyncio.create_task(probe_loop(port, 3600, out))
    while not out:
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if out[0] is None:
        raise RuntimeError("the DTLS server did not answer")


def describe(result: FloodResult) -> list[str]:
    flood = result.flood
    final = result.samples[-1]
    answered = [p for p in result.probes if p is not None]
    mib = 1024
    return [
        f"### {result.hellos:,} first ClientHellos from {result.ports:,} source ports, "
        f"at {result.rate:,.0f}/s, none returning its cookie",
        "",
        f"- flooder: sent={flood.get('sent', 0):,.0f}, HelloVerifyRequests back="
        f"{flood.get('cookies', 0):,.0f}, in {flood.get('elapsed', 0):.1f} s",
        f"- server: cookies sent {final.stats.get('cookies', 0):,}; DTLS sessions held, "
        f"peak {result.peak('sessions')} (the probes'), handshakes in progress, peak "
        f"{result.peak('handshakes')}; sessions established {final.stats.get('established', 0)}"
        " (the probes')",
        f"- RSS: {result.baseline_kib / mib:.1f} MiB before, peak "
        f"{result.peak_rss_kib / mib:.1f} MiB, {final.rss_kib / mib:.1f} MiB after "
        f"({(result.peak_rss_kib - result.baseline_kib) * 1024 / result.hellos:.1f} B per "
        "ClientHello at the peak)",
        f"- a fresh coapkit Client (a whole PSK handshake, then GET) every 0.5 s: "
        f"{len(answered)}/{len(result.probes)} answered"
        + (
            f", median {statistics.median(answered) * 1000:.1f} ms, max "
            f"{max(answered) * 1000:.0f} ms"
            if answered
            else ""
        ),
    ]


async def amain(args: argparse.Namespace) -> None:
    print(f"flooding {args.hellos:,} ClientHellos from {args.ports:,} ports...", flush=True)
    result = await run_dtls_flood(args.hellos, args.ports, args.rate)
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
        *describe(result),
    ]
    print_table(lines, args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hellos", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--markdown", type=Path, help="also write the summary to this file")
    parser.add_argument("--flooder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flooder:
        summary = flood(args.port, args.ports, args.hellos, args.rate)
        print(" ".join(f"{name}={value:.3f}" for name, value in summary.items()), flush=True)
        return
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
