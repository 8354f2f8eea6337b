"""Server and Client.observe over real loopback sockets, in one event loop.

These wait on events with timeouts; no test sleeps for protocol timing (that is
tested on the virtual clock in test_server_sim.py and test_client_sim.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from coapkit import Code
from coapkit.client import Client
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from coapkit.observe.registry import ObserveConfig
from coapkit.resources import Resource, Response, Site
from coapkit.server import Server

TIMEOUT = 5.0


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for ``condition`` to hold (checked on every loop iteration), or fail."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


class Counter(Resource):
    observable = True

    def __init__(self, size: int = 0) -> None:
        self.value = 0
        self.size = size

    def get(self, request):  # type: ignore[no-untyped-def]
        if self.size:
            return Response(payload=bytes((self.value + i) % 256 for i in range(self.size)))
        return Response(payload=str(self.value), max_age=30)

    def bump(self) -> None:
        self.value += 1
        self.updated()


def make_site(**resources: Resource) -> Site:
    site = Site()
    for name, resource in resources.items():
        site.add(f"/{name}", resource)
    return site


async def test_observe_collects_notifications_and_cancels_on_exit() -> None:
    counter = Counter()
    async with Server(make_site(counter=counter), bind=("127.0.0.1", 0)) as server:
        uri = f"coap://127.0.0.1:{server.port}/counter"
        got: list[tuple[str, int | None]] = []
        async with Client() as client, client.observe(uri) as observation:
            async with asyncio.timeout(TIMEOUT):
                async for response in observation:
                    got.append((response.text, response.observe))
                    if len(got) == 4:
                        break
                    counter.bump()
            assert len(server.observers) == 1
            assert observation.first is not None and observation.first.max_age == 30
        await wait_until(lambda: len(server.observers) == 0)
    assert got == [("0", 2), ("1", 3), ("2", 4), ("3", 5)]


async def test_observation_with_non_requests() -> None:
    counter = Counter()
    async with (
        Server(make_site(counter=counter), bind=("127.0.0.1", 0)) as server,
        Client() as client,
    ):
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter", non=True)
        async with observation:
            first = await asyncio.wait_for(anext(observation), TIMEOUT)
            counter.bump()
            second = await asyncio.wait_for(anext(observation), TIMEOUT)
            assert observation.active
        assert not observation.active
        await wait_until(lambda: len(server.observers) == 0)
    assert (first.text, second.text) == ("0", "1")


async def test_deleting_the_resource_ends_the_observation_with_4_04() -> None:
    counter = Counter()
    site = make_site(counter=counter)

    def delete(request):  # type: ignore[no-untyped-def]
        site.remove("/counter")
        counter.updated()
        return Response(Code.DELETED)

    counter.delete = delete  # type: ignore[attr-defined]
    async with Server(site, bind=("127.0.0.1", 0)) as server:
        uri = f"coap://127.0.0.1:{server.port}/counter"
        async with Client() as client, client.observe(uri) as observation:
            first = await asyncio.wait_for(anext(observation), TIMEOUT)
            assert (await client.delete(uri)).code == Code.DELETED
            async with asyncio.timeout(TIMEOUT):
                rest = [response async for response in observation]
            assert not observation.active
        assert len(server.observers) == 0
    assert first.text == "0"
    assert [(r.code, r.observe) for r in rest] == [(Code.NOT_FOUND, None)]


async def test_full_server_answers_without_observe_and_the_iteration_ends() -> None:
    counter = Counter()
    config = ObserveConfig(max_observers=1)
    async with Server(make_site(counter=counter), bind=("127.0.0.1", 0), observe=config) as server:
        uri = f"coap://127.0.0.1:{server.port}/counter"
        async with Client() as client, client.observe(uri) as first:
            await asyncio.wait_for(anext(first), TIMEOUT)
            async with client.observe(uri) as second, asyncio.timeout(TIMEOUT):
                responses = [response async for response in second]
        assert [(r.text, r.observe) for r in responses] == [("0", None)]
        await wait_until(lambda: len(server.observers) == 0)


async def test_not_observable_gives_one_response() -> None:
    site = Site()
    site.route("/plain")(lambda request: "plain")
    async with Server(site, bind=("127.0.0.1", 0)) as server:
        async with Client() as client:
            observation = client.observe(f"coap://127.0.0.1:{server.port}/plain")
            async with observation, asyncio.timeout(TIMEOUT):
                responses = [response async for response in observation]
        assert len(server.observers) == 0
    assert [(r.text, r.observe) for r in responses] == [("plain", None)]


async def test_block_wise_notifications_arrive_whole() -> None:
    counter = Counter(size=3000)
    async with Server(make_site(big=counter), bind=("127.0.0.1", 0)) as server:
        uri = f"coap://127.0.0.1:{server.port}/big"
        bodies = []
        async with Client() as client, client.observe(uri) as observation:
            async with asyncio.timeout(TIMEOUT):
                async for response in observation:
                    bodies.append(response.payload)
                    if len(bodies) == 3:
                        break
                    counter.bump()
    assert bodies == [bytes((v + i) % 256 for i in range(3000)) for v in range(3)]


async def test_async_handler_renders_out_of_order_and_the_newest_state_wins() -> None:
    """State 1 renders slower than state 2: state 1 is never sent after state 2."""
    gates = {0: asyncio.Event(), 1: asyncio.Event(), 2: asyncio.Event(), 3: asyncio.Event()}
    gates[0].set()

    class Slow(Resource):
        observable = True
        value = 0

        def get(self, request):  # type: ignore[no-untyped-def]
            return self.render(self.value)  # the state now, rendered when its gate opens

        async def render(self, value: int) -> Response:
            await gates[value].wait()
            return Response(payload=str(value))

    slow = Slow()
    sent: list[bytes] = []

    def tracer(direction: str, data: bytes, remote: object) -> None:
        if direction == "send":
            message = decode(data)
            if message.options.observe is not None:
                sent.append(message.payload)

    async with Server(make_site(slow=slow), bind=("127.0.0.1", 0), tracer=tracer) as server:
        uri = f"coap://127.0.0.1:{server.port}/slow"
        async with Client() as client, client.observe(uri) as observation:
            first = await asyncio.wait_for(anext(observation), TIMEOUT)
            slow.value = 1
            slow.updated()
            slow.value = 2
            slow.updated()
            gates[2].set()
            second = await asyncio.wait_for(anext(observation), TIMEOUT)
            gates[1].set()
            slow.value = 3
            gates[3].set()
            slow.updated()
            third = await asyncio.wait_for(anext(observation), TIMEOUT)
    assert [r.text for r in (first, second, third)] == ["0", "2", "3"]
    assert sent == [b"0", b"2", b"3"]  # the late state 1 was not sent at all


@pytest.mark.parametrize("notification_type", [MessageType.CON, MessageType.NON])
async def test_many_quick_updates_end_with_the_newest_state(
    notification_type: MessageType,
) -> None:
    counter = Counter()
    counter.notification_type = notification_type
    async with Server(make_site(counter=counter), bind=("127.0.0.1", 0)) as server:
        uri = f"coap://127.0.0.1:{server.port}/counter"
        async with Client() as client, client.observe(uri) as observation:
            await asyncio.wait_for(anext(observation), TIMEOUT)
            for _ in range(200):
                counter.bump()
            async with asyncio.timeout(TIMEOUT):
                async for response in observation:
                    if response.text == "200":
                        break
        await wait_until(lambda: len(server.observers) == 0)


async def test_server_notify_is_resource_updated() -> None:
    counter = Counter()
    server = Server(make_site(counter=counter), bind=("127.0.0.1", 0))
    server.notify(counter)  # not started: nothing to do
    async with server:
        uri = f"coap://127.0.0.1:{server.port}/counter"
        async with Client() as client, client.observe(uri) as observation:
            await asyncio.wait_for(anext(observation), TIMEOUT)
            counter.value = 7
            server.notify(counter)
            assert (await asyncio.wait_for(anext(observation), TIMEOUT)).text == "7"
    server.notify(counter)  # closed: nothing to do
    counter.updated()  # and the server no longer listens
