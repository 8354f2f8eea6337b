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

import json
import logging
from collections.abc import Callable

from coapkit.codec.codes import code_name
from coapkit.codec.content_formats import content_format_name
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber, is_critical, option_name
from coapkit.codec.options import BlockValue, decode_value
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

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._start = clock()
        self._sent: dict[bytes, int] = {}
        self._received: dict[bytes, int] = {}

    def format(self, direction: str, data: bytes, remote: object) -> str:
        """The lines of :meth:`lines` as one string."""
        return "\n".join(self.lines(direction, data, remote))

    def lines(self, direction: str, data: bytes, remote: object) -> list[str]:
        """Trace lines for ``data`` sent to (``direction="send"``) or received from ``remote``."""
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
