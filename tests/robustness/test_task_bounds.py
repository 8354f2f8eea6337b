"""Task sets with a bound, flooded on real sockets (asyncio and uvloop).

* Request handlers that never return: 1,100 NON requests from 11 ports (the
  field report, which left every later request with 5.03 for good).  At most
  ``max_pending`` handler tasks run; each is cancelled after
  ``handler_timeout`` and its slot given back, so the server serves again.
* Slow asynchronous notification renderings: every update used to start one
  task per observer (28,000 tasks in 30 s).  At most two per observer run, the
  newest state waits, and every observer ends with the newest state.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.client import Client
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from coapkit.resources import Resource, Response
from coapkit.server import RENDERS_PER_OBSERVER, Server
from tests.runtime.loops import LOOPS, run_on

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def test_never_returning_handlers_from_many_ports_hold_no_slot_for_ever(loop: str) -> None:
    async def main() -> None:
        server = Server(bind=("127.0.0.1", 0), handler_timeout=1.0)

        @server.route("/never")
        async def never(request: Any) -> Response:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        @server.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hi")

        async with server, Client(timeout=5) as client:
            sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(11)]
            try:
                for n, sock in enumerate(sockets):
                    sock.setblocking(False)
                    for k in range(100):
                        request = Message(
                            MessageType.NON,
                            Code.GET,
                            k,
                            bytes((n, k)),
                            Options.build(uri_path=["never"]),
                        )
                        sock.sendto(request.encode(), ("127.0.0.1", server.port))
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
                driver = server.driver
                assert len(driver._tasks) == 1000  # max_pending, no more
                assert driver.overloaded == 100  # the rest were told to come back later
                hello = f"coap://127.0.0.1:{server.port}/hello"
                busy = await client.get(hello)  # answered, even while every slot is taken
                assert busy.code == Code.SERVICE_UNAVAILABLE and busy.options.max_age == 2
                await asyncio.sleep(1.2)  # past handler_timeout
                assert len(driver._tasks) == 0 and driver._pending_by_remote == {}
                assert driver.handlers_timed_out == 1000
                assert (await client.get(hello)).text == "hi"
                # Every request got an answer: 1,000 x 5.00 and 100 x 5.03.
                codes: dict[int, int] = {}
                for sock in sockets:
                    while True:
                        try:
                            data = sock.recv(2048)
                        except BlockingIOError:
                            break
                        code = decode(data).code
                        codes[code] = codes.get(code, 0) + 1
                assert codes == {Code.INTERNAL_SERVER_ERROR: 1000, Code.SERVICE_UNAVAILABLE: 100}
            finally:
                for sock in sockets:
                    sock.close()

    run_on(loop, main())


class SlowRender(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0
        self.running = 0
        self.most = 0

    async def get(self, request: Any) -> Response:
        value = self.value
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.2)
        finally:
            self.running -= 1
        return Response(payload=str(value))


def test_slow_renderings_are_bounded_per_observer_and_end_with_the_newest_state(
    loop: str,
) -> None:
    async def main() -> None:
        resource = SlowRender()
        server = Server(bind=("127.0.0.1", 0))
        server.add("/slow", resource)
        observers = 20
        async with server:
            clients = [Client(timeout=5) for _ in range(observers)]
            observations = []
            for client in clients:
                await client.start()
                observation = client.observe(f"coap://127.0.0.1:{server.port}/slow")
                await observation.start()
                assert (await asyncio.wait_for(anext(observation), 3)).text == "0"
                observations.append(observation)
            for value in range(1, 301):  # 300 updates in about 0.3 s, renders take 0.2 s
                resource.value = value
                resource.updated()
                tasks = sum(len(running) for running in server._render_tasks.values())
                assert tasks <= RENDERS_PER_OBSERVER * observers
                await asyncio.sleep(0.001)
            assert resource.most <= RENDERS_PER_OBSERVER * observers
            for observation in observations:
                last = None
                while last != "300":
                    last = (await asyncio.wait_for(anext(observation), 3)).text
            assert server._render_tasks == {} and server._render_next == {}
            for client in clients:
                await client.close()

    run_on(loop, main())
