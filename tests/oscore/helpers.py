"""Security context pairs and an application to serve over OSCORE, for the tests here."""

from __future__ import annotations

import random

from coapkit import Code, Request, Response, Site
from coapkit.oscore.context import ContextParameters, MemoryStore, SecurityContext
from coapkit.oscore.credentials import CredentialsMap, OscoreEntry
from coapkit.oscore.server import OscoreServer
from tests.testing.helpers import Thermometer

SECRET = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
SALT = bytes.fromhex("9e7ca92223786340")
BIG = bytes(range(256)) * 12  # 3072 bytes, not all alike


def pair(
    *,
    client_id: bytes = b"\x01",
    server_id: bytes = b"\x02",
    id_context: bytes | None = None,
    aead: str = "AES-CCM-16-64-128",
    seed: int = 1,
) -> tuple[SecurityContext, SecurityContext]:
    """(client context, server context) sharing a Master Secret."""
    parameters = ContextParameters(
        SECRET, client_id, server_id, master_salt=SALT, id_context=id_context, aead=aead
    )
    client = SecurityContext(parameters, label=":server", rng=random.Random(seed))
    server = SecurityContext(parameters.reversed(), label=":client1", rng=random.Random(seed + 1))
    return client, server


def client_credentials(
    context: SecurityContext, pattern: str = "coap://server/*"
) -> CredentialsMap:
    return CredentialsMap({pattern: OscoreEntry("unused")}, {pattern: context})


class App:
    """What the server serves, and what its handlers saw."""

    def __init__(self) -> None:
        self.site = Site()
        self.calls: list[tuple[str, object]] = []
        self.thermometer = self.site.add("/temperature", Thermometer())
        site = self.site

        @site.route("/hello")
        def hello(request: Request) -> Response:
            self.calls.append(("hello", request.security))
            return Response(payload="Hello, OSCORE!")

        @site.route("/echo", methods=["POST"])
        def echo(request: Request) -> Response:
            self.calls.append(("echo", request.security))
            return Response(Code.CHANGED, payload=request.payload)

        @site.route("/big")
        def big(request: Request) -> Response:
            return Response(payload=BIG)

        @site.route("/secret/door", methods=["GET", "PUT"])
        def door(request: Request) -> Response:
            self.calls.append(("door", request.security))
            return Response(payload="open" if request.security else "who are you?")


def oscore_server(context: SecurityContext, **options: object) -> OscoreServer:
    return OscoreServer([context], **options)  # type: ignore[arg-type]


__all__ = ["BIG", "App", "MemoryStore", "client_credentials", "oscore_server", "pair"]
