"""Multicast over real sockets: IPv4 on the loopback interface (RFC 7252 §8).

Two servers share a port (SO_REUSEPORT) and join 224.0.1.187 on ``lo``; one
NON request to the group gets an answer from each, delivered in full by
``Client.multicast``.  A CON to the group is refused at the call.
"""

from __future__ import annotations

import pytest

from coapkit import Code
from coapkit.client import Client
from coapkit.errors import ProtocolUsageError
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.resources import Response, Site
from coapkit.server import Server
from tests.interop.peers import free_udp_port

GROUP = "224.0.1.187"
QUICK = TransmissionParameters(default_leisure=0.2)


def site(name: str) -> Site:
    result = Site()

    @result.route("/who")
    def who(request):
        return Response(payload=name)

    @result.route("/missing-here")
    def missing(request):
        return Response(Code.NOT_FOUND)

    return result


async def test_multicast_request_gets_every_response():
    port = free_udp_port()
    servers = [
        Server(
            site(name),
            bind=("::", port),
            transmission=QUICK,
            multicast=[GROUP],
            multicast_interface="127.0.0.1",
            reuse_port=True,
        )
        for name in ("alpha", "beta")
    ]
    for server in servers:
        await server.start()
    try:
        async with Client(multicast_interface="127.0.0.1", transmission=QUICK) as client:
            responses = [
                response
                async for response in client.multicast(
                    "GET", f"coap://{GROUP}:{port}/who", timeout=1.5
                )
            ]
            assert sorted(r.text for r in responses) == ["alpha", "beta"]
            assert all(r.code == Code.CONTENT for r in responses)
            # error responses to a multicast request are suppressed (§8.2)
            errors = [
                response
                async for response in client.multicast(
                    "GET", f"coap://{GROUP}:{port}/missing-here", timeout=1.0
                )
            ]
            assert errors == []
            with pytest.raises(ProtocolUsageError):
                await client.get(f"coap://{GROUP}:{port}/who")
    finally:
        for server in servers:
            await server.close()
