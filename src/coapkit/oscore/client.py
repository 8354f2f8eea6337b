"""A client's OSCORE exchanges, sans I/O: one application request, however many messages.

RFC 8613 §8.1 and §8.4 (protect the request, verify the response),
§4.1.3.4.1 (Inner Block options: the request's body is cut into blocks and the
response's blocks are fetched *before* protection, so each block is a protected
message of its own), §4.1.3.5 and §7.4 (notifications: ordered and checked by
their Partial IV), Appendix B.1.2 (a server that lost its replay window answers
4.01 with an Echo value: the request goes again with it).

Theory of operation
-------------------
:class:`ProtectedRequest` is driven by whoever sends messages (the asyncio
client, a test): :meth:`ProtectedRequest.first` gives the first outer message
to send; each outer response goes to :meth:`ProtectedRequest.on_response`,
which returns the final inner response, or None when :attr:`ProtectedRequest.next`
holds another outer request to send (the next Block1 block, the next Block2
block, the request again with the server's Echo).  Every message it makes is a
new protected request with a new Partial IV: a protected request is never
sent twice except by the message layer's retransmission of the same bytes.

Inner blocks are ``block_size`` bytes (512 by default), so that a block with
its OSCORE overhead fits in one 1024-byte payload and no layer below has to
cut the protected message again (Outer Block options are for proxies,
§4.1.3.4.2).  A response with Outer Block2 (from a proxy) is reassembled below,
by the endpoint's block-wise layer, before it gets here.

:class:`NotificationOrder` keeps the Notification Number of an observation
(§4.1.3.5.2, §7.4): the largest Partial IV seen; a notification must carry a
larger one.  The first response to a registration may instead use the
request's nonce (aiocoap 0.4.17's server does): that is accepted once.
"""

from __future__ import annotations

from coapkit.codec.codes import Code, code_name
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import BlockValue, Options
from coapkit.errors import OptionValueError, TransferError
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.errors import PeerRejected, ProtectionInvalid
from coapkit.oscore.option import OscoreDecodeError, decode_option
from coapkit.oscore.protection import (
    RequestBinding,
    VerifiedResponse,
    protect_request,
    unprotect_response,
)
from coapkit.oscore.rederive import ClientRederivation

__all__ = ["NotificationOrder", "ProtectedRequest", "peer_rejection"]

N = OptionNumber
_OSCORE = int(N.OSCORE)
_ECHO = int(N.ECHO)
_BLOCK1 = int(N.BLOCK1)
_BLOCK2 = int(N.BLOCK2)
_SIZE1 = int(N.SIZE1)
_SIZE2 = int(N.SIZE2)
_BODY_METHODS = frozenset(
    int(c) for c in (Code.POST, Code.PUT, Code.FETCH, Code.PATCH, Code.IPATCH)
)
#: how often a request goes again with the server's Echo value (B.1.2) before giving up
MAX_ECHO_ROUNDS = 2
DEFAULT_BLOCK_SIZE = 512

#: what the unprotected errors of §8.2 mean, for the one line a person reads
_CAUSES = {
    "Security context not found": "the server has no security context for our Sender ID",
    "Replay detected": (
        "the server saw this request's sequence number before (a replay, or our context "
        "is a copy or another context with the same Sender ID)"
    ),
    "Decryption failed": "the server could not decrypt the request (another key?)",
}


def peer_rejection(context: SecurityContext, outer: Message) -> PeerRejected:
    """The error for an unprotected OSCORE error response to our request (§8.2)."""
    try:
        diagnostic = outer.payload.decode("utf-8")
    except UnicodeDecodeError:
        diagnostic = ""
    if not diagnostic.isprintable():
        diagnostic = ""
    cause = diagnostic
    for known, meaning in _CAUSES.items():
        if diagnostic.startswith(known):
            cause = meaning
            break
    if diagnostic.startswith("Failed to decode COSE"):
        cause = "the server could not decode our OSCORE option"
    elif outer.code == Code.BAD_OPTION and "OSCORE" in diagnostic:
        cause = "the server does not support OSCORE (it does not know the OSCORE option)"
    if not cause:
        cause = "the server refused the protected request"
    sender = context.sender_id.hex() or "(empty)"
    said = f"{code_name(outer.code)} {diagnostic}".strip()
    return PeerRejected(
        f"OSCORE: {cause} (Sender ID {sender}; it answered {said})", outer.code, diagnostic
    )


class ProtectedRequest:
    """One request of the application over OSCORE (see the module docstring)."""

    def __init__(
        self,
        context: SecurityContext,
        request: Message,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_body: int = 64 * 1024 * 1024,
    ) -> None:
        if block_size < 16 or block_size > 1024 or block_size & (block_size - 1):
            raise ValueError("block_size is a power of two from 16 to 1024")
        self.context = context
        self.request = request
        self.max_body = max_body
        self._szx = BlockValue.szx_for_size(block_size)
        self._echo: bytes | None = None
        self._echo_rounds = 0
        #: Block1: the body being sent and where the next block starts
        self._upload: bytes | None = None
        self._offset = 0
        #: Block2: the body so far, its ETag, the first block's options
        self._body: bytearray | None = None
        self._etag: bytes | None = None
        self._first_options: Options | None = None
        #: the inner request of the message in flight
        self._current = request
        self.binding: RequestBinding | None = None
        #: the outer message to send next (after :meth:`on_response` returned None)
        self.next: Message | None = None
        #: inner messages protected so far (1 for a small request)
        self.messages = 0
        #: Appendix B.2: the template's re-derivation, when ``context`` is one
        self._session = ClientRederivation.of(context) if context.rederive else None
        self._rederived_again = False
        if (
            request.code in _BODY_METHODS
            and _BLOCK1 not in request.options
            and len(request.payload) > block_size
        ):
            self._upload = request.payload
        self._current = self._next_inner()

    # -- what goes out --------------------------------------------------------------------------

    def first(self) -> Message:
        """The first outer message to send."""
        return self._protect(self._current)

    def _protect(self, inner: Message) -> Message:
        if self._echo is not None:
            inner = inner.replace(options=inner.options.set_raw(_ECHO, [self._echo]))
        if self._session is not None:
            # B.2: ID1 or R2 | R3 during the derivation; no kid context afterwards
            context, kid_context = self._session.request_context()
            outer, self.binding = protect_request(
                context, inner, kid_context=kid_context, send_id_context=False
            )
        else:
            outer, self.binding = protect_request(self.context, inner)
        self.messages += 1
        return outer

    def _next_inner(self) -> Message:
        """The inner request for the current Block1 block (or the request as it is)."""
        upload = self._upload
        request = self.request
        if upload is None:
            return request
        size = 1 << (self._szx + 4)
        chunk = upload[self._offset : self._offset + size]
        more = self._offset + len(chunk) < len(upload)
        values: dict[str, object] = {"block1": BlockValue(self._offset // size, more, self._szx)}
        if self._offset == 0:
            values["size1"] = len(upload)
        options = request.options.replace(**values)
        return _make(request.mtype, request.code, 0, b"", options, chunk)

    # -- what comes back ------------------------------------------------------------------------

    def verify(self, outer: Message) -> VerifiedResponse:
        """Verify a response to the message in flight (raising what §8.4 makes of it)."""
        binding = self.binding
        assert binding is not None, "first() was not called"
        if _OSCORE not in outer.options:
            if outer.code >= 128:
                raise peer_rejection(self.context, outer)
            raise ProtectionInvalid(
                f"OSCORE: the response ({code_name(outer.code)}) is not protected"
            )
        return unprotect_response(binding, outer)

    def on_response(self, outer: Message) -> Message | None:
        """The final inner response, or None when :attr:`next` is to be sent.

        Raises :class:`PeerRejected` for the server's unprotected OSCORE errors,
        :class:`ProtectionInvalid` for a response that fails verification, and
        :class:`~coapkit.errors.TransferError` for a block-wise transfer that cannot
        finish (the representation changed, a body beyond ``max_body``).
        """
        if self._session is not None and self._rederivation_step(outer, self._session):
            return None
        verified = self.verify(outer)
        if self._session is not None and self.binding is not None:
            self._session.on_response(self.binding.context)
        response = verified.message
        self.next = None
        if (
            response.code == Code.UNAUTHORIZED
            and _ECHO in response.options
            and self._echo_rounds < MAX_ECHO_ROUNDS
        ):
            # Appendix B.1.2: the server lost its replay window; this proves freshness.
            self._echo_rounds += 1
            self._echo = response.options.get(_ECHO)
            self.next = self._protect(self._current)
            return None
        if self._upload is not None and _BLOCK1 in response.options:
            if self._continue_upload(response):
                return None
        elif self._upload is not None and response.code == Code.CONTINUE:
            raise TransferError("the server answered 2.31 Continue without Block1")
        return self._on_body(response)

    def _rederivation_step(self, outer: Message, session: ClientRederivation) -> bool:
        """Appendix B.2: True when ``outer`` was a step of the re-derivation and
        :attr:`next` holds the request to send next."""
        raw = outer.options.get(_OSCORE)
        if raw is None:
            if (
                outer.code == Code.UNAUTHORIZED
                and session.established is not None
                and not self._rederived_again
            ):
                # The server does not know our derived context (it restarted): again.
                session.forget()
                self._rederived_again = True
                self.next = self._protect(self._current)
                return True
            return False
        try:
            r2 = decode_option(raw).kid_context
        except OscoreDecodeError:
            return False  # verify() says what is wrong
        if r2 is None:
            return False
        context = session.first_response_context(r2)
        binding = self.binding
        if context is None or binding is None:
            raise ProtectionInvalid("OSCORE: a response carried a kid context out of turn")
        step = RequestBinding(
            context, binding.kid, binding.partial_iv, binding.outer_code, False, False, binding.aad
        )
        unprotect_response(step, outer)  # response #1: verified with CTX2, or raises
        session.start_second(r2)
        self.next = self._protect(self._current)
        return True

    def _continue_upload(self, response: Message) -> bool:
        """Send the next Block1 block if the server asks for it (True), or not."""
        try:
            block1 = response.options.block1
        except OptionValueError:
            raise TransferError("the server's Block1 option is malformed") from None
        assert block1 is not None and self._upload is not None
        sent = self._current.options.block1
        assert sent is not None
        if not sent.more:
            return False  # the answer to the last block
        if response.code != Code.CONTINUE:
            return False  # an error (or an early final answer) ends the upload
        size = 1 << (self._szx + 4)
        self._offset += size
        self._szx = min(self._szx, block1.szx)  # smaller blocks if asked (RFC 7959 §2.3)
        self._current = self._next_inner()
        self.next = self._protect(self._current)
        return True

    def _on_body(self, response: Message) -> Message | None:
        try:
            block2 = response.options.block2
        except OptionValueError:
            raise TransferError("the server's Block2 option is malformed") from None
        if block2 is None:
            if self._body is not None:
                raise TransferError("a block of the response came without Block2")
            return response
        body = self._body
        if body is None:
            if block2.num != 0:
                return response  # random access, or a server that starts elsewhere
            body = self._body = bytearray()
            self._etag = response.options.etag
            self._first_options = response.options
        else:
            if response.options.etag != self._etag:
                raise TransferError("the representation changed during the block-wise transfer")
            if block2.num * block2.size != len(body):
                raise TransferError(f"block {block2.num} does not follow the bytes received")
        body += response.payload
        if len(body) > self.max_body:
            raise TransferError(f"the response is larger than {self.max_body} bytes")
        if not block2.more:
            options = (self._first_options or response.options).remove(_BLOCK2, _SIZE2)
            return _make(response.mtype, response.code, 0, b"", options, bytes(body))
        request = self.request
        options = request.options.remove(_BLOCK1, _SIZE1).replace(
            block2=BlockValue(block2.num + 1, False, block2.szx)
        )
        self._current = _make(request.mtype, request.code, 0, b"", options, b"")
        self._upload = None
        self.next = self._protect(self._current)
        return None


class NotificationOrder:
    """The Notification Number of one observation (RFC 8613 §4.1.3.5.2, §7.4)."""

    def __init__(self) -> None:
        #: the largest Partial IV of a notification accepted (None: none yet)
        self.number: int | None = None
        self._request_nonce_used = False

    def accept(self, verified: VerifiedResponse) -> bool:
        """Whether a verified notification is new (and so to be handed on)."""
        piv = verified.partial_iv
        if piv is None:
            # Only the first response may use the request's nonce (it is bound to it and
            # cannot have been seen before); §8.4.2 step B would refuse even that.
            if self._request_nonce_used or self.number is not None:
                return False
            self._request_nonce_used = True
            return True
        if self.number is not None and piv <= self.number:
            return False
        self.number = piv
        return True
