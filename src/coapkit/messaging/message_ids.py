"""Message ID allocation and holds (RFC 7252 §4.4, §4.8.2), sans I/O.

Message IDs towards one peer are allocated sequentially (modulo 2**16), and an
ID is never reused towards the same peer while it may still sit in that peer's
deduplication cache, i.e. within EXCHANGE_LIFETIME of its use.  The endpoint
draws one random start; a peer met for the first time starts as far beyond it
as the endpoint has allocated IDs so far.  So a peer that was forgotten (all
its holds expired) and is met again continues where it left off instead of
restarting at the same ID: the other side may remember an ID for a while
longer than EXCHANGE_LIFETIME after our first transmission (it counts from its
own first receipt, which may be a late retransmission), and would take the
restarted sequence's first messages for duplicates and replay old answers.
That is only true once the holds have expired: a peer still holding IDs must
never be forgotten (the message layer's peer table keeps it, see
:mod:`coapkit.messaging.layer`), since the endpoint may have allocated 65,536
IDs to others since, and a fresh start would then land anywhere.

Theory of operation
-------------------
Because allocation is sequential and every ID towards a peer is held for the
same lifetime, the IDs in use towards a peer are always the last
``mids_in_use`` allocated ones, so the next ID is free exactly when fewer than
65,536 are in use, and holds end in allocation order.  A peer's holds are
therefore fully described by *runs*: how many of its oldest remaining IDs are
released at which time.  Each peer keeps its own runs, oldest first, in two
parallel lists (``Peer.hold_expiries``, ``Peer.hold_counts``).

Holds are kept per *slice*: a hold ends at the end of the slice of time in
which its lifetime ends, a slice being ``lifetime / slices`` long (16 slices:
15.4 s of the default EXCHANGE_LIFETIME of 247 s).  Every ID towards one peer
whose hold ends in the same slice joins the peer's last run, whatever was sent
to other peers in between, so a peer has at most ``slices + 1`` runs at any
time, and the endpoint at most ``(slices + 1) x peers``, however many messages
it sends and however they interleave.  A message costs no memory once its
peer's run for the slice exists.  (A single global FIFO of runs, merged only
with the run before, cost one run per message as soon as traffic to many peers
interleaved: 140 bytes per NON response for 247 s.)  The price of slices is
that an ID is held up to one slice longer than its lifetime: never shorter, so
never unsafe, and a peer may receive 65,536 messages per 262 s rather than per
247 s (about 250 per second sustained instead of 265).  A peer that has used
all 65,536 IDs gets no more until its oldest run is released; the layer keeps
such messages in the peer's backlog meanwhile.

Expiry is driven by a timer wheel: ``_due`` maps each release time to the
peers that opened a run ending then, and a heap orders those times.  A run
files its peer once, when it is opened.  :meth:`MessageIdAllocator.expire`
takes the due times that have come and releases, for each peer filed there,
the front runs whose time has come: work in proportion to the runs released,
plus a heap operation per distinct release time (a few per slice).  Runs are
only ever released from the front, so if a peer's lifetime changed (its
transmission parameters did) a shorter hold behind a longer one waits for it:
holds may end late, never early.  A released run also forgets the NONs of the
released IDs that an RST could still have matched (``Peer.recent_non``).
"""

from __future__ import annotations

import heapq

from coapkit.messaging.peers import Peer

MID_SPACE = 0x10000


class MessageIdAllocator:
    """Hands out message IDs per peer and releases their holds, a slice at a time."""

    __slots__ = ("_allocated", "_due", "_times", "first_mid", "runs", "slices")

    def __init__(self, first_mid: int, slices: int) -> None:
        if slices < 1:
            raise ValueError("a lifetime needs at least one slice")
        self.first_mid = first_mid & 0xFFFF
        self.slices = slices
        self._allocated = 0  #: IDs handed out so far, to all peers
        self.runs = 0  #: runs held by all peers together (at most (slices + 1) x peers)
        #: release time -> the peers that opened a run ending then (a peer may be listed
        #: for a run already released, never without being listed for a run it holds)
        self._due: dict[float, list[Peer]] = {}
        self._times: list[float] = []  #: heap of the keys of ``_due``

    def start_for_new_peer(self) -> int:
        """The first message ID towards a peer met now (for the first time, or again)."""
        return (self.first_mid + self._allocated) & 0xFFFF

    @staticmethod
    def available(peer: Peer) -> bool:
        return peer.mids_in_use < MID_SPACE

    def allocate(self, peer: Peer, now: float, lifetime: float) -> int:
        """The next message ID towards ``peer``, held for ``lifetime`` from ``now`` (rounded
        up to the end of its slice).  Check :meth:`available` first."""
        mid = peer.next_mid
        peer.next_mid = (mid + 1) & 0xFFFF
        peer.mids_in_use += 1
        self._allocated += 1
        width = lifetime / self.slices
        release = -(-(now + lifetime) // width) * width if width > 0 else now
        expiries = peer.hold_expiries
        if expiries and expiries[-1] == release:
            peer.hold_counts[-1] += 1
            return mid
        expiries.append(release)
        peer.hold_counts.append(1)
        self.runs += 1
        filed = self._due.get(release)
        if filed is None:
            self._due[release] = [peer]
            heapq.heappush(self._times, release)
        else:
            filed.append(peer)
        return mid

    def expire(self, now: float) -> list[Peer]:
        """Release the holds whose time has come; return the peers that got IDs back."""
        touched: list[Peer] = []
        times = self._times
        due = self._due
        while times and times[0] <= now:
            touched.extend(p for p in due.pop(heapq.heappop(times)) if self._release(p, now))
        return touched

    def _release(self, peer: Peer, now: float) -> bool:
        """Release ``peer``'s front runs that are due; whether any was."""
        expiries = peer.hold_expiries
        counts = peer.hold_counts
        due = 0
        while due < len(expiries) and expiries[due] <= now:
            due += 1
        if not due:
            return False
        released = sum(counts[:due])
        recent = peer.recent_non
        if recent:
            oldest = (peer.next_mid - peer.mids_in_use) & 0xFFFF
            if len(recent) < released:
                for mid in list(recent):
                    if (mid - oldest) & 0xFFFF < released:
                        del recent[mid]
            else:
                for offset in range(released):
                    recent.pop((oldest + offset) & 0xFFFF, None)
        del expiries[:due]
        del counts[:due]
        peer.mids_in_use -= released
        self.runs -= due
        return True

    def next_expiry(self) -> float | None:
        return self._times[0] if self._times else None
