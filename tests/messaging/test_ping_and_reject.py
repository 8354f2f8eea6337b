"""Pings (RFC 7252 §4.3), rejecting messages (§4.2, §4.3) and what malformed or impossible
datagrams get: an RST for a CON whose header was readable, otherwise nothing
(docs/architecture.md rule 8)."""

from __future__ import annotations

import pytest

from coapkit.messaging import (
    EmptyAckReceived,
    MessageIgnored,
    MessageLayer,
    OutgoingState,
    ResetReceived,
)
from coapkit.testing import LinkConditions, MessageLayerNode, SimulatedNetwork

from .helpers import CON, NON, SERVER, A, Driver, ScriptedRandom, h, make_layer, request


def test_an_empty_con_is_answered_with_an_rst_carrying_its_mid() -> None:
    d = Driver(make_layer())
    assert d.receive(h("4000 beef"), A, at=1.0) == []  # nothing for the layer above
    assert d.take() == [(1.0, h("7000 beef"), A)]
    assert d.layer.stats.resets_sent == 1


def test_a_ping_is_answered_even_while_requests_are_outstanding() -> None:
    d = Driver(make_layer())
    outgoing = d.send(request(CON), A)
    d.receive(h("4000 1000"), A)  # the peer pings with the MID we use: still just a ping
    assert d.take() == [(0.0, h("4001 1000"), A), (0.0, h("7000 1000"), A)]
    assert outgoing.state is OutgoingState.AWAITING_ACK


def test_sending_an_empty_con_is_a_ping_answered_by_reset() -> None:
    d = Driver(make_layer())
    ping = d.send(request(CON, code=0), A, at=2.0)
    assert d.take() == [(2.0, h("4000 1000"), A)]
    d.advance(4.5)
    assert d.take() == [(4.5, h("4000 1000"), A)]  # retransmitted like any CON
    assert d.receive(h("7000 1000"), A, at=5.0) == [ResetReceived(ping)]
    assert ping.state is OutgoingState.RESET


def test_an_empty_ack_for_an_outstanding_con_is_consumed() -> None:
    d = Driver(make_layer())
    ping = d.send(request(CON, code=0), A)
    assert d.receive(h("6000 1000"), A) == [EmptyAckReceived(ping)]


def test_a_ping_over_the_simulated_network() -> None:
    net = SimulatedNetwork(seed=1, conditions=LinkConditions(latency=0.25))
    client = MessageLayerNode(MessageLayer(rng=ScriptedRandom()))
    server = MessageLayerNode(MessageLayer(rng=ScriptedRandom(first_mid=0x2000)))
    net.attach(A, client)
    net.attach(SERVER, server)
    pings = []

    def ping(now: float) -> list[tuple[bytes, object]]:
        out: list[tuple[bytes, object]] = []
        pings.append(client.layer.send(request(CON, code=0), SERVER, now, out))
        return out

    net.call_at(1.0, A, ping)
    net.run_until(10.0)
    assert [(e.time, e.event, e.src, e.data) for e in net.trace] == [
        (1.0, "sent", A, h("4000 1000")),
        (1.25, "delivered", A, h("4000 1000")),
        (1.25, "sent", SERVER, h("7000 1000")),
        (1.5, "delivered", SERVER, h("7000 1000")),
    ]
    assert client.events == [(1.5, ResetReceived(pings[0]))]
    assert server.events == []


def test_a_tracked_non_request_can_be_reset() -> None:
    d = Driver(make_layer())
    non = d.send(request(NON), A)
    assert non.track_reset and non.state is OutgoingState.SENT
    assert d.receive(h("7000 1000"), A) == [ResetReceived(non)]
    assert non.state is OutgoingState.RESET
    # The RST was consumed: a second one matches nothing.
    assert isinstance(d.receive(h("7000 1000"), A)[0], MessageIgnored)


def test_an_untracked_non_cannot_be_reset() -> None:
    d = Driver(make_layer())
    d.send(request(NON), A, track_reset=False)
    assert d.receive(h("7000 1000"), A) == [
        MessageIgnored(A, "RST matches no message sent", h("7000 1000"))
    ]


def test_only_the_most_recent_nons_are_tracked() -> None:
    d = Driver(make_layer(recent_non_limit=2))
    sent = [d.send(request(NON), A) for _ in range(3)]
    assert isinstance(d.receive(h("7000 1000"), A)[0], MessageIgnored)  # forgotten
    assert d.receive(h("7000 1002"), A) == [ResetReceived(sent[2])]


def test_no_non_is_tracked_with_a_zero_limit() -> None:
    d = Driver(make_layer(recent_non_limit=0))
    d.send(request(NON), A)
    assert isinstance(d.receive(h("7000 1000"), A)[0], MessageIgnored)


def test_cancelling_a_tracked_non_forgets_it() -> None:
    d = Driver(make_layer())
    non = d.send(request(NON), A)
    d.cancel(non)
    assert isinstance(d.receive(h("7000 1000"), A)[0], MessageIgnored)


def test_tracked_nons_are_forgotten_when_their_mid_expires() -> None:
    d = Driver(make_layer(expiry_tick=0.0))
    d.send(request(NON), A)
    d.send(request(NON), A, at=1.0)
    d.advance(247.0)  # the first one's message ID expires
    assert isinstance(d.receive(h("7000 1000"), A)[0], MessageIgnored)
    assert d.layer.peer(A).recent_non.keys() == {0x1001}  # type: ignore[union-attr]
    d.advance(262.0)  # the second one's hold ends with its slice (247 / 16 s): 17 slices
    assert d.layer.peer(A).recent_non.keys() == {0x1001}  # type: ignore[union-attr]
    d.advance(17 * 247 / 16)
    assert d.layer.peer(A) is None


# -- malformed datagrams ---------------------------------------------------------------

DROPPED = ["", "40", "400197", "80019998"]
RESET = [
    "49010001",  # TKL 9
    "48010001aabb",  # token runs past the end
    "40010001d0",  # option delta extension missing
    "40010001e001",  # 2-byte delta extension cut short
    "400100010d",  # option length extension missing
    "40010001f1",  # delta nibble 15
    "400100010f",  # length nibble 15
    "40010001ff",  # payload marker without payload
    "40010001e0fef2c0",  # option number above 65535
    "400100010effff",  # option value runs past the end
    "4100000100",  # empty message with a token
    "40200001",  # code class 1
    "40c00001",  # code class 6
    "40e00001",  # code class 7 (signaling, not over UDP)
]


@pytest.mark.parametrize("data", DROPPED)
def test_malformed_without_a_readable_header_is_dropped(data: str) -> None:
    d = Driver(make_layer())
    (event,) = d.receive(h(data), A)
    assert isinstance(event, MessageIgnored)
    assert event.reason.startswith("malformed: ") and event.data == h(data) and event.remote == A
    assert d.take() == []
    assert (d.layer.stats.malformed, d.layer.stats.resets_sent, d.layer.peer_count) == (1, 0, 0)


@pytest.mark.parametrize("data", RESET)
def test_a_malformed_con_with_a_readable_header_gets_exactly_an_rst(data: str) -> None:
    d = Driver(make_layer())
    (event,) = d.receive(h(data), A, at=1.0)
    assert isinstance(event, MessageIgnored) and event.reason.startswith("malformed: ")
    assert d.take() == [(1.0, h("70000001"), A)]
    assert (d.layer.stats.malformed, d.layer.stats.resets_sent) == (1, 1)
    assert (d.layer.dedup_entries, d.layer.peer_count) == (0, 0)


@pytest.mark.parametrize("data", RESET)
def test_the_same_malformed_message_as_non_ack_or_rst_is_dropped(data: str) -> None:
    for type_bits in (0x10, 0x20, 0x30):
        raw = bytearray(h(data))
        raw[0] |= type_bits
        d = Driver(make_layer())
        (event,) = d.receive(bytes(raw), A)
        assert isinstance(event, MessageIgnored)
        assert d.take() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("60010001", "request carried in an ACK"),
        ("70000001ff41", None),  # a non-empty RST: malformed, and not a CON
        ("70450001", "RST that is not empty"),
        ("50000001", "empty NON message"),
        ("6000abcd", "ACK matches no outstanding CON"),
        ("7000abcd", "RST matches no message sent"),
    ],
)
def test_impossible_combinations_are_ignored_and_nothing_is_sent(
    data: str, reason: str | None
) -> None:
    d = Driver(make_layer())
    (event,) = d.receive(h(data), A)
    assert isinstance(event, MessageIgnored) and event.data == h(data)
    if reason is not None:
        assert event.reason == reason
        assert d.layer.stats.ignored == 1
    else:
        assert event.reason.startswith("malformed: ")
    assert d.take() == []
    assert d.layer.peer_count == 0


def test_an_unrecognised_con_response_is_reset_but_unmatched_acks_and_nons_are_ignored() -> None:
    d = Driver(make_layer())
    (con,) = d.receive(h("4145 0100 01"), A)  # a separate response nobody asked for
    d.reject(con.inbound)  # type: ignore[union-attr, arg-type]
    assert d.take() == [(0.0, h("7000 0100"), A)]
    (ack,) = d.receive(h("6145 0101 01"), A)
    assert isinstance(ack, MessageIgnored)
    (non,) = d.receive(h("5145 0102 01"), A)  # the layer above just lets it go
    d.accept(non.inbound)  # type: ignore[union-attr, arg-type]
    assert d.take() == []


@pytest.mark.parametrize("code", [0x20, 0xC0, 0xE1], ids=["1.00", "6.00", "7.01"])
def test_an_ack_in_a_reserved_class_fails_its_con_at_once(code: int) -> None:
    """The peer received the CON (its ACK says so) but answered with a code nothing can
    read; its deduplication would send the same again: the CON fails now, and the next
    message to that peer may go (NSTART)."""
    from coapkit.errors import ReservedCodeResponse
    from coapkit.messaging import DeliveryFailed

    d = Driver(make_layer())
    outgoing = d.send(request(CON), A, at=1.0)
    waiting = d.send(request(CON), A, at=1.0)  # queued behind it (NSTART 1)
    d.take()
    [failed] = d.receive(bytes((0x61, code, 0x10, 0x00, 0x74)) + b"\xffhi", A, at=1.5)
    assert isinstance(failed, DeliveryFailed) and failed.outgoing is outgoing
    assert isinstance(failed.error, ReservedCodeResponse) and failed.error.code == code
    assert outgoing.state is OutgoingState.FAILED
    assert [when for when, _, _ in d.take()] == [1.5]  # the next CON went out
    assert waiting.state is OutgoingState.AWAITING_ACK
    d.advance(60.0)
    assert [data[2:4] for _, data, _ in d.take()] == [h("1001")] * 4  # only its retransmissions


def test_an_ack_in_a_reserved_class_for_nothing_outstanding_is_ignored() -> None:
    d = Driver(make_layer())
    [ignored] = d.receive(h("60c0 4242"), A, at=1.0)
    assert isinstance(ignored, MessageIgnored) and "reserved class" in ignored.reason
    assert d.take() == []
