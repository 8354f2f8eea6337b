"""coapkit serving /hello over DTLS (coaps://) with a pre-shared key (identity ``bench``,
key ``benchkey``), or over plain UDP with ``--plain``.

``--stats SECONDS`` prints ``ready pid=...`` and then one line every so often on stdout,
``stats t=... sessions=... handshakes=... cookies=... established=... dropped=...
refused=... received=...`` (``cookies``: ClientHellos answered with a HelloVerifyRequest,
which keeps no state; ``handshakes``: in progress past the cookie), for
bench_dtls_flood.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from common import PAYLOAD, run

from coapkit.resources import Response, Site
from coapkit.security.dtls import DtlsServerCredentials
from coapkit.server import Server

IDENTITY = b"bench"
KEY = b"benchkey"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", type=float, default=0.0, help="print stats every N s")
    parser.add_argument("--plain", action="store_true", help="coap:// instead of coaps://")


async def report(server: Server, interval: float) -> None:
    start = time.monotonic()
    layer = server.listeners[0].security
    assert layer is not None
    messaging = server.endpoint.messaging
    while True:
        await asyncio.sleep(interval)
        stats = layer.stats
        print(
            f"stats t={time.monotonic() - start:.2f} sessions={len(layer)} "
            f"handshakes={layer.handshakes} cookies={stats.hello_verify_requests} "
            f"established={stats.established} dropped={stats.dropped} refused={stats.refused} "
            f"received={messaging.stats.received}",
            flush=True,
        )


async def main(args: argparse.Namespace) -> None:
    site = Site()

    @site.route("/hello")
    def hello(request: object) -> Response:
        return Response(payload=PAYLOAD)

    scheme = "coap" if args.plain else "coaps"
    server = Server(
        site,
        listen=[f"{scheme}://{args.host}:{args.port}"],
        dtls=DtlsServerCredentials(psk={IDENTITY: KEY}),
    )
    async with server:
        if args.stats > 0:
            print(f"ready pid={os.getpid()}", flush=True)
            await report(server, args.stats)
        await asyncio.Event().wait()


if __name__ == "__main__":
    run(main, options)
