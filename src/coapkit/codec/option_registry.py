"""The CoAP option registry: numbers, names, formats and length bounds.

Sources: RFC 7252 §5.10 (core options) and §5.4.6 (properties derived from
the number), RFC 7641 (Observe), RFC 7959 (Block1, Block2, Size1, Size2),
RFC 7967 (No-Response), RFC 8613 (OSCORE), RFC 8768 (Hop-Limit), RFC 9175
(Echo, Request-Tag), RFC 9177 (Q-Block1, Q-Block2), RFC 9668 (EDHOC).

Whether an option is critical, unsafe to forward or excluded from the cache
key is a property of its number (§5.4.6), so it holds for unknown options too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class OptionFormat(Enum):
    """Value formats of RFC 7252 §3.2."""

    EMPTY = "empty"
    OPAQUE = "opaque"
    UINT = "uint"
    STRING = "string"


class OptionNumber(IntEnum):
    """Registered option numbers."""

    IF_MATCH = 1
    URI_HOST = 3
    ETAG = 4
    IF_NONE_MATCH = 5
    OBSERVE = 6
    URI_PORT = 7
    LOCATION_PATH = 8
    OSCORE = 9
    URI_PATH = 11
    CONTENT_FORMAT = 12
    MAX_AGE = 14
    URI_QUERY = 15
    HOP_LIMIT = 16
    ACCEPT = 17
    Q_BLOCK1 = 19
    LOCATION_QUERY = 20
    EDHOC = 21
    BLOCK2 = 23
    BLOCK1 = 27
    SIZE2 = 28
    Q_BLOCK2 = 31
    PROXY_URI = 35
    PROXY_SCHEME = 39
    SIZE1 = 60
    ECHO = 252
    NO_RESPONSE = 258
    REQUEST_TAG = 292


def is_critical(number: int) -> bool:
    """Odd numbers are critical: an endpoint that does not understand them must reject (§5.4.1)."""
    return bool(number & 1)


def is_unsafe(number: int) -> bool:
    """Unsafe to forward by a proxy that does not understand the option (§5.4.2)."""
    return bool(number & 2)


def is_no_cache_key(number: int) -> bool:
    """Safe-to-forward options that are not part of the cache key (§5.4.6)."""
    return (number & 0x1E) == 0x1C


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """What the registry says about one option number."""

    number: int
    name: str
    format: OptionFormat
    min_length: int
    max_length: int
    repeatable: bool = False

    @property
    def critical(self) -> bool:
        return is_critical(self.number)

    @property
    def unsafe(self) -> bool:
        return is_unsafe(self.number)

    @property
    def no_cache_key(self) -> bool:
        return is_no_cache_key(self.number)

    @property
    def attribute(self) -> str:
        """The keyword used by :class:`~coapkit.codec.options.Options`, e.g. ``uri_path``."""
        return self.name.lower().replace("-", "_")

    def length_ok(self, length: int) -> bool:
        return self.min_length <= length <= self.max_length


_E, _O, _U, _S = OptionFormat.EMPTY, OptionFormat.OPAQUE, OptionFormat.UINT, OptionFormat.STRING
N = OptionNumber

REGISTRY: dict[int, OptionSpec] = {
    spec.number: spec
    for spec in (
        OptionSpec(N.IF_MATCH, "If-Match", _O, 0, 8, repeatable=True),
        OptionSpec(N.URI_HOST, "Uri-Host", _S, 1, 255),
        OptionSpec(N.ETAG, "ETag", _O, 1, 8, repeatable=True),
        OptionSpec(N.IF_NONE_MATCH, "If-None-Match", _E, 0, 0),
        OptionSpec(N.OBSERVE, "Observe", _U, 0, 3),
        OptionSpec(N.URI_PORT, "Uri-Port", _U, 0, 2),
        OptionSpec(N.LOCATION_PATH, "Location-Path", _S, 0, 255, repeatable=True),
        OptionSpec(N.OSCORE, "OSCORE", _O, 0, 255),
        OptionSpec(N.URI_PATH, "Uri-Path", _S, 0, 255, repeatable=True),
        OptionSpec(N.CONTENT_FORMAT, "Content-Format", _U, 0, 2),
        OptionSpec(N.MAX_AGE, "Max-Age", _U, 0, 4),
        OptionSpec(N.URI_QUERY, "Uri-Query", _S, 0, 255, repeatable=True),
        OptionSpec(N.HOP_LIMIT, "Hop-Limit", _U, 1, 1),
        OptionSpec(N.ACCEPT, "Accept", _U, 0, 2),
        OptionSpec(N.Q_BLOCK1, "Q-Block1", _U, 0, 3),
        OptionSpec(N.LOCATION_QUERY, "Location-Query", _S, 0, 255, repeatable=True),
        OptionSpec(N.EDHOC, "EDHOC", _E, 0, 0),
        OptionSpec(N.BLOCK2, "Block2", _U, 0, 3),
        OptionSpec(N.BLOCK1, "Block1", _U, 0, 3),
        OptionSpec(N.SIZE2, "Size2", _U, 0, 4),
        OptionSpec(N.Q_BLOCK2, "Q-Block2", _U, 0, 3, repeatable=True),
        OptionSpec(N.PROXY_URI, "Proxy-Uri", _S, 1, 1034),
        OptionSpec(N.PROXY_SCHEME, "Proxy-Scheme", _S, 1, 255),
        OptionSpec(N.SIZE1, "Size1", _U, 0, 4),
        OptionSpec(N.ECHO, "Echo", _O, 1, 40),
        OptionSpec(N.NO_RESPONSE, "No-Response", _U, 0, 1),
        OptionSpec(N.REQUEST_TAG, "Request-Tag", _O, 0, 8, repeatable=True),
    )
}

BY_ATTRIBUTE: dict[str, OptionSpec] = {spec.attribute: spec for spec in REGISTRY.values()}
BY_NAME: dict[str, OptionSpec] = {spec.name.lower(): spec for spec in REGISTRY.values()}


def option_spec(number: int) -> OptionSpec | None:
    """The registry entry for ``number``, or ``None`` if coapkit does not know it."""
    return REGISTRY.get(number)


#: number -> (min length, max length, repeatable): the checks :func:`within_bounds` makes
OptionBounds = dict[int, tuple[int, int, bool]]


def within_bounds(items: tuple[tuple[int, bytes], ...], bounds: OptionBounds) -> bool:
    """Whether every option of ``items`` (sorted, as in a message) is in ``bounds``, of a
    length it allows, and repeated only where repeatable: the one-loop check a received
    request passes when nothing about its options needs a closer look."""
    previous = -1
    for number, value in items:
        limits = bounds.get(number)
        if (
            limits is None
            or not limits[0] <= len(value) <= limits[1]
            or (number == previous and not limits[2])
        ):
            return False
        previous = number
    return True


def option_name(number: int) -> str:
    """``"Uri-Path"`` for known numbers, ``"Option 65000"`` otherwise."""
    spec = REGISTRY.get(number)
    return spec.name if spec is not None else f"Option {number}"


def lookup_option(name_or_number: str) -> int:
    """Parse an option name (``Uri-Path``, ``uri_path``) or number; ValueError otherwise."""
    text = name_or_number.strip()
    if text.isdigit():
        number = int(text)
        if number <= 0xFFFF:
            return number
        raise ValueError(f"option number {number} is above 65535")
    spec = BY_NAME.get(text.lower()) or BY_ATTRIBUTE.get(text.lower())
    if spec is None:
        raise ValueError(f"unknown option name: {text!r}")
    return spec.number


def encode_uint(value: int) -> bytes:
    """The shortest big-endian encoding of a non-negative integer; zero is empty (§3.2)."""
    if value < 0:
        raise ValueError("a uint option cannot be negative")
    if value == 0:
        return b""
    return value.to_bytes((value.bit_length() + 7) >> 3, "big")


def decode_uint(value: bytes) -> int:
    """Leading zero bytes are allowed on receipt (§3.2)."""
    return int.from_bytes(value, "big")
