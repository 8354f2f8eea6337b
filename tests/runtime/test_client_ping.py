"""Client.ping over loopback: falls back over the host's addresses, times out as RequestTimeout."""

from __future__ import annotations

import socket

import pytest

from coapkit.client import Client
from coapkit.errors import NetworkError, RequestTimeout
from coapkit.server import Server
from tests.interop.peers import free_udp_port


async def test_ping_tries_the_next_address_after_a_network_error(monkeypatch):
    # a name that resolves to ::1 first (nothing listens there) and 127.0.0.1 (the server),
    # as "localhost" does on many hosts: request() falls back, and so must ping()
    closed = free_udp_port("::1")
    async with Server(bind=("127.0.0.1", 0)) as server, Client() as client:
        transport = client.driver.transport
        remotes = [
            transport.remote_for(("::1", closed, 0, 0)),
            transport.remote_for(("127.0.0.1", server.port)),
        ]
        original = client.resolve

        async def resolve(uri):
            parsed, _ = await original(uri)
            return parsed, remotes

        monkeypatch.setattr(client, "resolve", resolve)
        rtt = await client.ping(f"coap://localhost:{server.port}")
        assert 0 <= rtt < 1
        monkeypatch.setattr(client, "resolve", lambda uri: resolve_only(original, uri, remotes[0]))
        with pytest.raises(NetworkError):
            await client.ping(f"coap://localhost:{server.port}")


async def resolve_only(original, uri, remote):
    parsed, _ = await original(uri)
    return parsed, [remote]


async def test_ping_timeout_is_a_request_timeout():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with Client() as client:
            with pytest.raises(RequestTimeout, match=f"no RST from 127.0.0.1:{port} within 0.2 s"):
                await client.ping(f"coap://127.0.0.1:{port}", timeout=0.2)
