"""aiocoap 0.4.17 serving the same small resource."""

from __future__ import annotations

import argparse
import asyncio

import aiocoap
import aiocoap.resource
from common import PAYLOAD, run


class Hello(aiocoap.resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=PAYLOAD)


async def main(args: argparse.Namespace) -> None:
    root = aiocoap.resource.Site()
    root.add_resource(["hello"], Hello())
    await aiocoap.Context.create_server_context(
        root, bind=(args.host, args.port), transports=["udp6"]
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(main)
