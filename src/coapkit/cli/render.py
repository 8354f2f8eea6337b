"""Human-readable rendering of messages and payloads for the command-line tool."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coapkit.cli.diagnostic import cbor_to_diagnostic
from coapkit.codec.codes import code_name
from coapkit.codec.content_formats import LINK_FORMAT, TEXT_PLAIN, content_format_name
from coapkit.codec.content_formats import content_format as content_format_entry
from coapkit.codec.link_format import Link, parse_link_format, serialize_link_format
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber, option_name, option_spec
from coapkit.codec.options import BlockValue, decode_value
from coapkit.errors import LinkFormatError, OptionValueError
from coapkit.resources.response import Response
from coapkit.trace import DatagramTrace, format_option, printable_text, show_remote

CBOR_SEQ = 63
_BLOCK_OPTIONS = frozenset(
    {OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.Q_BLOCK1, OptionNumber.Q_BLOCK2}
)


def format_message(message: Message) -> str:
    """A multi-line description of every field of a message."""
    token = message.token.hex() if message.token else "(empty)"
    lines = [
        f"{message.mtype.name} {code_name(message.code)}  MID {message.mid} (0x{message.mid:04x})"
        f"  token {token}"
    ]
    lines.extend("  " + format_option(number, raw) for number, raw in message.options)
    if message.payload:
        lines.append(f"payload ({len(message.payload)} bytes):")
        lines.append(format_payload_preview(message.payload))
    return "\n".join(lines)


def format_payload_preview(payload: bytes) -> str:
    """UTF-8 text as is when printable, otherwise a hex dump."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return hexdump(payload)
    if all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return text
    return hexdump(payload)


def hexdump(data: bytes, width: int = 16) -> str:
    """A classic offset / hex / ASCII dump."""
    lines = []
    for offset in range(0, len(data), width):
        chunk = data[offset : offset + width]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


# -- payloads -----------------------------------------------------------------------------------


CBOR_HINT = "install cbor2 to see CBOR as diagnostic notation: pip install 'coapkit[cbor]'"


@dataclass(frozen=True)
class Rendered:
    """A payload made readable: ``text`` for stdout and, when something was off, a ``note``."""

    text: str
    note: str | None = None


def render_payload(payload: bytes, content_format: int | None) -> Rendered:
    """The payload pretty-printed according to its Content-Format.

    JSON is indented, CBOR shown in diagnostic notation (RFC 8949 §8; needs
    cbor2, otherwise a hex dump and a note saying what to install),
    link-format one link per line, text as it is, anything else (or a
    payload that is not what its Content-Format says) as a hex dump.
    Without a Content-Format, printable UTF-8 is shown as text.
    """
    if not payload:
        return Rendered("")
    cf = content_format_entry(content_format) if content_format is not None else None
    if cf is not None and cf.is_cbor:
        try:
            return Rendered(cbor_to_diagnostic(payload, sequence=cf.number == CBOR_SEQ))
        except ImportError:
            return Rendered(hexdump(payload), CBOR_HINT)
        except ValueError as exc:
            return Rendered(hexdump(payload), f"the payload is {exc}")
    text = printable_text(payload)
    if cf is not None and cf.is_json and text is not None:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return Rendered(text, "the payload is not valid JSON")
        return Rendered(json.dumps(value, indent=2, ensure_ascii=False))
    if content_format == LINK_FORMAT and text is not None:
        try:
            links = parse_link_format(text)
        except LinkFormatError as exc:
            return Rendered(text, f"the payload is not valid link-format: {exc}")
        return Rendered(",\n".join(serialize_link_format([link]) for link in links))
    if text is not None and (cf is None or cf.is_text or content_format == TEXT_PLAIN):
        return Rendered(text)
    return Rendered(hexdump(payload))


# -- the verbose trace ------------------------------------------------------------------------


class Trace(DatagramTrace):
    """``-v``: every datagram sent and received, curl -v style, as lines for stderr.

    The lines are :class:`coapkit.trace.DatagramTrace`'s, the same as the
    library's DEBUG log on ``coapkit.trace``: ``>`` marks what was sent,
    ``<`` what was received, and repeats are marked as retransmissions or
    duplicates.
    """

    def __init__(
        self,
        write: Callable[[str], object],
        clock: Callable[[], float],
        *,
        stopped: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(clock)
        self._write = write
        #: True once the lines have nowhere to go (stderr closed): from then on nothing is
        #: formatted nor written, and the trace never raises into the runtime that calls it.
        self._stopped = stopped

    def __call__(self, direction: str, data: bytes, remote: object) -> None:
        if self._stopped is not None and self._stopped():
            return
        self._write(self.format(direction, data, remote))

    def note(self, text: str) -> None:
        """A ``*`` line: something the tool did, between the datagrams."""
        if self._stopped is not None and self._stopped():
            return
        self._write(f"* {text}")


# -- JSON for scripts ---------------------------------------------------------------------------


def option_json_value(number: int, raw: bytes) -> object:
    """One option value for ``--json``: numbers, strings, ``0x``-hex for opaque, true for empty."""
    try:
        value = decode_value(number, raw)
    except OptionValueError:
        return "0x" + raw.hex()
    if number in _BLOCK_OPTIONS:
        assert isinstance(value, int)
        block = BlockValue.from_uint(value)
        return {"num": block.num, "more": block.more, "size": block.size}
    if value is None:
        return True
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def options_json(options: Iterable[tuple[int, bytes]]) -> dict[str, object]:
    """Options by name; repeatable (and unknown) options as lists, the others as single values."""
    collected: dict[int, list[object]] = {}
    for number, raw in options:
        collected.setdefault(number, []).append(option_json_value(number, raw))
    out: dict[str, object] = {}
    for number, values in collected.items():
        spec = option_spec(number)
        single = spec is not None and not spec.repeatable and len(values) == 1
        out[option_name(number)] = values[0] if single else values
    return out


def response_json(response: Response) -> dict[str, object]:
    """The response as a JSON-ready object (``--json``)."""
    payload = response.payload
    cf_number = response.content_format
    cf = content_format_entry(cf_number) if cf_number is not None else None
    textual = cf is None or cf.is_text or cf_number == TEXT_PLAIN
    text: str | None = None
    if textual:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    dotted, _, name = code_name(response.code).partition(" ")
    return {
        "code": dotted,
        "code_name": name,
        "success": response.is_success,
        "options": options_json(response.options.items),
        "content_format": cf_number,
        "content_format_name": None if cf_number is None else content_format_name(cf_number),
        "payload": text if text is not None else base64.b64encode(payload).decode("ascii"),
        "payload_encoding": "utf-8" if text is not None else "base64",
        "payload_size": len(payload),
        "remote": None if response.remote is None else show_remote(response.remote),
    }


# -- discovery ------------------------------------------------------------------------------------


def content_format_label(number: int) -> str:
    """``50 json``, ``0 text``, ``12345``: a number and its short name, for tables."""
    cf = content_format_entry(number)
    if cf is None:
        return str(number)
    label = cf.short or cf.media_type.split(";")[0]
    return f"{number} {label}"


def link_row(link: Link) -> dict[str, str]:
    return {
        "path": link.target,
        "rt": " ".join(link.rt),
        "if": " ".join(link.if_),
        "ct": ", ".join(content_format_label(n) for n in link.ct),
        "sz": "" if link.sz is None else str(link.sz),
        "obs": "obs" if link.obs else "",
        "title": link.title or "",
    }


LINK_COLUMNS = ("path", "rt", "if", "ct", "sz", "obs", "title")


def links_table(links: Iterable[Link]) -> str:
    """A table with one row per link: path, rt, if, ct (with names), sz, obs, title."""
    rows = [link_row(link) for link in links]
    used = [c for c in LINK_COLUMNS if c == "path" or any(row[c] for row in rows)]
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in used}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in used).rstrip()]
    lines.extend("  ".join(row[c].ljust(widths[c]) for c in used).rstrip() for row in rows)
    return "\n".join(lines)


def link_json(link: Link) -> dict[str, object]:
    """One link as a JSON-ready object (``discover --json``)."""
    return {
        "href": link.target,
        "rt": list(link.rt),
        "if": list(link.if_),
        "ct": list(link.ct),
        "sz": link.sz,
        "obs": link.obs,
        "title": link.title,
        "attributes": [[name, value] for name, value in link.attributes],
    }
