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

Large bodies go block-wise (RFC 7959) inside the client; on a terminal a
progress bar (:mod:`coapkit.cli.progress`) follows the blocks on stderr.
``--observe`` (RFC 7641, GET and FETCH) prints the first response and then
every notification as it arrives (:func:`observe`), until Ctrl-C, SIGTERM,
``--count N`` or stdout's reader going away; leaving deregisters.

All output goes through :mod:`coapkit.cli.console`: results to stdout (a
closed one raises OutputClosed, status 10), everything else to stderr, best
effort.  :func:`present` decides the status from the response alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.cli import loops
from coapkit.cli.console import (
    OutputClosed,
    diagnostics,
    output,
    stdout_gone,
    watch_stdout,
)
from coapkit.cli.exits import (
    EXIT_MALFORMED,
    EXIT_OK,
    LocalFileError,
    UsageError,
    response_status,
)
from coapkit.cli.formats import guess_content_format
from coapkit.cli.oscore import client_credentials
from coapkit.cli.progress import ProgressBar, terminal_width
from coapkit.cli.render import (
    Trace,
    link_json,
    links_table,
    render_payload,
    response_json,
)
from coapkit.cli.security import client_security
from coapkit.client import Client, Observation
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
from coapkit.connections import StreamConfig
from coapkit.errors import EncodeError, LinkFormatError, OptionValueError, UriError
from coapkit.messaging.congestion import CONGESTION_CONTROLS
from coapkit.messaging.layer import MessagingConfig
from coapkit.resources.response import Response
from coapkit.security.dtls import DtlsCredentials
from coapkit.security.tls import TlsCredentials
from coapkit.transports import MissingExtra, require_dtls, require_websockets

if TYPE_CHECKING:
    from coapkit.oscore.credentials import CredentialsMap

#: Called with (bytes done, total bytes or None) while a block-wise transfer runs.
ProgressHook = Callable[[int, int | None], None]

#: Bodies larger than this go up in blocks (the client's default block size).
BLOCK_SIZE = BlockwiseConfig().max_block_size


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
    """Parse a URI given on the command line; UriError (status 6) if it cannot be used:
    ``coaps://`` without the ``dtls`` extra, or a WebSocket scheme without the ``ws``
    extra (the line names the extra)."""
    uri = parse_uri(text)
    if uri.scheme == "coaps":
        try:
            require_dtls()
        except MissingExtra as exc:
            raise UriError(str(exc)) from None
    if uri.transport == "ws":
        try:
            require_websockets()
        except MissingExtra as exc:
            raise UriError(f"{uri.scheme}:// cannot be used: {exc}") from None
    return uri


# -- progress --------------------------------------------------------------------------------


def progress_hook(args: argparse.Namespace, payload: bytes = b"") -> ProgressBar | None:
    """The progress bar for a block-wise transfer of this command, or None.

    Only when stderr is a terminal (never in a pipe or a file), and not with
    ``-v``, whose trace lines would cut through the bar.
    """
    if getattr(args, "verbose", False) or not diagnostics.isatty():
        return None
    return ProgressBar(
        diagnostics,
        time.monotonic,
        uploading=len(payload) > BLOCK_SIZE,
        width=terminal_width(diagnostics),
    )


# -- running a request ------------------------------------------------------------------------


@asynccontextmanager
async def _client(
    args: argparse.Namespace,
    trace: Trace | None,
    *,
    tls: TlsCredentials | None = None,
    dtls: DtlsCredentials | None = None,
    oscore: CredentialsMap | None = None,
) -> AsyncIterator[Client]:
    """The command's client (``--congestion``, the security material); with ``-v`` and
    adaptive retransmission, what it learnt of each server's round trip is noted at the
    end (its per-peer statistics)."""
    name = getattr(args, "congestion", "fixed")
    congestion = CONGESTION_CONTROLS[name]
    async with Client(
        tracer=trace,
        tls=tls,
        dtls=dtls,
        oscore=oscore,
        messaging=MessagingConfig(congestion=congestion),
    ) as client:
        try:
            yield client
        finally:
            if trace is not None and name != "fixed":
                driver = client.driver
                for statistics in driver.endpoint.every_peer_statistics(driver.loop.time()):
                    trace.note(f"peer {statistics.describe()}")


def _tracer(args: argparse.Namespace) -> Trace | None:
    """``-v``: the datagram trace on stderr; it stops, never raises, once stderr is gone."""
    if not getattr(args, "verbose", False):
        return None
    return Trace(diagnostics.line, time.monotonic, stopped=lambda: diagnostics.gone)


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
    """One request through ``client``; ``progress`` hears of each block of a block-wise
    transfer."""
    return await client.request(
        METHODS_BY_NAME[method.upper()],
        uri,
        payload,
        content_format=content_format,
        accept=accept,
        options=options,
        non=non,
        timeout=timeout,
        progress=progress,
    )


def run_with_progress(main: Callable[[], Any], progress: ProgressBar | None, loop: str) -> Response:
    """Run the request coroutine ``main()`` on ``loop``; end the progress bar's line however
    it ends (its final state for a success)."""
    try:
        response: Response = loops.run(main(), loop)
    except BaseException:
        if progress is not None:
            progress.finish(None)
        raise
    if progress is not None:
        progress.finish(len(response.payload) if response.is_success else None)
    return response


def cmd_request(args: argparse.Namespace) -> int:
    """``coapkit get|post|put|... URI``."""
    uri = check_uri(args.uri)
    if args.count is not None and not args.observe:
        raise UsageError("--count only makes sense with --observe")
    if args.observe and args.output is not None:
        raise UsageError("-o/--output cannot be combined with --observe")
    options = [parse_option(text) for text in args.option]
    payload, implied_format = read_payload(args.payload)
    content_format = args.content_format
    if content_format is None and args.payload is not None:
        content_format = implied_format
    loop = loops.choose_loop(args.loop)
    tls, dtls = client_security(args, uri)
    trace = _tracer(args)
    with client_credentials(args) as credentials:
        if args.observe:
            with _fitting(options):
                return loops.run(
                    observe(
                        args,
                        uri,
                        payload,
                        content_format=content_format,
                        options=options,
                        trace=trace,
                        tls=tls,
                        dtls=dtls,
                        credentials=credentials,
                    ),
                    loop,
                )
        return _request(
            args, uri, payload, content_format, options, trace, tls, dtls, credentials, loop
        )


def _request(
    args: argparse.Namespace,
    uri: CoapUri,
    payload: bytes,
    content_format: int | None,
    options: list[tuple[int, bytes]],
    trace: Trace | None,
    tls: TlsCredentials | None,
    dtls: DtlsCredentials | None,
    credentials: CredentialsMap | None,
    loop: str,
) -> int:
    progress = progress_hook(args, payload)

    async def run() -> Response:
        async with _client(args, trace, tls=tls, dtls=dtls, oscore=credentials) as client:
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

    with _fitting(options):
        response = run_with_progress(run, progress, loop)
    return present(response, args, trace)


@contextmanager
def _fitting(options: list[tuple[int, bytes]]) -> Iterator[None]:
    """Turn a request that cannot be encoded (EncodeError: larger than one message) into
    the usage error it is: only the payload goes block-wise, never the options, so the
    URI's and ``--option``'s values must fit in one message (status 2, not 1)."""
    try:
        yield
    except EncodeError as exc:
        given = sum(len(value) for _, value in options)
        if given:
            shorten = f"shorten the --option values ({given} bytes)"
        else:
            shorten = "shorten the URI's path and query"
        reason = str(exc).partition(";")[0]  # without the library's advice on bodies
        raise UsageError(
            f"the request does not fit in one CoAP message: {reason}; only the payload "
            f"goes block-wise, not the options: {shorten}"
        ) from None


# -- observe ---------------------------------------------------------------------------------


async def observe(
    args: argparse.Namespace,
    uri: CoapUri,
    payload: bytes,
    *,
    content_format: int | None,
    options: list[tuple[int, bytes]],
    trace: Trace | None,
    tls: TlsCredentials | None = None,
    dtls: DtlsCredentials | None = None,
    credentials: CredentialsMap | None = None,
) -> int:
    """``--observe``: print the first response and each notification until one of these ends it.

    * Ctrl-C (SIGINT) or SIGTERM: deregister (GET with Observe=1, RFC 7641
      §3.6), exit 0;
    * ``--count N`` responses printed (the first one counts): deregister, exit 0;
    * a response without Observe: the server does not (first response) or no
      longer lets us observe; a 2.xx is printed with a note on stderr and
      ends with 0, an error (4.04 when the resource went away...) with its
      status;
    * a timeout before the first response, a reset or a network error: raised,
      as for a plain request;
    * stdout's reader going away (``| head -1``), noticed at once even while
      no notification comes: deregister, then OutputClosed (status 10).  A
      reader gone before we start means no registration at all; one that
      goes while the registration is on its way waits for its answer, so
      that the server is told of the deregistration instead of notifying
      a client that is no longer there.

    Each response is printed as a plain request's would be, flushed at once;
    with ``--json``, one JSON object per line.
    """
    if stdout_gone():
        raise OutputClosed
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    closed = asyncio.Event()
    unwatch = watch_stdout(loop, closed.set)
    try:
        async with _client(args, trace, tls=tls, dtls=dtls, oscore=credentials) as client:
            observation = client.observe(
                uri,
                method=METHODS_BY_NAME[args.method.upper()],
                payload=payload,
                non=args.non,
                timeout=args.timeout,
                content_format=content_format,
                accept=args.accept,
                options=options,
            )
            async with observation:
                return await _follow(observation, args, stop, closed, trace)
    finally:
        unwatch()
        for number in signals:
            loop.remove_signal_handler(number)


async def _follow(
    observation: Observation,
    args: argparse.Namespace,
    stop: asyncio.Event,
    closed: asyncio.Event,
    trace: Trace | None,
) -> int:
    stopping = asyncio.ensure_future(stop.wait())
    closing = asyncio.ensure_future(closed.wait())
    try:
        count = 0
        while True:
            following = asyncio.ensure_future(anext(observation))
            await asyncio.wait((following, stopping, closing), return_when=asyncio.FIRST_COMPLETED)
            if closing.done() and not following.done() and not stopping.done():
                if count == 0:  # the registration is on its way: its answer comes first
                    await asyncio.wait((following, stopping), return_when=asyncio.FIRST_COMPLETED)
                if not following.done() and not stopping.done():
                    following.cancel()
                    with suppress(asyncio.CancelledError, StopAsyncIteration):
                        await following
                    if trace is not None:
                        trace.note("stdout closed: deregistering")
                    raise OutputClosed
                # an answer: handled as any other, and writing it raises OutputClosed
            if not following.done():
                following.cancel()
                with suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                if trace is not None:
                    trace.note("interrupted: deregistering")
                return EXIT_OK
            try:
                response = following.result()
            except StopAsyncIteration:
                return EXIT_OK
            count += 1
            status = present(response, args, trace, lines=True)
            if response.observe is None:
                if status == EXIT_OK:
                    if count == 1:
                        diagnostics.line(
                            "coapkit: the resource is not observable: "
                            "the server answered without Observe"
                        )
                    else:
                        diagnostics.line("coapkit: the server ended the observation")
                return status
            if args.count is not None and count >= args.count:
                return EXIT_OK
    finally:
        stopping.cancel()
        closing.cancel()


# -- output ----------------------------------------------------------------------------------


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


def write_output(name: str, payload: bytes) -> None:
    """``-o FILE``: the payload's bytes, as they are; ``-o -`` writes them to stdout."""
    if name == "-":
        output.write(payload)
        return
    try:
        Path(name).write_bytes(payload)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LocalFileError(f"cannot write the output file {name!r}: {reason}") from None


def present(
    response: Response,
    args: argparse.Namespace,
    trace: Trace | None = None,
    *,
    lines: bool = False,
) -> int:
    """Print ``response`` as the options ask and return the exit status.

    stdout gets the payload (pretty-printed, or as JSON with ``--json``:
    indented, or with ``lines`` one object on one line, as ``--observe``
    prints each notification); stderr gets the code when it is an error,
    with its diagnostic payload, and, for a success without payload other
    than 2.05, the code and any Location so that a command never seems to
    have done nothing.  ``-o`` receives the payload of a success only (an
    error never overwrites it), and only of one that carries a representation:
    after a 2.03 Valid (the ETag the user sent still matches) or a 2.04 with
    no payload, FILE keeps what it had, and the stderr line says so.

    The status is the response's: a closed stderr changes nothing, and a
    closed stdout (OutputClosed, status 10) ends a success only; an error
    keeps its own status, its code having gone to stderr.
    """
    status = response_status(response.code)
    as_json = (
        json.dumps(response_json(response), indent=None if lines else 2, ensure_ascii=False)
        if args.json
        else None
    )
    if status != EXIT_OK:
        with suppress(OutputClosed):
            if as_json is not None:
                output.text(as_json)
        diagnostic = _diagnostic_text(response)
        line = code_name(response.code)
        line = f"{line}: {diagnostic}" if diagnostic else line
        limit = response.options.size1 if response.code == Code.REQUEST_ENTITY_TOO_LARGE else None
        if limit is not None:  # RFC 7959 §4: the largest body the server takes
            line += f" (the server takes at most {limit} bytes)"
        diagnostics.line(line)
        if diagnostic is None and as_json is None:
            with suppress(OutputClosed):
                _show_payload(response)
        return status
    if as_json is not None:
        output.text(as_json)
    output_file = getattr(args, "output", None)
    # A success without payload other than 2.05 (2.03 Valid after an ETag check, 2.04
    # Changed...) has no representation to write: -o FILE is left as it was.
    no_representation = not response.payload and response.code != Code.CONTENT
    untouched = no_representation and output_file not in (None, "-")
    if output_file is not None and not untouched:
        write_output(output_file, response.payload)
        if trace is not None and output_file != "-":
            trace.note(f"wrote {len(response.payload)} bytes to {output_file}")
    elif output_file is None and as_json is None:
        _show_payload(response)
    if no_representation and (as_json is None or untouched):
        line = code_name(response.code)
        if untouched:
            line += f": {output_file} left as it was"
        location = _location(response)
        diagnostics.line(f"{line}  Location: {location}" if location else line)
    return status


def _show_payload(response: Response) -> None:
    rendered = render_payload(response.payload, response.content_format)
    output.text(rendered.text)
    if rendered.note:
        diagnostics.line(f"coapkit: note: {rendered.note}")


# -- ping and discover ----------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> int:
    """``coapkit ping URI``: an empty CON; the peer's RST proves a CoAP endpoint is there.
    Over a connection (coap+tcp, coap+ws...) a Ping signal, answered by a Pong; nothing
    is retransmitted there, so the wait is bounded by the connection layer's own limit
    for a Pong (``StreamConfig.ping_timeout``, 20 s) unless ``--timeout`` says otherwise."""
    uri = check_uri(args.uri)
    loop = loops.choose_loop(args.loop)
    tls, dtls = client_security(args, uri)
    trace = _tracer(args)

    timeout = args.timeout
    if timeout is None and uri.transport != "udp":  # no retransmissions to run out of
        timeout = StreamConfig().ping_timeout

    async def run() -> float:
        async with _client(args, trace, tls=tls, dtls=dtls) as client:
            return await client.ping(uri, timeout=timeout)

    rtt = loops.run(run(), loop)
    answer = "RST" if uri.transport == "udp" else "Pong"
    output.text(f"{answer} from {uri.host_string}:{uri.port}: round trip {rtt * 1000:.2f} ms")
    return EXIT_OK


def discovery_uri(uri: CoapUri, rt: str | None, if_: str | None) -> CoapUri:
    """``/.well-known/core`` of the server in ``uri``, with the filters: the URI's query
    (whatever its path: ``coap://host?rt=temp`` filters as ``--rt temp`` does) and then
    ``--rt`` and ``--if``."""
    query = list(uri.query)
    if rt is not None:
        query.append(f"rt={rt}")
    if if_ is not None:
        query.append(f"if={if_}")
    return CoapUri(uri.scheme, uri.host, uri.port, (".well-known", "core"), tuple(query))


def cmd_discover(args: argparse.Namespace) -> int:
    """``coapkit discover URI``: the server's resources as a table (or JSON)."""
    target = discovery_uri(check_uri(args.uri), args.rt, args.if_)
    loop = loops.choose_loop(args.loop)
    tls, dtls = client_security(args, target)
    trace = _tracer(args)
    progress = progress_hook(args)

    async def run() -> Response:
        with client_credentials(args) as credentials:
            async with _client(args, trace, tls=tls, dtls=dtls, oscore=credentials) as client:
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
                    progress=progress,
                )

    response = run_with_progress(run, progress, loop)
    status = response_status(response.code)
    if status != EXIT_OK:
        return present(response, args)
    try:
        links = response.links()
    except LinkFormatError as exc:
        diagnostics.line(f"coapkit: the server's /.well-known/core is not valid link-format: {exc}")
        return EXIT_MALFORMED
    # Filter here too: RFC 6690 §4.1 lets a server ignore the filters.
    filters = [argument for argument in target.query if "=" in argument]
    links = filter_links(links, filters) if filters else links
    if args.json:
        output.text(json.dumps([link_json(link) for link in links], indent=2, ensure_ascii=False))
    elif links:
        output.text(links_table(links))
    else:
        diagnostics.line("no resources" + (" matched the filters" if filters else " listed"))
    return EXIT_OK
