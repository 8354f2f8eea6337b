"""How a Client.observe iteration ends, over real loopback sockets.

* When this program ends it (``Observation.cancel()`` from another task, leaving the
  ``async with`` block, closing the client): cleanly, whether the iterating task is
  waiting for the next response or busy between two.
* When the server goes away (RFC 7641 §3.3.1): the re-registration after Max-Age is
  not answered, and ``anext`` raises within a bound; ``active`` is then False.
* ``Client(timeout=)`` bounds the registration unless ``observe(timeout=)`` overrides it.

Protocol timing is tested on the virtual clock (test_client_sim.py); here a Max-Age of
1 s and a re-registration margin of 0.5 s keep the waits short, and every wait has a
timeout.  The tests that depend on the event loop's socket handling run on asyncio
and on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from coapkit import Code
from coapkit.client import Client, Observation
from coapkit.codec.message import Message, decode
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import NetworkError, RequestTimeout
from coapkit.resources import Resource, Response, Site
from coapkit.server import Server

TIMEOUT = 5.0
MARGIN = 0.5  #: the client's re-registration margin here (5 s by default)


def _runners() -> list[Any]:
    runners: list[Any] = [pytest.param(asyncio.run, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        runners.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("no uvloop")))
    else:
        runners.append(pytest.param(uvloop.run, id="uvloop"))
    return runners


Runner = Callable[[Coroutine[Any, Any, None]], None]
loops = pytest.mark.parametrize("run", _runners())


class Counter(Resource):
    observable = True

    def __init__(self, max_age: int = 30) -> None:
        super().__init__()
        self.value = 0
        self.max_age = max_age

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response(payload=str(self.value), max_age=self.max_age)

    def bump(self) -> None:
        self.value += 1
        self.updated()


def serve(counter: Counter) -> Server:
    site = Site()
    site.add("/counter", counter)
    return Server(site, bind=("127.0.0.1", 0))


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0)


def short_margin(client: Client) -> None:
    client.driver.endpoint.transfers.reregister_margin = MARGIN


async def iterate(observation: Observation, got: list[str], each: Any = None) -> None:
    """The other task: collect the responses until the iteration ends."""
    async for response in observation:
        got.append(response.text)
        if each is not None:
            await each(response)


def waiting(observation: Observation) -> bool:
    """Whether a task is suspended in the observation, awaiting the next response."""
    stream = observation._stream
    return stream is not None and stream._waiter is not None


def queued(observation: Observation) -> int:
    """Responses that arrived and no task has taken yet."""
    stream = observation._stream
    return 0 if stream is None else len(stream._items)


# -- the program ends the observation: the iteration ends cleanly --------------------------------


async def test_cancel_from_another_task_while_it_waits_ends_the_iteration() -> None:
    counter = Counter()
    async with serve(counter) as server, Client() as client:
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
        got: list[str] = []
        task = asyncio.create_task(iterate(observation, got))
        await wait_until(lambda: got == ["0"] and waiting(observation))
        observation.cancel()
        await asyncio.wait_for(task, TIMEOUT)  # returns: no RequestCancelled
        assert not observation.active
        await wait_until(lambda: len(server.observers) == 0)  # deregistered (§3.6)
        assert await anext(observation, None) is None  # and it stays ended


async def test_cancel_between_two_responses_ends_the_iteration_and_drops_the_rest() -> None:
    counter = Counter()
    async with serve(counter) as server, Client() as client:
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
        got: list[str] = []
        busy = asyncio.Event()
        resume = asyncio.Event()

        async def slowly(response: Response) -> None:
            busy.set()
            await resume.wait()

        task = asyncio.create_task(iterate(observation, got, slowly))
        await asyncio.wait_for(busy.wait(), TIMEOUT)
        counter.bump()  # "1" arrives while the task is busy with "0"
        await wait_until(lambda: queued(observation) == 1)
        observation.cancel()
        resume.set()
        await asyncio.wait_for(task, TIMEOUT)
        assert got == ["0"]
        assert not observation.active


async def test_a_response_on_its_way_to_the_task_when_cancel_comes_is_dropped() -> None:
    """The response woke the iterating task, and cancel() runs before that task does."""
    counter = Counter()
    async with serve(counter) as server, Client() as client:
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
        got: list[str] = []
        task = asyncio.create_task(iterate(observation, got))
        await wait_until(lambda: got == ["0"] and waiting(observation))
        stream = observation._stream
        assert stream is not None
        # what the driver does when a notification arrives, then cancel() at once
        stream.push(Message(MessageType.NON, Code.CONTENT, payload=b"late"), ("127.0.0.1", 1))
        observation.cancel()
        await asyncio.wait_for(task, TIMEOUT)
        assert got == ["0"]


async def test_leaving_the_async_with_block_ends_another_tasks_iteration() -> None:
    counter = Counter()
    async with serve(counter) as server, Client() as client:
        got: list[str] = []
        async with client.observe(f"coap://127.0.0.1:{server.port}/counter") as observation:
            task = asyncio.create_task(iterate(observation, got))
            await wait_until(lambda: got == ["0"] and waiting(observation))
        await asyncio.wait_for(task, TIMEOUT)
        assert got == ["0"] and not observation.active
        await wait_until(lambda: len(server.observers) == 0)


async def test_closing_the_client_ends_the_iteration_cleanly() -> None:
    counter = Counter()
    async with serve(counter) as server:
        client = await Client().start()
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
        got: list[str] = []
        task = asyncio.create_task(iterate(observation, got))
        await wait_until(lambda: got == ["0"] and waiting(observation))
        await client.close()
        await asyncio.wait_for(task, TIMEOUT)
        assert got == ["0"] and not observation.active
        observation.cancel()  # after the close: nothing to do, nothing raised


async def test_cancel_before_the_first_anext_sends_nothing() -> None:
    counter = Counter()
    async with serve(counter) as server, Client() as client:
        observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
        observation.cancel()
        assert await anext(observation, None) is None
        assert not observation.active
        assert server.driver.endpoint.messaging.stats.received == 0


# -- the server goes away: the iteration raises within a bound ------------------------------------


@loops
def test_a_closed_server_fails_the_observation_after_max_age(run: Runner) -> None:
    """Max-Age 1: the re-registration goes at 1.5 s, the closed port answers with ICMP
    port unreachable, and ``anext`` raises NetworkError."""

    async def scenario() -> None:
        counter = Counter(max_age=1)
        server = await serve(counter).start()
        async with Client() as client:
            short_margin(client)
            observation = client.observe(f"coap://127.0.0.1:{server.port}/counter")
            async with observation:
                assert (await asyncio.wait_for(anext(observation), TIMEOUT)).text == "0"
                await server.close()
                started = time.monotonic()
                with pytest.raises(NetworkError):
                    await asyncio.wait_for(anext(observation), TIMEOUT)
                assert time.monotonic() - started < 1 + MARGIN + 1.5
                assert not observation.active
                assert await anext(observation, None) is None

    run(scenario())


class HungServer(asyncio.DatagramProtocol):
    """Answers the first registration (Observe 1, Max-Age 1), then nothing: a server that
    hangs, or a firewall that now drops its packets (so no ICMP either)."""

    def __init__(self) -> None:
        self.requests: list[Message] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = decode(data)
        self.requests.append(request)
        if len(self.requests) == 1:
            options = Options.build(observe=1, max_age=1)
            if request.mtype is MessageType.CON:  # piggybacked
                mtype, mid = MessageType.ACK, request.mid
            else:
                mtype, mid = MessageType.NON, (request.mid + 1) % 65536
            reply = Message(mtype, Code.CONTENT, mid, request.token, options, b"x")
            self.transport.sendto(reply.encode(), addr)


@loops
@pytest.mark.parametrize("non", [False, True], ids=["CON", "NON"])
def test_a_hung_server_fails_the_observation_within_the_clients_timeout(
    run: Runner, non: bool
) -> None:
    """No ICMP: the re-registration (1.5 s) goes unanswered for the client's timeout
    (0.5 s), and ``anext`` raises a RequestTimeout saying the server stopped answering."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, hung = await loop.create_datagram_endpoint(
            HungServer, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            async with Client(timeout=0.5) as client:
                short_margin(client)
                observation = client.observe(f"coap://127.0.0.1:{port}/x", non=non)
                async with observation:
                    started = time.monotonic()
                    assert (await asyncio.wait_for(anext(observation), TIMEOUT)).text == "x"
                    with pytest.raises(RequestTimeout) as caught:
                        await asyncio.wait_for(anext(observation), TIMEOUT)
                    elapsed = time.monotonic() - started
                    assert 1 + MARGIN + 0.5 - 0.1 < elapsed < 1 + MARGIN + 0.5 + 1.5
                    assert "stopped answering the observation" in str(caught.value)
                    assert not observation.active
            registration, again = hung.requests[:2]
            assert (registration.options.observe, again.options.observe) == (0, 0)
            assert again.token == registration.token
            assert again.mtype is (MessageType.NON if non else MessageType.CON)
        finally:
            transport.close()

    run(scenario())


# -- the timeout of the registration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_timeout", "observe_timeout"), [(0.3, None), (100.0, 0.3)], ids=["client", "observe"]
)
async def test_the_registration_is_bounded_by_the_clients_timeout_or_its_own(
    client_timeout: float, observe_timeout: float | None
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with Client(timeout=client_timeout) as client:
            observation = client.observe(f"coap://127.0.0.1:{port}/x", timeout=observe_timeout)
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await asyncio.wait_for(anext(observation), TIMEOUT)
            assert time.monotonic() - started < 2
            assert not observation.active
