"""Observations the program drops, and resources that want to know who observes them."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.client import Client
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from coapkit.resources import Request, Resource, Response
from coapkit.server import Server


class Sensor(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0
        self.counts: list[int] = []

    def get(self, request: Any) -> Response:
        return Response(payload=str(self.value))

    def update_observation_count(self, count: int) -> None:
        self.counts.append(count)


async def until(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.005)


async def test_breaking_out_of_async_for_without_async_with_deregisters() -> None:
    sensor = Sensor()
    server = Server(bind=("127.0.0.1", 0))
    server.add("/sensor", sensor)
    async with server, Client(timeout=3) as client:
        uri = f"coap://127.0.0.1:{server.port}/sensor"
        with pytest.warns(ResourceWarning, match="dropped while active"):
            async for response in client.observe(uri):
                assert response.text == "0"
                break
            gc.collect()
        await until(lambda: len(server.observers) == 0)  # told with Observe=1
    assert sensor.counts == [1, 0]


async def test_a_resource_is_told_how_many_observe_it() -> None:
    sensor = Sensor()
    server = Server(bind=("127.0.0.1", 0))
    server.add("/sensor", sensor)
    async with server:
        uri = f"coap://127.0.0.1:{server.port}/sensor"
        async with Client(timeout=3) as first, Client(timeout=3) as second:
            async with first.observe(uri) as one:
                await anext(one)
                async with second.observe(uri) as two:
                    await anext(two)
                    assert sensor.counts == [1, 2]
                await until(lambda: sensor.counts[-1] == 1)  # deregistered (Observe=1)
            await until(lambda: sensor.counts[-1] == 0)
        # A client that vanished: removed on the ICMP error its notification draws.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            register = Message(
                MessageType.CON, Code.GET, 7, b"t", Options.build(uri_path=["sensor"], observe=0)
            )
            raw.sendto(register.encode(), ("127.0.0.1", server.port))
            loop = asyncio.get_running_loop()
            assert decode(await asyncio.wait_for(loop.sock_recv(raw, 1500), 3)).code == (
                Code.CONTENT
            )
        await until(lambda: sensor.counts[-1] == 1)
        sensor.value = 1
        sensor.updated()
        await until(lambda: sensor.counts[-1] == 0)
        # And a server closing with observers tells the resource too.
        async with Client(timeout=3) as third, third.observe(uri) as three:
            await anext(three)
            await until(lambda: sensor.counts[-1] == 1)
            await server.close()
    assert sensor.counts == [1, 2, 1, 0, 1, 0, 1, 0]


async def test_a_raising_count_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Sensor):
        def update_observation_count(self, count: int) -> None:
            raise RuntimeError("hook bug")

    server = Server(bind=("127.0.0.1", 0))
    server.add("/sensor", Broken())
    async with (
        server,
        Client(timeout=3) as client,
        client.observe(f"coap://127.0.0.1:{server.port}/sensor") as observation,
    ):
        assert (await anext(observation)).text == "0"
    assert any("update_observation_count" in r.getMessage() for r in caplog.records)


async def test_a_route_is_notified_by_its_path() -> None:
    server = Server(bind=("127.0.0.1", 0))
    state = {"value": 0}

    @server.route("/time", observable=True)
    def now(request: Request) -> Response:
        return Response(payload=str(state["value"]))

    async with (
        server,
        Client(timeout=3) as client,
        client.observe(f"coap://127.0.0.1:{server.port}/time") as observation,
    ):
        assert (await anext(observation)).text == "0"
        state["value"] = 1
        server.notify("/time")
        assert (await asyncio.wait_for(anext(observation), 3)).text == "1"
        with pytest.raises(ValueError, match="no resource at '/nowhere'"):
            server.notify("/nowhere")
