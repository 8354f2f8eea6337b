"""An origin, a proxy and its HTTP front end on loopback (real sockets, free ports)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from coapkit import Code, Request, Resource, Response, Server, Site
from coapkit.proxy import ProxySite
from coapkit.proxy.http import HttpCrossProxy

#: a body of several blocks, for block-wise transfers through the proxy
BODY_SIZE = 5000


class Counter(Resource):
    """Observable; changes when the test says, or every ``period`` seconds once started."""

    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.counts: list[int] = []
        self._ticking: asyncio.Task[None] | None = None

    def get(self, request: Request) -> Response:
        return Response(payload=f"value {self.value}", max_age=60)

    def tick(self) -> None:
        self.value += 1
        self.updated()

    def update_observation_count(self, count: int) -> None:
        self.counts.append(count)

    def start(self, period: float) -> None:
        async def run() -> None:
            while True:
                await asyncio.sleep(period)
                self.tick()

        self._ticking = asyncio.get_running_loop().create_task(run())

    def stop(self) -> None:
        if self._ticking is not None:
            self._ticking.cancel()


def origin_site() -> tuple[Site, Counter]:
    site = Site()
    counter = site.add("/counter", Counter())

    @site.route("/hello")
    def hello(request: Request) -> Response:
        return Response(payload="hello", max_age=30, etag=b"h1")

    @site.route("/data")
    def data(request: Request) -> Response:
        return Response.json_({"t": 21.5})

    @site.route("/items", methods=["POST"])
    def items(request: Request) -> Response:
        return Response(Code.CREATED, payload=f"got {request.text}", location_path=["items", "7"])

    @site.route("/binary")
    def binary(request: Request) -> Response:
        return Response(payload=bytes(range(8)), content_format="octet")

    return site, counter


@dataclass
class Live:
    origin: Server
    counter: Counter
    proxy: ProxySite
    proxy_server: Server
    http: HttpCrossProxy

    @property
    def origin_uri(self) -> str:
        return self.origin.listeners[0].uri

    def hc(self, path: str) -> str:
        """The HTTP URL of ``path`` on the origin through the cross proxy."""
        return f"{self.http.url}/hc/{self.origin_uri}{path}"


@asynccontextmanager
async def live(**proxy_options: Any) -> AsyncIterator[Live]:
    site, counter = origin_site()
    proxy_options.setdefault("forward", True)
    proxy = ProxySite(**proxy_options)
    async with AsyncExitStack() as stack:
        origin = await stack.enter_async_context(
            Server(site, listen=["coap://127.0.0.1:0", "coap+tcp://127.0.0.1:0"])
        )
        proxy_server = await stack.enter_async_context(
            Server(proxy, listen=["coap://127.0.0.1:0", "coap+tcp://127.0.0.1:0"])
        )
        await stack.enter_async_context(proxy)
        http = await stack.enter_async_context(HttpCrossProxy(proxy, port=0))
        stack.callback(counter.stop)
        yield Live(origin, counter, proxy, proxy_server, http)
