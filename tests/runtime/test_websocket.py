"""CoAP over WebSockets on real sockets (RFC 8323 §4), driver and transport, on asyncio and
uvloop.

The peers that misbehave are written with the websockets library directly (a
client that sends a text message, garbage, no CSM, too much, or offers the
wrong subprotocol), so that what goes over the wire is exactly what the test
says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from random import Random
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.codec.stream import decode_ws, encode_ws
from coapkit.connections import ConnectionLayer, StreamConfig, signals
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError
from coapkit.resources import Request, Response, Site
from coapkit.runtime.driver import Driver
from coapkit.transports.tcp import StreamLimits
from tests.runtime.loops import LOOPS, run_on

if os.environ.get("CI") == "true":
    import websockets  # the test extra has it: never skipped in CI
else:
    websockets = pytest.importorskip("websockets")

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from coapkit.transports.websocket import PATH, SUBPROTOCOL, WebSocketTransport

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def make_site() -> Site:
    site = Site()

    @site.route("/hello")
    def hello(request: Any) -> Response:
        return Response(payload="hello")

    @site.route("/echo", methods=("POST",))
    def echo(request: Any) -> Response:
        return Response(Code.CHANGED, payload=request.payload)

    @site.route("/big")
    def big(request: Any) -> Response:
        return Response(payload=bytes(60_000))

    return site


@asynccontextmanager
async def ws_server(
    config: StreamConfig | None = None,
    limits: StreamLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[Driver, WebSocketTransport]]:
    site = make_site()
    loop = asyncio.get_running_loop()
    config = config or StreamConfig()

    def handler(event: Any) -> Any:
        return site.dispatch(Request(event.request, event.remote, event.handle))

    endpoint = Endpoint(rng=Random(1), layer=ConnectionLayer(config=config))
    driver = Driver(endpoint, loop, request_handler=handler)
    transport = WebSocketTransport(
        loop,
        driver,
        limits=limits,
        ssl_context=ssl_context,
        max_message_size=config.max_message_size,
    )
    driver.attach(transport)
    await transport.listen("127.0.0.1", 0)
    try:
        yield driver, transport
    finally:
        await driver.close()
        await transport.wait_closed()


@asynccontextmanager
async def ws_client(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[Driver, WebSocketTransport]]:
    loop = asyncio.get_running_loop()
    driver = Driver(Endpoint(rng=Random(2), layer=ConnectionLayer()), loop)
    transport = WebSocketTransport(loop, driver, ssl_context=ssl_context)
    driver.attach(transport)
    try:
        yield driver, transport
    finally:
        await driver.close()
        await transport.wait_closed()


def get(path: str) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=[path]))


def uri(server: WebSocketTransport, path: str = PATH) -> str:
    return f"ws://127.0.0.1:{server.local_address[1]}{path}"


def csm_message(max_message_size: int = 1152) -> bytes:
    csm = signals.csm(max_message_size, False)
    return encode_ws(csm.code, b"", csm.options, b"")


async def read_until_closed(ws: ClientConnection) -> tuple[list[Message], int | None]:
    """The CoAP messages a raw client reads until the server closes, and the close code."""
    messages = []
    try:
        while True:
            data = await asyncio.wait_for(ws.recv(), 3)
            assert isinstance(data, bytes), "the server sends binary messages only"
            messages.append(decode_ws(data))
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd is not None else None


def test_requests_over_one_connection(loop: str) -> None:
    async def main() -> None:
        async with ws_server() as (_, server), ws_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            assert transport.is_connected(address)
            response, _ = await client.request(get("hello"), address)
            assert response.payload == b"hello"
            posts = [
                client.request(
                    Message(
                        code=Code.POST, options=Options.build(uri_path=["echo"]), payload=b"%d" % n
                    ),
                    address,
                )
                for n in range(100)
            ]
            answers = await asyncio.gather(*posts)
            assert [r.payload for r, _ in answers] == [b"%d" % n for n in range(100)]
            big, _ = await client.request(get("big"), address)  # 60 kB, block-wise
            assert big.payload == bytes(60_000)
            assert server.connection_count == 1 and transport.connection_count == 1

    run_on(loop, main())


def test_what_goes_over_the_wire(loop: str) -> None:
    """One binary message per CoAP message, Len 0 (RFC 8323 §4.2), CSM first both ways,
    subprotocol coap."""

    async def main() -> None:
        async with (
            ws_server() as (_, server),
            connect(uri(server), subprotocols=[SUBPROTOCOL]) as ws,
        ):
            assert ws.subprotocol == "coap"
            first = await asyncio.wait_for(ws.recv(), 3)
            assert isinstance(first, bytes) and first[0] >> 4 == 0  # Len 0
            assert decode_ws(first).code == signals.CSM
            await ws.send(csm_message())
            request = get("hello")
            await ws.send(encode_ws(request.code, b"\x01\x02", request.options, b""))
            data = await asyncio.wait_for(ws.recv(), 3)
            assert isinstance(data, bytes) and data[0] == 0x02  # Len 0, TKL 2
            response = decode_ws(data)
            assert (response.code, response.token, response.payload) == (
                Code.CONTENT,
                b"\x01\x02",
                b"hello",
            )

    run_on(loop, main())


def test_a_closed_connection_fails_its_requests_at_once(loop: str) -> None:
    async def main() -> None:
        async with ws_server() as (_, server), ws_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            await client.request(get("hello"), address)
            waiting = asyncio.ensure_future(client.request(get("nothing-answers"), address))
            await asyncio.sleep(0)
            # the server goes away with the request unanswered
            for link in list(server._connections.values()):
                link.ws.transport.abort()
            started = time.monotonic()
            with pytest.raises(NetworkError, match="WebSocket connection was closed"):
                await asyncio.wait_for(waiting, 3)
            assert time.monotonic() - started < 1
            assert transport.connection_count == 0 and not transport.is_connected(address)

    run_on(loop, main())


def test_garbage_aborts_that_connection_only_and_says_why_once(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with ws_server() as (_, server), ws_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            async with connect(uri(server), subprotocols=[SUBPROTOCOL]) as ws:
                await ws.send(csm_message())
                await ws.send(bytes.fromhex("0f0f0f"))  # token length 15
                messages, code = await read_until_closed(ws)
            assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
            assert b"token length 15" in messages[-1].payload
            assert code == 1002  # protocol error, after the CoAP Abort
            response, _ = await client.request(get("hello"), address)  # others go on
            assert response.payload == b"hello"

    with caplog.at_level(logging.WARNING):
        run_on(loop, main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "token length 15" in lines[0]


def test_a_text_message_aborts_that_connection_only_and_says_why_once(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with ws_server() as (_, server), ws_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            async with connect(uri(server), subprotocols=[SUBPROTOCOL]) as ws:
                await ws.send(csm_message())
                await ws.send("GET /hello")  # a text message
                messages, code = await read_until_closed(ws)
            assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
            assert b"binary messages only" in messages[-1].payload
            assert code == 1003  # unsupported data
            assert server.connection_count == 1  # the client's only
            response, _ = await client.request(get("hello"), address)
            assert response.payload == b"hello"

    with caplog.at_level(logging.WARNING):
        run_on(loop, main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "a text message" in lines[0]


def test_a_peer_that_never_sends_its_csm_is_closed(loop: str) -> None:
    async def main() -> None:
        async with ws_server(StreamConfig(csm_timeout=0.3)) as (_, server):
            async with connect(uri(server), subprotocols=[SUBPROTOCOL]) as ws:
                started = time.monotonic()
                messages, code = await read_until_closed(ws)
                assert 0.25 < time.monotonic() - started < 2
            assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
            assert b"no CSM" in messages[-1].payload
            assert code == 1002
            await asyncio.sleep(0.05)
            assert server.connection_count == 0

    run_on(loop, main())


def test_a_message_larger_than_max_message_size_closes_with_1009(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with ws_server(StreamConfig(max_message_size=2000)) as (_, server):
            async with connect(uri(server), subprotocols=[SUBPROTOCOL], max_size=None) as ws:
                csm = decode_ws(await asyncio.wait_for(ws.recv(), 3))
                assert csm.options.items == (
                    (signals.MAX_MESSAGE_SIZE, (2000).to_bytes(2)),
                    (signals.BLOCK_WISE_TRANSFER, b""),
                )
                await ws.send(csm_message(4096))
                post = Message(code=Code.POST, options=Options.build(uri_path=["echo"]))
                await ws.send(encode_ws(post.code, b"", post.options, bytes(1990)))  # 1997 B
                answer = decode_ws(await asyncio.wait_for(ws.recv(), 3))
                assert answer.code == Code.CHANGED  # taken (the echo comes block-wise)
                await ws.send(encode_ws(post.code, b"", post.options, bytes(1995)))  # 2002 B
                messages, code = await read_until_closed(ws)
            assert messages == [] and code == 1009  # message too big
            await asyncio.sleep(0.05)
            assert server.connection_count == 0

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "too big" in lines[0]


def test_connections_beyond_the_limits_are_refused(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        limits = StreamLimits(max_connections=100, max_per_host=3)
        async with ws_server(limits=limits) as (_, server):
            # a TCP connection counts from its accept, before any handshake
            idle = socket.create_connection(("127.0.0.1", server.local_address[1]))
            await asyncio.sleep(0.05)
            opened: list[ClientConnection] = []
            failed = 0
            for _ in range(4):
                try:
                    opened.append(
                        await connect(uri(server), subprotocols=[SUBPROTOCOL], open_timeout=3)
                    )
                except (OSError, ConnectionClosed, websockets.exceptions.InvalidHandshake):
                    failed += 1
            assert (len(opened), failed) == (2, 2)
            assert server.connection_count == 2 and server.refused == 2
            idle.close()
            await asyncio.sleep(0.05)
            again = await connect(uri(server), subprotocols=[SUBPROTOCOL], open_timeout=3)
            for ws in [*opened, again]:
                await ws.close()

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1  # once per host


def test_wrong_subprotocol_or_path_is_refused(loop: str) -> None:
    async def main() -> None:
        async with ws_server() as (_, server):
            for protocols, path, status in [
                (None, PATH, 400),  # no subprotocol offered: RFC 8323 §4.1 requires coap
                (["mqtt"], PATH, 400),
                (["coap"], "/", 404),
                (["coap"], "/.well-known/core", 404),
            ]:
                with pytest.raises(InvalidStatus) as refused:
                    await connect(uri(server, path), subprotocols=protocols)
                assert refused.value.response.status_code == status
            assert server.connection_count == 0
            # offering coap among others is fine
            async with connect(uri(server), subprotocols=["mqtt", "coap"]) as ws:
                assert ws.subprotocol == "coap"

    run_on(loop, main())


def test_a_server_that_does_not_pick_coap_is_refused(loop: str) -> None:
    async def main() -> None:
        async def nothing(ws: Any) -> None:
            await ws.wait_closed()

        # a WebSocket server that knows no subprotocol accepts without picking one
        async with serve(nothing, "127.0.0.1", 0) as plain, ws_client() as (_, transport):
            port = plain.sockets[0].getsockname()[1]
            with pytest.raises(NetworkError, match="did not accept the subprotocol coap"):
                await transport.connect(("127.0.0.1", port))
            assert transport.connection_count == 0

    run_on(loop, main())


def test_our_client_reports_a_refused_handshake(loop: str) -> None:
    async def main() -> None:
        async def nothing(ws: Any) -> None:
            await ws.wait_closed()

        def not_found(connection: Any, request: Any) -> Any:
            return connection.respond(404, "no\n")

        async with (
            serve(nothing, "127.0.0.1", 0, process_request=not_found) as plain,
            ws_client() as (_, transport),
        ):
            port = plain.sockets[0].getsockname()[1]
            with pytest.raises(NetworkError, match=r"refused \(HTTP 404"):
                await transport.connect(("127.0.0.1", port))

    run_on(loop, main())


def test_an_idle_connection_is_released_with_close_code_1000(loop: str) -> None:
    async def main() -> None:
        config = StreamConfig(idle_timeout=0.3)
        async with ws_server(config) as (_, server):
            async with connect(uri(server), subprotocols=[SUBPROTOCOL]) as ws:
                await ws.send(csm_message())
                messages, code = await read_until_closed(ws)
            assert [m.code for m in messages] == [signals.CSM, signals.RELEASE]
            assert code == 1000

    run_on(loop, main())


def test_a_peer_that_does_not_read_is_aborted(loop: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        limits = StreamLimits(max_write_buffer=100_000)
        async with ws_server(limits=limits) as (_, server):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.local_address[1]))
            sock.setblocking(False)
            # max_queue=1: the raw client stops reading its socket after one message
            ws = await connect(uri(server), subprotocols=[SUBPROTOCOL], max_queue=1, sock=sock)
            try:
                [link] = server._connections.values()
                server_socket = link.ws.transport.get_extra_info("socket")
                server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                await ws.send(csm_message())
                request = get("big")  # 1 kB blocks: 300 kB of answers it never reads
                for n in range(300):
                    await ws.send(encode_ws(request.code, n.to_bytes(2), request.options, b""))
                for _ in range(100):
                    if server.write_overflows:
                        break
                    await asyncio.sleep(0.05)
                assert server.write_overflows == 1
                await asyncio.sleep(0.05)
                assert server.connection_count == 0
            finally:
                # (not closed politely: on uvloop a client that stopped reading does not
                # see the server's reset, and would wait out its close timeout)
                ws.transport.abort()

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    assert [r for r in caplog.records if "does not read" in r.getMessage()]


def test_connecting_to_a_closed_port_is_a_network_error(loop: str) -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with ws_client() as (_, transport):
            with pytest.raises(NetworkError, match="refused"):
                await transport.connect(("127.0.0.1", port))

    run_on(loop, main())


def test_concurrent_connects_to_one_origin_share_the_connection(loop: str) -> None:
    async def main() -> None:
        async with ws_server() as (_, server), ws_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await asyncio.gather(*(transport.connect(address) for _ in range(5)))
            assert transport.connection_count == 1
            await asyncio.sleep(0.05)
            assert server.connection_count == 1
            response, _ = await client.request(get("hello"), address)
            assert response.payload == b"hello"

    run_on(loop, main())


# -- TLS (coaps+ws) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (made with openssl)."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is needed for the TLS tests")
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


def test_tls(loop: str, certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with (
            ws_server(ssl_context=server_context) as (_, server),
            ws_client(ssl_context=client_context) as (client, transport),
        ):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address, server_hostname="localhost")
            response, _ = await client.request(get("hello"), address)
            assert response.payload == b"hello"
            link = next(iter(transport._connections.values()))
            assert link.ws.transport.get_extra_info("ssl_object") is not None
            assert link.ws.request is not None and link.ws.request.headers["Host"].startswith(
                "localhost:"
            )
        # a client that does not trust the certificate
        async with (
            ws_server(ssl_context=server_context) as (_, server),
            ws_client(ssl_context=ssl.create_default_context()) as (_, transport),
        ):
            address = ("127.0.0.1", server.local_address[1])
            with pytest.raises(NetworkError, match="TLS handshake failed"):
                await transport.connect(address, server_hostname="localhost")

    run_on(loop, main())
