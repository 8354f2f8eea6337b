"""coapkit serving the same small resource over CoAP over TCP (RFC 8323)."""

from __future__ import annotations

import argparse
import asyncio

from common import PAYLOAD, run

from coapkit.resources import Response, Site
from coapkit.server import Server
from coapkit.transports.tcp import StreamLimits


async def main(args: argparse.Namespace) -> None:
    site = Site()

    @site.route("/hello")
    def hello(request: object) -> Response:
        return Response(payload=PAYLOAD)

    server = Server(
        site,
        listen=[f"coap+tcp://{args.host}:{args.port}"],
        stream_limits=StreamLimits(max_per_host=100_000),
    )
    async with server:
        await asyncio.Event().wait()


if __name__ == "__main__":
    run(main)
