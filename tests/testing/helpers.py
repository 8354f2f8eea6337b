"""A small application to test, and readers of a virtual network's trace."""

from __future__ import annotations

import asyncio

from coapkit import Code, Request, Resource, Response, Site
from coapkit.codec.message import Message, decode
from coapkit.codec.types import MessageType
from coapkit.messaging.records import Remote
from coapkit.testing import VirtualNetwork

CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST


class Thermometer(Resource):
    """An observable resource whose state the test sets."""

    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.celsius = 20

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.celsius))

    def set(self, celsius: int) -> None:
        self.celsius = celsius
        self.updated()


class App:
    """The application: a site and what its handlers did."""

    def __init__(self) -> None:
        self.site = Site()
        self.posts: list[bytes] = []
        self.uploads: list[bytes] = []
        self.thermometer = self.site.add("/temperature", Thermometer())
        site = self.site

        @site.route("/hello")
        def hello(request: Request) -> Response:
            return Response(payload=f"Hello, {request.query_params.get('name', 'world')}!")

        @site.route("/log", methods=["POST"])
        def log(request: Request) -> Response:
            self.posts.append(request.payload)
            return Response(Code.CREATED, payload=str(len(self.posts)))

        @site.route("/slow")
        async def slow(request: Request) -> Response:
            await asyncio.sleep(float(request.query_params.get("s", "5")))
            return Response(payload="done")

        @site.route("/fails")
        async def fails(request: Request) -> Response:
            await asyncio.sleep(1)
            raise RuntimeError("the handler broke")

        @site.route("/big")
        def big(request: Request) -> Response:
            return Response(payload=BODY)

        @site.route("/upload", methods=["PUT"])
        def upload(request: Request) -> Response:
            self.uploads.append(request.payload)
            return Response(Code.CHANGED, payload=str(len(request.payload)))


#: a body of 5,000 bytes, every 1,024-byte block of it different
BODY = bytes(i * 7 % 251 for i in range(5000))


def sent(net: VirtualNetwork, src: Remote, dst: Remote) -> list[tuple[float, Message]]:
    """Every datagram ``src`` put on the wire to ``dst``, decoded, with its time."""
    return [(e.time, decode(e.data)) for e in net.simulated.sent_between(src, dst)]


def events(net: VirtualNetwork, kind: str) -> list[tuple[float, Message]]:
    """The datagrams of one kind of trace entry (``lost``, ``delivered``...), decoded."""
    return [(e.time, decode(e.data)) for e in net.trace if e.event == kind]


def retransmissions(net: VirtualNetwork, src: Remote, dst: Remote) -> int:
    """How many datagrams ``src`` sent to ``dst`` repeated one it had sent before."""
    seen: set[bytes] = set()
    repeats = 0
    for entry in net.simulated.sent_between(src, dst):
        if entry.data in seen:
            repeats += 1
        seen.add(entry.data)
    return repeats
