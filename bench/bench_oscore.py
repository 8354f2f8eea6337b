"""OSCORE's cost, in one run: per request, coapkit vs aiocoap; and requests per second over
OSCORE vs plain CoAP.

1. **Protect + unprotect per request.**  One protected exchange without a network: the
   client protects a GET (Uri-Path "hello", 8-byte token) into its OSCORE request, the
   server verifies it (replay window and all), protects a 2.05 response with a 12-byte
   payload, and the client verifies that.  Four operations, on each library's own message
   objects, with the default algorithm (AES-CCM-16-64-128) and contexts whose sequence
   numbers are not written anywhere (coapkit: no store; aiocoap: a context class whose
   ``post_seqnoincrease`` does nothing, as aiocoap's own tests use).  aiocoap runs in the
   virtual environment that has ``aiocoap[oscore]==0.4.17`` (``--aiocoap-python``; by
   default the one tests/interop makes under ``~/.cache/coapkit-tests``): its ``oscore``
   module needs ``filelock``, which coapkit's environment does not have.  The best of
   ``--repeat`` rounds of ``--n`` exchanges, in microseconds per exchange.

2. **Requests per second, OSCORE vs plain.**  A coapkit Server on loopback in a process
   of its own (pinned to CPU 0 where there are two), the coapkit Client here (CPU 1):
   ``--requests`` GETs with ``--inflight`` at once (NSTART raised to match), plain and
   protected, the median of ``--repeat`` runs each.  The contexts are loaded from context
   directories (sequence numbers stored ahead as in production).

    .venv/bin/python bench/bench_oscore.py [--n 20000] [--requests 20000] [--inflight 16]
                                           [--repeat 3] [--aiocoap-python PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
DEFAULT_AIOCOAP = Path.home() / ".cache" / "coapkit-tests" / "aiocoap-oscore-0.4.17-py311"
SECRET = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
SALT = bytes.fromhex("9e7ca92223786340")
PAYLOAD = b"Hello World!"

AIOCOAP_MICRO = r"""
import sys, time
import aiocoap, aiocoap.oscore as oscore
from aiocoap.message import Direction
from aiocoap.numbers.codes import Code

class Context(oscore.CanProtect, oscore.CanUnprotect, oscore.SecurityContextUtils):
    def post_seqnoincrease(self):
        pass

def make(sender, recipient):
    c = Context()
    c.alg_aead = oscore.algorithms["AES-CCM-16-64-128"]
    c.hashfun = oscore.hashfunctions["sha256"]
    c.sender_id, c.recipient_id, c.id_context = sender, recipient, None
    c.derive_keys(SALT, SECRET)
    c.sender_sequence_number = 0
    c.recipient_replay_window = oscore.ReplayWindow(32, lambda: None)
    c.recipient_replay_window.initialize_empty()
    c.echo_recovery = None
    return c

SECRET = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
SALT = bytes.fromhex("9e7ca92223786340")
n, repeat = int(sys.argv[1]), int(sys.argv[2])
best = None
for _ in range(repeat):
    client, server = make(b"\x01", b"\x02"), make(b"\x02", b"\x01")
    start = time.perf_counter()
    for i in range(n):
        request = aiocoap.Message(
            code=Code.GET, uri_path=["hello"], token=b"\x00" * 8, mid=i & 0xFFFF
        )
        request.direction = Direction.OUTGOING
        outer, request_id = client.protect(request)
        outer.direction = Direction.INCOMING
        inner, server_id = server.unprotect(outer)
        response = aiocoap.Message(code=Code.CONTENT, payload=b"Hello World!")
        response.direction = Direction.OUTGOING
        protected, _ = server.protect(response, server_id)
        protected.direction = Direction.INCOMING
        final, _ = client.unprotect(protected, request_id)
        assert final.payload == b"Hello World!"
    elapsed = time.perf_counter() - start
    best = elapsed if best is None else min(best, elapsed)
print(best / n * 1e6)
"""


def coapkit_micro(n: int, repeat: int) -> float:
    sys.path.insert(0, str(SRC))
    from coapkit import Code, Message, Options
    from coapkit.oscore.context import ContextParameters, SecurityContext
    from coapkit.oscore.protection import (
        protect_request,
        protect_response,
        unprotect_request,
        unprotect_response,
    )

    parameters = ContextParameters(SECRET, b"\x01", b"\x02", master_salt=SALT)
    options = Options.build(uri_path=["hello"])
    best = None
    for _ in range(repeat):
        client = SecurityContext(parameters)
        server = SecurityContext(parameters.reversed())

        def lookup(_option: object, server: SecurityContext = server) -> SecurityContext:
            return server

        start = time.perf_counter()
        for i in range(n):
            request = Message(code=Code.GET, mid=i & 0xFFFF, token=b"\0" * 8, options=options)
            outer, binding = protect_request(client, request)
            _inner, server_binding = unprotect_request(outer, lookup)
            response = Message(code=Code.CONTENT, payload=PAYLOAD)
            protected = protect_response(server_binding, response)
            final = unprotect_response(binding, protected).message
            assert final.payload == PAYLOAD
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best / n * 1e6


def aiocoap_micro(python: Path, n: int, repeat: int) -> float | None:
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-c", AIOCOAP_MICRO, str(n), str(repeat)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return None
    return float(result.stdout.strip())


# -- throughput ---------------------------------------------------------------------------------

SERVER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from coapkit import Server, Site, Response
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.oscore.server import OscoreServer
from coapkit.runtime.oscore_files import load_credentials

async def main():
    site = Site()
    @site.route("/hello")
    def hello(request):
        return Response(payload=b"Hello World!")
    credentials = load_credentials(sys.argv[2])
    oscore = OscoreServer(credentials.server_contexts())
    try:
        async with Server(site, bind=("127.0.0.1", 0), oscore=oscore,
                          max_pending_per_remote=1000) as server:
            print(server.port, flush=True)
            await asyncio.Event().wait()
    finally:
        credentials.close()
asyncio.run(main())
"""


def pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and subprocess.run(
        ["which", "taskset"], capture_output=True, check=False
    ).returncode == 0:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    """User and kernel CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    port: int, credentials: object, requests: int, inflight: int, server_pid: int
) -> tuple[float, float, float]:
    """(requests per second, client CPU us per request, server CPU us per request)"""
    from coapkit import Client
    from coapkit.messaging.parameters import TransmissionParameters

    transmission = TransmissionParameters(nstart=inflight)
    async with Client(oscore=credentials, transmission=transmission, timeout=10) as client:  # type: ignore[arg-type]
        uri = f"coap://127.0.0.1:{port}/hello"
        for _ in range(200):  # warm-up
            await client.get(uri)
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                response = await client.get(uri)
                assert response.payload == PAYLOAD

        start = time.perf_counter()
        cpu = time.process_time()
        server_cpu = cpu_seconds(server_pid)
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - start
        client_us = (time.process_time() - cpu) / requests * 1e6
        server_us = (cpu_seconds(server_pid) - server_cpu) / requests * 1e6
        return requests / elapsed, client_us, server_us


Figures = tuple[float, float, float]


def run_throughput(requests: int, inflight: int, repeat: int) -> tuple[Figures, Figures]:
    sys.path.insert(0, str(SRC))
    from coapkit.oscore.context import ContextParameters
    from coapkit.runtime.oscore_files import load_credentials, write_context

    with tempfile.TemporaryDirectory(prefix="bench-oscore-") as directory:
        base = Path(directory)
        parameters = ContextParameters(SECRET, b"\x01", b"\x02", master_salt=SALT)
        write_context(base / "client", parameters)
        write_context(base / "server", parameters.reversed())
        server_file = base / "server.json"
        server_file.write_text(json.dumps({":c": {"oscore": {"basedir": str(base / "server")}}}))
        process = subprocess.Popen(
            [*pin(0), sys.executable, "-c", SERVER, str(SRC), str(server_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            if pin(1):
                os.sched_setaffinity(0, {1})
            client_data = {
                f"coap://127.0.0.1:{port}/*": {"oscore": {"basedir": str(base / "client")}}
            }
            plain: list[Figures] = []
            protected: list[Figures] = []
            for _ in range(repeat):
                plain.append(asyncio.run(throughput(port, None, requests, inflight, process.pid)))
                credentials = load_credentials(client_data)
                try:
                    protected.append(
                        asyncio.run(throughput(port, credentials, requests, inflight, process.pid))
                    )
                finally:
                    credentials.close()
        finally:
            process.terminate()
            process.wait()
    return _median(plain), _median(protected)


def _median(runs: list[Figures]) -> Figures:
    return (
        statistics.median(run[0] for run in runs),
        statistics.median(run[1] for run in runs),
        statistics.median(run[2] for run in runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--aiocoap-python", type=Path, default=DEFAULT_AIOCOAP / "bin" / "python")
    args = parser.parse_args()

    ours = coapkit_micro(args.n, args.repeat)
    theirs = aiocoap_micro(args.aiocoap_python, args.n, args.repeat)
    print("\nProtect + unprotect per request (client protects, server verifies, server")
    print(f"protects the response, client verifies): best of {args.repeat} x {args.n:,}\n")
    print("| implementation | us per request |")
    print("|---|---:|")
    print(f"| coapkit | {ours:.1f} |")
    if theirs is not None:
        print(f"| aiocoap 0.4.17 | {theirs:.1f} |")
        print(f"\naiocoap / coapkit: {theirs / ours:.2f}x")
    else:
        print("| aiocoap 0.4.17 | (not run: no aiocoap[oscore] environment) |")

    plain, protected = run_throughput(args.requests, args.inflight, args.repeat)
    print(f"\nRequests per second, coapkit client and server on loopback, {args.requests:,} GETs,")
    print(f"{args.inflight} in flight, median of {args.repeat}:\n")
    print("| | requests/s | client CPU us/request | server CPU us/request |")
    print("|---|---:|---:|---:|")
    for name, (rate, client_us, server_us) in (("plain CoAP", plain), ("OSCORE", protected)):
        print(f"| {name} | {rate:,.0f} | {client_us:.1f} | {server_us:.1f} |")
    print(f"\nOSCORE / plain, requests per second: {protected[0] / plain[0]:.2f}")
    bound_plain = 1e6 / max(plain[1], plain[2])
    bound_oscore = 1e6 / max(protected[1], protected[2])
    print(
        "OSCORE / plain, by CPU (the busier side's CPU per request; what the rate is "
        f"when neither side waits for a CPU): {bound_oscore / bound_plain:.2f}"
    )


if __name__ == "__main__":
    main()
