"""Message IDs (RFC 7252 §4.4): random start per endpoint, +1 modulo 2**16 per remote,
never reused towards a remote within EXCHANGE_LIFETIME."""

from __future__ import annotations

import random

from coapkit.messaging import MessageLayer, OutgoingState, TransmissionParameters
from coapkit.messaging.message_ids import MID_SPACE

from .helpers import CON, GET, NON, A, B, Driver, h, make_layer, request

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
    d.advance(6.0)  # the other 65,535 holds expire
    assert d.take() == [(6.0, h("5001 8001 ff 62"), A)]
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
