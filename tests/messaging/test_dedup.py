"""Deduplication (RFC 7252 §4.5): a (remote, MID) seen within EXCHANGE_LIFETIME (CON) or
NON_LIFETIME (NON) is not handed up again; a duplicate CON gets the stored reply replayed."""

from __future__ import annotations

import pytest

from coapkit.messaging import (
    InboundState,
    MessageIgnored,
    RequestReceived,
    ResponseReceived,
    TransmissionParameters,
)

from .helpers import CON, CONTENT, GET, NON, A, B, C, Driver, h, make_layer, response, wire

REQUEST = wire(CON, GET, 0x0042, b"\x0a")  # "41 01 0042 0a"


def test_a_duplicate_con_while_pending_is_not_handed_up_and_gets_nothing() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(REQUEST, A)
    assert isinstance(event, RequestReceived)
    assert d.receive(REQUEST, A, at=0.05) == []
    assert d.take() == []
    assert d.layer.stats.duplicates == 1
    assert d.layer.stats.replays == 0


def test_a_duplicate_con_gets_the_piggybacked_response_again_byte_for_byte() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(REQUEST, A)
    assert isinstance(event, RequestReceived)
    d.respond(event.inbound, response(token=b"\x0a", payload=b"ok"), at=0.01)
    piggybacked = h("6145 0042 0a ff 6f6b")
    assert d.take() == [(0.01, piggybacked, A)]
    for at in (2.0, 5.0, 200.0):
        assert d.receive(REQUEST, A, at=at) == []
    assert d.take() == [(2.0, piggybacked, A), (5.0, piggybacked, A), (200.0, piggybacked, A)]
    assert (d.layer.stats.duplicates, d.layer.stats.replays) == (3, 3)


def test_a_duplicate_con_gets_the_empty_ack_again() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(REQUEST, A)
    d.advance(0.1)
    assert d.take() == [(0.1, h("6000 0042"), A)]
    d.receive(REQUEST, A, at=3.0)
    assert d.take() == [(3.0, h("6000 0042"), A)]
    # The separate response does not change what a duplicate gets.
    d.respond(event.inbound, response(token=b"\x0a"), at=4.0)  # type: ignore[union-attr]
    d.take()
    d.receive(REQUEST, A, at=5.0)
    assert d.take() == [(5.0, h("6000 0042"), A)]


def test_a_duplicate_con_gets_the_rst_again() -> None:
    d = Driver(make_layer())
    separate = wire(CON, CONTENT, 0x0777, b"\x0b")
    (event,) = d.receive(separate, A)
    assert isinstance(event, ResponseReceived) and event.inbound is not None
    d.reject(event.inbound)
    d.receive(separate, A, at=1.0)
    assert d.take() == [(0.0, h("7000 0777"), A), (1.0, h("7000 0777"), A)]


def test_a_duplicate_non_is_not_handed_up_and_gets_nothing() -> None:
    d = Driver(make_layer())
    non = wire(NON, GET, 0x0042, b"\x0a")
    assert len(d.receive(non, A)) == 1
    assert d.receive(non, A, at=100.0) == []
    assert d.take() == []
    assert d.layer.stats.duplicates == 1


def test_the_same_mid_from_another_remote_is_not_a_duplicate() -> None:
    d = Driver(make_layer())
    assert len(d.receive(REQUEST, A)) == 1
    assert len(d.receive(REQUEST, B)) == 1
    assert d.layer.stats.duplicates == 0


@pytest.mark.parametrize(
    ("mtype", "lifetime"), [(CON, 247.0), (NON, 145.0)], ids=["CON-247", "NON-145"]
)
def test_after_the_lifetime_plus_expiry_tick_the_mid_is_new_again(
    mtype: int, lifetime: float
) -> None:
    # expiry_tick 0.25: the entry of a message received at 1.1 lives until
    # 1.1 + lifetime rounded up to a multiple of 0.25.
    d = Driver(make_layer(expiry_tick=0.25))
    data = wire(mtype, GET, 0x0042, b"\x0a")  # type: ignore[arg-type]
    d.receive(data, A, at=1.1)
    expiry = -(-(1.1 + lifetime) // 0.25) * 0.25
    assert expiry == lifetime + 1.25
    assert d.layer.next_deadline() in (
        0.1 + 1.1,
        expiry,
    )  # the empty-ACK timer comes first for a CON
    assert d.receive(data, A, at=expiry - 0.01) == []
    assert d.layer.dedup_entries == 1
    assert d.layer.next_deadline() == expiry
    events = d.receive(data, A, at=expiry)
    assert [type(e) for e in events] == [RequestReceived]


def test_the_default_expiry_tick_adds_at_most_a_tenth_of_a_second() -> None:
    d = Driver(make_layer())
    d.receive(REQUEST, A, at=0.0)
    assert d.receive(REQUEST, A, at=246.99) == []
    assert len(d.receive(REQUEST, A, at=247.1 + 1e-9)) == 1


def test_a_duplicate_within_the_lifetime_is_detected_even_without_timer_calls() -> None:
    layer = make_layer()
    layer.receive(REQUEST, A, 0.0, [])
    out: list[tuple[bytes, object]] = []
    assert layer.receive(REQUEST, A, 246.0, out) == []  # no handle_timeout in between
    # receive() itself expires due entries before looking up a message:
    assert len(layer.receive(REQUEST, A, 248.0, out)) == 1


def test_per_peer_parameters_set_the_lifetime_of_that_peers_entries() -> None:
    # A slow peer: ACK_TIMEOUT 10 s gives EXCHANGE_LIFETIME 10*15*1.5 + 200 + 10 = 435 s.
    slow = TransmissionParameters(ack_timeout=10.0)
    assert slow.exchange_lifetime == 435.0
    d = Driver(make_layer(peer_params={A: slow}, expiry_tick=0.25))
    d.receive(REQUEST, A, at=0.0)
    (event,) = d.receive(REQUEST, B, at=1.0)
    d.respond(event.inbound, response(token=b"\x0a", payload=b"old"), at=1.0)  # type: ignore[union-attr]
    d.take()
    # B's entry lives 247 s, although A's (older, longer) entry is still there.
    d.advance(248.0)
    assert d.layer.dedup_entries == 1
    (event,) = d.receive(REQUEST, B, at=248.0)
    assert isinstance(event, RequestReceived)  # new again: no stale "old" reply for it
    assert d.take() == []
    # A's own entry is still a duplicate at 434 s and new again at 435.
    assert d.receive(REQUEST, A, at=434.0) == []
    assert len(d.receive(REQUEST, A, at=435.0)) == 1


def test_the_total_cap_evicts_the_oldest_entry_first() -> None:
    d = Driver(make_layer(dedup_cap_total=3))
    for at, remote in ((0.0, A), (1.0, B), (2.0, C)):
        d.receive(REQUEST, remote, at=at)
    assert d.layer.dedup_entries == 3
    assert d.layer.stats.dedup_evictions == 0
    fourth = ("192.0.2.4", 5683)
    d.receive(REQUEST, fourth, at=3.0)
    assert d.layer.dedup_entries == 3
    assert d.layer.stats.dedup_evictions == 1  # counted at once, not at the next timer
    assert len(d.receive(REQUEST, A, at=4.0)) == 1  # A's entry went: new again
    assert d.receive(REQUEST, C, at=4.0) == []  # C's is still there
    assert d.layer.stats.dedup_evictions == 2  # A's return pushed out B's entry
    assert len(d.receive(REQUEST, B, at=5.0)) == 1


def test_the_total_cap_evicts_across_con_and_non_by_arrival() -> None:
    d = Driver(make_layer(dedup_cap_total=2))
    non = wire(NON, GET, 0x0001)
    con = wire(CON, GET, 0x0002)
    d.receive(non, A, at=0.0)
    d.receive(con, B, at=1.0)
    d.receive(wire(CON, GET, 0x0003), C, at=2.0)  # the NON (oldest) goes
    assert len(d.receive(non, A, at=3.0)) == 1
    assert d.receive(wire(CON, GET, 0x0003), C, at=3.0) == []
    d2 = Driver(make_layer(dedup_cap_total=2))
    d2.receive(con, B, at=0.0)
    d2.receive(non, A, at=1.0)
    d2.receive(wire(NON, GET, 0x0003), C, at=2.0)  # the CON (oldest) goes
    assert len(d2.receive(con, B, at=3.0)) == 1


def test_the_per_peer_cap_evicts_that_peers_oldest_entry_non_first() -> None:
    d = Driver(make_layer(dedup_cap_per_peer=2))
    d.receive(wire(CON, GET, 1), A, at=0.0)
    d.receive(wire(NON, GET, 2), A, at=1.0)
    d.receive(wire(CON, GET, 3), A, at=2.0)  # A's NON goes, although the CON is older
    assert d.layer.stats.dedup_evictions == 1
    assert d.receive(wire(CON, GET, 1), A, at=3.0) == []
    assert len(d.receive(wire(NON, GET, 2), A, at=3.0)) == 1  # evicts CON 1 now
    assert len(d.receive(wire(CON, GET, 1), A, at=3.0)) == 1
    assert d.layer.peer(A).dedup_entries == 2  # type: ignore[union-attr]
    assert len(d.receive(REQUEST, B, at=3.0)) == 1  # B has its own allowance
    assert d.layer.dedup_entries == 3


def test_entries_evicted_by_the_per_peer_cap_expire_only_once() -> None:
    d = Driver(make_layer(dedup_cap_per_peer=2, dedup_cap_total=3, expiry_tick=0.0))
    for mid in (1, 2, 3):  # NON 1 is evicted by the per-peer cap
        d.receive(wire(NON, GET, mid), A, at=0.0)
    d.receive(wire(NON, GET, 9), B, at=10.0)
    assert d.layer.dedup_entries == 3
    # Total cap: the oldest run is A's at 0.0, whose first entry is already gone.
    d.receive(wire(NON, GET, 8), C, at=20.0)
    assert d.layer.dedup_entries == 3
    assert d.layer.stats.dedup_evictions == 2
    assert d.receive(wire(NON, GET, 3), A, at=20.0) == []
    d.advance(145.0)  # A's run expires: nothing is removed twice
    assert d.layer.dedup_entries == 2
    d.run_out()
    assert (d.layer.dedup_entries, d.layer.peer_count) == (0, 0)


def test_memory_stays_bounded_under_a_long_flood() -> None:
    d = Driver(make_layer(dedup_cap_total=100, dedup_cap_per_peer=10, expiry_tick=0.5))
    layer = d.layer
    peak = 0
    for i in range(6000):
        remote = ("198.51.100.7", 10_000 + i % 37)
        d.receive(wire(NON if i % 3 else CON, GET, i & 0xFFFF), remote, at=i * 0.05)
        peak = max(peak, layer.dedup_entries)
        assert all(
            p.dedup_entries <= 10
            for p in (layer.peer(("198.51.100.7", 10_000 + j)) for j in range(37))
            if p
        )
    assert peak == 100
    assert layer.stats.dedup_evictions > 0
    d.run_out()
    assert (layer.dedup_entries, layer.peer_count) == (0, 0)


def test_expiry_frees_every_peer() -> None:
    d = Driver(make_layer())
    for i in range(50):
        remote = ("203.0.113.1", 20_000 + i)
        d.receive(wire(CON if i % 2 else NON, GET, i, b"\x01"), remote, at=i * 0.5)
    assert d.layer.peer_count == 50
    d.advance(300.0)
    assert (d.layer.peer_count, d.layer.dedup_entries) == (0, 0)
    assert d.layer.next_deadline() is None


def test_peers_whose_entries_were_evicted_by_the_total_cap_are_forgotten() -> None:
    d = Driver(make_layer(dedup_cap_total=5))
    for i in range(200):
        d.receive(wire(NON, GET, 1), ("203.0.113.9", 30_000 + i), at=i * 0.01)
        assert d.layer.peer_count <= 6
    d.run_out()
    assert d.layer.peer_count == 0


def test_a_request_answered_after_its_entry_was_evicted_still_gets_its_response() -> None:
    d = Driver(make_layer(dedup_cap_total=1))
    (event,) = d.receive(REQUEST, A)
    d.receive(REQUEST, B)  # evicts A's entry
    d.respond(event.inbound, response(token=b"\x0a"))  # type: ignore[union-attr]
    assert d.take() == [(0.0, h("6145 0042 0a"), A)]
    assert event.inbound.state is InboundState.DONE  # type: ignore[union-attr]
    # Without the entry there is nothing to replay: the duplicate is handled anew.
    assert [type(e) for e in d.receive(REQUEST, A)] == [RequestReceived]


def test_pings_are_not_remembered() -> None:
    d = Driver(make_layer())
    for _ in range(3):
        assert d.receive(h("4000 0042"), A) == []
    assert d.take() == [(0.0, h("7000 0042"), A)] * 3
    assert (d.layer.dedup_entries, d.layer.peer_count, d.layer.stats.duplicates) == (0, 0, 0)


def test_ignored_messages_are_not_remembered() -> None:
    d = Driver(make_layer())
    events = d.receive(h("5000 0042"), A)
    assert [type(e) for e in events] == [MessageIgnored]
    assert (d.layer.dedup_entries, d.layer.peer_count) == (0, 0)


def test_changing_a_peers_parameters_midway_keeps_the_table_consistent() -> None:
    d = Driver(make_layer(expiry_tick=0.0, dedup_cap_per_peer=3))
    quick = TransmissionParameters(ack_timeout=1.0, max_latency=1.0)  # lifetime 22.5 + 2 + 1
    assert quick.exchange_lifetime == 25.5
    for mid in (1, 2):
        d.receive(wire(CON, GET, mid), A, at=float(mid))  # live until 248, 249
    d.layer.set_peer_parameters(A, quick)
    for mid in (3, 4):
        d.receive(wire(CON, GET, mid), A, at=float(mid))  # live until 28.5, 29.5
    assert d.layer.dedup_entries == 3  # the per-peer cap took CON 1
    # A's stream now has runs in two FIFOs; whichever falls due takes A's
    # oldest entries (or the skip left by the cap).  The count always matches
    # what is stored, and nothing outlives the longer lifetime.
    for until in (28.5, 29.5, 248.0, 249.0):
        d.advance(until)
        peer = d.layer.peer(A)
        assert d.layer.dedup_entries == (peer.dedup_entries if peer else 0)
    assert (d.layer.dedup_entries, d.layer.peer_count, d.layer.next_deadline()) == (0, 0, None)


def test_runs_left_behind_by_the_per_peer_cap_are_bounded_like_the_entries() -> None:
    """Two peers over their per-peer cap, alternating at 10,000 messages per second: each
    message opens a run (the previous one is the other peer's), and the entries the cap
    removes leave their runs behind.  The runs stay within dedup_cap_total all the same
    (they grew to one per message before: 20,000 here)."""
    layer = make_layer(dedup_cap_total=1000, dedup_cap_per_peer=100)
    for i in range(20_000):
        events = layer.receive(wire(NON, GET, i & 0xFFFF), (A, B)[i % 2], i / 10_000, [])
        assert [type(e) for e in events] == [RequestReceived]
        assert layer.dedup_runs <= 1000
    assert layer.dedup_entries == 200  # 100 per peer: the newest ones
    assert layer.stats.dedup_evictions == 20_000 - 200
    assert layer.receive(wire(NON, GET, 19_998), A, 2.0, []) == []  # still a duplicate
    assert layer.stats.duplicates == 1
    d = Driver(layer, start=2.0)
    d.run_out()
    assert (layer.dedup_entries, layer.dedup_runs, layer.peer_count) == (0, 0, 0)


def test_when_the_runs_reach_the_cap_the_oldest_run_goes_with_its_entries() -> None:
    D = ("192.0.2.4", 5683)
    d = Driver(make_layer(dedup_cap_total=3, dedup_cap_per_peer=1, expiry_tick=0.0))
    d.receive(wire(NON, GET, 1), A, at=0.0)
    d.receive(wire(NON, GET, 2), B, at=1.0)
    d.receive(wire(NON, GET, 3), A, at=2.0)  # the per-peer cap takes NON 1; its run stays
    assert (d.layer.dedup_entries, d.layer.dedup_runs, d.layer.stats.dedup_evictions) == (2, 3, 1)
    # A fourth run: the oldest goes first, A's at 0.0, which has no entry left.
    d.receive(wire(NON, GET, 4), C, at=3.0)
    assert (d.layer.dedup_entries, d.layer.dedup_runs, d.layer.stats.dedup_evictions) == (3, 3, 1)
    # And another: now the oldest run is B's, and its entry goes with it.
    d.receive(wire(NON, GET, 5), D, at=4.0)
    assert (d.layer.dedup_entries, d.layer.dedup_runs, d.layer.stats.dedup_evictions) == (3, 3, 2)
    assert d.layer.peer(B) is None  # nothing left about B: forgotten at once
    assert [type(e) for e in d.receive(wire(NON, GET, 2), B)] == [RequestReceived]
    d.run_out()
    assert (d.layer.dedup_entries, d.layer.dedup_runs, d.layer.peer_count) == (0, 0, 0)
