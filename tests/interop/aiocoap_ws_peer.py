"""An aiocoap 0.4.17 server with only its WebSocket transport, for tests/interop/test_aiocoap_ws.py.

Run with the Python of the virtual environment that has ``aiocoap[ws]`` (its
``websockets`` is older than coapkit's, so the tests give it one of its own):

    python aiocoap_ws_peer.py PORT
    python aiocoap_ws_peer.py observe URI COUNT

aiocoap's WebSocket server listens on the port it is told *plus 3000* (see
aiocoap/transports/ws.py: "if a port is explicitly stated to bind to,
CoAP-over-WS will bind to that port plus 3000"), so this binds PORT - 3000 to
listen on PORT.  It prints ``ready PORT`` once it listens; what it logs goes to
stderr.

The second form is an aiocoap client instead: it observes URI (a ``coap+ws``
URI) and prints the first response's payload and each notification's on a line
of its own, then cancels the observation after COUNT notifications and waits a
second before it exits (``aiocoap-client --observe`` cannot be used: 0.4.17
cancels the observation as soon as the first response arrives).

Resources: ``/text`` (GET), ``/store`` (GET, PUT), ``/big`` (GET: 3000 bytes,
block-wise), ``/counter`` (observable: a new state every 0.1 s), ``/seen`` (GET:
what aiocoap understood of the request and of the peer's CSM, as JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import aiocoap
import aiocoap.resource
from aiocoap.numbers.codes import Code

BIG = bytes(range(256)) * 11 + bytes(184)  # 3000 bytes, not all alike


class Text(aiocoap.resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=b"hello from aiocoap", content_format=0)


class Store(aiocoap.resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.data = b"initial"

    async def render_get(self, request):
        return aiocoap.Message(payload=self.data)

    async def render_put(self, request):
        self.data = request.payload
        return aiocoap.Message(code=Code.CHANGED)


class Big(aiocoap.resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=BIG)


class Counter(aiocoap.resource.ObservableResource):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.task: asyncio.Task[None] | None = None

    def update_observation_count(self, count):
        if count and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.tick())
        elif not count and self.task is not None:
            self.task.cancel()
            self.task = None

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.count += 1
            self.updated_state()

    async def render_get(self, request):
        return aiocoap.Message(payload=str(self.count).encode())


class Seen(aiocoap.resource.Resource):
    async def render_get(self, request):
        remote = request.remote
        settings = getattr(remote, "_remote_settings", None)
        seen = {
            "uri_host": request.opt.uri_host,
            "scheme": getattr(remote, "scheme", None),
            "peer_csm": settings,
            "hostinfo_local": remote.hostinfo_local,
        }
        return aiocoap.Message(payload=json.dumps(seen).encode(), content_format=50)


async def main(port: int) -> None:
    site = aiocoap.resource.Site()
    site.add_resource(["text"], Text())
    site.add_resource(["store"], Store())
    site.add_resource(["big"], Big())
    site.add_resource(["counter"], Counter())
    site.add_resource(["seen"], Seen())
    context = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", port - 3000), transports=["ws"]
    )
    print(f"ready {port}", flush=True)
    try:
        await asyncio.get_running_loop().create_future()  # until terminated
    finally:
        await context.shutdown()


async def observe(uri: str, count: int) -> None:
    context = await aiocoap.Context.create_client_context(transports=["ws"])
    request = context.request(aiocoap.Message(code=Code.GET, uri=uri, observe=0))
    first = await request.response
    print(first.payload.decode(), flush=True)
    seen = 0
    async for notification in request.observation:
        print(notification.payload.decode(), flush=True)
        seen += 1
        if seen == count:
            break
    request.observation.cancel()
    await asyncio.sleep(1)
    await context.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        if sys.argv[1] == "observe":
            asyncio.run(observe(sys.argv[2], int(sys.argv[3])))
        else:
            asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
