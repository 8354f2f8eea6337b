"""``coapkit proxy``: a forward, reverse and HTTP cross proxy (docs/proxy.md).

The shape is the one every coapkit service has (docs/transports.md): ``--listen
URI`` as often as needed, read by :func:`coapkit.cli.serve.listen_uris` (without it,
``--bind``/``--port`` mean ``--listen coap://BIND:PORT``), with the server's security
flags for TLS listeners (``--cert``, ``--key``, ``--ca``, ``--credentials``);
``--forward`` to forward Proxy-Uri and Proxy-Scheme requests to any host and
port, ``--allow HOST[:PORT]`` to forward to those only, ``--reverse
PREFIX=URI`` for reverse rules and ``--http HOST:PORT`` for the RFC 8075 cross
proxy.  It serves like ``coapkit server`` does (:mod:`coapkit.cli.serve`): one
log line per request on stderr, ``-v`` for every datagram, the amplification
defence on, Ctrl-C or SIGTERM stop it with status 0.

The start-up log says what the proxy will do, since an open forward proxy is
an amplifier and a port scanner (SECURITY.md): ``--forward`` without
``--allow`` logs a warning that any host and port, loopback included, can be
reached through it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from coapkit.cli.arguments import port_type, timeout_type

logger = logging.getLogger("coapkit.proxy")

DESCRIPTION = (
    "Proxy CoAP requests: forward them to the target their Proxy-Uri (or "
    "Proxy-Scheme) names (--forward, --allow), map path prefixes to upstream "
    "servers (--reverse), and let HTTP clients in (--http, RFC 8075).  Upstream, "
    "any scheme coapkit speaks (coap, coap+tcp, coaps+tcp, coap+ws, coaps+ws; "
    "http and https); responses are cached (RFC 7252 §5.6) and observations "
    "shared.  Logs one line per request on stderr; Ctrl-C or SIGTERM stops it "
    "(exit status 0)."
)

EPILOG = """\
examples:
  coapkit proxy --forward --allow '*.example.com' --allow 127.0.0.1:5683
  coapkit proxy --listen coap://[::]:5683 --listen coap+tcp://[::]:5683 --forward
  coapkit proxy --listen coaps+tcp://[::]:5684 --cert proxy.pem --key proxy-key.pem --forward
  coapkit proxy --reverse /sensors=coap+tcp://10.0.0.5/s --http 127.0.0.1:8080
  coapkit get coap://127.0.0.1/x --option Proxy-Uri=coap://sensor.example.com/temp
  curl http://127.0.0.1:8080/hc/coap://sensor.example.com/temp

--forward: requests with Proxy-Uri or Proxy-Scheme are sent to the host and
port they name, any of them, loopback included (the start-up log warns).
--allow HOST[:PORT] (repeatable; * and ? match as in shell patterns, an IPv6
host in brackets) forwards to those only: other targets get 5.05 and nothing
is sent.  --allow turns forwarding on by itself.  An open forward proxy lets
anyone send requests from this host: an amplifier and a port scanner.

--reverse PREFIX=URI (repeatable): a request under the path PREFIX goes to URI
with the rest of its path and its query appended: --reverse /up=coap://h/base
sends /up/x?q to coap://h/base/x?q.  A PREFIX without a leading / is a host
name matched against the request's Uri-Host.  --reverse /=URI sends every
other request to URI (a default upstream).  The longest prefix wins.

--http HOST:PORT: HTTP clients in (RFC 8075): GET
http://HOST:PORT/hc/coap://h/path is a forward request for coap://h/path;
other paths go through the --reverse rules.  Status codes, Content-Type,
ETag and Cache-Control are mapped; Accept: text/event-stream observes the
resource as Server-Sent Events; a browser gets a page that follows it live.
Needs the http extra (pip install 'coapkit[http]').

Hop-Limit (RFC 8768): decremented (a request without one counts as 16); a
request arriving with 1 gets 5.08 naming this proxy, so that loops end.  Upstream
failures are 5.02 (unreachable, reset) or 5.04 (no answer within --timeout).
"""


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """The ``proxy`` command's options, on the tool's subcommand parser ``sub``."""
    from coapkit.cli.main import _add_security, command

    parser: argparse.ArgumentParser = sub.add_parser(
        "proxy",
        help="forward, reverse and HTTP cross proxy, with a cache",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="URI",
        help="serve on this URI: coap://ADDR:PORT, coaps:// (DTLS), coap+tcp://, coaps+tcp://, "
        "coap+ws://, coaps+ws:// (repeatable; port 0: any free port)",
    )
    parser.add_argument(
        "--bind",
        metavar="ADDR",
        help="without --listen: address to listen on (default: :: = every address)",
    )
    parser.add_argument(
        "--port",
        type=port_type,
        metavar="N",
        help="without --listen: UDP port (default: 5683)",
    )
    parser.add_argument(
        "--forward",
        action="store_true",
        help="forward requests with Proxy-Uri or Proxy-Scheme to any host and port",
    )
    parser.add_argument(
        "--upstream-credentials",
        metavar="FILE",
        help="security material of the proxy's own requests upstream, in aiocoap's "
        'credentials format: {"coaps://origin/*": {"dtls": {"psk": ..., "client-identity": '
        "...}}}, or tls/tlscert entries for certificates (--credentials and the other "
        "security flags are the listeners')",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="forward only to targets matching this pattern (repeatable; * wildcards)",
    )
    parser.add_argument(
        "--reverse",
        action="append",
        default=[],
        metavar="PREFIX=URI",
        help="send requests under PREFIX to URI (repeatable; see below)",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="accept HTTP clients on HOST:PORT (RFC 8075 cross proxy; port 0: any free port)",
    )
    parser.add_argument(
        "--timeout",
        type=timeout_type,
        default=60.0,
        metavar="SECONDS",
        help="answer 5.04 when the upstream has not answered within this (default: 60)",
    )
    parser.add_argument(
        "--cache-entries",
        type=int,
        default=1024,
        metavar="N",
        help="responses the cache keeps (default: 1024; 0: no cache)",
    )
    parser.add_argument(
        "--no-amplification-limit",
        action="store_true",
        help="send large responses to any source at once, without the Echo check",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="trace every datagram; debug logging"
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop when installed (auto, the default), or force one",
    )
    _add_security(parser, server=True)  # --cert, --key, --ca... for TLS listeners
    parser.set_defaults(func=command("proxy", "cmd_proxy"), interrupt_status=0)
    return parser


def _http_address(text: str) -> tuple[str, int]:
    from coapkit.cli.exits import UsageError

    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or int(port) > 0xFFFF:
        raise UsageError(f"--http takes HOST:PORT (127.0.0.1:8080, [::1]:8080), not {text!r}")
    return host, int(port)


def cmd_proxy(args: argparse.Namespace) -> int:
    """``coapkit proxy``."""
    from coapkit.cache import CacheConfig
    from coapkit.cli import loops
    from coapkit.cli.exits import EXIT_OK, UsageError
    from coapkit.cli.security import server_security, upstream_dtls
    from coapkit.cli.serve import _cannot_listen, configure_logging, listen_uris
    from coapkit.client import Client
    from coapkit.errors import NetworkError
    from coapkit.exchanges.amplification import AmplificationConfig
    from coapkit.proxy import AllowList, ProxyConfig, ProxySite, parse_reverse_rule
    from coapkit.server import Server
    from coapkit.transports import MissingExtra

    loop_name = loops.choose_loop(args.loop)
    if not (args.forward or args.allow or args.reverse):
        raise UsageError("nothing to proxy: give --forward, --allow or --reverse")
    try:
        allow = AllowList(args.allow) if args.allow else None
        rules = [parse_reverse_rule(text) for text in args.reverse]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.cache_entries < 0:
        raise UsageError("--cache-entries cannot be negative")
    uris = listen_uris(args)  # a bad URI: status 6 before anything starts
    ssl_context, dtls = server_security(args, uris)  # unusable material: status 2, first
    upstream = None
    if args.upstream_credentials is not None:
        upstream = upstream_dtls(args.upstream_credentials)  # checked before anything starts
    http_address = _http_address(args.http) if args.http else None
    if http_address is not None:
        from coapkit.proxy.extra import require_aiohttp

        try:
            require_aiohttp()
        except MissingExtra as exc:
            raise UsageError(f"--http: {exc}") from None
    configure_logging(args.verbose)
    config = ProxyConfig(timeout=args.timeout, cache=CacheConfig(max_entries=args.cache_entries))
    amplification = None if args.no_amplification_limit else AmplificationConfig()

    async def run() -> None:
        client = None if not upstream else Client(dtls=upstream)
        site = ProxySite(
            forward=args.forward, allow=allow, reverse=rules, config=config, client=client
        )
        server = Server(
            site,
            listen=[str(uri) for uri in uris],
            log_requests=True,
            amplification=amplification,
            ssl_context=ssl_context,
            dtls=dtls,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        http: Any = None
        try:
            try:
                await server.start()
            except OSError as exc:
                raise _cannot_listen(args, uris, exc) from None
            site.name = server.listeners[0].uri.partition("://")[2]
            if http_address is not None:
                from coapkit.proxy.http import HttpCrossProxy

                http = HttpCrossProxy(
                    site, host=http_address[0], port=http_address[1], log_requests=True
                )
                try:
                    await http.start()
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    raise NetworkError(f"cannot listen on --http {args.http}: {reason}") from None
            _describe(site, loop_name, amplification is None)
            await stop.wait()
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
            if http is not None:
                await http.close()
            await server.close()
            await site.close()
            if client is not None:
                await client.close()
        logger.info("stopped")

    loops.run(run(), loop_name)
    return EXIT_OK


def _describe(site: Any, loop_name: str, no_limit: bool) -> None:
    """The start-up lines: what is forwarded where, and a warning for an open proxy."""
    if site.forward and site.allow is None:
        logger.warning(
            "forwarding to any host and port, loopback included (--forward without "
            "--allow): anyone who reaches this proxy can send requests from this host"
        )
    elif site.forward:
        logger.info("forwarding to %s only", ", ".join(site.allow.patterns))
    for rule in site.rules:
        logger.info("reverse: %s -> %s", rule.prefix, rule.upstream)
    limit = "; no amplification limit" if no_limit else ""
    logger.info("proxy %s (%s%s); Ctrl-C stops", site.name, loop_name, limit)
