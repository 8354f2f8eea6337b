"""Which notification is newer (RFC 7641 §3.4), as a pure function.

Observe sequence numbers are 24-bit and wrap.  A notification with number V2
received at T2 is newer than the last one kept (V1, T1) when V2 is ahead of V1
by less than 2**23 in the wrapped sense, or when more than 128 seconds have
passed since T1 (after which numbers could have wrapped any number of times).
"""

from __future__ import annotations

MAX_SEQUENCE = 1 << 24
HALF = 1 << 23
FRESHNESS_WINDOW = 128.0


def follows(previous: int, sequence: int) -> bool:
    """True if ``sequence`` comes after ``previous`` in the wrapped 24-bit order."""
    return (previous < sequence and sequence - previous < HALF) or (
        previous > sequence and previous - sequence > HALF
    )


def is_newer(previous: int, previous_time: float, sequence: int, now: float) -> bool:
    """True if a notification ``sequence`` at ``now`` is fresher than ``previous`` at its time."""
    return follows(previous, sequence) or now > previous_time + FRESHNESS_WINDOW


def next_sequence(sequence: int) -> int:
    """The number after ``sequence``, wrapping at 2**24 (§4.4)."""
    return (sequence + 1) % MAX_SEQUENCE
