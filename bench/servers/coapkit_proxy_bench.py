"""The servers of bench/bench_proxy.py: ``--role origin`` serves ``/hello`` (Max-Age 60:
a proxy keeps it) and ``/fresh`` (Max-Age 0: a proxy asks for it every time); ``--role
proxy --upstream URI`` serves a :class:`~coapkit.proxy.ProxySite` with the reverse rule
``/up`` -> URI (and ``/hello`` of its own)."""

from __future__ import annotations

import argparse
import asyncio

from common import PAYLOAD, run

from coapkit.proxy import ProxyConfig, ProxySite
from coapkit.resources import Response, Site
from coapkit.server import Server


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=("origin", "proxy"), required=True)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--no-coalesce", action="store_true")


async def main(args: argparse.Namespace) -> None:
    config = ProxyConfig(coalesce=not args.no_coalesce)
    site = (
        ProxySite(reverse={"/up": args.upstream}, config=config) if args.role == "proxy" else Site()
    )

    @site.route("/hello")
    def hello(request: object) -> Response:
        return Response(payload=PAYLOAD, max_age=60)

    @site.route("/fresh")
    def fresh(request: object) -> Response:
        return Response(payload=PAYLOAD, max_age=0)

    # (a load generator with 64 requests in flight from one address: more than the
    # default 100 handlers per remote may be counted at once, see bench_proxy.py)
    async with Server(site, bind=(args.host, args.port), max_pending_per_remote=1000):
        await asyncio.Event().wait()


if __name__ == "__main__":
    run(main, options)
