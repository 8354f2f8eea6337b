"""libcoap's ``coap-client-notls`` losing its own datagrams (``-l``) against a coapkit Server.

``-l 30%`` makes coap-client drop each datagram it sends with probability 0.3
(``-l 2,5-6`` drops the listed ones, counting from 1); it drops requests and
its own ACKs, never the server's answers.  The coapkit server must run each
non-idempotent request exactly once however many copies arrive, and a
block-wise transfer must survive lost block requests.  Real time: libcoap
retransmits after ACK_TIMEOUT (2 to 3 s), so the clients run concurrently.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coapkit import Code
from coapkit.resources import Response, Site
from coapkit.server import Server
from tests.interop.test_blockwise_interop import Trace, run_coap_client

pytestmark = pytest.mark.interop

LARGE = random.Random(3).randbytes(16_000)
UPLOAD = random.Random(4).randbytes(10_000)
#: what coap-client 4.3.1 prints (to stdout, exit status 0) when MAX_RETRANSMIT ran out
GAVE_UP = b"cannot send CoAP pdu"


class Resources:
    """``/counter`` (POST adds one and answers the new count), ``/large``, ``/store``."""

    def __init__(self) -> None:
        self.count = 0
        self.stored: list[bytes] = []
        self.site = Site()
        self.site.route("/counter", methods=("POST",))(self.counter)
        self.site.route("/large")(lambda request: Response(payload=LARGE))
        self.site.route("/store", methods=("PUT",))(self.store)

    def counter(self, request: Any) -> Response:
        self.count += 1
        return Response(Code.CHANGED, payload=str(self.count).encode())

    def store(self, request: Any) -> Response:
        self.stored.append(request.payload)
        return Response(Code.CHANGED)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Resources, Trace]]:
    resources = Resources()
    trace = Trace()
    async with Server(resources.site, bind=("127.0.0.1", 0), tracer=trace) as running:
        yield running, resources, trace


@pytest.mark.timeout(180)
async def test_posts_with_30_percent_loss_run_exactly_once(server):
    running, resources, trace = server
    uri = f"coap://127.0.0.1:{running.port}/counter"
    results = await asyncio.gather(
        *(run_coap_client("-l", "30%", "-m", "post", "-B", "90", uri) for _ in range(16))
    )
    succeeded = [stdout for code, stdout, _ in results if code == 0 and stdout.strip().isdigit()]
    # libcoap 4.3.1 deviation: a coap-client that gave up (all five copies of its request
    # lost, probability 0.3^5 = 0.24 % each) still exits 0, and its log line goes to stdout
    # (libcoap logs below CRIT to stdout), so a failure is told apart by what it printed.
    gave_up = [stdout for _, stdout, _ in results if not stdout.strip().isdigit()]
    assert all(GAVE_UP in stdout for stdout in gave_up), gave_up
    # Each request that reached the server ran once; its answers are never lost here, so
    # every run that did not give up is a success and vice versa.
    assert resources.count == len(succeeded) >= 14
    assert sorted(int(s) for s in succeeded) == list(range(1, len(succeeded) + 1))
    posts = [m for m in trace.received if m.code == Code.POST]
    assert len(posts) >= len(succeeded)  # retransmissions after a lost ACK are duplicates


@pytest.mark.timeout(180)
async def test_a_block2_download_survives_lost_block_requests(server, tmp_path):
    running, _, trace = server
    out = tmp_path / "large.bin"
    uri = f"coap://127.0.0.1:{running.port}/large"
    # coap-client's 2nd, 5th, 6th and 9th datagrams (block requests) are dropped
    started = time.monotonic()
    code, _, stderr = await run_coap_client(
        "-l", "2,5-6,9", "-b", "1024", "-o", str(out), "-B", "120", uri, timeout=150
    )
    assert code == 0, stderr
    # the drops did happen: each costs coap-client at least ACK_TIMEOUT (2 s), the
    # 5th and 6th datagrams (a request and its retransmission) 2 + 4 s
    assert time.monotonic() - started >= 6.0
    assert out.read_bytes() == LARGE
    blocks = [m.options.block2.num for m in trace.received if m.code == Code.GET]
    assert sorted(set(blocks)) == list(range(16))


@pytest.mark.timeout(180)
async def test_a_block1_upload_survives_30_percent_loss(server, tmp_path):
    running, resources, trace = server
    payload = tmp_path / "upload.bin"
    payload.write_bytes(UPLOAD)
    uri = f"coap://127.0.0.1:{running.port}/store"
    code, stdout, stderr = await run_coap_client(
        "-l", "30%", "-m", "put", "-f", str(payload), "-b", "1024", "-B", "150", uri, timeout=170
    )
    if code != 0 or GAVE_UP in stdout:  # libcoap 4.3.1 may exit 0 having given up
        # One of ten block exchanges lost all five copies (about 2.4 %): coap-client gave
        # up, and the server handed nothing up (a body is only whole with its last block).
        assert resources.stored == [], stderr
    else:
        assert resources.stored == [UPLOAD]  # reassembled once, byte-identical
    blocks = [m for m in trace.received if m.code == Code.PUT]
    assert len({m.options.block1.num for m in blocks}) <= 10
