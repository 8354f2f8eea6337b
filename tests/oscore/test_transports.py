"""OSCORE over every transport: the same protected exchanges over UDP, TCP and WebSockets
(RFC 8613 §2: OSCORE protects the request/response layer, whatever carries it), through one
Server listening on all three, on the host's event loop."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

pytest.importorskip("cryptography")

from coapkit import Client, Code, Server
from tests.oscore.helpers import BIG, App, client_credentials, oscore_server, pair

SCHEMES = ["coap", "coap+tcp"]
if importlib.util.find_spec("websockets") is not None:
    SCHEMES.append("coap+ws")


def test_oscore_over_udp_tcp_and_websockets() -> None:
    async def run() -> None:
        app = App()
        client_context, server_context = pair()
        listen = [f"{scheme}://127.0.0.1:0" for scheme in SCHEMES]
        async with Server(app.site, listen=listen, oscore=oscore_server(server_context)) as server:
            uris = [listener.uri for listener in server.listeners]
            credentials = client_credentials(client_context, pattern="*")
            async with Client(oscore=credentials, timeout=10) as client:
                for uri in uris:
                    hello = await client.get(f"{uri}/hello")
                    assert (hello.code, hello.text) == (Code.CONTENT, "Hello, OSCORE!")
                    big = await client.get(f"{uri}/big")
                    assert big.payload == BIG
                    body = bytes(range(100)) * 30
                    assert (await client.post(f"{uri}/echo", body)).payload == body
                    async with client.observe(f"{uri}/temperature") as observation:
                        first = await anext(observation)
                        app.thermometer.set(31)
                        second = await anext(observation)
                    assert (first.text, second.text) == ("20", "31")
                    app.thermometer.celsius = 20
        assert {str(identity) for _, identity in app.calls} == {":client1"}
        assert len(app.calls) == 2 * len(SCHEMES)

    asyncio.run(run())
