"""The endpoint's fast path (Endpoint.accept_request, Endpoint.respond_now), case by case.

Each shortcut either does exactly what the general path (datagram_received,
respond) would do, or declines having changed nothing.  The endpoint fuzz
harness (fuzz/fuzz_endpoint.py, run by tests/fuzz) compares the two paths
step by step on random scripts; here each reason to decline is named.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.endpoint import Endpoint
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.exchanges.events import IncomingRequest
from coapkit.messaging.records import InboundState
from coapkit.resources import Response

CON, NON = MessageType.CON, MessageType.NON
CLIENT = ("192.0.2.1", 40000)
OTHER = ("192.0.2.2", 40000)


def endpoint(**kwargs: Any) -> Endpoint:
    return Endpoint(rng=random.Random(5), **kwargs)


def request(mid: int, mtype: MessageType = CON, **options: Any) -> bytes:
    options.setdefault("uri_path", ["hello"])
    return Message(
        mtype, Code.GET, mid=mid, token=b"tok%d" % mid, options=Options.build(**options)
    ).encode()


def state(ep: Endpoint) -> tuple[Any, ...]:
    messaging = ep.messaging
    return (asdict(messaging.stats), messaging.dedup_entries, messaging.peer_count)


def known(ep: Endpoint, remote: Any = CLIENT, mtype: MessageType = CON) -> None:
    """Let ``remote`` send a first request of ``mtype`` through the general path (answered)."""
    [event] = ep.datagram_received(request(1, mtype), remote, 0.0).events
    ep.respond(event.handle, Message(code=Code.CONTENT), 0.0)


def test_a_plain_request_from_a_known_peer_is_taken_as_the_general_path_would() -> None:
    fast, general = endpoint(), endpoint()
    for ep in (fast, general):
        known(ep)
    data = request(2, uri_query=["a=1"], accept=0)
    inbound = fast.accept_request(data, CLIENT, 1.0)
    assert inbound is not None
    [event] = general.datagram_received(data, CLIENT, 1.0).events
    assert isinstance(event, IncomingRequest)
    assert inbound.message == event.request
    assert (inbound.remote, inbound.mid, inbound.size) == (CLIENT, 2, len(data))
    assert state(fast) == state(general)

    response = Message(code=Code.CONTENT, payload=b"hi", options=Options.build(max_age=5))
    sent = fast.respond_now(inbound, response, 1.0)
    [(expected, remote)] = general.respond(event.handle, response, 1.0).datagrams
    assert (sent, remote) == (expected, CLIENT)
    assert inbound.state is InboundState.DONE
    assert state(fast) == state(general)
    # a duplicate gets the stored reply from the general path, as usual
    assert fast.accept_request(data, CLIENT, 1.5) is None
    assert fast.datagram_received(data, CLIENT, 1.5).datagrams == [(expected, CLIENT)]


def test_respond_now_takes_a_resources_response_as_it_is() -> None:
    """Anything with code, options and payload will do (ResponseParts): a server hands its
    handler's Response over without making a message of it; the token is the request's."""
    by_message, by_response = endpoint(), endpoint()
    sent = []
    for ep, answer in (
        (by_message, Message(code=Code.CONTENT, payload=b"hi", options=Options.build(etag=b"1"))),
        (by_response, Response(Code.CONTENT, b"hi", etag=b"1")),
    ):
        known(ep)
        inbound = ep.accept_request(request(2), CLIENT, 1.0)
        assert inbound is not None
        sent.append(ep.respond_now(inbound, answer, 1.0))
    assert sent[0] is not None and sent[0] == sent[1]
    reply = Message.decode(sent[1])
    assert (reply.mtype, reply.mid, reply.token) == (MessageType.ACK, 2, b"tok2")
    assert state(by_message) == state(by_response)


@pytest.mark.parametrize(
    ("why", "data", "remote"),
    [
        ("first message from this peer", request(2), OTHER),
        ("first NON from this peer", request(2, NON), CLIENT),
        ("a duplicate", request(1), CLIENT),
        ("observe", request(2, observe=0), CLIENT),
        ("block-wise", request(2, block2=0x02), CLIENT),
        ("No-Response", request(2, no_response=0x02), CLIENT),
        ("an ETag", request(2, etag=b"1"), CLIENT),
        ("a response", Message(CON, Code.CONTENT, mid=2).encode(), CLIENT),
        ("an empty CON (ping)", Message(CON, 0, mid=2).encode(), CLIENT),
        ("an ACK", Message(MessageType.ACK, 0, mid=2).encode(), CLIENT),
        ("malformed", bytes.fromhex("4001000273"), CLIENT),
        ("a reserved token length", bytes.fromhex("49010002"), CLIENT),
        (
            "Uri-Port of 3 bytes",
            request(2, uri_port=1).replace(b"\x71\x01", b"\x73\x01\x02\x03"),
            CLIENT,
        ),
    ],
)
def test_anything_else_is_declined_and_changes_nothing(why: str, data: bytes, remote: Any) -> None:
    ep = endpoint()
    known(ep)
    before = state(ep)
    assert ep.accept_request(data, remote, 1.0) is None, why
    assert state(ep) == before


def test_an_unrecognised_critical_option_is_declined() -> None:
    ep = endpoint()
    known(ep)
    message = Message(CON, Code.GET, mid=2, options=Options(((9, b"x"), (11, b"hello"))))
    assert ep.accept_request(message.encode(), CLIENT, 1.0) is None
    # the general path answers it with 4.02
    [(reply, _)] = ep.datagram_received(message.encode(), CLIENT, 1.0).datagrams
    assert Message.decode(reply).code == Code.BAD_OPTION


def test_declined_when_timers_are_due() -> None:
    ep = endpoint()
    known(ep)
    due = ep.messaging._dedup.earliest
    assert ep.accept_request(request(2), CLIENT, due) is None  # expiry first: general path
    assert ep.accept_request(request(2), CLIENT, due - 1.0) is not None


def test_with_the_defence_on_a_small_answer_goes_fast_as_respond_would_send_it() -> None:
    """The amplification defence lets a response within 3x the request (or 136 bytes) go
    to an unverified source unasked: the fast path sends it, byte for byte the same."""
    fast, general = (endpoint(amplification=AmplificationConfig()) for _ in range(2))
    for ep in (fast, general):
        known(ep)
    data = request(2)
    inbound = fast.accept_request(data, CLIENT, 1.0)
    assert inbound is not None
    [event] = general.datagram_received(data, CLIENT, 1.0).events
    response = Message(code=Code.CONTENT, payload=b"x" * 100)
    sent = fast.respond_now(inbound, response, 1.0)
    [(expected, _)] = general.respond(event.handle, response, 1.0).datagrams
    assert sent == expected
    assert state(fast) == state(general)


def test_with_the_defence_on_a_large_answer_is_left_to_respond() -> None:
    """Over the limit, an unverified source gets a 4.01 Echo challenge: respond decides."""
    ep = endpoint(amplification=AmplificationConfig())
    known(ep)
    inbound = ep.accept_request(request(2), CLIENT, 1.0)
    assert inbound is not None
    before = state(ep)
    assert ep.respond_now(inbound, Message(code=Code.CONTENT, payload=b"x" * 200), 1.0) is None
    assert inbound.state is InboundState.PENDING
    assert state(ep) == before
    [(reply, _)] = ep.respond(
        inbound, Message(code=Code.CONTENT, payload=b"x" * 200), 1.0
    ).datagrams
    assert Message.decode(reply).code == Code.UNAUTHORIZED


def test_a_multicast_or_oversized_request_is_declined() -> None:
    ep = endpoint()
    known(ep)
    big = request(2, uri_query=["x" * 250] * 5)
    assert ep.accept_request(big, CLIENT, 1.0) is None
    assert ep.datagram_received(big, CLIENT, 1.0).datagrams  # 4.13 from the general path


@pytest.mark.parametrize(
    ("why", "response"),
    [
        ("too large for one block", Message(code=Code.CONTENT, payload=b"x" * 1025)),
        ("an observe notification", Message(code=Code.CONTENT, options=Options.build(observe=3))),
        (
            "over max_message_size",
            Message(
                code=Code.CONTENT,
                payload=b"x" * 1000,
                options=Options.build(location_path=["p" * 200]),
            ),
        ),
    ],
)
def test_respond_now_declines_what_respond_must_decide(why: str, response: Message) -> None:
    ep = endpoint()
    known(ep)
    inbound = ep.accept_request(request(2), CLIENT, 1.0)
    assert inbound is not None
    before = state(ep)
    assert ep.respond_now(inbound, response, 1.0) is None, why
    assert inbound.state is InboundState.PENDING
    assert state(ep) == before


def test_a_non_request_is_answered_with_a_non_at_once_as_respond_would() -> None:
    fast, general = endpoint(), endpoint()
    for ep in (fast, general):
        known(ep, mtype=NON)
    data = request(2, NON)
    inbound = fast.accept_request(data, CLIENT, 1.0)
    assert inbound is not None and inbound.mtype is NON
    [event] = general.datagram_received(data, CLIENT, 1.0).events
    response = Message(code=Code.CONTENT, payload=b"hi")
    sent = fast.respond_now(inbound, response, 1.0)
    [(expected, _)] = general.respond(event.handle, response, 1.0).datagrams
    assert sent == expected
    answer = Message.decode(sent)
    assert (answer.mtype, answer.token) == (NON, b"tok2")
    assert state(fast) == state(general)
    assert fast.next_deadline() == general.next_deadline()  # the message ID's hold


def test_a_non_answer_waits_its_turn_behind_an_outstanding_con() -> None:
    ep = endpoint()
    known(ep, mtype=NON)
    ep.request(Message(code=Code.GET), CLIENT, 1.0)  # a CON of ours is outstanding (NSTART 1)
    inbound = ep.accept_request(request(2, NON), CLIENT, 1.0)
    assert inbound is not None
    before = state(ep)
    assert ep.respond_now(inbound, Message(code=Code.CONTENT), 1.0) is None
    assert state(ep) == before
    assert inbound.state is InboundState.PENDING
    assert ep.respond(inbound, Message(code=Code.CONTENT), 1.0).datagrams == []  # queued
    assert ep.messaging.backlog(CLIENT) == 1


def test_respond_now_declines_a_request_already_acknowledged() -> None:
    ep = endpoint()
    known(ep)
    con = ep.accept_request(request(3), CLIENT, 1.0)
    assert con is not None
    ep.handle_timeout(1.0 + ep.messaging.config.empty_ack_delay)  # the empty ACK goes out
    assert con.state is InboundState.ACKED
    assert ep.respond_now(con, Message(code=Code.CONTENT), 1.0) is None


def test_a_non_answer_to_a_peer_forgotten_meanwhile_goes_the_general_way() -> None:
    ep = endpoint()
    known(ep, mtype=NON)
    inbound = ep.accept_request(request(2, NON), CLIENT, 1.0)
    assert inbound is not None
    later = 1000.0  # every lifetime has passed: the peer is forgotten
    ep.handle_timeout(later)
    assert ep.messaging.peer(CLIENT) is None
    assert ep.respond_now(inbound, Message(code=Code.CONTENT), later) is None
    [(sent, _)] = ep.respond(inbound, Message(code=Code.CONTENT), later).datagrams
    assert Message.decode(sent).mtype is NON  # from a peer record made anew
    assert ep.messaging.peer(CLIENT) is not None
