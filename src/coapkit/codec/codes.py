"""CoAP codes: methods, response codes and signaling codes.

A code is one byte, ``class << 5 | detail``, written ``c.dd`` (RFC 7252 §3,
§12.1).  This module names every code registered by RFC 7252 (core), RFC 7959
(2.31 Continue, 4.08, 4.13), RFC 8132 (FETCH, PATCH, iPATCH, 4.09, 4.22),
RFC 8516 (4.29), RFC 8768 (5.08), RFC 9175 and RFC 8323 (7.xx signaling).
Messages carry codes as plain ``int``; :class:`Code` members are ints too.
``Code(n)`` of any code byte is a :class:`Code`: an unregistered one (2.06,
4.10...) gets a member of its own, named by its ``c.dd`` form, so that what a
peer sent can be typed ``Code`` without being refused.
"""

from __future__ import annotations

from enum import IntEnum


def _c(klass: int, detail: int) -> int:
    return (klass << 5) | detail


class Code(IntEnum):
    """Every registered CoAP code, by name."""

    EMPTY = 0

    # Methods (RFC 7252 §5.8, RFC 8132)
    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4
    FETCH = 5
    PATCH = 6
    IPATCH = 7

    # 2.xx Success
    CREATED = _c(2, 1)
    DELETED = _c(2, 2)
    VALID = _c(2, 3)
    CHANGED = _c(2, 4)
    CONTENT = _c(2, 5)
    CONTINUE = _c(2, 31)

    # 4.xx Client error
    BAD_REQUEST = _c(4, 0)
    UNAUTHORIZED = _c(4, 1)
    BAD_OPTION = _c(4, 2)
    FORBIDDEN = _c(4, 3)
    NOT_FOUND = _c(4, 4)
    METHOD_NOT_ALLOWED = _c(4, 5)
    NOT_ACCEPTABLE = _c(4, 6)
    REQUEST_ENTITY_INCOMPLETE = _c(4, 8)
    CONFLICT = _c(4, 9)
    PRECONDITION_FAILED = _c(4, 12)
    REQUEST_ENTITY_TOO_LARGE = _c(4, 13)
    UNSUPPORTED_CONTENT_FORMAT = _c(4, 15)
    UNPROCESSABLE_ENTITY = _c(4, 22)
    TOO_MANY_REQUESTS = _c(4, 29)

    # 5.xx Server error
    INTERNAL_SERVER_ERROR = _c(5, 0)
    NOT_IMPLEMENTED = _c(5, 1)
    BAD_GATEWAY = _c(5, 2)
    SERVICE_UNAVAILABLE = _c(5, 3)
    GATEWAY_TIMEOUT = _c(5, 4)
    PROXYING_NOT_SUPPORTED = _c(5, 5)
    HOP_LIMIT_REACHED = _c(5, 8)

    # 7.xx Signaling (RFC 8323, reliable transports only)
    CSM = _c(7, 1)
    PING = _c(7, 2)
    PONG = _c(7, 3)
    RELEASE = _c(7, 4)
    ABORT = _c(7, 5)

    @classmethod
    def _missing_(cls, value: object) -> Code | None:
        """``Code(70)``: an unregistered code byte as a member named ``"2.06"``, made once."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
            member = int.__new__(cls, value)
            member._name_ = format_code(value)
            member._value_ = value
            return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]
        return None

    @property
    def dotted(self) -> str:
        """The ``c.dd`` form, e.g. ``"4.04"``."""
        return format_code(self)

    def __str__(self) -> str:
        return code_name(self)


_DISPLAY_NAMES: dict[int, str] = {
    Code.EMPTY: "Empty",
    Code.GET: "GET",
    Code.POST: "POST",
    Code.PUT: "PUT",
    Code.DELETE: "DELETE",
    Code.FETCH: "FETCH",
    Code.PATCH: "PATCH",
    Code.IPATCH: "iPATCH",
    Code.CREATED: "Created",
    Code.DELETED: "Deleted",
    Code.VALID: "Valid",
    Code.CHANGED: "Changed",
    Code.CONTENT: "Content",
    Code.CONTINUE: "Continue",
    Code.BAD_REQUEST: "Bad Request",
    Code.UNAUTHORIZED: "Unauthorized",
    Code.BAD_OPTION: "Bad Option",
    Code.FORBIDDEN: "Forbidden",
    Code.NOT_FOUND: "Not Found",
    Code.METHOD_NOT_ALLOWED: "Method Not Allowed",
    Code.NOT_ACCEPTABLE: "Not Acceptable",
    Code.REQUEST_ENTITY_INCOMPLETE: "Request Entity Incomplete",
    Code.CONFLICT: "Conflict",
    Code.PRECONDITION_FAILED: "Precondition Failed",
    Code.REQUEST_ENTITY_TOO_LARGE: "Request Entity Too Large",
    Code.UNSUPPORTED_CONTENT_FORMAT: "Unsupported Content-Format",
    Code.UNPROCESSABLE_ENTITY: "Unprocessable Entity",
    Code.TOO_MANY_REQUESTS: "Too Many Requests",
    Code.INTERNAL_SERVER_ERROR: "Internal Server Error",
    Code.NOT_IMPLEMENTED: "Not Implemented",
    Code.BAD_GATEWAY: "Bad Gateway",
    Code.SERVICE_UNAVAILABLE: "Service Unavailable",
    Code.GATEWAY_TIMEOUT: "Gateway Timeout",
    Code.PROXYING_NOT_SUPPORTED: "Proxying Not Supported",
    Code.HOP_LIMIT_REACHED: "Hop Limit Reached",
    Code.CSM: "CSM",
    Code.PING: "Ping",
    Code.PONG: "Pong",
    Code.RELEASE: "Release",
    Code.ABORT: "Abort",
}

METHODS_BY_NAME: dict[str, int] = {
    "GET": Code.GET,
    "POST": Code.POST,
    "PUT": Code.PUT,
    "DELETE": Code.DELETE,
    "FETCH": Code.FETCH,
    "PATCH": Code.PATCH,
    "IPATCH": Code.IPATCH,
}


def code_class(code: int) -> int:
    """The class digit: 0 request/empty, 2 success, 4 client error, 5 server error, 7 signaling."""
    return code >> 5


def format_code(code: int) -> str:
    """``"c.dd"`` for any code byte, registered or not."""
    return f"{code >> 5}.{code & 0x1F:02d}"


def code_name(code: int) -> str:
    """A display name: ``"GET"`` for methods, ``"4.04 Not Found"`` for responses."""
    name = _DISPLAY_NAMES.get(code)
    if 0 < code < 32:
        return name or f"method {format_code(code)}"
    if name is None:
        return format_code(code)
    if code == 0:
        return name
    return f"{format_code(code)} {name}"


def is_request(code: int) -> bool:
    """Method codes 0.01 to 0.31."""
    return 0 < code < 32


def is_response(code: int) -> bool:
    """Response classes 2, 3, 4 and 5 (3 is unassigned but reserved for responses)."""
    return 64 <= code < 192


def is_success(code: int) -> bool:
    return 64 <= code < 96


def is_error(code: int) -> bool:
    """4.xx and 5.xx."""
    return 128 <= code < 192


def is_signaling(code: int) -> bool:
    """7.xx: only meaningful on reliable transports (RFC 8323 §5)."""
    return code >= 224


def parse_code(text: str) -> int:
    """Parse ``"4.04"``, ``"GET"`` or ``"132"`` into a code byte; :class:`ValueError` otherwise."""
    text = text.strip()
    upper = text.upper()
    if upper in METHODS_BY_NAME:
        return METHODS_BY_NAME[upper]
    if "." in text:
        klass, _, detail = text.partition(".")
        if klass.isdigit() and detail.isdigit() and len(detail) == 2:
            k, d = int(klass), int(detail)
            if k < 8 and d < 32:
                return _c(k, d)
    elif text.isdigit() and int(text) < 256:
        return int(text)
    raise ValueError(f"not a CoAP code: {text!r} (expected e.g. 2.05, GET or 69)")
