"""Shared observations (RFC 7641 §5) on the virtual clock: many observers, one upstream
observation; the last one leaving ends it; upstream loss and recovery."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from coapkit import CON, Client, Code, Message, Options, Request, Response
from coapkit.client import Observation
from coapkit.codec.message import decode
from coapkit.proxy import ProxyConfig
from coapkit.testing import VirtualNetwork
from tests.proxy.helpers import Origin, Setup, proxied

CLOCK = "coap://origin/clock"


def observe(s: Setup, client: Client, uri: str = CLOCK) -> Observation:
    return client.observe("coap://proxy", options=s.via(uri))


async def ticks(s: Setup, count: int, every: float = 5.0) -> None:
    for _ in range(count):
        await asyncio.sleep(every)
        s.origin.clock.tick()


async def test_100_observers_cost_one_upstream_observation() -> None:
    async with proxied(seed=7) as s:
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(s.net.client()) for _ in range(100)]
            observations = [observe(s, client) for client in clients]
            for observation in observations:
                await stack.enter_async_context(observation)
            seen: list[list[str]] = [[] for _ in clients]

            async def follow(index: int, observation: Observation) -> None:
                async for response in observation:
                    seen[index].append(response.text)
                    if len(seen[index]) == 4:
                        return

            followers = [asyncio.create_task(follow(i, o)) for i, o in enumerate(observations)]
            await asyncio.sleep(1)
            assert s.origin_server.observers.count_of(s.origin.clock) == 1  # one upstream
            assert (
                s.proxy_server.observers.count_of(s.proxy.observations.observations()[0].resource)
                == 100
            )
            await ticks(s, 3)
            await asyncio.gather(*followers)
            assert all(texts == ["0", "1", "2", "3"] for texts in seen)
            # the origin sent each state once, to the proxy, which sent it on to each client
            from_origin = [
                decode(entry.data)
                for entry in s.net.simulated.sent_between(
                    s.origin_server.address, s.upstream.local_address
                )
            ]
            assert sum(m.code == Code.CONTENT for m in from_origin) == 4
            to_clients = [
                entry
                for entry in s.net.trace
                if entry.event == "sent"
                and entry.src == s.proxy_server.address
                and decode(entry.data).code == Code.CONTENT
            ]
            assert len(to_clients) == 400
            assert s.proxy.observations.started == 1
        # every client left: the proxy deregistered upstream (RFC 7641 §3.6)
        await asyncio.sleep(1)
        assert s.origin.clock.counts[-1] == 0 and max(s.origin.clock.counts) == 1
        assert len(s.proxy.observations) == 0
        deregistrations = [m for m in s.upstream_requests() if m.options.observe == 1]
        assert len(deregistrations) == 1


async def test_a_late_observer_gets_the_current_state_at_once() -> None:
    async with proxied() as s, s.net.client() as late:
        async with observe(s, s.client) as first:
            assert (await anext(first)).text == "0"
            await ticks(s, 2)
            assert [(await anext(first)).text for _ in range(2)] == ["1", "2"]
            started = s.net.now
            async with observe(s, late) as second:
                response = await anext(second)
                # answered from the shared observation: no trip to the origin
                assert response.text == "2" and s.net.now - started < 0.05
                s.origin.clock.tick()
                assert (await anext(second)).text == "3"
                assert (await anext(first)).text == "3"
        assert s.proxy.observations.started == 1


async def test_a_get_of_an_observed_resource_is_answered_from_the_cache() -> None:
    async with proxied() as s, observe(s, s.client) as observation:
        await anext(observation)
        s.origin.clock.tick()
        await anext(observation)
        calls = len(s.upstream_requests())
        response = await s.client.get("coap://proxy", options=s.via(CLOCK))
        assert response.text == "1" and len(s.upstream_requests()) == calls


async def test_observing_through_a_reverse_rule() -> None:
    async with proxied(forward=False, reverse={"/up": "coap://origin"}) as s:
        async with s.client.observe("coap://proxy/up/clock") as observation:
            texts = [(await anext(observation)).text]
            await ticks(s, 2, every=1.0)
            texts += [(await anext(observation)).text for _ in range(2)]
        assert texts == ["0", "1", "2"]
        await asyncio.sleep(1)
        assert s.origin.clock.counts == [1, 0]


async def test_upstream_loss_ends_the_observations_and_a_new_one_recovers() -> None:
    net = VirtualNetwork(seed=3)
    origin = Origin()
    async with proxied(net=net, origin=origin) as s, net.client() as other:
        endings: list[Response] = []

        async def follow(client: Client) -> None:
            async with observe(s, client) as observation:
                endings.extend([r async for r in observation if r.code != Code.CONTENT])

        followers = [asyncio.create_task(follow(c)) for c in (s.client, other)]
        await asyncio.sleep(1)
        await s.origin_server.close()  # the origin goes away
        # The proxy's upstream observation notices at its re-registration (Max-Age 60 and a
        # margin): port unreachable.  Both observers get 5.02 as their last notification.
        await asyncio.wait_for(asyncio.gather(*followers), 120)
        assert [r.code for r in endings] == [Code.BAD_GATEWAY] * 2
        assert "unreachable" in endings[0].text
        await asyncio.sleep(1)  # (a re-registration that met the failure tried once more)
        assert len(s.proxy.observations) == 0
        # The origin comes back; observing again works, through one new upstream observation.
        async with (
            net.server(origin.site, address="origin") as back,
            observe(s, s.client) as again,
            observe(s, other) as again2,
        ):
            assert (await anext(again)).text == (await anext(again2)).text == "0"
            origin.clock.tick()
            assert (await anext(again)).text == (await anext(again2)).text == "1"
            assert back.observers.count_of(origin.clock) == 1
        assert s.proxy.observations.started in (2, 3)


async def test_an_error_notification_ends_every_observation() -> None:
    async with proxied() as s:
        async with observe(s, s.client) as observation:
            assert (await anext(observation)).text == "0"
            s.origin.site.remove("/clock")  # the resource is gone: its observers told so
            s.origin_server.observers.remove_key(s.origin.clock)
            await asyncio.sleep(70)  # the upstream re-registration gets 4.04
            last = await anext(observation)
            assert last.code == Code.NOT_FOUND
            assert await anext(observation, None) is None
        assert len(s.proxy.observations) == 0


async def test_an_unobservable_resource_answers_without_observe() -> None:
    async with proxied() as s:
        async with observe(s, s.client, "coap://origin/temp") as observation:
            response = await anext(observation)
            assert response.text == "21 C" and response.observe is None
            assert await anext(observation, None) is None
        assert len(s.proxy.observations) == 0 and len(s.proxy.cache) == 1


async def test_an_observation_nobody_registers_for_ends_after_the_grace() -> None:
    async with proxied(config=ProxyConfig(observe_grace=2.0)) as s:
        # a registration answered by the site alone: no server registers an observer
        message = Message(CON, Code.GET, 0, b"", Options.build(proxy_uri=CLOCK, observe=0))
        result = s.proxy.dispatch(Request(message, ("192.0.2.9", 5683)))
        assert not isinstance(result, Response)
        assert (await result).text == "0"
        assert len(s.proxy.observations) == 1
        await asyncio.sleep(3)
        assert len(s.proxy.observations) == 0
        assert s.origin.clock.counts == [1, 0]


async def test_observations_beyond_the_limit_are_plain_requests() -> None:
    async with (
        proxied(config=ProxyConfig(max_observations=1)) as s,
        s.net.client() as other,
        observe(s, s.client) as first,
    ):
        assert (await anext(first)).observe is not None
        async with observe(s, other, "coap://origin/clock?other") as second:
            response = await anext(second)
            assert response.code == Code.CONTENT and response.observe is None
