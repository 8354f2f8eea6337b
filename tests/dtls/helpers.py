"""Sans-I/O DTLS endpoints for the tests: a server and a client on the pyOpenSSL engine,
wired to a :class:`~coapkit.testing.SimulatedNetwork` as :class:`EndpointNode` objects."""

from __future__ import annotations

import random
from typing import Any

from coapkit import Code, Message, Options
from coapkit.dtls import DtlsConfig, DtlsLayer
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

SERVER = ("192.0.2.2", 5684)
CLIENT = ("192.0.2.1", 49152)
PSK_TABLE = {b"dev1": b"secretkey", b"dev2": b"0123456789abcdef"}


def psk_server_credentials(**options: Any) -> Any:
    from coapkit.security.dtls import DtlsServerCredentials

    return DtlsServerCredentials(psk=PSK_TABLE, **options)


def psk_client_credentials(identity: bytes = b"dev1", key: bytes = b"secretkey") -> Any:
    from coapkit.security.dtls import DtlsCredentials

    return DtlsCredentials(psk_identity=identity, psk=key)


def server_endpoint(
    credentials: Any = None, config: DtlsConfig | None = None, seed: int = 2
) -> Endpoint:
    from coapkit.security.openssl_dtls import OpenSslServerEngine

    engine = OpenSslServerEngine(credentials or psk_server_credentials())
    layer = DtlsLayer(rng=random.Random(seed + 100), config=config, server=engine)
    return Endpoint(rng=random.Random(seed), security=layer)


def client_endpoint(
    credentials: Any = None, config: DtlsConfig | None = None, seed: int = 1
) -> Endpoint:
    from coapkit.security.openssl_dtls import OpenSslClientEngine

    engine = OpenSslClientEngine(credentials or psk_client_credentials())
    layer = DtlsLayer(rng=random.Random(seed + 100), config=config, client=engine)
    return Endpoint(rng=random.Random(seed), security=layer)


def hello(node: EndpointNode, event: Any, now: float) -> Message:
    identity = node.endpoint.security.identity(event.remote)
    name = identity.name if identity is not None else "?"
    return Message(code=Code.CONTENT, payload=f"hello {name}".encode())


class Pair:
    """A client and a server endpoint on a simulated network."""

    def __init__(
        self,
        *,
        seed: int = 0,
        conditions: LinkConditions | None = None,
        server: Endpoint | None = None,
        client: Endpoint | None = None,
        app: Any = hello,
    ) -> None:
        self.network = SimulatedNetwork(seed=seed, conditions=conditions, port_unreachable=True)
        self.server = EndpointNode(server or server_endpoint(), app)
        self.client = EndpointNode(client or client_endpoint())
        self.network.attach(SERVER, self.server)
        self.network.attach(CLIENT, self.client)

    def get(self, path: str = "hello", *, server_name: str | None = None, **options: Any) -> Any:
        """Send a GET from the client now; returns its handle."""
        if server_name is not None:
            self.client.endpoint.security.expect(
                SERVER, server_name, options.pop("credentials", None)
            )
        message = Message(code=Code.GET, options=Options.build(uri_path=path.split("/")))
        handle, datagrams = self.client.request(message, SERVER, self.network.now, **options)
        self.network.transmit(CLIENT, datagrams)
        self.network.rearm(CLIENT)
        return handle

    def outcome(self, handle: Any, limit: float = 300.0) -> ResponseEvent | RequestFailed:
        """Run until the request ends (or ``limit`` virtual seconds more); its last event."""
        network = self.network
        end = network.now + limit
        while network.now < end:
            for _, event in self.client.events:
                if isinstance(event, ResponseEvent | RequestFailed) and event.handle is handle:
                    return event
            if not network.step():
                break
        raise AssertionError(f"the request did not end by t={network.now}")

    def sent(self, src: Any, dst: Any) -> list[Any]:
        return [
            entry
            for entry in self.network.trace
            if entry.event == "sent" and entry.src == src and entry.dst == dst
        ]
