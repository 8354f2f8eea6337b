"""Responses as values: what a handler answers with and what the client API returns.

RFC 7252 §5.9 (response codes), §5.5 (payloads and representations; §5.5.2
diagnostic payloads) and §5.10 (the options a response carries: Content-Format,
ETag, Max-Age, Location-Path...), RFC 7641 §2 (Observe in notifications) and
RFC 6690 §7.1 (``application/link-format``, Content-Format 40).

A :class:`Response` is immutable like :class:`~coapkit.codec.message.Message`
(docs/architecture.md rule 5) but holds only what belongs to the application: the code,
the options and the payload, plus the remote it came from on the client side.
Message type, message ID and token are the endpoint's business;
:meth:`Response.to_message` leaves placeholders for it to fill in.  Because a
response is a value, the site can hand out one shared instance for its
automatic answers.

JSON and CBOR helpers are conveniences: ``json`` is in the standard library,
``cbor2`` is imported only when a CBOR helper is used (``coapkit[cbor]``).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from typing import Any

from coapkit.address import Address, address_of
from coapkit.codec.codes import Code, code_name, is_error, is_response, is_success
from coapkit.codec.content_formats import CBOR, JSON, LINK_FORMAT, TEXT_PLAIN
from coapkit.codec.link_format import Link, parse_link_format, serialize_link_format
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import EMPTY_OPTIONS, Options
from coapkit.codec.types import MessageType
from coapkit.compiled import mypyc_attr
from coapkit.errors import ErrorResponse, LinkFormatError

__all__ = ["Response"]

_CODES: dict[int, Code] = {int(code): code for code in Code}
_CONTENT_FORMAT = OptionNumber.CONTENT_FORMAT
_FIELDS = frozenset({"code", "payload", "options", "remote", "content_format"})
_new = object.__new__


_RESPONSE_CODES = frozenset(code for code in Code if is_response(code))


def _response_code(code: object) -> Code:
    """``code`` as a :class:`Code` (one of its own if unregistered); TypeError/ValueError
    if unusable."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"a response code is an int such as Code.CONTENT, not {code!r}")
    if not is_response(code):
        raise ValueError(f"{code_name(code)} is not a response code (2.xx to 5.xx)")
    member = _CODES.get(code)
    return Code(code) if member is None else member


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"a payload is bytes or str, not {type(payload).__name__}")


_CONTENT_FORMAT_OPTIONS: dict[int | str, Options] = {}


def _content_format_options(content_format: int | str) -> Options:
    """Options holding only a Content-Format: the common case, built once per format."""
    options = _CONTENT_FORMAT_OPTIONS.get(content_format)
    if options is None:
        options = EMPTY_OPTIONS.replace(content_format=content_format)
        if len(_CONTENT_FORMAT_OPTIONS) < 256:
            _CONTENT_FORMAT_OPTIONS[content_format] = options
    return options


def dump_json(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON (RFC 8259), as :meth:`Response.json_` and the client's
    ``json=`` send it: no spaces, no ASCII escapes, and no NaN or Infinity, which JSON
    does not have (ValueError)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def load_cbor() -> Any:
    """The ``cbor2`` module, imported on first use, or an ImportError saying what to install."""
    try:
        import cbor2
    except ImportError:
        raise ImportError(
            "CBOR support needs the cbor2 package: pip install coapkit[cbor]"
        ) from None
    return cbor2


def _restore(
    code: int, payload: bytes, items: tuple[tuple[int, bytes], ...], remote: Address | None
) -> Response:
    # Options are pickled as their items: Options itself has no __reduce__ (yet).
    return Response(code, payload, options=Options(items), remote=remote)


@mypyc_attr(native_class=False)  # its immutability idiom needs a regular class
class Response:
    """A CoAP response: code, options and payload (and, on the client side, its remote).

    >>> r = Response(Code.CONTENT, "22.5 C", max_age=30)
    >>> r
    <Response 2.05 Content, 6 bytes>
    >>> r.content_format, r.max_age, r.text
    (0, 30, '22.5 C')

    ``payload`` may be ``str`` (encoded as UTF-8 and, unless a Content-Format
    is given, marked text/plain) or bytes.  ``content_format`` and the other
    keywords (``max_age``, ``etag``, ``location_path``, ``observe``... every
    :class:`~coapkit.codec.options.Options` keyword) are merged into
    ``options``.  Equality compares code, options and payload; ``remote`` is
    where the response came from (an :class:`~coapkit.address.Address`; the
    constructor also takes a socket address tuple) and is not part of its value.
    ``code`` is always a :class:`Code`.
    """

    __slots__ = ("code", "options", "payload", "remote")

    code: Code
    options: Options
    payload: bytes
    remote: Address | None

    def __init__(
        self,
        code: int = Code.CONTENT,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        content_format: int | str | None = None,
        options: Options | None = None,
        remote: Address | tuple[Any, ...] | None = None,
        **option_values: Any,
    ) -> None:
        if code.__class__ is not Code or code not in _RESPONSE_CODES:
            code = _response_code(code)  # registered response codes need no checking
        if options is None:
            options = EMPTY_OPTIONS
        elif not isinstance(options, Options):
            raise TypeError(f"options must be an Options value, not {type(options).__name__}")
        if option_values:
            options = options.replace(**option_values)
        if payload.__class__ is bytes:
            data = payload  # the common case, checked first
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
            if content_format is None and options.get(_CONTENT_FORMAT) is None:
                content_format = TEXT_PLAIN
        else:
            data = _payload_bytes(payload)
        if content_format is not None:
            if options is EMPTY_OPTIONS:
                options = _content_format_options(content_format)
            else:
                options = options.replace(content_format=content_format)
        _set_code(self, code)
        _set_payload(self, data)
        _set_options(self, options)
        _set_remote(self, remote if remote is None else address_of(remote))

    # -- value behaviour -------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("responses are immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("responses are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.code == other.code
            and self.payload == other.payload
            and self.options == other.options
        )

    def __hash__(self) -> int:
        return hash((self.code, self.options, self.payload))

    def __repr__(self) -> str:
        size = len(self.payload)
        return f"<Response {code_name(self.code)}, {size} byte{'' if size == 1 else 's'}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.code, self.payload, self.options.items, self.remote))

    def replace(self, **changes: Any) -> Response:
        """A new response with some fields changed.

        Takes ``code``, ``payload``, ``options``, ``remote`` and
        ``content_format``; any other keyword is an option set on top of the
        options (``max_age=None`` removes Max-Age).
        """
        fields: dict[str, Any] = {
            "code": self.code,
            "payload": self.payload,
            "options": self.options,
            "remote": self.remote,
        }
        option_values = {}
        for name, value in changes.items():
            if name in _FIELDS:
                fields[name] = value
            else:
                option_values[name] = value
        return Response(**fields, **option_values)

    # -- conversion to and from messages ------------------------------------------------

    def to_message(self, token: bytes = b"") -> Message:
        """The response as a message: type ACK and message ID 0 are placeholders.

        The endpoint decides piggybacked or separate, the message ID and the
        token (RFC 7252 §5.2); this only carries the application's part.
        """
        if token.__class__ is not bytes:
            token = bytes(token)
        return _make(_ACK, self.code, 0, token, self.options, self.payload)

    @classmethod
    def from_message(cls, message: Message, remote: Hashable | None = None) -> Response:
        """The response carried by ``message`` (its type, MID and token are dropped);
        ``remote`` is the transport's address of its sender, shown as an Address."""
        self = _new(cls)
        _set_code(self, _response_code(message.code))
        _set_payload(self, message.payload)
        _set_options(self, message.options)
        _set_remote(self, remote if remote is None else address_of(remote))
        return self

    # -- constructors for common representations -----------------------------------------

    @classmethod
    def json_(cls, obj: Any, code: int = Code.CONTENT, **kw: Any) -> Response:
        """``obj`` as compact UTF-8 JSON with Content-Format 50 (RFC 8259, RFC 7252 §12.3)."""
        kw.setdefault("content_format", JSON)
        return cls(code, dump_json(obj), **kw)

    @classmethod
    def cbor_(cls, obj: Any, code: int = Code.CONTENT, **kw: Any) -> Response:
        """``obj`` as CBOR with Content-Format 60 (RFC 8949); needs ``coapkit[cbor]``."""
        data = load_cbor().dumps(obj)
        kw.setdefault("content_format", CBOR)
        return cls(code, data, **kw)

    @classmethod
    def link_format(cls, links: Iterable[Link], code: int = Code.CONTENT, **kw: Any) -> Response:
        """Links as ``application/link-format`` with Content-Format 40 (RFC 6690)."""
        kw.setdefault("content_format", LINK_FORMAT)
        return cls(code, serialize_link_format(links).encode("utf-8"), **kw)

    # -- the code -----------------------------------------------------------------------

    @property
    def is_success(self) -> bool:
        """2.xx."""
        return is_success(self.code)

    @property
    def is_error(self) -> bool:
        """4.xx or 5.xx."""
        return is_error(self.code)

    def raise_for_status(self) -> Response:
        """Raise :class:`~coapkit.errors.ErrorResponse` for 4.xx and 5.xx; return self otherwise."""
        if is_error(self.code):
            raise ErrorResponse(self)
        return self

    # -- options --------------------------------------------------------------------------

    @property
    def content_format(self) -> int | None:
        return self.options.content_format

    @property
    def etag(self) -> bytes | None:
        return self.options.etag

    @property
    def max_age(self) -> int | None:
        """Max-Age in seconds if present; absent means the default of 60 s (RFC 7252 §5.10.5)."""
        return self.options.max_age

    @property
    def location_path(self) -> tuple[str, ...]:
        return self.options.location_path

    @property
    def location_query(self) -> tuple[str, ...]:
        return self.options.location_query

    @property
    def observe(self) -> int | None:
        return self.options.observe

    # -- the payload ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The payload as UTF-8; bytes that are not UTF-8 become U+FFFD."""
        return self.payload.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The payload parsed as JSON; ValueError saying why if it is not JSON."""
        if not self.payload:
            raise ValueError(f"the {code_name(self.code)} response has no payload to read as JSON")
        try:
            return json.loads(self.payload)
        except (ValueError, RecursionError) as exc:
            raise ValueError(
                f"the {code_name(self.code)} response payload is not valid JSON: {exc}"
            ) from exc

    def cbor(self) -> Any:
        """The payload decoded as CBOR (needs ``coapkit[cbor]``); ValueError if it is not CBOR."""
        cbor2 = load_cbor()
        try:
            return cbor2.loads(self.payload)
        except (cbor2.CBORError, ValueError, RecursionError) as exc:
            raise ValueError(
                f"the {code_name(self.code)} response payload is not valid CBOR: {exc}"
            ) from exc

    def links(self) -> list[Link]:
        """The payload parsed as link-format (RFC 6690); LinkFormatError if it cannot be."""
        try:
            text = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise LinkFormatError("the link-format payload is not valid UTF-8") from None
        return parse_link_format(text)


# The slots' own setters (past Response.__setattr__, which refuses), faster than
# object.__setattr__.
_set_code = vars(Response)["code"].__set__
_set_payload = vars(Response)["payload"].__set__
_set_options = vars(Response)["options"].__set__
_set_remote = vars(Response)["remote"].__set__
_ACK = MessageType.ACK
