"""CoAP over TCP on real sockets (RFC 8323), driver and transport, on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from random import Random
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.stream import FrameReader, encode_frame
from coapkit.connections import ConnectionLayer, StreamConfig, signals
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError
from coapkit.resources import Request, Response, Site
from coapkit.runtime.driver import Driver
from coapkit.transports.tcp import StreamLimits, StreamTransport
from tests.runtime.loops import LOOPS, run_on

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def make_site() -> Site:
    site = Site()

    @site.route("/hello")
    def hello(request: Any) -> Response:
        return Response(payload="hello")

    @site.route("/echo", methods=("POST",))
    def echo(request: Any) -> Response:
        return Response(Code.CHANGED, payload=request.payload)

    return site


@asynccontextmanager
async def tcp_server(
    config: StreamConfig | None = None,
    limits: StreamLimits | None = None,
    blockwise: BlockwiseConfig | None = None,
) -> AsyncIterator[tuple[Driver, StreamTransport]]:
    site = make_site()
    loop = asyncio.get_running_loop()

    def handler(event: Any) -> Any:
        return site.dispatch(Request(event.request, event.remote, event.handle))

    endpoint = Endpoint(rng=Random(1), layer=ConnectionLayer(config=config), blockwise=blockwise)
    driver = Driver(endpoint, loop, request_handler=handler)
    transport = StreamTransport(loop, driver, limits=limits)
    driver.attach(transport)
    await transport.listen("127.0.0.1", 0)
    try:
        yield driver, transport
    finally:
        await driver.close()


@asynccontextmanager
async def tcp_client(
    config: StreamConfig | None = None,
) -> AsyncIterator[tuple[Driver, StreamTransport]]:
    loop = asyncio.get_running_loop()
    driver = Driver(Endpoint(rng=Random(2), layer=ConnectionLayer(config=config)), loop)
    transport = StreamTransport(loop, driver)
    driver.attach(transport)
    try:
        yield driver, transport
    finally:
        await driver.close()


def get(path: str) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=[path]))


def test_requests_over_one_connection(loop: str) -> None:
    async def main() -> None:
        async with tcp_server() as (_, server), tcp_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
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
            assert server.connection_count == 1 and transport.connection_count == 1

    run_on(loop, main())


def test_a_closed_connection_fails_its_requests_at_once(loop: str) -> None:
    async def main() -> None:
        async with tcp_server() as (_, server), tcp_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            await client.request(get("hello"), address)
            waiting = asyncio.ensure_future(client.request(get("nothing-answers"), address))
            await asyncio.sleep(0)
            # the server goes away with the request unanswered
            for key in list(server._connections):
                server._connections[key].transport.abort()  # type: ignore[union-attr]
            with pytest.raises(NetworkError):
                await asyncio.wait_for(waiting, 3)

    run_on(loop, main())


def test_garbage_aborts_that_connection_only_and_says_why_once(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with tcp_server() as (_, server), tcp_client() as (client, transport):
            address = ("127.0.0.1", server.local_address[1])
            await transport.connect(address)
            reader, writer = await asyncio.open_connection(*address)
            csm = signals.csm(1152, False)
            writer.write(encode_frame(csm.code, b"", csm.options, b"") + bytes.fromhex("0f0f0f"))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 3)  # read until the server closes
            messages = FrameReader(65536).feed(data)
            assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
            assert b"token length 15" in messages[-1].payload
            writer.close()
            response, _ = await client.request(get("hello"), address)  # others go on
            assert response.payload == b"hello"

    with caplog.at_level(logging.WARNING, logger="coapkit.runtime"):
        run_on(loop, main())
    lines = [r.getMessage() for r in caplog.records if "token length 15" in r.getMessage()]
    assert len(lines) == 1


def test_a_peer_that_never_sends_its_csm_is_closed(loop: str) -> None:
    async def main() -> None:
        async with tcp_server(StreamConfig(csm_timeout=0.3)) as (_, server):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.local_address[1])
            started = time.monotonic()
            data = await asyncio.wait_for(reader.read(), 3)
            assert 0.25 < time.monotonic() - started < 2
            messages = FrameReader(65536).feed(data)
            assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
            assert server.connection_count == 0
            writer.close()

    run_on(loop, main())


def test_connections_beyond_the_limits_are_refused(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        limits = StreamLimits(max_connections=100, max_per_host=3)
        async with tcp_server(limits=limits) as (_, server):
            port = server.local_address[1]
            streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            await asyncio.sleep(0.1)
            assert server.connection_count == 3 and server.refused == 2
            refused = 0
            for reader, writer in streams:
                try:
                    data = await asyncio.wait_for(reader.read(), 0.5)
                except TimeoutError:
                    data = b"open"  # still open: it was accepted (its CSM came, then silence)
                except ConnectionResetError:
                    data = b""
                refused += data == b""
                writer.close()
            assert refused == 2

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1  # once per host


def test_connecting_to_a_closed_port_is_a_network_error(loop: str) -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with tcp_client() as (_, transport):
            with pytest.raises(NetworkError, match="refused"):
                await transport.connect(("127.0.0.1", port))

    run_on(loop, main())


@pytest.mark.parametrize(
    ("client_config", "messages"),
    [
        # both CSMs announce Block-Wise-Transfer: BERT.  Up, 64 blocks and then 36; down, a
        # 2.31, the first 64 blocks of the echo with the final response, the 36 others
        (None, 3),
        # the client's does not: RFC 7959's 1024-byte blocks, 100 each way, each side
        # sending its blocks and answers to (or requests for) the other's
        (StreamConfig(block_wise=False), 199),
    ],
)
def test_a_100_kb_body_both_ways_in_bert_blocks(
    loop: str, client_config: StreamConfig | None, messages: int
) -> None:
    async def main() -> None:
        roomy = BlockwiseConfig(max_body=256 * 1024)
        async with (
            tcp_server(blockwise=roomy) as (server, listener),
            tcp_client(client_config) as (client, transport),
        ):
            address = ("127.0.0.1", listener.local_address[1])
            await transport.connect(address)
            # what the server takes is known from its CSM: wait for it (until then the
            # client counts on 1152 bytes and no BERT, RFC 8323 §5.3.1)
            layer = client.endpoint.connections
            assert layer is not None
            for _ in range(300):
                if getattr(layer.connection(address), "peer_csm", False):
                    break
                await asyncio.sleep(0.01)
            assert len(client.endpoint.bert_peers) == (client_config is None)
            body = bytes(range(256)) * 400  # 102,400 bytes: 100 blocks of 1024
            post = Message(code=Code.POST, options=Options.build(uri_path=["echo"]), payload=body)
            response, _ = await client.request(post, address)
            assert response.code == Code.CHANGED and response.payload == body
            for driver in (client, server):
                layer = driver.endpoint.connections
                assert layer is not None and layer.stats.sent == messages

    run_on(loop, main())
