"""Shared command line of the benchmark servers: --port, --loop asyncio|uvloop (and a
server's own options)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

PAYLOAD = b"Hello, CoAP!"


def parse(
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def run(
    main: Callable[[argparse.Namespace], Awaitable[None]],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse the command line (the shared options, and ``extra``'s) and run ``main``."""
    args = parse(extra)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
