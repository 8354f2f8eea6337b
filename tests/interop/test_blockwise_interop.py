"""Block-wise transfers (RFC 7959) against peers nobody here wrote, over loopback sockets.

* libcoap's ``coap-client-notls`` fetching a large resource from a coapkit
  :class:`~coapkit.server.Server` at every block size it offers, and uploading a
  large payload to it;
* the coapkit :class:`~coapkit.client.Client` fetching from and uploading to
  libcoap's ``coap-server-notls`` (its ``/example_data`` resource stores what is
  PUT) and an in-process aiocoap 0.4.17 server; aiocoap's client against the
  coapkit server too.

When a coapkit server runs in the test's event loop, libcoap's client runs as
an asyncio subprocess so that the loop keeps serving.  Nothing sleeps for
protocol timing: each step waits for a process or a response.

Where a peer does something RFC 7959 does not describe, coapkit follows the RFC
and the peer's behaviour is written down in the test (``Peer behaviour:``).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coapkit import BlockValue, Code, Message, Options
from coapkit.blockwise.server import BlockwiseConfig, etag_for
from coapkit.client import Client
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.resources import Response, Site
from coapkit.server import Server
from tests.interop.peers import (
    COAP_CLIENT,
    coap_client,
    free_udp_port,
    libcoap_server,
    require_libcoap,
)

pytestmark = pytest.mark.interop

LARGE = random.Random(1).randbytes(16_000)
UPLOAD = random.Random(2).randbytes(10_000)


def body(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Trace:
    """A coapkit tracer that keeps what went over the socket, decoded."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.received: list[Message] = []

    def __call__(self, direction: str, data: bytes, remote: Any) -> None:
        message = Message.decode(data)
        (self.sent if direction == "send" else self.received).append(message)


async def run_coap_client(*args: str, timeout: float = 90) -> tuple[int, bytes, bytes]:
    """``coap-client-notls`` as an asyncio subprocess (a coapkit server shares our loop)."""
    require_libcoap()
    process = await asyncio.create_subprocess_exec(
        COAP_CLIENT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout, stderr


# -- a coapkit server, libcoap's client ---------------------------------------------------


class CoapkitSite:
    """``/large`` (16 000 bytes, counts its handler runs) and ``/store`` (PUT, then GET)."""

    def __init__(self) -> None:
        self.runs = 0
        self.stored: list[bytes] = []
        self.site = Site()
        self.site.route("/large")(self.large)
        self.site.route("/store", methods=("PUT", "POST", "GET"))(self.store)

    def large(self, request: Any) -> Response:
        self.runs += 1
        return Response(payload=LARGE, content_format=42)

    def store(self, request: Any) -> Response:
        if request.method == Code.GET:
            return Response(payload=self.stored[-1] if self.stored else b"")
        self.stored.append(request.payload)
        return Response(Code.CHANGED)


@pytest.fixture
async def coapkit_server() -> AsyncIterator[tuple[Server, CoapkitSite, Trace]]:
    require_libcoap()
    resources = CoapkitSite()
    trace = Trace()
    async with Server(resources.site, bind=("127.0.0.1", 0), tracer=trace) as server:
        yield server, resources, trace


@pytest.mark.parametrize("size", [16, 64, 256, 1024])
async def test_libcoap_client_fetches_a_large_resource(coapkit_server, size, tmp_path):
    server, resources, trace = coapkit_server
    out = tmp_path / "large.bin"
    uri = f"coap://127.0.0.1:{server.port}/large"
    code, _, stderr = await run_coap_client("-b", str(size), "-o", str(out), "-B", "60", uri)
    assert code == 0, stderr
    assert out.read_bytes() == LARGE  # byte-identical
    szx = BlockValue.szx_for_size(size)
    # libcoap asks for the block size in its first request (early negotiation, §2.4)...
    assert trace.received[0].options.block2 == BlockValue(0, False, szx)
    # ...and the coapkit server slices at that size, each later block from its cache.
    answers = [m for m in trace.sent if m.code == Code.CONTENT]
    assert len(answers) == math.ceil(len(LARGE) / size)
    assert {m.options.block2.szx for m in answers} == {szx}
    assert {m.options.etag for m in answers} == {etag_for(LARGE)}
    assert resources.runs == 1
    assert server.endpoint.blockwise.stats.blocks_served_from_cache == len(answers) - 1


async def test_libcoap_client_uploads_a_large_payload(coapkit_server, tmp_path):
    server, resources, trace = coapkit_server
    payload = tmp_path / "upload.bin"
    payload.write_bytes(UPLOAD)
    uri = f"coap://127.0.0.1:{server.port}/store"
    code, _, stderr = await run_coap_client(
        "-m", "put", "-f", str(payload), "-b", "64", "-B", "60", uri
    )
    assert code == 0, stderr
    assert resources.stored == [UPLOAD]  # reassembled once, byte-identical
    blocks = [m for m in trace.received if N.BLOCK1 in m.options]
    assert len(blocks) == math.ceil(len(UPLOAD) / 64)
    # Peer behaviour: libcoap 4.3.1 tags every body with a Request-Tag (RFC 9175) and
    # repeats Size1 in every block; the coapkit server keys the body by the tag.
    assert {m.options.get(N.REQUEST_TAG) for m in blocks} != {None}
    continues = [m for m in trace.sent if m.code == Code.CONTINUE]
    assert len(continues) == len(blocks) - 1
    [final] = [m for m in trace.sent if m.code == Code.CHANGED]
    assert final.options.block1 == BlockValue(len(blocks) - 1, False, 2)
    # and back, block-wise again
    out = tmp_path / "back.bin"
    code, _, stderr = await run_coap_client("-b", "256", "-o", str(out), "-B", "60", uri)
    assert code == 0, stderr
    assert out.read_bytes() == UPLOAD


@pytest.mark.parametrize("method", ["post", "fetch"])
async def test_libcoap_client_large_body_with_a_large_response(method, tmp_path):
    """Block1 then Block2 (RFC 7959 §3.3).  Peer behaviour: for the rest of the response
    libcoap repeats neither the FETCH body nor anything but Block2, Request-Tag and Size1;
    the coapkit server serves it from the cache, the handler having run once."""
    require_libcoap()
    runs: list[bytes] = []
    site = Site()

    @site.route("/turn", methods=("POST", "FETCH"))
    def turn(request: Any) -> Response:
        runs.append(request.payload)
        code = Code.CHANGED if request.method == Code.POST else Code.CONTENT
        return Response(code, payload=request.payload[::-1] * 2)

    trace = Trace()
    async with Server(site, bind=("127.0.0.1", 0), tracer=trace) as server:
        payload = tmp_path / "in.bin"
        payload.write_bytes(UPLOAD)
        out = tmp_path / "out.bin"
        uri = f"coap://127.0.0.1:{server.port}/turn"
        code, _, stderr = await run_coap_client(
            "-m", method, "-f", str(payload), "-b", "256", "-o", str(out), "-B", "60", uri
        )
        from_cache = server.endpoint.blockwise.stats.blocks_served_from_cache
    assert code == 0, stderr
    assert out.read_bytes() == UPLOAD[::-1] * 2
    assert runs == [UPLOAD]
    rest = [m for m in trace.received if N.BLOCK2 in m.options and N.BLOCK1 not in m.options]
    assert rest and {m.payload for m in rest} == {b""}
    assert from_cache == len(rest)


async def test_libcoap_client_upload_refused_above_max_body(tmp_path):
    require_libcoap()
    resources = CoapkitSite()
    trace = Trace()
    config = BlockwiseConfig(max_body=4096)
    async with Server(
        resources.site, bind=("127.0.0.1", 0), blockwise=config, tracer=trace
    ) as server:
        payload = tmp_path / "upload.bin"
        payload.write_bytes(UPLOAD)
        uri = f"coap://127.0.0.1:{server.port}/store"
        _, _, stderr = await run_coap_client(
            "-m", "put", "-f", str(payload), "-b", "1024", "-B", "30", uri
        )
    # Block 0 announces Size1=10000: refused at once with 4.13 and the limit in Size1.
    assert [m.options.block1 for m in trace.received] == [BlockValue(0, True, 6)]
    assert trace.received[0].options.size1 == len(UPLOAD)
    [refusal] = trace.sent
    assert refusal.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert refusal.options.size1 == 4096
    assert resources.stored == []
    assert b"4.13" in stderr  # libcoap reports it and stops


# -- libcoap's server, the coapkit client -------------------------------------------------


async def test_coapkit_client_fetches_a_large_resource_from_libcoap(tmp_path):
    with libcoap_server() as port:
        source = tmp_path / "large.bin"
        source.write_bytes(LARGE)
        uri = f"coap://127.0.0.1:{port}/example_data"
        put = coap_client("-m", "put", "-f", str(source), "-b", "1024", uri)
        assert put.returncode == 0, put.stderr
        trace = Trace()
        async with Client(tracer=trace) as client:
            response = await client.get(uri)
            assert response.code == Code.CONTENT
            assert response.payload == LARGE
            blocks = [m for m in trace.received if N.BLOCK2 in m.options]
            assert len(blocks) == math.ceil(len(LARGE) / 1024)
            # Peer behaviour: libcoap sends ETag and Size2 with every block.
            assert len({m.options.etag for m in blocks}) == 1
            assert {m.options.size2 for m in blocks} == {len(LARGE)}

            # early negotiation: 64-byte blocks from the first request on
            trace.received.clear()
            small = await client.get(uri, options=Options.build(block2=BlockValue(0, False, 2)))
            assert small.payload == LARGE
            assert {m.options.block2.szx for m in trace.received} == {2}
            assert len(trace.received) == math.ceil(len(LARGE) / 64)

            # random access: block 5 of 256 bytes, and nothing else
            trace.sent.clear()
            one = await client.get(uri, options=Options.build(block2=BlockValue(5, False, 4)))
            assert one.payload == LARGE[5 * 256 : 6 * 256]
            assert one.options.block2 == BlockValue(5, True, 4)
            assert len(trace.sent) == 1


async def test_coapkit_client_uploads_a_large_payload_to_libcoap(tmp_path):
    with libcoap_server("-d", "4") as port:
        trace = Trace()
        async with Client(tracer=trace) as client:
            stored = await client.put(f"coap://127.0.0.1:{port}/example_data", UPLOAD)
            assert stored.code == Code.CREATED  # the first PUT to an empty /example_data
            # Peer behaviour: libcoap 4.3.1's final response to the last block carries no
            # Block1 option (RFC 7959 §2.3 and Figure 2 have the final response echo
            # Block1 of the last block); coapkit takes the response as it is.
            final = trace.received[-1]
            assert final.code == Code.CREATED and N.BLOCK1 not in final.options
            continues = [m for m in trace.received if m.code == Code.CONTINUE]
            assert len(continues) == math.ceil(len(UPLOAD) / 1024) - 1
            again = await client.put(f"coap://127.0.0.1:{port}/example_data", UPLOAD)
            assert again.code == Code.CHANGED
            # a dynamic resource (-d), created by a block-wise PUT
            other = body(5000, seed=7)
            made = await client.put(f"coap://127.0.0.1:{port}/made", other)
            assert made.code == Code.CREATED
        for path, expected in (("example_data", UPLOAD), ("made", other)):
            out = tmp_path / f"{path}.bin"
            back = coap_client("-o", str(out), f"coap://127.0.0.1:{port}/{path}")
            assert back.returncode == 0, back.stderr
            assert out.read_bytes() == expected


# -- aiocoap --------------------------------------------------------------------------------


def require_aiocoap() -> Any:
    try:
        import aiocoap
        import aiocoap.resource
    except ImportError:  # pragma: no cover - the test extra installs it
        if os.environ.get("CI"):
            pytest.fail("aiocoap is not installed (pip install coapkit[test])")
        pytest.skip("aiocoap is not installed")
    return aiocoap


@pytest.fixture
async def aiocoap_server() -> AsyncIterator[tuple[int, Any]]:
    aiocoap = require_aiocoap()
    from aiocoap import resource

    class Large(resource.Resource):
        runs = 0

        async def render_get(self, request: Any) -> Any:
            Large.runs += 1
            return aiocoap.Message(payload=LARGE, content_format=42)

    class Store(resource.Resource):
        def __init__(self) -> None:
            super().__init__()
            self.bodies: list[bytes] = []

        async def render_put(self, request: Any) -> Any:
            self.bodies.append(request.payload)
            return aiocoap.Message(code=aiocoap.CHANGED)

        async def render_get(self, request: Any) -> Any:
            return aiocoap.Message(payload=self.bodies[-1] if self.bodies else b"")

    site = resource.Site()
    store = Store()
    site.add_resource(["large"], Large())
    site.add_resource(["store"], store)
    port = free_udp_port()
    context = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", port), transports=["udp6"]
    )
    try:
        yield port, store
    finally:
        await context.shutdown()


async def test_coapkit_client_fetches_a_large_resource_from_aiocoap(aiocoap_server):
    port, _ = aiocoap_server
    trace = Trace()
    async with Client(tracer=trace) as client:
        response = await client.get(f"coap://127.0.0.1:{port}/large")
        assert response.payload == LARGE
        assert response.content_format == 42
        blocks = [m for m in trace.received if N.BLOCK2 in m.options]
        assert len(blocks) == math.ceil(len(LARGE) / 1024)
        # Peer behaviour: aiocoap 0.4.17 slices without ETag or Size2 (both optional in
        # RFC 7959); with nothing to compare, coapkit trusts the block sequence.
        assert {m.options.etag for m in blocks} == {None}
        assert {m.options.size2 for m in blocks} == {None}

        small = await client.get(
            f"coap://127.0.0.1:{port}/large", options=Options.build(block2=BlockValue(0, False, 2))
        )
        assert small.payload == LARGE

        one = await client.get(
            f"coap://127.0.0.1:{port}/large", options=Options.build(block2=BlockValue(3, False, 6))
        )
        assert one.payload == LARGE[3072:4096]
        assert one.options.block2 == BlockValue(3, True, 6)


async def test_coapkit_client_uploads_a_large_payload_to_aiocoap(aiocoap_server):
    port, store = aiocoap_server
    async with Client() as client:
        response = await client.put(f"coap://127.0.0.1:{port}/store", UPLOAD)
        assert response.code == Code.CHANGED
        assert store.bodies == [UPLOAD]
        back = await client.get(f"coap://127.0.0.1:{port}/store")
        assert back.payload == UPLOAD


async def test_aiocoap_client_against_the_coapkit_server():
    aiocoap = require_aiocoap()
    resources = CoapkitSite()
    async with Server(resources.site, bind=("127.0.0.1", 0)) as server:
        context = await aiocoap.Context.create_client_context()
        try:
            base = f"coap://127.0.0.1:{server.port}"
            got = await context.request(
                aiocoap.Message(code=aiocoap.GET, uri=f"{base}/large")
            ).response
            assert got.payload == LARGE
            assert resources.runs == 1
            upload = aiocoap.Message(code=aiocoap.PUT, uri=f"{base}/store", payload=UPLOAD)
            put = await context.request(upload).response
            assert put.code == aiocoap.CHANGED
            assert resources.stored == [UPLOAD]
        finally:
            await context.shutdown()


async def test_aiocoap_observes_a_large_coapkit_resource():
    """RFC 7959 §2.6: each notification's first block goes out with Observe, and aiocoap
    fetches the rest with Block2 requests, answered from the coapkit server's cache."""
    aiocoap = require_aiocoap()
    from coapkit.resources import Resource

    class Big(Resource):
        observable = True

        def __init__(self) -> None:
            self.version = 0
            self.runs = 0

        def get(self, request: Any) -> Response:
            self.runs += 1
            return Response(payload=body(5000, seed=self.version))

    big = Big()
    site = Site()
    site.add("/big", big)
    async with Server(site, bind=("127.0.0.1", 0)) as server:
        context = await aiocoap.Context.create_client_context()
        try:
            uri = f"coap://127.0.0.1:{server.port}/big"
            pending = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
            first = await asyncio.wait_for(pending.response, 10)
            assert first.payload == body(5000, seed=0)
            notifications = pending.observation.__aiter__()
            for version in (1, 2):
                big.version = version
                big.updated()
                note = await asyncio.wait_for(notifications.__anext__(), 10)
                assert note.payload == body(5000, seed=version)
            assert big.runs == 3  # the registration and two notifications; no block re-renders
            pending.observation.cancel()
        finally:
            await context.shutdown()
