"""Message IDs (RFC 7252 §4.4): random start per endpoint, +1 modulo 2**16 per remote,
never reused towards a remote within EXCHANGE_LIFETIME."""

from __future__ import annotations

import random

import pytest

from coapkit.codec.message import Message
from coapkit.messaging import (
    DEFAULT_PARAMETERS,
    MessageLayer,
    OutgoingState,
    Remote,
    RequestReceived,
    TransmissionParameters,
)
from coapkit.messaging.message_ids import MID_SPACE, MessageIdAllocator

from .helpers import ACK, CON, CONTENT, GET, NON, A, B, Driver, h, make_layer, request, wire

# EXCHANGE_LIFETIME = 0 + 2 * 2 + 1 = 5 s; NON_LIFETIME = 0 + 2 = 2 s.
SHORT = TransmissionParameters(
    ack_timeout=1.0, ack_random_factor=1.0, max_retransmit=0, max_latency=2.0
)


def test_short_parameters_used_below() -> None:
    assert (SHORT.exchange_lifetime, SHORT.non_lifetime, SHORT.max_transmit_wait) == (5.0, 2.0, 1.0)


def test_first_mid_is_drawn_from_the_injected_rng() -> None:
    starts = []
    for seed in range(4):
        expected = random.Random(seed).getrandbits(16)
        layer = MessageLayer(rng=random.Random(seed))
        out: list[tuple[bytes, object]] = []
        layer.send(request(CON), A, 0.0, out)
        assert out == [(bytes((0x40, GET, expected >> 8, expected & 0xFF)), A)]
        starts.append(expected)
    assert len(set(starts)) == 4  # a different start per endpoint (seed)


def test_same_seed_gives_the_same_mids() -> None:
    def first_mids(seed: int) -> list[bytes]:
        layer = MessageLayer(rng=random.Random(seed))
        out: list[tuple[bytes, object]] = []
        for _ in range(3):
            layer.send(request(NON), A, 0.0, out)
        return [data for data, _ in out]

    assert first_mids(42) == first_mids(42)


def test_mids_increment_modulo_2_16_per_remote() -> None:
    d = Driver(make_layer(first_mid=0xFFFE))
    sent = [d.send(request(NON), A) for _ in range(3)]
    sent.append(d.send(request(NON), B))
    assert d.take() == [
        (0.0, h("5001 fffe"), A),
        (0.0, h("5001 ffff"), A),
        (0.0, h("5001 0000"), A),
        (0.0, h("5001 0001"), B),  # a remote met later starts past the IDs handed out
    ]
    assert [o.mid for o in sent] == [0xFFFE, 0xFFFF, 0x0000, 0x0001]
    assert [o.message.mid for o in sent] == [0xFFFE, 0xFFFF, 0x0000, 0x0001]


def test_the_callers_message_is_not_rewritten() -> None:
    d = Driver(make_layer())
    message = request(CON, token=b"\x07", mid=0x4242)
    outgoing = d.send(message, A)
    assert message.mid == 0x4242  # a value: the layer derived a new message
    assert outgoing.message.mid == 0x1000
    assert outgoing.message.token == b"\x07"
    assert d.take() == [(0.0, h("4101 1000 07"), A)]


def test_exhausted_mid_space_waits_in_the_backlog_until_the_oldest_hold_expires() -> None:
    d = Driver(make_layer(first_mid=0x8000, params=SHORT, expiry_tick=0.0))
    layer = d.layer
    d.send(request(NON), A, at=0.0)  # 0x8000, held until 0 + 5
    for _ in range(MID_SPACE - 1):  # 0x8001 ... 0x7fff, held until 1 + 5
        layer.send(request(NON), A, 1.0, [])
    d.now = 1.0
    assert layer.peer(A) is not None and layer.peer(A).mids_in_use == MID_SPACE  # type: ignore[union-attr]
    assert len(d.take()) == 1

    first = d.send(request(NON, payload=b"a"), A, at=2.0)
    second = d.send(request(NON, payload=b"b"), A, at=2.0)
    other = d.send(request(NON), B, at=2.0)  # another remote has its own IDs
    assert (first.state, second.state) == (OutgoingState.QUEUED, OutgoingState.QUEUED)
    assert layer.backlog(A) == 2
    assert layer.stats.queued == 2
    assert d.take() == [(2.0, h("5001 8000"), B)]
    assert other.mid == 0x8000

    assert layer.next_deadline() == 5.0
    d.advance(4.999)
    assert d.take() == []
    d.advance(5.0)  # the hold on 0x8000 expires: the first waiting message reuses it
    assert d.take() == [(5.0, h("5001 8000 ff 61"), A)]
    assert first.mid == 0x8000 and first.state is OutgoingState.SENT
    assert layer.backlog(A) == 1
    # The other 65,535 holds end with their slice of the lifetime (5 s / 16): at 6.25, not 6.
    assert layer.next_deadline() == 6.25
    d.advance(6.2)
    assert d.take() == []
    d.advance(6.25)
    assert d.take() == [(6.25, h("5001 8001 ff 62"), A)]
    assert layer.backlog(A) == 0


def test_a_con_waiting_for_a_mid_keeps_its_place_and_then_retransmits() -> None:
    d = Driver(make_layer(first_mid=0, params=SHORT, expiry_tick=0.0))
    for _ in range(MID_SPACE):
        d.layer.send(request(NON), A, 0.0, [])
    waiting = d.send(request(CON), A, at=0.5)
    assert waiting.state is OutgoingState.QUEUED
    d.advance(5.0)
    assert d.take() == [(5.0, h("4001 0000"), A)]
    # SHORT: T = 1 exactly, MAX_RETRANSMIT 0: given up at 5 + 1
    events = d.advance(6.0)
    assert [type(e).__name__ for e in events] == ["DeliveryFailed"]
    assert d.take() == []


def test_no_mid_is_reused_within_the_exchange_lifetime_in_a_long_fast_run() -> None:
    """Sixteen seconds at 40,000 messages/s towards one remote (EXCHANGE_LIFETIME 5 s).

    The demand is three times what the ID space allows, so the IDs wrap
    several times and the backlog waits for expiring holds again and again.
    """
    layer = make_layer(first_mid=0x1234, params=SHORT, expiry_tick=0.25)
    last_use: dict[int, float] = {}
    total = 0
    for millisecond in range(16_000):
        now = millisecond / 1000
        out: list[tuple[bytes, object]] = []
        layer.handle_timeout(now, out)
        for _ in range(40):
            if layer.backlog(A) < 100:
                layer.send(request(NON), A, now, out)
        for data, _ in out:
            mid = int.from_bytes(data[2:4], "big")
            previous = last_use.get(mid)
            assert previous is None or now - previous >= SHORT.exchange_lifetime
            last_use[mid] = now
            total += 1
        assert layer.backlog(A) <= 100
    assert total > 3 * MID_SPACE


# -- holds: per peer and slice of the lifetime, not per message -------------------------------

LIFETIME = DEFAULT_PARAMETERS.exchange_lifetime  # 247 s
SLICE = LIFETIME / 16  # MessagingConfig.mid_hold_slices


def test_a_hold_lasts_its_lifetime_and_at_most_one_slice_more() -> None:
    d = Driver(make_layer())
    layer = d.layer
    for at in (0.0, 1.0, 15.0, 16.0):
        d.send(request(NON), A, at=at)
    peer = layer.peer(A)
    assert peer is not None
    # 247 is the end of slice 16; 248 and 262 fall in slice 17, 263 in slice 18.
    assert peer.hold_expiries == [16 * SLICE, 17 * SLICE, 18 * SLICE]
    assert peer.hold_counts == [1, 2, 1]
    assert layer.mid_hold_runs == 3
    d.advance(LIFETIME - 0.001)
    assert peer.mids_in_use == 4
    d.advance(LIFETIME)
    assert peer.mids_in_use == 3
    d.advance(17 * SLICE - 0.001)  # 262.4 s: 14.4 s longer than the lifetime, never shorter
    assert peer.mids_in_use == 3
    d.advance(17 * SLICE)
    assert peer.mids_in_use == 1
    d.advance(18 * SLICE)
    assert (layer.peer(A), layer.mid_hold_runs, layer.next_deadline()) == (None, 0, None)


def test_a_shorter_hold_behind_a_longer_one_is_released_with_it() -> None:
    """IDs are released from the oldest, so a hold whose lifetime is shorter (parameters
    given for one message) waits for the longer one before it: late, never early."""
    d = Driver(make_layer(first_mid=0))
    d.send(request(NON), A, at=0.0)  # held until 247
    d.send(request(NON), A, at=0.0, params=SHORT)  # lifetime 5 s: would end at 5
    peer = d.layer.peer(A)
    assert peer is not None and peer.hold_expiries == [LIFETIME, 5.0]
    d.advance(100.0)
    assert peer.mids_in_use == 2
    d.advance(LIFETIME)
    assert (d.layer.peer(A), d.layer.next_deadline()) == (None, None)


def test_released_holds_forget_the_nons_an_rst_could_have_matched() -> None:
    d = Driver(make_layer(first_mid=0, recent_non_limit=64))
    for _ in range(100):  # IDs 0..99 in one slice; the last 64 tracked for an RST
        d.send(request(NON), A, at=0.0)
    for _ in range(10):  # IDs 100..109 a slice later
        d.send(request(NON), A, at=SLICE)
    peer = d.layer.peer(A)
    assert peer is not None and sorted(peer.recent_non) == list(range(46, 110))
    d.advance(LIFETIME)  # 100 IDs released, fewer tracked than that: each tracked one looked at
    assert sorted(peer.recent_non) == list(range(100, 110))
    assert [type(e).__name__ for e in d.receive(h("7000 0063"), A)] == ["MessageIgnored"]
    assert [type(e).__name__ for e in d.receive(h("7000 0064"), A)] == ["ResetReceived"]
    d.advance(17 * SLICE)
    assert d.layer.peer(A) is None


def test_hold_runs_are_bounded_by_peers_and_slices_however_the_traffic_interleaves() -> None:
    """A NON server answering NON requests from 2,000 remotes in turn: 200,000 requests
    over 300 s, so each remote's answers are about 3 s apart and no two consecutive
    answers go to the same remote.  The holds are runs per peer and slice: at most
    17 per peer, whatever the number of messages (one run per message before: 170,000
    runs here, 140 bytes each).  No message ID is reused towards a remote within the
    lifetime meanwhile."""
    layer = make_layer()
    remotes = [("198.51.100.1", 10_000 + port) for port in range(2000)]
    answer = Message(ACK, CONTENT, 0, b"t", payload=b"ok")
    requests = [wire(NON, GET, mid, b"t") for mid in range(256)]
    last_use: dict[tuple[Remote, int], float] = {}
    held_most = runs_most = 0
    for i in range(200_000):
        now = i * 0.0015
        remote = remotes[i % 2000]
        out: list[tuple[bytes, Remote]] = []
        inbound = layer.accept_request(requests[(i // 2000) & 0xFF], remote, now, {})
        if inbound is None:
            (event,) = layer.receive(requests[(i // 2000) & 0xFF], remote, now, out)
            assert isinstance(event, RequestReceived)
            inbound = event.inbound
        data = layer.respond_now(inbound, answer, now)
        assert data is not None
        mid = int.from_bytes(data[2:4], "big")
        previous = last_use.get((remote, mid))
        assert previous is None or now - previous >= LIFETIME
        last_use[remote, mid] = now
        if i % 1000 == 999:
            while (deadline := layer.next_deadline()) is not None and deadline <= now:
                layer.handle_timeout(deadline, out)
            assert layer.peer_count == min(i + 1, 2000)
            assert layer.mid_hold_runs <= 2000 * 17
            held = sum(peer.mids_in_use for peer in map(layer.peer, remotes) if peer)
            held_most = max(held_most, held)
            runs_most = max(runs_most, layer.mid_hold_runs)
    assert held_most > 160_000  # IDs within their lifetime at once...
    assert runs_most == 2000 * 17  # ...in 34,000 runs
    assert layer.dedup_runs <= layer.config.dedup_cap_total


def test_a_lifetime_needs_a_slice() -> None:
    with pytest.raises(ValueError, match="slice"):
        MessageIdAllocator(0, 0)
