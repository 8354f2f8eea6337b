"""Entry point of the ``coapkit`` command-line tool (also ``python -m coapkit``).

Commands: ``get``, ``post``, ``put``, ``delete``, ``fetch``, ``patch`` and
``ipatch`` send a request (:mod:`coapkit.cli.requests`); ``ping`` and
``discover`` probe a server; ``server`` and ``fileserver`` serve the demo or
plugtest resources or a directory (:mod:`coapkit.cli.serve`); ``decode``
pretty-prints a message given in hex; ``completion`` prints a bash or zsh
completion script (:mod:`coapkit.cli.completion`).  ``coapkit COMMAND --help`` shows each
command's options and examples.

Every failure ends with one readable line on stderr (``coapkit: ...``) and a
non-zero status; a traceback is printed only for an internal error, and only
with ``-v``.  Error responses print their code instead (``4.04 Not Found``).

Closed streams (:mod:`coapkit.cli.console`): the exit status comes from what
happened, never from whether stderr could be written; a closed stderr
changes nothing.  A closed stdout ends the command with status 10 (quietly
when its reader went away, as with ``| head``), unless the response already
set an error status; ``-o FILE`` does not use stdout.

Exit status
-----------
  0    success: a 2.xx response, an answered ping; an observation ended by Ctrl-C
       or --count; a server stopped by Ctrl-C or SIGTERM
  1    internal error (a bug in coapkit; -v shows the traceback)
  2    bad usage: unknown command or option, bad option value, unknown
       content format, bad --timeout, options that do not go together
  3    malformed CoAP message or payload (decode; an unreadable discovery answer;
       a response rejected for an unrecognised critical option)
  4    the server answered 4.xx (client error)
  5    the server answered 5.xx (server error) or a code of no known class
  6    bad URI: malformed, relative, or a scheme that is not supported
  7    network error: unknown host, port or network unreachable, cannot listen
  8    timeout: no response (retransmissions exhausted, or --timeout expired)
  9    the peer answered with a Reset (RST)
  10   local file error: payload file unreadable, -o not writable, DIR missing,
       stdout closed before all the output was written (see below)
  11   block-wise transfer failed: the body could not be reassembled (the
       representation kept changing, blocks did not fit together, too large)
  130  interrupted by Ctrl-C (client commands)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from coapkit import __version__
from coapkit.cli import oscore
from coapkit.cli.arguments import (
    CONGESTION_CHOICES,
    LOOP_CHOICES,
    METHODS,
    content_format_type,
    count_type,
    port_type,
    timeout_type,
)
from coapkit.cli.console import (
    OutputClosed,
    diagnostics,
    hold_standard_descriptors,
    output,
    settle,
)
from coapkit.cli.exits import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    exit_status,
)
from coapkit.cli.rd import add_rd_parser, add_register_options
from coapkit.codec.message import Message
from coapkit.codec.types import MessageType
from coapkit.errors import DecodeError
from coapkit.messaging.parameters import DEFAULT_PARAMETERS

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["EXIT_TABLE", "build_parser", "main"]

EXIT_TABLE = """\
Exit status
-----------
  0    success: a 2.xx response, an answered ping; an observation ended by Ctrl-C
       or --count; a server stopped by Ctrl-C or SIGTERM
  1    internal error (a bug in coapkit; -v shows the traceback)
  2    bad usage: unknown command or option, bad option value, unknown
       content format, bad --timeout, options that do not go together
  3    malformed CoAP message or payload (decode; an unreadable discovery answer;
       a response rejected for an unrecognised critical option)
  4    the server answered 4.xx (client error)
  5    the server answered 5.xx (server error) or a code of no known class
  6    bad URI: malformed, relative, or a scheme that is not supported
  7    network error: unknown host, port or network unreachable, cannot listen
  8    timeout: no response (retransmissions exhausted, or --timeout expired)
  9    the peer answered with a Reset (RST)
  10   local file error: payload file unreadable, -o not writable, DIR missing,
       stdout closed before all the output was written (see below)
  11   block-wise transfer failed: the body could not be reassembled (the
       representation kept changing, blocks did not fit together, too large)
  130  interrupted by Ctrl-C (client commands)
"""

STREAMS = """
Closed streams: stderr carries only diagnostics (error lines, -v traces,
progress bars, the servers' log); when it is closed they are dropped, and the
command runs and exits exactly as it would otherwise.  stdout carries the
results: once its reader has gone away (| head), the command ends at its next
write (--observe at once, between notifications too, deregistering), without
a message, with status 10; an error status the response set (4, 5) is kept.
A stdout that fails otherwise (a full disk, closed from the start) ends it
the same way, with a message.  A command that writes nothing to stdout (-o
FILE, an error whose code goes to stderr, a server) is not affected.
"""

OVERVIEW = """\
examples:
  coapkit get coap://127.0.0.1/hello
  coapkit post coap://[::1]/counter
  coapkit put coap://127.0.0.1/config --payload @config.json
  coapkit get coap://127.0.0.1/multi-format --accept cbor -v
  coapkit get coap://127.0.0.1/time --observe --count 5
  coapkit get coap+tcp://127.0.0.1/hello
  coapkit get coaps+tcp://device.example/status --ca ca.pem
  coapkit get coaps://127.0.0.1/hello --psk-identity dev1 --psk secretkey
  coapkit discover coap://127.0.0.1 --rt Type1
  coapkit ping coap://127.0.0.1
  coapkit server --plugtest --port 5683
  coapkit server --listen coap://[::]:5683 --listen coap+tcp://[::]:5683
  coapkit server --listen coaps://[::]:5684 --psk-identity dev1 --psk secretkey
  coapkit fileserver ./public --write
  coapkit proxy --forward --allow '*.example.com' --http 127.0.0.1:8080
  coapkit decode 44017d34 0a1b2c3d bb74656d7065726174757265
  eval "$(coapkit completion bash)"

"""

#: Examples per request command (``{m}`` is the command).
READ_EXAMPLES = """\
examples:
  coapkit {m} coap://127.0.0.1/hello
  coapkit {m} coap://[::1]:5683/sensors/temp --accept json -v
  coapkit {m} coap://127.0.0.1/items --option Uri-Query=page=2 --option 65000=0x0102
  coapkit {m} coap://127.0.0.1/image --accept png -o image.png
  coapkit {m} coap://127.0.0.1/status --json | jq .code
  coapkit {m} coap+ws://127.0.0.1:8080/hello -v
  coapkit {m} coaps+tcp://127.0.0.1/hello --ca ca.pem --cert me.pem --key me-key.pem
  coapkit {m} coaps://127.0.0.1/hello --psk-identity dev1 --psk 0x7365637265746b6579
"""
WRITE_EXAMPLES = """\
examples:
  coapkit {m} coap://127.0.0.1/echo --payload 'hello'
  coapkit {m} coap://127.0.0.1/data --payload '{{"on": true}}' --content-format json
  coapkit {m} coap://127.0.0.1/data --payload @reading.cbor -v
  echo -n 42 | coapkit {m} coap://127.0.0.1/data --payload - --content-format text
  coapkit {m} coap://127.0.0.1/config --payload @new.json --option If-Match=0x5f2a --json
"""

REQUEST_EPILOG = """
--payload: TEXT is sent as UTF-8 with Content-Format text/plain; @FILE sends
the file's bytes with a Content-Format guessed from its extension (.json 50,
.cbor 60, .xml 41, .txt 0, ...); - (or @-) reads standard input.
--content-format overrides either.

--option NAME=VALUE (repeatable; NAME is a registered name such as Uri-Query
or ETag, or a number): a value starting with 0x is raw hex bytes; otherwise
a registered option takes its registry format (a decimal number for uint
options, Content-Format and Accept also take names; the text for string
options; the text's UTF-8 bytes for opaque ones); an unregistered number
takes the text's UTF-8 bytes.  A bare NAME is an empty value (If-None-Match).

Output: the payload on stdout, pretty-printed by Content-Format (JSON
indented, CBOR as diagnostic notation, link-format one link per line, binary
as a hex dump; -o - writes the raw bytes).  An error response prints its code
on stderr (4.04 Not Found) and sets the exit status (4 or 5); a success
without payload other than 2.05 prints its code (and Location) on stderr.
-o writes the payload of a success only; one without payload other than 2.05
(2.03 Valid after an ETag check, 2.04 Changed) leaves FILE as it was, and
says so on stderr (2.03 Valid: FILE left as it was).  An error response
with Size1 (4.13) shows the server's limit.  --json prints the whole response
as one JSON object: code, code_name, options by name (repeatable options as
lists, opaque values as 0x-hex), content_format, payload (UTF-8 text, or
base64 as payload_encoding says), remote.  A closed stderr changes nothing
(-v then traces nothing); a stdout whose reader went away (| head) ends the
command with status 10 unless the response set 4 or 5; -o FILE never needs
stdout (see coapkit --help).

Large bodies go block-wise (RFC 7959) on their own, both ways; on a
terminal a progress bar on stderr follows transfers of more than a few
blocks (not with -v).  A transfer that cannot be completed ends with
status 11.
"""

OBSERVE_EPILOG = """
--observe (RFC 7641): the first response and then every notification are
printed as they arrive (each like a plain response; with --json one JSON
object per line), flushed at once, until Ctrl-C (exit status 0, after
deregistering) or --count N responses.  A server that does not accept the
observation answers without Observe: that response is printed, a note says
the resource is not observable, and the exit status is its own.  An error
notification (4.04 when the resource is deleted, ...) ends it with its
status.  When stdout's reader goes away (| head -1) it ends at once, between
notifications too, deregistering, with status 10.  --timeout bounds the wait
for the first response only.
  coapkit {m} coap://127.0.0.1/time --observe
  coapkit {m} coap://127.0.0.1/obs --observe --count 3 --json
"""


SECURITY_EPILOG = """
Schemes: coap:// (UDP, default port 5683), coaps:// (DTLS, 5684), coap+tcp://
(TCP, 5683), coaps+tcp:// (TLS, 5684), coap+ws:// (WebSocket, 80) and
coaps+ws:// (WebSocket over TLS, 443); coaps:// needs the dtls extra (pip
install 'coapkit[dtls]'), the WebSocket ones the ws extra (pip install
'coapkit[ws]'); without it one line says so, status 6.  Over TCP and
WebSockets a connection opens with a CSM; -v shows each frame (CSM,
requests, Ping and Pong, Release); over DTLS it shows the records and the
CoAP messages inside them.

DTLS (coaps://): --psk-identity ID --psk KEY (KEY as text, or hex after 0x)
for a pre-shared key, or certificates: the server's must be issued by a CA
of --ca (or of the system's trust store) and name the URI's host; --cert and
--key present a client certificate.  Given both, both are offered and the
server chooses.
  coapkit get coaps://127.0.0.1/hello --psk-identity dev1 --psk secretkey
  coapkit get coaps://device.example/status --ca ca.pem
TLS (coaps+tcp, coaps+ws): certificates as for DTLS; pre-shared keys are
refused there (status 2: Python's ssl module has no TLS-PSK).  --insecure
skips the name check, and says so.  A failed handshake is one line naming the
cause (a PSK identity the server does not know, another key, a CA not
trusted, another name, expired, our certificate refused...), status 7.
Material that cannot be used (no certificate in the file, the key of another
certificate, an encrypted key) is status 2; a file that cannot be read, 10.
Security options given for a URI without TLS or DTLS are ignored, with a
warning.

--credentials FILE: aiocoap's credentials format, a JSON object that maps URI
patterns (* matches anything) and :labels to entries, e.g.
  {"coaps://device.example/*": {"dtls": {"psk": {"ascii": "secretkey"},
                                         "client-identity": {"ascii": "dev1"}}},
   "coaps+tcp://device.example/*": {"tlscert": {"certfile": "ca.pem"}},
   "coaps+tcp://*": ":lab",
   ":lab": {"tls": {"cert": "me.pem", "key": "me-key.pem", "ca": "lab-ca.pem"}}}
The longest pattern that matches the URI applies (a :label refers to another
entry); options on the command line override what it gives.  Entries of
aiocoap's "dtls" kind (psk and client-identity, each {"ascii": ...},
{"hex": ...} or, coapkit's addition, a plain string) and "tlscert" kind
(certfile: the CAs that verify the server), and of coapkit's "tls" kind
(cert, key, ca, insecure; for TLS and DTLS) are used; "oscore" entries are
OSCORE's (below); others (edhoc-oscore, any-of, all-of) are refused in one
line naming the entry (status 2).  File names are relative to the current
directory, as in aiocoap.
"""

LISTEN_EPILOG = """
--listen URI (repeatable): serve the same resources on each URI, coap://
(UDP), coaps:// (DTLS; the dtls extra: pip install 'coapkit[dtls]'),
coap+tcp://, coaps+tcp:// (TLS), coap+ws:// and coaps+ws:// (WebSocket at
/.well-known/coap; the ws extra: pip install 'coapkit[ws]').  Port 0 picks a
free port; the start-up line names every bound URI (serving CoAP on
coap://127.0.0.1:5683, coaps://127.0.0.1:5684).  Without --listen, --bind
and --port mean --listen coap://BIND:PORT.

DTLS listeners (coaps://) need a pre-shared key or a certificate (status 2
without): --psk-identity ID --psk KEY accepts a client presenting that
identity with that key (KEY as text, or hex after 0x); --cert and --key
serve certificate suites.  TLS listeners (coaps+tcp, coaps+ws) need --cert
and --key; pre-shared keys are refused with a TLS listener alone (status 2).
--ca makes client certificates mandatory on both: a client must present one
issued by those CAs (pre-shared-key clients of a DTLS listener are not
asked).  A failed handshake is logged in one line per client and cause,
never as a stack trace.

--credentials FILE (aiocoap's JSON format): every "dtls" entry is a client
identity the DTLS listeners accept (aiocoap's server looks identities up
the same way), and the "tls" entry (cert, key, ca) whose pattern matches the
listeners' URIs is the server's certificate, e.g.
  {":dev1": {"dtls": {"psk": {"ascii": "secretkey"},
                      "client-identity": {"ascii": "dev1"}}},
   ":dev2": {"dtls": {"psk": {"hex": "0a0b0c0d"}, "client-identity": "dev2"}},
   "coaps+tcp://*": {"tls": {"cert": "server.pem", "key": "server-key.pem"}}}
Options on the command line override it; "oscore" entries are OSCORE's
(below); entries of other kinds (edhoc-oscore, any-of, all-of; tlscert,
which is a client's) are refused in one line naming the entry (status 2).
"""

SERVER_EPILOG = """
Amplification defence (RFC 7252 §11.3, RFC 9175 §2.4), on by default: to
a source that has not proved its address, a response more than 3 times the
size of its request (and over 136 bytes) is replaced by 4.01 Unauthorized
with an Echo option; the client repeats its request with the Echo value
and is then served in full (for 10 minutes).  coapkit's and libcoap's
clients do so by themselves; for clients that cannot (aiocoap 0.4.17),
--no-amplification-limit switches the defence off.
"""


#: --timeout's help, with the client's own bounds (RFC 7252 §4.8.2: MAX_TRANSMIT_WAIT for a
#: CON, EXCHANGE_LIFETIME for a separate response after an empty ACK, NON_LIFETIME for a
#: NON; coapkit.exchanges.client) taken from the parameters the client uses by default.
TIMEOUT_HELP = (
    "give up after this long (default: CoAP's own timing: after the retransmissions, "
    "about {p.max_transmit_wait:.0f} s"
)
TIMEOUT_NON_HELP = (
    ", or {p.exchange_lifetime:.0f} s once the server has acknowledged the request and "
    "answers separately; {p.non_lifetime:.0f} s for a request sent with --non)"
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2).

    Its output goes through :mod:`coapkit.cli.console` like the commands':
    help and version to stdout (a closed one: status 10), usage errors to
    stderr, best effort (a closed one: still status 2).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if not message:
            return
        if file is None or file is sys.stderr:
            diagnostics.write(message)
        else:
            output.text(message)


def command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The function ``name`` of ``coapkit.cli.<module>``, imported when the command runs.

    ``--help``, usage errors and ``decode`` then never import the asyncio
    client and server.
    """

    def run(args: argparse.Namespace) -> int:
        function = getattr(importlib.import_module(f"coapkit.cli.{module}"), name)
        status: int = function(args)
        return status

    run.__name__ = name
    return run


def cmd_decode(args: argparse.Namespace) -> int:
    text = " ".join(args.hex) if args.hex else sys.stdin.read()
    try:
        data = _parse_hex(text)
    except ValueError:
        diagnostics.line("coapkit: error: not a hex string (expected e.g. 44017d34...)")
        return EXIT_USAGE
    try:
        message = Message.decode(data)
    except DecodeError as exc:
        where = (
            f" (type {MessageType(exc.mtype).name}, MID {exc.mid})" if exc.mtype is not None else ""
        )
        diagnostics.line(f"coapkit: malformed CoAP message: {exc.reason}{where}")
        return EXIT_MALFORMED
    from coapkit.cli.render import format_message

    output.text(format_message(message))
    return EXIT_OK


def _parse_hex(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    return bytes.fromhex(cleaned)


def _add_common(parser: argparse.ArgumentParser, *, non: bool = False) -> None:
    """URI, --timeout, -v and --loop; ``non``: the command has --non (its timeout differs)."""
    parser.add_argument(
        "uri",
        metavar="URI",
        help="SCHEME://host[:port]/path[?query]; SCHEME is coap (UDP), coaps (DTLS), "
        "coap+tcp, coaps+tcp (TLS), coap+ws or coaps+ws (WebSockets)",
    )
    parser.add_argument(
        "--timeout",
        type=timeout_type,
        metavar="SECONDS",
        help=TIMEOUT_HELP.format(p=DEFAULT_PARAMETERS)
        + (TIMEOUT_NON_HELP.format(p=DEFAULT_PARAMETERS) if non else ")"),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="trace every datagram on stderr (type, code, MID, token, options, payload size, "
        "retransmissions), and with --congestion cocoa the server's round-trip estimate at "
        "the end; a traceback on internal errors",
    )
    _add_congestion(parser)
    _add_loop(parser)
    _add_security(parser, server=False)
    oscore.add_client_arguments(parser)  # --credentials is _add_security's: nothing added


def _add_security(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """The security flags (docs/transports.md), the same on clients and servers where they
    mean the same; read by :mod:`coapkit.cli.security`."""
    if server:
        cert_help = (
            "the server's certificate (PEM; may hold its chain, and its key): needed by "
            "coaps+tcp:// and coaps+ws:// listeners, and by coaps:// ones without --psk"
        )
        ca_help = (
            "require a client certificate issued by these CAs (a PEM file, or a directory "
            "of them); clients without one are refused"
        )
        psk_identity_help = "accept this pre-shared key identity, with --psk (coaps:// listeners)"
    else:
        cert_help = (
            "a client certificate (PEM) to present to coaps://, coaps+tcp:// and coaps+ws:// "
            "servers"
        )
        psk_identity_help = "present this pre-shared key identity, with --psk (coaps://)"
        ca_help = (
            "trust server certificates issued by these CAs (a PEM file, or a directory of "
            "them) instead of the system's trust store"
        )
    parser.add_argument("--cert", metavar="PEM", help=cert_help)
    parser.add_argument(
        "--key",
        metavar="PEM",
        help="the private key of --cert (PEM, unencrypted; not needed when the --cert file "
        "holds it)",
    )
    parser.add_argument("--ca", metavar="PEM", help=ca_help)
    if not server:
        parser.add_argument(
            "--insecure",
            action="store_true",
            help="do not check that the server's certificate names the URI's host (its chain "
            "is still verified); says so on stderr",
        )
    parser.add_argument(
        "--psk-identity",
        metavar="ID",
        help=psk_identity_help,
    )
    parser.add_argument(
        "--psk",
        metavar="KEY",
        help="the pre-shared key of --psk-identity: text, or hex after 0x (DTLS: coaps://)",
    )
    parser.add_argument(
        "--credentials",
        metavar="FILE",
        help="security material per URI pattern or client label, in aiocoap's JSON "
        "credentials format: DTLS pre-shared keys, TLS and DTLS certificates, OSCORE "
        "contexts (see below)",
    )


def _add_congestion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--congestion",
        choices=CONGESTION_CHOICES,
        default="fixed",
        help="retransmission timing: RFC 7252's fixed timers (fixed, the default) or cocoa: "
        "adaptive, from round-trip estimates per peer, with PROBING_RATE towards peers "
        "that do not answer",
    )


def _add_loop(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="event loop: uvloop when installed (auto, the default), or force one",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = Parser(
        prog="coapkit",
        description="CoAP for the command line: requests (like curl), servers and debugging aids.",
        epilog=OVERVIEW + EXIT_TABLE + STREAMS,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"coapkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for method in METHODS:
        name = "iPATCH" if method == "ipatch" else method.upper()
        article = "an" if name[0] in "AEIOU" or name == "iPATCH" else "a"
        request = sub.add_parser(
            method,
            help=f"send {article} {name} request and print the response",
            description=f"Send {article} {name} request to URI and print the response payload.",
            epilog=(READ_EXAMPLES if method in ("get", "delete") else WRITE_EXAMPLES).format(
                m=method
            )
            + REQUEST_EPILOG
            + (OBSERVE_EPILOG.format(m=method) if method in ("get", "fetch") else "")
            + SECURITY_EPILOG
            + oscore.CLIENT_HELP,
            formatter_class=formatter,
        )
        _add_common(request, non=True)
        request.add_argument(
            "--payload", metavar="TEXT|@FILE|-", help="the request payload (see below)"
        )
        request.add_argument(
            "--content-format",
            type=content_format_type,
            metavar="CF",
            help="Content-Format of the payload: a number or a name (json, cbor, text/plain...)",
        )
        request.add_argument(
            "--accept", type=content_format_type, metavar="CF", help="ask for this Content-Format"
        )
        request.add_argument(
            "--option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="add an option, e.g. Uri-Query=a=1, ETag=0x0a0b, 65000=0x0102 (repeatable)",
        )
        request.add_argument("--non", action="store_true", help="send as NON (no retransmission)")
        if method in ("get", "fetch"):
            request.add_argument(
                "--observe",
                action="store_true",
                help="observe the resource (RFC 7641): print the response and then each "
                "notification as it arrives, until Ctrl-C or --count",
            )
            request.add_argument(
                "--count",
                type=count_type,
                metavar="N",
                help="with --observe: stop (and deregister) after N responses",
            )
        else:
            request.set_defaults(observe=False, count=None)
        request.add_argument(
            "--json", action="store_true", help="print the response as a JSON object"
        )
        request.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="write the payload of a success to FILE ('-': raw bytes to stdout)",
        )
        request.set_defaults(func=command("requests", "cmd_request"), method=method)

    ping = sub.add_parser(
        "ping",
        help="check that a CoAP endpoint answers (empty CON, expects RST; Ping, expects Pong)",
        description="Send a CoAP ping (an empty CON message; over coap+tcp and coap+ws a "
        "Ping signal) and report the round trip of the RST (or Pong).",
        epilog="examples:\n  coapkit ping coap://127.0.0.1\n  coapkit ping coap://[::1]:5684 "
        "--timeout 2 -v\n  coapkit ping coap+tcp://127.0.0.1\n"
        "  coapkit ping coaps://127.0.0.1 --psk-identity dev1 --psk secretkey\n\n"
        "The path of URI is ignored: a ping goes to an endpoint.  Over coap+tcp,\n"
        "coaps+tcp, coap+ws and coaps+ws it is a Ping signal (RFC 8323 §5.4) that the\n"
        "server answers with a Pong; nothing is retransmitted there, so without\n"
        "--timeout the wait ends after 20 s.\n" + SECURITY_EPILOG,
        formatter_class=formatter,
    )
    _add_common(ping)
    ping.set_defaults(func=command("requests", "cmd_ping"))

    discover = sub.add_parser(
        "discover",
        help="list a server's resources (GET /.well-known/core)",
        description="GET /.well-known/core (RFC 6690) and show the resources as a table: "
        "path, rt, if, ct (with names), sz, obs and title.",
        epilog="examples:\n  coapkit discover coap://127.0.0.1\n"
        "  coapkit discover coap://127.0.0.1 --rt 'Type*' --if If1\n"
        "  coapkit discover coap://127.0.0.1 --json\n\n"
        "  coapkit discover coap+tcp://127.0.0.1\n\n"
        "--rt and --if are sent as RFC 6690 query filters (a trailing * matches a "
        "prefix) and applied again to the answer, for servers that ignore them; so is\n"
        "the query of URI (coap://127.0.0.1?rt=Type1&ct=40).  The path of URI is\n"
        "ignored: discovery always asks /.well-known/core.\n" + SECURITY_EPILOG,
        formatter_class=formatter,
    )
    _add_common(discover)
    discover.add_argument("--rt", metavar="TYPE", help="only resources of this resource type")
    discover.add_argument(
        "--if", dest="if_", metavar="IF", help="only resources with this interface"
    )
    discover.add_argument("--json", action="store_true", help="print the links as JSON")
    discover.set_defaults(func=command("requests", "cmd_discover"))

    for name, helptext, description, epilog in (
        (
            "server",
            "serve the demo resources, or the plugtest set with --plugtest",
            "Serve CoAP: the demo resources (/hello, /counter, /time, /echo; /time is "
            "observable and changes every second), or with --plugtest the ETSI plugtest "
            "resource set (block-wise /large*, observable /obs*).  Logs one line per "
            "request on stderr; Ctrl-C or SIGTERM stops it (exit status 0).",
            "examples:\n  coapkit server\n  coapkit server --plugtest --port 5683\n"
            "  coapkit server --bind 127.0.0.1 --port 0 -v   (port 0: any free port)\n"
            "  coapkit server --workers 4                    (4 processes, one port)\n"
            "  coapkit server --plugtest --listen coap://[::]:5683 \\\n"
            "                 --listen coap+tcp://[::]:5683 --listen coap+ws://[::]:8080\n"
            "  coapkit server --listen coaps+tcp://[::]:5684 \\\n"
            "                 --cert server.pem --key server-key.pem\n"
            "  coapkit server --listen coaps://[::]:5684 --psk-identity dev1 --psk secretkey\n"
            "  coapkit server --listen coaps://[::]:5684 --credentials clients.json\n"
            "  coapkit server --credentials server.json --require-oscore /secret\n"
            + SERVER_EPILOG
            + LISTEN_EPILOG
            + oscore.SERVER_HELP
            + "\n--workers N: N worker processes share the port, or each --listen URI's port\n"
            "(SO_REUSEPORT, for TCP and WebSocket listeners too; the kernel spreads\n"
            "clients over them, each client, or connection, always reaching the same\n"
            "worker, which keeps a DTLS client's session).  A port in use, by another\n"
            "--workers group too, is refused (exit status 7).\n"
            "The parent supervises: Ctrl-C or SIGTERM stops them all (exit status 0);\n"
            "if one ends by itself, the others are stopped.  Each worker has its own\n"
            "resource state (counters, stored values).\n",
        ),
        (
            "fileserver",
            "serve a directory (GET; PUT and DELETE with --write)",
            "Serve the files of DIR: GET a file (Content-Format from its extension, "
            "ETag, 2.03 revalidation; large files go block-wise), GET a directory (a "
            "link-format listing), and with --write PUT (up to 16 MiB, in blocks) and "
            "DELETE.  Nothing outside DIR is ever served, nor, unless --dotfiles, a "
            "name starting with '.' (.env, .git/...).",
            "examples:\n  coapkit fileserver ./public\n"
            "  coapkit fileserver /srv/coap --port 5683 --write\n"
            "  coapkit fileserver ./public --listen coap://[::]:5683 --listen coap+tcp://[::]:5683\n"
            "  coapkit get coap://127.0.0.1/notes.txt\n"
            + SERVER_EPILOG
            + LISTEN_EPILOG
            + oscore.SERVER_HELP,
        ),
    ):
        server = sub.add_parser(
            name, help=helptext, description=description, epilog=epilog, formatter_class=formatter
        )
        if name == "fileserver":
            server.add_argument("dir", metavar="DIR", help="the directory to serve")
            server.add_argument(
                "--write", action="store_true", help="allow PUT and DELETE of files"
            )
            server.add_argument(
                "--dotfiles",
                action="store_true",
                help="serve names starting with '.' too (.env, .git: hidden by default, "
                "not listed and answered 4.04)",
            )
        else:
            server.add_argument(
                "--plugtest", action="store_true", help="serve the ETSI plugtest resources"
            )
            server.add_argument(
                "--workers",
                type=count_type,
                default=1,
                metavar="N",
                help="serve from N processes sharing the port (default: 1)",
            )
            server.add_argument(
                "--obs-period",
                type=timeout_type,
                metavar="SECONDS",
                help="how often the observable resources change (default: /time 1 s; "
                "with --plugtest /obs, /obs-non and /obs-large 5 s)",
            )
            add_register_options(server)  # --register RD-URI (coapkit.cli.rd)
        server.add_argument(
            "--listen",
            action="append",
            metavar="URI",
            help="serve on this URI (repeatable): coap://ADDR:PORT, coaps://, coap+tcp://, "
            "coaps+tcp://, coap+ws:// or coaps+ws://; port 0 picks a free port (see below)",
        )
        server.add_argument(
            "--bind",
            metavar="ADDR",
            help="without --listen: address to listen on (default: :: = every IPv6 and IPv4 "
            "address)",
        )
        server.add_argument(
            "--port",
            type=port_type,
            metavar="N",
            help="without --listen: UDP port (default: 5683)",
        )
        server.add_argument(
            "--no-amplification-limit",
            action="store_true",
            help="send large responses to any source at once, without the Echo check (see below)",
        )
        server.add_argument(
            "--echo-key-file",
            metavar="FILE",
            help="make Echo values with the key in FILE (16 bytes or more), so that every "
            "process behind one load balancer accepts the others' (with --workers: one "
            "random key for all of them unless given)",
        )
        _add_congestion(server)
        server.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="trace every datagram; debug logging; with --congestion cocoa, the peers' "
            "round-trip estimates when stopping",
        )
        server.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no line per request on stderr (the start and stop lines, warnings and "
            "errors still go there)",
        )
        _add_loop(server)
        _add_security(server, server=True)
        oscore.add_server_arguments(server)  # --require-oscore (--credentials is there)
        server.set_defaults(
            func=command("serve", "cmd_fileserver" if name == "fileserver" else "cmd_server"),
            interrupt_status=EXIT_OK,
        )

    rd = add_rd_parser(sub, formatter)  # coapkit rd (coapkit.cli.rd)
    _add_security(rd, server=True)  # its coaps:// and TLS listeners: the servers' flags
    rd.set_defaults(func=command("rd", "cmd_rd"), interrupt_status=EXIT_OK)

    from coapkit.cli.proxy import add_parser as add_proxy_parser

    add_proxy_parser(sub, formatter)

    decode = sub.add_parser(
        "decode",
        help="decode a CoAP message given in hex",
        description="Decode and pretty-print a CoAP message given in hex (or on stdin).",
        epilog="examples:\n  coapkit decode 44017d34 0a1b2c3d bb74656d7065726174757265\n"
        "  coapkit decode 44:01:7d:34:0a:1b:2c:3d\n"
        "  echo 6445 7d34 0a1b2c3d c0 ff 6869 | coapkit decode",
        formatter_class=formatter,
    )
    decode.add_argument("hex", nargs="*", help="message bytes in hex; spaces and colons allowed")
    decode.set_defaults(func=cmd_decode)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a script that makes SHELL complete coapkit's commands, options "
        "and their values (event loops, Content-Format names, files).  It is generated "
        "from the tool's own option definitions.",
        epilog="examples:\n"
        '  eval "$(coapkit completion bash)"          # in ~/.bashrc\n'
        "  coapkit completion bash > ~/.local/share/bash-completion/completions/coapkit\n"
        '  eval "$(coapkit completion zsh)"           # in ~/.zshrc, after compinit\n'
        "  coapkit completion zsh > ~/.zfunc/_coapkit  # a directory of your $fpath",
        formatter_class=formatter,
    )
    completion.add_argument("shell", metavar="SHELL", choices=("bash", "zsh"), help="bash or zsh")
    completion.set_defaults(func=command("completion", "cmd_completion"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coapkit ARGV``; the exit status (see the table in the module doc).

    The status comes from the outcome alone: what goes to stderr is best
    effort (:mod:`coapkit.cli.console`) and cannot change it.  A closed
    stdout raises OutputClosed (status 10, a LocalFileError) out of the
    command, after the context managers on the way out (an observation's
    deregistration) have run.  Before returning, both streams are flushed
    so that nothing is left for the interpreter to fail on at exit.
    """
    hold_standard_descriptors()
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        result: int = args.func(args)
        return result
    except KeyboardInterrupt:
        status: int = getattr(args, "interrupt_status", EXIT_INTERRUPTED)
        if status != EXIT_OK:
            diagnostics.line("coapkit: interrupted")
        return status
    except Exception as exc:
        status, message = exit_status(exc)
        if not (isinstance(exc, OutputClosed) and exc.quiet):
            diagnostics.line(f"coapkit: {message}")
        if status == EXIT_INTERNAL and getattr(args, "verbose", False):
            diagnostics.traceback()
        return status
    finally:
        settle()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
