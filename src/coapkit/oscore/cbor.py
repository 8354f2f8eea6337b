"""The few CBOR structures OSCORE builds, encoded deterministically (RFC 8949 §4.2.1).

RFC 8613 §3.2.1 (the HKDF ``info`` array), §5.4 (``external_aad``) and
RFC 9052 §5.3 (the ``Enc_structure`` whose encoding is the AEAD's additional
data).  Each is an array of byte strings, text strings, integers and null;
this encoder writes exactly those, in their shortest form, which is what
``cbor2.dumps`` writes for them too (a test compares the two).  It exists for
speed: the external AAD is built for every protected message, and a
hand-written encoding of five items costs a fraction of a general one.
Decoding (EDHOC, credentials by value) uses ``cbor2``.
"""

from __future__ import annotations

__all__ = ["encode", "head", "bstr"]

CborValue = bytes | str | int | None | list["CborValue"]


def head(major: int, value: int) -> bytes:
    """The initial byte(s) of a data item of major type ``major`` with argument ``value``."""
    top = major << 5
    if value < 24:
        return bytes((top | value,))
    if value < 0x100:
        return bytes((top | 24, value))
    if value < 0x10000:
        return bytes((top | 25,)) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes((top | 26,)) + value.to_bytes(4, "big")
    return bytes((top | 27,)) + value.to_bytes(8, "big")


def bstr(data: bytes) -> bytes:
    """``data`` as a CBOR byte string."""
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    return head(2, n) + data


def encode(value: CborValue) -> bytes:
    """The deterministic encoding of ``value`` (bytes, str, int, None or a list of them)."""
    if isinstance(value, bytes):
        return bstr(value)
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        raise TypeError("booleans are not used in OSCORE's structures")
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head(3, len(data)) + data
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(encode(item) for item in value)
    raise TypeError(f"cannot encode {type(value).__name__} here")
