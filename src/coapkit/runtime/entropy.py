"""Unpredictable randomness for the runtime, one system call per 4 KiB of it.

The core draws its randomness from an injected source (docs/architecture.md rule 3):
tokens, which must be hard to guess (RFC 7252 §5.3.1), the first message ID,
the jitter of the retransmission timeout.  :class:`secrets.SystemRandom` asks
the kernel on every call; a client drew twice per request (token and jitter),
and those two ``getrandom`` calls cost more than the rest of the request's
bookkeeping.  :class:`SystemEntropy` takes the same kernel randomness
(:func:`os.urandom`) in 4 KiB blocks and hands it out in slices, each byte
once.

A forked child must not repeat its parent's draws: every pool is emptied in
the child at fork (:func:`os.register_at_fork`), so the child reads its own
from the kernel.
"""

from __future__ import annotations

import os
import weakref

__all__ = ["SystemEntropy"]

_POOL = 4096
_live: weakref.WeakSet[SystemEntropy] = weakref.WeakSet()


class SystemEntropy:
    """:class:`~coapkit.randomness.RandomSource` over the kernel's CSPRNG, read in blocks."""

    __slots__ = ("__weakref__", "_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0
        _live.add(self)

    def randbytes(self, n: int, /) -> bytes:
        """``n`` unpredictable bytes, none of them handed out before."""
        if n < 0:
            raise ValueError("number of bytes must be non-negative")
        pos = self._pos
        end = pos + n
        if end > len(self._pool):
            if n > _POOL:
                return os.urandom(n)
            self._pool = os.urandom(_POOL)
            pos, end = 0, n
        self._pos = end
        return self._pool[pos:end]

    def getrandbits(self, k: int, /) -> int:
        """An unpredictable integer of ``k`` random bits (0 <= result < 2**k)."""
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        size = (k + 7) // 8
        return int.from_bytes(self.randbytes(size), "big") >> (size * 8 - k)

    def random(self) -> float:
        """An unpredictable float in [0.0, 1.0), 53 random bits as :func:`random.random`."""
        return (int.from_bytes(self.randbytes(7), "big") >> 3) * 2.0**-53

    def _forget(self) -> None:
        self._pool = b""
        self._pos = 0


def _after_fork_in_child() -> None:
    for source in list(_live):
        source._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
