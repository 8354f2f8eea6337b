"""2,000 idle connections and 200 that never send their CSM (RFC 8323 §5.3) cost a
server neither its latency nor, for long, its sockets.

The server listens on ``coap+tcp`` with short timeouts (CSM 1 s, idle 2 s).  The
idle connections send a CSM and nothing more; the others send nothing at all.
Meanwhile a new client's GETs are answered about as fast as before the crowd
came, and then the idle timeout and the CSM timeout close every crowd
connection.  On asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import pytest

from coapkit import Client, Request, Response, Server
from coapkit.codec.stream import encode_frame
from coapkit.connections import StreamConfig, signals
from coapkit.transports.tcp import StreamLimits
from tests.runtime.loops import LOOPS, run_on

pytestmark = [pytest.mark.parametrize("loop", LOOPS), pytest.mark.timeout(120)]

IDLE, SILENT = 2000, 200


def open_crowd(port: int) -> list[socket.socket]:
    csm = signals.csm(1152, False)
    frame = encode_frame(csm.code, b"", csm.options, b"")
    crowd = []
    for n in range(IDLE + SILENT):
        sock = socket.create_connection(("127.0.0.1", port))
        if n < IDLE:
            sock.sendall(frame)
        crowd.append(sock)
    return crowd


async def latencies(client: Client, uri: str, count: int = 30) -> list[float]:
    found = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(uri)
        found.append(time.perf_counter() - started)
        assert response.text == "hi"
    return found


def test_idle_and_csm_less_connections_neither_slow_the_server_nor_stay(loop: str) -> None:
    async def main() -> None:
        config = StreamConfig(csm_timeout=1.0, idle_timeout=2.0, keepalive=None)
        server = Server(
            listen=["coap+tcp://127.0.0.1:0"],
            stream=config,
            stream_limits=StreamLimits(max_per_host=10_000),
        )

        @server.route("/hello")
        def hello(request: Request) -> Response:
            return Response(payload="hi")

        async with server, Client(timeout=5) as client:
            listener = server.listeners[0]
            uri = f"{listener.uri}/hello"
            before = statistics.median(await latencies(client, uri))
            crowd = await asyncio.to_thread(open_crowd, int(listener.uri.rsplit(":", 1)[1]))
            try:
                await asyncio.sleep(0.3)  # let the server accept them all
                assert listener.transport.connection_count >= IDLE + SILENT  # ours too
                during = statistics.median(await latencies(client, uri))
                assert during < max(5 * before, 0.02), (before, during)
                # CSM timeout (1 s) closes the silent ones, the idle timeout (2 s) the rest;
                # our own client keeps using its connection, so it stays.
                deadline = time.monotonic() + 15
                while listener.transport.connection_count > 1:
                    assert time.monotonic() < deadline, listener.transport.connection_count
                    await asyncio.sleep(0.1)
                    await client.get(uri)
            finally:
                for sock in crowd:
                    sock.close()

    run_on(loop, main())
