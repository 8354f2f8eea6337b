"""The OSCORE layer of a server, sans I/O: verify, serve the inner request, protect the answer.

RFC 8613 §8.2 and §8.3 (verify the request, protect the response), §4.1.3.4.1
(Inner Block options: the body and the representation are cut into blocks
here, on the inner messages), §4.1.3.5 (Observe: a registration's
notifications carry Partial IVs of the server's own), §7.4 (replay), Appendix
B.1.2 (freshness after a restart: Echo) and §9 (resources that only answer
protected requests).

Theory of operation
-------------------
:class:`OscoreServer` sits between the server's request handler and its
:class:`~coapkit.resources.site.Site`: the server hands it each request with the
site (:meth:`OscoreServer.dispatch`) and sends what it returns.

* A request without the OSCORE option goes to the site as it is, unless its
  path is under a prefix that requires OSCORE (:meth:`OscoreServer.require`):
  then it gets 4.01 Unauthorized and no handler runs.
* A protected request is verified (:func:`~coapkit.oscore.protection.unprotect_request`).
  What fails gets §8.2's unprotected error (4.02 "Failed to decode COSE", 4.01
  "Security context not found" or "Replay detected", 4.00 "Decryption
  failed"), with an Outer Max-Age of 0; no handler runs.  A verified request
  becomes a :class:`~coapkit.resources.request.Request` whose ``security`` is the
  context's :class:`OscoreIdentity`; its inner block options are handled by
  this layer's own :class:`~coapkit.blockwise.server.BlockwiseServer` (bodies
  keyed by security context, not by address: a client whose address changes
  keeps its transfer, one with another key cannot join it), and the site's
  answer is protected with the request's binding.
* A registration (Observe=0 inside and out) answered 2.xx by an observable
  resource is remembered by the outer request's remote and token, so that
  the server can render its notifications: the server asks
  :meth:`OscoreServer.dispatch` again with the registration (and no handle),
  and gets the inner rendering protected with a new Partial IV.  The
  server's own Observe bookkeeping works on the outer messages, and learns
  the resource from :meth:`OscoreServer.observed_resource`.

The inner blocks are at most 512 bytes by default
(``BlockwiseConfig(max_szx=5)``), so that a protected block fits in a
1024-byte payload and the endpoint below never cuts a protected response
into outer blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from coapkit.blockwise.server import BlockwiseConfig, BlockwiseServer
from coapkit.codec.codes import Code, code_name
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import (
    REGISTRY,
    OptionBounds,
    OptionNumber,
    is_critical,
    option_name,
    within_bounds,
)
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS, unrecognised_options
from coapkit.messaging.records import Remote
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.errors import OscoreConfigError, Rejection, context_not_found
from coapkit.oscore.option import OscoreDecodeError, OscoreOption, decode_option
from coapkit.oscore.protection import (
    RequestBinding,
    protect_response,
    request_option,
    unprotect_request,
)
from coapkit.oscore.rederive import ServerRederivation
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site, error_response

__all__ = ["OscoreIdentity", "OscoreServer"]

N = OptionNumber
_OSCORE = int(N.OSCORE)
_EDHOC = int(N.EDHOC)
_OBSERVE = int(N.OBSERVE)
_BLOCK_OPTIONS = frozenset(int(n) for n in (N.BLOCK1, N.BLOCK2, N.SIZE2))
#: what an inner request may carry and be understood (Observe and block-wise are this
#: layer's and the server's business; OSCORE inside would be nesting, refused)
_INNER_UNDERSTOOD = UNDERSTOOD_OPTIONS
_MAX_AGE_ZERO = Options(((int(N.MAX_AGE), b""),))
#: the one-loop check an inner request passes when all its options are understood
_INNER_BOUNDS: OptionBounds = {
    number: (spec.min_length, spec.max_length, spec.repeatable)
    for number in _INNER_UNDERSTOOD
    if (spec := REGISTRY.get(number)) is not None
}


def _cbor_bstr_end(data: bytes) -> int | None:
    """Where the CBOR byte string at the start of ``data`` ends (None: there is none)."""
    if not data or data[0] >> 5 != 2:
        return None
    info = data[0] & 0x1F
    if info < 24:
        length, start = info, 1
    elif info <= 27:
        start = 1 + (1 << (info - 24))
        length = int.from_bytes(data[1:start], "big")
    else:
        return None
    end = start + length
    return end if end <= len(data) and start <= len(data) else None


def _has_block_option(message: Message) -> bool:
    return any(number in _BLOCK_OPTIONS for number, _ in message.options.items)


@dataclass(frozen=True, slots=True)
class OscoreIdentity:
    """Who sent a verified request: the security context it was protected with.

    ``label`` is the context's name in the credentials (``":client1"``), as aiocoap
    shows it in ``authenticated_claims``; ``kid`` is the client's Sender ID (the
    context's Recipient ID) and ``id_context`` the context's ID Context.
    """

    label: str
    kid: bytes
    id_context: bytes | None = None
    protocol: str = "oscore"

    def __str__(self) -> str:
        return self.label


@dataclass(slots=True)
class _Registration:
    """An observation registered with a protected request: what renders its notifications."""

    outer: Message
    inner: Request
    binding: RequestBinding
    resource: Resource


class OscoreServer:
    """The OSCORE layer of a server: its security contexts and what it requires.

    >>> from coapkit.oscore import ContextParameters, SecurityContext
    >>> secret = bytes(16)
    >>> context = SecurityContext(
    ...     ContextParameters(secret, sender_id=b"\\x01", recipient_id=b"\\x02"), label=":client"
    ... )
    >>> oscore = OscoreServer([context], require=["/secret"])
    >>> oscore.requires_oscore(("secret", "door"))
    True

    ``contexts``: the security contexts of the clients it knows (each found by its
    Recipient ID, the client's kid, and its ID Context); ``require``: path prefixes
    whose resources answer only protected requests; ``blockwise``: the inner
    block-wise limits (512-byte blocks by default); ``max_observations``: protected
    registrations remembered at once (beyond, the oldest is forgotten and its
    notifications end).
    """

    def __init__(
        self,
        contexts: Iterable[SecurityContext],
        *,
        require: Iterable[str] = (),
        blockwise: BlockwiseConfig | None = None,
        max_observations: int = 10_000,
    ) -> None:
        self._contexts: dict[tuple[bytes, bytes | None], SecurityContext] = {}
        #: Appendix B.2's templates, by Recipient ID
        self._templates: dict[bytes, ServerRederivation] = {}
        #: the key of the context each template's client derived last (replaced by the next)
        self._derived: dict[bytes, tuple[bytes, bytes | None]] = {}
        for context in contexts:
            self.add(context)
        self._require: list[tuple[str, ...]] = []
        for prefix in require:
            self.require(prefix)
        self.blockwise = BlockwiseServer(blockwise or BlockwiseConfig(max_szx=5))
        self.max_observations = max_observations
        self._registrations: OrderedDict[tuple[Remote, bytes], _Registration] = OrderedDict()
        #: requests refused, by the diagnostic of their answer (for the log and tests)
        self.refused: dict[str, int] = {}
        #: what each protected request answered lately asked and got, for the request log
        #: (by the runtime's handle; bounded, taken by :meth:`described`)
        self._described: OrderedDict[object, tuple[Request | str, int]] = OrderedDict()
        #: the identity requests verified with each context show their handlers
        self._identities: dict[SecurityContext, OscoreIdentity] = {}
        #: RFC 9668's combined request: ``edhoc(c_r, message_3)`` verifies message_3 and
        #: adds the context it makes (None), or gives the answer to a failure; set by an
        #: :class:`~coapkit.edhoc.coap.EdhocResource`
        self.edhoc: Callable[[bytes, bytes], Response | None] | None = None

    # -- configuration --------------------------------------------------------------------------

    def add(self, context: SecurityContext) -> None:
        """Know one more client (by its Recipient ID and ID Context); a template of
        Appendix B.2 (``rederive``) by its Recipient ID alone."""
        if context.rederive:
            if context.recipient_id in self._templates:
                raise OscoreConfigError(
                    "two re-derivable security contexts have Recipient ID "
                    f"{context.recipient_id.hex() or '(empty)'}"
                )
            self._templates[context.recipient_id] = ServerRederivation(context)
            return
        key = (context.recipient_id, context.id_context)
        if key in self._contexts:
            raise OscoreConfigError(
                f"two security contexts have Recipient ID {context.recipient_id.hex() or '(empty)'}"
                " and the same ID Context: a request could not tell them apart"
            )
        self._contexts[key] = context

    def remove(self, context: SecurityContext) -> None:
        """Forget a context added before (an EDHOC context replaced or expired); its
        observations end with it."""
        key = (context.recipient_id, context.id_context)
        if self._contexts.get(key) is context:
            del self._contexts[key]
        self._identities.pop(context, None)
        for registration_key in [
            k for k, r in self._registrations.items() if r.binding.context is context
        ]:
            del self._registrations[registration_key]

    def has_recipient_id(self, recipient_id: bytes) -> bool:
        """Whether a context (without ID Context) or a template has this Recipient ID:
        an EDHOC Responder picks a C_R that is not (RFC 9528 Appendix A.1)."""
        return (recipient_id, None) in self._contexts or recipient_id in self._templates

    @property
    def contexts(self) -> list[SecurityContext]:
        """The contexts requests are verified with (and B.2's templates)."""
        found = list({id(c): c for c in self._contexts.values()}.values())
        found.extend(session.template for session in self._templates.values())
        return found

    def require(self, prefix: str) -> None:
        """Answer unprotected requests under the path ``prefix`` (and the path itself) with
        4.01 Unauthorized from now on; ``"/"`` covers every resource."""
        parts = tuple(segment for segment in prefix.strip().strip("/").split("/") if segment)
        self._require.append(parts)

    def requires_oscore(self, path: Sequence[str]) -> bool:
        """Whether a request for the decoded Uri-Path ``path`` must be protected."""
        return any(tuple(path[: len(prefix)]) == prefix for prefix in self._require)

    def lookup(self, option: OscoreOption) -> SecurityContext | None:
        """The context for a request's kid and kid context (§8.2 step 2)."""
        assert option.kid is not None
        return self._contexts.get((option.kid, option.kid_context))

    def close(self) -> None:
        """Close every context (their state is stored exactly: no Echo round after a
        clean restart)."""
        for context in self.contexts:
            context.close()

    # -- requests -------------------------------------------------------------------------------

    def dispatch(self, site: Site, request: Request, now: float) -> Response | Awaitable[Response]:
        """The answer to ``request`` (a request as received, or with ``handle=None`` a
        registration whose notification is to be rendered)."""
        message = request.message
        if _OSCORE not in message.options:
            if self._require:
                try:
                    path = request.path
                except Exception as exc:
                    return error_response(exc, request)
                # EDHOC, which sets OSCORE up, is reachable without it (RFC 9528 A.2)
                if self.requires_oscore(path) and not (
                    self.edhoc is not None and path == (".well-known", "edhoc")
                ):
                    return self._refuse(Response(Code.UNAUTHORIZED, b"OSCORE required"))
            return site.dispatch(request)
        if request.handle is None:
            return self._notification(site, request, now)
        if _EDHOC in message.options:
            combined = self._combined(message)
            if isinstance(combined, Response):
                return combined
            message = combined
        self.blockwise.expire(now)
        try:
            try:
                inner, binding = unprotect_request(message, self.lookup)
            except Rejection as rejection:
                if not self._templates or rejection.diagnostic != "Security context not found":
                    raise
                first = self._rederive(message)
                if first is not None:
                    return first
                inner, binding = unprotect_request(message, self.lookup)
        except Rejection as rejection:
            if request.handle is not None:
                line = f"{request.method_name} (OSCORE: {rejection.diagnostic})"
                self._note(request.handle, line, rejection.code)
            return self._rejected(rejection, message)
        remote = request._remote
        key = (remote, message.token)
        observe = message.options.get(_OBSERVE)
        if observe is not None and observe not in (b"", b"\0"):
            self._registrations.pop(key, None)  # a deregistration (or another value)
        context = binding.context
        identity = self._identities.get(context)
        if identity is None:
            identity = self._identities[context] = OscoreIdentity(
                context.label or context.recipient_id.hex(),
                context.recipient_id,
                context.id_context,
            )
        problem = self._unrecognised(inner)
        if problem is not None:
            return self._protected(binding, problem, False)
        if _has_block_option(inner):
            whole, answer = self.blockwise.on_request(inner, context, now)
            if answer is not None:
                return self._protected(binding, answer, False)
            assert whole is not None
            inner_request = Request(whole, remote, request.handle, security=identity)
            block_request = inner
        else:
            inner_request = Request(inner, remote, request.handle, security=identity)
            block_request = inner
        result = site.dispatch(inner_request)
        if isinstance(result, Response):
            return self._answer(
                site, key, message, inner_request, block_request, binding, result, now
            )
        return self._answer_later(
            site, key, message, inner_request, block_request, binding, result, now
        )

    def _combined(self, message: Message) -> Message | Response:
        """RFC 9668 §3.3.1: take EDHOC message_3 off the front of the payload, have it
        verified (the OSCORE option's kid is C_R), and go on with the OSCORE request
        that remains, without the EDHOC option."""
        if self.edhoc is None:
            return self._refuse(Response(Code.BAD_OPTION, b"EDHOC not supported here"))
        try:
            kid = decode_option(message.options.get(_OSCORE) or b"").kid
        except OscoreDecodeError:
            kid = None
        end = _cbor_bstr_end(message.payload)
        if kid is None or end is None:
            return self._refuse(Response(Code.BAD_REQUEST, b"EDHOC: no message_3"))
        answer = self.edhoc(kid, message.payload[:end])
        if answer is not None:
            return answer
        return message.replace(
            payload=message.payload[end:], options=message.options.remove(_EDHOC)
        )

    async def _answer_later(
        self,
        site: Site,
        key: tuple[Remote, bytes],
        outer: Message,
        inner: Request,
        block_request: Message,
        binding: RequestBinding,
        pending: Awaitable[Response],
        now: float,
    ) -> Response:
        response = await pending
        return self._answer(site, key, outer, inner, block_request, binding, response, now)

    def _answer(
        self,
        site: Site,
        key: tuple[Remote, bytes],
        outer: Message,
        inner: Request,
        block_request: Message,
        binding: RequestBinding,
        response: Response,
        now: float,
    ) -> Response:
        message = response.to_message()
        notification = False
        if binding.observe and 64 <= response.code < 96:
            resource = self._observable(site, inner)
            if resource is not None:
                notification = True
                self._remember(key, _Registration(outer, inner, binding, resource))
        message = self._fit(block_request, message, binding, now)
        if inner.handle is not None:
            self._note(inner.handle, inner, message.code)
        return self._protected(binding, message, notification)

    def _note(self, handle: object, what: Request | str, code: int) -> None:
        described = self._described
        described[handle] = (what, code)
        if len(described) > 1024:
            described.popitem(last=False)

    def described(self, handle: object) -> str | None:
        """The request log's line for a protected request (its inner method, path and
        answer, and who sent it), once; None for any other request."""
        found = self._described.pop(handle, None)
        if found is None:
            return None
        what, code = found
        if isinstance(what, str):
            return f"{what} -> {code_name(code)}"
        try:
            path = what.path_string
        except Exception:
            path = "(undecodable path)"
        return f"{what.method_name} {path} (OSCORE {what.security}) -> {code_name(code)}"

    def _fit(
        self, request: Message, message: Message, binding: RequestBinding, now: float
    ) -> Message:
        """Cut a representation into inner blocks where it needs it (RFC 7959 §2.4)."""
        config = self.blockwise.config
        if len(message.payload) > config.max_block_size or _has_block_option(request):
            return self.blockwise.on_response(request, message, binding.context, now)
        return message

    def _observable(self, site: Site, request: Request) -> Resource | None:
        try:
            found = site.match(request.path)
        except Exception:
            return None
        if found is None or not found[0].observable:
            return None
        return found[0]

    def _remember(self, key: tuple[Remote, bytes], registration: _Registration) -> None:
        registrations = self._registrations
        registrations.pop(key, None)
        registrations[key] = registration
        while len(registrations) > self.max_observations:
            registrations.popitem(last=False)

    # -- Appendix B.2 ---------------------------------------------------------------------------

    def _rederive(self, message: Message) -> Response | None:
        """A request for a context derived from a template: response #1 (4.01 with R2) to
        request #1; None when request #2 made CTX3 (the caller verifies it again);
        Rejection when neither."""
        option = request_option(message)
        assert option.kid is not None
        session = self._templates.get(option.kid)
        if session is None or option.kid_context is None:
            raise context_not_found()
        third = session.second_request_context(option.kid_context)
        if third is not None:
            # Request #2: CTX3 is the client's context from now on, with or without
            # the kid context in its requests.
            previous = self._derived.pop(option.kid, None)
            if previous is not None:  # the client's earlier derivation: gone for good
                old = self._contexts.pop(previous, None)
                if old is not None:
                    self._identities.pop(old, None)
            key = (option.kid, option.kid_context)
            self._contexts[key] = third
            self._contexts[(option.kid, None)] = third
            self._derived[option.kid] = key
            return None
        first = session.first_request_context(option.kid_context)
        _, binding = unprotect_request(message, lambda _option: first)  # verified, not served
        r2 = session.new_r2()
        second = session.template.derived(r2 + option.kid_context)
        step = RequestBinding(
            second, binding.kid, binding.partial_iv, binding.outer_code, False, False, binding.aad
        )
        inner = _make(
            MessageType.ACK, Code.UNAUTHORIZED, 0, b"", Options(()), b"context re-derivation"
        )
        return Response.from_message(
            protect_response(step, inner, new_partial_iv=True, kid_context=r2)
        )

    # -- Observe ----------------------------------------------------------------------------------

    def observed_resource(self, request: Request) -> Resource | None:
        """The resource a protected registration observes (None: none; the server's
        Observe bookkeeping asks this instead of matching the outer path)."""
        registration = self._registrations.get((request._remote, request.message.token))
        if registration is None or registration.outer is not request.message:
            return None
        return registration.resource

    def _notification(
        self, site: Site, request: Request, now: float
    ) -> Response | Awaitable[Response]:
        """Render the notification of a registration made with a protected request."""
        key = (request._remote, request.message.token)
        registration = self._registrations.get(key)
        if registration is None or registration.outer != request.message:
            # Forgotten (max_observations): an error ends the observation (RFC 7641 §4.2).
            return Response(Code.SERVICE_UNAVAILABLE, b"observation forgotten")
        inner = Request(
            registration.inner.message,
            request._remote,
            None,
            security=registration.inner.security,
        )
        result = site.dispatch(inner)
        if isinstance(result, Response):
            return self._notify(registration, key, result, now)
        return self._notify_later(registration, key, result, now)

    async def _notify_later(
        self,
        registration: _Registration,
        key: tuple[Remote, bytes],
        pending: Awaitable[Response],
        now: float,
    ) -> Response:
        return self._notify(registration, key, await pending, now)

    def _notify(
        self, registration: _Registration, key: tuple[Remote, bytes], response: Response, now: float
    ) -> Response:
        if not 64 <= response.code < 96:
            # An error ends the observation (RFC 7641 §3.2): this is its last notification.
            self._registrations.pop(key, None)
        message = self._fit(
            registration.inner.message, response.to_message(), registration.binding, now
        )
        return self._protected(registration.binding, message, True)

    # -- answers ----------------------------------------------------------------------------------

    def _protected(self, binding: RequestBinding, message: Message, new_piv: bool) -> Response:
        """``message`` protected as the answer to the request of ``binding``."""
        outer = protect_response(binding, message, new_partial_iv=new_piv)
        return Response.from_message(outer)

    def _rejected(self, rejection: Rejection, request: Message) -> Response:
        self.refused[rejection.diagnostic] = self.refused.get(rejection.diagnostic, 0) + 1
        binding = rejection.binding
        if binding is None:
            # §8.2: the OSCORE errors go out unprotected, not to be cached (Max-Age 0).
            return Response(rejection.code, rejection.diagnostic.encode(), options=_MAX_AGE_ZERO)
        options = Options.build(echo=rejection.echo) if rejection.echo is not None else Options(())
        inner = _make(
            MessageType.ACK, rejection.code, 0, b"", options, rejection.diagnostic.encode()
        )
        return self._protected(binding, inner, rejection.echo is not None)

    def _refuse(self, response: Response) -> Response:
        self.refused["OSCORE required"] = self.refused.get("OSCORE required", 0) + 1
        return response

    def _unrecognised(self, inner: Message) -> Message | None:
        """4.02 for an inner critical option this server does not understand (RFC 7252
        §5.4.1), protected like any answer to a verified request."""
        items = inner.options.items
        if within_bounds(items, _INNER_BOUNDS):
            return None
        bad = unrecognised_options(inner.options, _INNER_UNDERSTOOD)
        critical = [items[i][0] for i in bad if is_critical(items[i][0])]
        if not critical:
            return None
        names = ", ".join(sorted({option_name(n) for n in critical})[:3])
        return _make(MessageType.ACK, Code.BAD_OPTION, 0, b"", Options(()), names.encode())
