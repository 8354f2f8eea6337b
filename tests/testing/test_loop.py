"""The virtual-time event loop: asyncio as usual, but waiting jumps the clock."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from coapkit import Client
from coapkit.errors import ProtocolUsageError
from coapkit.testing import (
    VirtualClock,
    VirtualEventLoop,
    VirtualNetwork,
    VirtualTimeDeadlock,
    run,
)
from tests.testing.helpers import App


async def test_sleeping_moves_the_clock_and_nothing_else() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualEventLoop)
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        order.append((name, loop.time()))

    started = time.perf_counter()
    await asyncio.gather(sleeper("day", 86400), sleeper("minute", 60), sleeper("now", 0))
    assert order == [("now", 0.0), ("minute", 60.0), ("day", 86400.0)]
    assert time.perf_counter() - started < 1.0


async def test_timeouts_expire_in_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), timeout=93)
    assert loop.time() == 93.0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(7):
            await asyncio.sleep(3600)
    assert loop.time() == 100.0


def test_a_task_nobody_can_wake_is_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    started = time.perf_counter()
    with pytest.raises(VirtualTimeDeadlock, match="a real event loop would wait for ever"):
        run(main())
    assert time.perf_counter() - started < 1.0


async def test_threads_are_waited_for_in_real_time() -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    result = await asyncio.to_thread(lambda: time.sleep(0.05) or "slept")
    assert result == "slept"
    assert time.perf_counter() - started >= 0.05
    assert loop.time() == 0.0  # real time is not virtual time

    woken = loop.create_future()
    thread = threading.Thread(target=lambda: loop.call_soon_threadsafe(woken.set_result, 1))
    # A thread of one's own is not known to the loop: do the waiting through the loop
    # (to_thread, run_in_executor) so that it does not count as a deadlock.
    await loop.run_in_executor(None, lambda: (thread.start(), thread.join()))
    assert await woken == 1


def test_run_returns_the_result_and_starts_at_zero() -> None:
    async def main() -> float:
        await asyncio.sleep(2.5)
        return asyncio.get_running_loop().time()

    assert run(main()) == 2.5


def test_a_loop_on_a_clock_of_ones_own() -> None:
    clock = VirtualClock(start=1000.0)
    loop = VirtualEventLoop(clock)
    try:
        loop.run_until_complete(asyncio.sleep(5))
    finally:
        loop.close()
    assert clock.now == 1005.0


async def test_getaddrinfo_answers_the_networks_names_and_numbers_only() -> None:
    net = VirtualNetwork()
    net.add_host("server")
    net.add_host("six", "2001:db8::6")
    loop = asyncio.get_running_loop()
    [info] = await loop.getaddrinfo("server", 5683, type=socket.SOCK_DGRAM)
    assert info[0] == socket.AF_INET and info[4] == ("192.0.2.1", 5683)
    [info] = await loop.getaddrinfo("SIX.", 5683)
    assert info[0] == socket.AF_INET6 and info[4] == ("2001:db8::6", 5683, 0, 0)
    assert await loop.getaddrinfo("six", 5683, family=socket.AF_INET) == []
    numeric = await loop.getaddrinfo("198.51.100.7", 1, type=socket.SOCK_DGRAM)
    assert numeric[0][4] == ("198.51.100.7", 1)
    with pytest.raises(socket.gaierror, match="not a host of the virtual network"):
        await loop.getaddrinfo("localhost", 5683)


async def test_a_loop_without_a_network_makes_one_for_clients() -> None:
    loop = asyncio.get_running_loop()
    async with Client() as client:
        assert client.local_address == ("192.0.2.1", 49152)
    network = loop.datagram_network  # type: ignore[attr-defined]
    assert isinstance(network, VirtualNetwork)
    assert network is loop.datagram_network  # type: ignore[attr-defined]


def test_a_network_made_outside_joins_the_loop_it_is_used_on() -> None:
    """As a pytest fixture would make it; one loop after another, as tests come."""
    net = VirtualNetwork(seed=1)
    app = App()

    async def main() -> str:
        async with net.server(app.site), net.client() as client:
            return (await client.get("coap://server/hello")).text

    assert run(main()) == "Hello, world!"
    assert net.now == pytest.approx(0.01)

    async def again() -> str:
        async with net.client() as client:
            return (await client.get("coap://server/hello")).text

    with pytest.raises(Exception, match="port unreachable"):
        run(again())  # the server closed with the first loop


def test_one_network_runs_on_one_loop_at_a_time() -> None:
    net = VirtualNetwork()
    first = VirtualEventLoop()
    second = VirtualEventLoop()
    try:

        async def use() -> None:
            await net.client().start()

        first.run_until_complete(use())
        with pytest.raises(ProtocolUsageError, match="another event loop"):
            second.run_until_complete(use())
    finally:
        first.close()
        second.close()
