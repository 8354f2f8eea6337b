"""An origin server to proxy to, and a proxy in front of it, on a virtual network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from coapkit import Client, Code, Options, Request, Resource, Response, Server, Site
from coapkit.codec.message import Message, decode
from coapkit.messaging.records import Remote
from coapkit.proxy import ProxySite
from coapkit.testing import VirtualNetwork

#: a body of 5,000 bytes, every 1,024-byte block of it different
BODY = bytes(i * 7 % 251 for i in range(5000))


class Clock(Resource):
    """An observable resource whose state the test sets."""

    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.counts: list[int] = []

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value), max_age=60)

    def tick(self) -> None:
        self.value += 1
        self.updated()

    def update_observation_count(self, count: int) -> None:
        self.counts.append(count)


class Origin:
    """The origin server's site, and what its handlers saw."""

    def __init__(self) -> None:
        self.site = Site()
        self.seen: list[Request] = []
        self.version = 1
        self.max_age = 30
        self.clock = self.site.add("/clock", Clock())
        self.uploads: list[bytes] = []
        site = self.site

        @site.route("/temp")
        def temp(request: Request) -> Response:
            self.seen.append(request)
            etag = f"v{self.version}".encode()
            if etag in request.etags:
                return Response(Code.VALID, etag=etag, max_age=self.max_age)
            return Response(payload=f"{20 + self.version} C", etag=etag, max_age=self.max_age)

        @site.route("/plain", methods=["GET", "PUT", "POST", "DELETE"])
        def plain(request: Request) -> Response:
            self.seen.append(request)
            if request.method == Code.GET:
                return Response(payload=f"plain {len(self.seen)}", max_age=5)
            return Response(Code.CHANGED, payload=f"{request.method_name} {request.text}")

        @site.route("/echo", methods=["GET", "POST", "FETCH"])
        def echo(request: Request) -> Response:
            self.seen.append(request)
            hops = request.options.hop_limit
            return Response(
                payload=f"{request.method_name} {request.text} hops={hops}",
                content_format=request.content_format,
                max_age=0,
            )

        @site.route("/big")
        def big(request: Request) -> Response:
            self.seen.append(request)
            return Response(payload=BODY, content_format="octet")

        @site.route("/upload", methods=["PUT"])
        def upload(request: Request) -> Response:
            self.seen.append(request)
            self.uploads.append(request.payload)
            return Response(Code.CHANGED, payload=str(len(request.payload)))

        @site.route("/slow")
        async def slow(request: Request) -> Response:
            self.seen.append(request)
            await asyncio.sleep(float(request.query_params.get("s", "2")))
            return Response(payload="done", max_age=30)

    def calls(self, path: str) -> int:
        return sum(1 for request in self.seen if request.path_string == path)


@dataclass
class Setup:
    net: VirtualNetwork
    origin: Origin
    origin_server: Server
    proxy: ProxySite
    proxy_server: Server
    client: Client
    upstream: Client  #: the proxy's own client
    extra: list[Any] = field(default_factory=list)

    @property
    def proxy_uri(self) -> str:
        """The proxy's URI by address (no Uri-Host: a request may carry its own)."""
        host, port = self.proxy_server.address[:2]
        return f"coap://{host}:{port}"

    def via(self, uri: str) -> Options:
        """Options asking the proxy for ``uri`` (Proxy-Uri)."""
        return Options.build(proxy_uri=uri)

    def sent_upstream(self) -> list[Message]:
        """Every message the proxy's client put on the wire to the origin."""
        return [
            decode(entry.data)
            for entry in self.net.simulated.sent_between(
                self.upstream.local_address, self.origin_server.address
            )
        ]

    def upstream_requests(self) -> list[Message]:
        return [message for message in self.sent_upstream() if message.code and message.code < 32]


@asynccontextmanager
async def proxied(
    *,
    seed: int = 1,
    net: VirtualNetwork | None = None,
    origin: Origin | None = None,
    client_options: dict[str, Any] | None = None,
    **proxy_options: Any,
) -> AsyncIterator[Setup]:
    """An origin at host ``origin``, a proxy at host ``proxy`` (forwarding on unless told
    otherwise; its client on the proxy's host), a client of its own."""
    net = net or VirtualNetwork(seed=seed)
    origin = origin or Origin()
    upstream = net.client(address="proxy", **(client_options or {}))
    proxy_options.setdefault("forward", True)
    proxy_options.setdefault("name", "proxy")
    proxy = ProxySite(client=upstream, **proxy_options)
    async with AsyncExitStack() as stack:
        origin_server = await stack.enter_async_context(net.server(origin.site, address="origin"))
        proxy_server = await stack.enter_async_context(net.server(proxy, address="proxy"))
        await stack.enter_async_context(upstream)
        stack.push_async_callback(proxy.close)
        client = await stack.enter_async_context(net.client())
        yield Setup(net, origin, origin_server, proxy, proxy_server, client, upstream)


def remote_of(server: Server) -> Remote:
    return server.address
