"""Congestion control (RFC 7252 §4.7): at most NSTART outstanding CONs per remote; the rest
wait in a bounded backlog and leave in order as exchanges end."""

from __future__ import annotations

import pytest

from coapkit.errors import BacklogFull, CoapError
from coapkit.messaging import (
    DeliveryFailed,
    EmptyAckReceived,
    OutgoingState,
    ResetReceived,
    TransmissionParameters,
)

from .helpers import CON, NON, A, B, C, Driver, h, make_layer, request

QUEUED = OutgoingState.QUEUED
AWAITING = OutgoingState.AWAITING_ACK


def test_cons_wait_and_leave_in_order_as_exchanges_end_by_ack_rst_timeout_and_cancel() -> None:
    d = Driver(make_layer())  # NSTART = 1, T = 2.5
    layer = d.layer
    sent = [d.send(request(CON, token=bytes((i,))), A) for i in range(5)]
    assert d.take() == [(0.0, h("4101 1000 00"), A)]
    assert [o.state for o in sent] == [AWAITING, QUEUED, QUEUED, QUEUED, QUEUED]
    assert (layer.outstanding(A), layer.backlog(A), layer.stats.queued) == (1, 4, 4)
    assert all(o.mid == -1 for o in sent[1:])  # no message ID until it leaves

    # ACK: the next one leaves in the same step with the next message ID.
    assert d.receive(h("6000 1000"), A, at=1.0) == [EmptyAckReceived(sent[0])]
    assert d.take() == [(1.0, h("4101 1001 01"), A)]
    # RST.
    assert d.receive(h("7000 1001"), A, at=2.0) == [ResetReceived(sent[1])]
    assert d.take() == [(2.0, h("4101 1002 02"), A)]
    # Timeout: 2.0 + 31 * 2.5 = 79.5, after four retransmissions.
    events = d.advance(79.5)
    assert [type(e) for e in events] == [DeliveryFailed]
    assert d.take() == [
        (4.5, h("4101 1002 02"), A),
        (9.5, h("4101 1002 02"), A),
        (19.5, h("4101 1002 02"), A),
        (39.5, h("4101 1002 02"), A),
        (79.5, h("4101 1003 03"), A),
    ]
    # Cancel.
    d.cancel(sent[3], at=80.0)
    assert sent[3].state is OutgoingState.FAILED
    assert d.take() == [(80.0, h("4101 1004 04"), A)]
    assert (layer.outstanding(A), layer.backlog(A)) == (1, 0)
    # The cancelled one is never retransmitted; the last one is, at 80 + 2.5.
    d.advance(82.5)
    assert d.take() == [(82.5, h("4101 1004 04"), A)]


def test_the_limit_is_per_remote() -> None:
    d = Driver(make_layer())
    d.send(request(CON), A)
    d.send(request(CON), A)
    d.send(request(CON), B)
    assert d.take() == [(0.0, h("4001 1000"), A), (0.0, h("4001 1001"), B)]
    assert (d.layer.backlog(A), d.layer.backlog(B)) == (1, 0)


def test_nons_behind_a_con_leave_as_soon_as_nothing_is_outstanding() -> None:
    d = Driver(make_layer())
    con = d.send(request(CON, token=b"\x01"), A)
    non1 = d.send(request(NON, token=b"\x02"), A)
    non2 = d.send(request(NON, token=b"\x03"), A)
    con2 = d.send(request(CON, token=b"\x04"), A)
    non3 = d.send(request(NON, token=b"\x05"), A)
    assert [o.state for o in (non1, non2, con2, non3)] == [QUEUED] * 4
    d.take()
    d.receive(h("6000 1000"), A, at=1.0)
    # Both NONs leave at once, then the CON, and the NON behind it waits again.
    assert d.take() == [
        (1.0, h("5101 1001 02"), A),
        (1.0, h("5101 1002 03"), A),
        (1.0, h("4101 1003 04"), A),
    ]
    assert (con.state, non1.state, non2.state) == (
        OutgoingState.ACKNOWLEDGED,
        OutgoingState.SENT,
        OutgoingState.SENT,
    )
    assert non3.state is QUEUED
    d.receive(h("6000 1003"), A, at=2.0)
    assert d.take() == [(2.0, h("5101 1004 05"), A)]


def test_nons_alone_are_not_limited() -> None:
    d = Driver(make_layer())
    for _ in range(5):
        d.send(request(NON), A)
    assert len(d.take()) == 5
    assert d.layer.outstanding(A) == 0


def test_nstart_configured_per_endpoint() -> None:
    d = Driver(make_layer(params=TransmissionParameters(nstart=2)))
    sent = [d.send(request(CON), A) for _ in range(3)]
    assert [o.state for o in sent] == [AWAITING, AWAITING, QUEUED]
    assert d.layer.outstanding(A) == 2
    d.receive(h("6000 1001"), A, at=1.0)
    assert d.take()[-1] == (1.0, h("4001 1002"), A)


def test_nstart_configured_per_peer_at_construction_and_later() -> None:
    three = TransmissionParameters(nstart=3)
    d = Driver(make_layer(peer_params={A: three}))
    assert [d.send(request(CON), A).state for _ in range(4)] == [AWAITING] * 3 + [QUEUED]
    assert [d.send(request(CON), B).state for _ in range(2)] == [AWAITING, QUEUED]
    assert d.layer.parameters_for(A) is three

    d.layer.set_peer_parameters(B, TransmissionParameters(nstart=2))
    assert d.send(request(CON), C).state is AWAITING  # unaffected
    # B already has one waiting: order is kept, so the next waits too, and the
    # backlog moves when an exchange with B ends.
    assert d.send(request(CON), B).state is QUEUED
    d.take()
    d.receive(h("6000 1003"), B, at=1.0)  # B was met after A's 0x1000-0x1002
    assert d.take() == [(1.0, h("4001 1004"), B), (1.0, h("4001 1005"), B)]
    assert d.layer.outstanding(B) == 2
    assert d.layer.outstanding(C) == 1

    d.layer.set_peer_parameters(A, None)  # back to the endpoint's NSTART = 1
    assert d.layer.parameters_for(A) is d.layer.params
    assert d.layer.peer(A).params is d.layer.params  # type: ignore[union-attr]


def test_nstart_given_per_message() -> None:
    d = Driver(make_layer())
    two = TransmissionParameters(nstart=2)
    first = d.send(request(CON), A)
    second = d.send(request(CON), A, params=two)
    third = d.send(request(CON), A, params=two)
    assert [o.state for o in (first, second, third)] == [AWAITING, AWAITING, QUEUED]
    assert second.params is two and first.params is d.layer.params


def test_a_full_backlog_raises_with_a_clear_message() -> None:
    d = Driver(make_layer(backlog_limit=2))
    for _ in range(3):
        d.send(request(CON), A)
    with pytest.raises(BacklogFull) as info:
        d.send(request(CON), A)
    assert str(info.value) == (
        "2 messages already wait for ('192.0.2.1', 5683) (NSTART=1); the backlog is full"
    )
    assert isinstance(info.value, CoapError)
    assert info.value.hint == "slow down, raise the backlog limit, or raise NSTART for this peer"
    assert d.layer.backlog(A) == 2
    d.send(request(CON), B)  # other remotes are not affected


def test_a_zero_backlog_limit_refuses_any_wait() -> None:
    d = Driver(make_layer(backlog_limit=0))
    d.send(request(CON), A)
    with pytest.raises(BacklogFull):
        d.send(request(NON), A)


def test_cancelling_a_queued_message_removes_it_from_the_backlog() -> None:
    d = Driver(make_layer())
    d.send(request(CON, token=b"\x01"), A)
    queued = d.send(request(CON, token=b"\x02"), A)
    last = d.send(request(CON, token=b"\x03"), A)
    d.cancel(queued)
    assert queued.state is OutgoingState.FAILED
    assert d.layer.backlog(A) == 1
    d.cancel(queued)  # again: nothing happens
    d.take()
    d.receive(h("6000 1000"), A, at=1.0)
    assert d.take() == [(1.0, h("4101 1001 03"), A)]
    assert last.mid == 0x1001
    d.cancel(last)
    assert d.layer.outstanding(A) == 0


def test_cancelling_an_outstanding_con_without_backlog_frees_its_slot() -> None:
    d = Driver(make_layer())
    outgoing = d.send(request(CON), A)
    d.cancel(outgoing, at=1.0)
    assert d.layer.outstanding(A) == 0
    d.advance(100.0)
    assert [t for t, _, _ in d.take()] == [0.0]  # never retransmitted
    assert d.receive(h("6000 1000"), A)[0].reason == "ACK matches no outstanding CON"  # type: ignore[union-attr]


def test_cancelling_a_finished_message_does_nothing() -> None:
    d = Driver(make_layer())
    outgoing = d.send(request(CON), A)
    d.receive(h("6000 1000"), A)
    d.cancel(outgoing)
    assert outgoing.state is OutgoingState.ACKNOWLEDGED
    non = d.send(request(NON, code=0x45), A, at=1.0)  # a NON response: not tracked
    assert not non.track_reset
    d.cancel(non)
    assert non.state is OutgoingState.SENT
