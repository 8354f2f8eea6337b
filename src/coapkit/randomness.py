"""The randomness the sans-I/O core needs, injected at construction (docs/architecture.md rule 3).

The core never imports :mod:`random`, :mod:`secrets` or :mod:`os`; it takes an
object with these methods.  The runtime passes
:class:`~coapkit.runtime.entropy.SystemEntropy`, the kernel's CSPRNG (tokens must
be unpredictable, RFC 7252 §5.3.1); tests pass a seeded :class:`random.Random` so
that the same seed gives a byte-identical trace.
"""

from __future__ import annotations

from typing import Protocol


class RandomSource(Protocol):
    """The subset of :class:`random.Random` the core uses."""

    def random(self) -> float: ...

    def getrandbits(self, k: int, /) -> int: ...

    def randbytes(self, n: int, /) -> bytes: ...
