"""BERT (RFC 8323 §6) with libcoap 4.3.1 over ``coap+tcp``, both ways.

libcoap's tools have no BERT option (``coap-client-notls -h`` lists none): both
use BERT on their own when the two CSMs indicate it (Block-Wise-Transfer and a
Max-Message-Size above 1152 bytes, §5.3.2) and no block size is asked for;
``coap-client -b 1024`` asks for plain 1024-byte blocks.  Their CSM announces
8,388,864 bytes and Block-Wise-Transfer.  coapkit announces 66,688 bytes and
Block-Wise-Transfer by default, so a 100,000-byte body takes two BERT messages
each way instead of 98 plain blocks.

What went over the wire is read on the coapkit side, from the driver's tracer
(a TCP read is not a frame: each direction's bytes go through one
:class:`~coapkit.codec.stream.FrameReader`).  What libcoap does that RFC 8323
or RFC 7959 do not say is recorded as PEER DEVIATION where a test meets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from random import Random
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.options import BlockValue
from coapkit.codec.stream import FrameReader
from coapkit.connections import ConnectionLayer, StreamConfig
from coapkit.endpoint import Endpoint
from coapkit.resources import Request, Response, Site
from coapkit.runtime.driver import Driver
from coapkit.transports.tcp import StreamTransport
from tests.interop.peers import libcoap_server, require_libcoap, run_coap_client

pytestmark = pytest.mark.interop

HUGE = b"".join(b"line %04d\n" % n for n in range(10_000))  # 100,000 bytes
ROOMY = BlockwiseConfig(max_body=256 * 1024)  #: takes a 100 kB request body

Blocks = list[tuple[int, BlockValue | None, int]]


class Trace:
    """The messages one driver sent and received over TCP, decoded."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, bytes]] = []

    def __call__(self, direction: str, data: bytes, remote: Any) -> None:
        self.raw.append((direction, data))

    def messages(self, direction: str) -> list[Message]:
        reader = FrameReader(1 << 24)
        decoded: list[Message] = []
        for way, data in self.raw:
            if way == direction:
                decoded.extend(reader.feed(data))
        return [m for m in decoded if m.code >> 5 != 7]  # no signals

    def blocks(self, direction: str, number: str) -> Blocks:
        """(code, Block1 or Block2, payload size) of each message, in order."""
        return [
            (m.code, getattr(m.options, number), len(m.payload)) for m in self.messages(direction)
        ]


class Served:
    """A coap+tcp listener on 127.0.0.1 with /store (GET, PUT) and /huge (100 kB)."""

    def __init__(self) -> None:
        self.site = Site()
        self.store = b""
        self.trace = Trace()

        @self.site.route("/store", methods=("GET", "PUT"))
        def store(request: Request) -> Response:
            if request.method_name == "PUT":
                self.store = request.payload
                return Response(Code.CHANGED)
            return Response(payload=self.store)

        @self.site.route("/huge")
        def huge(request: Request) -> Response:
            return Response(payload=HUGE)

    def handle(self, event: Any) -> Any:
        return self.site.dispatch(Request(event.request, event.remote, event.handle))

    def uri(self, path: str) -> str:
        return f"coap+tcp://127.0.0.1:{self.transport.local_address[1]}{path}"


@asynccontextmanager
async def serving() -> AsyncIterator[Served]:
    require_libcoap()
    served = Served()
    loop = asyncio.get_running_loop()
    endpoint = Endpoint(rng=Random(1), layer=ConnectionLayer(), blockwise=ROOMY)
    served.driver = Driver(endpoint, loop, request_handler=served.handle, tracer=served.trace)
    served.transport = StreamTransport(loop, served.driver)
    served.driver.attach(served.transport)
    await served.transport.listen("127.0.0.1", 0)
    try:
        yield served
    finally:
        await served.driver.close()
        await served.transport.wait_closed()


@asynccontextmanager
async def asking(
    port: int, config: StreamConfig | None = None
) -> AsyncIterator[tuple[Driver, tuple[str, int], Trace]]:
    loop = asyncio.get_running_loop()
    trace = Trace()
    driver = Driver(
        Endpoint(rng=Random(2), layer=ConnectionLayer(config=config)), loop, tracer=trace
    )
    transport = StreamTransport(loop, driver)
    driver.attach(transport)
    address = ("127.0.0.1", port)
    try:
        await transport.connect(address)
        await peer_csm(driver, address)
        yield driver, address, trace
    finally:
        await driver.close()
        await transport.wait_closed()


async def peer_csm(driver: Driver, address: tuple[str, int]) -> None:
    """Wait for the peer's CSM: until it arrives the peer counts as taking 1152 bytes and
    no BERT (RFC 8323 §5.3.1), and a request sent then goes in plain blocks."""
    layer = driver.endpoint.connections
    assert layer is not None
    for _ in range(500):
        connection = layer.connection(address)
        if connection is not None and connection.peer_csm:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no CSM from {address}")


def request(code: int, payload: bytes = b"", **options: Any) -> Message:
    options.setdefault("uri_path", ["example_data"])
    return Message(code=code, options=Options.build(**options), payload=payload)


# -- coap-client-notls asking, coapkit serving ------------------------------------------


async def test_libcoap_uploads_in_bert_blocks(tmp_path: Path) -> None:
    upload = tmp_path / "huge.txt"
    upload.write_bytes(HUGE)
    async with serving() as served:
        put = await run_coap_client("-m", "put", "-f", str(upload), served.uri("/store"))
        assert put.returncode == 0, put.stderr
        assert served.store == HUGE
        # libcoap fills its first BERT block up to our Max-Message-Size (65 blocks), and
        # sends the rest numbered after them; coapkit answers each with szx 7
        assert served.trace.blocks("recv", "block1") == [
            (Code.PUT, BlockValue(0, True, 7), 66_560),
            (Code.PUT, BlockValue(65, False, 7), 33_440),
        ]
        assert served.trace.blocks("send", "block1") == [
            (Code.CONTINUE, BlockValue(0, True, 7), 0),
            (Code.CHANGED, BlockValue(65, False, 7), 0),
        ]
        served.trace.raw.clear()
        # with -b 1024 it sends RFC 7959's plain blocks: 98 of them
        put = await run_coap_client(
            "-m", "put", "-b", "1024", "-f", str(upload), served.uri("/store")
        )
        assert put.returncode == 0, put.stderr
        assert served.store == HUGE
        plain = served.trace.blocks("recv", "block1")
        assert len(plain) == 98
        assert {block.szx for _, block, _ in plain if block} == {6}


async def test_libcoap_downloads_our_bert_blocks() -> None:
    async with serving() as served:
        got = await run_coap_client(served.uri("/huge"))
        assert got.returncode == 0, got.stderr
        assert got.stdout == HUGE + b"\n"  # (coap-client ends its output with a newline)
        # 64 blocks (our max_bert_blocks; libcoap's 8 MiB would take them all), then the
        # rest, which libcoap asks for after everything the first carried, with szx 7
        assert served.trace.blocks("send", "block2") == [
            (Code.CONTENT, BlockValue(0, True, 7), 65_536),
            (Code.CONTENT, BlockValue(64, False, 7), 34_464),
        ]
        assert [block for _, block, _ in served.trace.blocks("recv", "block2")] == [
            None,
            BlockValue(64, False, 7),
        ]
        served.trace.raw.clear()
        got = await run_coap_client("-b", "1024", served.uri("/huge"))
        assert got.stdout == HUGE + b"\n"
        plain = served.trace.blocks("send", "block2")
        assert len(plain) == 98 and {block.szx for _, block, _ in plain if block} == {6}


# -- coapkit asking, coap-server-notls serving ---------------------------------------------


async def test_bert_both_ways_with_libcoaps_server() -> None:
    with libcoap_server() as port:
        async with asking(port) as (driver, address, trace):
            put, _ = await driver.request(request(Code.PUT, HUGE), address)
            # (libcoap answers the first PUT to /example_data 2.01: see test_libcoap_server)
            assert put.code in (Code.CREATED, Code.CHANGED)
            got, _ = await driver.request(request(Code.GET), address)
            assert got.payload == HUGE
    assert trace.blocks("send", "block1")[:2] == [
        (Code.PUT, BlockValue(0, True, 7), 65_536),
        (Code.PUT, BlockValue(64, False, 7), 34_464),
    ]
    # libcoap continues with szx 7; its final answer carries no Block1 (RFC 7959 §2.3's
    # examples echo the last block's; coapkit's client does not need it)
    [(first, continued, _), (final, echoed, _)] = trace.blocks("recv", "block1")[:2]
    assert (first, continued) == (Code.CONTINUE, BlockValue(0, True, 7))
    assert final == put.code and echoed is None
    # down: libcoap fills its BERT blocks up to our Max-Message-Size (65 blocks) unasked,
    # and answers our request for block 65 with the rest
    assert trace.blocks("recv", "block2")[2:] == [
        (Code.CONTENT, BlockValue(0, True, 7), 66_560),
        (Code.CONTENT, BlockValue(65, False, 7), 33_440),
    ]
    assert [block for _, block, _ in trace.blocks("send", "block2")[2:]] == [
        None,
        BlockValue(65, False, 7),
    ]


async def test_without_block_wise_transfer_in_our_csm_libcoap_gets_plain_blocks() -> None:
    with libcoap_server() as port:
        async with asking(port, StreamConfig(block_wise=False)) as (driver, address, trace):
            # PEER DEVIATION (libcoap 4.3.1 coap-server): from a peer whose CSM did not
            # announce Block-Wise-Transfer, a BERT Block1 block (szx 7, M=1, with Size1)
            # is taken for the whole body: 2.01 without Block1, the body cut to that block.
            # Block1 is critical (RFC 7959 §2.1): a server that cannot take it as a block
            # rejects the request (4.02, RFC 7252 §5.4.1) rather than act on one block as
            # if it were the body.
            first = request(Code.PUT, HUGE[:65_536], block1=BlockValue(0, True, 7), size1=len(HUGE))
            cut, _ = await driver.request(first, address)
            assert cut.code in (Code.CREATED, Code.CHANGED) and cut.options.block1 is None
            got, _ = await driver.request(request(Code.GET), address)
            assert got.payload == HUGE[:65_536]
            # which is why coapkit sends BERT only when its own CSM announced it too:
            # without, the body goes in plain blocks and arrives whole
            trace.raw.clear()
            put, _ = await driver.request(request(Code.PUT, HUGE), address)
            assert put.code == Code.CHANGED
            got, _ = await driver.request(request(Code.GET), address)
            assert got.payload == HUGE
    sent = trace.blocks("send", "block1")
    assert len([block for _, block, _ in sent if block]) == 98
    assert {block.szx for _, block, _ in sent if block} == {6}
    # and libcoap, not told that we take BERT, answers in plain blocks too
    received = [block for _, block, _ in trace.blocks("recv", "block2") if block]
    assert len(received) == 98 and {block.szx for block in received} == {6}
