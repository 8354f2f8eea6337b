"""CBOR diagnostic notation (RFC 8949 §8, with the §G.3 ``h''`` byte strings) for display.

:func:`cbor_to_diagnostic` decodes CBOR with ``cbor2`` (the optional
``coapkit[cbor]`` dependency) and :func:`diagnostic` renders the decoded
value:

* integers in decimal (bignums, tags 2 and 3, as plain numbers, which §8
  allows); floats as in JSON but always with a fraction or exponent
  (``1.0``, ``1.0e+300``), and ``NaN``, ``Infinity``, ``-Infinity``;
* byte strings as ``h'0a0b'``; text strings as JSON strings;
* arrays ``[1, 2]`` and maps ``{1: "a"}``; tags ``1(1363896240)``;
  ``true``, ``false``, ``null``, ``undefined``, ``simple(99)``.

cbor2 turns some tags into Python objects (dates, decimals, UUIDs, sets...).
Where the installed cbor2 lets the caller replace its tag decoders
(``semantic_decoders``, cbor2 6), those tags are kept as they are on the wire
so that the notation shows what was sent; with an older cbor2 the Python
objects are mapped back to the tag they come from as well as it can be done.

Short values print on one line; a value whose one-line form is longer than
``width`` is broken over lines with two-space indentation, like indented JSON.
A structure that refers to itself (CBOR value sharing, tags 28/29) prints
``...`` where it would recurse.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from re import Pattern
from typing import Any

__all__ = ["cbor_to_diagnostic", "diagnostic", "load_cbor_raw"]

#: Tags cbor2 would turn into Python objects and that we keep as tags instead
#: (not 2/3 bignums, which read best as numbers, nor 25/256 and 28/29, which are
#: encoding devices, string references and value sharing, that cbor2 resolves).
_KEPT_TAGS = (
    0, 1, 4, 5, 30, 32, 33, 34, 35, 36, 37, 52, 54, 100, 258, 260, 261, 1004, 55799,
)  # fmt: skip


def _decoders() -> dict[int, Any]:
    import cbor2

    def keep(tag: int) -> Any:
        return lambda value, immutable=False: cbor2.CBORTag(tag, value)

    return {tag: keep(tag) for tag in _KEPT_TAGS}


def load_cbor_raw(data: bytes) -> Any:
    """``cbor2.loads(data)`` keeping most tags as ``CBORTag`` values; ImportError without cbor2."""
    import cbor2

    try:
        return cbor2.loads(data, semantic_decoders=_decoders())
    except TypeError:  # cbor2 < 6: no semantic_decoders; map the objects back when printing
        return cbor2.loads(data)


def _load_one(stream: io.BytesIO) -> Any:
    import cbor2

    try:
        decoder = cbor2.CBORDecoder(stream, semantic_decoders=_decoders())
    except TypeError:  # cbor2 < 6
        decoder = cbor2.CBORDecoder(stream)
    return decoder.decode()


def cbor_to_diagnostic(data: bytes, width: int = 72, *, sequence: bool = False) -> str:
    """The diagnostic notation of one CBOR data item, or of a CBOR sequence (RFC 8742).

    A sequence's items are separated by commas, one per line.  Raises
    ImportError without cbor2 and ValueError if ``data`` is not one
    well-formed CBOR item (or a sequence of them).
    """
    import cbor2

    items: list[Any] = []
    stream = io.BytesIO(data)
    try:
        items.append(_load_one(stream))
        while sequence and stream.tell() < len(data):
            items.append(_load_one(stream))
    except (cbor2.CBORDecodeError, ValueError, RecursionError, EOFError) as exc:
        raise ValueError(f"not valid CBOR: {exc}") from None
    extra = len(data) - stream.tell()
    if extra:
        plural = "byte follows" if extra == 1 else "bytes follow"
        raise ValueError(f"not valid CBOR: {extra} {plural} the data item")
    return ",\n".join(diagnostic(item, width) for item in items)


def diagnostic(value: Any, width: int = 72) -> str:
    """Render a decoded CBOR value (as cbor2 returns it) in diagnostic notation."""
    return _Renderer(width).render(value, 0)


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, _, exponent = text.partition("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _bytes(value: bytes) -> str:
    return f"h'{value.hex()}'"


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Renderer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.active: set[int] = set()  # ids of the containers being rendered (cycle guard)

    def render(self, value: Any, indent: int) -> str:
        flat = self.flat(value)
        if len(flat) + indent <= self.width or not self._is_container(value):
            return flat
        return self.broken(value, indent)

    @staticmethod
    def _is_container(value: Any) -> bool:
        if isinstance(value, list | tuple | Mapping | set | frozenset):
            return True
        tag = _tag_of(value)
        return tag is not None and _Renderer._is_container(tag[1])

    # -- one line --------------------------------------------------------------------------

    def flat(self, value: Any) -> str:
        simple = _scalar(value)
        if simple is not None:
            return simple
        key = id(value)
        if key in self.active:
            return "..."
        self.active.add(key)
        try:
            if isinstance(value, list | tuple):
                return "[" + ", ".join(self.flat(item) for item in value) + "]"
            if isinstance(value, Mapping):
                items = (f"{self.flat(k)}: {self.flat(v)}" for k, v in value.items())
                return "{" + ", ".join(items) + "}"
            tag = _tag_of(value)
            if tag is not None:
                return f"{tag[0]}({self.flat(tag[1])})"
            return _text(repr(value))  # nothing else comes out of cbor2; never fail on display
        finally:
            self.active.discard(key)

    # -- several lines ----------------------------------------------------------------------

    def broken(self, value: Any, indent: int) -> str:
        key = id(value)
        if key in self.active:
            return "..."
        self.active.add(key)
        try:
            pad = " " * (indent + 2)
            if isinstance(value, list | tuple):
                lines = [pad + self.render(item, indent + 2) for item in value]
                return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"
            if isinstance(value, Mapping):
                lines = []
                for k, v in value.items():
                    label = self.flat(k) + ": "
                    lines.append(pad + label + self.render(v, indent + 2 + len(label)).lstrip())
                return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
            tag = _tag_of(value)
            assert tag is not None  # only containers (or tagged containers) get here
            return f"{tag[0]}({self.render(tag[1], indent)})"
        finally:
            self.active.discard(key)


def _scalar(value: Any) -> str | None:
    """The notation of a value that holds no other value, or None for containers and tags."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal) and not value.is_finite():
        return _float(float(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes(bytes(value))
    if isinstance(value, str):
        return _text(value)
    name = type(value).__name__
    if name == "UndefinedType":
        return "undefined"
    if name == "CBORSimpleValue":
        return f"simple({value.value})"
    return None


def _tag_of(value: Any) -> tuple[int, Any] | None:
    """``(tag, content)`` for a CBORTag, or for a Python object cbor2 made from a tag."""
    if type(value).__name__ == "CBORTag":
        return int(value.tag), value.value
    # Older cbor2 (no semantic_decoders): map its objects back to their tags.
    if isinstance(value, datetime):
        return 0, value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return 1004, value.isoformat()
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):  # NaN or infinity: shown as a float
            return None
        mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return 4, [exponent, mantissa]
    if isinstance(value, Fraction):
        return 30, [value.numerator, value.denominator]
    if isinstance(value, uuid.UUID):
        return 37, value.bytes
    if isinstance(value, Pattern):
        return 35, value.pattern
    if isinstance(value, set | frozenset):
        return 258, sorted(value, key=repr)
    if isinstance(value, IPv4Address | IPv6Address):
        return (52 if value.version == 4 else 54), value.packed
    if isinstance(value, IPv4Network | IPv6Network):
        packed = value.network_address.packed.rstrip(b"\0")
        return (52 if value.version == 4 else 54), [value.prefixlen, packed]
    return None
