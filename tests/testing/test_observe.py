"""Observe (RFC 7641) between the real client and server, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from coapkit import Code, Response
from coapkit.errors import NetworkError, RetransmissionsExceeded
from coapkit.testing import VirtualNetwork
from tests.testing.helpers import App, sent


async def change_every(app: App, seconds: float, values: list[int]) -> None:
    for value in values:
        await asyncio.sleep(seconds)
        app.thermometer.set(value)


async def test_notifications_arrive_when_the_state_changes() -> None:
    app = App()
    net = VirtualNetwork(seed=1)
    async with net.server(app.site) as server, net.client() as client:
        changes = asyncio.create_task(change_every(app, 10.0, [21, 22, 23]))
        seen: list[tuple[float, str, int | None]] = []
        async with client.observe("coap://server/temperature") as observation:
            async for response in observation:
                seen.append((round(net.now, 3), response.text, response.options.observe))
                if len(seen) == 4:
                    break
        await changes
        assert server.observers.count_of(app.thermometer) == 1
        await asyncio.sleep(1)  # the deregistration (GET with Observe=1, RFC 7641 §3.6)
        assert server.observers.count_of(app.thermometer) == 0

    assert [(t, text) for t, text, _ in seen] == [
        (0.01, "20"),
        (10.005, "21"),
        (20.005, "22"),
        (30.005, "23"),
    ]
    numbers = [number for _, _, number in seen]
    assert all(n is not None for n in numbers) and numbers == sorted(numbers)


async def test_a_quiet_resource_is_registered_again_after_max_age() -> None:
    """No notification for Max-Age (60 s) and a margin: the client asks again (§3.3.1)."""
    app = App()
    net = VirtualNetwork(seed=2)
    async with net.server(app.site) as server, net.client() as client:
        changes = asyncio.create_task(change_every(app, 150.0, [30]))
        async with client.observe("coap://server/temperature") as observation:
            texts = [(await anext(observation)).text, (await anext(observation)).text]
            registrations = [
                t
                for t, m in sent(net, client.local_address, server.address)
                if m.code == Code.GET and m.options.observe == 0
            ]
        await changes
    assert texts == ["20", "30"]
    # Registered at 0, again at 65 s and 130 s (Max-Age 60 plus 5), each answered.
    assert [round(t) for t in registrations] == [0, 65, 130]


@pytest.mark.parametrize("unreachable", [False, True], ids=["silent", "icmp"])
async def test_a_server_that_went_away_ends_the_observation(unreachable: bool) -> None:
    app = App()
    net = VirtualNetwork(seed=3, unreachable=unreachable)
    server = await net.server(app.site).start()
    async with net.client() as client:
        observation = client.observe("coap://server/temperature")
        first = await anext(observation)
        gone_at = net.now
        await server.close()
        error_type = NetworkError if unreachable else RetransmissionsExceeded
        with pytest.raises(error_type) as raised:
            await anext(observation)
        assert not observation.active
    assert first.text == "20"
    waited = net.now - gone_at
    if unreachable:
        # The re-registration after Max-Age and 5 s met a closed port: ICMP says so.
        assert waited == pytest.approx(65.01, abs=0.02)
        assert "port unreachable" in str(raised.value)
    else:
        # The re-registration after 65 s went unanswered for its CON's whole life:
        # 62 to 93 s more (RFC 7252 §4.8.2).
        assert 65.0 + 62.0 <= waited <= 65.0 + 93.1
        assert "stopped answering the observation" in str(raised.value)


async def test_over_a_lossy_link_the_client_ends_up_with_the_latest_state() -> None:
    """Notifications are NON and get lost; the newest state still arrives, at the latest
    with the answer to a re-registration."""
    app = App()
    net = VirtualNetwork(seed=4, loss=0.3)
    async with net.server(app.site), net.client() as client:
        changes = asyncio.create_task(change_every(app, 5.0, list(range(21, 41))))
        latest = ""
        async with client.observe("coap://server/temperature") as observation:
            async for response in observation:
                latest = response.text
                if latest == "40":
                    break
        await changes
    assert latest == "40"
    assert net.simulated.lost > 0
    assert net.now < 100.0 + 65.0 + 93.0


async def test_async_renderings_of_notifications() -> None:
    app = App()

    @app.site.route("/slow-sensor", observable=True)
    async def slow_sensor(request: object) -> Response:
        await asyncio.sleep(2)
        return Response(payload=str(app.thermometer.celsius))

    net = VirtualNetwork(seed=5)
    async with net.server(app.site), net.client() as client:
        sensor = app.site.match(("slow-sensor",))
        assert sensor is not None

        async def change() -> None:
            await asyncio.sleep(10)
            app.thermometer.celsius = 25
            sensor[0].updated()

        changes = asyncio.create_task(change())
        async with client.observe("coap://server/slow-sensor") as observation:
            first = await anext(observation)
            first_at = net.now
            second = await anext(observation)
        await changes
    assert (first.text, second.text) == ("20", "25")
    assert first_at == pytest.approx(2.01)
    assert net.now == pytest.approx(12.005)
