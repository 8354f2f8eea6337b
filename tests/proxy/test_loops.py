"""Loops end with 5.08 Hop Limit Reached (RFC 8768), never in a storm; in virtual time."""

from __future__ import annotations

from coapkit import Code
from coapkit.codec.message import decode
from coapkit.proxy import ProxySite
from coapkit.testing import VirtualNetwork


async def test_a_proxy_pointed_at_itself_ends_with_5_08() -> None:
    net = VirtualNetwork(seed=1)
    site = ProxySite(reverse={"/loop": "coap://proxy/loop"}, name="proxy:5683")
    async with net.server(site, address="proxy") as server, site, net.client() as client:
        response = await client.get("coap://proxy/loop/x")
        elapsed = net.now
    assert response.code == Code.HOP_LIMIT_REACHED
    # the proxy that said it, and each of the 15 that relayed it, named
    names = response.text.split(", ")
    assert names == ["proxy:5683"] * 16
    requests = [
        decode(entry.data)
        for entry in net.trace
        if entry.event == "sent" and entry.dst == server.address
    ]
    gets = [message for message in requests if message.code == Code.GET]
    # the client's request (no Hop-Limit: 16), then 15 forwarded ones (15 down to 1)
    assert len(gets) == 16
    assert [message.options.hop_limit for message in gets[1:]] == list(range(15, 0, -1))
    assert elapsed < 5.0
    assert len(site.cache) == 0  # 5.08 carries Max-Age 0: nothing cached


async def test_two_proxies_pointing_at_each_other() -> None:
    net = VirtualNetwork(seed=2)
    a = ProxySite(reverse={"/x": "coap://b/x"}, name="a")
    b = ProxySite(reverse={"/x": "coap://a/x"}, name="b")
    async with net.server(a, address="a"), net.server(b, address="b"), a, b, net.client() as c:
        response = await c.get("coap://a/x", timeout=60)
    assert response.code == Code.HOP_LIMIT_REACHED
    # from the one that stopped it back to the one the client asked: 16 steps
    assert response.text == ", ".join(["b", "a"] * 8)
