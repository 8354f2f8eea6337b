"""CoAP message framing over reliable transports (RFC 8323 §3.2 TCP and TLS, §4.2 WebSockets).

Over a byte stream there are no message types and no message IDs: a message
is a length, a token, a code, options and a payload::

     0                   1                   2                   3
    |  Len  |  TKL  | Extended Length (0, 8, 16 or 32 bits) ...
    |      Code     | Token (TKL bytes) ...
    |   Options (if any) ...
    |1 1 1 1 1 1 1 1|    Payload (if any) ...

``Len`` counts the options, the payload marker and the payload (not the
code nor the token).  0..12 is the length itself; 13, 14 and 15 say that it
follows in 1, 2 or 4 more bytes, less 13, 269 and 65805.  Over WebSockets
each binary WebSocket message carries exactly one CoAP message and ``Len``
is 0 with no extension (the WebSocket frame gives the length, §4.2).

Decoded messages are :class:`~coapkit.codec.message.Message` values like
those from UDP, with type CON and message ID 0 (which mean nothing here), so
that the layers above handle them the same.  Signalling messages (7.xx, RFC
8323 §5) are decoded like any other message; the connection layer interprets
them.  An empty message (0.00) is legal and ignored by the connection layer.

Decoding is as strict as the UDP codec's and as total: malformed input gives
:class:`~coapkit.errors.DecodeError` naming the fault, never another
exception.  :class:`FrameReader` reassembles messages from arbitrary chunks
of a stream and refuses a message longer than the size it was told to accept
*before* buffering it, so a peer cannot make it hold more than that.
"""

from __future__ import annotations

from coapkit.codec.message import Message, _make, decode_options, encode_options
from coapkit.codec.options import EMPTY_OPTIONS, Options
from coapkit.codec.types import MessageType
from coapkit.errors import DecodeError, EncodeError

_CON = MessageType.CON

#: the base added to an extended length of 1, 2 or 4 bytes (Len nibble 13, 14, 15)
_EXTENDED = ((13, 1), (269, 2), (65805, 4))


def _length_header(length: int, tkl: int) -> bytes:
    """The Len/TKL byte and the extended length for a body of ``length`` bytes."""
    if length < 13:
        return bytes(((length << 4) | tkl,))
    if length < 269:
        return bytes(((13 << 4) | tkl, length - 13))
    if length < 65805:
        return bytes(((14 << 4) | tkl,)) + (length - 269).to_bytes(2, "big")
    if length - 65805 > 0xFFFFFFFF:
        raise EncodeError(f"a message body of {length} bytes is too long for a CoAP frame")
    return bytes(((15 << 4) | tkl,)) + (length - 65805).to_bytes(4, "big")


def _body(options: Options, payload: bytes) -> bytes:
    items = options.items
    encoded = encode_options(items) if items else b""
    if payload:
        return encoded + b"\xff" + payload
    return encoded


def _check_head(code: int, token: bytes) -> int:
    tkl = len(token)
    if tkl > 8:
        raise EncodeError(f"a token is at most 8 bytes, not {tkl}")
    if not 0 <= code <= 0xFF:
        raise EncodeError(f"code {code} is outside 0..255")
    return tkl


def encode_frame(code: int, token: bytes, options: Options, payload: bytes) -> bytes:
    """One message framed for TCP or TLS (RFC 8323 §3.2)."""
    tkl = len(token)
    if tkl > 8 or not 0 <= code <= 0xFF:
        _check_head(code, token)  # raises
    items = options.items
    encoded = encode_options(items) if items else b""
    length = len(encoded) + 1 + len(payload) if payload else len(encoded)
    # the header, code and token in one bytes object for the common sizes
    if length < 13:
        head = bytes(((length << 4) | tkl, code)) + token
    elif length < 269:
        head = bytes(((13 << 4) | tkl, length - 13, code)) + token
    else:
        head = _length_header(length, tkl) + bytes((code,)) + token
    if payload:
        return b"".join((head, encoded, b"\xff", payload))
    return head + encoded


def encode_ws(code: int, token: bytes, options: Options, payload: bytes) -> bytes:
    """One message as the payload of a binary WebSocket message (RFC 8323 §4.2)."""
    tkl = _check_head(code, token)
    return b"".join((bytes((tkl,)), bytes((code,)), token, _body(options, payload)))


def frame_message(message: Message) -> bytes:
    """:func:`encode_frame` for a :class:`Message` (its type and message ID are not sent)."""
    return encode_frame(message.code, message.token, message.options, message.payload)


def _check_code(code: int) -> None:
    klass = code >> 5
    if klass in {1, 6}:
        raise DecodeError(f"code {klass}.{code & 0x1F:02d} is in a reserved class")


def _message(code: int, token: bytes, data: bytes, pos: int) -> Message:
    """The message with ``code`` and ``token`` whose options start at ``data[pos]``."""
    _check_code(code)
    if pos == len(data):
        return _make(_CON, code, 0, token, EMPTY_OPTIONS, b"")
    options, payload = decode_options(data, pos)
    return _make(_CON, code, 0, token, options, payload)


def decode_ws(data: bytes | bytearray | memoryview) -> Message:
    """Decode the payload of one binary WebSocket message (RFC 8323 §4.2)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    if n < 2:
        raise DecodeError(f"a WebSocket message of {n} bytes is shorter than its 2-byte header")
    first = data[0]
    length, tkl = first >> 4, first & 0x0F
    if length:
        raise DecodeError(f"Len is {length} in a WebSocket message; it must be 0 (RFC 8323 §4.2)")
    if tkl > 8:
        raise DecodeError(f"token length {tkl} is reserved (0..8)")
    pos = 2 + tkl
    if pos > n:
        raise DecodeError(f"token of {tkl} bytes runs past the end of the message")
    return _message(data[1], data[2:pos], data, pos)


def decode_frame(data: bytes | bytearray | memoryview) -> Message:
    """Decode exactly one TCP/TLS frame (tests, tools); streams use :class:`FrameReader`."""
    reader = FrameReader(max_size=1 << 32)
    messages = reader.feed(bytes(data))
    if len(messages) != 1 or reader.buffered:
        raise DecodeError(
            f"expected one whole frame, found {len(messages)} and {reader.buffered} bytes more"
        )
    return messages[0]


class FrameReader:
    """Cuts a TCP/TLS byte stream into messages (RFC 8323 §3.2).

    :meth:`feed` takes the bytes as they arrive, in chunks of any size, and
    returns the messages completed by them.  A message whose frame (header,
    code, token, options, payload) is larger than ``max_size`` is refused as
    soon as its header shows it (the peer broke our Max-Message-Size, §5.3.1),
    so at most ``max_size`` bytes are ever buffered.  After an error the
    stream cannot be resynchronised: the connection is to be aborted.
    """

    __slots__ = ("_buffer", "failed", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self.failed = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)

    def one_request(self, data: bytes) -> Message | None:
        """:meth:`feed` for the common case, in fewer steps: with nothing buffered, ``data``
        exactly one whole frame of a request (code 0.01..0.31) within ``max_size``, whose
        options decode.  Returns that message, the reader's state unchanged (as
        :meth:`feed` would leave it); for anything else returns None having changed
        nothing, and the caller hands ``data`` to :meth:`feed`."""
        end = len(data)
        if self._buffer or self.failed or end < 2:
            return None
        first = data[0]
        nibble, tkl = first >> 4, first & 0x0F
        if tkl > 8:
            return None
        if nibble < 13:
            head = 1
            length = nibble
        else:
            base, size = _EXTENDED[nibble - 13]
            head = 1 + size
            if head > end:
                return None
            length = base + int.from_bytes(data[1:head], "big")
        total = head + 1 + tkl + length
        if total != end or total > self.max_size:
            return None
        code = data[head]
        if not 0 < code < 32:
            return None
        start = head + 1 + tkl
        token = data[head + 1 : start]
        try:
            if start == end:
                return _make(_CON, code, 0, token, EMPTY_OPTIONS, b"")
            options, payload = decode_options(data, start)
        except DecodeError:
            return None
        return _make(_CON, code, 0, token, options, payload)

    def feed(self, data: bytes) -> list[Message]:
        if self.failed:
            raise DecodeError("the stream already failed")
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        pos = 0
        end = len(buffer)
        try:
            while pos < end:
                first = buffer[pos]
                nibble, tkl = first >> 4, first & 0x0F
                if tkl > 8:
                    raise DecodeError(f"token length {tkl} is reserved (0..8)")
                head = 1
                if nibble < 13:
                    length = nibble
                else:
                    base, size = _EXTENDED[nibble - 13]
                    if pos + 1 + size > end:
                        break
                    length = base + int.from_bytes(buffer[pos + 1 : pos + 1 + size], "big")
                    head += size
                total = head + 1 + tkl + length
                if total > self.max_size:
                    raise DecodeError(
                        f"a message of {total} bytes is larger than the {self.max_size} "
                        "announced (Max-Message-Size)"
                    )
                if pos + total > end:
                    break
                code_at = pos + head
                frame = bytes(buffer[code_at + 1 + tkl : pos + total])
                token = bytes(buffer[code_at + 1 : code_at + 1 + tkl])
                messages.append(_message(buffer[code_at], token, frame, 0))
                pos += total
        except DecodeError:
            self.failed = True
            buffer.clear()
            raise
        del buffer[:pos]
        return messages
