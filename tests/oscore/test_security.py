"""What OSCORE guarantees, checked through the real Client and Server in virtual time: a
replayed or tampered request is refused before any handler runs, a tampered response is
refused by the client, the errors of RFC 8613 §8.2 reach the client as one readable line,
resources under a required prefix refuse unprotected requests, and a server restarted
after a crash asks for Echo before it trusts a request (Appendix B.1.2)."""

from __future__ import annotations

import asyncio
import random

import pytest

pytest.importorskip("cryptography")

from coapkit import Code, Message, Options
from coapkit.codec.message import decode
from coapkit.oscore.context import ContextParameters, MemoryStore, SecurityContext
from coapkit.oscore.errors import PeerRejected, ProtectionInvalid
from coapkit.oscore.protection import protect_request
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import SALT, SECRET, App, client_credentials, oscore_server, pair

OSCORE = 9


def protected_requests(net: VirtualNetwork) -> list[tuple[bytes, tuple]]:
    return [
        (entry.data, entry.src)
        for entry in net.trace
        if entry.event == "sent"
        and decode(entry.data).options.oscore is not None
        and decode(entry.data).is_request
    ]


def with_mid(data: bytes, mid: int) -> bytes:
    """The same datagram with another message ID (the message layer's deduplication must
    not be what stops a replay: OSCORE must)."""
    return data[:2] + mid.to_bytes(2, "big") + data[4:]


async def replay(net: VirtualNetwork, data: bytes, src: tuple, server: tuple) -> Message:
    """Send ``data`` from ``src`` to the server and return what comes back to ``src``."""
    before = len(net.trace)
    net.simulated.transmit(src, [(data, server)])
    for _ in range(100):
        await asyncio.sleep(0.01)
        answers = [
            decode(entry.data)
            for entry in net.trace[before:]
            if entry.event == "sent" and entry.src == server and entry.dst == src
        ]
        if answers:
            return answers[-1]
    raise AssertionError("no answer")


async def test_a_replayed_request_is_refused_and_its_handler_does_not_run() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=11)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        await client.post("coap://server/echo", b"pay me once")
        assert len(app.calls) == 1
        data, src = protected_requests(net)[0]
        answer = await replay(net, with_mid(data, 0x4242), src, server.address)
        assert answer.code == Code.UNAUTHORIZED
        assert answer.payload == b"Replay detected"
        assert answer.options.max_age == 0
        assert answer.options.oscore is None  # an OSCORE error goes out unprotected
        assert len(app.calls) == 1  # the handler did not run again
        assert server.oscore.refused == {"Replay detected": 1}


@pytest.mark.parametrize("where", ["ciphertext", "tag", "kid", "piv", "code"])
async def test_a_tampered_request_is_refused(where: str) -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=12)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        # a request that the server has not seen: protected here, never sent by the client
        outer, _ = protect_request(
            client_context,
            Message(code=Code.POST, options=Options.build(uri_path=["echo"]), payload=b"x" * 20),
        )
        option = bytearray(outer.options.oscore or b"")
        payload = bytearray(outer.payload)
        code = outer.code
        if where == "ciphertext":
            payload[3] ^= 0x01
        elif where == "tag":
            payload[-1] ^= 0x80
        elif where == "kid":
            option[-1] ^= 0x03  # another kid: no context has it
        elif where == "piv":
            option[1] ^= 0x01  # another Partial IV: another nonce
        else:
            code = Code.FETCH  # the outer code is not protected, but a FETCH without
            # Observe is no less a request: it verifies, and is served (RFC 8613 §4.2)
        tampered = outer.replace(
            mid=0x1234,
            token=b"\x99",
            options=outer.options.set_raw(OSCORE, [bytes(option)]),
            payload=bytes(payload),
            code=code,
        )
        answer = await replay(net, tampered.encode(), client.local_address, server.address)
        if where == "code":
            assert answer.code == Code.CONTENT and answer.options.oscore is not None
            return
        expected = {
            "ciphertext": (Code.BAD_REQUEST, b"Decryption failed"),
            "tag": (Code.BAD_REQUEST, b"Decryption failed"),
            "kid": (Code.UNAUTHORIZED, b"Security context not found"),
            "piv": (Code.BAD_REQUEST, b"Decryption failed"),
        }[where]
        assert (answer.code, answer.payload) == expected
        assert app.calls == []


async def test_a_tampered_response_is_refused_by_the_client() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=13)
    simulated = net.simulated
    original = simulated._send_one

    def tamper(src, dst, data, now, multicast):  # type: ignore[no-untyped-def]
        message = decode(data)
        if message.is_response and message.options.oscore is not None:
            data = data[:-1] + bytes((data[-1] ^ 1,))
        original(src, dst, data, now, multicast)

    simulated._send_one = tamper  # type: ignore[method-assign]
    async with (
        net.server(app.site, oscore=oscore_server(server_context)),
        net.client(oscore=client_credentials(client_context), timeout=5) as client,
    ):
        with pytest.raises(ProtectionInvalid, match="failed verification"):
            await client.get("coap://server/hello")


async def test_the_servers_oscore_errors_read_as_one_line() -> None:
    app = App()
    _, server_context = pair()
    wrong_key = SecurityContext(ContextParameters(bytes(16), b"\x01", b"\x02", master_salt=SALT))
    unknown = SecurityContext(ContextParameters(SECRET, b"\x07", b"\x02", master_salt=SALT))
    net = VirtualNetwork(seed=14)
    async with net.server(app.site, oscore=oscore_server(server_context)):
        async with net.client(oscore=client_credentials(wrong_key)) as client:
            with pytest.raises(PeerRejected) as raised:
                await client.get("coap://server/hello")
        assert str(raised.value) == (
            "OSCORE: the server could not decrypt the request (another key?) "
            "(Sender ID 01; it answered 4.00 Bad Request Decryption failed)"
        )
        async with net.client(oscore=client_credentials(unknown)) as client:
            with pytest.raises(PeerRejected) as raised:
                await client.get("coap://server/hello")
        assert str(raised.value) == (
            "OSCORE: the server has no security context for our Sender ID "
            "(Sender ID 07; it answered 4.01 Unauthorized Security context not found)"
        )
        assert raised.value.code == Code.UNAUTHORIZED
    assert app.calls == []


async def test_a_required_prefix_refuses_unprotected_requests() -> None:
    app = App()
    client_context, server_context = pair()
    net = VirtualNetwork(seed=15)
    oscore = oscore_server(server_context, require=["/secret"])
    async with net.server(app.site, oscore=oscore):
        async with net.client() as plain:
            refused = await plain.get("coap://server/secret/door")
            assert (refused.code, refused.payload) == (Code.UNAUTHORIZED, b"OSCORE required")
            served = await plain.get("coap://server/hello")  # not under the prefix
            assert served.text == "Hello, OSCORE!"
        async with net.client(oscore=client_credentials(client_context)) as client:
            door = await client.get("coap://server/secret/door")
            assert door.text == "open"
    assert [kind for kind, _ in app.calls] == ["hello", "door"]


async def test_a_server_restarted_after_a_crash_asks_for_echo_first() -> None:
    """The server's replay window was "unknown" in its store when it came back (B.1.2): the
    first request gets a protected 4.01 with Echo, the client repeats it with the value, and
    only that is served; a copy of the first request stays refused."""
    app = App()
    parameters = ContextParameters(SECRET, b"\x02", b"\x01", master_salt=SALT)
    store = MemoryStore()
    crashed = SecurityContext(parameters, store=store, rng=random.Random(1), label=":c")
    crashed.take_sequence_number()
    crashed.accept(3)  # a request accepted, then the process died: state "unknown"
    assert store.state is not None and store.state.window is None
    server_context = SecurityContext(parameters, store=store, rng=random.Random(2), label=":c")
    assert not server_context.window_known
    client_context = SecurityContext(parameters.reversed())
    client_context.sequence_number = 10
    net = VirtualNetwork(seed=16)
    async with (
        net.server(app.site, oscore=oscore_server(server_context)) as server,
        net.client(oscore=client_credentials(client_context)) as client,
    ):
        response = await client.post("coap://server/echo", b"after the crash")
        assert response.payload == b"after the crash"
        assert [kind for kind, _ in app.calls] == ["echo"]
        first, src = protected_requests(net)[0]
        again = await replay(net, with_mid(first, 0x0101), src, server.address)
        # below the window, which starts at the Echo'd request's number
        assert (again.code, again.payload) == (Code.UNAUTHORIZED, b"Replay detected")
        assert [kind for kind, _ in app.calls] == ["echo"]
        challenge = next(
            decode(entry.data)
            for entry in net.trace
            if entry.event == "sent" and entry.src == server.address
        )
        assert challenge.options.oscore is not None and challenge.options.oscore[0] & 0x07
    assert server_context.window_known
    # the Echo challenge used a Partial IV of the server's own, beyond the stored numbers
    assert server_context.sequence_number > crashed.sequence_number


async def test_a_server_without_oscore_says_so() -> None:
    app = App()
    client_context, _ = pair()
    net = VirtualNetwork(seed=17)
    async with net.server(app.site), net.client(oscore=client_credentials(client_context)) as c:
        with pytest.raises(PeerRejected, match="the server does not support OSCORE"):
            await c.get("coap://server/hello")
