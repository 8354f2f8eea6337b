"""A readable trace of CoAP datagrams (RFC 7252 §3), for people.

One formatter serves both the command-line tool's ``-v`` and the library's
DEBUG log on the ``coapkit.trace`` logger, so the two always look the same::

    > CON GET  MID 4660  token ab  to 127.0.0.1:5683  (7 bytes, +0.000 s)
    >   Uri-Path: 'x'
    < ACK 2.05 Content  MID 4660  token ab  from 127.0.0.1:5683  (8 bytes, +0.002 s)
    <   payload: 2 bytes "hi"

``>`` marks what was sent, ``<`` what was received.  CoAP retransmits the
very same bytes (RFC 7252 §4.2), so a datagram identical to one already sent
is marked ``[retransmission N]``, and one identical to one already received
``[duplicate N]``.

The runtime driver logs every datagram it sends or receives on
``coapkit.trace`` at DEBUG; it formats nothing unless that logger is enabled
for DEBUG (it asks once per batch of datagrams).  To see the trace::

    import logging
    logging.basicConfig(level=logging.DEBUG)   # or just the trace:
    logging.getLogger("coapkit.trace").setLevel(logging.DEBUG)

This module depends on the codec only; the runtime and the command-line
tool import it.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable

from coapkit.codec.codes import code_name
from coapkit.codec.content_formats import content_format_name
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber, is_critical, option_name
from coapkit.codec.options import BlockValue, decode_value
from coapkit.codec.stream import FrameReader, decode_ws
from coapkit.connections.signals import ABORT, CSM, PING, PONG, RELEASE, SIGNAL_NAMES
from coapkit.dtls.records import describe_records
from coapkit.errors import DecodeError, OptionValueError

__all__ = [
    "DatagramTrace",
    "format_option",
    "logger",
    "payload_summary",
    "printable_text",
    "show_remote",
]

#: The logger the runtime writes the datagram trace to, at DEBUG.
logger = logging.getLogger("coapkit.trace")

_BLOCK_OPTIONS = frozenset(
    {OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.Q_BLOCK1, OptionNumber.Q_BLOCK2}
)


def format_option(number: int, raw: bytes) -> str:
    """``Name: value`` for one option instance, tolerant of malformed values.

    >>> format_option(11, b"temperature")
    "Uri-Path: 'temperature'"
    >>> format_option(23, bytes([0x1a]))
    'Block2: 1+/64'
    >>> format_option(27, bytes([0x4f]))  # szx 7: BERT (RFC 8323 §6)
    'Block1: 4+/BERT'
    """
    name = option_name(number)
    try:
        value = decode_value(number, raw)
    except OptionValueError as exc:
        return f"{name}: 0x{raw.hex()} (invalid: {exc.reason})"
    if number in _BLOCK_OPTIONS:
        assert isinstance(value, int)
        block = BlockValue.from_uint(value)
        more = "+" if block.more else ""
        text = f"{block.num}{more}/{'BERT' if block.bert else block.size}"
    elif number in (OptionNumber.CONTENT_FORMAT, OptionNumber.ACCEPT):
        assert isinstance(value, int)
        text = f"{value} ({content_format_name(value)})"
    elif isinstance(value, bytes):
        text = "0x" + value.hex() if value else "(empty)"
    elif isinstance(value, str):
        text = repr(value)
    elif value is None:
        text = "(empty)"
    else:
        text = str(value)
    if number not in OptionNumber._value2member_map_:
        text += " (critical)" if is_critical(number) else " (elective)"
    return f"{name}: {text}"


def show_remote(remote: object) -> str:
    """``127.0.0.1:5683`` or ``[::1]:5683``; IPv4-mapped IPv6 addresses shown as IPv4.

    >>> show_remote(("::ffff:192.0.2.1", 5683, 0, 0))
    '192.0.2.1:5683'
    """
    if isinstance(remote, tuple) and len(remote) >= 2 and isinstance(remote[0], str):
        host, port = remote[0], remote[1]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        scope = remote[3] if len(remote) > 3 and remote[3] else 0
        if ":" in host:
            if scope and "%" not in host:
                host = f"{host}%{_interface_name(scope)}"
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(remote)


def _interface_name(index: int) -> str:
    import socket

    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def printable_text(payload: bytes) -> str | None:
    """The payload as text if it is UTF-8 made of printable characters (and line breaks)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return text
    return None


def payload_summary(payload: bytes, limit: int = 48) -> str:
    """``2 bytes "hi"``: the size, and a one-line text payload quoted (cut at ``limit``)."""
    size = f"{len(payload)} byte{'' if len(payload) == 1 else 's'}"
    text = printable_text(payload)
    if text is None or "\n" in text or "\r" in text:
        return size
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{size} {json.dumps(text, ensure_ascii=False)}"


class DatagramTrace:
    """Formats datagrams as trace lines, remembering recent ones to mark repeats.

    ``clock`` gives the time; each first line shows the time elapsed since the
    trace was made.  Give each endpoint its own trace: repeats are recognised
    per trace.

    >>> trace = DatagramTrace(lambda: 0.0)
    >>> print(trace.format("send", bytes.fromhex("40010001"), ("127.0.0.1", 5683)))
    > CON GET  MID 1  token (empty)  to 127.0.0.1:5683  (4 bytes, +0.000 s)
    """

    #: How many distinct datagrams each direction remembers for spotting repeats.
    MEMORY = 4096

    def __init__(self, clock: Callable[[], float], *, framing: str = "udp") -> None:
        self._clock = clock
        self._start = clock()
        #: how the bytes are framed: ``"udp"`` (RFC 7252 datagrams), ``"tcp"`` (a stream
        #: of RFC 8323 §3.2 frames, cut anywhere), ``"ws"`` (one RFC 8323 §4.2 message
        #: per WebSocket message), ``"dtls"`` (DTLS records: their types and sizes) or
        #: ``"decrypted"`` (the CoAP datagrams inside DTLS records: shown as ``"udp"``
        #: ones are, their size marked "in DTLS")
        self.framing = framing
        self._sent: dict[bytes, int] = {}
        self._received: dict[bytes, int] = {}
        #: a stream's incomplete frames, per direction and connection (framing "tcp")
        self._readers: dict[tuple[str, object], FrameReader] = {}

    def with_framing(self, framing: str) -> DatagramTrace:
        """This trace (same clock, start and output) for bytes framed another way: a
        client keeps one per transport it uses."""
        other = copy.copy(self)
        other.framing = framing
        other._sent, other._received, other._readers = {}, {}, {}
        return other

    def format(self, direction: str, data: bytes, remote: object) -> str:
        """The lines of :meth:`lines` as one string."""
        return "\n".join(self.lines(direction, data, remote))

    def lines(self, direction: str, data: bytes, remote: object) -> list[str]:
        """Trace lines for ``data`` sent to (``direction="send"``) or received from ``remote``."""
        if self.framing == "dtls":
            arrow = ">" if direction == "send" else "<"
            where = f"{'to' if direction == 'send' else 'from'} {show_remote(remote)}"
            elapsed = self._clock() - self._start
            return [
                f"{arrow} DTLS {describe_records(data)}  {where}  ({len(data)} bytes, "
                f"+{elapsed:.3f} s)"
            ]
        if self.framing not in ("udp", "decrypted"):
            return self._stream_lines(direction, data, remote)
        sending = direction == "send"
        arrow = ">" if sending else "<"
        seen = self._sent if sending else self._received
        repeat = seen.pop(data, 0)
        seen[data] = repeat + 1
        if len(seen) > self.MEMORY:  # a long-running server: forget the oldest
            del seen[next(iter(seen))]
        elapsed = self._clock() - self._start
        where = f"{'to' if sending else 'from'} {show_remote(remote)}"
        size = f"{len(data)} byte{'' if len(data) == 1 else 's'}"
        if self.framing == "decrypted":
            size += " in DTLS"
        mark = ""
        if repeat:
            mark = f"  [retransmission {repeat}]" if sending else f"  [duplicate {repeat}]"
        try:
            message = Message.decode(data)
        except DecodeError as exc:
            return [f"{arrow} {size} {where}, not a CoAP message: {exc.reason}{mark}"]
        token = message.token.hex() if message.token else "(empty)"
        lines = [
            f"{arrow} {message.mtype.name} {code_name(message.code)}  MID {message.mid}"
            f"  token {token}  {where}  ({size}, +{elapsed:.3f} s){mark}"
        ]
        lines.extend(f"{arrow}   {format_option(number, raw)}" for number, raw in message.options)
        if message.payload:
            lines.append(f"{arrow}   payload: {payload_summary(message.payload)}")
        return lines

    def _stream_lines(self, direction: str, data: bytes, remote: object) -> list[str]:
        """Lines for bytes of a connection (RFC 8323): no types, no message IDs; signals
        (7.xx) by name with their own options."""
        sending = direction == "send"
        arrow = ">" if sending else "<"
        elapsed = self._clock() - self._start
        where = f"{'to' if sending else 'from'} {show_remote(remote)}"
        size = f"{len(data)} byte{'' if len(data) == 1 else 's'}"
        try:
            if self.framing == "ws":
                messages = [decode_ws(data)]
            else:
                key = (direction, remote)
                reader = self._readers.get(key)
                if reader is None:
                    if len(self._readers) >= self.MEMORY:
                        del self._readers[next(iter(self._readers))]
                    reader = self._readers[key] = FrameReader(max_size=1 << 32)
                messages = reader.feed(data)
        except DecodeError as exc:
            self._readers.pop((direction, remote), None)
            return [f"{arrow} {size} {where}, not a CoAP frame: {exc.reason}"]
        if not messages:
            return [f"{arrow} {size} {where}, part of a frame  (+{elapsed:.3f} s)"]
        lines: list[str] = []
        for message in messages:
            token = message.token.hex() if message.token else "(empty)"
            name = SIGNAL_NAMES.get(message.code) or code_name(message.code)
            lines.append(f"{arrow} {name}  token {token}  {where}  ({size}, +{elapsed:.3f} s)")
            signal = message.code >> 5 == 7
            for number, raw in message.options:
                if signal:
                    label = _SIGNAL_OPTIONS.get((message.code, number), f"option {number}")
                    value = str(int.from_bytes(raw, "big")) if raw else "(empty)"
                    if (message.code, number) == (RELEASE, 2):
                        value = repr(raw.decode("utf-8", "replace"))
                    lines.append(f"{arrow}   {label}: {value}")
                else:
                    lines.append(f"{arrow}   {format_option(number, raw)}")
            if message.payload:
                lines.append(f"{arrow}   payload: {payload_summary(message.payload)}")
        return lines


#: the option names of the signals (RFC 8323 §5): each signal has a number space of its own
_SIGNAL_OPTIONS = {
    (CSM, 2): "Max-Message-Size",
    (CSM, 4): "Block-Wise-Transfer",
    (PING, 2): "Custody",
    (PONG, 2): "Custody",
    (RELEASE, 2): "Alternative-Address",
    (RELEASE, 4): "Hold-Off",
    (ABORT, 2): "Bad-CSM-Option",
}
