"""The server commands: ``coapkit server`` (demo or plugtest resources) and ``coapkit fileserver``.

Both log one line per request to stderr (``Server(log_requests=True)``; with
``-v`` also every datagram, as the client commands trace them) and stop
cleanly, with exit status 0, on Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from coapkit.cli.demo import demo_site
from coapkit.cli.exits import EXIT_OK, LocalFileError
from coapkit.cli.fileserver import fileserver_site
from coapkit.cli.plugtest import plugtest_site
from coapkit.cli.render import Trace
from coapkit.errors import NetworkError
from coapkit.resources.site import Site
from coapkit.server import Server

logger = logging.getLogger("coapkit.server")


def configure_logging(verbose: bool) -> None:
    """Log lines to stderr: one per request at INFO, everything with ``-v``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("coapkit")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def serve(site: Site, args: argparse.Namespace, description: str) -> int:
    """Serve ``site`` on ``--bind``/``--port`` until SIGINT or SIGTERM; 0 when stopped so."""
    configure_logging(args.verbose)
    trace = None
    if args.verbose:
        trace = Trace(lambda text: print(text, file=sys.stderr, flush=True), time.monotonic)

    async def run() -> None:
        server = Server(site, bind=(args.bind, args.port), log_requests=True, tracer=trace)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for number in signals:  # before "serving CoAP on ...": a signal then always stops cleanly
            loop.add_signal_handler(number, stop.set)
        try:
            try:
                await server.start()
            except OSError as exc:
                host = f"[{args.bind}]" if ":" in args.bind else args.bind
                reason = exc.strerror or str(exc)
                raise NetworkError(f"cannot listen on {host}:{args.port}: {reason}") from None
            logger.info("%s; Ctrl-C stops", description)
            await stop.wait()
        finally:
            for number in signals:
                loop.remove_signal_handler(number)
            await server.close()
        logger.info("stopped")

    asyncio.run(run())
    return EXIT_OK


def cmd_server(args: argparse.Namespace) -> int:
    """``coapkit server``: the demo resources, or the plugtest set with ``--plugtest``."""
    if args.plugtest:
        return serve(plugtest_site(), args, "serving the ETSI plugtest resources")
    return serve(demo_site(), args, "serving the demo resources /hello /counter /time /echo")


def cmd_fileserver(args: argparse.Namespace) -> int:
    """``coapkit fileserver DIR``: a directory, read-only unless ``--write``."""
    root = Path(args.dir)
    if not root.is_dir():
        reason = "does not exist" if not root.exists() else "is not a directory"
        raise LocalFileError(f"{args.dir!r} {reason}")
    mode = "read-write (PUT and DELETE allowed)" if args.write else "read-only"
    site = fileserver_site(root, writable=args.write)
    return serve(site, args, f"serving {root.resolve()} {mode}")
