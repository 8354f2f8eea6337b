"""Adaptive retransmission (draft-ietf-core-cocoa-03) and PROBING_RATE (RFC 7252 §4.7) in the
message layer, against exact numbers: the estimator's arithmetic, the blind RTO, the variable
back-off, ageing, the statistics per peer, and RFC 7252's timers staying the default."""

from __future__ import annotations

import itertools
import random

import pytest

from coapkit.messaging import (
    DEFAULT_PARAMETERS,
    DeliveryFailed,
    MessageLayer,
    MessagingConfig,
    OutgoingState,
)
from coapkit.messaging.congestion import (
    CONGESTION_CONTROLS,
    FIXED_TIMERS,
    MAX_TIMEOUT,
    CoCoA,
    CocoaTiming,
    FixedTimers,
)

from .helpers import ACK, CON, CONTENT, NON, A, Driver, make_layer, request, wire

COCOA = CoCoA()
# ScriptedRandom draws 0.0 unless told: no dithering, the timeouts are the RTOs exactly.
EXACT = (0.0,)


def cocoa_layer(randoms: tuple[float, ...] = EXACT, **config: object) -> MessageLayer:
    return make_layer(randoms=randoms, congestion=config.pop("congestion", COCOA), **config)


def ack(mid: int, code: int = 0) -> bytes:
    return wire(ACK, code, mid)


def exchange(d: Driver, rtt: float, *, lost: int = 0) -> float:
    """One CON to A answered ``rtt`` after its first transmission (``lost`` transmissions
    lost first, the answer timed from the first); returns the first timeout it had."""
    start = d.now
    outgoing = d.send(request(CON, token=b"t"), A)
    first_timeout = outgoing.timeout
    d.advance(start + rtt - 1e-9)
    assert outgoing.attempts == lost + 1
    d.receive(ack(outgoing.mid), A, at=start + rtt)
    assert outgoing.state is OutgoingState.ACKNOWLEDGED
    d.take()
    return first_timeout


def timing(layer: MessageLayer) -> CocoaTiming:
    peer = layer.peer(A)
    assert peer is not None and isinstance(peer.timing, CocoaTiming)
    return peer.timing


# -- the default stays RFC 7252 ---------------------------------------------------------------


def test_fixed_timers_are_the_default_and_keep_nothing_per_peer() -> None:
    assert MessagingConfig().congestion is FIXED_TIMERS
    d = Driver(make_layer())
    outgoing = d.send(request(CON), A)
    assert outgoing.timeout == 2.5  # 2 x (1 + 0.5 x 0.5), as before
    assert d.layer.peer(A).timing is None  # type: ignore[union-attr]
    d.advance(2.5)
    assert outgoing.timeout == 5.0
    stats = d.layer.peer_statistics(A, d.now)
    assert stats is not None
    assert (stats.congestion, stats.rto, stats.blind, stats.outstanding) == ("fixed", 2.0, True, 1)
    assert stats.describe() == "192.0.2.1:5683: RTO 2.000 s (fixed; no RTT sample yet)"


def test_the_default_gives_the_same_trace_as_before_for_a_seed() -> None:
    """The fixed policy draws the same random numbers in the same order: seeded simulations
    (and their recorded traces) do not change."""

    def run(config: MessagingConfig) -> list[tuple[float, bytes]]:
        layer = MessageLayer(rng=random.Random(7), config=config)
        d = Driver(layer)
        for index in range(3):
            d.send(request(CON, token=bytes([index])), A, at=index * 100.0)
        d.run_out()
        return [(when, data) for when, data, _ in d.take()]

    explicit = run(MessagingConfig(congestion=FixedTimers()))
    assert run(MessagingConfig()) == explicit
    assert len(explicit) == 15


def test_congestion_controls_by_name() -> None:
    assert set(CONGESTION_CONTROLS) == {"fixed", "cocoa"}
    assert CONGESTION_CONTROLS["cocoa"] == CoCoA()
    with pytest.raises(ValueError, match="weights"):
        CoCoA(strong_weight=0)
    with pytest.raises(ValueError, match="granularity"):
        CoCoA(granularity=-1)


# -- the estimator ---------------------------------------------------------------------------


def test_blind_rto_is_ack_timeout_times_the_exchanges_running() -> None:
    params = DEFAULT_PARAMETERS.replace(nstart=3)
    d = Driver(cocoa_layer(params=params))
    first = d.send(request(CON, token=b"1"), A)
    second = d.send(request(CON, token=b"2"), A)
    third = d.send(request(CON, token=b"3"), A)
    assert (first.timeout, second.timeout, third.timeout) == (2.0, 4.0, 6.0)


def test_a_first_strong_sample_sets_srtt_and_half_of_it_as_variation() -> None:
    d = Driver(cocoa_layer())
    assert exchange(d, 0.4) == 2.0  # blind
    t = timing(d.layer)
    assert (t.strong_rtt, t.strong_var, t.strong_samples) == pytest.approx((0.4, 0.2, 1))
    assert t.strong_rto == pytest.approx(0.4 + 4 * 0.2)  # E_strong = SRTT + K x RTTVAR, K = 4
    assert t.rto == pytest.approx(0.5 * 1.2 + 0.5 * 2.0)  # RTO := 0.5 E_strong + 0.5 RTO
    assert exchange(d, 0.4) == pytest.approx(1.6)  # the next CON starts from it


def test_strong_samples_follow_rfc_6298() -> None:
    d = Driver(cocoa_layer())
    exchange(d, 0.4)
    exchange(d, 0.2)
    t = timing(d.layer)
    var = 0.75 * 0.2 + 0.25 * abs(0.4 - 0.2)
    srtt = 0.875 * 0.4 + 0.125 * 0.2
    assert (t.strong_rtt, t.strong_var) == pytest.approx((srtt, var))
    assert t.rto == pytest.approx(0.5 * (srtt + 4 * var) + 0.5 * 1.6)


def test_weak_samples_time_from_the_first_transmission_with_k_1_and_a_quarter() -> None:
    d = Driver(cocoa_layer())
    exchange(d, 2.5, lost=1)  # retransmitted at 2.0, answered 2.5 after the first
    t = timing(d.layer)
    assert (t.weak_rtt, t.weak_var, t.weak_samples, t.strong_samples) == pytest.approx(
        (2.5, 1.25, 1, 0)
    )
    assert t.weak_rto == pytest.approx(2.5 + 1 * 1.25)
    assert t.rto == pytest.approx(0.25 * 3.75 + 0.75 * 2.0)


def test_answers_after_three_transmissions_or_more_are_not_samples() -> None:
    d = Driver(cocoa_layer())
    exchange(d, 2.0 + 4.0 + 8.0 + 0.5, lost=3)
    t = timing(d.layer)
    assert (t.weak_samples, t.strong_samples, t.rto) == (0, 0, 2.0)


def test_cocoa_strong_ignores_weak_samples() -> None:
    d = Driver(cocoa_layer(congestion=CoCoA(weak=False)))
    exchange(d, 2.5, lost=1)
    assert timing(d.layer).weak_samples == 0
    assert timing(d.layer).rto == 2.0


def test_an_rst_is_a_sample_too() -> None:
    d = Driver(cocoa_layer())
    ping = d.send(request(CON, code=0), A)
    d.receive(wire(3, 0, ping.mid), A, at=0.3)  # RST
    assert timing(d.layer).strong_samples == 1


def test_variable_backoff_factor_from_the_initial_rto() -> None:
    small = Driver(cocoa_layer())
    for _ in range(8):
        exchange(small, 0.1)  # RTO well under 1 s: a back-off factor of 3
    large = Driver(cocoa_layer(params=DEFAULT_PARAMETERS.replace(ack_timeout=4.0)))  # 1.5
    blind = Driver(cocoa_layer())  # 2 s: 2, as RFC 7252
    for d, factor in ((small, 3.0), (large, 1.5), (blind, 2.0)):
        outgoing = d.send(request(CON, token=b"x"), A)
        timeouts = [outgoing.timeout]
        for _ in range(4):
            d.advance(outgoing.due)
            timeouts.append(outgoing.timeout)
        assert [b / a for a, b in itertools.pairwise(timeouts)] == pytest.approx([factor] * 4)


def test_no_timeout_exceeds_32_seconds() -> None:
    d = Driver(cocoa_layer(params=DEFAULT_PARAMETERS.replace(ack_timeout=20.0)))
    outgoing = d.send(request(CON), A)
    assert outgoing.timeout == 20.0
    d.advance(outgoing.due)
    assert outgoing.timeout == 30.0  # 20 x 1.5
    d.advance(outgoing.due)
    assert outgoing.timeout == MAX_TIMEOUT  # 30 x 1.5, capped


def test_dithering_between_rto_and_ack_random_factor_times_it() -> None:
    low = Driver(cocoa_layer(randoms=(0.0,)))
    high = Driver(cocoa_layer(randoms=(0.999999,)))
    assert low.send(request(CON), A).timeout == 2.0
    assert high.send(request(CON), A).timeout == pytest.approx(3.0, abs=1e-5)


def test_ageing_doubles_a_small_rto_left_alone_for_16_times_its_value() -> None:
    d = Driver(cocoa_layer())
    for _ in range(10):
        exchange(d, 0.05)
    t = timing(d.layer)
    rto, updated = t.rto, t.updated
    assert rto < 0.5
    t.age(updated + 16 * rto)  # not more than 16 times: unchanged
    assert t.rto == rto
    t.age(updated + 16 * rto + 1e-6)
    assert t.rto == pytest.approx(2 * rto)
    # cumulative: a long silence doubles until the RTO is no longer small
    t.age(updated + 10_000)
    assert 1.0 <= t.rto < 2.0


def test_ageing_brings_a_large_rto_down_to_1_s_plus_half() -> None:
    d = Driver(cocoa_layer())
    exchange(d, 6.0, lost=1)
    exchange(d, 9.0, lost=1)
    t = timing(d.layer)
    rto, updated = t.rto, t.updated
    assert rto > 3.0
    t.age(updated + 4 * rto + 1e-6)
    assert t.rto == pytest.approx(1.0 + 0.5 * rto)
    t.age(updated + 10_000)
    assert t.rto <= 3.0


def test_statistics_show_the_estimates() -> None:
    d = Driver(cocoa_layer())
    exchange(d, 0.4)
    stats = d.layer.peer_statistics(A, d.now)
    assert stats is not None
    assert stats.congestion == "cocoa" and not stats.blind
    assert (stats.strong_rtt, stats.strong_samples, stats.weak_samples) == (0.4, 1, 0)
    assert stats.rto == pytest.approx(1.6)
    assert stats.describe() == (
        "192.0.2.1:5683: RTO 1.600 s (cocoa; strong RTT 0.400 s +- 0.200, 1 sample)"
    )
    assert d.layer.peer_statistics(("192.0.2.99", 1), d.now) is None
    assert d.layer.remotes == [A]


# -- PROBING_RATE ------------------------------------------------------------------------------


def test_a_peer_that_does_not_respond_gets_new_messages_at_probing_rate() -> None:
    d = Driver(cocoa_layer())
    nons = [request(NON, token=bytes([n]), payload=b"x" * 9) for n in range(3)]  # 15 bytes
    first = d.send(nons[0], A)  # a NON request: the peer is quiet from now on
    assert first.state is OutgoingState.SENT
    second = d.send(nons[1], A, at=1.0)
    assert second.state is OutgoingState.SENT  # within the RTO: it had no time to answer
    third = d.send(nons[2], A, at=3.0)
    assert third.state is OutgoingState.QUEUED  # 30 bytes unanswered over 3 s: > 1 byte/s
    assert d.layer.stats.probing_holds == 1
    assert d.layer.next_deadline() == 30.0  # 0 + 30 bytes / 1 byte/s
    d.advance(29.9)
    assert third.state is OutgoingState.QUEUED
    d.advance(30.0)
    assert third.state is OutgoingState.SENT
    sent = d.take()
    assert [(when, len(data)) for when, data, _ in sent] == [(0.0, 15), (1.0, 15), (30.0, 15)]
    stats = d.layer.peer_statistics(A, d.now)
    assert stats is not None and (stats.quiet_since, stats.quiet_bytes) == (0.0, 45)
    assert stats.describe().endswith("(cocoa; no RTT sample yet; 45 bytes unanswered)")


def test_hearing_from_the_peer_releases_what_waits() -> None:
    d = Driver(cocoa_layer())
    d.send(request(NON, token=b"1"), A)
    d.send(request(NON, token=b"2"), A, at=2.5)  # 2.5 s > RTO 2 s, 4 bytes over 2.5 s: goes
    waiting = d.send(request(NON, token=b"3"), A, at=3.0)  # 10 bytes over 3 s: waits
    assert waiting.state is OutgoingState.QUEUED
    d.receive(wire(NON, CONTENT, 0x2222, token=b"1"), A, at=4.0)  # the answer to the first
    stats = d.layer.peer_statistics(A, d.now)
    assert stats is not None and stats.quiet_since is None
    d.advance(4.0)  # the held message waits for its timer only (at 10 s)...
    d.advance(10.0)
    assert waiting.state is OutgoingState.SENT


def test_retransmissions_are_not_held_back_but_count() -> None:
    d = Driver(cocoa_layer())
    outgoing = d.send(request(CON, token=b"1", payload=b"y" * 20), A)  # 26 bytes
    events = d.advance(65.0)  # given up at 30 + 32 s
    assert [type(event) for event in events] == [DeliveryFailed]
    sent = [when for when, _, _ in d.take()]
    assert sent == [0.0, 2.0, 6.0, 14.0, 30.0]  # the back-off, unchanged
    assert outgoing.attempts == 5
    later = d.send(request(CON, token=b"2"), A, at=70.0)
    assert later.state is OutgoingState.QUEUED  # 5 x 26 bytes since 0 s: at 130 s
    d.advance(129.9)
    assert later.state is OutgoingState.QUEUED
    d.advance(130.0)
    assert later.state is OutgoingState.AWAITING_ACK


def test_non_messages_that_call_for_no_answer_do_not_make_a_peer_quiet() -> None:
    d = Driver(cocoa_layer())
    for when in range(10):  # NON notifications (responses): no answer expected
        outgoing = d.send(request(NON, code=CONTENT, token=b"n"), A, at=float(when))
        assert outgoing.state is OutgoingState.SENT
    stats = d.layer.peer_statistics(A, d.now)
    assert stats is not None and stats.quiet_since is None


def test_probing_can_be_switched_off() -> None:
    d = Driver(cocoa_layer(congestion=CoCoA(probing=False)))
    for when in range(5):
        outgoing = d.send(request(NON, token=bytes([when])), A, at=float(when))
        assert outgoing.state is OutgoingState.SENT
