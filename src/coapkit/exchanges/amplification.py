"""Amplification defence for servers (RFC 7252 §11.3, RFC 9175 §2.4), sans I/O.

CoAP runs over a spoofable transport: a small request with a forged source
address can make a server send a large response to a victim.  So towards a
source it has not verified, a server sends at most ``factor`` times the size
of the request (3 by default) or the fixed ``allowance``, whichever is
larger.  A response that would be bigger is replaced by ``4.01 Unauthorized``
carrying an Echo option; a client that really is at that address repeats the
request with the Echo value, which proves it, and the source counts as
verified for ``verified_lifetime``.

The Echo value is stateless: 4 bytes of issue time (deciseconds) and 8
bytes of an HMAC over the remote and that time, with a secret drawn once
from the endpoint's random source.  Nothing is stored until a source proves
itself; the verified sources are a bounded, oldest-first table.

Behind a load balancer the client that answers a challenge may reach another
process than the one that issued it.  Processes that share
``AmplificationConfig.secret`` accept each other's Echo values, so that one
answer is enough; their issue times are read on the clock they share, the
endpoint's time plus ``clock_offset`` (the :class:`~coapkit.server.Server` sets
it to wall-clock time minus its loop's clock when a secret is given; the
monotonic clock alone is the same for every process of one machine only).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

from coapkit.messaging.records import Remote

#: deciseconds by which another process's clock may be ahead and its Echo values still count
_CLOCK_SKEW = 50


@dataclass(frozen=True, slots=True)
class AmplificationConfig:
    """How much a server may send to a source it has not verified."""

    enabled: bool = True
    factor: int = 3
    """At most this many times the request's size towards an unverified source."""
    allowance: int = 136
    """... or this many bytes, whichever is larger (enough for a small response)."""
    echo_lifetime: float = 60.0
    """An Echo value is accepted this long after it was issued."""
    verified_lifetime: float = 600.0
    """A source that answered an Echo challenge is trusted this long."""
    max_verified: int = 10_000
    secret: bytes | None = None
    """The HMAC key of Echo values, at least 16 bytes; None: 16 random bytes per endpoint.
    Give every process behind one load balancer the same one (see the module doc)."""
    clock_offset: float = 0.0
    """Added to the endpoint's time to stamp and check Echo values (see the module doc)."""

    def __post_init__(self) -> None:
        if self.factor < 1 or self.allowance < 0:
            raise ValueError("factor must be >= 1 and allowance >= 0")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("an Echo secret of at least 16 bytes is needed")

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        secret = "None" if self.secret is None else "<secret>"
        return (
            f"AmplificationConfig(enabled={self.enabled}, factor={self.factor}, "
            f"allowance={self.allowance}, secret={secret}, clock_offset={self.clock_offset})"
        )


@dataclass(slots=True)
class AmplificationStats:
    challenges: int = 0  #: 4.01 + Echo sent instead of a response too large
    verified: int = 0  #: sources that proved themselves with an Echo value
    rejected_echoes: int = 0  #: Echo values that were stale or not ours


class AmplificationGuard:
    """Decides whether a response may go to its source, and checks Echo values."""

    def __init__(self, config: AmplificationConfig, secret: bytes) -> None:
        """``secret``: the HMAC key, unless the configuration names one."""
        self.config = config
        self.stats = AmplificationStats()
        self._secret = config.secret if config.secret is not None else secret
        self._offset = config.clock_offset
        self._verified: OrderedDict[Remote, float] = OrderedDict()

    def limit(self, request_size: int) -> int:
        """The most bytes a response to an unverified source may have."""
        return max(request_size * self.config.factor, self.config.allowance)

    def is_verified(self, remote: Remote, now: float) -> bool:
        expires = self._verified.get(remote)
        if expires is None:
            return False
        if expires <= now:
            del self._verified[remote]
            return False
        return True

    def _mac(self, remote: Remote, stamp: bytes) -> bytes:
        return hmac.new(self._secret, repr(remote).encode() + stamp, hashlib.sha256).digest()[:8]

    def challenge(self, remote: Remote, now: float) -> bytes:
        """A fresh Echo value for ``remote``."""
        self.stats.challenges += 1
        stamp = (int((now + self._offset) * 10) & 0xFFFFFFFF).to_bytes(4, "big")
        return stamp + self._mac(remote, stamp)

    def verify(self, remote: Remote, echo: bytes | None, now: float) -> bool:
        """Accept ``echo`` if it is a recent value issued to ``remote``; remember the source."""
        if echo is None:
            return False
        if len(echo) != 12 or not hmac.compare_digest(echo[4:], self._mac(remote, echo[:4])):
            self.stats.rejected_echoes += 1
            return False
        issued = int.from_bytes(echo[:4], "big")
        age = ((int((now + self._offset) * 10) & 0xFFFFFFFF) - issued) & 0xFFFFFFFF
        if age >= 1 << 31:  # issued "later" than now: by another process whose clock is ahead
            age = (1 << 32) - age if (1 << 32) - age <= _CLOCK_SKEW else age
        if age > self.config.echo_lifetime * 10:
            self.stats.rejected_echoes += 1
            return False
        verified = self._verified
        verified.pop(remote, None)
        verified[remote] = now + self.config.verified_lifetime
        while len(verified) > self.config.max_verified:
            verified.popitem(last=False)
        self.stats.verified += 1
        return True

    @property
    def verified_sources(self) -> int:
        return len(self._verified)
