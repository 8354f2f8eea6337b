"""One process of the notification-bus tests: a server with a RedisBus, its state in a file.

``python bus_app.py --port P --redis URL --store FILE``: serves ``/setting`` (GET reads the
file, PUT writes it and calls ``changed()``) on ``coap://127.0.0.1:P``, logging to stderr,
until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from coapkit import Code, Request, Resource, Response, Site
from coapkit.bus.redis import RedisBus
from coapkit.observe.registry import ObserveConfig
from coapkit.server import Server


class Setting(Resource):
    observable = True

    def __init__(self, store: Path) -> None:
        super().__init__()
        self.store = store

    def get(self, request: Request) -> Response:
        return Response(payload=self.store.read_text(), max_age=300)

    def put(self, request: Request) -> Response:
        self.store.write_bytes(request.payload)
        self.changed()
        return Response(Code.CHANGED)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    site = Site()
    site.add("/setting", Setting(args.store))
    server = Server(
        site,
        listen=[f"coap://127.0.0.1:{args.port}"],
        bus=RedisBus(args.redis, retry_max=0.5),
        observe=ObserveConfig(clock_sequence=True),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
