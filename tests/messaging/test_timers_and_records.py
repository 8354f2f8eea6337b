"""Timer bookkeeping corners (lazy cancellation, several runs expiring at once), late calls
to handle_timeout, and the records' introspection."""

from __future__ import annotations

from coapkit.messaging import InboundState, OutgoingState, RequestReceived
from coapkit.messaging.message_ids import MID_SPACE

from .helpers import (
    CON,
    GET,
    GROUP4,
    NON,
    A,
    B,
    Driver,
    h,
    make_layer,
    request,
    response,
    wire,
)


def test_a_late_timer_call_skips_cancelled_retransmissions() -> None:
    layer = make_layer(randoms=(0.5, 0.6))
    first = layer.send(request(CON), A, 0.0, [])  # due 2.5
    second = layer.send(request(CON), B, 0.0, [])  # due 2.6
    layer.receive(h("6000 1001"), B, 1.0, [])  # B's is acknowledged: its heap entry is stale
    out: list[tuple[bytes, object]] = []
    assert layer.handle_timeout(3.0, out) == []  # no next_deadline() call in between
    assert out == [(h("4001 1000"), A)]
    assert first.due == 3.0 + 5.0  # the next interval counts from the (late) call
    assert second.state is OutgoingState.ACKNOWLEDGED


def test_a_late_timer_call_skips_answered_requests_when_sending_empty_acks() -> None:
    layer = make_layer()
    events = []
    for mid in (1, 2, 3):
        events += layer.receive(wire(CON, GET, mid, b"\x01"), A, mid * 0.01, [])
    layer.respond(events[1].inbound, response(token=b"\x01"), 0.05, [])  # type: ignore[union-attr]
    out: list[tuple[bytes, object]] = []
    layer.handle_timeout(1.0, out)
    assert out == [(h("6000 0001"), A), (h("6000 0003"), A)]


def test_next_deadline_skips_answered_requests_and_cancelled_retransmissions() -> None:
    d = Driver(make_layer(expiry_tick=0.0))
    (event,) = d.receive(wire(CON, GET, 1, b"\x01"), A, at=0.0)
    d.respond(event.inbound, response(token=b"\x01"))  # type: ignore[union-attr]
    outgoing = d.send(request(CON), B)
    d.cancel(outgoing)
    # Neither the empty-ACK timer (0.1) nor the retransmission (2.5) is left:
    assert d.layer.next_deadline() == 247.0  # the first expiry (B's message-ID hold)


def test_several_runs_of_one_peer_expire_in_one_call() -> None:
    layer = make_layer(expiry_tick=0.0)
    for now in (0.0, 1.0, 2.0):
        layer.receive(wire(NON, GET, int(now), b"\x01"), A, now, [])
        layer.send(request(NON), B, now, [])
    assert (layer.dedup_entries, layer.peer_count) == (3, 2)
    layer.handle_timeout(500.0, [])
    assert (layer.dedup_entries, layer.peer_count, layer.next_deadline()) == (0, 0, None)


def test_a_multicast_response_without_a_free_mid_is_dropped() -> None:
    d = Driver(make_layer())
    for _ in range(MID_SPACE):
        d.layer.send(request(NON), A, 0.0, [])
    (event,) = d.receive(wire(NON, GET, 7, b"\x01"), A, at=1.0, multicast=True)
    assert isinstance(event, RequestReceived)
    assert d.respond(event.inbound, response(token=b"\x01")) is None
    assert event.inbound.state is InboundState.DONE
    d.advance(10.0)
    assert d.take() == []
    assert d.layer.stats.suppressed == 1


def test_shutdown_drops_delayed_multicast_responses() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(wire(NON, GET, 7, b"\x01"), A, multicast=True)
    d.respond(event.inbound, response(token=b"\x01"))  # type: ignore[union-attr]
    d.layer.shutdown(1.0)
    assert d.layer.handle_timeout(10.0, []) == []


def test_records_and_peers_describe_themselves() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(wire(CON, GET, 0x42, b"\x01"), A)
    assert isinstance(event, RequestReceived)
    assert repr(event.inbound) == "<Inbound CON mid=66 from ('192.0.2.1', 5683) PENDING>"
    outgoing = d.send(request(CON), A)
    queued = d.send(request(CON), A)
    assert repr(outgoing) == "<Outgoing CON mid=4096 to ('192.0.2.1', 5683) AWAITING_ACK>"
    assert repr(queued) == "<Outgoing CON mid=-1 to ('192.0.2.1', 5683) QUEUED>"
    assert repr(d.layer.peer(A)) == (
        "<Peer ('192.0.2.1', 5683) dedup=1 mids=1 outstanding=1 backlog=1>"
    )
    assert outgoing.confirmable and not outgoing.finished and not queued.finished
    d.receive(h("6000 1000"), A)
    assert outgoing.finished and queued.state is OutgoingState.AWAITING_ACK
    non = d.send(request(NON), GROUP4)
    assert non.finished and not non.confirmable
    assert len(d.layer._dedup) == d.layer.dedup_entries == 1


def test_introspection_of_unknown_remotes() -> None:
    layer = make_layer()
    assert (layer.outstanding(A), layer.backlog(A), layer.peer(A)) == (0, 0, None)
    assert layer.parameters_for(A) is layer.params
    assert not layer.closed
