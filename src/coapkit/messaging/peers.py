"""Per-peer state of the message layer (RFC 7252 §4.2-§4.5, §4.7).

A :class:`Peer` exists for every remote endpoint this endpoint currently has
state about: deduplication entries, message IDs still within their lifetime,
outstanding CONs, a backlog, recently sent NONs.  It is created on first
contact and forgotten as soon as all of that has expired, so a flood from
many source addresses does not leave a peer table behind; the table itself is
capped (``MessagingConfig.max_peers``, see :mod:`coapkit.messaging.layer`).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from coapkit.messaging.records import Remote

if TYPE_CHECKING:
    from coapkit.messaging.congestion import PeerTiming
    from coapkit.messaging.parameters import TransmissionParameters
    from coapkit.messaging.records import Outgoing


class DedupStream:
    """The received message IDs of one peer and one message type, oldest first.

    ``seen`` maps a message ID to the reply to replay (``None`` while the
    reply is not decided yet, or for NON messages which get no replay).
    ``order`` lists the same IDs in arrival order.  ``skip`` counts entries
    already removed from the front by the per-peer cap, which the global
    expiry runs (see :mod:`coapkit.messaging.dedup`) must not remove again.
    ``peer`` is None once the peer has been forgotten or evicted: the runs that
    still name the stream then have nobody to report to.
    """

    __slots__ = ("order", "peer", "seen", "skip")

    def __init__(self, peer: Peer) -> None:
        self.peer: Peer | None = peer
        self.seen: dict[int, bytes | None] = {}
        self.order: deque[int] = deque()
        self.skip = 0


class Peer:
    """Everything the message layer knows about one remote endpoint."""

    __slots__ = (
        "backlog",
        "con_stream",
        "hold_counts",
        "hold_expiries",
        "mids_in_use",
        "next_mid",
        "non_stream",
        "outstanding",
        "params",
        "recent_non",
        "remote",
        "timing",
    )

    def __init__(self, remote: Remote, params: TransmissionParameters, first_mid: int) -> None:
        self.remote = remote
        self.params = params
        self.con_stream: DedupStream | None = None
        self.non_stream: DedupStream | None = None
        self.next_mid = first_mid
        self.mids_in_use = 0  #: message IDs sent within their lifetime (never reused meanwhile)
        #: the holds on those IDs as runs, oldest first: ``hold_counts[i]`` IDs are released
        #: at ``hold_expiries[i]`` (see :mod:`coapkit.messaging.message_ids`)
        self.hold_expiries: list[float] = []
        self.hold_counts: list[int] = []
        self.outstanding: dict[int, Outgoing] = {}  #: CONs awaiting ACK, by message ID
        self.backlog: deque[Outgoing] = deque()  #: waiting for NSTART or a free message ID
        self.recent_non: dict[int, Outgoing] = {}  #: tracked NONs an RST may still answer
        #: what the retransmission policy keeps about the peer (None: nothing, the default;
        #: see :mod:`coapkit.messaging.congestion`)
        self.timing: PeerTiming | None = None

    @property
    def dedup_entries(self) -> int:
        total = 0
        for stream in (self.con_stream, self.non_stream):
            if stream is not None:
                total += len(stream.seen)
        return total

    def idle(self) -> bool:
        """True when nothing about this peer needs remembering any more."""
        return (
            not self.mids_in_use
            and not self.outstanding
            and not self.backlog
            and (self.con_stream is None or not self.con_stream.seen)
            and (self.non_stream is None or not self.non_stream.seen)
        )

    def __repr__(self) -> str:
        return (
            f"<Peer {self.remote!r} dedup={self.dedup_entries} mids={self.mids_in_use} "
            f"outstanding={len(self.outstanding)} backlog={len(self.backlog)}>"
        )
