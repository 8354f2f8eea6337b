"""Appendix B.2: a client and a server that lost their state derive a new context from the old
one, without new keys, and never reuse a nonce (see coapkit.oscore.rederive)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

pytest.importorskip("cryptography")

from coapkit import Code, Message, Options
from coapkit.codec.message import decode
from coapkit.oscore.context import ContextParameters, SecurityContext
from coapkit.oscore.credentials import CredentialsMap
from coapkit.oscore.option import decode_option
from coapkit.oscore.protection import protect_request
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import SALT, SECRET, App, client_credentials, oscore_server

PARAMETERS = ContextParameters(SECRET, b"\x01", b"\x02", master_salt=SALT, rederive=True)


def templates(seed: int) -> tuple[SecurityContext, SecurityContext]:
    client = SecurityContext(PARAMETERS, rng=random.Random(seed), label=":server")
    server = SecurityContext(PARAMETERS.reversed(), rng=random.Random(seed + 100), label=":c")
    return client, server


def exchanges(net: VirtualNetwork) -> list[Message]:
    return [decode(entry.data) for entry in net.trace if entry.event == "sent"]


def kid_contexts(messages: list[Message]) -> list[bytes | None]:
    return [
        decode_option(m.options.oscore).kid_context if m.options.oscore else None for m in messages
    ]


async def test_the_first_request_derives_a_new_context() -> None:
    app = App()
    client_template, server_template = templates(1)
    net = VirtualNetwork(seed=21)
    async with (
        net.server(app.site, oscore=oscore_server(server_template)) as server,
        net.client(oscore=client_credentials(client_template)) as client,
    ):
        first = await client.post("coap://server/echo", b"once")
        assert first.payload == b"once"
        assert (await client.get("coap://server/hello")).text == "Hello, OSCORE!"
        assert server.oscore is not None and not server.oscore.refused
    assert [kind for kind, _ in app.calls] == ["echo", "hello"]  # request #1 was not served
    messages = exchanges(net)
    requests = [m for m in messages if m.is_request]
    responses = [m for m in messages if m.is_response]
    contexts = kid_contexts(requests)
    assert len(requests) == 3
    id1, second, third = contexts
    assert id1 is not None and len(id1) == 8  # request #1: ID1
    assert second is not None and len(second) == 16  # request #2: R2 | R3
    assert third is None  # from then on, no kid context
    r2 = kid_contexts(responses)[0]
    assert r2 is not None and second.startswith(r2)  # response #1 carried R2
    # neither template protected anything: every message used a derived context
    assert client_template.sequence_number == 0 and server_template.sequence_number == 0


async def test_a_restarted_server_and_a_restarted_client_derive_again() -> None:
    app = App()
    client_template, server_template = templates(2)
    net = VirtualNetwork(seed=22)
    async with net.client(oscore=client_credentials(client_template)) as client:
        async with net.server(app.site, oscore=oscore_server(server_template)):
            assert (await client.get("coap://server/hello")).code == Code.CONTENT
        # the server restarts and knows nothing of the derived context
        async with net.server(app.site, oscore=oscore_server(server_template)):
            assert (await client.get("coap://server/hello")).code == Code.CONTENT
    # the client restarts: a new process has the template only
    client_again = SecurityContext(PARAMETERS, rng=random.Random(3), label=":server")
    async with (
        net.server(app.site, oscore=oscore_server(server_template)),
        net.client(oscore=client_credentials(client_again)) as client,
    ):
        assert (await client.get("coap://server/hello")).code == Code.CONTENT
    assert [kind for kind, _ in app.calls] == ["hello", "hello", "hello"]
    ids = [c for c in kid_contexts([m for m in exchanges(net) if m.is_request]) if c]
    assert len(ids) == len(set(ids))  # every derivation with new random values


async def test_an_r2_the_server_never_sent_gets_no_context() -> None:
    app = App()
    client_template, server_template = templates(4)
    forged = client_template.derived(bytes(16))
    net = VirtualNetwork(seed=23)
    async with (
        net.server(app.site, oscore=oscore_server(server_template)) as server,
        net.client(oscore=CredentialsMap({}, {})) as attacker,
    ):
        outer, _ = protect_request(
            forged,
            Message(code=Code.GET, options=Options.build(uri_path=["hello"])),
            kid_context=bytes(16),
        )
        response = await attacker.request(outer, "coap://server")
        # taken for a request #1 (a new ID1): verified, not served, answered 4.01 with an R2
        assert response.options.oscore is not None and response.code == Code.CHANGED
        assert app.calls == []
        assert server.oscore is not None


def test_a_template_never_verifies_a_request_itself() -> None:
    server_template = SecurityContext(PARAMETERS.reversed(), rng=random.Random(5))
    layer = oscore_server(server_template)
    client = SecurityContext(replace(PARAMETERS, rederive=False))
    outer, _ = protect_request(client, Message(code=Code.GET))
    from coapkit.oscore.errors import Rejection
    from coapkit.oscore.protection import unprotect_request

    with pytest.raises(Rejection, match="Security context not found"):
        unprotect_request(outer, layer.lookup)


async def test_an_observation_derives_the_context_first() -> None:
    app = App()
    client_template, server_template = templates(6)
    net = VirtualNetwork(seed=24)
    async with (
        net.server(app.site, oscore=oscore_server(server_template)),
        net.client(oscore=client_credentials(client_template)) as client,
        client.observe("coap://server/temperature") as observation,
    ):
        first = await anext(observation)
        app.thermometer.set(25)
        second = await anext(observation)
    assert (first.text, second.text) == ("20", "25")


def test_the_template_setting_is_in_the_directory(tmp_path: object) -> None:
    from pathlib import Path

    from coapkit.runtime.oscore_files import read_parameters, write_context

    base = write_context(Path(str(tmp_path)) / "ctx", PARAMETERS)
    parameters, raw = read_parameters(base)
    assert parameters.rederive and raw["coapkit-rederive"] is True


async def test_derived_contexts_do_not_pile_up_on_the_server() -> None:
    app = App()
    _client_template, server_template = templates(7)
    layer = oscore_server(server_template)
    net = VirtualNetwork(seed=25)
    async with net.server(app.site, oscore=layer):
        for round_ in range(5):
            client_again = SecurityContext(PARAMETERS, rng=random.Random(round_ + 50))
            async with net.client(oscore=client_credentials(client_again)) as client:
                assert (await client.get("coap://server/hello")).code == Code.CONTENT
    assert len(app.calls) == 5
    assert len(layer.contexts) == 2  # the last derived context (by two keys) and the template
    assert len({id(c) for c in layer.contexts}) == 2
