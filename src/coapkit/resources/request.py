"""Requests as handlers see them: the method, the decoded path and query, the payload.

RFC 7252 §5.8 (methods; RFC 8132 adds FETCH, PATCH and iPATCH), §5.10.1
(Uri-Path and Uri-Query, whose values are UTF-8 strings per §3.2), §5.10.3
and §5.10.4 (Content-Format and Accept), §5.10.6 and §5.10.8 (ETag,
If-Match, If-None-Match) and RFC 7641 §2 (Observe).

A :class:`Request` wraps the received :class:`~coapkit.codec.message.Message`
with the remote it came from (kept as the transport reported it, and shown to
handlers as an :class:`~coapkit.address.Address` only when one asks), the
runtime's opaque ``handle`` for answering it, and the path parameters the
site's router captured.  Accessors decode on
first use and cache the result, so a handler that only looks at the payload
never pays for decoding the path.  Bad input raises
:class:`~coapkit.errors.BadRequest` (a :class:`~coapkit.errors.RespondWith`
with 4.00) and a diagnostic saying what was wrong, which the site turns into
the answer; so a handler need not catch anything to answer malformed input
correctly, and whatever else it raises is its own bug (5.00).
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any, Protocol

from coapkit.address import Address, address_of
from coapkit.codec.codes import METHODS_BY_NAME, Code, code_name
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.codec.uri import quote_segment, unquote
from coapkit.dtls.engine import PeerIdentity
from coapkit.errors import BadRequest, OptionValueError
from coapkit.resources.response import load_cbor

__all__ = ["Request", "SecurityIdentity"]

_METHODS: dict[int, Code] = {int(code): code for code in Code if 0 < code < 32}
_URI_PATH = OptionNumber.URI_PATH
_URI_QUERY = OptionNumber.URI_QUERY


def _strings(options: Options, number: int, name: str) -> tuple[str, ...]:
    values = []
    for n, raw in options.items:  # a plain loop: this runs for every request
        if n == number:
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"{name} is not valid UTF-8") from None
    return tuple(values)


class SecurityIdentity(Protocol):
    """Who a request comes from, as a security layer vouched for it (OSCORE:
    :class:`coapkit.oscore.OscoreIdentity`)."""

    @property
    def label(self) -> str:
        """The name the credentials give the peer (``":client1"``)."""

    @property
    def protocol(self) -> str:
        """The security layer that vouched for it (``"oscore"``)."""


class Request:
    """A received request, as a handler sees it.

    ``message`` is the request as received, ``remote`` the peer it came from
    (the transport's address; :attr:`remote` shows it as an
    :class:`~coapkit.address.Address`), ``handle`` whatever the runtime needs to
    answer it (opaque here), and ``params`` the path parameters captured by the
    site's router (``{}`` until the site fills them in).

    ``security`` is who the peer proved to be, for a resource to authorise by:
    over ``coaps://`` a :class:`~coapkit.dtls.PeerIdentity`
    (``request.security.psk_identity``, ``request.security.common_name``...);
    for an OSCORE-protected request (on any transport, DTLS included: the end
    to end identity wins) its security context's
    :class:`~coapkit.oscore.OscoreIdentity`; None otherwise.  Every identity
    has a ``label`` and a ``protocol`` (:class:`SecurityIdentity`); narrow
    with ``isinstance`` for the rest.
    """

    __slots__ = (
        "_path",
        "_query",
        "_query_params",
        "_remote",
        "handle",
        "message",
        "params",
        "security",
    )

    message: Message
    handle: object
    params: dict[str, str]
    security: PeerIdentity | SecurityIdentity | None

    def __init__(
        self,
        message: Message,
        remote: Hashable,
        handle: object = None,
        params: dict[str, str] | None = None,
        security: PeerIdentity | SecurityIdentity | None = None,
    ) -> None:
        self.message = message
        self.security = security
        #: the remote as the transport reported it: what the core keys its state by
        self._remote = remote
        self.handle = handle
        self.params = {} if params is None else params
        self.security = security
        self._path: tuple[str, ...] | None = None
        self._query: tuple[str, ...] | None = None
        self._query_params: dict[str, str] | None = None

    @classmethod
    def build(
        cls,
        method: int | str = Code.GET,
        path: str = "/",
        payload: bytes | str = b"",
        *,
        remote: Hashable = ("192.0.2.1", 5683),
        handle: object = None,
        security: PeerIdentity | SecurityIdentity | None = None,
        **option_values: Any,
    ) -> Request:
        """A request made up locally, for tests and for calling a site directly.

        ``remote`` is where it claims to come from: by default ``192.0.2.1:5683``, an
        address reserved for documentation (RFC 5737), so that handlers find the
        address every received request has; ``security``, who it proved to be (a
        :class:`~coapkit.dtls.PeerIdentity`, as over ``coaps://``, or an OSCORE identity).

        ``path`` is a percent-encoded path with an optional query
        (``"/sensors/temp?unit=C"``); a ``str`` payload is sent as UTF-8 with
        Content-Format 0 unless ``content_format`` says otherwise.  Other
        keywords are :class:`~coapkit.codec.options.Options` keywords.
        """
        if isinstance(method, str):
            code = METHODS_BY_NAME.get(method.upper())
            if code is None:
                raise ValueError(f"unknown method {method!r}")
            method = code
        path_part, _, query_part = path.partition("?")
        values: dict[str, Any] = {}
        if path_part.strip("/"):
            values["uri_path"] = [unquote(s) for s in path_part.lstrip("/").split("/")]
        if query_part:
            values["uri_query"] = [unquote(a) for a in query_part.split("&")]
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
            values["content_format"] = 0
        values.update(option_values)
        message = Message(MessageType.CON, method, 0, b"", Options.build(**values), payload)
        return cls(message, remote, handle, security=security)

    def __repr__(self) -> str:
        try:
            where = self.path_string
        except BadRequest:
            where = "(path not UTF-8)"
        return f"<Request {self.method_name} {where} from {self.remote}>"

    @property
    def remote(self) -> Address:
        """Where the request came from: ``request.remote.host``, ``str(request.remote)``
        (``192.0.2.1:5683``; an IPv4 peer of a dual-stack socket shown as IPv4)."""
        return address_of(self._remote)

    # -- method -------------------------------------------------------------------------

    @property
    def method(self) -> Code:
        """The method code (a :class:`Code`; one of its own for an unregistered method)."""
        code = self.message.code
        method = _METHODS.get(code)
        return Code(code) if method is None else method

    @property
    def method_name(self) -> str:
        """``"GET"``, ``"iPATCH"``...; ``"method 0.08"`` for an unregistered code."""
        return code_name(self.message.code)

    # -- where ---------------------------------------------------------------------------

    @property
    def path(self) -> tuple[str, ...]:
        """The Uri-Path segments, decoded; BadRequest (4.00) if one is not UTF-8."""
        path = self._path
        if path is None:
            path = self._path = _strings(self.message.options, _URI_PATH, "Uri-Path")
        return path

    @property
    def path_string(self) -> str:
        """The path as a percent-encoded string, ``"/"`` for none (RFC 7252 §6.5)."""
        return "/" + "/".join([quote_segment(segment) for segment in self.path])

    @property
    def query(self) -> tuple[str, ...]:
        """The Uri-Query arguments, decoded; BadRequest (4.00) if one is not UTF-8."""
        query = self._query
        if query is None:
            query = self._query = _strings(self.message.options, _URI_QUERY, "Uri-Query")
        return query

    @property
    def query_params(self) -> dict[str, str]:
        """``name=value`` arguments as a dict (the last one wins; ``name`` alone gives ``""``)."""
        params = self._query_params
        if params is None:
            params = {}
            for argument in self.query:
                name, _, value = argument.partition("=")
                params[name] = value
            self._query_params = params
        return params

    # -- options --------------------------------------------------------------------------

    @property
    def options(self) -> Options:
        return self.message.options

    @property
    def content_format(self) -> int | None:
        """Content-Format of the payload; BadRequest if the option is malformed."""
        try:
            return self.message.options.content_format
        except OptionValueError as exc:
            raise BadRequest(exc.reason) from None

    @property
    def accept(self) -> int | None:
        """The Content-Format the client asks for; BadRequest if the option is malformed."""
        try:
            return self.message.options.accept
        except OptionValueError as exc:
            raise BadRequest(exc.reason) from None

    @property
    def observe(self) -> int | None:
        """0 registers an observation, 1 deregisters (RFC 7641 §2); None if absent;
        BadRequest if the option is malformed."""
        try:
            return self.message.options.observe
        except OptionValueError as exc:
            raise BadRequest(exc.reason) from None

    @property
    def etags(self) -> tuple[bytes, ...]:
        """The ETags of the representations the client holds (RFC 7252 §5.10.6.2)."""
        return self.message.options.etags

    @property
    def if_match(self) -> tuple[bytes, ...]:
        return self.message.options.if_match

    @property
    def if_none_match(self) -> bool:
        return self.message.options.if_none_match

    def preconditions_met(self, etag: bytes | None = None, *, exists: bool = True) -> bool:
        """Whether If-Match and If-None-Match allow the request (RFC 7252 §5.10.8).

        ``etag`` is the current ETag of the target resource and ``exists``
        whether it exists.  If-Match holds when the resource exists and one of
        its values is the current ETag or empty (any representation);
        If-None-Match holds when the resource does not exist.  A handler
        answers 4.12 (Precondition Failed) when this is False.
        """
        if_match = self.if_match
        if if_match and not (exists and any(v in (b"", etag) for v in if_match)):
            return False
        return not (exists and self.if_none_match)

    # -- payload --------------------------------------------------------------------------

    @property
    def payload(self) -> bytes:
        return self.message.payload

    @property
    def text(self) -> str:
        """The payload as UTF-8; BadRequest (4.00) if it is not."""
        try:
            return self.message.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("payload is not valid UTF-8") from None

    def json(self) -> Any:
        """The payload parsed as JSON (RFC 8259); BadRequest (4.00) if it is not."""
        text = self.text
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("JSON payload is nested too deeply") from None

    def cbor(self) -> Any:
        """The payload decoded as CBOR (RFC 8949); BadRequest (4.00) if it is not.

        Needs ``coapkit[cbor]``; without it the ImportError (naming the extra) is logged
        and the request answered 5.00, a fault of the server's installation.
        """
        cbor2 = load_cbor()
        try:
            return cbor2.loads(self.message.payload)
        except (cbor2.CBORError, ValueError, RecursionError) as exc:
            raise BadRequest(f"payload is not valid CBOR: {exc}") from None
