"""Message deduplication (RFC 7252 §4.5): bounded, O(1) per message, no timer per entry.

Theory of operation
-------------------
A received CON is remembered for EXCHANGE_LIFETIME and a NON for
NON_LIFETIME, keyed by (peer, message ID).  Entries with the same lifetime
expire in arrival order.  So instead of a timer per entry there is one FIFO
of *runs* per lifetime (usually two: EXCHANGE_LIFETIME and NON_LIFETIME;
peers with parameters of their own add theirs): ``[expiry, stream, count]``
says that the ``count`` oldest remaining entries of ``stream`` (one peer, one
message type) expire at ``expiry``.  Consecutive arrivals from the same peer
whose expiry falls in the same ``tick`` share one run, so a busy peer costs a
few bytes of run per entry, not a timer object.  (One FIFO for all lifetimes
would keep a short-lived entry until every longer-lived one before it had
expired, and so take a peer's new message for a duplicate of an old one.)

Per entry the table keeps only a dict slot (message ID → reply bytes) and a
deque slot (arrival order).  The reply is the exact datagram sent back (a
piggybacked ACK, an empty ACK or an RST) so a duplicate gets a byte-identical
replay.

Caps: when the total reaches ``cap_total`` the globally oldest entry goes;
when one peer reaches ``cap_per_peer`` its own oldest goes (NON entries
before CON entries, since a NON has nothing to replay).  An entry removed by
the per-peer cap is counted in the stream's ``skip`` so that the run that
would have expired it later removes nothing twice.

The runs are capped at ``cap_total`` as well.  A run holds at least one entry
when it is made, but the per-peer cap leaves runs behind whose entries are
gone: a few peers over their cap, sending alternately at a high rate, would
otherwise pile up one run per message for a whole lifetime (200,000 runs for
2,048 entries after 20 s at 10,000 messages per second).  When the runs reach
the cap, the oldest run goes whole, with whatever entries it still has (they
are the oldest of all).  So the table holds at most ``cap_total`` entries and
``cap_total`` runs, whatever arrives.

:meth:`DedupTable.forget` drops every entry of one peer at once, for the
layer's peer table when it evicts a peer (see :mod:`coapkit.messaging.layer`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from coapkit.messaging.peers import DedupStream, Peer

_Run = list[Any]  # [expiry: float, stream: DedupStream, count: int]
_NEVER = float("inf")


class DedupTable:
    """All deduplication state of one endpoint."""

    __slots__ = (
        "_fifos",
        "cap_per_peer",
        "cap_total",
        "count",
        "earliest",
        "evictions",
        "runs",
        "tick",
    )

    def __init__(self, *, cap_total: int, cap_per_peer: int, tick: float) -> None:
        if cap_total < 1 or cap_per_peer < 1:
            raise ValueError("deduplication caps must be at least 1")
        self.cap_total = cap_total
        self.cap_per_peer = cap_per_peer
        self.tick = tick
        self.count = 0
        self.runs = 0  #: runs in all FIFOs (at most cap_total)
        self.evictions = 0
        self._fifos: dict[float, deque[_Run]] = {}  #: lifetime -> its runs; never empty
        #: no entry expires before this (it may be early after an eviction, never late)
        self.earliest = _NEVER

    def __len__(self) -> int:
        return self.count

    def remember(
        self, peer: Peer, mid: int, confirmable: bool, now: float, lifetime: float
    ) -> Peer | None:
        """Record a message received at ``now``; the caller has checked it is not a duplicate.

        Returns the peer whose entry the total cap evicted to make room, if any:
        it may have nothing left to remember, and no run will tell about it later.
        """
        if confirmable:
            stream = peer.con_stream
            if stream is None:
                stream = peer.con_stream = DedupStream(peer)
        else:
            stream = peer.non_stream
            if stream is None:
                stream = peer.non_stream = DedupStream(peer)
        evicted = None
        if self.count >= self.cap_total or self.runs >= self.cap_total:
            evicted = self._evict_oldest()
        other = peer.non_stream if confirmable else peer.con_stream
        held = len(stream.seen) + (len(other.seen) if other is not None else 0)
        if held >= self.cap_per_peer:
            self._evict_from_peer(peer)
        expiry = now + lifetime
        tick = self.tick
        if tick:
            expiry = -(-expiry // tick) * tick
        stream.seen[mid] = None
        stream.order.append(mid)
        self.count += 1
        runs = self._fifos.get(lifetime)
        if runs is None:
            runs = self._fifos[lifetime] = deque()
            self.earliest = min(self.earliest, expiry)
        else:
            last = runs[-1]
            if last[1] is stream and last[0] == expiry:
                last[2] += 1
                return evicted
        runs.append([expiry, stream, 1])
        self.runs += 1
        return evicted

    def expire(self, now: float) -> list[Peer]:
        """Drop every entry whose lifetime has passed; return the peers that lost entries."""
        touched: list[Peer] = []
        for lifetime, runs in list(self._fifos.items()):
            while runs and runs[0][0] <= now:
                _, stream, count = runs.popleft()
                self.runs -= 1
                self._drop_front(stream, count)
                peer = stream.peer
                if peer is not None and (not touched or touched[-1] is not peer):
                    touched.append(peer)
            if not runs:
                del self._fifos[lifetime]
        self.earliest = min((runs[0][0] for runs in self._fifos.values()), default=_NEVER)
        return touched

    def next_expiry_due(self, now: float) -> bool:
        """Whether some entry's lifetime may have passed at ``now`` (one comparison)."""
        return now >= self.earliest

    def next_expiry(self) -> float | None:
        return min((runs[0][0] for runs in self._fifos.values()), default=None)

    def _drop_front(self, stream: DedupStream, count: int) -> int:
        """Remove up to ``count`` oldest entries of ``stream``; returns how many really went.

        (If a peer's parameters changed, its stream has runs in two FIFOs and
        the run that falls due first takes the stream's oldest entries, or the
        skip the per-peer cap left: the count stays right, an entry removed
        early is older than the run's own entries, and none outlives the last
        run of its stream.)
        """
        skipped = min(stream.skip, count)
        stream.skip -= skipped
        count -= skipped
        order = stream.order
        seen = stream.seen
        for _ in range(count):
            del seen[order.popleft()]
        self.count -= count
        return count

    def _evict_oldest(self) -> Peer | None:
        """Make room for one entry and one run (the total caps); the peer that lost entries.

        The oldest is the FIFO head that arrived first (expiry minus lifetime).
        While the runs are at their cap the oldest run goes whole; otherwise its
        oldest live entry goes.  Only called with ``count`` or ``runs`` at the cap,
        so some FIFO holds a run.  Returns None when only runs without entries went.
        """
        fifos = self._fifos
        while True:
            lifetime, runs = min(fifos.items(), key=_arrival)
            run = runs[0]
            stream: DedupStream = run[1]
            if self.runs >= self.cap_total:
                removed = self._drop_front(stream, run[2])
                run[2] = 0
            else:
                removed = self._drop_front(stream, 1)
                run[2] -= 1
            if run[2] == 0:
                runs.popleft()
                self.runs -= 1
                if not runs:
                    del fifos[lifetime]
            if removed:
                self.evictions += removed
                return stream.peer  # a stream with entries still has its peer
            if self.count < self.cap_total and self.runs < self.cap_total:
                return None

    def _evict_from_peer(self, peer: Peer) -> None:
        """Remove one peer's oldest entry (the per-peer cap), NON before CON."""
        for stream in (peer.non_stream, peer.con_stream):
            if stream is not None and stream.order:
                del stream.seen[stream.order.popleft()]
                stream.skip += 1
                self.count -= 1
                self.evictions += 1
                return

    def forget(self, peer: Peer) -> int:
        """Drop every entry of ``peer`` now (it is being evicted); how many went.

        The runs that name its streams stay until they fall due, and then remove
        nothing (the entries are counted in ``skip``); the streams no longer point
        at the peer, so it is not kept alive by them.
        """
        dropped = 0
        for stream in (peer.con_stream, peer.non_stream):
            if stream is not None:
                entries = len(stream.seen)
                stream.skip += entries
                stream.seen.clear()
                stream.order.clear()
                stream.peer = None
                dropped += entries
        self.count -= dropped
        self.evictions += dropped
        return dropped


def _arrival(item: tuple[float, deque[_Run]]) -> float:
    """When the entries at the head of a FIFO arrived (up to the expiry tick)."""
    lifetime, runs = item
    arrival: float = runs[0][0] - lifetime
    return arrival
