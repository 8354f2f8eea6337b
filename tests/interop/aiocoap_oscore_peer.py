"""aiocoap 0.4.17 with OSCORE, for tests/interop/test_aiocoap_oscore.py.

Run with the Python of the virtual environment that has ``aiocoap[oscore]`` (its
``lakers-python`` and ``filelock`` are not coapkit's test dependencies):

    python aiocoap_oscore_peer.py serve PORT CREDENTIALS.json
    python aiocoap_oscore_peer.py observe URI CREDENTIALS.json COUNT

``serve``: an aiocoap server on UDP ``127.0.0.1:PORT`` whose site is wrapped in
aiocoap's ``OscoreSiteWrapper`` with the server credentials of the file (as
``aiocoap-fileserver --credentials`` does).  It prints ``ready PORT`` once it
listens; on SIGTERM it shuts down cleanly (its security contexts store their
state).  Resources: ``/hello`` (GET), ``/echo`` (POST: the body back), ``/big``
(GET: 3000 bytes, block-wise), ``/counter`` (observable: a new state every 0.2 s
while observed), ``/whoami`` (GET: the request's authenticated claims).

``observe``: an aiocoap client with the client credentials of the file observes
URI and prints the first response's payload and each notification's on a line of
its own, then cancels after COUNT notifications (``aiocoap-client --observe``
cannot be used: 0.4.17 cancels at the first response).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

import aiocoap
import aiocoap.resource
from aiocoap.credentials import CredentialsMap
from aiocoap.numbers.codes import Code
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

BIG = bytes(range(256)) * 11 + bytes(184)  # 3000 bytes, not all alike


def claims(request) -> str:
    remote = request.remote
    found = getattr(remote, "authenticated_claims", None)
    return ",".join(found) if found else "-"


class Hello(aiocoap.resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=b"hello from aiocoap", content_format=0)


class Echo(aiocoap.resource.Resource):
    async def render_post(self, request):
        return aiocoap.Message(code=Code.CHANGED, payload=request.payload)


class Big(aiocoap.resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=BIG)


class WhoAmI(aiocoap.resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=claims(request).encode())


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
            await asyncio.sleep(0.2)
            self.count += 1
            self.updated_state()

    async def render_get(self, request):
        return aiocoap.Message(payload=str(self.count).encode())


async def serve(port: int, credentials: str) -> None:
    site = aiocoap.resource.Site()
    site.add_resource(["hello"], Hello())
    site.add_resource(["echo"], Echo())
    site.add_resource(["big"], Big())
    site.add_resource(["counter"], Counter())
    site.add_resource(["whoami"], WhoAmI())
    server_credentials = CredentialsMap()
    with open(credentials, "rb") as file:
        server_credentials.load_from_dict(json.load(file))
    wrapped = OscoreSiteWrapper(site, server_credentials)
    context = await aiocoap.Context.create_server_context(
        wrapped,
        bind=("127.0.0.1", port),
        transports=["udp6"],
        server_credentials=server_credentials,
    )
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print(f"ready {port}", flush=True)
    try:
        await stop
    finally:
        await context.shutdown()
        for item in server_credentials.values():
            destroy = getattr(item, "_destroy", None)
            if destroy is not None and getattr(item, "lockfile", None) is not None:
                destroy()  # store the exact state now, not at garbage collection


async def observe(uri: str, credentials: str, count: int) -> None:
    context = await aiocoap.Context.create_client_context(transports=["udp6", "oscore"])
    with open(credentials, "rb") as file:
        context.client_credentials.load_from_dict(json.load(file))
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
    for item in context.client_credentials.values():
        destroy = getattr(item, "_destroy", None)
        if destroy is not None and getattr(item, "lockfile", None) is not None:
            destroy()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if sys.argv[1] == "observe":
        asyncio.run(observe(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
