"""The CBOR that EDHOC messages carry, decoded strictly and without surprises.

RFC 9528 §3.1: EDHOC messages are CBOR Sequences (RFC 8742) of integers,
byte strings, text strings, arrays and maps; EAD values and credentials by
value are byte strings or maps inside them.  Received messages come from
anyone, so this decoder accepts only definite lengths, at most
:data:`MAX_DEPTH` levels of nesting, no tags and no floats, and it reports
every problem as an :class:`~coapkit.edhoc.errors.EdhocError` (never
another exception): a fuzzer feeding it bytes finds nothing else.  Each item
comes with the offset where it ends, so that a caller can keep the exact
encoded bytes of an item (ID_CRED_x by value, an EAD item) for the
transcript hashes, which are over encodings, not values (§5.2.2).

Encoding is :mod:`coapkit.oscore.cbor`'s for the few structures built
here, and ``cbor2`` (``canonical=True``) for credentials made from maps, as
aiocoap and lakers encode them.
"""

from __future__ import annotations

from coapkit.edhoc.errors import EdhocError
from coapkit.oscore.cbor import bstr, head

__all__ = [
    "MAX_DEPTH",
    "CborItem",
    "decode_one",
    "decode_sequence",
    "encode_int",
    "encode_value",
    "bstr",
    "head",
]

#: nesting deeper than this is refused (credentials are maps of maps of maps: 4 is enough)
MAX_DEPTH = 8

CborItem = int | bytes | str | bool | None | list["CborItem"] | dict["CborItem", "CborItem"]


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    if info > 27:
        raise EdhocError("CBOR: indefinite length or reserved additional information")
    size = 1 << (info - 24)
    end = pos + size
    if end > len(data):
        raise EdhocError("CBOR: truncated")
    return int.from_bytes(data[pos:end], "big"), end


def decode_one(data: bytes, pos: int = 0, depth: int = 0) -> tuple[CborItem, int]:
    """The item at ``pos`` and the offset just after it."""
    if pos >= len(data):
        raise EdhocError("CBOR: truncated")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info], pos
        raise EdhocError("CBOR: floats and other simple values have no place in EDHOC")
    value, pos = _argument(data, pos, info)
    if major == 0:
        return value, pos
    if major == 1:
        return -1 - value, pos
    if major in (2, 3):
        end = pos + value
        if end > len(data):
            raise EdhocError("CBOR: a string runs past the end")
        raw = data[pos:end]
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise EdhocError("CBOR: a text string is not UTF-8") from None
    if major == 6:
        raise EdhocError("CBOR: tags have no place in EDHOC messages")
    if depth >= MAX_DEPTH:
        raise EdhocError("CBOR: nested too deep")
    if value > len(data) - pos:
        raise EdhocError("CBOR: more items announced than bytes left")
    if major == 4:
        items: list[CborItem] = []
        for _ in range(value):
            item, pos = decode_one(data, pos, depth + 1)
            items.append(item)
        return items, pos
    mapping: dict[CborItem, CborItem] = {}
    for _ in range(value):
        key, pos = decode_one(data, pos, depth + 1)
        if isinstance(key, (list, dict)):
            raise EdhocError("CBOR: a map key that is an array or a map")
        if key in mapping:
            raise EdhocError("CBOR: a map with a key twice")
        mapping[key], pos = decode_one(data, pos, depth + 1)
    return mapping, pos


def decode_sequence(data: bytes) -> list[tuple[CborItem, int, int]]:
    """Every item of a CBOR Sequence, each as ``(item, start, end)``."""
    items: list[tuple[CborItem, int, int]] = []
    pos = 0
    while pos < len(data):
        item, end = decode_one(data, pos)
        items.append((item, pos, end))
        pos = end
    return items


def encode_int(value: int) -> bytes:
    """A CBOR integer (major type 0 or 1)."""
    return head(0, value) if value >= 0 else head(1, -1 - value)


def encode_value(value: CborItem, *, canonical: bool = False) -> bytes:
    """The encoding of ``value`` in its shortest form; maps keep their order unless
    ``canonical`` asks for RFC 7049 §3.9's (shorter keys first, then bytewise: what
    ``cbor2.dumps(canonical=True)`` writes, so a credential encodes as aiocoap's does)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, bytes):
        return bstr(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(
            encode_value(item, canonical=canonical) for item in value
        )
    pairs = [
        (encode_value(key, canonical=canonical), encode_value(item, canonical=canonical))
        for key, item in value.items()
    ]
    if canonical:
        pairs.sort(key=lambda pair: (len(pair[0]), pair[0]))
    return head(5, len(value)) + b"".join(key + item for key, item in pairs)
