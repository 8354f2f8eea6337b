"""Observers whose process died, on real sockets, on asyncio and uvloop (RFC 7641 §4.5).

A client killed with SIGKILL sends no RST and no deregistration; its socket is
closed, so the first notification to it draws an ICMP port unreachable.  That
error must end exactly that client's observations, at once, and must not be
blamed on the next observer a notification goes to (which lost notifications
before: the kernel reports a queued error from the next send, whoever it is for).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.client import Client
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from coapkit.observe.registry import ObserveConfig
from coapkit.resources import Resource, Response
from coapkit.server import Server
from tests.runtime.loops import LOOPS, run_on

pytestmark = pytest.mark.parametrize("loop", LOOPS)


class Ticker(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0

    def get(self, request: Any) -> Response:
        return Response(payload=str(self.value))


async def register_raw(port: int, token: bytes) -> socket.socket:
    """Observe /tick from a plain socket (as a process about to be killed would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    request = Message(
        MessageType.CON,
        Code.GET,
        int.from_bytes(token[-2:], "big"),  # a port may be reused: a new MID is a new request
        token,
        Options.build(uri_path=["tick"], observe=0),
    )
    sock.sendto(request.encode(), ("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    answer = decode(await asyncio.wait_for(loop.sock_recv(sock, 2048), 3.0))
    assert answer.code == Code.CONTENT and answer.options.observe is not None
    return sock


async def until(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.005)


def test_a_killed_observer_is_removed_and_the_others_get_every_notification(loop: str) -> None:
    async def main() -> None:
        ticker = Ticker()
        server = Server(bind=("127.0.0.1", 0))
        server.add("/tick", ticker)
        async with server, Client(timeout=3) as client:
            uri = f"coap://127.0.0.1:{server.port}/tick"
            async with client.observe(uri) as observation:
                assert (await anext(observation)).text == "0"
                (await register_raw(server.port, b"dead")).close()  # registered, then SIGKILLed
                assert len(server.observers) == 2
                received = []
                for value in range(1, 21):
                    ticker.value = value
                    ticker.updated()
                    response = await asyncio.wait_for(anext(observation), 2.0)
                    received.append(int(response.text))
                    await asyncio.sleep(0.01)  # the ICMP error comes back meanwhile
                assert received == list(range(1, 21))  # none lost to a misattributed error
                await until(lambda: len(server.observers) == 1)  # the dead one went

    run_on(loop, main())


def test_vanished_observers_at_the_cap_are_cleared_and_new_clients_can_observe(
    loop: str,
) -> None:
    """The field report: 10,000 dead observers (the cap) stayed registered through 50,000
    ICMP errors, so no new client could observe.  Here 300 at a cap of 300."""

    async def main() -> None:
        ticker = Ticker()
        server = Server(bind=("127.0.0.1", 0), observe=ObserveConfig(max_observers=300))
        server.add("/tick", ticker)
        async with server, Client(timeout=3) as client:
            for n in range(300):
                (await register_raw(server.port, n.to_bytes(2, "big"))).close()
            assert len(server.observers) == 300
            uri = f"coap://127.0.0.1:{server.port}/tick"
            refused = await client.get(uri, options=Options.build(observe=0))
            assert refused.options.observe is None  # full: answered without Observe (§4.1)
            ticker.value = 1
            ticker.updated()  # 300 notifications to closed ports: 300 ICMP errors
            await until(lambda: len(server.observers) == 0)
            async with client.observe(uri) as observation:
                first = await asyncio.wait_for(anext(observation), 2.0)
                assert first.options.observe is not None and first.text == "1"
                ticker.value = 2
                ticker.updated()
                assert (await asyncio.wait_for(anext(observation), 2.0)).text == "2"

    run_on(loop, main())
