"""The peer table is capped (MessagingConfig.max_peers).

A new remote may take the place of a peer that holds no message ID (RFC 7252 §4.4
forbids reusing an ID within EXCHANGE_LIFETIME, and a forgotten peer would start a
new sequence), and only when it comes with a CON or is sent to; otherwise it is
refused without state: 5.03 with Max-Age for a CON request, an RST for another CON,
nothing for a NON.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from coapkit.codec.message import Message
from coapkit.errors import BacklogFull, PeerTableFull
from coapkit.messaging import (
    DEFAULT_PARAMETERS,
    MessageIgnored,
    MessagingConfig,
    Remote,
    RequestReceived,
    ResponseReceived,
)

from .helpers import (
    ACK,
    CON,
    CONTENT,
    GET,
    NON,
    A,
    B,
    C,
    Driver,
    h,
    make_layer,
    request,
    response,
    wire,
)

D: Remote = ("192.0.2.4", 5683)
#: the latest a hold taken at 0 is released: the lifetime rounded up to its slice
RELEASED = DEFAULT_PARAMETERS.exchange_lifetime * 17 / 16


def answered_piggybacked(d: Driver, remote: Remote, mid: int) -> None:
    (event,) = d.receive(wire(CON, GET, mid, b"\x01"), remote)
    assert isinstance(event, RequestReceived)
    d.respond(event.inbound, response(token=b"\x01"))


def answered_with_a_non(d: Driver, remote: Remote, mid: int) -> None:
    (event,) = d.receive(wire(NON, GET, mid, b"\x02"), remote)
    assert isinstance(event, RequestReceived)
    d.respond(event.inbound, response(token=b"\x02"))  # a NON: its message ID is held


def test_the_cap_must_be_positive() -> None:
    for settings in ({"max_peers": 0}, {"mid_hold_slices": 0}, {"refusal_max_age": -1}):
        with pytest.raises(ValueError):
            MessagingConfig(**settings)


def test_a_new_con_remote_evicts_the_peer_evictable_longest_with_its_entries() -> None:
    d = Driver(make_layer(max_peers=3))
    for mid, remote in enumerate((A, B, C)):
        answered_piggybacked(d, remote, mid)
    assert (d.layer.peer_count, d.layer.dedup_entries) == (3, 3)
    answered_piggybacked(d, D, 9)
    assert (d.layer.peer(A), d.layer.peer_count, d.layer.dedup_entries) == (None, 3, 3)
    assert (d.layer.stats.peers_evicted, d.layer.stats.dedup_evictions) == (1, 1)
    # The cost of eviction: A's duplicate is a new message now (it went with A's entries).
    assert [type(e) for e in d.receive(wire(CON, GET, 0, b"\x01"), A)] == [RequestReceived]
    assert d.layer.peer(B) is None  # and A, in turn, took the place of B
    assert d.layer.stats.duplicates == 0


def test_peers_holding_message_ids_are_not_evicted_and_new_remotes_are_refused() -> None:
    d = Driver(make_layer(max_peers=2))
    answered_with_a_non(d, A, 1)
    answered_with_a_non(d, B, 2)
    d.take()
    # A CON request: 5.03 Service Unavailable, Max-Age 5, piggybacked on its own ID.
    events = d.receive(wire(CON, GET, 0x0777, b"\x07\x07"), C)
    assert [type(e) for e in events] == [MessageIgnored]
    assert d.take() == [(0.0, h("62a3 0777 0707 d1 01 05"), C)]
    # A retransmission gets the same answer: nothing was remembered.
    d.receive(wire(CON, GET, 0x0777, b"\x07\x07"), C)
    assert d.take() == [(0.0, h("62a3 0777 0707 d1 01 05"), C)]
    # A NON: nothing; a CON that is not a request: an RST.
    assert [type(e) for e in d.receive(wire(NON, GET, 0x0778), C)] == [MessageIgnored]
    assert [type(e) for e in d.receive(wire(CON, CONTENT, 0x0779, b"\x01"), C)] == [MessageIgnored]
    assert d.take() == [(0.0, h("7000 0779"), C)]
    assert (d.layer.peer(C), d.layer.peer_count) == (None, 2)
    assert (d.layer.stats.peers_refused, d.layer.stats.peers_evicted) == (4, 0)
    # The peers already known are served as before.
    d.advance(200.0)
    answered_piggybacked(d, A, 3)
    answered_piggybacked(d, B, 4)
    d.receive(wire(CON, GET, 0x0780), C)
    assert d.take()[-1] == (200.0, h("60a3 0780 d1 01 05"), C)
    # Once their holds are released, A and B have only deduplication entries: C may come in.
    d.advance(RELEASED)
    assert d.layer.peer_count == 2
    assert [type(e) for e in d.receive(wire(CON, GET, 0x0777, b"\x07\x07"), C)] == [RequestReceived]
    assert d.layer.stats.peers_evicted == 1


def test_no_response_to_5_xx_silences_the_refusal() -> None:
    d = Driver(make_layer(max_peers=1))
    answered_with_a_non(d, A, 1)
    d.take()
    d.receive(wire(CON, GET, 0x0777, no_response=0x10), C)
    assert d.take() == []
    d.receive(wire(CON, GET, 0x0778, no_response=0x02), C)  # suppresses 2.xx only
    assert [data[1] for _, data, _ in d.take()] == [0xA3]


def test_outstanding_cons_pin_their_peer_and_sending_to_a_new_remote_raises() -> None:
    d = Driver(make_layer(max_peers=1))
    con = d.send(request(CON, token=b"\x05"), A)
    d.take()
    with pytest.raises(PeerTableFull) as raised:
        d.send(request(NON), B)
    assert isinstance(raised.value, BacklogFull)  # whoever handles a full backlog handles this
    assert "max_peers" in raised.value.hint
    assert (d.layer.peer(B), d.layer.peer_count) == (None, 1)
    d.receive(wire(CON, GET, 0x0100), B)
    assert d.take() == [(0.0, h("60a3 0100 d1 01 05"), B)]
    # The ACK ends the exchange, but the CON's ID stays held: still no room.
    events = d.receive(wire(ACK, CONTENT, con.mid, b"\x05"), A)
    assert [type(e) for e in events] == [ResponseReceived]
    with pytest.raises(PeerTableFull):
        d.send(request(NON), B)
    d.advance(RELEASED)
    assert d.layer.peer_count == 0  # released and forgotten: a free slot
    d.send(request(NON), B)
    assert d.layer.peer(B) is not None


def test_sending_to_a_new_remote_may_evict() -> None:
    d = Driver(make_layer(max_peers=1))
    answered_piggybacked(d, A, 1)
    d.send(request(NON), B)
    assert (d.layer.peer(A), d.layer.stats.peers_evicted) == (None, 1)


def test_a_non_from_a_new_remote_takes_only_a_free_slot() -> None:
    """Answering a NON pins its peer; a NON flood must not turn active clients' slots into
    pinned ones, so a NON from a new remote never evicts."""
    d = Driver(make_layer(max_peers=2))
    answered_piggybacked(d, A, 1)  # evictable: only a deduplication entry
    answered_with_a_non(d, B, 2)  # pinned
    assert [type(e) for e in d.receive(wire(NON, GET, 3), C)] == [MessageIgnored]
    assert (d.layer.peer(A) is not None, d.layer.peer(C)) == (True, None)
    assert [type(e) for e in d.receive(wire(CON, GET, 3), C)] == [RequestReceived]
    assert d.layer.peer(A) is None


def test_a_response_to_a_request_whose_peer_was_evicted_still_goes_out() -> None:
    d = Driver(make_layer(max_peers=1))
    (event,) = d.receive(wire(NON, GET, 1, b"\x01"), A)
    assert isinstance(event, RequestReceived)
    answered_piggybacked(d, B, 2)  # A (only a deduplication entry so far) makes room
    assert d.layer.peer(A) is None
    d.take()
    # The answer is sent like any message to a new remote: B makes room in turn.
    assert d.layer.respond_now(event.inbound, response(token=b"\x01"), d.now) is None
    d.respond(event.inbound, response(token=b"\x01"))
    assert [(data[:2], remote) for _, data, remote in d.take()] == [(h("5145"), A)]
    assert (d.layer.peer(B), d.layer.stats.peers_evicted) == (None, 2)
    # Now A holds an ID: B, new again, is refused.
    assert [type(e) for e in d.receive(wire(CON, GET, 3, b"\x03"), B)] == [MessageIgnored]
    assert d.take() == [(0.0, h("61a3 0003 03 d1 01 05"), B)]


class CountingOrderedDict(OrderedDict[Any, Any]):
    """An OrderedDict that counts the entries taken from its front."""

    popped = 0

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        CountingOrderedDict.popped += 1
        return super().popitem(last)


def test_a_flood_of_new_remotes_keeps_the_table_at_its_cap_and_clients_are_served() -> None:
    """100,000 requests from 100,000 new remotes, a third of them NON answered with a NON
    (pinned for the lifetime), the rest CON answered piggybacked: the table stays at
    max_peers, each new remote costs O(1) (one peer taken from the front of the evictable
    ones), and two clients already known, one CON and one NON, are answered every time."""
    layer = make_layer(max_peers=1000)
    layer._evictable = evictable = CountingOrderedDict(layer._evictable)
    CountingOrderedDict.popped = 0
    con_client, non_client = ("203.0.113.1", 1), ("203.0.113.2", 2)
    answer = Message(ACK, CONTENT, 0, b"t")
    served = 0

    def exchange(data: bytes, remote: Remote, now: float) -> list[tuple[bytes, Remote]]:
        out: list[tuple[bytes, Remote]] = []
        for event in layer.receive(data, remote, now, out):
            if isinstance(event, RequestReceived):
                layer.respond(event.inbound, answer, now, out)
        return out

    for i in range(100_000):
        now = i * 0.002  # 500 new remotes per second for 200 s
        remote = (f"10.{i >> 16}.{(i >> 8) & 0xFF}.{i & 0xFF}", 5683)
        exchange(wire(NON if i % 3 == 0 else CON, GET, 1, b"t"), remote, now)
        if i % 100 == 0:
            mid = (i // 100) & 0xFFFF
            for client, mtype in ((con_client, CON), (non_client, NON)):
                out = exchange(wire(mtype, GET, mid, b"c"), client, now)
                assert [data[1] for data, _ in out] == [CONTENT], (i, client, out)
                served += 1
            while (deadline := layer.next_deadline()) is not None and deadline <= now:
                layer.handle_timeout(deadline, [])
            assert layer.peer_count <= 1000
            assert len(evictable) <= layer.peer_count
            assert layer.mid_hold_runs <= 17 * layer.peer_count
    assert served == 2000
    assert layer.peer_count == 1000
    stats = layer.stats
    assert stats.peers_evicted > 60_000 and stats.peers_refused > 30_000
    # O(1) per new remote: one entry off the front of the evictable peers per eviction,
    # plus at most one for each peer listed there that turned out to hold IDs since.
    assert CountingOrderedDict.popped <= 2 * stats.peers_evicted
