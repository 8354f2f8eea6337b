"""Counters of the message layer, readable at any time."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
