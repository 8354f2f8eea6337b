"""The real Client and Server over OSCORE, in virtual time: what a handler sees, what goes over
the wire, block-wise and Observe on the inner messages."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("cryptography")

from coapkit import Code
from coapkit.codec.message import decode
from coapkit.oscore.server import OscoreIdentity
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import BIG, App, client_credentials, oscore_server, pair


async def test_get_and_post_are_protected_end_to_end() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=1)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)),
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        response = await client.get("coap://server/hello")
        assert response.code == Code.CONTENT
        assert response.text == "Hello, OSCORE!"
        posted = await client.post("coap://server/echo", b"abc")
        assert (posted.code, posted.payload) == (Code.CHANGED, b"abc")
    kinds = [kind for kind, _ in app.calls]
    assert kinds == ["hello", "echo"]
    identity = app.calls[0][1]
    assert isinstance(identity, OscoreIdentity)
    assert identity.label == ":client1"
    assert identity.kid == b"\x01"
    # on the wire: POST/2.04 with the OSCORE option, no path, no readable payload
    messages = [decode(entry.data) for entry in net.trace if entry.event == "sent"]
    requests = [m for m in messages if m.is_request]
    assert {m.code for m in requests} == {Code.POST}
    assert all(m.options.oscore is not None and not m.options.uri_path for m in requests)
    assert all(b"Hello" not in m.payload for m in messages)


def sent_messages(net: VirtualNetwork) -> list:
    return [decode(entry.data) for entry in net.trace if entry.event == "sent"]


async def test_large_bodies_go_in_inner_blocks() -> None:
    """A 3,072-byte response and a 2,000-byte request body, each in protected inner blocks of
    512 bytes: no message needs outer block-wise (RFC 8613 §4.1.3.4.1)."""
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=2)
    body = bytes(range(200)) * 10
    async with (
        net.server(app.site, oscore=oscore_server(server_context)),
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        response = await client.get("coap://server/big")
        assert response.payload == BIG
        posted = await client.post("coap://server/echo", body)
        assert posted.payload == body
    messages = sent_messages(net)
    assert all(m.options.block1 is None and m.options.block2 is None for m in messages)
    assert max(len(m.payload) for m in messages) < 600
    # 6 blocks of the response, 4 of the request body, and its answer in 4 blocks again
    assert sum(1 for m in messages if m.is_request) == 6 + 4 + 3


async def test_observe_notifications_carry_partial_ivs() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=3)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):

        async def change() -> None:
            for value in (21, 22, 23):
                await asyncio.sleep(10)
                app.thermometer.set(value)

        changes = asyncio.create_task(change())
        texts = []
        async with client.observe("coap://server/temperature") as observation:
            async for response in observation:
                texts.append(response.text)
                if len(texts) == 4:
                    break
        await changes
        await asyncio.sleep(1)  # the deregistration
        assert server.observers.count_of(app.thermometer) == 0
    assert texts == ["20", "21", "22", "23"]
    notifications = [
        m for m in sent_messages(net) if m.is_response and m.options.observe is not None
    ]
    pivs = [m.options.oscore for m in notifications]
    assert len(pivs) == 4 and all(p and p[0] & 0x07 for p in pivs)  # each has a Partial IV
    # registration and deregistration: FETCH with Observe 0 and 1 outside
    fetches = [m for m in sent_messages(net) if m.code == Code.FETCH]
    assert [m.options.observe for m in fetches] == [0, 1]


async def test_a_quiet_observation_registers_again_with_a_new_request() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=4)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):

        async def change() -> None:
            await asyncio.sleep(150)
            app.thermometer.set(30)

        changes = asyncio.create_task(change())
        async with client.observe("coap://server/temperature") as observation:
            texts = [(await anext(observation)).text, (await anext(observation)).text]
        await changes
        await asyncio.sleep(1)
        assert server.observers.count_of(app.thermometer) <= 1
    assert texts == ["20", "30"]
    registrations = [
        m for m in sent_messages(net) if m.code == Code.FETCH and m.options.observe == 0
    ]
    assert len(registrations) == 3  # at 0 s, 65 s and 130 s
    assert len({m.options.oscore for m in registrations}) == 3  # each a new Partial IV
    assert server_context.window is not None
    assert not server.oscore.refused  # no replay on the way


async def test_outer_blocks_are_put_together_before_verification() -> None:
    """RFC 8613 §4.1.3.4.2: a protected message cut into Outer Block options (as a proxy
    may) is reassembled first, then verified.  Here the server's inner blocks are 1024
    bytes, so each protected response exceeds a block and the server's endpoint cuts it;
    and the client protects its body in one 1,500-byte piece, which its endpoint cuts."""
    from coapkit.blockwise.server import BlockwiseConfig
    from coapkit.codec.message import Message
    from coapkit.codec.options import Options
    from coapkit.runtime.oscore import protected_request

    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=5)
    body = bytes(range(250)) * 6
    layer = oscore_server(server_context, blockwise=BlockwiseConfig(max_szx=6))
    async with (
        net.server(app.site, oscore=layer) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        response = await client.get("coap://server/big")
        assert response.payload == BIG
        remotes = (await client.resolve("coap://server/echo"))[1]
        request = Message(code=Code.POST, options=Options.build(uri_path=["echo"]), payload=body)
        reply, _ = await protected_request(
            client.driver, client_context, request, remotes[0], block_size=1024
        )
        assert reply.payload == body and server.oscore is not None
    messages = sent_messages(net)
    assert any(m.is_response and m.options.block2 is not None for m in messages)  # outer
    assert any(m.is_request and m.options.block1 is not None for m in messages)  # outer
    assert app.calls[-1][0] == "echo"
