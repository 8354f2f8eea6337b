"""Observe numbers from the clock (ObserveConfig(clock_sequence=True), RFC 7641 §4.4): what
processes behind one load balancer use, so that they number states alike."""

from __future__ import annotations

from coapkit.observe.ordering import MAX_SEQUENCE, follows, is_newer
from coapkit.observe.registry import TICKS_PER_SECOND, ObserveConfig, ObserveRegistry

KEY = "resource"


def clocked(offset: float = 0.0) -> ObserveRegistry:
    return ObserveRegistry(ObserveConfig(clock_sequence=True, clock_offset=offset))


def test_numbers_are_clock_ticks_of_2_to_the_minus_16_seconds() -> None:
    assert TICKS_PER_SECOND * 128 == 1 << 23  # §4.4: less than 2**23 in 128 s
    registry = clocked()
    assert registry.advance(KEY, 10.0) == 10 * 65536
    assert registry.advance(KEY, 11.5) == int(11.5 * 65536)


def test_two_states_within_one_tick_still_increase() -> None:
    registry = clocked()
    first = registry.advance(KEY, 10.0)
    assert registry.advance(KEY, 10.0) == first + 1
    assert registry.advance(KEY, 10.0) == first + 2
    assert registry.advance(KEY, 20.0) == 20 * 65536  # the clock again once it is ahead


def test_numbers_wrap_every_256_seconds_and_stay_in_order() -> None:
    registry = clocked()
    previous = registry.advance(KEY, 255.9)
    wrapped = registry.advance(KEY, 256.1)
    assert wrapped < previous and follows(previous, wrapped)
    assert 0 <= wrapped < MAX_SEQUENCE


def test_two_processes_number_alike_and_a_moved_client_sees_newer() -> None:
    """Process A (its monotonic clock at 1000 s when the wall clock reads 5000 s) and process
    B (at 30 s for the same wall time): with their offsets they read the same clock."""
    a = clocked(offset=4000.0)
    b = clocked(offset=4970.0)
    last_from_a = a.advance(KEY, 1000.0)  # wall clock 5000 s
    # 8 s later the client's registration, sent again, reaches B
    from_b = b.current_sequence(KEY, 38.0)  # wall clock 5008 s
    assert follows(last_from_a, from_b)
    assert is_newer(last_from_a, 0.0, from_b, 8.0)


def test_counters_of_two_processes_do_not() -> None:
    a, b = ObserveRegistry(), ObserveRegistry()
    for _ in range(40):
        last_from_a = a.advance(KEY)
    from_b = b.current_sequence(KEY)
    assert not is_newer(last_from_a, 0.0, from_b, 8.0)  # stale to the client for 128 s


def test_a_registration_gets_a_fresh_number_without_now_the_counter() -> None:
    registry = clocked()
    assert registry.current_sequence(KEY, 3.0) == 3 * 65536
    assert registry.current_sequence(KEY) == 3 * 65536  # no time given: the current one
    plain = ObserveRegistry()
    assert plain.current_sequence(KEY, 3.0) == 2  # counters unless configured
    assert plain.advance(KEY, 3.0) == 3


def test_after_a_long_silence_the_clock_wins_even_if_it_looks_behind() -> None:
    registry = clocked()
    registry.advance(KEY, 0.0)
    for _ in range(10):
        registry.advance(KEY, 0.0)  # counted on past the clock within the tick
    # 200 s later the clock has wrapped to a value "behind" the last one given
    later = registry.advance(KEY, 200.0)
    assert later == int(200.0 * 65536) % MAX_SEQUENCE
