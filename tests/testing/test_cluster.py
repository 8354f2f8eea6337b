"""A cluster in virtual time: two server processes (two Servers, each with its own copy of the
resources) behind one name, sharing a notification bus, an Echo key and clock-based Observe
numbers.  A change in one reaches the observers of the other; a client moved from one to the
other (its server gone) takes the other's notifications as newer; an Echo value issued by one
is accepted by the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from coapkit import Code, Request, Resource, Response, Site
from coapkit.bus import LocalBus
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.observe.registry import ObserveConfig
from coapkit.testing import VirtualNetwork


class Setting(Resource):
    """State kept where every process reads it (a file here); PUT changes it."""

    observable = True

    def __init__(self, store: Path) -> None:
        super().__init__()
        self.store = store

    def get(self, request: Request) -> Response:
        return Response(payload=self.store.read_text())

    def put(self, request: Request) -> Response:
        self.store.write_bytes(request.payload)
        self.changed()
        return Response(Code.CHANGED)


def process_site(store: Path) -> Site:
    """What one process serves: its own resource objects over the shared state."""
    site = Site()
    site.add("/setting", Setting(store))
    site.add("/big", Big())
    return site


def setting_of(server: object) -> Setting:
    found = server.site.match(["setting"])  # type: ignore[attr-defined]
    assert found is not None and isinstance(found[0], Setting)
    return found[0]


class Big(Resource):
    def get(self, request: Request) -> Response:
        return Response(payload=b"0123456789abcdef" * 100)


async def test_a_change_in_one_process_reaches_the_observers_of_another(tmp_path: Path) -> None:
    store = tmp_path / "setting"
    store.write_text("1")
    bus = LocalBus()
    net = VirtualNetwork(seed=5)
    a = net.server(process_site(store), address="a", bus=bus)
    b = net.server(process_site(store), address="b", bus=bus)
    async with a, b, net.client() as writer, net.client() as watcher:
        seen: list[str] = []
        async with watcher.observe("coap://b/setting") as observation:
            seen.append((await anext(observation)).text)
            for value in ("2", "3"):
                await writer.put("coap://a/setting", value)  # changed in process A
                seen.append((await anext(observation)).text)  # heard by B's observer
        assert a.observers.count_of(setting_of(a)) == 0  # nobody observes it at A
    assert seen == ["1", "2", "3"]


async def test_a_change_without_observers_here_is_published_too(tmp_path: Path) -> None:
    store = tmp_path / "setting"
    store.write_text("x")
    bus = LocalBus()
    net = VirtualNetwork(seed=6)
    a = net.server(process_site(store), address="a", bus=bus)
    b = net.server(process_site(store), address="b", bus=bus)
    async with a, b, net.client() as watcher, watcher.observe("coap://b/setting") as observation:
        assert (await anext(observation)).text == "x"
        store.write_text("y")
        setting_of(a).changed()  # nobody observes it at A
        assert (await anext(observation)).text == "y"
        store.write_text("z")
        await asyncio.sleep(1)
        a.notify("/setting")  # by path, as for a function served with @route
        assert (await anext(observation)).text == "z"


async def test_clock_numbers_let_a_moved_client_take_the_new_process_as_newer(
    tmp_path: Path,
) -> None:
    """Process A numbered many states; A goes away; the client's registration, sent again,
    reaches B (as a load balancer moves it).  With per-process counters B's numbers would
    look older than A's for 128 s (RFC 7641 §3.4); from the clock, they are newer."""
    store = tmp_path / "setting"
    store.write_text("0")
    net = VirtualNetwork(seed=7)
    observe = ObserveConfig(clock_sequence=True)
    a = net.server(process_site(store), address="a", observe=observe)
    await a.start()
    async with net.client() as client:
        observation = client.observe("coap://a/setting")
        await anext(observation)
        setting = setting_of(a)
        for value in range(1, 40):
            store.write_text(str(value))
            setting.changed()
            assert (await anext(observation)).text == str(value)
        await a.close()
        # B takes A's place at the same address, as the load balancer's next backend would
        b = net.server(process_site(store), address="a", observe=observe)
        async with b:
            store.write_text("40")
            got = await asyncio.wait_for(anext(observation), 120)  # after Max-Age + margin
            assert got.text == "40"
            store.write_text("41")
            b.notify("/setting")
            assert (await anext(observation)).text == "41"
            observation.cancel()


async def test_counters_make_the_moved_client_drop_the_new_process(tmp_path: Path) -> None:
    """The same without clock numbers: B's answers look stale to the client."""
    store = tmp_path / "setting"
    store.write_text("0")
    net = VirtualNetwork(seed=7)
    a = net.server(process_site(store), address="a")
    await a.start()
    async with net.client() as client:
        observation = client.observe("coap://a/setting")
        await anext(observation)
        setting = setting_of(a)
        for value in range(1, 40):
            store.write_text(str(value))
            setting.changed()
            await anext(observation)
        await a.close()
        b = net.server(process_site(store), address="a")
        async with b:
            store.write_text("40")
            try:
                await asyncio.wait_for(anext(observation), 100)
            except TimeoutError:
                stale = True
            else:
                stale = False
            observation.cancel()
    assert stale


async def test_an_echo_value_from_one_process_is_accepted_by_another() -> None:
    """The client is challenged by A (4.01 with Echo); its answer reaches B, which shares
    A's key: B answers at once."""
    secret = bytes(range(32))
    net = VirtualNetwork(seed=8)
    shared = AmplificationConfig(secret=secret)
    a = net.server(process_site(Path("/dev/null")), address="a", amplification=shared)
    b = net.server(process_site(Path("/dev/null")), address="b", amplification=shared)
    other = net.server(
        process_site(Path("/dev/null")), address="c", amplification=AmplificationConfig()
    )
    async with a, b, other:
        a_guard = a.endpoint.amplification
        b_guard = b.endpoint.amplification
        c_guard = other.endpoint.amplification
        assert a_guard is not None and b_guard is not None and c_guard is not None
        remote = ("192.0.2.7", 40000)
        echo = a_guard.challenge(remote, a.driver.loop.time())
        assert b_guard.verify(remote, echo, b.driver.loop.time() + 5)
        assert not c_guard.verify(remote, echo, other.driver.loop.time() + 5)
        assert "secret=<secret>" in repr(a_guard.config) and secret.hex() not in repr(shared)
        async with net.client() as client:
            response = await client.get("coap://b/big")  # challenged and answered at B
            assert len(response.payload) == 1600
