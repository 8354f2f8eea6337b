"""The Client and Server over every transport at once (RFC 8323 beside RFC 7252).

A user changes only the URI's scheme: one server listens on ``coap://``,
``coap+tcp://``, ``coaps+tcp://`` and ``coap+ws://``, serving one site; one
client reaches each.  On asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coapkit import Client, Code, NetworkError, Request, Response, Server, UriError
from coapkit.resources import Resource
from coapkit.security.tls import TlsCredentials, server_context
from coapkit.trace import DatagramTrace
from tests.runtime.loops import LOOPS, run_on
from tests.security.certs import Pki, make_pki

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Counter(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value))


def make_server(pki: Pki, **kwargs: Any) -> tuple[Server, Counter]:
    listen = [
        "coap://127.0.0.1:0",
        "coap+tcp://127.0.0.1:0",
        "coaps+tcp://127.0.0.1:0",
        "coap+ws://127.0.0.1:0",
    ]
    context = server_context(TlsCredentials(cert=pki.server.cert, key=pki.server.key))
    server = Server(listen=listen, ssl_context=context, **kwargs)
    counter = server.add("/counter", Counter())

    @server.route("/hello")
    def hello(request: Request) -> Response:
        return Response(payload=f"hello from {request.remote.host}")

    @server.route("/echo", methods=("PUT",))
    def echo(request: Request) -> Response:
        return Response(Code.CHANGED, payload=request.payload)

    return server, counter


def test_one_site_on_every_transport(loop: str, pki: Pki) -> None:
    async def main() -> None:
        server, _ = make_server(pki)
        async with server, Client(timeout=5, tls=TlsCredentials(ca=pki.ca)) as client:
            schemes = [listener.scheme for listener in server.listeners]
            assert schemes == ["coap", "coap+tcp", "coaps+tcp", "coap+ws"]
            body = bytes(range(256)) * 12  # 3,072 bytes: block-wise both ways
            for listener in server.listeners:
                assert listener.uri.startswith(f"{listener.scheme}://127.0.0.1:")
                response = await client.get(f"{listener.uri}/hello")
                assert response.code == Code.CONTENT and response.text == "hello from 127.0.0.1"
                echoed = await client.put(f"{listener.uri}/echo", body)
                assert echoed.payload == body
                assert await client.ping(listener.uri) >= 0

    run_on(loop, main())


def test_requests_at_once_to_a_new_origin_share_one_connection(loop: str, pki: Pki) -> None:
    async def main() -> None:
        server, _ = make_server(pki)
        async with server, Client(timeout=5) as client:
            tcp = server.listeners[1]
            answers = await asyncio.gather(*(client.get(f"{tcp.uri}/hello") for _ in range(50)))
            assert {a.code for a in answers} == {Code.CONTENT}
            assert tcp.transport.connection_count == 1

    run_on(loop, main())


def test_observe_over_tcp_ends_on_the_server_when_the_client_goes(loop: str, pki: Pki) -> None:
    async def main() -> None:
        server, counter = make_server(pki)
        async with server:
            tcp = server.listeners[1]
            async with (
                Client(timeout=5) as client,
                client.observe(f"{tcp.uri}/counter") as observation,
            ):
                assert (await anext(observation)).text == "0"
                for value in (1, 2, 3):
                    counter.value = value
                    counter.updated()
                    assert (await asyncio.wait_for(anext(observation), 3)).text == str(value)
                assert tcp.endpoint.observe.registry.count_of(counter) == 1
            # the client closed: its connection is gone and so is the observation (§7)
            for _ in range(100):
                if tcp.endpoint.observe.registry.count_of(counter) == 0:
                    break
                await asyncio.sleep(0.01)
            assert tcp.endpoint.observe.registry.count_of(counter) == 0

    run_on(loop, main())


def test_a_server_that_goes_away_fails_the_requests_on_its_connection(loop: str, pki: Pki) -> None:
    async def main() -> None:
        server = Server(listen=["coap+tcp://127.0.0.1:0"])
        entered = asyncio.Event()

        @server.route("/slow")
        async def slow(request: Request) -> Response:
            entered.set()
            await asyncio.sleep(60)
            return Response(payload="late")

        await server.start()
        uri = f"{server.listeners[0].uri}/slow"
        async with Client(timeout=30) as client:
            pending = asyncio.ensure_future(client.get(uri))
            await asyncio.wait_for(entered.wait(), 3)
            await server.close()
            # the 5.03 of a closing server, or the closed connection: at once, not in 30 s
            try:
                answer = await asyncio.wait_for(pending, 3)
                assert answer.code == Code.SERVICE_UNAVAILABLE
            except NetworkError:
                pass
            with pytest.raises(NetworkError):
                await client.get(uri)

    run_on(loop, main())


def test_coaps_over_udp_says_it_is_not_supported_yet(loop: str, pki: Pki) -> None:
    async def main() -> None:
        async with Client() as client:
            with pytest.raises(UriError, match=r"coaps:// \(CoAP over DTLS\) is not supported yet"):
                await client.get("coaps://127.0.0.1/x")

    run_on(loop, main())


def test_the_trace_reads_connection_frames(loop: str, pki: Pki, tmp_path: Path) -> None:
    lines: list[str] = []

    class Lines(DatagramTrace):
        def __call__(self, direction: str, data: bytes, remote: object) -> None:
            lines.extend(self.lines(direction, data, remote))

    async def main() -> None:
        server, _ = make_server(pki)
        trace = Lines(lambda: 0.0)
        async with server, Client(timeout=5, tracer=trace) as client:
            for listener in server.listeners[1:2] + server.listeners[3:]:
                await client.get(f"{listener.uri}/hello")

    run_on(loop, main())
    assert any(line.startswith("> CSM  token (empty)") for line in lines)
    assert any(line.startswith("<   Max-Message-Size: ") for line in lines)
    assert sum(line.startswith("> GET  token ") for line in lines) == 2
    assert not any("not a CoAP" in line for line in lines)


def test_a_first_large_upload_waits_for_the_csm_and_goes_as_bert(loop: str, pki: Pki) -> None:
    """The client waits for the server's CSM before its first request on a connection
    (RFC 8323 §5.3), so a large first body goes as the server can take it: BERT."""

    async def main() -> None:
        server, _ = make_server(pki)
        async with server, Client(timeout=10) as client:
            tcp = server.listeners[1]
            body = bytes(range(250)) * 240  # 60,000 bytes (the server takes 64 KiB)
            echoed = await client.put(f"{tcp.uri}/echo", body)
            assert echoed.payload == body
            received = tcp.endpoint.messaging.stats.received
            assert received <= 4, received  # before the CSM: 1024-byte blocks, 59 of them

    run_on(loop, main())
