"""Requests as the application sees them: block-wise bodies (RFC 7959) and observations (RFC 7641).

Theory of operation
-------------------
A :class:`Transfer` is the handle the application holds for one request.  It
may take several exchanges (each its own token and message IDs) below it:

* **Block1**: a body larger than the block size goes out in blocks; each
  2.31 Continue asks for the next block, at the (possibly smaller) size the
  server indicated; a 4.13 to a request sent whole is retried once in blocks.
* **Block2**: a response with Block2 and the more flag set is continued with
  requests for the following blocks, at the server's block size, until the
  last one; the ETag must stay the same (the transfer restarts, at most
  ``MAX_RESTARTS`` times, when the representation changes).  A request that
  asks for a block beyond the first on its own (random access) gets just that
  block back.
* **BERT** (RFC 8323 §6, over connections only): to a peer whose CSM
  indicates BERT, a body larger than one message can carry goes in BERT
  blocks (szx 7) of as many 1024-byte blocks as fit its Max-Message-Size, and
  a smaller one whole; a BERT response block is placed at NUM * 1024 and the
  next is asked for after everything it carried.  Plain 1024-byte blocks
  from such a peer are followed up with szx 7, which invites BERT.
* **Observe**: a request with Observe=0 stays open.  Each notification is
  checked for freshness (§3.4) and stale ones are dropped; a notification
  carrying the first block of a larger body is completed with Block2
  requests first; a response without Observe, or an error, ends the
  observation.  When Max-Age passes without a notification the registration
  is sent again with the same token; cancelling sends a deregistration
  (GET with Observe=1, §3.6).

Re-registration, and when an observation is lost (RFC 7641 §3.3.1)
------------------------------------------------------------------
A notification is fresh for Max-Age seconds (60 when absent, RFC 7252
§5.10.5).  When that much time plus ``reregister_margin`` (for the
notification's latency) passes without a fresh notification, the client
cannot tell a resource that did not change from a server that is gone, so it
sends the registration again, with the same token.  An answer with Observe
that carries the state the client has, or a newer one, confirms the
observation and starts the wait again; an answer without Observe, or an
error code, ends the observation like any final response.

The re-registration is bounded like a request (see
:meth:`~coapkit.exchanges.client.ClientExchanges.resend`): by the
transfer's ``timeout`` if it has one, else a CON by the message layer's
retransmissions (at most MAX_TRANSMIT_WAIT, 93 s by default) and a NON by
NON_LIFETIME (145 s).  A NON is sent again every default Max-Age (65 s)
meanwhile, for a link that loses one; a CON still being retransmitted is
left alone.  When the bound passes without an answer the observation fails:
a :class:`~coapkit.exchanges.events.RequestFailed` for the transfer, with a
:class:`~coapkit.errors.RequestTimeout` (or its subclass
:class:`~coapkit.errors.RetransmissionsExceeded`) that says how long the
server has been silent.  A Reset (:class:`~coapkit.errors.ResetByPeer`) or a
network error (:class:`~coapkit.errors.NetworkError`, e.g. ICMP port
unreachable) fails it at once.  So an observation of a server that went away
ends at most Max-Age + margin + that bound after the last notification; it
is never re-sent for ever.

The application sees one final :class:`~coapkit.exchanges.events.ResponseEvent`
(or a :class:`~coapkit.exchanges.events.RequestFailed`) per request, plus
non-final ones for notifications, and :class:`TransferProgress` after each block.
"""

from __future__ import annotations

import heapq
from contextlib import suppress
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from coapkit.blockwise.bert import BertPeers
from coapkit.blockwise.server import BlockwiseConfig, size_option
from coapkit.codec.codes import Code
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import BlockValue, Options
from coapkit.codec.types import MessageType
from coapkit.errors import (
    CoapError,
    OptionValueError,
    RequestTimeout,
    RetransmissionsExceeded,
    TransferError,
)
from coapkit.exchanges.client import ClientExchanges, ClientRequest
from coapkit.exchanges.events import (
    EndpointEvent,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    ResponseEvent,
)
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.layer import Datagrams
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import OutgoingState, Remote
from coapkit.observe.ordering import is_newer

N = OptionNumber
MAX_RESTARTS = 3
MAX_ECHO_RETRIES = 2
_BODY_METHODS = frozenset({Code.POST, Code.PUT, Code.FETCH, Code.PATCH, Code.IPATCH})
_DEFAULT_MAX_AGE = 60
_UNSETTLED = (OutgoingState.QUEUED, OutgoingState.AWAITING_ACK)


class TransferState(IntEnum):
    OPEN = 0
    DONE = 1


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A block went through: ``done`` of ``total`` bytes (total None when unknown)."""

    handle: Transfer
    done: int
    total: int | None
    upload: bool


class Transfer:
    """One request of the application, however many exchanges it takes."""

    __slots__ = (
        "auto_block2",
        "block_retries",
        "body",
        "echo_retries",
        "etag",
        "exchange",
        "fetch",
        "first_options",
        "last_sequence",
        "last_time",
        "mtype",
        "multicast",
        "observe",
        "owner",
        "parent",
        "registered",
        "remote",
        "request",
        "request_tag",
        "reregister_at",
        "reregistered_at",
        "restarts",
        "size2",
        "started_at",
        "state",
        "timeout",
        "transmission",
        "upload",
        "upload_blocks",
        "upload_offset",
        "upload_retried",
        "upload_szx",
    )

    def __init__(
        self,
        request: Message,
        remote: Remote,
        now: float,
        *,
        mtype: MessageType,
        transmission: TransmissionParameters | None,
        timeout: float | None,
        multicast: bool,
        observe: bool,
    ) -> None:
        self.request = request
        self.remote = remote
        self.started_at = now
        self.mtype = mtype
        self.transmission = transmission
        self.timeout = timeout
        self.multicast = multicast
        self.observe = observe
        self.owner: Any = None  #: free for the layer above (the runtime's future or stream)
        self.state = TransferState.OPEN
        self.exchange: ClientRequest | None = None
        self.upload: bytes | None = None
        self.upload_offset = 0
        self.upload_szx = 6
        #: 1024-byte blocks per message while uploading with BERT (upload_szx 7)
        self.upload_blocks = 1
        self.upload_retried = False
        self.request_tag: bytes | None = None
        self.body: bytearray | None = None
        self.etag: bytes | None = None
        self.first_options: Options | None = None
        self.auto_block2 = True
        self.restarts = 0
        self.echo_retries = 0
        self.block_retries = 0
        self.size2: int | None = None
        self.registered = False
        self.last_sequence = -1
        self.last_time = 0.0
        self.reregister_at: float | None = None
        #: when the re-registration that is still unanswered was sent (None: none is)
        self.reregistered_at: float | None = None
        self.parent: Transfer | None = None
        self.fetch: Transfer | None = None

    @property
    def open(self) -> bool:
        return self.state is TransferState.OPEN

    @property
    def token(self) -> bytes:
        """The token of the current exchange (an observation keeps its token)."""
        return self.exchange.token if self.exchange is not None else b""

    def __repr__(self) -> str:
        method = self.request.code
        return f"<Transfer code={method} to {self.remote!r} {self.state.name}>"


class ClientTransfers:
    """Block-wise and Observe logic between the exchanges and the application."""

    def __init__(
        self,
        exchanges: ClientExchanges,
        config: BlockwiseConfig | None = None,
        *,
        reregister: bool = True,
        reregister_margin: float = 5.0,
        peers: BertPeers | None = None,
    ) -> None:
        self.exchanges = exchanges
        self.config = config = config or BlockwiseConfig()
        #: the peers that take BERT blocks (shared with the server half; see bert.py)
        self.peers = peers if peers is not None else BertPeers(config.max_bert_blocks)
        self.reregister = reregister
        self.reregister_margin = reregister_margin
        self._timers: list[tuple[float, int, Transfer]] = []
        #: over a connection notifications arrive in the order sent and their Observe
        #: values may be empty (RFC 8323 §7.1): each one is news, in arrival order
        self._arrival_order = exchanges.messaging.reliable
        self._seq = 0
        self._uploads: dict[tuple[object, ...], int] = {}
        self._tag_counter = 0

    # -- starting --------------------------------------------------------------------------

    def start(
        self,
        message: Message,
        remote: Remote,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        multicast: bool = False,
        keep_open: bool = False,
        token: bytes | None = None,
    ) -> Transfer:
        options = message.options
        observe = keep_open and not multicast
        transfer = Transfer(
            message,
            remote,
            now,
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            multicast=multicast,
            observe=observe,
        )
        if N.BLOCK2 in options:
            requested = _block(options, N.BLOCK2)
            if requested is not None and requested.num > 0:
                transfer.auto_block2 = False  # random access: exactly the block asked for
        payload = message.payload
        first = message
        if (
            not multicast
            and message.code in _BODY_METHODS
            and N.BLOCK1 not in options
            and len(payload) > self.config.max_block_size
        ):
            # To a peer that takes BERT, a body that fits one message goes whole (RFC 8323
            # lifts UDP's size limit; blocks would only cost round trips); a larger one in
            # BERT blocks as large as the peer's Max-Message-Size allows (RFC 8323 §6).
            bert = self._bert_blocks(remote, options)
            if not bert:
                self._begin_upload(transfer, self.config.max_szx)
                first = self._upload_message(transfer)
            elif len(payload) > bert * 1024:
                self._begin_upload(transfer, 7, bert)
                first = self._upload_message(transfer)
        transfer.exchange = self.exchanges.request(
            first,
            remote,
            now,
            out,
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            multicast=multicast,
            keep_open=keep_open,
            token=token,
        )
        transfer.exchange.owner = transfer
        return transfer

    def ping(self, remote: Remote, now: float, out: Datagrams) -> Transfer:
        transfer = Transfer(
            Message(),
            remote,
            now,
            mtype=MessageType.CON,
            transmission=None,
            timeout=None,
            multicast=False,
            observe=False,
        )
        transfer.exchange = self.exchanges.ping(remote, now, out)
        transfer.exchange.owner = transfer
        return transfer

    # -- Block1 ----------------------------------------------------------------------------

    def _bert_blocks(self, remote: Remote, options: Options) -> int:
        """How many 1024-byte blocks a BERT message to ``remote`` carries (0: no BERT)."""
        config = self.config
        if not config.bert or config.max_szx < 6:
            return 0
        return self.peers.blocks(remote, options)

    def _begin_upload(self, transfer: Transfer, szx: int, blocks: int = 1) -> None:
        transfer.upload = transfer.request.payload
        transfer.upload_offset = 0
        transfer.upload_szx = szx
        transfer.upload_blocks = blocks if szx == 7 else 1
        key = self._upload_key(transfer)
        count = self._uploads.get(key, 0)
        if count and transfer.request_tag is None:
            # Another body to the same resource is on its way: keep them apart (RFC 9175 §3).
            self._tag_counter += 1
            transfer.request_tag = self._tag_counter.to_bytes(4, "big")
        self._uploads[key] = count + 1

    def _end_upload(self, transfer: Transfer) -> None:
        if transfer.upload is None:
            return
        key = self._upload_key(transfer)
        count = self._uploads.get(key, 0) - 1
        if count > 0:
            self._uploads[key] = count
        else:
            self._uploads.pop(key, None)
        transfer.upload = None

    @staticmethod
    def _upload_key(transfer: Transfer) -> tuple[object, ...]:
        request = transfer.request
        path = tuple(value for number, value in request.options.items if number == N.URI_PATH)
        return (transfer.remote, request.code, path)

    def _upload_message(self, transfer: Transfer) -> Message:
        assert transfer.upload is not None
        unit = BlockValue(0, False, transfer.upload_szx).size
        offset = transfer.upload_offset
        chunk = transfer.upload[offset : offset + unit * transfer.upload_blocks]
        more = offset + len(chunk) < len(transfer.upload)
        values: dict[str, Any] = {
            "block1": BlockValue(offset // unit, more, transfer.upload_szx),
        }
        if offset == 0:
            values["size1"] = len(transfer.upload)
        if transfer.request_tag is not None:
            values["request_tag"] = [transfer.request_tag]
        options = transfer.request.options.replace(**values)
        return _make(transfer.mtype, transfer.request.code, 0, b"", options, chunk)

    # -- events from the exchanges -------------------------------------------------------------

    def on_event(self, event: EndpointEvent, now: float, out: Datagrams) -> list[Any]:
        """Turn an exchange-level event into application-level events."""
        exchange = getattr(event, "handle", None)
        if not isinstance(exchange, ClientRequest):
            return [event]
        transfer = exchange.owner
        if not isinstance(transfer, Transfer) or transfer.state is TransferState.DONE:
            return []
        if isinstance(event, ResponseEvent):
            return self._on_response(transfer, event.response, event.remote, now, out)
        if isinstance(event, RequestFailed):
            if exchange is not transfer.exchange:
                return []
            if transfer.observe and transfer.registered and isinstance(event.error, RequestTimeout):
                return self._fail(transfer, self._observation_lost(transfer, event.error, now))
            if (
                isinstance(event.error, RetransmissionsExceeded)
                and (transfer.body is not None or transfer.upload is not None)
                and transfer.block_retries < self.config.block_retries
            ):
                # One block of a long transfer was unlucky: ask for it again (RFC 7959
                # leaves block requests independent), rather than losing the transfer.
                transfer.block_retries += 1
                return self._next_exchange(transfer, exchange.message, now, out)
            return self._fail(transfer, event.error)
        if isinstance(event, RequestAcknowledged):
            if transfer.parent is not None:
                return []
            return [RequestAcknowledged(transfer)]  # type: ignore[arg-type]
        if isinstance(event, PongReceived):
            self._close(transfer)
            return [PongReceived(transfer, event.rtt)]  # type: ignore[arg-type]
        return []

    def _on_response(
        self, transfer: Transfer, response: Message, remote: Remote, now: float, out: Datagrams
    ) -> list[Any]:
        if transfer.multicast:
            return [ResponseEvent(transfer, response, remote, False)]  # type: ignore[arg-type]
        if (
            response.code == Code.UNAUTHORIZED
            and N.ECHO in response.options
            and transfer.echo_retries < MAX_ECHO_RETRIES
            and transfer.exchange is not None
        ):
            # The server wants proof that we are at this address (RFC 9175 §2.3-2.4):
            # repeat the same request with its Echo value.
            transfer.echo_retries += 1
            previous = transfer.exchange.message
            options = previous.options.set_raw(N.ECHO, [response.options.echo or b""])
            again = _make(previous.mtype, previous.code, 0, b"", options, previous.payload)
            return self._next_exchange(transfer, again, now, out)
        if transfer.upload is not None:
            return self._on_upload_response(transfer, response, remote, now, out)
        if response.code == Code.REQUEST_ENTITY_TOO_LARGE:
            retried = self._upload_instead(transfer, response, now, out)
            if retried is not None:
                return retried
        if transfer.observe and transfer.parent is None:
            return self._on_notification(transfer, response, remote, now, out)
        return self._on_body_block(transfer, response, remote, now, out)

    def _upload_instead(
        self, transfer: Transfer, response: Message, now: float, out: Datagrams
    ) -> list[Any] | None:
        """A 4.13 to a body sent whole is a hint to send it in blocks (RFC 7959 §2.9.3), at
        the size a Block1 option in it gives, else at the largest size below the body's."""
        request = transfer.request
        payload = request.payload
        if (
            transfer.upload_retried
            or transfer.observe
            or request.code not in _BODY_METHODS
            or N.BLOCK1 in request.options
        ):
            return None
        size1 = size_option(response.options, N.SIZE1)
        if size1 is not None and size1 < len(payload):
            return None  # too large at any block size
        szx = min(self.config.max_szx, (len(payload) - 1).bit_length() - 5)
        hint = _block(response.options, N.BLOCK1)
        if hint is not None:
            szx = min(szx, hint.szx)
        if szx < 0:
            return None  # 16 bytes or less cannot be sent in smaller blocks
        transfer.upload_retried = True
        self._begin_upload(transfer, szx)
        return self._next_exchange(transfer, self._upload_message(transfer), now, out)

    def _on_upload_response(
        self, transfer: Transfer, response: Message, remote: Remote, now: float, out: Datagrams
    ) -> list[Any]:
        """Handle a response during a Block1 upload; the last one goes on as a response."""
        assert transfer.upload is not None
        code = response.code
        if code == Code.CONTINUE:
            block1 = _block(response.options, N.BLOCK1)
            if block1 is None:
                return self._fail(transfer, TransferError("2.31 Continue without a Block1 option"))
            transfer.block_retries = 0
            sent = BlockValue(0, False, transfer.upload_szx).size * transfer.upload_blocks
            transfer.upload_offset += min(sent, len(transfer.upload) - transfer.upload_offset)
            if block1.szx < transfer.upload_szx:
                # The server wants smaller blocks (RFC 7959 §2.3); a BERT upload answered
                # with szx 6 goes on in plain 1024-byte blocks (RFC 8323 §6).
                transfer.upload_szx = block1.szx
                transfer.upload_blocks = 1
            progress = TransferProgress(
                transfer, transfer.upload_offset, len(transfer.upload), True
            )
            if transfer.upload_offset >= len(transfer.upload):
                return self._fail(transfer, TransferError("2.31 Continue after the last block"))
            return [
                progress,
                *self._next_exchange(transfer, self._upload_message(transfer), now, out),
            ]
        if code == Code.REQUEST_ENTITY_TOO_LARGE and not transfer.upload_retried:
            hint = _block(response.options, N.BLOCK1)
            size1 = size_option(response.options, N.SIZE1)
            fits = size1 is None or size1 >= len(transfer.upload)
            if fits and (hint is not None or transfer.upload_offset == 0):
                transfer.upload_retried = True
                szx = hint.szx if hint is not None else transfer.upload_szx - 1
                transfer.upload_offset = 0
                # (a BERT upload that was too large starts again in plain blocks)
                transfer.upload_szx = max(0, min(szx, transfer.upload_szx, 6))
                transfer.upload_blocks = 1
                return self._next_exchange(transfer, self._upload_message(transfer), now, out)
        uploaded = len(transfer.upload)
        self._end_upload(transfer)
        finished = [TransferProgress(transfer, uploaded, uploaded, True)]
        if N.BLOCK1 in response.options:
            response = _make(
                response.mtype,
                response.code,
                response.mid,
                response.token,
                response.options.remove(N.BLOCK1),
                response.payload,
            )
        if transfer.observe and transfer.parent is None:
            # The answer to the last block of a registration's body (an Observe FETCH).
            return finished + self._on_notification(transfer, response, remote, now, out)
        return finished + self._on_body_block(transfer, response, remote, now, out)

    def _on_body_block(
        self, transfer: Transfer, response: Message, remote: Remote, now: float, out: Datagrams
    ) -> list[Any]:
        block2 = _block(response.options, N.BLOCK2) if N.BLOCK2 in response.options else None
        if block2 is None or not transfer.auto_block2 or not 64 <= response.code < 96:
            if transfer.body is not None and response.code < 128 and block2 is None:
                # The representation is now sent whole: take it as the answer.
                transfer.body = None
            return self._finish(transfer, response, remote)
        wrong = self._bad_bert(block2, response.payload)
        if wrong is not None:
            return self._fail(transfer, TransferError(wrong))
        etag = response.options.etag
        body = transfer.body
        if body is None or block2.num == 0:
            if body is not None:
                # Block 0 again in the middle: the server started over (a peer that
                # ignores the block number would otherwise be asked for block 1 forever).
                transfer.restarts += 1
                if transfer.restarts > MAX_RESTARTS:
                    return self._fail(transfer, TransferError("the representation keeps changing"))
            body = transfer.body = bytearray()
            transfer.etag = etag
            transfer.first_options = response.options
            transfer.size2 = size_option(response.options, N.SIZE2)
        elif etag != transfer.etag:
            transfer.restarts += 1
            if transfer.restarts > MAX_RESTARTS:
                return self._fail(
                    transfer, TransferError("the representation changed during the transfer")
                )
            transfer.body = None
            return self._next_exchange(
                transfer, self._block2_request(transfer, 0, block2.szx), now, out
            )
        if block2.num * block2.size != len(body):
            return self._fail(
                transfer,
                TransferError(
                    f"block {block2.num} of size {block2.size} "
                    f"does not continue at byte {len(body)}"
                ),
            )
        body += response.payload
        if len(body) > self.config.max_response_body:
            return self._fail(
                transfer,
                TransferError(f"response body larger than {self.config.max_response_body} bytes"),
            )
        if not block2.more:
            assert transfer.first_options is not None
            options = transfer.first_options.remove(N.BLOCK2, N.BLOCK1, N.SIZE2)
            whole = _make(
                response.mtype, response.code, response.mid, response.token, options, bytes(body)
            )
            done = TransferProgress(transfer.parent or transfer, len(body), len(body), False)
            return [done, *self._finish(transfer, whole, remote)]
        transfer.block_retries = 0
        # The rest of a notification is fetched by a child the application never saw.
        progress = TransferProgress(transfer.parent or transfer, len(body), transfer.size2, False)
        # A BERT block advances NUM by the blocks it carried (RFC 8323 §6): the next one
        # starts where the body ends, counted in blocks of its size (1024 for BERT).
        next_num = len(body) // block2.size
        request = self._block2_request(transfer, next_num, self._next_szx(transfer, block2))
        return [progress, *self._next_exchange(transfer, request, now, out)]

    def _bad_bert(self, block2: BlockValue, payload: bytes) -> str | None:
        """Why a Block2 block of a response cannot be taken as BERT, or None.

        szx 7 is BERT only over a connection (RFC 8323 §6); over UDP it is reserved
        (RFC 7959 §2.2).  A BERT block that is not the last carries a whole number of
        1024-byte blocks, at least one: anything else leaves no place for the next.
        """
        if not block2.bert:
            return None
        if not self.config.bert:
            return "Block2 szx 7 is reserved (BERT exists only over connections)"
        if block2.more and (not payload or len(payload) % 1024):
            return (
                f"a BERT block with more=1 carried {len(payload)} bytes, "
                "not a multiple of 1024 (RFC 8323 §6)"
            )
        return None

    def _next_szx(self, transfer: Transfer, block2: BlockValue) -> int:
        """The szx to ask for the next block with: the server's, except that a peer whose
        CSM indicated BERT is asked with szx 7 where it sent 1024-byte blocks: a BERT
        option in a request means "szx 6, and BERT is welcome" (RFC 8323 §6, control
        usage), and the server may still answer with plain blocks."""
        if block2.szx == 6 and self._bert_blocks(transfer.remote, transfer.request.options):
            return 7
        return block2.szx

    def _block2_request(self, transfer: Transfer, num: int, szx: int) -> Message:
        request = transfer.request
        options = request.options.remove(N.BLOCK1, N.SIZE1, N.OBSERVE, N.REQUEST_TAG)
        options = options.replace(block2=BlockValue(num, False, szx))
        payload = b""
        if request.code == Code.FETCH and len(request.payload) <= self.config.max_block_size:
            # A FETCH body selects what is fetched: it goes with every block request
            # (RFC 8132 §2.3.2), unless it had to go block-wise itself; then, as libcoap
            # does, the server's cached representation answers the later blocks.
            payload = request.payload
        return _make(transfer.mtype, request.code, 0, b"", options, payload)

    def _request(
        self, transfer: Transfer, message: Message, now: float, out: Datagrams, **extra: Any
    ) -> ClientRequest:
        """A follow-up request of ``transfer`` (next block, deregistration), sent with the
        transfer's type, transmission parameters and timeout."""
        return self.exchanges.request(
            message,
            transfer.remote,
            now,
            out,
            mtype=transfer.mtype,
            transmission=transfer.transmission,
            timeout=transfer.timeout,
            **extra,
        )

    def _next_exchange(
        self, transfer: Transfer, message: Message, now: float, out: Datagrams
    ) -> list[Any]:
        """Send the transfer's next request; if it cannot go (e.g. the backlog towards the
        peer is full), the transfer fails: the events say so, nothing raises."""
        previous = transfer.exchange
        # An observation keeps its exchange open, except for the blocks of its body.
        if (
            previous is not None
            and previous.open
            and (not transfer.observe or transfer.upload is not None)
        ):
            self.exchanges.cancel(previous, now, out)
        try:
            exchange = self._request(
                transfer, message, now, out, keep_open=transfer.observe and transfer.parent is None
            )
        except CoapError as exc:
            return self._fail(transfer, exc)
        exchange.owner = transfer
        transfer.exchange = exchange
        return []

    # -- Observe ----------------------------------------------------------------------------------

    def _on_notification(
        self, transfer: Transfer, response: Message, remote: Remote, now: float, out: Datagrams
    ) -> list[Any]:
        try:
            sequence = response.options.observe
        except OptionValueError:
            sequence = None
        if sequence is None or not 64 <= response.code < 96:
            # The server ends (or never started) the observation (§3.2, §3.6).
            if transfer.fetch is not None:
                self._cancel_child(transfer, now, out)
            exchange = transfer.exchange
            if exchange is not None and exchange.open:
                self.exchanges.cancel(exchange, now, out)
            return self._finish(transfer, response, remote)
        transfer.reregistered_at = None  # the server answers: it is still there
        if self._arrival_order:
            pass  # ordered by arrival: nothing is stale (RFC 8323 §7.1)
        elif transfer.registered and sequence == transfer.last_sequence:
            # The state we have, again (the answer to a re-registration): not news, even
            # past the 128 s of §3.4, but the observation is alive and confirmed now.
            transfer.last_time = now
            self._schedule_reregistration(transfer, response, now)
            return []
        elif transfer.registered and not is_newer(
            transfer.last_sequence, transfer.last_time, sequence, now
        ):
            return []  # stale (§3.4)
        transfer.registered = True
        transfer.last_sequence = sequence
        transfer.last_time = now
        self._schedule_reregistration(transfer, response, now)
        block2 = _block(response.options, N.BLOCK2) if N.BLOCK2 in response.options else None
        if block2 is not None and block2.more and block2.num == 0:
            self._fetch_notification(transfer, response, block2, now, out)
            return []
        if transfer.fetch is not None:
            self._cancel_child(transfer, now, out)
        if block2 is not None:
            response = _strip_block2(response)
        return [ResponseEvent(transfer, response, remote, False)]  # type: ignore[arg-type]

    def _fetch_notification(
        self,
        transfer: Transfer,
        notification: Message,
        block2: BlockValue,
        now: float,
        out: Datagrams,
    ) -> None:
        """Complete a notification's body with Block2 requests (RFC 7959 §2.6)."""
        if transfer.fetch is not None:
            self._cancel_child(transfer, now, out)
        if self._bad_bert(block2, notification.payload) is not None:
            return  # dropped, as when fetching the rest fails: the next notification will do
        child = Transfer(
            transfer.request,
            transfer.remote,
            now,
            mtype=transfer.mtype,
            transmission=transfer.transmission,
            timeout=transfer.timeout,
            multicast=False,
            observe=False,
        )
        child.parent = transfer
        child.body = bytearray(notification.payload)
        child.etag = notification.options.etag
        child.first_options = notification.options
        child.size2 = size_option(notification.options, N.SIZE2)
        transfer.fetch = child
        # (a BERT first block may carry several blocks: the next starts after all of them)
        num = len(notification.payload) // block2.size
        request = self._block2_request(child, num, self._next_szx(child, block2))
        self._next_exchange(child, request, now, out)

    def _cancel_child(self, transfer: Transfer, now: float, out: Datagrams) -> None:
        child = transfer.fetch
        transfer.fetch = None
        if child is not None:
            child.state = TransferState.DONE
            if child.exchange is not None:
                self.exchanges.cancel(child.exchange, now, out)

    def _schedule_reregistration(self, transfer: Transfer, response: Message, now: float) -> None:
        if not self.reregister:
            return
        try:
            max_age = response.options.max_age
        except OptionValueError:
            max_age = None
        deadline = now + (_DEFAULT_MAX_AGE if max_age is None else max_age) + self.reregister_margin
        transfer.reregister_at = deadline
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, transfer))

    def _observation_lost(
        self, transfer: Transfer, error: RequestTimeout, now: float
    ) -> RequestTimeout:
        """The error that ends an observation whose server stopped answering (§3.3.1).

        Only a re-registration can time out once an observation is registered (the first
        answer clears the exchange's bound), so the error says so, and for how long the
        server has been silent; its class stays that of ``error``, so that callers that
        catch :class:`RequestTimeout` or :class:`RetransmissionsExceeded` still do.
        """
        where = describe_remote(transfer.remote)
        text = f"{where} stopped answering the observation: no notification for "
        text += _seconds(now - transfer.last_time)
        sent = transfer.reregistered_at
        if sent is not None:
            text += f", and the re-registration sent {_seconds(now - sent)} ago got no answer"
        text += f" ({error})"
        lost = (
            RetransmissionsExceeded(text)
            if isinstance(error, RetransmissionsExceeded)
            else RequestTimeout(text)
        )
        lost.__cause__ = error
        return lost

    # -- endings -----------------------------------------------------------------------------------

    def _finish(self, transfer: Transfer, response: Message, remote: Remote) -> list[Any]:
        parent = transfer.parent
        self._close(transfer)
        if parent is not None:
            if parent.fetch is transfer:
                parent.fetch = None
            if parent.state is TransferState.DONE or not 64 <= response.code < 96:
                # An error to a block request is no notification: this one's rest cannot
                # be had, the observation goes on (as when the fetch fails, see _fail).
                return []
            return [ResponseEvent(parent, response, remote, False)]  # type: ignore[arg-type]
        return [ResponseEvent(transfer, response, remote, True)]  # type: ignore[arg-type]

    def _fail(self, transfer: Transfer, error: CoapError) -> list[Any]:
        parent = transfer.parent
        self._close(transfer)
        if parent is not None:
            if parent.fetch is transfer:
                parent.fetch = None
            return []  # the observation goes on; the next notification will do
        if transfer.fetch is not None:
            transfer.fetch.state = TransferState.DONE
            transfer.fetch = None
        return [RequestFailed(transfer, error)]  # type: ignore[arg-type]

    def _close(self, transfer: Transfer) -> None:
        transfer.state = TransferState.DONE
        transfer.reregister_at = None
        transfer.reregistered_at = None
        self._end_upload(transfer)

    def cancel(self, transfer: Transfer, now: float, out: Datagrams) -> None:
        """Stop a request; an established observation is deregistered (GET with Observe=1)."""
        if transfer.state is TransferState.DONE:
            return
        if transfer.fetch is not None:
            self._cancel_child(transfer, now, out)
        exchange = transfer.exchange
        deregister = transfer.observe and transfer.registered and exchange is not None
        self._close(transfer)
        if exchange is None:
            return
        self.exchanges.cancel(exchange, now, out)
        if deregister:
            options = transfer.request.options.replace(observe=1)
            message = _make(
                transfer.mtype, transfer.request.code, 0, b"", options, transfer.request.payload
            )
            # Best effort: if it cannot go, an RST to the next notification ends it too.
            with suppress(CoapError):
                self._request(transfer, message, now, out, token=exchange.token)

    # -- time -----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, _, transfer = timers[0]
            if transfer.reregister_at == deadline and transfer.state is TransferState.OPEN:
                return deadline
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float, out: Datagrams) -> list[Any]:
        """Re-register the observations whose Max-Age (plus the margin) has passed (§3.3.1).

        The re-registration's bound (see the module's docstring) is armed by the
        exchanges; another attempt is scheduled a default Max-Age later in case the
        answer is lost, which for a CON still being retransmitted does nothing.  A
        re-registration that cannot be sent at all (e.g. the backlog towards the peer is
        full) fails the observation: the events say so, nothing raises.
        """
        events: list[Any] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, transfer = heapq.heappop(timers)
            if transfer.reregister_at != deadline or transfer.state is TransferState.DONE:
                continue
            exchange = transfer.exchange
            if exchange is None or not exchange.open:
                continue
            self._seq += 1
            transfer.reregister_at = retry = now + _DEFAULT_MAX_AGE + self.reregister_margin
            heapq.heappush(timers, (retry, self._seq, transfer))
            outgoing = exchange.outgoing
            if outgoing is not None and outgoing.state in _UNSETTLED:
                # The last registration is still being retransmitted: let it succeed or
                # fail (restarting it would postpone the failure for ever).
                continue
            options = transfer.request.options.replace(observe=0)
            message = _make(
                transfer.mtype, transfer.request.code, 0, b"", options, transfer.request.payload
            )
            if transfer.reregistered_at is None:
                transfer.reregistered_at = now
            try:
                self.exchanges.resend(
                    exchange,
                    message,
                    now,
                    out,
                    mtype=transfer.mtype,
                    transmission=transfer.transmission,
                    timeout=transfer.timeout,
                )
            except CoapError as exc:
                self.exchanges.cancel(exchange, now, out)
                events.extend(self._fail(transfer, exc))
        return events


def _block(options: Options, number: int) -> BlockValue | None:
    try:
        return options.block2 if number == N.BLOCK2 else options.block1
    except OptionValueError:
        return None


def _strip_block2(message: Message) -> Message:
    options = message.options.remove(N.BLOCK2, N.SIZE2)
    return _make(message.mtype, message.code, message.mid, message.token, options, message.payload)


def _seconds(span: float) -> str:
    """A duration for a person: whole seconds, tenths below ten."""
    return f"{span:.0f} s" if span >= 10 else f"{span:.1f} s"
