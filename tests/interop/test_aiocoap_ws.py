"""aiocoap 0.4.17 over CoAP over WebSockets (RFC 8323 §4), both ways.

aiocoap's ``ws`` extra wants ``websockets`` older than 16, older than the one
coapkit's tests use, so aiocoap runs in a virtual environment of its own,
made once by the session fixture ``aiocoap_ws`` (``python -m venv`` and ``pip
install 'aiocoap[ws]==0.4.17'``) in the user's cache directory and reused
afterwards.  Where the package index cannot be reached the tests are skipped
and say why; in CI (``CI=true``) that is a failure.

* aiocoap as the server: ``aiocoap_ws_peer.py`` (next to this file) run with
  that environment's Python, only its ``ws`` transport enabled, on a free
  loopback port; the coapkit side is a Driver over the client side of
  :class:`~coapkit.transports.websocket.WebSocketTransport`, as the Client
  will drive it.
* aiocoap as the client: ``aiocoap-client coap+ws://127.0.0.1:PORT/...``
  against a Driver over the server side of the transport (the Server is not
  wired to connections yet; ``/counter``'s Observe bookkeeping is done here
  with the endpoint's own calls, as the Server does it).

Block-wise transfers go both ways in RFC 7959's 1024-byte blocks when our CSM
does not announce Block-Wise-Transfer, and in BERT blocks (RFC 8323 §6) when it
does (the default) and the body is larger than one message.  aiocoap chooses
its Block1 size before it has seen our CSM; the tests that look at that hold
our CSM back until its first request (:class:`LateCsmEndpoint`), so that they
see the same thing every time.

Where aiocoap departs from RFC 8323, the test that meets it says so in a
comment starting ``DEVIATION`` and asserts what aiocoap actually does, so that
a fixed aiocoap shows up as a failing assertion to update.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from random import Random
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.options import BlockValue
from coapkit.codec.stream import decode_ws, encode_ws
from coapkit.connections import ConnectionLayer, StreamConfig, signals
from coapkit.endpoint import Endpoint, Output
from coapkit.errors import NetworkError
from coapkit.resources import Request, Response, Site
from coapkit.runtime.driver import Driver
from tests.interop.peers import aiocoap_venv, free_tcp_port

if os.environ.get("CI") == "true":
    import websockets  # the test extra has it
else:
    websockets = pytest.importorskip("websockets")

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from coapkit.transports.websocket import SUBPROTOCOL, WebSocketTransport

pytestmark = pytest.mark.interop

AIOCOAP_VERSION = "0.4.17"
HERE = Path(__file__).parent
BIG = bytes(range(256)) * 11 + bytes(184)  # as aiocoap_ws_peer.py serves at /big
OBSERVE = 6


# -- aiocoap's own virtual environment ---------------------------------------------------------


@pytest.fixture(scope="session")
def aiocoap_ws() -> Path:
    """The ``bin`` directory of a virtual environment with ``aiocoap[ws]==0.4.17``."""
    return aiocoap_venv("ws", AIOCOAP_VERSION)


@pytest.fixture(scope="module")
def aiocoap_server(aiocoap_ws: Path) -> Iterator[int]:
    """aiocoap_ws_peer.py listening for CoAP over WebSockets; yields its port."""
    port = free_tcp_port()
    process = subprocess.Popen(
        [str(aiocoap_ws / "python"), str(HERE / "aiocoap_ws_peer.py"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        readable, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if readable else ""
        assert line.strip() == f"ready {port}", f"aiocoap did not start: {line!r}"
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


# -- the coapkit side ---------------------------------------------------------------------------


class Trace:
    """The CoAP messages one driver sent and received, decoded (one WebSocket message each)."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, bytes]] = []

    def __call__(self, direction: str, data: bytes, remote: Any) -> None:
        self.raw.append((direction, data))

    def messages(self, direction: str) -> list[Message]:
        return [decode_ws(data) for d, data in self.raw if d == direction]


@asynccontextmanager
async def coapkit_client(
    config: StreamConfig | None = None, blockwise: BlockwiseConfig | None = None
) -> AsyncIterator[tuple[Driver, WebSocketTransport, Trace]]:
    loop = asyncio.get_running_loop()
    trace = Trace()
    endpoint = Endpoint(rng=Random(7), layer=ConnectionLayer(config=config), blockwise=blockwise)
    driver = Driver(endpoint, loop, tracer=trace)
    transport = WebSocketTransport(loop, driver)
    driver.attach(transport)
    try:
        yield driver, transport, trace
    finally:
        await driver.close()
        await transport.wait_closed()


def request(code: Code, path: str, payload: bytes = b"", **options: Any) -> Message:
    return Message(
        code=code, options=Options.build(uri_path=path.split("/"), **options), payload=payload
    )


def csm_message(max_message_size: int = 1152) -> bytes:
    csm = signals.csm(max_message_size, False)
    return encode_ws(csm.code, b"", csm.options, b"")


async def read_until_closed(ws: ClientConnection) -> tuple[list[Message], int | None]:
    messages = []
    try:
        while True:
            data = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(data, bytes)
            messages.append(decode_ws(data))
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd is not None else None


# -- coapkit's client, aiocoap's server -----------------------------------------------------------


async def test_get_put_and_what_aiocoap_understood(aiocoap_server: int) -> None:
    address = ("127.0.0.1", aiocoap_server)
    async with coapkit_client() as (client, transport, trace):
        await transport.connect(address)
        text, _ = await client.request(request(Code.GET, "text"), address)
        assert (text.code, text.payload, text.options.content_format) == (
            Code.CONTENT,
            b"hello from aiocoap",
            0,
        )
        put, _ = await client.request(request(Code.PUT, "store", b"\x00over ws\xff"), address)
        got, _ = await client.request(request(Code.GET, "store"), address)
        assert put.code == Code.CHANGED and got.payload == b"\x00over ws\xff"
        seen, _ = await client.request(request(Code.GET, "seen"), address)
        assert json.loads(seen.payload) == {
            "uri_host": None,  # an IP literal: the Host header's default suffices (§8.5)
            "scheme": "coap+ws",
            # our CSM, as aiocoap read it: Block-Wise-Transfer with a Max-Message-Size
            # above 1152 bytes, which says that we take BERT (RFC 8323 §5.3.2)
            "peer_csm": {
                "max-message-size": StreamConfig().max_message_size,
                "block-wise-transfer": True,
            },
            "hostinfo_local": f"127.0.0.1:{aiocoap_server}",
        }
        assert transport.connection_count == 1  # every request over the one connection
    # aiocoap's CSM came first: Max-Message-Size 1 MiB (its websockets max_size) and
    # Block-Wise-Transfer; every message it sent had Len 0 (§4.2)
    received = trace.messages("recv")
    assert received[0].code == signals.CSM
    assert received[0].options.items == (
        (signals.MAX_MESSAGE_SIZE, (1 << 20).to_bytes(3)),
        (signals.BLOCK_WISE_TRANSFER, b""),
    )
    assert all(data[0] >> 4 == 0 for d, data in trace.raw if d == "recv")
    assert trace.messages("send")[0].code == signals.CSM


async def test_block_wise_both_ways(aiocoap_server: int) -> None:
    """Without Block-Wise-Transfer in our CSM: RFC 7959's 1024-byte blocks both ways."""
    address = ("127.0.0.1", aiocoap_server)
    async with coapkit_client(StreamConfig(block_wise=False)) as (client, transport, trace):
        await transport.connect(address)
        big, _ = await client.request(request(Code.GET, "big"), address)
        assert big.payload == BIG
        blocks = [m for m in trace.messages("recv") if m.options.block2 is not None]
        # aiocoap sends 1024-byte blocks: our CSM announced no Block-Wise-Transfer, so
        # no BERT (§6), although it could take 64 kB in one message
        assert [len(m.payload) for m in blocks] == [1024, 1024, 952]
        body = bytes(range(200)) * 25  # 5000 bytes
        put, _ = await client.request(request(Code.PUT, "store", body), address)
        assert put.code == Code.CHANGED
        got, _ = await client.request(request(Code.GET, "store"), address)
        assert got.payload == body
        puts = [m for m in trace.messages("send") if m.code == Code.PUT]
        # nor do we send BERT, though aiocoap's CSM (1 MiB, Block-Wise-Transfer) says it
        # takes it: BERT wants both CSMs to say so; aiocoap reassembles the 1 kB blocks
        assert [len(m.payload) for m in puts] == [1024, 1024, 1024, 1024, 904]


async def test_bert_both_ways(aiocoap_server: int) -> None:
    """Both CSMs announce Block-Wise-Transfer: a 100 kB body goes in two BERT blocks each
    way (RFC 8323 §6), and a 3000-byte one in one message."""
    address = ("127.0.0.1", aiocoap_server)
    body = bytes(range(200)) * 500  # 100,000 bytes
    async with coapkit_client() as (client, transport, trace):
        await transport.connect(address)
        big, _ = await client.request(request(Code.GET, "big"), address)
        assert big.payload == BIG
        [whole] = [m for m in trace.messages("recv") if m.code == Code.CONTENT]
        assert whole.options.block2 is None  # our 66,688 bytes take it: no blocks
        trace.raw.clear()
        put, _ = await client.request(request(Code.PUT, "store", body), address)
        assert put.code == Code.CHANGED
        got, _ = await client.request(request(Code.GET, "store"), address)
        assert got.payload == body
    sent = [m for m in trace.messages("send") if m.code >> 5 != 7]
    received = [m for m in trace.messages("recv") if m.code >> 5 != 7]
    # up: 64 blocks (our max_bert_blocks; aiocoap's 1 MiB would take more), then the rest;
    # aiocoap continues with szx 7 and echoes the last block number with the 2.04
    assert [(m.code, m.options.block1, len(m.payload)) for m in sent[:2]] == [
        (Code.PUT, BlockValue(0, True, 7), 65_536),
        (Code.PUT, BlockValue(64, False, 7), 34_464),
    ]
    assert [(m.code, m.options.block1) for m in received[:2]] == [
        (Code.CONTINUE, BlockValue(0, True, 7)),
        (Code.CHANGED, BlockValue(64, False, 7)),
    ]
    # down: aiocoap fills its BERT blocks up to our Max-Message-Size less 128 bytes
    # (65 blocks), unasked, and answers our request for block 65 with the rest
    assert [(m.options.block2, len(m.payload)) for m in received[2:]] == [
        (BlockValue(0, True, 7), 66_560),
        (BlockValue(65, False, 7), 33_440),
    ]
    assert [m.options.block2 for m in sent[2:]] == [None, BlockValue(65, False, 7)]


async def test_observe(aiocoap_server: int) -> None:
    address = ("127.0.0.1", aiocoap_server)
    async with coapkit_client() as (client, transport, trace):
        await transport.connect(address)
        stream = client.open_stream(request(Code.GET, "counter", observe=0), address)
        values = []
        for _ in range(4):
            item = await asyncio.wait_for(stream.next(), 5)
            assert item is not None
            response, _ = item
            assert response.code == Code.CONTENT
            values.append(int(response.payload))
        assert values == sorted(values) and len(set(values)) == 4
        observe_values = [
            m.options.observe for m in trace.messages("recv") if m.options.observe is not None
        ]
        # aiocoap numbers its notifications as over UDP; over a reliable transport the
        # value MAY be empty and MUST be ignored (RFC 8323 §7.1), which coapkit does
        assert len(observe_values) >= 4
        assert stream.handle is not None
        client.cancel(stream.handle)
        await asyncio.sleep(0.3)
        # coapkit deregisters with a GET carrying Observe 1 (RFC 7641 §3.6: no RST over
        # a reliable transport), and nothing more arrives after aiocoap's answer to it
        deregistration = [m for m in trace.messages("send") if m.options.observe == 1]
        assert len(deregistration) == 1
        count = len(trace.raw)
        await asyncio.sleep(0.3)
        assert len(trace.raw) == count


async def test_keepalive_ping_and_idle_release(aiocoap_server: int) -> None:
    address = ("127.0.0.1", aiocoap_server)
    config = StreamConfig(keepalive=0.2, ping_timeout=1.0, idle_timeout=0.7)
    async with coapkit_client(config) as (client, transport, trace):
        await transport.connect(address)
        await client.request(request(Code.GET, "text"), address)
        for _ in range(50):
            if not transport.is_connected(address):
                break
            await asyncio.sleep(0.05)
        codes = [m.code for m in trace.messages("send")]
        # Pings went out while the connection was idle and aiocoap answered each with a
        # Pong (7.03, §5.4), so the connection was not aborted; then released as idle
        assert signals.PING in codes and codes[-1] == signals.RELEASE
        pongs = [m for m in trace.messages("recv") if m.code == signals.PONG]
        assert pongs and all(m.token == b"" for m in pongs)
        assert signals.ABORT not in codes
        assert not transport.is_connected(address)  # aiocoap closed after our Release


async def test_a_refused_path_is_a_network_error(aiocoap_server: int) -> None:
    # DEVIATION (not of RFC 8323 itself, which defines only /.well-known/coap): aiocoap
    # means to answer a handshake for another path with 404, but its process_request
    # returns the legacy (status, headers, body) tuple that websockets' asyncio server
    # does not take, so the TCP connection is dropped with no HTTP response at all
    with pytest.raises(InvalidMessage, match="did not receive a valid HTTP response"):
        await connect(f"ws://127.0.0.1:{aiocoap_server}/elsewhere", subprotocols=[SUBPROTOCOL])


async def test_a_handshake_without_the_coap_subprotocol_is_refused(aiocoap_server: int) -> None:
    for protocols in (None, ["mqtt"]):
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                f"ws://127.0.0.1:{aiocoap_server}/.well-known/coap", subprotocols=protocols
            )
        assert refused.value.response.status_code == 400  # as RFC 8323 §4.1 wants


async def test_aiocoap_answers_an_empty_message(aiocoap_server: int) -> None:
    async with connect(
        f"ws://127.0.0.1:{aiocoap_server}/.well-known/coap", subprotocols=[SUBPROTOCOL]
    ) as ws:
        await ws.send(csm_message())
        await ws.send(b"\x01\x00\x05")  # 0.00 with token 05
        csm = decode_ws(await asyncio.wait_for(ws.recv(), 5))
        answer = decode_ws(await asyncio.wait_for(ws.recv(), 5))
    assert csm.code == signals.CSM
    # DEVIATION: an Empty message (0.00) MUST be ignored over reliable transports
    # (RFC 8323 §3.4, §5.4: it is the basic keep-alive); aiocoap takes it for a request
    # and answers 4.04 Not Found with its token
    assert (answer.code, answer.token) == (Code.NOT_FOUND, b"\x05")


async def test_aiocoap_on_a_request_before_the_csm(aiocoap_server: int) -> None:
    async with connect(
        f"ws://127.0.0.1:{aiocoap_server}/.well-known/coap", subprotocols=[SUBPROTOCOL]
    ) as ws:
        get = request(Code.GET, "text")
        await ws.send(encode_ws(get.code, b"\x01", get.options, b""))
        messages, code = await read_until_closed(ws)
    # DEVIATION: a peer whose first message is not its CSM breaks RFC 8323 §4.3 ("both
    # endpoints MUST send a CSM as their first message"); aiocoap means to Abort with
    # "No CSM received", but its receive loop ends before the Abort goes out and the
    # WebSocket closes normally (1000): the Abort and its diagnostic payload (§5.6)
    # never arrive
    assert [m.code for m in messages] == [signals.CSM]
    assert code == 1000


async def test_aiocoap_on_a_text_message_and_on_garbage(aiocoap_server: int) -> None:
    uri = f"ws://127.0.0.1:{aiocoap_server}/.well-known/coap"
    async with connect(uri, subprotocols=[SUBPROTOCOL]) as ws:
        await ws.send(csm_message())
        await ws.send("GET /text")
        messages, code = await read_until_closed(ws)
    # as coapkit does: an Abort naming the fault, then close code 1003 (unsupported data)
    assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
    assert (messages[-1].payload, code) == (b"Text frame received", 1003)
    async with connect(uri, subprotocols=[SUBPROTOCOL]) as ws:
        await ws.send(csm_message())
        await ws.send(b"\x0f\x0f\x0f")  # token length 15
        messages, code = await read_until_closed(ws)
    # an Abort (§5.6), then 1007 (coapkit closes with 1002 after an Abort; RFC 8323 names
    # no close code)
    assert [m.code for m in messages] == [signals.CSM, signals.ABORT]
    assert (messages[-1].payload, code) == (b"Message parsing error", 1007)


# -- aiocoap's client, coapkit's server -----------------------------------------------------------


COUNTER = object()  #: the observable resource's key in the endpoint's observe registry
BIG_TEXT = b"0123456789abcdef" * 187 + b"!!!!!!!!"  # 3000 bytes of text
HUGE_TEXT = b"".join(b"line %04d\n" % n for n in range(10_000))  # 100,000 bytes of text
ROOMY = BlockwiseConfig(max_body=256 * 1024)  #: takes a 100 kB request body


class LateCsmEndpoint(Endpoint):
    """An endpoint whose CSM goes out only with its answer to the peer's first request.

    On loopback our CSM usually reaches aiocoap before it starts a request, but not
    always; holding the CSM back until a request has arrived makes the other case (the
    peer chose its block size knowing nothing of us) happen every time.  The CSM is
    still the first message we send (RFC 8323 §5.3).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.held: dict[Any, list[tuple[bytes, Any]]] = {}

    def connection_made(self, remote: Any, now: float, *, websocket: bool = False) -> Output:
        output = super().connection_made(remote, now, websocket=websocket)
        self.held[remote] = output.datagrams[:]
        output.datagrams.clear()
        return output

    def datagram_received(
        self, data: bytes, remote: Any, now: float, *, multicast: bool = False
    ) -> Output:
        output = super().datagram_received(data, remote, now, multicast=multicast)
        if remote in self.held and decode_ws(data).code >> 5 != 7:  # a request, no signal
            output.datagrams[:0] = self.held.pop(remote)
        return output


class CoapkitServer:
    """A Driver over the server side of the WebSocket transport, serving a small site;
    ``/counter`` is observable (``tick()`` notifies).  ``late_csm``: see
    :class:`LateCsmEndpoint`."""

    def __init__(
        self,
        config: StreamConfig | None = None,
        blockwise: BlockwiseConfig | None = None,
        *,
        late_csm: bool = False,
    ) -> None:
        self.config = config
        self.blockwise = blockwise
        self.late_csm = late_csm
        self.site = Site()
        self.store = b"nothing yet"
        self.count = 0
        self.trace = Trace()

        @self.site.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hello from coapkit")

        @self.site.route("/store", methods=("GET", "PUT"))
        def store(request: Any) -> Response:
            if request.method_name == "PUT":
                self.store = request.payload
                return Response(Code.CHANGED)
            return Response(payload=self.store)

        @self.site.route("/big")
        def big(request: Any) -> Response:
            return Response(payload=BIG_TEXT)

        @self.site.route("/huge")
        def huge(request: Any) -> Response:
            return Response(payload=HUGE_TEXT)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        kind = LateCsmEndpoint if self.late_csm else Endpoint
        self.endpoint = kind(
            rng=Random(3), layer=ConnectionLayer(config=self.config), blockwise=self.blockwise
        )
        self.driver = Driver(self.endpoint, loop, request_handler=self.handle, tracer=self.trace)
        self.transport = WebSocketTransport(loop, self.driver)
        self.driver.attach(self.transport)
        await self.transport.listen("127.0.0.1", 0)
        return int(self.transport.local_address[1])

    def handle(self, event: Any) -> Any:
        if event.request.options.uri_path == ("counter",):
            message = Message(
                code=Code.CONTENT, token=event.request.token, payload=b"%d" % self.count
            )
            return self.endpoint.observe.on_response(
                COUNTER, event.request, event.remote, message, self.driver.loop.time()
            )
        return self.site.dispatch(Request(event.request, event.remote, event.handle))

    def tick(self) -> None:
        self.count += 1
        sequence, observers = self.endpoint.observe.updated(COUNTER)
        for observer in observers:
            notification = Message(code=Code.CONTENT, payload=b"%d" % self.count)
            self.driver.notify(observer, notification, sequence=sequence)

    async def close(self) -> None:
        await self.driver.close()
        await self.transport.wait_closed()


@pytest.fixture
async def coapkit_server() -> AsyncIterator[CoapkitServer]:
    server = CoapkitServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def aiocoap_client(
    bin_dir: Path, *args: str, timeout: float = 20
) -> subprocess.CompletedProcess[bytes]:
    """Run aiocoap-client (only its ws transport) without blocking the loop our server
    runs in."""
    env = {**os.environ, "AIOCOAP_CLIENT_TRANSPORT": "ws", "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        str(bin_dir / "aiocoap-client"),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def url(server: CoapkitServer, path: str) -> str:
    return f"coap+ws://127.0.0.1:{server.transport.local_address[1]}/{path}"


async def test_aiocoap_client_get_and_put(aiocoap_ws: Path, coapkit_server: CoapkitServer) -> None:
    got = await aiocoap_client(aiocoap_ws, url(coapkit_server, "hello"))
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == b"hello from coapkit"
    put = await aiocoap_client(
        aiocoap_ws, "-m", "PUT", "--payload", "stored over ws", url(coapkit_server, "store")
    )
    assert put.returncode == 0, put.stderr
    assert coapkit_server.store == b"stored over ws"
    missing = await aiocoap_client(aiocoap_ws, url(coapkit_server, "missing"))
    assert b"4.04" in missing.stdout + missing.stderr
    # what aiocoap-client sent: its CSM first (1 MiB, Block-Wise-Transfer), then one
    # request per connection, Len 0 each time, no Uri-Host for an IP literal
    sent = coapkit_server.trace.messages("recv")
    assert sent[0].code == signals.CSM
    assert sent[0].options.items == (
        (signals.MAX_MESSAGE_SIZE, (1 << 20).to_bytes(3)),
        (signals.BLOCK_WISE_TRANSFER, b""),
    )
    requests = [m for m in sent if m.code in (Code.GET, Code.PUT)]
    assert [m.options.uri_host for m in requests] == [None, None, None]
    assert all(data[0] >> 4 == 0 for d, data in coapkit_server.trace.raw if d == "recv")


@asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[CoapkitServer]:
    server = CoapkitServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def aiocoap_put(aiocoap_ws: Path, server: CoapkitServer, body: bytes, tmp_path: Path) -> None:
    (tmp_path / "body").write_bytes(body)
    put = await aiocoap_client(
        aiocoap_ws, "-m", "PUT", "--payload", f"@{tmp_path / 'body'}", url(server, "store")
    )
    assert put.returncode == 0, put.stderr
    assert server.store == body


def blocks_of(server: CoapkitServer, code: int) -> list[tuple[BlockValue | None, int]]:
    """Block1 and payload size of each ``code`` request coapkit received."""
    return [
        (m.options.block1, len(m.payload)) for m in server.trace.messages("recv") if m.code == code
    ]


async def test_aiocoap_client_block_wise_both_ways(aiocoap_ws: Path, tmp_path: Path) -> None:
    """Deterministic: our CSM goes out only with the answer to aiocoap's first request
    (:class:`LateCsmEndpoint`), so aiocoap always starts an upload knowing nothing of us.
    Otherwise which of the two shapes below an upload takes depends on whether our CSM
    or aiocoap's first block wins the race on loopback (usually our CSM)."""
    body = b"block-wise from aiocoap " * 125  # 3000 bytes
    # DEVIATION: aiocoap 0.4.17 uses BERT before it knows that the peer takes it (RFC
    # 8323 §5.3.2, §6: the peer's CSM says so): with no CSM seen, its
    # maximum_block_size_exp is 7, so an upload starts with a 1024-byte block of szx 7.
    # It only ever lowers the szx during an upload, when the server answers with a
    # smaller one; coapkit takes BERT from any peer and answers szx 7, so the rest is szx
    # 7 too, whatever our CSM says.
    async with serving(config=StreamConfig(block_wise=False), late_csm=True) as server:
        await aiocoap_put(aiocoap_ws, server, body, tmp_path)
        # our CSM had no Block-Wise-Transfer: 1024 bytes a message, but szx 7 throughout
        assert blocks_of(server, Code.PUT) == [
            (BlockValue(0, True, 7), 1024),
            (BlockValue(1, True, 7), 1024),
            (BlockValue(2, False, 7), 952),
        ]
        answers = [(m.code, m.options.block1) for m in server.trace.messages("send")[1:]]
        assert answers == [
            (Code.CONTINUE, BlockValue(0, True, 7)),
            (Code.CONTINUE, BlockValue(1, True, 7)),
            (Code.CHANGED, BlockValue(2, False, 7)),
        ]
    async with serving(blockwise=ROOMY, late_csm=True) as server:
        await aiocoap_put(aiocoap_ws, server, body, tmp_path)
        # with Block-Wise-Transfer in our CSM: after the first block aiocoap sees that the
        # whole body fits one message and sends it again, whole, without Block1 (the
        # block already taken is left to expire here)
        assert blocks_of(server, Code.PUT) == [(BlockValue(0, True, 7), 1024), (None, 3000)]
        assert server.endpoint.blockwise.bodies_in_progress == 1
        large = b"".join(b"%06d\n" % n for n in range(14_286))[:100_000]
        await aiocoap_put(aiocoap_ws, server, large, tmp_path)
        # a body larger than one message: the rest in BERT blocks of 65 (our 66,688 bytes
        # less aiocoap's 128), numbered by the blocks sent before
        assert blocks_of(server, Code.PUT)[2:] == [
            (BlockValue(0, True, 7), 1024),
            (BlockValue(1, True, 7), 66_560),
            (BlockValue(66, False, 7), 32_416),
        ]


async def test_aiocoap_client_downloads_bert(
    aiocoap_ws: Path, coapkit_server: CoapkitServer
) -> None:
    """aiocoap-client's CSM comes before its request, so what coapkit sends it is
    deterministic: BERT when the body is larger than a message, the body whole when not."""
    got = await aiocoap_client(aiocoap_ws, url(coapkit_server, "big"))
    assert got.returncode == 0, got.stderr
    assert got.stdout.rstrip(b"\n") == BIG_TEXT
    huge = await aiocoap_client(aiocoap_ws, url(coapkit_server, "huge"))
    assert huge.returncode == 0, huge.stderr
    assert huge.stdout == HUGE_TEXT
    sent = [m for m in coapkit_server.trace.messages("send") if m.code == Code.CONTENT]
    assert [(m.options.block2, len(m.payload)) for m in sent] == [
        (None, 3000),  # whole: aiocoap's CSM announced 1 MiB and Block-Wise-Transfer
        (BlockValue(0, True, 7), 65_536),  # 64 blocks, our max_bert_blocks
        (BlockValue(64, False, 7), 34_464),
    ]
    asked = [m.options.block2 for m in coapkit_server.trace.messages("recv") if m.code == Code.GET]
    # aiocoap asks for the next block after all that the BERT block carried, with szx 7
    assert asked == [None, None, BlockValue(64, False, 7)]


async def test_aiocoap_observes(aiocoap_ws: Path, coapkit_server: CoapkitServer) -> None:
    process = await asyncio.create_subprocess_exec(
        str(aiocoap_ws / "python"),
        str(HERE / "aiocoap_ws_peer.py"),
        "observe",
        url(coapkit_server, "counter"),
        "3",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    registry = coapkit_server.endpoint.observe.registry
    try:
        lines = [await asyncio.wait_for(process.stdout.readline(), 20)]
        assert registry.count_of(COUNTER) == 1
        for _ in range(3):
            coapkit_server.tick()
            lines.append(await asyncio.wait_for(process.stdout.readline(), 5))
        assert [line.strip() for line in lines] == [b"0", b"1", b"2", b"3"]
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    assert process.returncode == 0
    # aiocoap's cancel() sends no deregistration (no GET with Observe 1, RFC 7641 §3.6):
    # the observation ends with its connection (RFC 8323 §7: state is removed with it)
    sent = coapkit_server.trace.messages("recv")
    assert [m.options.observe for m in sent if m.code == Code.GET] == [0]
    for _ in range(50):
        if registry.count_of(COUNTER) == 0:
            break
        await asyncio.sleep(0.05)
    assert registry.count_of(COUNTER) == 0


async def test_aiocoap_client_observe_shows_only_the_first_response(
    aiocoap_ws: Path, coapkit_server: CoapkitServer
) -> None:
    # aiocoap-client 0.4.17 --observe cancels its observation as soon as the first
    # response arrives (a finally: after awaiting it) and then waits for an end that
    # never comes: the notifications coapkit sends are dropped, and nothing tells
    # coapkit to stop (over WebSockets there is no RST, and no GET with Observe 1 comes)
    env = {**os.environ, "AIOCOAP_CLIENT_TRANSPORT": "ws", "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        str(aiocoap_ws / "aiocoap-client"),
        "--observe",
        url(coapkit_server, "counter"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    registry = coapkit_server.endpoint.observe.registry
    try:
        for _ in range(200):
            if registry.count_of(COUNTER):
                break
            await asyncio.sleep(0.05)
        assert registry.count_of(COUNTER) == 1
        await asyncio.sleep(0.3)
        coapkit_server.tick()
        coapkit_server.tick()
        await asyncio.sleep(0.5)
        assert registry.count_of(COUNTER) == 1  # still registered: nothing said otherwise
    finally:
        process.terminate()
        stdout, stderr = await process.communicate()
    assert stdout == b"0"
    assert b"Observe notification" not in stderr
    notifications = [
        m for m in coapkit_server.trace.messages("send") if m.options.observe is not None
    ]
    assert len(notifications) == 3  # the first response and two notifications, all sent


async def test_coapkit_client_connects_and_reports_a_closed_port(aiocoap_server: int) -> None:
    """aiocoap's server picks the subprotocol coap (RFC 8323 §4.1), which coapkit's client
    requires; a closed port is a NetworkError saying so."""
    async with coapkit_client() as (_, transport, _trace):
        await transport.connect(("127.0.0.1", aiocoap_server))
        assert transport.is_connected(("127.0.0.1", aiocoap_server))
        with pytest.raises(NetworkError, match="refused"):
            await transport.connect(("127.0.0.1", free_tcp_port()))
