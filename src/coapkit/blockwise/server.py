"""Block-wise transfers on the server side (RFC 7959 §2.3-§2.5, §2.9; RFC 9175 §3), sans I/O.

Theory of operation
-------------------
**Block1 (request bodies).**  Blocks of one body are collected in a buffer
keyed by (remote, method, request options that identify the resource,
Request-Tag).  Block 0 starts a buffer (replacing any older one with the same
key); block *n* must continue exactly where the buffer ends (a retransmitted
last block is answered again), otherwise the answer is 4.08 Request Entity
Incomplete.  A body that would exceed ``max_body`` is refused with 4.13 and
Size1.  Intermediate blocks get 2.31 Continue at once; when the last block
arrives the whole body goes up as one request, and the final response echoes
the Block1 option.

**Block2 (response bodies).**  A response larger than the block size
(``min(server max, the size the request asked for)``) is cut into blocks; the
block requested (0 unless the request's Block2 says otherwise) goes out with
Block2, an ETag (added from a hash of the body if the handler gave none) and,
on block 0 or when asked with Size2=0, Size2.  The whole representation is
kept in a bounded LRU cache for ``cache_lifetime`` seconds, so that the
following block requests are answered from it without running the handler
again.

**BERT** (RFC 8323 §6, over connections only: ``BlockwiseConfig.bert``).  A
Block1 block of szx 7 may carry several 1024-byte blocks (a multiple of 1024
bytes unless it is the body's last, else 4.00); it is placed at NUM * 1024 and
answered with szx 7.  A Block2 request of szx 7, or one asking for no block,
from a peer whose CSM indicates BERT is answered with as many 1024-byte blocks
as fit its Max-Message-Size (:mod:`coapkit.blockwise.bert`); a body that fits
one such message goes whole.  What is kept of a BERT block to recognise it
again is a digest, so every record stays as small as with plain blocks.

Both tables are bounded in entries and bytes; entries expire in the order
they were last used, swept as time advances (:meth:`BlockwiseServer.expire`).

**Bounds on bodies, and what each costs per block.**  The bodies are an
ordered dict, least recently used first, and every body is also listed under
its remote (``_by_remote``: remote -> its body keys in the same order), so
that every step is O(1) however many bodies there are (looking at all bodies
to find one remote's cost 8.5 ms per new body at 50,000 bodies):

* ``max_body`` per body (4.13 with Size1, RFC 7959 §2.9.3);
* ``max_bodies_per_remote`` per remote: a new body from a remote at its limit
  drops that remote's least recently used body;
* ``max_bodies`` in total: a new body drops the least recently used body of
  all.  Evicting rather than refusing keeps uploads possible under a flood of
  abandoned bodies: a refusal (5.03) would let ``max_bodies`` abandoned
  bodies lock every new upload out for ``transfer_timeout``, while eviction
  only ever costs an upload that stayed idle for longer than the flood took to
  send ``max_bodies`` new ones; its client gets 4.08 Request Entity
  Incomplete on its next block and starts again (RFC 7959 §2.3);
* ``max_body_total`` bytes in total: a block that would exceed it gets 5.03
  with Max-Age (bytes cannot be made by dropping a stranger's body cheaply
  enough to be fair, and a body may be large).

The byte cap alone admitted about a million one-block bodies (16 MiB of
16-byte blocks, 1.3 GB of keys and records); ``max_bodies`` (10,000) bounds the
records, whose size is bounded by the message size.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from coapkit.blockwise.bert import BertPeers
from coapkit.codec.codes import Code
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber, encode_uint, is_no_cache_key
from coapkit.codec.options import BlockValue, Options
from coapkit.codec.types import MessageType
from coapkit.errors import OptionValueError
from coapkit.messaging.records import Remote

N = OptionNumber

#: Options that never take part in identifying "the same resource and request" for blocks.
_NOT_IN_KEY = frozenset(
    {N.BLOCK1, N.BLOCK2, N.SIZE1, N.SIZE2, N.OBSERVE, N.ETAG, N.ECHO, N.REQUEST_TAG, N.NO_RESPONSE}
)


@dataclass(frozen=True, slots=True)
class BlockwiseConfig:
    """Limits and sizes of block-wise transfers (client and server)."""

    max_szx: int = 6
    """Largest block size this endpoint uses and accepts: 2**(max_szx+4) bytes (6: 1024)."""

    max_body: int = 64 * 1024
    """Largest request body reassembled from Block1 blocks (beyond: 4.13 with Size1)."""

    max_body_total: int = 16 * 1024 * 1024
    """Bytes of all bodies being reassembled at once (beyond: 5.03)."""

    max_bodies_per_remote: int = 16
    """Bodies being reassembled from one remote at once (beyond: the oldest is dropped)."""

    transfer_timeout: float = 247.0
    """An unfinished body or a cached representation idle this long is dropped.  The default,
    EXCHANGE_LIFETIME, outlasts a block whose exchange needed every retransmission."""

    cache_entries: int = 1024
    cache_bytes: int = 32 * 1024 * 1024

    max_response_body: int = 64 * 1024 * 1024
    """Largest response body the client reassembles from Block2 blocks."""

    block_retries: int = 4
    """How often the client asks again for one block whose exchange failed (a lost block
    must not cost a whole long transfer)."""

    max_bodies: int = 10_000
    """Bodies being reassembled at once from all remotes (beyond: the least recently used
    is dropped, and its client gets 4.08 on its next block).  Each costs its bytes and a
    record of at most about 2.5 KB (its key is the request's options, its last block is
    kept for a retry)."""

    bert: bool | None = None
    """BERT, blocks of szx 7 (RFC 8323 §6): accepted from any peer and sent to peers whose
    CSM indicates it (see :mod:`coapkit.blockwise.bert`).  None, the default: on exactly
    when the endpoint runs over a connection layer, the only place BERT exists; False:
    never (szx 7 is refused with 4.02 as over UDP, and never sent).  The endpoint settles
    None; True over datagrams is refused there."""

    max_bert_blocks: int = 64
    """Most 1024-byte blocks one BERT message carries (64: 64 KiB), however large the
    peer's Max-Message-Size: a message on a stream holds up all that follows it.  1
    sends no BERT at all (it is still accepted)."""

    def __post_init__(self) -> None:
        if self.max_bert_blocks < 1:
            raise ValueError("max_bert_blocks must be at least 1")
        if not 0 <= self.max_szx <= 6:
            raise ValueError("max_szx must be 0..6 (16..1024 bytes)")
        if self.max_bodies < 1 or self.max_bodies_per_remote < 1:
            raise ValueError("max_bodies and max_bodies_per_remote must be at least 1")

    @property
    def max_block_size(self) -> int:
        return 1 << (self.max_szx + 4)


@dataclass(slots=True)
class BlockwiseStats:
    bodies_reassembled: int = 0
    bodies_too_large: int = 0
    bodies_incomplete: int = 0
    bodies_expired: int = 0
    #: bodies dropped unfinished to make room for a new one (max_bodies, max_bodies_per_remote)
    bodies_evicted: int = 0
    blocks_served_from_cache: int = 0
    representations_cached: int = 0
    representations_expired: int = 0
    #: retried last Block1 blocks answered from the record of finished bodies
    last_blocks_answered_again: int = 0


@dataclass(slots=True)
class _Body:
    """A request body being reassembled."""

    remote: Remote
    data: bytearray = field(default_factory=bytearray)
    last_num: int = -1
    last_szx: int = 0
    #: the last block, or for a BERT block its fingerprint (see _fingerprint)
    last_block: bytes = b""
    expires: float = 0.0


@dataclass(slots=True)
class _Representation:
    """A whole response body kept to serve its blocks."""

    code: int
    options: Options
    payload: bytes
    expires: float


def _key_options(message: Message) -> tuple[tuple[int, bytes], ...]:
    return tuple(
        item
        for item in message.options.items
        if item[0] not in _NOT_IN_KEY and not is_no_cache_key(item[0])
    )


_LARGEST_BLOCK = 1024


def representation_key(message: Message, remote: Remote) -> tuple[object, ...]:
    """What identifies one representation: peer, method, resource and request options.

    FETCH bodies select what is fetched, so they are part of the key (RFC 8132 §2.3.2);
    a body that came in Block1 blocks is not (its last block is only a piece of it), nor
    one larger than a plain block (it came in blocks, or whole in one large message over a
    connection): the requests for the rest of such a response carry no body (libcoap's do
    not, nor do coapkit's, which send the body again only when it is no larger than a
    plain block).
    """
    fetch = (
        message.code == Code.FETCH
        and N.BLOCK1 not in message.options
        and len(message.payload) <= _LARGEST_BLOCK
    )
    return (remote, message.code, _key_options(message), message.payload if fetch else b"")


def body_key(message: Message, remote: Remote) -> tuple[object, ...]:
    """What identifies one request body: peer, method, resource, options, Request-Tag."""
    tags = tuple(message.options.get_all(N.REQUEST_TAG))
    return (remote, message.code, _key_options(message), tags)


def size_option(options: Options, number: int) -> int | None:
    """The value of Size1 or Size2, or None when absent or malformed: a malformed elective
    option from a peer is ignored (RFC 7252 §5.4.1, §5.4.3), never raised."""
    raw = options.get(number)
    if raw is None or len(raw) > 4:
        return None
    return int.from_bytes(raw, "big")


def etag_for(payload: bytes) -> bytes:
    """A strong ETag from the content, for block-wise representations without one."""
    return hashlib.blake2b(payload, digest_size=8).digest()


def _response(code: int, options: Options, payload: bytes = b"") -> Message:
    return _make(MessageType.ACK, code, 0, b"", options, payload)


class BlockwiseServer:
    """The server half of RFC 7959 for one endpoint."""

    def __init__(
        self, config: BlockwiseConfig | None = None, *, peers: BertPeers | None = None
    ) -> None:
        self.config = config = config or BlockwiseConfig()
        #: the peers that take BERT blocks (shared with the client half; see bert.py)
        self.peers = peers if peers is not None else BertPeers(config.max_bert_blocks)
        self.stats = BlockwiseStats()
        self._bodies: OrderedDict[tuple[object, ...], _Body] = OrderedDict()
        #: the keys of ``_bodies`` by remote, in the same order (least recently used first)
        self._by_remote: dict[Remote, OrderedDict[tuple[object, ...], None]] = {}
        self._body_bytes = 0
        self._cache: OrderedDict[tuple[object, ...], _Representation] = OrderedDict()
        self._cache_bytes = 0
        #: bodies handed up lately: key -> [last block number, last block, the answer (None
        #: until the application gave it), expiry], so that a retried last block gets the
        #: same answer instead of 4.08 and the handler does not run twice (bounded, FIFO)
        self._finished: OrderedDict[tuple[object, ...], list[Any]] = OrderedDict()

    @property
    def bodies_in_progress(self) -> int:
        return len(self._bodies)

    @property
    def cached_representations(self) -> int:
        return len(self._cache)

    @property
    def buffered_bytes(self) -> int:
        return self._body_bytes + self._cache_bytes

    @property
    def finished_bodies(self) -> int:
        """Bodies handed up whose last block's answer is kept for a retry (at most
        ``cache_entries``, each one block and one answer, for ``transfer_timeout``)."""
        return len(self._finished)

    # -- requests ------------------------------------------------------------------------

    def on_request(
        self, request: Message, remote: Remote, now: float
    ) -> tuple[Message | None, Message | None]:
        """Decide what to do with a request: ``(request to hand up, None)`` or ``(None, answer)``.

        The request handed up is the original one, or for the last block of a
        Block1 body the whole body with Block1 and Size1 removed.
        """
        options = request.options
        if N.BLOCK1 not in options and N.BLOCK2 not in options:
            return request, None
        if self._bodies or self._cache:
            self.expire(now)
        try:
            block1 = options.block1
            block2 = options.block2
        except OptionValueError:
            return None, _response(Code.BAD_OPTION, Options(), b"malformed Block option")
        if block1 is not None:
            return self._on_block1(request, block1, remote, now)
        assert block2 is not None
        if block2.szx == 7 and not self.config.bert:
            return None, _response(Code.BAD_OPTION, Options(), b"Block2 szx 7 is reserved")
        if block2.num == 0:
            return request, None
        key = representation_key(request, remote)
        entry = self._cache.get(key)
        if entry is None:
            return request, None  # not cached (any more): render again and slice
        self._cache.move_to_end(key)
        entry.expires = now + self.config.transfer_timeout
        self.stats.blocks_served_from_cache += 1
        block, length = self._window(block2, remote, entry.options)
        return None, self._slice(entry.code, entry.options, entry.payload, request, block, length)

    def _on_block1(
        self, request: Message, block1: BlockValue, remote: Remote, now: float
    ) -> tuple[Message | None, Message | None]:
        config = self.config
        payload = request.payload
        if block1.bert:
            if not config.bert:
                return None, _response(Code.BAD_OPTION, Options(), b"Block1 szx 7 is reserved")
            # A BERT block may carry several 1024-byte blocks; all but the last block of
            # a body carry whole ones, at least one (RFC 8323 §6).  Anything else cannot
            # be placed: 4.00, as for a plain block that does not fill its size.
            if block1.more and (not payload or len(payload) % 1024):
                return None, _response(
                    Code.BAD_REQUEST,
                    Options(),
                    b"a BERT block with more=1 must carry a multiple of 1024 bytes",
                )
        else:
            size = block1.size
            if block1.more and len(payload) != size:
                return None, _response(
                    Code.BAD_REQUEST,
                    Options(),
                    b"a Block1 block with more=1 must fill its block size",
                )
            if len(payload) > size:
                return None, _response(Code.BAD_REQUEST, Options(), b"Block1 block larger than szx")
        key = body_key(request, remote)
        body = self._bodies.get(key)
        offset = block1.offset
        mark = _fingerprint(payload)
        announced = size_option(request.options, N.SIZE1)
        too_large = (announced is not None and announced > config.max_body) or (
            offset + len(payload) > config.max_body
        )
        if too_large:
            self._drop(key)
            self.stats.bodies_too_large += 1
            return None, _response(
                Code.REQUEST_ENTITY_TOO_LARGE,
                Options.build(size1=config.max_body),
                b"request body too large",
            )
        if block1.num == 0:
            if body is not None and body.last_num == 0 and mark == body.last_block:
                pass  # the first block again: answer it again
            else:
                self._drop(key)
                if self._body_bytes + len(payload) > config.max_body_total:
                    return None, _response(
                        Code.SERVICE_UNAVAILABLE,
                        Options.build(max_age=5),
                        b"too many request bodies in progress",
                    )
                body = self._start_body(key, remote)
                body.data += payload
                self._body_bytes += len(payload)
        elif body is None and not block1.more and key in self._finished:
            done = self._finished[key]
            last_num, last_block, answer, _ = done
            if last_num == block1.num and last_block == mark:
                # The last block again: the body was handed up, its answer got lost.  The
                # client may lose this answer too and ask again: keep the record as long.
                done[3] = now + self.config.transfer_timeout
                self._finished.move_to_end(key)
                self.stats.last_blocks_answered_again += 1
                if answer is None:
                    busy = Options.build(max_age=1)
                    return None, _response(Code.SERVICE_UNAVAILABLE, busy, b"still working")
                return None, answer
            self.stats.bodies_incomplete += 1
            return None, _response(
                Code.REQUEST_ENTITY_INCOMPLETE, Options(), b"block received without block 0"
            )
        elif body is None:
            self.stats.bodies_incomplete += 1
            return None, _response(
                Code.REQUEST_ENTITY_INCOMPLETE, Options(), b"block received without block 0"
            )
        elif (
            offset == BlockValue(body.last_num, False, body.last_szx).offset
            and mark == body.last_block
        ):
            pass  # the previous block again (its answer was lost): answer it again
        elif offset != len(body.data):
            self._drop(key)
            self.stats.bodies_incomplete += 1
            return None, _response(
                Code.REQUEST_ENTITY_INCOMPLETE,
                Options(),
                f"expected the block at offset {len(body.data) if body else 0}".encode(),
            )
        else:
            if self._body_bytes + len(payload) > config.max_body_total:
                self._drop(key)
                return None, _response(
                    Code.SERVICE_UNAVAILABLE,
                    Options.build(max_age=5),
                    b"too many request bodies in progress",
                )
            body.data += payload
            self._body_bytes += len(payload)
        body.last_num = block1.num
        body.last_szx = block1.szx
        body.last_block = mark
        body.expires = now + config.transfer_timeout
        self._bodies.move_to_end(key)
        self._by_remote[remote].move_to_end(key)
        if block1.more:
            szx = self._block1_szx(block1.szx)
            continue_options = Options.build(block1=BlockValue(block1.num, True, szx))
            return None, _response(Code.CONTINUE, continue_options)
        # The last block: hand the whole body up as one request.
        whole = bytes(body.data)
        self._drop(key)
        self.stats.bodies_reassembled += 1
        finished = self._finished
        finished.pop(key, None)
        finished[key] = [block1.num, mark, None, now + config.transfer_timeout]
        while len(finished) > config.cache_entries:
            finished.popitem(last=False)
        options = request.options.remove(N.BLOCK1, N.SIZE1)
        assembled = _make(request.mtype, request.code, request.mid, request.token, options, whole)
        return assembled, None

    def _start_body(self, key: tuple[object, ...], remote: Remote) -> _Body:
        """A new, empty body; the least recently used one of the remote, or of all, goes
        if either is at its limit.  O(1)."""
        config = self.config
        bodies = self._bodies
        mine = self._by_remote.get(remote)
        if mine is not None and len(mine) >= config.max_bodies_per_remote:
            self._drop(next(iter(mine)))
            self.stats.bodies_evicted += 1
        if len(bodies) >= config.max_bodies:
            self._drop(next(iter(bodies)))
            self.stats.bodies_evicted += 1
        mine = self._by_remote.get(remote)  # the drops may have removed an emptied one
        if mine is None:
            mine = self._by_remote[remote] = OrderedDict()
        body = bodies[key] = _Body(remote)
        mine[key] = None
        return body

    def _drop(self, key: tuple[object, ...]) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self._body_bytes -= len(body.data)
            mine = self._by_remote[body.remote]
            del mine[key]
            if not mine:
                del self._by_remote[body.remote]

    # -- responses -------------------------------------------------------------------------

    def on_response(
        self, request: Message, response: Message, remote: Remote, now: float
    ) -> Message:
        """Fit the application's response to the request's block options.

        ``request`` is the request as it arrived (the last block for Block1 bodies).
        """
        fitted = self._fit(request, response, remote, now)
        if self._finished and N.BLOCK1 in request.options:
            key = body_key(request, remote)
            done = self._finished.get(key)
            if done is not None and done[2] is None:
                if len(fitted.payload) > _LARGEST_BLOCK:
                    # A BERT answer, so over a connection, where a last block never comes
                    # again (nothing is retransmitted; a new connection is another
                    # remote): not worth keeping up to a message's size for.
                    del self._finished[key]
                else:
                    done[2] = fitted
        return fitted

    def _fit(self, request: Message, response: Message, remote: Remote, now: float) -> Message:
        options = request.options
        block1_raw = options.get(N.BLOCK1)
        response_options = response.options
        if block1_raw is not None and N.BLOCK1 not in response_options:
            block1 = BlockValue.from_uint(int.from_bytes(block1_raw, "big"))
            szx = self._block1_szx(block1.szx)
            response_options = response_options.replace(block1=BlockValue(block1.num, False, szx))
        if N.BLOCK2 in response_options:
            return _rebuild(response, response_options, response.payload)
        block2 = None
        if N.BLOCK2 in options:
            try:
                block2 = options.block2
            except OptionValueError:
                block2 = None
        block, length = self._window(block2, remote, response_options)
        payload = response.payload
        if len(payload) <= length and block.num == 0:
            if N.SIZE2 in options and N.SIZE2 not in response_options:
                response_options = response_options.replace(size2=len(payload))
            return _rebuild(response, response_options, payload)
        if not 64 <= response.code < 96:
            return _rebuild(response, response_options, payload)  # errors are not sliced
        if response_options.etag is None:
            response_options = response_options.replace(etag=etag_for(payload))
        key = representation_key(request, remote)
        self._store(key, response.code, response_options, payload, now)
        sliced = self._slice(response.code, response_options, payload, request, block, length)
        # Keep the response's type and token: a notification goes out as it is (§2.6).
        return _make(
            response.mtype,
            sliced.code,
            response.mid,
            response.token,
            sliced.options,
            sliced.payload,
        )

    def _store(
        self, key: tuple[object, ...], code: int, options: Options, payload: bytes, now: float
    ) -> None:
        config = self.config
        if len(payload) > config.cache_bytes:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old.payload)
        # Later blocks answer plain block requests: no Observe there (RFC 7959 §2.6).
        self._cache[key] = _Representation(
            code, options.remove(N.BLOCK1, N.OBSERVE), payload, now + config.transfer_timeout
        )
        self._cache_bytes += len(payload)
        self.stats.representations_cached += 1
        while len(self._cache) > config.cache_entries or self._cache_bytes > config.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= len(evicted.payload)

    def _block1_szx(self, szx: int) -> int:
        """The szx to answer a Block1 block of ``szx`` with (2.31, or the final response):
        the size this server wants next (RFC 7959 §2.3).  A BERT block is answered with
        szx 7, BERT welcome again (RFC 8323 §6.2), unless blocks are kept smaller here."""
        max_szx = self.config.max_szx
        if szx == 7 and max_szx == 6:
            return 7
        return min(szx, max_szx)

    def _window(
        self, wanted: BlockValue | None, remote: Remote, options: Options
    ) -> tuple[BlockValue, int]:
        """The Block2 block to send and how many bytes it may carry, for a request that
        asked for ``wanted`` (None: it asked for no block).

        BERT (RFC 8323 §6) when the request asked for it (szx 7, "control usage") or for
        no particular block, and the peer's CSM said it takes BERT: as many 1024-byte
        blocks as fit its Max-Message-Size (:meth:`BertPeers.blocks`).  Choosing BERT
        unasked is what RFC 8323 §6.1 shows (a GET without Block2 answered with
        ``2:0/1/BERT(3072)``): the CSM already said the peer takes it, and every block
        not sent alone saves a round trip.  A body that fits one such message goes whole,
        without Block2 (see :meth:`_fit`).  Otherwise the block asked for, no larger than
        ``max_szx`` allows; a BERT request then gets 1024-byte blocks (szx 6), which §6
        lets a server send instead ("a different SZX value").
        """
        config = self.config
        num = 0 if wanted is None else wanted.num
        if (wanted is None or wanted.szx == 7) and config.bert and config.max_szx == 6:
            count = self.peers.blocks(remote, options)
            if count:
                return BlockValue(num, False, 7), count * 1024
        if wanted is None:
            block = BlockValue(0, False, config.max_szx)
        else:
            block = _at_most(BlockValue(num, False, min(wanted.szx, 6)), config.max_szx)
        return block, block.size

    def _slice(
        self,
        code: int,
        options: Options,
        payload: bytes,
        request: Message,
        block: BlockValue,
        length: int,
    ) -> Message:
        """Block ``block`` of ``payload``, ``length`` bytes (several blocks for BERT)."""
        start = block.offset
        if start >= len(payload) and not (start == 0 and not payload):
            return _response(Code.BAD_OPTION, Options(), b"Block2 beyond the end of the body")
        chunk = payload[start : start + length]
        more = start + length < len(payload)
        block_options = options.replace(block2=BlockValue(block.num, more, block.szx))
        if block.num == 0 or N.SIZE2 in request.options:
            block_options = block_options.set_raw(N.SIZE2, [encode_uint(len(payload))])
        return _response(code, block_options, chunk)

    # -- time --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        first: float | None = None
        if self._bodies:
            first = next(iter(self._bodies.values())).expires
        if self._cache:
            expires = next(iter(self._cache.values())).expires
            if first is None or expires < first:
                first = expires
        if self._finished:
            expires = next(iter(self._finished.values()))[3]
            if first is None or expires < first:
                first = expires
        return first

    def expire(self, now: float) -> None:
        """Drop bodies and representations idle for ``transfer_timeout``."""
        bodies = self._bodies
        while bodies:
            key, body = next(iter(bodies.items()))
            if body.expires > now:
                break
            self._drop(key)
            self.stats.bodies_expired += 1
        cache = self._cache
        while cache:
            key, entry = next(iter(cache.items()))
            if entry.expires > now:
                break
            cache.popitem(last=False)
            self._cache_bytes -= len(entry.payload)
            self.stats.representations_expired += 1
        finished = self._finished
        while finished and next(iter(finished.values()))[3] <= now:
            finished.popitem(last=False)


def _at_most(block: BlockValue, max_szx: int) -> BlockValue:
    """The block at the same offset in blocks no larger than ``max_szx`` allows.

    A server that answers with a smaller block than asked for keeps the offset
    (RFC 7959 §2.4): block 1 of 1024 bytes is block 4 of 256 bytes.
    """
    if block.szx <= max_szx:
        return block
    return BlockValue(block.num << (block.szx - max_szx), block.more, max_szx)


def _fingerprint(payload: bytes) -> bytes:
    """What is kept of a block to recognise it when it comes again: the block itself, or
    for a BERT block larger than 1024 bytes a digest and its length, so that a record
    stays as small as with plain blocks (a BERT block can be as large as a message)."""
    if len(payload) <= _LARGEST_BLOCK:
        return payload
    digest = hashlib.blake2b(payload, digest_size=16).digest()
    return digest + len(payload).to_bytes(8, "big")


def _rebuild(response: Message, options: Options, payload: bytes) -> Message:
    if options is response.options and payload is response.payload:
        return response
    return _make(response.mtype, response.code, response.mid, response.token, options, payload)
