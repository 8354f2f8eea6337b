"""Message ID allocation (RFC 7252 §4.4).

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

Because allocation is sequential and every ID is held for the same lifetime,
the IDs in use towards a peer are always the last ``mids_in_use`` allocated
ones, so the next ID is free exactly when fewer than 65,536 are in use.  The
holds expire in allocation order and are kept, like deduplication entries, as
global runs ``[expiry, peer, count]`` rather than one record per message.
A peer that has used all 65,536 IDs within the lifetime (about 265 messages
per second, sustained) gets no more until the oldest hold expires; the layer
keeps such messages in the peer's backlog meanwhile.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from coapkit.messaging.peers import Peer

MID_SPACE = 0x10000

_Run = list[Any]  # [expiry: float, peer: Peer, count: int]


class MessageIdAllocator:
    """Hands out message IDs per peer and expires their holds."""

    __slots__ = ("_allocated", "_runs", "first_mid", "tick")

    def __init__(self, first_mid: int, tick: float) -> None:
        self.first_mid = first_mid & 0xFFFF
        self.tick = tick
        self._runs: deque[_Run] = deque()
        self._allocated = 0  #: IDs handed out so far, to all peers

    def start_for_new_peer(self) -> int:
        """The first message ID towards a peer met now (for the first time, or again)."""
        return (self.first_mid + self._allocated) & 0xFFFF

    @staticmethod
    def available(peer: Peer) -> bool:
        return peer.mids_in_use < MID_SPACE

    def allocate(self, peer: Peer, expiry: float) -> int:
        """The next message ID towards ``peer``, held until ``expiry``.  Check :meth:`available`."""
        mid = peer.next_mid
        peer.next_mid = (mid + 1) & 0xFFFF
        peer.mids_in_use += 1
        self._allocated += 1
        tick = self.tick
        if tick:
            expiry = -(-expiry // tick) * tick
        runs = self._runs
        if runs:
            last = runs[-1]
            if last[1] is peer and last[0] == expiry:
                last[2] += 1
                return mid
        runs.append([expiry, peer, 1])
        return mid

    def expire(self, now: float) -> list[Peer]:
        """Release holds whose lifetime has passed; return the peers that got IDs back."""
        touched: list[Peer] = []
        runs = self._runs
        while runs and runs[0][0] <= now:
            _, peer, count = runs.popleft()
            if peer.recent_non:
                oldest = (peer.next_mid - peer.mids_in_use) & 0xFFFF
                for offset in range(count):
                    peer.recent_non.pop((oldest + offset) & 0xFFFF, None)
            peer.mids_in_use -= count
            if not touched or touched[-1] is not peer:
                touched.append(peer)
        return touched

    def next_expiry(self) -> float | None:
        return self._runs[0][0] if self._runs else None
