"""Client throughput and a 10 MiB block-wise fetch, side by side: coapkit vs aiocoap (vs libcoap).

Against libcoap's C ``coap-server-notls`` (fast enough not to be the
bottleneck), pinned to CPU 0 while the client runs on CPU 1:

* 20,000 sequential GETs of ``/`` and 20,000 GETs with 64 in flight, for the
  coapkit client and the aiocoap 0.4.17 client.  coapkit honours NSTART
  (RFC 7252 §4.7, default 1 outstanding CON per peer); for the 64-in-flight
  run it is given ``nstart=64``, since aiocoap does not enforce NSTART at all.
* the same with a bare-asyncio client (one prebuilt datagram per request, the
  answer matched by token, nothing parsed): the ceiling of any Python client on
  this loop and machine;
* the time to fetch a 10 MiB resource block-wise (1024-byte blocks, RFC 7959):
  coapkit client vs aiocoap client vs libcoap's own ``coap-client-notls``.

Each figure is the median of ``--repeat`` runs; ratios are printed last.
Numbers only, nothing asserted.

    .venv/bin/python bench/bench_client.py [--requests 20000] [--repeat 3] [--loop asyncio|uvloop]
                                           [--compiled]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_server import compiled_build, free_port, pin, print_table  # noqa: E402

#: --compiled: the coapkit client of the compiled build (scripts/compiled), not the pure one
COMPILED = "--compiled" in sys.argv[1:]
if COMPILED:
    _build = compiled_build()
    if _build is None:
        sys.exit("--compiled: no compiled build (see scripts/compiled)")
    sys.path.insert(0, str(_build))

from coapkit.client import Client  # noqa: E402
from coapkit.messaging.parameters import TransmissionParameters  # noqa: E402

BIG = 10 * 1024 * 1024


def start_libcoap(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*pin(0), "coap-server-notls", "-A", "127.0.0.1", "-p", str(port), "-d", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            sock.sendto(b"\x40\x00\x00\x01", ("127.0.0.1", port))
            try:
                sock.recv(16)
                return process
            except (TimeoutError, ConnectionRefusedError):
                continue
    process.kill()
    raise RuntimeError("coap-server-notls did not start")


async def coapkit_sequential(uri: str, count: int) -> float:
    async with Client() as client:
        await client.get(uri)
        started = time.perf_counter()
        for _ in range(count):
            await client.get(uri)
        return count / (time.perf_counter() - started)


async def coapkit_parallel(uri: str, count: int, window: int) -> float:
    async with Client(transmission=TransmissionParameters(nstart=window)) as client:
        await client.get(uri)
        return await _parallel(lambda: client.get(uri), count, window)


async def _parallel(call: Callable[[], Awaitable[object]], count: int, window: int) -> float:
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    return count / (time.perf_counter() - started)


class _FloorProtocol(asyncio.DatagramProtocol):
    """The least a Python client can do: one prebuilt CON GET per request (fresh MID and
    token), the answer matched by its token and nothing parsed; no retransmission."""

    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        future = self.waiting.pop(data[4 : 4 + (data[0] & 0x0F)], None)
        if future is not None and not future.done():
            future.set_result(data)


async def floor_run(port: int, count: int, window: int) -> float:
    """Requests/s of the bare-asyncio client floor, ``window`` requests in flight."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _FloorProtocol, remote_addr=("127.0.0.1", port)
    )
    counter = 0

    async def one() -> object:
        nonlocal counter
        counter += 1
        mid = counter & 0xFFFF
        token = counter.to_bytes(4, "big")
        future: asyncio.Future[bytes] = loop.create_future()
        protocol.waiting[token] = future
        transport.sendto(bytes((0x44, 0x01, mid >> 8, mid & 0xFF)) + token)
        return await future

    try:
        await one()
        if window == 1:
            started = time.perf_counter()
            for _ in range(count):
                await one()
            return count / (time.perf_counter() - started)
        return await _parallel(one, count, window)
    finally:
        transport.close()


async def aiocoap_sequential(uri: str, count: int) -> float:
    import aiocoap

    context = await aiocoap.Context.create_client_context()
    try:
        await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
        started = time.perf_counter()
        for _ in range(count):
            await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
        return count / (time.perf_counter() - started)
    finally:
        await context.shutdown()


async def aiocoap_parallel(uri: str, count: int, window: int) -> float:
    import aiocoap

    context = await aiocoap.Context.create_client_context()
    try:
        await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response

        async def one() -> object:
            return await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response

        return await _parallel(one, count, window)
    finally:
        await context.shutdown()


async def coapkit_big(uri: str) -> float:
    async with Client() as client:
        started = time.perf_counter()
        response = await client.get(uri)
        elapsed = time.perf_counter() - started
    if len(response.payload) != BIG:
        raise RuntimeError(f"coapkit got {len(response.payload)} bytes")
    return elapsed


async def aiocoap_big(uri: str) -> float:
    import aiocoap

    context = await aiocoap.Context.create_client_context()
    try:
        started = time.perf_counter()
        response = await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
        elapsed = time.perf_counter() - started
    finally:
        await context.shutdown()
    if len(response.payload) != BIG:
        raise RuntimeError(f"aiocoap got {len(response.payload)} bytes")
    return elapsed


def libcoap_big(uri: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "out"
        started = time.perf_counter()
        subprocess.run(
            ["coap-client-notls", "-b", "1024", "-o", str(target), uri], check=True, timeout=600
        )
        elapsed = time.perf_counter() - started
        if target.stat().st_size != BIG:
            raise RuntimeError("coap-client got a different size")
    return elapsed


def upload_big(uri: str) -> None:
    with tempfile.NamedTemporaryFile() as body:
        body.write(os.urandom(BIG))
        body.flush()
        subprocess.run(
            ["coap-client-notls", "-m", "put", "-b", "1024", "-f", body.name, uri],
            check=True,
            timeout=600,
        )


def run(loop_name: str, coroutine: Awaitable[float]) -> float:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coroutine)  # type: ignore[arg-type]
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument(
        "--compiled", action="store_true", help="run coapkit's compiled build (mypyc)"
    )
    args = parser.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})

    port = free_port()
    server = start_libcoap(port)
    uri = f"coap://127.0.0.1:{port}/"
    big_uri = f"coap://127.0.0.1:{port}/example_data"
    rows: list[tuple[str, str, float]] = []
    try:
        n, w = args.requests, args.window
        cases: list[tuple[str, str, Callable[[], float]]] = [
            ("sequential GETs/s", "coapkit", lambda: run(args.loop, coapkit_sequential(uri, n))),
            ("sequential GETs/s", "aiocoap", lambda: run(args.loop, aiocoap_sequential(uri, n))),
            ("sequential GETs/s", "floor", lambda: run(args.loop, floor_run(port, n, 1))),
            (
                f"{w} in flight GETs/s",
                "coapkit",
                lambda: run(args.loop, coapkit_parallel(uri, n, w)),
            ),
            (
                f"{w} in flight GETs/s",
                "aiocoap",
                lambda: run(args.loop, aiocoap_parallel(uri, n, w)),
            ),
            (f"{w} in flight GETs/s", "floor", lambda: run(args.loop, floor_run(port, n, w))),
        ]
        if not args.skip_big:
            upload_big(big_uri)
            cases += [
                ("10 MiB fetch, s", "coapkit", lambda: run(args.loop, coapkit_big(big_uri))),
                ("10 MiB fetch, s", "aiocoap", lambda: run(args.loop, aiocoap_big(big_uri))),
                ("10 MiB fetch, s", "libcoap", lambda: libcoap_big(big_uri)),
            ]
        for label, who, case in cases:
            value = statistics.median(case() for _ in range(args.repeat))
            rows.append((label, who, value))
            print(f"{label:22} {who:8} {value:10.2f}", flush=True)
    finally:
        server.terminate()
        server.wait(10)

    table = {(label, who): value for label, who, value in rows}
    lines = [
        f"Client benchmark, loop {args.loop}, {args.requests} requests, median of {args.repeat}"
        f", coapkit {'compiled (mypyc)' if COMPILED else 'pure Python'}",
        "",
        "| measurement | client | value |",
        "|---|---|---:|",
        *(f"| {label} | {who} | {value:.2f} |" for label, who, value in rows),
        "",
        "Ratios:",
    ]
    for label in ("sequential GETs/s", f"{args.window} in flight GETs/s"):
        mine, theirs = table.get((label, "coapkit")), table.get((label, "aiocoap"))
        floor = table.get((label, "floor"))
        if mine and theirs:
            versus_floor = f", x{mine / floor:.2f} the bare-asyncio floor" if floor else ""
            lines.append(f"- {label}: coapkit x{mine / theirs:.2f} aiocoap{versus_floor}")
    mine = table.get(("10 MiB fetch, s", "coapkit"))
    if mine:
        for other in ("aiocoap", "libcoap"):
            theirs = table.get(("10 MiB fetch, s", other))
            if theirs:
                lines.append(
                    f"- 10 MiB fetch: coapkit takes x{mine / theirs:.2f} the time of {other}"
                )
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
