"""CoAP messages and their binary encoding over UDP (RFC 7252 §3).

A :class:`Message` is a value: the six wire fields (type, code, message ID,
token, options, payload) and nothing else.  Where it came from and when it
arrived travel beside it, never on it (docs/architecture.md rule 5).  Messages are
immutable; :meth:`Message.replace` derives a new one.

Wire format::

     0                   1                   2                   3
    |Ver| T |  TKL  |      Code     |          Message ID           |
    |   Token (if any, TKL bytes) ...
    |   Options (if any) ...
    |1 1 1 1 1 1 1 1|    Payload (if any) ...

:func:`decode` is strict and total: any byte string gives either a message
or a :class:`~coapkit.errors.DecodeError` naming what is wrong, never any
other exception.  The error carries the type and message ID whenever the
header was readable, so the messaging layer can answer a malformed CON with
an RST (§4.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from coapkit.codec.codes import code_name, is_request, is_response
from coapkit.codec.options import EMPTY_OPTIONS, OptionInput, OptionItem, Options
from coapkit.codec.types import MessageType
from coapkit.compiled import mypyc_attr
from coapkit.errors import DecodeError, EncodeError

_TYPES = (MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST)
_new = object.__new__
_set = object.__setattr__


@mypyc_attr(native_class=False)  # its immutability idiom needs a regular class
class Message:
    """One CoAP message.

    >>> m = Message(MessageType.CON, 1, mid=0x7D34, options=Options.build(uri_path=["temperature"]))
    >>> m.encode().hex()
    '40017d34bb74656d7065726174757265'
    >>> Message.decode(bytes.fromhex("40017d34bb74656d7065726174757265")) == m
    True
    """

    __slots__ = ("code", "mid", "mtype", "options", "payload", "token")

    mtype: MessageType
    code: int
    mid: int
    token: bytes
    options: Options
    payload: bytes

    def __init__(
        self,
        mtype: MessageType | int = MessageType.CON,
        code: int = 0,
        mid: int = 0,
        token: bytes | bytearray | memoryview = b"",
        options: Options | Iterable[OptionInput] = EMPTY_OPTIONS,
        payload: bytes | bytearray | memoryview = b"",
    ) -> None:
        _set(self, "mtype", MessageType(mtype))
        _set(self, "code", int(code))
        _set(self, "mid", int(mid))
        _set(self, "token", bytes(token))
        _set(self, "options", options if isinstance(options, Options) else Options(options))
        _set(self, "payload", bytes(payload))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("messages are immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("messages are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.mtype == other.mtype
            and self.code == other.code
            and self.mid == other.mid
            and self.token == other.token
            and self.options == other.options
            and self.payload == other.payload
        )

    def __hash__(self) -> int:
        return hash((self.mtype, self.code, self.mid, self.token, self.options, self.payload))

    def __repr__(self) -> str:
        parts = [f"{self.mtype.name}", code_name(self.code), f"mid={self.mid}"]
        if self.token:
            parts.append(f"token={self.token.hex()}")
        if self.options:
            parts.append(repr(self.options))
        if self.payload:
            parts.append(f"payload={len(self.payload)}B")
        return f"<Message {' '.join(parts)}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Message, (self.mtype, self.code, self.mid, self.token, self.options, self.payload))

    def replace(self, **changes: Any) -> Message:
        """A new message with some fields changed (``mid=...``, ``options=...``, ...)."""
        fields: dict[str, Any] = {
            "mtype": self.mtype,
            "code": self.code,
            "mid": self.mid,
            "token": self.token,
            "options": self.options,
            "payload": self.payload,
        }
        unknown = set(changes) - fields.keys()
        if unknown:
            raise TypeError(f"Message has no field {sorted(unknown)[0]!r}")
        fields.update(changes)
        return Message(**fields)

    @property
    def is_request(self) -> bool:
        return is_request(self.code)

    @property
    def is_response(self) -> bool:
        return is_response(self.code)

    @property
    def is_empty(self) -> bool:
        return self.code == 0

    def encode(self) -> bytes:
        """The datagram for this message.  Raises :class:`EncodeError` if it cannot exist."""
        return encode(self)

    @staticmethod
    def decode(data: bytes | bytearray | memoryview) -> Message:
        """Parse a datagram; raises :class:`DecodeError` (and nothing else) if malformed."""
        return decode(data)


class ResponseParts(Protocol):
    """What a response is made of for the endpoint's fast answer (``respond_now``): code,
    options and payload.  A :class:`Message` has them; so has
    :class:`coapkit.resources.Response`, which a server can hand over as it is (the
    request decides the type, message ID and token)."""

    @property
    def code(self) -> int: ...

    @property
    def options(self) -> Options: ...

    @property
    def payload(self) -> bytes: ...


# The slots' own setters: they store past Message.__setattr__ (which refuses), and are
# faster than object.__setattr__, which looks the slot up by name each time.
_set_mtype = vars(Message)["mtype"].__set__
_set_code = vars(Message)["code"].__set__
_set_mid = vars(Message)["mid"].__set__
_set_token = vars(Message)["token"].__set__
_set_options = vars(Message)["options"].__set__
_set_payload = vars(Message)["payload"].__set__


def _make(
    mtype: MessageType, code: int, mid: int, token: bytes, options: Options, payload: bytes
) -> Message:
    """Build a message from fields already known to be well-typed (no coercion)."""
    m = _new(Message)
    _set_mtype(m, mtype)
    _set_code(m, code)
    _set_mid(m, mid)
    _set_token(m, token)
    _set_options(m, options)
    _set_payload(m, payload)
    return m


def _option_header(value: int) -> tuple[int, bytes]:
    """Nibble and extended bytes for an option delta or length (§3.1)."""
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes((value - 13,))
    return 14, (value - 269).to_bytes(2, "big")


def encode_options(items: Iterable[OptionItem]) -> bytes:
    """The option part of a message; ``items`` must be sorted by number."""
    out = bytearray()
    previous = 0
    for number, value in items:
        delta = number - previous
        length = len(value)
        previous = number
        if delta < 13 and length < 13:
            out.append((delta << 4) | length)
        else:
            if length > 65804:  # 269 + 0xFFFF; option numbers (0..65535) always fit
                raise EncodeError(
                    f"option {number} value of {length} bytes is longer than the 65804 bytes "
                    "an option header can express"
                )
            d_nibble, d_ext = _option_header(delta)
            l_nibble, l_ext = _option_header(length)
            out.append((d_nibble << 4) | l_nibble)
            out += d_ext
            out += l_ext
        out += value
    return bytes(out)


def encode(message: Message) -> bytes:
    """Encode ``message``; see :meth:`Message.encode`."""
    return encode_parts(
        message.mtype, message.code, message.mid, message.token, message.options, message.payload
    )


def encode_parts(
    mtype: int, code: int, mid: int, token: bytes, options: Options, payload: bytes
) -> bytes:
    """Encode a message from its fields without building a :class:`Message` first.

    The messaging layer uses this to put a response on the wire with the
    request's message ID and a type of its choosing.
    """
    tkl = len(token)
    if tkl > 8:
        raise EncodeError(f"a token is at most 8 bytes over UDP, not {tkl}")
    if not 0 <= mid <= 0xFFFF:
        raise EncodeError(f"message ID {mid} is outside 0..65535")
    if not 0 <= code <= 0xFF:
        raise EncodeError(f"code {code} is outside 0..255")
    if code == 0 and (tkl or options or payload):
        raise EncodeError("an empty message (code 0.00) has no token, options or payload")
    if not 0 <= mtype <= 3:
        raise EncodeError(f"message type {mtype} is outside 0..3")
    header = bytes(((0x40 | (mtype << 4) | tkl), code, mid >> 8, mid & 0xFF))
    items = options.items
    body = encode_options(items) if items else b""
    if payload:
        return b"".join((header, token, body, b"\xff", payload))
    return header + token + body if (tkl or body) else header


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one datagram; see the module docstring for the guarantees."""
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    if n < 4:
        raise DecodeError(f"message of {n} bytes is shorter than the 4-byte header")
    b0 = data[0]
    if b0 >> 6 != 1:
        raise DecodeError(f"unknown CoAP version {b0 >> 6}")
    mtype = _TYPES[(b0 >> 4) & 3]
    tkl = b0 & 0x0F
    code = data[1]
    mid = (data[2] << 8) | data[3]
    if tkl > 8:
        raise DecodeError(f"token length {tkl} is reserved (0..8)", mtype=mtype, mid=mid, offset=0)
    klass = code >> 5
    if klass == 1 or klass >= 6:
        raise DecodeError(
            f"code {klass}.{code & 0x1F:02d} is in a reserved class", mtype=mtype, mid=mid, offset=1
        )
    if code == 0:
        if n != 4 or tkl:
            raise DecodeError(
                "an empty message (code 0.00) must be exactly the 4-byte header",
                mtype=mtype,
                mid=mid,
                offset=4,
            )
        return _make(mtype, 0, mid, b"", EMPTY_OPTIONS, b"")
    pos = 4 + tkl
    if pos > n:
        raise DecodeError(
            f"token of {tkl} bytes runs past the end of the message", mtype=mtype, mid=mid, offset=4
        )
    token = data[4:pos]
    if pos == n:
        return _make(mtype, code, mid, token, EMPTY_OPTIONS, b"")
    options, payload = decode_options(data, pos, mtype, mid)
    return _make(mtype, code, mid, token, options, payload)


def decode_options(
    data: bytes, pos: int, mtype: MessageType | None = None, mid: int | None = None
) -> tuple[Options, bytes]:
    """The options and payload of a message whose options start at ``pos`` and which ends
    at the end of ``data`` (shared by the UDP codec and the stream framing of RFC 8323).

    ``mtype`` and ``mid`` go into a :class:`DecodeError` so that the message layer can
    answer a malformed CON with an RST.
    """
    n = len(data)
    items: list[OptionItem] = []
    number = 0
    payload = b""
    while pos < n:
        byte = data[pos]
        start = pos
        pos += 1
        if byte == 0xFF:
            if pos == n:
                raise DecodeError(
                    "payload marker is not followed by a payload",
                    mtype=mtype,
                    mid=mid,
                    offset=start,
                )
            payload = data[pos:]
            break
        delta = byte >> 4
        length = byte & 0x0F
        if delta >= 13:
            if delta == 13:
                if pos >= n:
                    raise DecodeError(
                        "option delta extension runs past the end", mtype=mtype, mid=mid, offset=pos
                    )
                delta = data[pos] + 13
                pos += 1
            elif delta == 14:
                if pos + 2 > n:
                    raise DecodeError(
                        "option delta extension runs past the end", mtype=mtype, mid=mid, offset=pos
                    )
                delta = ((data[pos] << 8) | data[pos + 1]) + 269
                pos += 2
            else:
                raise DecodeError(
                    "option delta nibble 15 is reserved", mtype=mtype, mid=mid, offset=start
                )
        if length >= 13:
            if length == 13:
                if pos >= n:
                    raise DecodeError(
                        "option length extension runs past the end",
                        mtype=mtype,
                        mid=mid,
                        offset=pos,
                    )
                length = data[pos] + 13
                pos += 1
            elif length == 14:
                if pos + 2 > n:
                    raise DecodeError(
                        "option length extension runs past the end",
                        mtype=mtype,
                        mid=mid,
                        offset=pos,
                    )
                length = ((data[pos] << 8) | data[pos + 1]) + 269
                pos += 2
            else:
                raise DecodeError(
                    "option length nibble 15 is reserved", mtype=mtype, mid=mid, offset=start
                )
        number += delta
        if number > 0xFFFF:
            raise DecodeError(
                f"option number {number} is above 65535", mtype=mtype, mid=mid, offset=start
            )
        end = pos + length
        if end > n:
            raise DecodeError(
                f"option {number} value of {length} bytes runs past the end of the message",
                mtype=mtype,
                mid=mid,
                offset=start,
            )
        items.append((number, data[pos:end]))
        pos = end
    options = Options._trusted(tuple(items)) if items else EMPTY_OPTIONS
    return options, payload
