"""EDHOC over CoAP (RFC 9528 Appendix A.2) between the real Client and Server, in virtual
time; the OSCORE contexts it sets up (Appendix A.1); the server's bounds on state."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("cryptography")

from coapkit import Code
from coapkit.codec.message import decode
from coapkit.edhoc import EdhocError, Identity, TrustedPeers, ccs_credential
from coapkit.edhoc.coap import EdhocResource
from coapkit.edhoc.crypto import public_of
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.credentials import CredentialsMap, OscoreEntry
from coapkit.oscore.server import OscoreIdentity, OscoreServer
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import App


def identity(seed: int, kid: bytes, label: str | None = None, by_value: bool = False) -> Identity:
    private = bytes([seed]) * 32
    public = public_of("p256", private, full=True)
    ccs = {2: "test", 8: {1: {1: 2, 2: kid, -1: 1, -2: public[:32], -3: public[32:]}}}
    return Identity(ccs_credential(ccs, by_value=by_value, label=label), private)


CLIENT = identity(5, b"\x01", ":client1")
SERVER = identity(6, b"\x0a")


def clock() -> float:
    return asyncio.get_running_loop().time()


def edhoc_server(app: App, **options: object) -> tuple[OscoreServer, EdhocResource]:
    oscore = OscoreServer([], require=["/"])  # everything but EDHOC itself
    resource = EdhocResource(
        SERVER,
        TrustedPeers([CLIENT.credential]),
        oscore,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    app.site.add("/.well-known/edhoc", resource)
    return oscore, resource


async def test_client_establishes_oscore_with_edhoc() -> None:
    app = App()
    oscore, resource = edhoc_server(app)
    net = VirtualNetwork(seed=1)
    async with (
        net.server(app.site, oscore=oscore),
        net.client(oscore=CredentialsMap({}, {})) as client,
    ):
        context = await client.establish_edhoc(
            "coap://server/", CLIENT, TrustedPeers([SERVER.credential])
        )
        assert isinstance(context, SecurityContext)
        assert resource.counts["completed"] == 1 and resource.half_open == 0
        client.oscore = CredentialsMap({"coap://server/*": OscoreEntry("edhoc")}, {})
        client.oscore.contexts["coap://server/*"] = context
        response = await client.get("coap://server/secret/door")
        assert response.payload == b"open"
        async with net.client() as plain:
            refused = await plain.get("coap://server/hello")
            assert refused.code == Code.UNAUTHORIZED
    identity_seen = app.calls[-1][1]
    assert isinstance(identity_seen, OscoreIdentity) and identity_seen.label == ":client1"
    sent = [decode(entry.data) for entry in net.trace if entry.event == "sent"]
    edhoc_requests = [
        m for m in sent if m.is_request and m.options.uri_path == (".well-known", "edhoc")
    ]
    assert [m.options.content_format for m in edhoc_requests] == [65, 65]
    assert edhoc_requests[0].payload[:1] == b"\xf5"  # message_1 after CBOR true


async def test_unknown_client_refused_with_an_error_message() -> None:
    app = App()
    oscore, resource = edhoc_server(app)
    stranger = identity(9, b"\x02")
    net = VirtualNetwork(seed=2)
    async with net.server(app.site, oscore=oscore), net.client() as client:
        with pytest.raises(EdhocError, match="message_3 refused"):
            await client.establish_edhoc(
                "coap://server/", stranger, TrustedPeers([SERVER.credential])
            )
    assert resource.counts["failed"] == 1 and not oscore.contexts


async def test_client_refuses_an_unexpected_server() -> None:
    app = App()
    oscore, _ = edhoc_server(app)
    net = VirtualNetwork(seed=3)
    other = identity(11, b"\x0a")  # same kid, other key: the MAC cannot verify
    async with net.server(app.site, oscore=oscore), net.client() as client:
        with pytest.raises(EdhocError, match="MAC"):
            await client.establish_edhoc("coap://server/", CLIENT, TrustedPeers([other.credential]))


async def test_half_open_sessions_are_bounded_and_expire() -> None:
    app = App()
    oscore, resource = edhoc_server(app, max_sessions=3, lifetime=5.0)
    from coapkit.edhoc.coap import InitiatorExchange

    net = VirtualNetwork(seed=4)
    async with net.server(app.site, oscore=oscore), net.client() as client:
        for n in range(5):
            exchange = InitiatorExchange(CLIENT, TrustedPeers([SERVER.credential]), c_i=bytes((n,)))
            answer = await client.post(
                "coap://server/.well-known/edhoc", exchange.request_1(), content_format=65
            )
            assert answer.code == Code.CHANGED
        assert resource.half_open == 3
        await asyncio.sleep(6)
        exchange = InitiatorExchange(CLIENT, TrustedPeers([SERVER.credential]), c_i=b"\x09")
        await client.post("coap://server/.well-known/edhoc", exchange.request_1())
        assert resource.half_open == 1
        # message_3 for a session that is gone: 4.00 with an EDHOC error message
        late = await client.post("coap://server/.well-known/edhoc", b"\x42\x99\x99" + bytes(10))
        assert late.code == Code.BAD_REQUEST and late.payload[:1] == b"\x01"
        # and one for a session that is there, with garbage: the session ends
        assert resource.half_open == 1
        broken = await client.post("coap://server/.well-known/edhoc", b"\x00" + bytes(10))
        assert broken.code == Code.BAD_REQUEST and broken.payload[:1] == b"\x01"
        assert resource.half_open == 0


async def test_established_contexts_are_bounded() -> None:
    app = App()
    oscore, resource = edhoc_server(app, max_contexts=2)
    net = VirtualNetwork(seed=5)
    async with net.server(app.site, oscore=oscore), net.client() as client:
        for _ in range(3):
            await client.establish_edhoc(
                "coap://server/", CLIENT, TrustedPeers([SERVER.credential])
            )
    assert len(resource.established) == 2 and len(oscore.contexts) == 2


async def test_combined_request_of_rfc_9668() -> None:
    """RFC 9668 §3.2-3.3: message_3 in front of the first OSCORE request, with the EDHOC
    option; the server verifies message_3, makes the context and serves the request
    (no message_4).  Built by hand: coapkit's client sends message_3 on its own."""
    from coapkit.codec.message import Message
    from coapkit.codec.option_registry import OptionNumber
    from coapkit.codec.options import Options
    from coapkit.codec.types import MessageType
    from coapkit.edhoc.coap import InitiatorExchange
    from coapkit.oscore.protection import protect_request, unprotect_response

    app = App()
    oscore, resource = edhoc_server(app)
    net = VirtualNetwork(seed=6)
    async with (
        net.server(app.site, oscore=oscore),
        net.client(oscore=CredentialsMap({}, {})) as client,
    ):
        exchange = InitiatorExchange(CLIENT, TrustedPeers([SERVER.credential]), c_i=b"\x07")
        answer = await client.post(
            "coap://server/.well-known/edhoc", exchange.request_1(), content_format=65
        )
        exchange.session.process_message_2(answer.payload)
        message_3 = exchange.session.message_3()
        context = exchange.security_context()
        inner = Message(
            MessageType.CON, Code.GET, options=Options.build(uri_path=("secret", "door"))
        )
        outer, binding = protect_request(context, inner)
        combined = outer.replace(
            payload=message_3 + outer.payload,
            options=outer.options.replace(edhoc=True),
        )
        assert OptionNumber.EDHOC in combined.options
        reply = await client.request(combined, "coap://server/")
        verified = unprotect_response(binding, reply.to_message())
        assert verified.message.payload == b"open"
        # a second combined request with the same message_3: the session is gone
        again, _ = protect_request(context, inner)
        refused = await client.request(
            again.replace(
                payload=message_3 + again.payload, options=again.options.replace(edhoc=True)
            ),
            "coap://server/",
        )
        assert refused.code == Code.BAD_REQUEST
    assert resource.counts["completed"] == 1
    assert app.calls[-1][1].label == ":client1"  # type: ignore[union-attr]
