"""Transmission parameters (RFC 7252 §4.8) and the times derived from them (§4.8.2).

One frozen value holds the base parameters; the derived times are computed
once at construction.  An endpoint has a default value, may override it per
peer, and a single message may carry its own (docs/architecture.md rule 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class TransmissionParameters:
    """The RFC 7252 §4.8 parameters, with the RFC's defaults.

    >>> p = TransmissionParameters()
    >>> (p.max_transmit_span, p.max_transmit_wait, p.exchange_lifetime, p.non_lifetime)
    (45.0, 93.0, 247.0, 145.0)
    """

    ack_timeout: float = 2.0
    ack_random_factor: float = 1.5
    max_retransmit: int = 4
    nstart: int = 1
    default_leisure: float = 5.0
    probing_rate: float = 1.0
    max_latency: float = 100.0
    processing_delay: float | None = None  #: defaults to ack_timeout (§4.8.2)

    max_transmit_span: float = field(init=False, repr=False)
    max_transmit_wait: float = field(init=False, repr=False)
    max_rtt: float = field(init=False, repr=False)
    exchange_lifetime: float = field(init=False, repr=False)
    non_lifetime: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.ack_timeout > 0:
            raise ValueError("ack_timeout must be positive")
        if not self.ack_random_factor >= 1.0:
            raise ValueError("ack_random_factor must be at least 1.0")
        if self.max_retransmit < 0:
            raise ValueError("max_retransmit cannot be negative")
        if self.nstart < 1:
            raise ValueError("nstart must be at least 1")
        if self.default_leisure < 0 or self.max_latency < 0 or self.probing_rate <= 0:
            raise ValueError("default_leisure and max_latency must be >= 0, probing_rate > 0")
        processing = self.ack_timeout if self.processing_delay is None else self.processing_delay
        span = self.ack_timeout * ((1 << self.max_retransmit) - 1) * self.ack_random_factor
        wait = self.ack_timeout * ((1 << (self.max_retransmit + 1)) - 1) * self.ack_random_factor
        setter = object.__setattr__
        setter(self, "processing_delay", processing)
        setter(self, "max_transmit_span", span)
        setter(self, "max_transmit_wait", wait)
        setter(self, "max_rtt", 2 * self.max_latency + processing)
        setter(self, "exchange_lifetime", span + 2 * self.max_latency + processing)
        setter(self, "non_lifetime", span + self.max_latency)

    def replace(self, **changes: Any) -> TransmissionParameters:
        """A copy with some base parameters changed; derived times follow."""
        if "ack_timeout" in changes and "processing_delay" not in changes:
            changes["processing_delay"] = None
        return replace(self, **changes)


DEFAULT_PARAMETERS = TransmissionParameters()
