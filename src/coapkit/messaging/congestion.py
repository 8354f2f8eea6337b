"""Retransmission timing and congestion control (RFC 7252 §4.2, §4.7, §4.8;
draft-ietf-core-cocoa-03), sans I/O.

Theory of operation
-------------------
The message layer asks one :class:`RetransmissionPolicy`, chosen by
configuration (``MessagingConfig.congestion``), three questions about a
Confirmable message: how long to wait for its ACK the first time
(:meth:`~RetransmissionPolicy.first_timeout`), how long after each
retransmission (:meth:`~RetransmissionPolicy.next_timeout`), and it tells it
when an ACK or RST came (:meth:`~RetransmissionPolicy.acknowledged`).  A
policy that keeps anything per peer hands the layer a :class:`PeerTiming` for
each new peer; the layer tells it what it sends and hears, and asks it
before a new message goes out (:meth:`PeerTiming.release_time`).  The
default policy keeps nothing, so the default costs no memory per peer.

:class:`FixedTimers` (the default) is RFC 7252 §4.2: a first timeout drawn
in [ACK_TIMEOUT, ACK_TIMEOUT x ACK_RANDOM_FACTOR], doubled after each
retransmission, whatever the path.

:class:`CoCoA` (opt-in) estimates the round trip towards each peer as
draft-ietf-core-cocoa-03 describes, with Californium's ``Cocoa`` as the
reference behaviour:

* two copies of RFC 6298's estimator: the *strong* one fed by exchanges
  acknowledged without retransmission (K = 4), the *weak* one by those
  acknowledged after one or two retransmissions, timed from the first
  transmission (K = 1); later answers feed neither (Karn's ambiguity);
* an overall RTO, moved towards the strong estimate by half
  (``RTO := 0.5 E_strong + 0.5 RTO``) and towards the weak one by a quarter;
* before any sample, the *blind* RTO: ACK_TIMEOUT times the number of
  exchanges running towards the peer, this one included, so a first message
  never waits less than RFC 7252's ACK_TIMEOUT;
* the first timeout dithered in [RTO, RTO x ACK_RANDOM_FACTOR]; each
  retransmission multiplies the timeout by a *variable back-off factor*
  chosen from the exchange's initial RTO: 3 when it is under 1 s, 1.5 above
  3 s, 2 between; no timeout above 32 s;
* *ageing*, applied when the estimate is next used: an RTO under 1 s left
  without update for 16 times its value doubles, one above 3 s left for 4
  times its value becomes ``1 s + RTO / 2``.

Californium applies the RFC 6298 gains the other way round (1/4 to the
smoothed RTT, 1/8 to its variation); the draft's pseudocode, followed here,
has RFC 6298's 1/8 and 1/4.  The back-off factor is fixed per exchange, from
its initial RTO, as the draft's text says ("exchanges with small initial
RTOs") and Californium does; the draft's pseudocode could be read as choosing
it afresh from each backed-off timeout, which would cut the retransmissions
of a blind exchange short (2, 4, 6, 9 s: 34.5 s instead of 62 s).

PROBING_RATE (§4.7)
-------------------
"An endpoint does not exceed an average data rate of PROBING_RATE in sending
to another endpoint that does not respond."  With :class:`CoCoA` (``probing``
on), a peer goes *quiet* when a message that calls for an answer (a CON, or
a NON request) goes to it, and stays quiet until anything at all is heard
from it; once it has been quiet for longer than its RTO estimate (it had the
time to answer), it *does not respond*.  Every datagram sent to it since it
went quiet counts, retransmissions included, and a *new* message to a peer
that does not respond waits in the peer's backlog until the bytes sent since
it went quiet, averaged over the time since, are no more than PROBING_RATE:
it goes at the earliest at ``quiet_since + quiet_bytes / PROBING_RATE``.
(Without the RTO's grace, two NON requests sent back to back would hold the
second for 20 s.)  Retransmissions are not held back: within one
exchange, the back-off is RFC 7252's congestion control (§4.2), and holding
them back would also stall a peer that is alive behind a lossy link.  NON
requests that get no answer are held the same way, which is the case §4.7
describes ("a Non-confirmable request ... to an endpoint that does not
respond").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from coapkit.codec.codes import is_request
from coapkit.codec.types import MessageType
from coapkit.randomness import RandomSource

if TYPE_CHECKING:
    from coapkit.messaging.parameters import TransmissionParameters
    from coapkit.messaging.peers import Peer
    from coapkit.messaging.records import Outgoing

#: No timeout (first or backed off) is longer: draft-ietf-core-cocoa-03 §4.1
MAX_TIMEOUT = 32.0


class PeerTiming(Protocol):
    """What a policy keeps about one peer (see the module docstring)."""

    def heard(self, now: float) -> None:
        """Something arrived from the peer: it responds."""

    def transmitted(self, outgoing: Outgoing, size: int, now: float) -> None:
        """``size`` bytes of ``outgoing`` went to the peer (first time or again)."""

    def release_time(self, outgoing: Outgoing, now: float) -> float:
        """The earliest time at which the new message ``outgoing`` may go (``now``: at once)."""

    def statistics(self, now: float) -> dict[str, Any]:
        """The estimates, as keywords of :class:`~coapkit.messaging.stats.PeerStatistics`."""


class RetransmissionPolicy(Protocol):
    """The timers of Confirmable messages, for one message layer."""

    name: str

    def new_peer(self, params: TransmissionParameters) -> PeerTiming | None:
        """The state to keep about a new peer, or None (the policy keeps nothing)."""

    def first_timeout(self, outgoing: Outgoing, now: float) -> float:
        """How long to wait for the ACK of ``outgoing``'s first transmission."""

    def next_timeout(self, outgoing: Outgoing) -> float:
        """How long to wait after the retransmission now going out."""

    def acknowledged(self, outgoing: Outgoing, now: float) -> None:
        """An ACK or RST for ``outgoing`` (a CON) arrived at ``now``."""


class CongestionControl(Protocol):
    """A configuration value that makes the policy of a message layer
    (``MessagingConfig.congestion``)."""

    name: ClassVar[str]

    def policy(self, rng: RandomSource) -> RetransmissionPolicy: ...


# -- RFC 7252 §4.2: the default --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixedTimers:
    """RFC 7252's timers: the first timeout drawn in [ACK_TIMEOUT, ACK_TIMEOUT x
    ACK_RANDOM_FACTOR], doubled after each retransmission.  The default."""

    name: ClassVar[str] = "fixed"

    def policy(self, rng: RandomSource) -> RetransmissionPolicy:
        return _Fixed(rng)


FIXED_TIMERS = FixedTimers()
"""The default: RFC 7252's fixed timers."""


class _Fixed:
    name = "fixed"

    def __init__(self, rng: RandomSource) -> None:
        self.rng = rng

    def new_peer(self, params: TransmissionParameters) -> PeerTiming | None:
        return None

    def first_timeout(self, outgoing: Outgoing, now: float) -> float:
        params = outgoing.params
        return params.ack_timeout * (1.0 + self.rng.random() * (params.ack_random_factor - 1.0))

    def next_timeout(self, outgoing: Outgoing) -> float:
        return outgoing.timeout * 2

    def acknowledged(self, outgoing: Outgoing, now: float) -> None:
        return None


# -- draft-ietf-core-cocoa-03 ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoCoA:
    """Adaptive retransmission: per-peer RTT estimates (draft-ietf-core-cocoa-03), and
    PROBING_RATE towards peers that do not respond (RFC 7252 §4.7).  See the module
    docstring.

    ``weak``: feed the weak estimator too (False: CoCoA-S, the strong estimator only,
    Californium's ``CocoaStrong``).  ``probing``: hold new messages to a peer that does
    not respond to PROBING_RATE.  ``granularity``: RFC 6298's clock granularity G, the
    least that the variation term adds to an estimate.
    """

    name: ClassVar[str] = "cocoa"

    weak: bool = True
    probing: bool = True
    granularity: float = 0.01
    strong_weight: float = 0.5
    weak_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.granularity < 0:
            raise ValueError("granularity cannot be negative")
        if not (0 < self.strong_weight <= 1 and 0 < self.weak_weight <= 1):
            raise ValueError("the weights are in (0, 1]")

    def policy(self, rng: RandomSource) -> RetransmissionPolicy:
        return _Cocoa(self, rng)


_ALPHA = 0.125  # RFC 6298 §2.3
_BETA = 0.25
_K_STRONG = 4
_K_WEAK = 1
_SMALL = 1.0  # seconds: below, a back-off factor of 3 and ageing upwards
_LARGE = 3.0  # above, a back-off factor of 1.5 and ageing downwards


class CocoaTiming:
    """One peer's estimates (CoCoA) and its PROBING_RATE account."""

    __slots__ = (
        "probing_rate",
        "quiet_bytes",
        "quiet_since",
        "rto",
        "strong_rto",
        "strong_rtt",
        "strong_samples",
        "strong_var",
        "updated",
        "weak_rto",
        "weak_rtt",
        "weak_samples",
        "weak_var",
    )

    def __init__(self, ack_timeout: float, probing_rate: float | None) -> None:
        self.rto = ack_timeout  #: the overall estimate
        self.strong_rto = self.weak_rto = ack_timeout
        self.strong_rtt = self.strong_var = 0.0
        self.weak_rtt = self.weak_var = 0.0
        self.strong_samples = self.weak_samples = 0
        self.updated = 0.0  #: when ``rto`` last changed (for ageing)
        #: bytes per second towards the peer while it does not respond (None: no limit)
        self.probing_rate = probing_rate
        self.quiet_since: float | None = None  #: since when it has not responded
        self.quiet_bytes = 0  #: bytes sent to it since then

    @property
    def blind(self) -> bool:
        return not (self.strong_samples or self.weak_samples)

    def age(self, now: float) -> None:
        """Ageing (draft §4.2), applied now for all the time since the last update."""
        rto = self.rto
        if _SMALL <= rto <= _LARGE or self.blind:
            return
        elapsed = now - self.updated
        while rto < _SMALL and elapsed > 16 * rto:
            elapsed -= 16 * rto
            rto *= 2
        while rto > _LARGE and elapsed > 4 * rto:
            elapsed -= 4 * rto
            rto = 1.0 + 0.5 * rto
        if rto != self.rto:
            self.rto = rto
            self.updated = now - elapsed

    # -- the PROBING_RATE account --------------------------------------------------------------

    def heard(self, now: float) -> None:
        self.quiet_since = None
        self.quiet_bytes = 0

    def transmitted(self, outgoing: Outgoing, size: int, now: float) -> None:
        if self.quiet_since is None:
            if outgoing.mtype is not MessageType.CON and not is_request(outgoing.message.code):
                return  # a NON that calls for no answer: the peer is not found silent by it
            self.quiet_since = now
        self.quiet_bytes += size

    def release_time(self, outgoing: Outgoing, now: float) -> float:
        since = self.quiet_since
        rate = self.probing_rate
        if since is None or rate is None or now - since <= self.rto:
            return now  # not quiet, or not for long enough to count as not responding
        return max(now, since + self.quiet_bytes / rate)

    def statistics(self, now: float) -> dict[str, Any]:
        self.age(now)
        blind = self.blind
        return {
            "congestion": "cocoa",
            "rto": self.rto,
            "blind": blind,
            "strong_rtt": self.strong_rtt if self.strong_samples else None,
            "strong_rttvar": self.strong_var if self.strong_samples else None,
            "strong_samples": self.strong_samples,
            "weak_rtt": self.weak_rtt if self.weak_samples else None,
            "weak_rttvar": self.weak_var if self.weak_samples else None,
            "weak_samples": self.weak_samples,
            "quiet_since": self.quiet_since,
            "quiet_bytes": self.quiet_bytes,
        }

    def __repr__(self) -> str:
        return (
            f"<CocoaTiming rto={self.rto:.3f} strong={self.strong_samples} "
            f"weak={self.weak_samples}>"
        )


class _Cocoa:
    name = "cocoa"

    def __init__(self, config: CoCoA, rng: RandomSource) -> None:
        self.config = config
        self.rng = rng

    def new_peer(self, params: TransmissionParameters) -> PeerTiming | None:
        rate = params.probing_rate if self.config.probing else None
        return CocoaTiming(params.ack_timeout, rate)

    @staticmethod
    def _timing(peer: Peer) -> CocoaTiming:
        timing = peer.timing
        assert isinstance(timing, CocoaTiming)
        return timing

    def first_timeout(self, outgoing: Outgoing, now: float) -> float:
        params = outgoing.params
        peer = outgoing.peer
        timing = self._timing(peer)
        if timing.blind:
            # Draft §4.1: the blind estimate grows with the exchanges already running.
            rto = params.ack_timeout * (1 + len(peer.outstanding))
        else:
            timing.age(now)
            rto = timing.rto
        rto = min(rto, MAX_TIMEOUT)
        # The variable back-off factor (draft §4.1.1), from the exchange's initial RTO.
        outgoing.backoff = 3.0 if rto < _SMALL else 1.5 if rto > _LARGE else 2.0
        return min(rto * (1.0 + self.rng.random() * (params.ack_random_factor - 1.0)), MAX_TIMEOUT)

    def next_timeout(self, outgoing: Outgoing) -> float:
        return min(outgoing.timeout * outgoing.backoff, MAX_TIMEOUT)

    def acknowledged(self, outgoing: Outgoing, now: float) -> None:
        timing = self._timing(outgoing.peer)
        rtt = now - outgoing.sent_at
        retransmissions = outgoing.attempts - 1
        config = self.config
        granularity = config.granularity
        if retransmissions == 0:
            if timing.strong_samples:
                timing.strong_var = (1 - _BETA) * timing.strong_var + _BETA * abs(
                    timing.strong_rtt - rtt
                )
                timing.strong_rtt = (1 - _ALPHA) * timing.strong_rtt + _ALPHA * rtt
            else:
                timing.strong_rtt, timing.strong_var = rtt, rtt / 2
            timing.strong_samples += 1
            estimate = timing.strong_rtt + max(granularity, _K_STRONG * timing.strong_var)
            timing.strong_rto = estimate
            weight = config.strong_weight
        elif retransmissions <= 2 and config.weak:
            if timing.weak_samples:
                timing.weak_var = (1 - _BETA) * timing.weak_var + _BETA * abs(timing.weak_rtt - rtt)
                timing.weak_rtt = (1 - _ALPHA) * timing.weak_rtt + _ALPHA * rtt
            else:
                timing.weak_rtt, timing.weak_var = rtt, rtt / 2
            timing.weak_samples += 1
            estimate = timing.weak_rtt + max(granularity, _K_WEAK * timing.weak_var)
            timing.weak_rto = estimate
            weight = config.weak_weight
        else:
            return  # three retransmissions or more: which one was answered is anyone's guess
        timing.rto = min(weight * estimate + (1 - weight) * timing.rto, MAX_TIMEOUT)
        timing.updated = now


CONGESTION_CONTROLS: dict[str, CongestionControl] = {"fixed": FIXED_TIMERS, "cocoa": CoCoA()}
"""The policies by name (the command line's ``--congestion``)."""
