"""The registration client and simple registration, and the policies, in virtual time."""

from __future__ import annotations

import asyncio

from coapkit import Code, Message, Options, Request, Site
from coapkit.codec.types import MessageType
from coapkit.rd import AuthenticatedPolicy, FirstComePolicy, RDConfig
from coapkit.rd.registrant import Registrant
from coapkit.testing import VirtualNetwork
from tests.rd.helpers import RD, directory


def device_site() -> Site:
    site = Site()

    @site.route("/sensors/temp", rt="temperature-c", observable=True)
    def temp(request: Request) -> str:
        return "21.5"

    @site.route("/sensors/light", rt="light-lux")
    def light(request: Request) -> str:
        return "300"

    return site


async def test_registers_refreshes_and_deregisters() -> None:
    net = VirtualNetwork()
    async with (
        directory(net),
        net.server(device_site(), address="device") as server,
        net.client() as client,
    ):
        registrant = Registrant(server, RD, ep="dev1", lifetime=60)
        async with registrant:
            await registrant.registered.wait()
            assert registrant.location is not None
            found = (await client.get(f"{RD}/rd-lookup/res?ep=dev1")).links()
            device = "coap://{}:5683".format(net.lookup("device"))
            assert [link.target for link in found] == [
                f"{device}/sensors/light",
                f"{device}/sensors/temp",
            ]
            await asyncio.sleep(600)  # ten lifetimes
            assert registrant.updates >= 10 and registrant.registrations == 1
            assert len((await client.get(f"{RD}/rd-lookup/ep")).links()) == 1
        assert registrant.state == "stopped"
        assert (await client.get(f"{RD}/rd-lookup/ep")).payload == b""


async def test_registers_again_after_a_404_and_an_rd_restart() -> None:
    net = VirtualNetwork()
    async with net.server(device_site(), address="device") as server, net.client() as client:
        registrant = Registrant(server, RD, ep="dev1", lifetime=100)
        async with directory(net):
            await registrant.start()
            await registrant.registered.wait()
            first = registrant.location
            assert (await client.delete(f"{RD}{first}")).code == Code.DELETED
            registrant.registered.clear()
            await registrant.registered.wait()  # the update's 4.04: registered anew
            assert registrant.registrations == 2
            assert registrant.location != first
        # the directory is gone (port unreachable): the registrant keeps trying...
        await asyncio.sleep(150)
        assert registrant.state == "retrying"
        # ...and registers with the new one (an empty store) when it comes
        async with directory(net):
            registrant.registered.clear()
            await registrant.registered.wait()
            assert registrant.registrations == 3
            found = (await client.get(f"{RD}/rd-lookup/ep")).links()
            assert [link.get("ep") for link in found] == ["dev1"]
            await registrant.stop()


async def test_waits_for_max_age_of_a_503() -> None:
    net = VirtualNetwork()
    config = RDConfig(max_registrations=1, retry_after=30)
    async with directory(net, config=config), net.client() as client:
        taken = await client.post(f"{RD}/rd?ep=other", b"</x>")
        async with net.server(device_site(), address="device") as server:
            registrant = Registrant(server, RD, ep="dev1")
            async with registrant:
                await asyncio.sleep(10)
                assert registrant.state == "retrying" and registrant.location is None
                await client.delete(f"{RD}/" + "/".join(taken.location_path))
                started = asyncio.get_running_loop().time()
                await registrant.registered.wait()
                assert asyncio.get_running_loop().time() - started <= 30


async def test_refresh_sends_the_links_again() -> None:
    net = VirtualNetwork()
    site = device_site()
    async with directory(net), net.server(site, address="device") as server:  # noqa: SIM117 (two layers: the directory, then its users)
        async with net.client() as client, Registrant(server, RD, ep="dev1") as registrant:
            await registrant.registered.wait()

            @site.route("/actuators/led", rt="led")
            def led(request: Request) -> str:
                return "on"

            registrant.registered.clear()
            registrant.refresh()
            await registrant.registered.wait()
            found = (await client.get(f"{RD}/rd-lookup/res?rt=led")).links()
            assert len(found) == 1 and registrant.registrations == 1


async def test_simple_registration_fetches_well_known_core() -> None:
    net = VirtualNetwork()
    async with directory(net), net.server(device_site(), address="device") as server:  # noqa: SIM117 (two layers: the directory, then its users)
        async with net.client() as client:
            driver = server.listeners[0].driver
            rd = driver.transport.remote_for((net.lookup("rd"), 5683))
            post = Message(
                MessageType.CON,
                Code.POST,
                options=Options.build(uri_path=[".well-known", "rd"], uri_query=["ep=simple"]),
            )
            reply, _ = await driver.request(post, rd)
            assert reply.code == Code.CHANGED
            found = (await client.get(f"{RD}/rd-lookup/res?ep=simple")).links()
            assert {link.get("rt") for link in found} == {"temperature-c", "light-lux"}
            with_base = await client.post(f"{RD}/.well-known/rd?ep=x&base=coap://a")
            assert with_base.code == Code.BAD_REQUEST
            # a source that serves no /.well-known/core: 5.02 or 5.04, nothing stored
            lonely = await client.post(f"{RD}/.well-known/rd?ep=lonely")
            assert lonely.code in (Code.BAD_GATEWAY, Code.GATEWAY_TIMEOUT), lonely
            assert (await client.get(f"{RD}/rd-lookup/ep?ep=lonely")).payload == b""


async def test_first_come_first_remembered() -> None:
    net = VirtualNetwork()
    async with directory(net, policy=FirstComePolicy()), net.client() as alice:  # noqa: SIM117 (two layers: the directory, then its users)
        async with net.client() as mallory:
            created = await alice.post(f"{RD}/rd?ep=door", b"</lock>")
            location = f"{RD}/" + "/".join(created.location_path)
            taken = await mallory.post(f"{RD}/rd?ep=door", b"</evil>")
            assert taken.code == Code.FORBIDDEN and "another requester" in taken.text
            assert (await mallory.post(location)).code == Code.FORBIDDEN
            assert (await mallory.delete(location)).code == Code.FORBIDDEN
            assert (await alice.post(f"{RD}/rd?ep=door", b"</lock2>")).code == Code.CREATED
            assert (await mallory.post(f"{RD}/rd?ep=door&d=other", b"</x>")).code == Code.CREATED
            assert (await alice.delete(location)).code == Code.DELETED
            assert (await mallory.post(f"{RD}/rd?ep=door", b"</mine>")).code == Code.CREATED


async def test_authenticated_names_come_from_the_identity() -> None:
    net = VirtualNetwork()
    trusted = net.add_host("trusted")

    def identify(request: Request) -> str | None:
        return "sensor-7" if request.remote.host == trusted else None

    async with directory(net, policy=AuthenticatedPolicy(), identify=identify):  # noqa: SIM117 (two layers: the directory, then its users)
        async with net.client(address="trusted") as good, net.client() as anonymous:
            refused = await anonymous.post(f"{RD}/rd?ep=sensor-7", b"</x>")
            assert refused.code == Code.UNAUTHORIZED
            other = await good.post(f"{RD}/rd?ep=sensor-8", b"</x>")
            assert other.code == Code.FORBIDDEN
            created = await good.post(f"{RD}/rd", b"</x>")  # ep from the identity
            assert created.code == Code.CREATED
            found = (await good.get(f"{RD}/rd-lookup/ep")).links()
            assert [link.get("ep") for link in found] == ["sensor-7"]
            location = f"{RD}/" + "/".join(created.location_path)
            assert (await anonymous.delete(location)).code == Code.UNAUTHORIZED
