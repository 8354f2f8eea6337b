"""BERT, the Block-Wise Extension for Reliable Transport (RFC 8323 §6): who may be sent it,
and how many 1024-byte blocks one message to them carries.  Sans I/O.

Theory of operation
-------------------
Over a connection, szx 7 in a Block1 or Block2 option is BERT: blocks of 1024
bytes numbered as with szx 6, of which one message carries as many as its
sender likes; a message that is not the last of its body carries a multiple of
1024 bytes, and the next one's NUM is advanced by the number of blocks carried
(§6).  Over UDP szx 7 stays reserved (RFC 7959 §2.2).

Two questions, answered apart:

* **Accepting** BERT: whenever the endpoint runs over a connection
  (:attr:`~coapkit.blockwise.server.BlockwiseConfig.bert`), from any peer,
  also one to which we did not announce Block-Wise-Transfer.  Taking it costs
  nothing the existing bounds do not already limit (the body's ``max_body``,
  the message's Max-Message-Size), and a peer may send szx 7 before our CSM
  reaches it: aiocoap 0.4.17 starts its Block1 uploads with szx 7 while it has
  seen no CSM (tests/interop/test_aiocoap_ws.py).  Refusing would fail those
  uploads for a race the peer cannot see.
* **Sending** BERT: only when both CSMs indicate it, that is carry
  Block-Wise-Transfer and a Max-Message-Size above 1152 bytes (RFC 8323
  §5.3.2; a later CSM with a smaller Max-Message-Size withdraws it).  The
  peer's says it can take BERT; ours has to as well, because a peer may read
  szx 7 as BERT only when both sides announced it: libcoap 4.3.1 takes a BERT
  Block1 block from a peer that did not announce Block-Wise-Transfer for the
  whole body and answers 2.01, so an upload would silently lose everything
  after its first message (tests/interop/test_libcoap_bert.py).  The
  endpoint hands every CSM's news here (:meth:`BertPeers.update`, from
  :class:`~coapkit.connections.layer.ConnectionReady`) and forgets a peer when
  its connection ends, so the table holds one entry per open connection; the
  client and server halves of the block-wise layer read the same table.

How many blocks a message carries: as many as fit the peer's Max-Message-Size
once the frame's header, the token and the options are counted (an upper bound
of each: the message is not encoded twice), and at most ``max_blocks``.  The
cap is not the peer's business: a message on a stream holds up every message
behind it (other exchanges' responses, Pongs), so a huge body still goes in
several messages.  Where fewer than two blocks fit, BERT would buy nothing over
a plain 1024-byte block (szx 6), which every block-wise peer understands, so
:meth:`BertPeers.blocks` says 0 and the plain block is sent.
"""

from __future__ import annotations

from coapkit.codec.options import Options
from coapkit.messaging.records import Remote

#: the Max-Message-Size every connection starts with; a CSM announcing no more than this
#: does not indicate BERT, even with Block-Wise-Transfer (RFC 8323 §5.3.1, §5.3.2)
BASE_MESSAGE_SIZE = 1152

#: bytes of a message besides its payload and options: Len/TKL with the longest extended
#: length (5), the code (1), the longest token (8) and the payload marker (1)
_FRAMING = 15

#: options the layers below may add once the number of blocks is chosen: Block1/Block2
#: (8), Size1/Size2 (9), ETag (13), Request-Tag (13) and Observe (8), with room to spare
_ADDED_OPTIONS = 64

#: an option's header is at most 5 bytes: one, and two each for extended delta and length
_OPTION_HEADER = 5


def indicates_bert(max_message_size: int, block_wise: bool) -> bool:
    """Whether a CSM with these says its sender takes BERT (RFC 8323 §5.3.2):
    Block-Wise-Transfer together with a Max-Message-Size above 1152 bytes."""
    return block_wise and max_message_size > BASE_MESSAGE_SIZE


class BertPeers:
    """The peers that can take BERT blocks, and the Max-Message-Size each announced."""

    __slots__ = ("_sizes", "announced", "max_blocks")

    def __init__(self, max_blocks: int = 64, *, announced: bool = True) -> None:
        self.max_blocks = max_blocks  #: most 1024-byte blocks put in one message
        #: whether our own CSM indicates BERT; when it does not, no peer is sent BERT
        self.announced = announced
        self._sizes: dict[Remote, int] = {}

    def __len__(self) -> int:
        return len(self._sizes)

    def update(self, remote: Remote, max_message_size: int, block_wise: bool) -> None:
        """What the CSM of the peer at ``remote`` says (see :func:`indicates_bert`)."""
        if self.announced and indicates_bert(max_message_size, block_wise):
            self._sizes[remote] = max_message_size
        else:
            self._sizes.pop(remote, None)

    def forget(self, remote: Remote) -> None:
        """The connection to ``remote`` ended (or a new one starts without a CSM yet)."""
        self._sizes.pop(remote, None)

    def clear(self) -> None:
        self._sizes.clear()

    def blocks(self, remote: Remote, options: Options) -> int:
        """How many 1024-byte blocks one message to ``remote`` with ``options`` carries as
        BERT: 0 unless both CSMs indicated BERT, or when fewer than two fit."""
        size = self._sizes.get(remote)
        if size is None:
            return 0
        room = size - _FRAMING - _ADDED_OPTIONS
        for _, value in options.items:
            room -= len(value) + _OPTION_HEADER
        count = min(room // 1024, self.max_blocks)
        return count if count >= 2 else 0
