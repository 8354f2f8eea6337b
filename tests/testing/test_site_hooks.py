"""The two questions a server asks its site about Observe (Site.observable_resource,
Site.render_notification), and what the server keeps about a resource nobody observes."""

from __future__ import annotations

import asyncio

from coapkit import Code, Request, Resource, Response, Site
from coapkit.testing import VirtualNetwork


class Channel(Resource):
    """A resource made on demand, not routed: one per channel name."""

    observable = True
    hidden = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.value = 0
        self.counts: list[int] = []

    def update_observation_count(self, count: int) -> None:
        self.counts.append(count)


class ChannelSite(Site):
    """``/channel?NAME`` is observed on the Channel of that name, made at the first
    registration; notifications are rendered by the site, not by dispatching again."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: dict[str, Channel] = {}
        self.renders = 0

        @self.route("/channel")
        def channel(request: Request) -> Response:
            name = request.query[0] if request.query else "default"
            found = self.channels.setdefault(name, Channel(name))
            return Response(payload=f"{name}={found.value}")

    def observable_resource(self, request: Request) -> Resource | None:
        if request.path == ("channel",):
            return self.channels.get(request.query[0] if request.query else "default")
        return super().observable_resource(request)

    def render_notification(self, request: Request, resource: Resource) -> Response:
        assert isinstance(resource, Channel)
        self.renders += 1
        return Response(payload=f"{resource.name}:{resource.value}")


async def test_a_site_answers_for_resources_it_does_not_route() -> None:
    site = ChannelSite()
    net = VirtualNetwork(seed=1)
    async with net.server(site) as server, net.client() as client:
        seen: list[str] = []
        async with client.observe("coap://server/channel?news") as observation:
            async for response in observation:
                seen.append(response.text)
                if len(seen) == 3:
                    break
                news = site.channels["news"]
                news.value += 1
                news.updated()
        await asyncio.sleep(1)  # the deregistration
        news = site.channels["news"]
        assert news.counts == [1, 0]
        # nothing kept about it: no update listener, no sequence number
        assert not server._observed
        assert server.observers.count_of(news) == 0
        assert news not in server.observers._sequences
    assert seen == ["news=0", "news:1", "news:2"]
    assert site.renders == 2


async def test_a_static_resource_is_forgotten_and_observed_again() -> None:
    site = Site()
    state = {"value": 0}

    @site.route("/value", observable=True)
    def value(request: Request) -> Response:
        return Response(payload=str(state["value"]))

    net = VirtualNetwork(seed=2)
    async with net.server(site) as server, net.client() as client:
        for round_ in range(2):
            async with client.observe("coap://server/value") as observation:
                first = await anext(observation)
                state["value"] += 1
                server.notify("/value")
                second = await anext(observation)
            assert (first.code, second.code) == (Code.CONTENT, Code.CONTENT)
            assert int(second.text) == int(first.text) + 1 == round_ + 1
            await asyncio.sleep(1)
            assert not server._observed
