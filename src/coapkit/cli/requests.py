"""The client commands: ``get``, ``post``, ``put``, ``delete``, ``fetch``, ``patch``, ``ipatch``,
``ping`` and ``discover``.

Each command parses and checks everything it can before it opens a socket
(URI, payload, options), so that a mistake on the command line costs no
network round trip and always ends with status 2, 6 or 10 (see
:mod:`coapkit.cli.exits`).  Then one :class:`~coapkit.client.Client` sends
the request, and :func:`present` turns the response into output and an exit
status.

``--option NAME=VALUE`` values are typed like this (see :func:`parse_option`):

* ``0x0102`` (a ``0x`` prefix) is always raw bytes, for any option;
* otherwise a registered option takes its registry format: a decimal number
  for uint options (Content-Format and Accept also take names such as
  ``json``), the text itself for string options, the text's UTF-8 bytes for
  opaque ones (``ETag=v1``), nothing for empty ones (``If-None-Match``);
* an unregistered number takes the text's UTF-8 bytes;
* a bare ``NAME`` (no ``=``) is an empty value.

Two seams wait for work in progress: ``--observe``/``--count`` are parsed but
end with "not available yet" (status 2) until Observe (RFC 7641) lands, and
:func:`progress_hook` is where a block-wise (RFC 7959) progress bar will come
from; it returns None for now and the request path passes it along.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coapkit.cli.exits import (
    EXIT_MALFORMED,
    EXIT_OK,
    LocalFileError,
    UsageError,
    response_status,
)
from coapkit.cli.formats import guess_content_format
from coapkit.cli.render import (
    Trace,
    link_json,
    links_table,
    render_payload,
    response_json,
)
from coapkit.client import Client
from coapkit.codec.codes import METHODS_BY_NAME, Code, code_name
from coapkit.codec.content_formats import TEXT_PLAIN, parse_content_format
from coapkit.codec.link_format import filter_links
from coapkit.codec.option_registry import (
    OptionFormat,
    OptionNumber,
    lookup_option,
    option_spec,
)
from coapkit.codec.options import encode_value
from coapkit.codec.uri import CoapUri, parse_uri, quote_query, quote_segment
from coapkit.errors import LinkFormatError, OptionValueError, UriError
from coapkit.resources.response import Response

#: Called with (bytes done, total bytes or None) while a block-wise transfer runs.
ProgressHook = Callable[[int, int | None], None]


def parse_option(text: str) -> tuple[int, bytes]:
    """``NAME=VALUE`` (or ``NUMBER=VALUE``, or a bare ``NAME``) as ``(number, raw value)``.

    See the module docstring for how values are typed.  Raises UsageError
    with a one-line reason for anything that cannot be an option.
    """
    name, has_value, value = text.partition("=")
    try:
        number = lookup_option(name)
    except ValueError as exc:
        raise UsageError(
            f"--option {text!r}: {exc} (use a registered name such as Uri-Query, or a number)"
        ) from None
    spec = option_spec(number)
    label = spec.name if spec is not None else f"option {number}"
    if value[:2].lower() == "0x":
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise UsageError(f"--option {text!r}: {value!r} is not hex bytes") from None
        if spec is not None and not spec.length_ok(len(raw)):
            raise UsageError(
                f"--option {text!r}: {label} must be {spec.min_length} to "
                f"{spec.max_length} bytes, not {len(raw)}"
            )
        return number, raw
    if spec is None or (not has_value and spec.format is not OptionFormat.EMPTY):
        raw = value.encode("utf-8")
        if spec is not None and not spec.length_ok(len(raw)):
            raise UsageError(f"--option {text!r}: {label} needs a value (write {name}=VALUE)")
        return number, raw
    try:
        if spec.format is OptionFormat.UINT:
            if number in (OptionNumber.CONTENT_FORMAT, OptionNumber.ACCEPT):
                typed: Any = parse_content_format(value)
            elif value.isascii() and value.isdigit():
                typed = int(value)
            else:
                raise UsageError(
                    f"--option {text!r}: {label} takes a decimal number (or 0x-prefixed hex)"
                )
        elif spec.format is OptionFormat.STRING:
            typed = value
        elif spec.format is OptionFormat.OPAQUE:
            typed = value.encode("utf-8")
        else:
            if value:
                raise UsageError(f"--option {text!r}: {label} takes no value (write just {name})")
            typed = True
        return number, encode_value(spec, typed)
    except OptionValueError as exc:
        raise UsageError(f"--option {text!r}: {exc.reason}") from None
    except ValueError as exc:
        raise UsageError(f"--option {text!r}: {exc}") from None


def read_payload(spec: str | None) -> tuple[bytes, int | None]:
    """The payload of ``--payload`` and the Content-Format it implies, if any.

    ``TEXT`` is sent as UTF-8 text/plain; ``@FILE`` is read as bytes, its
    Content-Format guessed from the extension (``.json`` 50, ``.cbor`` 60...,
    none for an unknown one); ``-`` (or ``@-``) reads standard input, with no
    Content-Format.  ``--content-format`` overrides the guess.
    """
    if spec is None:
        return b"", None
    if spec in ("-", "@-"):
        return sys.stdin.buffer.read(), None
    if spec.startswith("@"):
        name = spec[1:]
        if not name:
            raise UsageError("--payload @FILE needs a file name after the @")
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise LocalFileError(f"cannot read the payload file {name!r}: {reason}") from None
        return data, guess_content_format(name, default=None)
    return spec.encode("utf-8"), TEXT_PLAIN


def check_uri(text: str) -> CoapUri:
    """Parse a URI given on the command line; UriError (status 6) if it cannot be used."""
    uri = parse_uri(text)
    if uri.scheme != "coap":
        raise UriError(f"the {uri.scheme} scheme is not supported yet; use coap://")
    return uri


# -- seams for work in progress --------------------------------------------------------------


def progress_hook(args: argparse.Namespace) -> ProgressHook | None:
    """The progress display for a block-wise transfer of this command, if any.

    None until block-wise transfers (RFC 7959) exist: then this returns a
    hook drawing a progress bar on stderr for large transfers on a terminal.
    """
    return None


def observe_not_available(args: argparse.Namespace) -> int:
    """``--observe``: where printing notifications until Ctrl-C or ``--count`` will go."""
    raise UsageError("--observe is not available yet: Observe (RFC 7641) support is coming")


# -- running a request ------------------------------------------------------------------------


def _tracer(args: argparse.Namespace) -> Trace | None:
    if not getattr(args, "verbose", False):
        return None
    return Trace(lambda line: print(line, file=sys.stderr, flush=True), time.monotonic)


async def send_request(
    client: Client,
    method: str,
    uri: CoapUri,
    payload: bytes,
    *,
    content_format: int | None,
    accept: int | None,
    options: list[tuple[int, bytes]],
    non: bool,
    timeout: float | None,
    progress: ProgressHook | None,
) -> Response:
    """One request through ``client``.

    ``progress`` is not used yet: block-wise transfers will report to it.
    """
    return await client.request(
        METHODS_BY_NAME[method.upper()],
        uri,
        payload,
        content_format=content_format,
        accept=accept,
        options=options,
        non=non,
        timeout=timeout,
    )


def cmd_request(args: argparse.Namespace) -> int:
    """``coapkit get|post|put|... URI``."""
    uri = check_uri(args.uri)
    if args.count is not None and not args.observe:
        raise UsageError("--count only makes sense with --observe")
    options = [parse_option(text) for text in args.option]
    if args.observe:
        return observe_not_available(args)
    payload, implied_format = read_payload(args.payload)
    content_format = args.content_format
    if content_format is None and args.payload is not None:
        content_format = implied_format
    trace = _tracer(args)
    progress = progress_hook(args)

    async def run() -> Response:
        async with Client(tracer=trace) as client:
            return await send_request(
                client,
                args.method,
                uri,
                payload,
                content_format=content_format,
                accept=args.accept,
                options=options,
                non=args.non,
                timeout=args.timeout,
                progress=progress,
            )

    response = asyncio.run(run())
    return present(response, args, trace)


# -- output ----------------------------------------------------------------------------------


def _stdout(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _diagnostic_text(response: Response) -> str | None:
    """An error response's diagnostic payload (RFC 7252 §5.5.2) as one line, if it is one."""
    if response.content_format is not None or not response.payload:
        return None
    try:
        text = response.payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _location(response: Response) -> str:
    """Location-Path and Location-Query as a relative reference (RFC 7252 §5.10.7)."""
    path = "/".join(quote_segment(segment) for segment in response.location_path)
    query = "&".join(quote_query(argument) for argument in response.location_query)
    return ("/" + path if path else "") + ("?" + query if query else "")


def _partial_note(response: Response) -> str | None:
    """A note for a response that is only the first block of a larger body (RFC 7959)."""
    block = response.options.block2
    if block is None or not block.more:
        return None
    total = response.options.size2
    of = f" of {total}" if total is not None else ""
    return (
        f"this is only block {block.num} ({len(response.payload)} bytes{of}) of the body: "
        "block-wise transfer is not available yet"
    )


def write_output(name: str, payload: bytes) -> None:
    """``-o FILE``: the payload's bytes, as they are; ``-o -`` writes them to stdout."""
    if name == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    try:
        Path(name).write_bytes(payload)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LocalFileError(f"cannot write the output file {name!r}: {reason}") from None


def present(response: Response, args: argparse.Namespace, trace: Trace | None = None) -> int:
    """Print ``response`` as the options ask and return the exit status.

    stdout gets the payload (pretty-printed, or as JSON with ``--json``);
    stderr gets the code when it is an error, with its diagnostic payload,
    and, for a success without payload other than 2.05, the code and any
    Location so that a command never seems to have done nothing.  ``-o``
    receives the payload of a success only (an error never overwrites it).
    """
    status = response_status(response.code)
    success = status == EXIT_OK
    partial = _partial_note(response)
    if partial is not None:
        _stderr(f"coapkit: note: {partial}")
    if args.json:
        _stdout(json.dumps(response_json(response), indent=2, ensure_ascii=False))
    output = getattr(args, "output", None)
    if not success:
        diagnostic = _diagnostic_text(response)
        line = code_name(response.code)
        _stderr(f"{line}: {diagnostic}" if diagnostic else line)
        if diagnostic is None and not args.json:
            _show_payload(response)
        return status
    if output is not None:
        write_output(output, response.payload)
        if trace is not None and output != "-":
            trace.note(f"wrote {len(response.payload)} bytes to {output}")
    elif not args.json:
        _show_payload(response)
    if not response.payload and not args.json and response.code != Code.CONTENT:
        location = _location(response)
        line = code_name(response.code)
        _stderr(f"{line}  Location: {location}" if location else line)
    return status


def _show_payload(response: Response) -> None:
    rendered = render_payload(response.payload, response.content_format)
    _stdout(rendered.text)
    if rendered.note:
        _stderr(f"coapkit: note: {rendered.note}")


# -- ping and discover ----------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> int:
    """``coapkit ping URI``: an empty CON; the peer's RST proves a CoAP endpoint is there."""
    uri = check_uri(args.uri)
    trace = _tracer(args)

    async def run() -> float:
        async with Client(tracer=trace) as client:
            return await client.ping(uri, timeout=args.timeout)

    rtt = asyncio.run(run())
    _stdout(f"RST from {uri.host_string}:{uri.port}: round trip {rtt * 1000:.2f} ms")
    return EXIT_OK


def discovery_uri(uri: CoapUri, rt: str | None, if_: str | None) -> CoapUri:
    """``/.well-known/core`` of the server in ``uri``, with its query and the filters added."""
    query = list(uri.query) if uri.path == (".well-known", "core") else []
    if rt is not None:
        query.append(f"rt={rt}")
    if if_ is not None:
        query.append(f"if={if_}")
    return CoapUri(uri.scheme, uri.host, uri.port, (".well-known", "core"), tuple(query))


def cmd_discover(args: argparse.Namespace) -> int:
    """``coapkit discover URI``: the server's resources as a table (or JSON)."""
    target = discovery_uri(check_uri(args.uri), args.rt, args.if_)
    trace = _tracer(args)

    async def run() -> Response:
        async with Client(tracer=trace) as client:
            return await send_request(
                client,
                "GET",
                target,
                b"",
                content_format=None,
                accept=None,
                options=[],
                non=False,
                timeout=args.timeout,
                progress=progress_hook(args),
            )

    response = asyncio.run(run())
    status = response_status(response.code)
    if status != EXIT_OK:
        return present(response, args)
    try:
        links = response.links()
    except LinkFormatError as exc:
        _stderr(f"coapkit: the server's /.well-known/core is not valid link-format: {exc}")
        return EXIT_MALFORMED
    # Filter here too: RFC 6690 §4.1 lets a server ignore the filters.
    filters = [argument for argument in target.query if "=" in argument]
    links = filter_links(links, filters) if filters else links
    if args.json:
        _stdout(json.dumps([link_json(link) for link in links], indent=2, ensure_ascii=False))
    elif links:
        _stdout(links_table(links))
    else:
        _stderr("no resources" + (" matched the filters" if filters else " listed"))
    return EXIT_OK
