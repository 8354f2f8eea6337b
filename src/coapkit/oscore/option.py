"""The OSCORE option's value: the compressed COSE header (RFC 8613 §6.1).

::

     0 1 2 3 4 5 6 7 <------------- n bytes -------------->
    +-+-+-+-+-+-+-+-+--------------------------------------
    |0 0 0|h|k|  n  |       Partial IV (if any) ...
    +-+-+-+-+-+-+-+-+--------------------------------------
     <- 1 byte -> <----- s bytes ------>
    +------------+----------------------+------------------+
    | s (if any) | kid context (if any) | kid (if any) ... |
    +------------+----------------------+------------------+

The three high bits are reserved, as are ``n`` = 6 and 7; a value whose flag
byte is zero must be empty; the kid, when flagged, is everything after the
kid context.  :func:`decode_option` is strict and total: any byte string
gives an :class:`OscoreOption` or an :class:`OscoreDecodeError` saying what is
wrong (a server answers that with 4.02 Bad Option, §8.2 step 2), never any
other exception.  A fuzz harness (``fuzz/fuzz_oscore.py``) holds it to that.
"""

from __future__ import annotations

from dataclasses import dataclass

from coapkit.errors import CoapError

__all__ = ["OscoreDecodeError", "OscoreOption", "decode_option", "encode_option"]

_H = 0x10
_K = 0x08
_N = 0x07
_RESERVED = 0xE0


class OscoreDecodeError(CoapError, ValueError):
    """An OSCORE option (or the COSE object it compresses) cannot be decoded (§8.2 step 2)."""


@dataclass(frozen=True, slots=True)
class OscoreOption:
    """The fields of a decoded OSCORE option; ``None`` where a field is absent."""

    partial_iv: bytes | None = None
    kid: bytes | None = None
    kid_context: bytes | None = None

    def encode(self) -> bytes:
        return encode_option(self.partial_iv, self.kid, self.kid_context)


EMPTY = OscoreOption()


def encode_option(
    partial_iv: bytes | None, kid: bytes | None, kid_context: bytes | None = None
) -> bytes:
    """The option value for these fields (empty when none is present)."""
    flags = 0
    parts: list[bytes] = []
    if partial_iv is not None:
        if not 1 <= len(partial_iv) <= 5:
            raise ValueError(f"a Partial IV is 1 to 5 bytes, not {len(partial_iv)}")
        flags |= len(partial_iv)
        parts.append(partial_iv)
    if kid_context is not None:
        if len(kid_context) > 255:
            raise ValueError("a kid context is at most 255 bytes")
        flags |= _H
        parts.append(bytes((len(kid_context),)))
        parts.append(kid_context)
    if kid is not None:
        flags |= _K
        parts.append(kid)
    if not flags:
        return b""
    return bytes((flags,)) + b"".join(parts)


def decode_option(value: bytes) -> OscoreOption:
    """Parse an OSCORE option value; :class:`OscoreDecodeError` if it is malformed."""
    if not value:
        return EMPTY
    flags = value[0]
    if flags & _RESERVED:
        raise OscoreDecodeError("OSCORE option uses reserved flag bits")
    if flags == 0:
        raise OscoreDecodeError("OSCORE option with no flag set must be empty")
    n = flags & _N
    if n > 5:
        raise OscoreDecodeError(f"OSCORE option announces a reserved Partial IV length {n}")
    pos = 1
    partial_iv = None
    if n:
        if pos + n > len(value):
            raise OscoreDecodeError("OSCORE option ends inside its Partial IV")
        partial_iv = value[pos : pos + n]
        pos += n
    kid_context = None
    if flags & _H:
        if pos >= len(value):
            raise OscoreDecodeError("OSCORE option ends before its kid context length")
        s = value[pos]
        pos += 1
        if pos + s > len(value):
            raise OscoreDecodeError("OSCORE option ends inside its kid context")
        kid_context = value[pos : pos + s]
        pos += s
    kid = None
    if flags & _K:
        kid = value[pos:]
    elif pos != len(value):
        raise OscoreDecodeError("OSCORE option has bytes after its last field")
    return OscoreOption(partial_iv, kid, kid_context)
