"""``coapkit rd`` (a resource directory) and ``coapkit server --register`` (a registrant).

``coapkit rd [--listen URI...] [--store PATH | redis://HOST:PORT/N]`` serves RFC 9176's
resource directory (:class:`coapkit.rd.ResourceDirectory`) until Ctrl-C or SIGTERM
(exit status 0), its registrations in a SQLite file (``coapkit-rd.sqlite`` in the
current directory by default) or in Redis, so that they survive a restart and, with
Redis, several processes serve one directory.  A store that cannot be opened ends it
with one line: an unwritable file (status 10), an unreachable Redis (7), the redis
package missing (6, naming ``coapkit[redis]``).

``coapkit server ... --register RD-URI [--ep NAME] [--lt SECONDS]`` keeps the served
resources registered (:class:`coapkit.rd.registrant.Registrant`) and removes them when
the server stops cleanly.

Nothing heavy is imported until a command runs: :func:`add_rd_parser` and
:func:`add_register_options` only describe the options.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from coapkit.cli.arguments import LOOP_CHOICES, count_type
from coapkit.cli.exits import EXIT_OK, LocalFileError

__all__ = ["add_register_options", "add_rd_parser", "cmd_rd", "start_registering"]

DEFAULT_STORE = "coapkit-rd.sqlite"
DEFAULT_LISTEN = "coap://[::]:5683"

RD_EPILOG = """\
examples:
  coapkit rd
  coapkit rd --listen coap://[::]:5683 --listen coap+tcp://[::]:5683 --store /var/lib/rd.sqlite
  coapkit rd --store redis://127.0.0.1:6379/0        (several processes, one directory)
  coapkit rd --listen coaps://[::]:5684 --credentials clients.json   (DTLS)
  coapkit server --register coap://rd.example --ep kitchen-lamp --lt 600
  coapkit get 'coap://127.0.0.1/rd-lookup/res?rt=temperature*'

Resources (RFC 9176): /rd (registration: POST ?ep=NAME[&d=SECTOR&lt=S&base=URI&et=..]
with link-format, or its JSON (504) or CBOR (64) form), /reg/ID (update: POST,
links: PUT or POST with a payload; GET; DELETE), /rd-lookup/ep and /rd-lookup/res
(lookup with any attribute as a filter, a trailing * for a prefix, page and count),
/.well-known/rd (simple registration: the directory fetches the sender's
/.well-known/core); /.well-known/core?rt=core.rd* finds them.

--store PATH: a SQLite file (WAL; created when missing), registrations kept across
restarts and expired by their lifetime; redis://HOST:PORT/N: Redis (pip install
'coapkit[redis]'), which several coapkit rd processes behind one address can share.

--policy: who may register which names (RFC 9176 §7): open (anyone, anything; the
default), first-come (a live name stays with whoever registered it: its TLS or
DTLS identity, else its source address), authenticated (TLS or DTLS client
certificates and DTLS PSK identities only, each for the endpoint name its
identity gives).

Listeners: coaps:// (DTLS), coaps+tcp:// and coaps+ws:// (TLS) take
--psk-identity and --psk, --cert, --key, --ca and --credentials as coapkit
server does (see coapkit server --help).
"""


def add_rd_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """The ``coapkit rd`` command's options."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "rd",
        help="serve a resource directory (RFC 9176) whose registrations survive restarts",
        description="Serve a CoAP resource directory (RFC 9176): endpoints register their "
        "resources, clients look them up.  Registrations live in a SQLite file or in Redis "
        "and survive a restart.  Logs one line per registration and removal; Ctrl-C or "
        "SIGTERM stops it (exit status 0).",
        epilog=RD_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="URI",
        help=f"serve on this URI (repeatable; default {DEFAULT_LISTEN}): coap://, coaps://, "
        "coap+tcp://, coaps+tcp://, coap+ws://, coaps+ws:// (port 0: any free port; the "
        "secure ones take the security options of coapkit server)",
    )
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="PATH|redis://HOST:PORT/N",
        help=f"where registrations live: a SQLite file (default {DEFAULT_STORE}) or Redis",
    )
    parser.add_argument(
        "--policy",
        choices=("open", "first-come", "authenticated"),
        default="open",
        help="who may register which names (default: open; see below)",
    )
    parser.add_argument(
        "--max-lifetime",
        type=count_type,
        metavar="SECONDS",
        help="the largest lt taken (default: 4294967295, RFC 9176's bound)",
    )
    parser.add_argument(
        "--max-registrations",
        type=count_type,
        metavar="N",
        help="registrations in all (default: 1000000); beyond, 5.03 with Max-Age",
    )
    parser.add_argument(
        "--max-per-source",
        type=count_type,
        metavar="N",
        help="registrations from one source address (default: 1000); beyond, 5.03",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="trace every datagram; debug logging"
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="event loop: uvloop when installed (auto, the default), or force one",
    )
    return parser


def add_register_options(parser: argparse.ArgumentParser) -> None:
    """``coapkit server``'s ``--register RD-URI [--ep NAME] [--lt SECONDS]``."""
    parser.add_argument(
        "--register",
        metavar="RD-URI",
        help="register the served resources with this resource directory (RFC 9176: "
        "coap://HOST finds its registration resource, coap://HOST/rd names it) and keep "
        "them registered until the server stops",
    )
    parser.add_argument(
        "--ep", metavar="NAME", help="with --register: the endpoint name (default: the host name)"
    )
    parser.add_argument(
        "--lt",
        type=count_type,
        default=90_000,
        metavar="SECONDS",
        help="with --register: the registration's lifetime, refreshed before it runs out "
        "(default: 90000)",
    )


# -- coapkit server --register ------------------------------------------------------------------


async def start_registering(server: Any, args: argparse.Namespace) -> Any:
    """The :class:`~coapkit.rd.registrant.Registrant` that ``--register`` asks for,
    started; None without it."""
    rd = getattr(args, "register", None)
    if rd is None:
        return None
    from coapkit.errors import UriError
    from coapkit.rd.registrant import Registrant

    try:
        registrant = Registrant(server, rd, ep=args.ep, lifetime=args.lt)
    except ValueError as exc:
        raise UriError(f"--register {rd}: {exc}") from None
    return await registrant.start()


async def stop_registering(registrant: Any) -> None:
    if registrant is not None:
        await registrant.stop()


# -- coapkit rd ---------------------------------------------------------------------------------


async def _open_store(spec: str) -> Any:
    from coapkit.errors import NetworkError, UriError
    from coapkit.rd.store import open_store

    try:
        return await open_store(spec)
    except ImportError as exc:
        raise UriError(f"--store {spec}: {exc}") from None
    except OSError as exc:
        if spec.startswith(("redis://", "rediss://", "unix://")):
            raise NetworkError(f"cannot reach the Redis store {spec}: {exc}") from None
        raise LocalFileError(f"cannot open the store {spec!r}: {exc}") from None
    except Exception as exc:
        name = type(exc).__name__
        if "Connection" in name or "Redis" in name or "Timeout" in name:
            raise NetworkError(f"cannot reach the Redis store {spec}: {exc}") from None
        if type(exc).__module__.startswith("sqlite3"):
            raise LocalFileError(f"cannot open the store {spec!r}: {exc}") from None
        raise


def cmd_rd(args: argparse.Namespace) -> int:
    """``coapkit rd``."""
    from coapkit.cli import loops
    from coapkit.cli.security import server_security
    from coapkit.cli.serve import configure_logging, listener_uri
    from coapkit.errors import NetworkError
    from coapkit.rd import RDConfig, ResourceDirectory
    from coapkit.rd.policy import POLICIES

    loop_name = loops.choose_loop(args.loop)
    listen = args.listen or [DEFAULT_LISTEN]
    uris = [listener_uri(uri) for uri in listen]  # the servers' checks, the same lines
    ssl_context, dtls = server_security(args, uris)
    limits: dict[str, int] = {}
    if args.max_lifetime is not None:
        limits["max_lifetime"] = args.max_lifetime
        limits["default_lifetime"] = min(RDConfig().default_lifetime, args.max_lifetime)
    if args.max_registrations is not None:
        limits["max_registrations"] = args.max_registrations
    if args.max_per_source is not None:
        limits["max_per_source"] = args.max_per_source
    config = RDConfig(**limits)
    configure_logging(args.verbose)
    import logging

    logger = logging.getLogger("coapkit.rd")

    async def run() -> None:
        store = await _open_store(args.store)
        directory = ResourceDirectory(
            store,
            config=config,
            policy=POLICIES[args.policy](),
            listen=listen,
            log_requests=True,
            ssl_context=ssl_context,
            dtls=dtls,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        try:
            try:
                await directory.start()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise NetworkError(f"cannot listen on {', '.join(listen)}: {reason}") from None
            logger.info(
                "resource directory on %s, store %s, %s policy (%s); Ctrl-C stops",
                ", ".join(item.uri for item in directory.server.listeners),
                args.store,
                args.policy,
                loop_name,
            )
            await stop.wait()
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
            await directory.close()
            await store.close()
        logger.info("stopped")

    loops.run(run(), loop_name)
    return EXIT_OK
