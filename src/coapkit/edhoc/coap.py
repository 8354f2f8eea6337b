"""EDHOC over CoAP (RFC 9528 Appendix A.2), sans I/O, and the OSCORE contexts it makes.

The Initiator is the client: it POSTs message_1, prefixed by the CBOR ``true``
that says "no connection identifier yet", to ``/.well-known/edhoc``; the
answer (2.04) carries message_2.  It POSTs message_3 prefixed by C_R (so the
server finds its session); the answer carries message_4 (coapkit always
sends it: aiocoap 0.4.17's client, through lakers, waits for it).  Requests
carry Content-Format 65 (application/cid-edhoc+cbor-seq: a connection
identifier first), responses 64 (application/edhoc+cbor-seq); an error is an
EDHOC error message in a 4.00 (Bad Request) response.

:class:`InitiatorExchange` is the client's half: payloads to send, responses
to take, and at the end an OSCORE :class:`~coapkit.oscore.SecurityContext`
(in memory: it never outlives the process, and a new EDHOC run makes a new
one).  :class:`EdhocResource` is the server's: a resource for a
:class:`~coapkit.resources.site.Site` that adds each context it establishes
to the server's :class:`~coapkit.oscore.OscoreServer`.

**State an unauthenticated peer can make the server keep is bounded**: a
message_1 costs the server a half-open session (its ephemeral key and
transcript) until message_3 or :attr:`EdhocResource.lifetime` seconds, and
there are at most :attr:`EdhocResource.max_sessions` of them (beyond, the
oldest is dropped); established contexts, which only an authenticated peer
makes, are bounded by :attr:`EdhocResource.max_contexts` (the oldest goes).
The time comes from an injected clock, as everywhere in the core.

The combined request of RFC 9668 (message_3 in front of the first OSCORE
request, with the EDHOC option) is taken by the server too:
:meth:`EdhocResource.combined` is the hook :class:`~coapkit.oscore.OscoreServer`
calls for it (``oscore.edhoc``); the client sends message_3 on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from coapkit.codec.codes import Code
from coapkit.edhoc.cbor import decode_one
from coapkit.edhoc.credentials import Identity, PeerLookup
from coapkit.edhoc.errors import ERR_UNSPECIFIED, ERR_WRONG_SUITE, EdhocError, EdhocPeerError
from coapkit.edhoc.session import (
    Initiator,
    Responder,
    decode_conn_id,
    decode_error,
    encode_conn_id,
    encode_error,
    is_error_message,
)
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.server import OscoreServer
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response

__all__ = [
    "CONTENT_FORMAT_CID_EDHOC",
    "CONTENT_FORMAT_EDHOC",
    "EDHOC_PATH",
    "EdhocResource",
    "InitiatorExchange",
]

#: where the EDHOC resource is (RFC 9528 §10.10)
EDHOC_PATH = "/.well-known/edhoc"
#: application/edhoc+cbor-seq (RFC 9528 §10.9): a response's EDHOC message
CONTENT_FORMAT_EDHOC = 64
#: application/cid-edhoc+cbor-seq: a request's connection identifier and EDHOC message
CONTENT_FORMAT_CID_EDHOC = 65
#: CBOR ``true``: the prefix of message_1 (Appendix A.2)
TRUE = b"\xf5"


def _error_response(exc: EdhocError) -> Response:
    """4.00 with an EDHOC error message: ERR_CODE 2 with SUITES_R for a suite this side
    refuses, else 1 (an error the peer sent is not echoed back with its code)."""
    if exc.err_code == ERR_WRONG_SUITE and not isinstance(exc, EdhocPeerError):
        payload = encode_error(ERR_WRONG_SUITE, exc.suites_r)
    else:
        payload = encode_error(ERR_UNSPECIFIED, exc.reason)
    return Response(Code.BAD_REQUEST, payload, content_format=CONTENT_FORMAT_EDHOC)


def _check_response(code: int, payload: bytes, what: str) -> None:
    if code == Code.CHANGED or Code.CREATED <= code < Code.BAD_REQUEST:
        return
    if payload and is_error_message(payload):
        try:
            raise decode_error(payload)
        except EdhocError as exc:
            raise EdhocError(f"{what}: {exc.reason}", err_code=exc.err_code) from None
    raise EdhocError(f"{what}: the server answered {code >> 5}.{code & 31:02d}")


class InitiatorExchange:
    """The client's side of EDHOC over CoAP, one session: :meth:`request_1`, then
    :meth:`on_response_2` (which gives the payload of the second request), then
    :meth:`on_response_4`; :meth:`security_context` after that."""

    def __init__(
        self,
        identity: Identity,
        peers: PeerLookup,
        *,
        c_i: bytes,
        method: int = 3,
        suites: Sequence[int] = (2,),
        ephemeral: bytes | None = None,
    ) -> None:
        self.session = Initiator(
            identity, peers, method=method, suites=suites, c_i=c_i, ephemeral=ephemeral
        )

    def request_1(self) -> bytes:
        """The payload of the first POST: ``true`` and message_1."""
        return TRUE + self.session.message_1()

    def on_response_2(self, code: int, payload: bytes) -> bytes:
        """Take the answer to message_1; the payload of the second POST: C_R and message_3."""
        _check_response(code, payload, "EDHOC message_1 refused")
        self.session.process_message_2(payload)
        return encode_conn_id(self.session.c_r) + self.session.message_3()

    def on_response_4(self, code: int, payload: bytes) -> None:
        """Take the answer to message_3 (message_4, if the server sent one)."""
        _check_response(code, payload, "EDHOC message_3 refused")
        if payload:
            self.session.process_message_4(payload)

    def security_context(self, label: str | None = None) -> SecurityContext:
        """The OSCORE context (Appendix A.1): in memory, sequence numbers from 0."""
        return SecurityContext(self.session.oscore_parameters(), label=label)


@dataclass(slots=True)
class _HalfOpen:
    responder: Responder
    started: float


def _connection_ids() -> Iterator[bytes]:
    """C_R candidates: the 48 one-byte integers first (the shortest OSCORE IDs), then
    two-byte strings."""
    for value in (*range(0x18), *range(0x20, 0x38)):
        yield bytes((value,))
    for value in range(0x10000):
        yield value.to_bytes(2, "big")


class EdhocResource(Resource):
    """``/.well-known/edhoc`` on a server: the EDHOC Responder (RFC 9528 Appendix A.2).

    ``identity``: the server's credential and key; ``peers``: whom it accepts (each
    established context is labelled with the credential's ``label``, which requests
    protected with it show as their ``security``); ``oscore``: the OSCORE layer the
    contexts go to; ``clock``: seconds, monotonic (the runtime passes its loop's time).
    """

    def __init__(
        self,
        identity: Identity,
        peers: PeerLookup,
        oscore: OscoreServer,
        *,
        clock: Callable[[], float],
        methods: Sequence[int] = (0, 1, 2, 3),
        suites: Sequence[int] = (2,),
        max_sessions: int = 64,
        lifetime: float = 60.0,
        max_contexts: int = 256,
    ) -> None:
        super().__init__(hidden=True)
        self.identity = identity
        self.peers = peers
        self.oscore = oscore
        self.clock = clock
        self.methods = tuple(methods)
        self.suites = tuple(suites)
        self.max_sessions = max_sessions
        self.lifetime = lifetime
        self.max_contexts = max_contexts
        self._sessions: OrderedDict[bytes, _HalfOpen] = OrderedDict()
        self._contexts: OrderedDict[bytes, SecurityContext] = OrderedDict()
        #: sessions started, completed and failed (for the log and tests)
        self.counts = {"started": 0, "completed": 0, "failed": 0, "expired": 0}
        oscore.edhoc = self.combined

    # -- the resource --------------------------------------------------------------------

    def post(self, request: Request) -> Response:
        payload = request.message.payload
        if not payload:
            return _error_response(EdhocError("an EDHOC request has a payload"))
        self._expire(self.clock())
        if payload[:1] == TRUE:
            return self._message_1(payload[1:])
        try:
            item, end = decode_one(payload)
            c_r = decode_conn_id(item)
            message_4 = self._message_3(c_r, payload[end:])
        except EdhocError as exc:
            return _error_response(exc)
        return Response(Code.CHANGED, message_4, content_format=CONTENT_FORMAT_EDHOC)

    def combined(self, c_r: bytes, message_3: bytes) -> Response | None:
        """RFC 9668 §3.3.1: message_3 in front of an OSCORE request whose kid is C_R.
        None when it verified (the context is there for the request), else the answer:
        4.00 with an EDHOC error message (message_4 is never sent in this flow)."""
        self._expire(self.clock())
        try:
            self._message_3(c_r, message_3)
        except EdhocError as exc:
            return _error_response(exc)
        return None

    # -- the steps -----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        while self._sessions:
            c_r, session = next(iter(self._sessions.items()))
            if now - session.started < self.lifetime:
                break
            del self._sessions[c_r]
            self.counts["expired"] += 1

    def _pick_c_r(self, c_i: bytes) -> bytes:
        for candidate in _connection_ids():
            if (
                candidate != c_i
                and candidate not in self._sessions
                and candidate not in self._contexts
                and not self.oscore.has_recipient_id(candidate)
            ):
                return candidate
        raise EdhocError("no connection identifier is free")  # pragma: no cover

    def _message_1(self, message_1: bytes) -> Response:
        responder = Responder(self.identity, self.peers, methods=self.methods, suites=self.suites)
        try:
            c_i, _ead_1 = responder.process_message_1(message_1)
            c_r = self._pick_c_r(c_i)
            message_2 = responder.message_2(c_r)
        except EdhocError as exc:
            self.counts["failed"] += 1
            return _error_response(exc)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
            self.counts["expired"] += 1
        self._sessions[c_r] = _HalfOpen(responder, self.clock())
        self.counts["started"] += 1
        return Response(Code.CHANGED, message_2, content_format=CONTENT_FORMAT_EDHOC)

    def _message_3(self, c_r: bytes, message_3: bytes) -> bytes:
        session = self._sessions.pop(c_r, None)
        if session is None:
            raise EdhocError("no EDHOC session has this C_R (expired, or never started)")
        responder = session.responder
        try:
            credential = responder.process_message_3(message_3)
        except EdhocError:
            self.counts["failed"] += 1
            raise
        label = credential.label or (
            "edhoc:" + (credential.key_id.hex() if credential.key_id else "unauthenticated")
        )
        context = SecurityContext(responder.oscore_parameters(), label=label)
        self._install(c_r, context)
        self.counts["completed"] += 1
        return responder.message_4()

    def _install(self, c_r: bytes, context: SecurityContext) -> None:
        old = self._contexts.pop(c_r, None)
        if old is not None:
            self.oscore.remove(old)
        while len(self._contexts) >= self.max_contexts:
            _, oldest = self._contexts.popitem(last=False)
            self.oscore.remove(oldest)
        self._contexts[c_r] = context
        self.oscore.add(context)

    @property
    def half_open(self) -> int:
        """Sessions waiting for message_3."""
        return len(self._sessions)

    @property
    def established(self) -> list[SecurityContext]:
        """The OSCORE contexts EDHOC made that are in use."""
        return list(self._contexts.values())
