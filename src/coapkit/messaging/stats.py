"""Counters of the message layer, readable at any time, and what it knows about one peer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.records import Remote


@dataclass(slots=True)
class MessagingStats:
    """Plain integer counters; ``as_dict()`` for logging or JSON."""

    received: int = 0  #: datagrams received
    sent: int = 0  #: CON/NON messages sent for the first time
    retransmissions: int = 0
    piggybacked: int = 0  #: responses sent piggybacked in an ACK
    empty_acks_sent: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    duplicates: int = 0  #: duplicate CON/NON received (not handed up)
    replays: int = 0  #: stored replies re-sent for duplicate CONs
    timeouts: int = 0  #: CONs that exhausted their retransmissions
    dedup_evictions: int = 0  #: deduplication entries removed by a cap before their lifetime
    malformed: int = 0  #: datagrams the codec rejected
    ignored: int = 0  #: well-formed messages dropped (impossible type/code, unmatched ACK...)
    queued: int = 0  #: messages that had to wait in a backlog
    suppressed: int = 0  #: responses not sent because of No-Response or multicast rules
    oversized: int = 0  #: messages received above max_message_size
    peers_evicted: int = 0  #: peers forgotten to make room for new ones (max_peers)
    peers_refused: int = 0  #: messages from new remotes refused: the peer table was full
    probing_holds: int = 0  #: times new messages waited for PROBING_RATE (CoCoA, §4.7)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """What the message layer knows about one peer now
    (:meth:`~coapkit.messaging.MessageLayer.peer_statistics`): its round-trip estimates
    (with :class:`~coapkit.messaging.congestion.CoCoA`; RFC 7252's fixed timers keep none
    and show ACK_TIMEOUT) and the state it holds."""

    remote: Remote
    congestion: str  #: the retransmission policy: "fixed" or "cocoa"
    rto: float  #: seconds: the first timeout before dithering (fixed: ACK_TIMEOUT)
    blind: bool  #: no round-trip sample yet
    strong_rtt: float | None = None  #: smoothed RTT of exchanges without retransmission
    strong_rttvar: float | None = None
    strong_samples: int = 0
    weak_rtt: float | None = None  #: smoothed RTT of exchanges with one or two retransmissions
    weak_rttvar: float | None = None
    weak_samples: int = 0
    quiet_since: float | None = None  #: since when the peer has not answered (PROBING_RATE)
    quiet_bytes: int = 0  #: bytes sent to it since then
    outstanding: int = 0  #: CONs awaiting their ACK
    backlog: int = 0  #: messages waiting (NSTART, message IDs, PROBING_RATE)
    dedup_entries: int = 0
    mids_in_use: int = 0

    def describe(self) -> str:
        """One line for people: ``127.0.0.1:5683: RTO 0.412 s (cocoa; strong RTT ...)``."""
        parts = [self.congestion]
        if self.blind:
            parts.append("no RTT sample yet")
        if self.strong_samples:
            parts.append(
                f"strong RTT {self.strong_rtt:.3f} s +- {self.strong_rttvar:.3f}, "
                f"{_count(self.strong_samples)}"
            )
        if self.weak_samples:
            parts.append(
                f"weak RTT {self.weak_rtt:.3f} s +- {self.weak_rttvar:.3f}, "
                f"{_count(self.weak_samples)}"
            )
        if self.quiet_since is not None:
            parts.append(f"{self.quiet_bytes} bytes unanswered")
        return f"{describe_remote(self.remote)}: RTO {self.rto:.3f} s ({'; '.join(parts)})"


def _count(samples: int) -> str:
    return "1 sample" if samples == 1 else f"{samples} samples"
