"""Observe (RFC 7641) against peers nobody here wrote: libcoap's tools and aiocoap, on loopback.

* libcoap ``coap-client -s`` observes a coapkit resource (the coapkit server runs in
  this event loop, so the client is an asyncio subprocess);
* coapkit's ``Client.observe`` observes libcoap ``coap-server``'s ``/time`` (a CON
  notification every second, Max-Age 1) and an in-process aiocoap resource.

``coapkit get --observe`` (the CLI) is not covered here: it is being built in the
CLI branch, which should add the same two peers to its own interop tests.

Peer behaviour seen on the wire (none of it against RFC 7641, all of it handled):

* libcoap 4.3.1 ``coap-client -s N``: a 1-byte token; ACKs CON notifications; when
  the N seconds are up it deregisters with a GET carrying Observe=1 and the same token.
* libcoap 4.3.1 ``coap-server`` ``/time``: the registration is answered with the
  resource's own counter (e.g. Observe=2); every notification is a CON, one a second,
  with Max-Age 1.
* aiocoap 0.4.17: numbers from 0 (the registration response carries Observe=0, the
  first notification 1); CON notifications; no Max-Age (coapkit assumes 60 s); our
  GET with Observe=1 removes the observation from its resource.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from itertools import pairwise

import pytest

from coapkit.client import Client
from coapkit.codec.types import MessageType
from coapkit.observe.ordering import follows
from coapkit.resources import Resource, Response, Site
from coapkit.server import Server
from tests.interop.peers import COAP_CLIENT, free_udp_port, libcoap_server, require_libcoap

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class Ticking(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response(payload=f"[{self.value}]", max_age=5)

    async def tick(self, interval: float) -> None:
        """The application changing its state every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            self.value += 1
            self.updated()


@pytest.mark.parametrize("notification_type", [None, MessageType.CON])
async def test_libcoap_client_observes_a_coapkit_resource(
    notification_type: MessageType | None,
) -> None:
    require_libcoap()
    resource = Ticking()
    resource.notification_type = notification_type
    site = Site()
    site.add("/obs", resource)
    async with Server(site, bind=("127.0.0.1", 0)) as server:
        ticker = asyncio.create_task(resource.tick(0.2))
        try:
            process = await asyncio.create_subprocess_exec(
                COAP_CLIENT,
                "-s",
                "5",
                f"coap://127.0.0.1:{server.port}/obs",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        finally:
            ticker.cancel()
        assert process.returncode == 0, stderr.decode(errors="replace")
        values = [int(v) for v in re.findall(rb"\[(\d+)\]", stdout)]
        assert len(values) >= 4, stdout  # the first response and at least 3 notifications
        assert values == sorted(set(values))
        # coap-client deregisters when its -s time is up (GET with Observe=1 or RST)
        await wait_until(lambda: len(server.observers) == 0)


async def test_coapkit_observes_libcoap_time() -> None:
    with libcoap_server() as port:
        async with Client() as client:
            observation = client.observe(f"coap://127.0.0.1:{port}/time")
            responses = []
            async with observation, asyncio.timeout(TIMEOUT):
                async for response in observation:
                    responses.append(response)
                    if len(responses) == 4:
                        break
    sequences = [r.observe for r in responses]
    assert all(s is not None for s in sequences)
    assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]
    assert len({r.text for r in responses[1:]}) == 3  # a new time each second
    assert all(r.max_age == 1 for r in responses)


async def test_coapkit_observes_aiocoap() -> None:
    aiocoap = pytest.importorskip("aiocoap")
    from aiocoap import resource as aioresource

    class AioTicking(aioresource.ObservableResource):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.value = 0

        async def render_get(self, request):  # type: ignore[no-untyped-def]
            return aiocoap.Message(payload=f"[{self.value}]".encode())

        def tick(self) -> None:
            self.value += 1
            self.updated_state()

    ticking = AioTicking()
    root = aioresource.Site()
    root.add_resource(["obs"], ticking)
    port = free_udp_port()
    context = await aiocoap.Context.create_server_context(
        root, bind=("127.0.0.1", port), transports=["udp6"]
    )
    try:
        async with Client() as client:
            observation = client.observe(f"coap://127.0.0.1:{port}/obs")
            responses = []
            async with observation, asyncio.timeout(TIMEOUT):
                async for response in observation:
                    responses.append(response)
                    if len(responses) == 4:
                        break
                    ticking.tick()
                assert len(ticking._observations) == 1
            # leaving the block deregistered us (GET with Observe=1)
            await wait_until(lambda: len(ticking._observations) == 0)
    finally:
        await context.shutdown()
    assert [r.text for r in responses] == ["[0]", "[1]", "[2]", "[3]"]
    sequences = [r.observe for r in responses]
    assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]
