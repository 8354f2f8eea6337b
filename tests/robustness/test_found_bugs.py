"""Regression tests for bugs the fuzzers, the exactly-once matrix and the soak found."""

from __future__ import annotations

import asyncio
import gc
import random
import socket

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, decode, encode
from coapkit.codec.options import BlockValue, Options
from coapkit.codec.types import MessageType
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import Diagnostic, IncomingRequest, RequestFailed, ResponseEvent
from coapkit.messaging.layer import MessageLayer, MessagingConfig
from coapkit.messaging.peers import DedupStream
from coapkit.resources import Request, Response, Site
from coapkit.server import Server
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

CLIENT = ("10.0.1.1", 5683)
SERVER = ("10.0.0.1", 5683)
NON, ACK = MessageType.NON, MessageType.ACK


def test_a_forgotten_peer_does_not_restart_its_message_ids() -> None:
    """Found by the soak: a request answered with the reply to an older request.

    The client's first transmission of request A is lost, so the server first
    receives A at its retransmission (~2.5 s) and remembers A's MID until
    ~249.5 s.  The client holds the MID for EXCHANGE_LIFETIME (247 s) from its
    first transmission, then forgets the server as a peer.  It used to meet the
    server again at the same first MID, so request B (at 248.5 s) reused A's MID
    while the server still remembered it: the server replayed A's response, the
    client saw a foreign token, took it for an empty ACK and B timed out without
    ever reaching the handler.
    """
    runs: list[bytes] = []

    def app(node: EndpointNode, event: IncomingRequest, now: float) -> Message:
        runs.append(event.request.payload)
        return Message(code=Code.CHANGED, payload=b"did " + event.request.payload)

    net = SimulatedNetwork(seed=1)
    net.attach(SERVER, EndpointNode(Endpoint(rng=random.Random(1)), app))
    client = EndpointNode(Endpoint(rng=random.Random(2)))
    net.attach(CLIENT, client)
    net.set_link(CLIENT, SERVER, LinkConditions(drop=frozenset({1})))
    post = Options.build(uri_path=["x"])

    def send(payload: bytes) -> object:
        def action(now: float) -> list[tuple[bytes, object]]:
            _, datagrams = client.request(
                Message(code=Code.POST, options=post, payload=payload), SERVER, now
            )
            return datagrams

        return action

    net.call_at(0.0, CLIENT, send(b"A"))
    net.call_at(248.5, CLIENT, send(b"B"))
    net.run_until_quiet(2000.0)

    assert client.events_of(RequestFailed) == []
    assert [e.response.payload for e in client.events_of(ResponseEvent)] == [b"did A", b"did B"]
    assert runs == [b"A", b"B"]
    mids = [decode(e.data).mid for e in net.sent_between(CLIENT, SERVER)]
    assert len(set(mids)) == 2  # A (sent twice) and B: two different message IDs


def test_a_forgotten_peer_is_freed_without_the_cyclic_collector() -> None:
    """Found by bench/bench_flood.py: RSS grew by ~45 bytes per request once the total
    deduplication cap was reached (1,000,000 requests from 16 source ports: +43 MiB).

    A forgotten peer and its deduplication streams referred to each other, so only the
    cyclic garbage collector could free them (and their tables, 2.5 MiB for a stream
    that had held 40,000 entries).  A server in steady state creates almost no tracked
    objects, so the collector did not run during the whole flood.
    """
    layer = MessageLayer(
        rng=random.Random(1), config=MessagingConfig(dedup_cap_total=4, dedup_cap_per_peer=100)
    )
    get = Options.build(uri_path=["x"])
    gc.collect()
    gc.disable()
    try:
        for port in range(10):
            for mid in range(3):
                data = encode(Message(code=Code.GET, mid=mid, token=b"t", options=get))
                layer.receive(data, ("192.0.2.1", 40000 + port), 0.0, [])
        assert layer.peer_count <= 4
        streams = [o for o in gc.get_objects() if isinstance(o, DedupStream)]
        assert len(streams) <= 4  # only the live peers' streams: the others were freed at once
    finally:
        gc.enable()


def test_a_full_backlog_does_not_make_a_blockwise_answer_raise() -> None:
    """Found by fuzz/fuzz_endpoint.py: BacklogFull escaped from datagram_received.

    The block-wise layer answers some requests itself (2.31 Continue, 4.08, 4.13...).
    To a NON request the answer is a NON, which waits in the peer's backlog behind
    the CONs in flight (NSTART); with the backlog full, ``send`` raised BacklogFull
    out of ``Endpoint.datagram_received``: a remote could make the endpoint raise.
    """
    remote = ("192.0.2.9", 5683)
    endpoint = Endpoint(rng=random.Random(1), messaging=MessagingConfig(backlog_limit=2))
    sent = []
    for n in range(3):  # one CON in flight (NSTART = 1), two waiting: the backlog is full
        _, output = endpoint.send_separate(
            remote, Message(code=Code.CONTENT, token=bytes((n,))), 0.0
        )
        sent.extend(output.datagrams)
    options = Options.build(uri_path=["upload"], block1=BlockValue(0, True, 0))

    def block(mid: int) -> bytes:
        return encode(Message(NON, Code.POST, mid, b"b", options, bytes(16)))

    output = endpoint.datagram_received(block(7), remote, 0.1)
    assert output.datagrams == []
    [diagnostic] = output.events
    assert isinstance(diagnostic, Diagnostic)
    assert "block-wise answer not sent" in diagnostic.reason
    # Once the CON in flight is acknowledged there is room: the block sent again (a new
    # MID) gets its answer, which waits its turn behind the CONs queued before it.
    first = decode(sent[0][0]).mid

    def ack(n: int) -> list[Message]:
        data = encode(Message(ACK, 0, (first + n) & 0xFFFF))
        return [decode(d) for d, _ in endpoint.datagram_received(data, remote, 0.4).datagrams]

    out = ack(0)
    following = endpoint.datagram_received(block(8), remote, 0.5)
    assert following.events == [] and following.datagrams == []
    out += ack(1) + ack(2)
    assert [(m.mtype, m.code, m.token) for m in out] == [
        (MessageType.CON, Code.CONTENT, b"\x01"),
        (MessageType.CON, Code.CONTENT, b"\x02"),
        (NON, Code.CONTINUE, b"b"),
    ]


def test_a_full_backlog_does_not_make_a_block2_continuation_raise() -> None:
    """Found reading the code behind the endpoint fuzzer's crash: the client side of it.

    A Block2 download whose first block comes as a separate response (after an empty
    ACK) asks for the next block from inside ``datagram_received``; when the
    application has filled the backlog towards that server meanwhile, BacklogFull
    escapes from ``datagram_received`` and the transfer never ends (no response, no
    RequestFailed).  Expected: the transfer fails with BacklogFull, nothing raises.
    """
    endpoint = Endpoint(rng=random.Random(1), messaging=MessagingConfig(backlog_limit=2))
    get = Message(code=Code.GET, options=Options.build(uri_path=["large"]))
    handle, output = endpoint.request(get, SERVER, 0.0)
    [(data, _)] = output.datagrams
    request = decode(data)
    endpoint.datagram_received(encode(Message(ACK, 0, request.mid)), SERVER, 0.05)
    for _ in range(3):  # one goes out (NSTART = 1), two wait: the backlog is full
        other = Message(code=Code.GET, options=Options.build(uri_path=["x"]))
        endpoint.request(other, SERVER, 0.06)
    block0 = Message(
        MessageType.CON,
        Code.CONTENT,
        0x4242,
        request.token,
        Options.build(block2=BlockValue(0, True, 6), etag=b"e"),
        bytes(1024),
    )
    output = endpoint.datagram_received(encode(block0), SERVER, 0.1)
    failed = [e for e in output.events if isinstance(e, RequestFailed)]
    assert [e.handle for e in failed] == [handle]


async def test_an_observe_registration_with_a_non_utf8_path_gets_4_00() -> None:
    """Found by fuzz/fuzz_endpoint.py's Observe glue, which copies coapkit.server's.

    GET with Observe=0 and a Uri-Path that is not UTF-8: the site answers 4.00, then
    ``Server._observe_request`` calls ``request.path``, which raises RespondWith; the
    driver logs "request handler failed" with a traceback and answers 5.00.  Any
    client can fill the server's log this way.
    """
    site = Site()

    @site.route("/obs", observable=True)
    def obs(request: Request) -> Response:
        return Response(payload="state")

    async with Server(site, bind=("127.0.0.1", 0)) as server:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            # CON GET MID 2, Observe (empty: 0), Uri-Path 0xC3 0x28
            await loop.sock_sendto(
                sock, bytes.fromhex("400100026052c328"), ("127.0.0.1", server.port)
            )
            answer = decode(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5.0))
    assert answer.code == Code.BAD_REQUEST


def test_a_retried_last_block1_block_is_not_answered_4_08() -> None:
    """Found by the soak (about 3 % of uploads at 30 % loss).

    The last block of an upload reaches the server, which reassembles the body, runs
    the handler and answers 2.04; every answer (to the five transmissions) is lost.
    The client's exchange fails with RetransmissionsExceeded and ClientTransfers asks
    for the same block again in a new exchange; the server has no body any more and
    answers 4.08 Request Entity Incomplete, which the application gets as the final
    response of an upload that did happen.  Expected: the 2.04 (the server remembers
    the answer to a finished body's last block, as it does for the previous block), or
    a RequestFailed; never a 4.08.
    """
    runs: list[int] = []

    def app(node: EndpointNode, event: IncomingRequest, now: float) -> Message:
        runs.append(len(event.request.payload))
        return Message(code=Code.CHANGED, payload=b"%d" % len(event.request.payload))

    net = SimulatedNetwork(seed=1)
    net.attach(SERVER, EndpointNode(Endpoint(rng=random.Random(1)), app))
    client = EndpointNode(Endpoint(rng=random.Random(2)))
    net.attach(CLIENT, client)
    # Server -> client: 1 and 2 answer blocks 0 and 1 (2.31), 3-7 the five copies of block 2.
    net.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset({3, 4, 5, 6, 7})))
    upload = Message(code=Code.POST, options=Options.build(uri_path=["up"]), payload=bytes(2500))
    _, datagrams = client.request(upload, SERVER, 0.0)
    net.transmit(CLIENT, datagrams)
    net.rearm(CLIENT)
    net.run_until_quiet(2000.0)
    assert runs == [2500]
    finals = [e.response.code for e in client.events_of(ResponseEvent) if e.final]
    failures = client.events_of(RequestFailed)
    assert finals == [Code.CHANGED] or (finals == [] and len(failures) == 1), (finals, failures)


@pytest.mark.parametrize(("max_size", "count"), [(1152, 100), (64, 10)])
def test_a_request_with_many_unknown_critical_options_gets_a_4_02_that_fits(
    max_size: int, count: int
) -> None:
    """Found by fuzz/fuzz_endpoint.py once main checked max_message_size on responses.

    The 4.02 Bad Option answer listed every unrecognised critical option by name; a
    request with a hundred of them made a diagnostic of ~1,500 bytes, and EncodeError
    (message above max_message_size) escaped from ``datagram_received``.
    """
    endpoint = Endpoint(rng=random.Random(1), messaging=MessagingConfig(max_message_size=max_size))
    options = Options([(65001 + 2 * n, b"") for n in range(count)])  # odd numbers: critical
    request = Message(code=Code.GET, mid=1, token=b"12345678", options=options)
    output = endpoint.datagram_received(encode(request), SERVER, 0.0)
    [(data, _)] = output.datagrams
    answer = decode(data)
    assert answer.code == Code.BAD_OPTION and len(data) <= max_size
    if max_size == 1152:
        assert answer.payload == (
            b"unrecognised critical option: Option 65001, Option 65003, Option 65005 and 97 more"
        )
    else:
        assert answer.payload == b""  # even three names do not fit in 64 bytes
