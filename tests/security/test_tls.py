"""CoAP over TLS (``coaps+tcp``, RFC 8323 §9.1) on real sockets, on asyncio and uvloop.

The driver and the stream transport with contexts from
:mod:`coapkit.security.tls`, against certificates made for the session
(tests/security/certs.py): a verified GET, each way verification fails and
the one line it fails with, client certificates and the identity a server
sees, ALPN, and what a listener does with handshakes that fail or never
finish.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from random import Random
from typing import TYPE_CHECKING, Any

import pytest

from coapkit import Code, Message, Options
from coapkit.connections import ConnectionLayer
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError
from coapkit.resources import Request, Response, Site
from coapkit.runtime.driver import Driver
from coapkit.security.tls import TlsCredentials, client_context, server_context
from coapkit.transports.tcp import StreamLimits, StreamTransport
from tests.runtime.loops import LOOPS, run_on

if TYPE_CHECKING:
    from tests.security.certs import Pair, Pki

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@asynccontextmanager
async def tls_server(
    context: ssl.SSLContext | None, limits: StreamLimits | None = None
) -> AsyncIterator[StreamTransport]:
    """A listener on 127.0.0.1 serving /hello and /whoami (the client certificate's CN)."""
    loop = asyncio.get_running_loop()
    site = Site()
    holder: list[StreamTransport] = []

    @site.route("/hello")
    def hello(request: Any) -> Response:
        return Response(payload="hello")

    @site.route("/whoami")
    def whoami(request: Request) -> Response:
        identity = holder[0].peer_identity(request.remote)
        return Response(payload="nobody" if identity is None else str(identity.common_name))

    def handler(event: Any) -> Any:
        return site.dispatch(Request(event.request, event.remote, event.handle))

    driver = Driver(Endpoint(rng=Random(1), layer=ConnectionLayer()), loop, request_handler=handler)
    transport = StreamTransport(loop, driver, ssl_context=context, limits=limits)
    holder.append(transport)
    driver.attach(transport)
    await transport.listen("127.0.0.1", 0)
    try:
        yield transport
    finally:
        await driver.close()
        await transport.wait_closed()


@asynccontextmanager
async def tls_client(
    context: ssl.SSLContext | None,
) -> AsyncIterator[tuple[Driver, StreamTransport]]:
    loop = asyncio.get_running_loop()
    driver = Driver(Endpoint(rng=Random(2), layer=ConnectionLayer()), loop)
    transport = StreamTransport(loop, driver, ssl_context=context)
    driver.attach(transport)
    try:
        yield driver, transport
    finally:
        await driver.close()


def get(path: str) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=[path]))


def serving(pair: Pair, **kwargs: Any) -> ssl.SSLContext:
    return server_context(TlsCredentials(cert=pair.cert, key=pair.key, **kwargs))


def address_of(server: StreamTransport) -> tuple[str, int]:
    return ("127.0.0.1", server.local_address[1])


async def fetch(
    server: StreamTransport, context: ssl.SSLContext, path: str = "hello", name: str = "127.0.0.1"
) -> bytes:
    """GET ``path`` over a new client's connection; the payload."""
    async with tls_client(context) as (client, transport):
        address = address_of(server)
        await transport.connect(address, server_hostname=name)
        response, _ = await asyncio.wait_for(client.request(get(path), address), 5)
        return response.payload


def test_a_verified_get_negotiates_alpn_coap_and_names_the_server(loop: str, pki: Pki) -> None:
    async def main() -> None:
        async with (
            tls_server(serving(pki.server)) as server,
            tls_client(client_context(TlsCredentials(ca=pki.ca))) as (client, transport),
        ):
            address = address_of(server)
            await transport.connect(address, server_hostname="127.0.0.1")
            response, _ = await client.request(get("hello"), address)
            assert response.payload == b"hello"

            # ALPN as the SSL objects on both ends saw it (RFC 8323 §11.7)
            ours = transport._connections[address].transport
            assert ours is not None
            assert ours.get_extra_info("ssl_object").selected_alpn_protocol() == "coap"
            (theirs,) = server._connections.values()
            assert theirs.transport is not None
            assert theirs.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "coap"

            session = transport.tls_session(address)
            assert session is not None
            assert session.alpn == "coap" and session.version in ("TLSv1.2", "TLSv1.3")
            identity = transport.peer_identity(address)
            assert identity is not None
            assert identity.common_name == "localhost"
            assert ("IP Address", "127.0.0.1") in identity.alt_names
            assert identity.der == ssl.PEM_cert_to_DER_cert(pki.server.cert.read_text())
            # the server asked for no client certificate: no identity on its side
            (key,) = server._connections
            assert server.peer_identity(key) is None
            assert server.tls_session(key) is not None

    run_on(loop, main())


@pytest.mark.parametrize(
    ("certificate", "name", "message"),
    [
        (
            "stranger",
            "127.0.0.1",
            "TLS handshake failed: certificate verify failed: unable to get local issuer "
            "certificate (the server's certificate is not issued by a trusted CA)",
        ),
        (
            "wrong_name",
            "127.0.0.1",
            "TLS handshake failed: certificate verify failed: IP address mismatch, certificate "
            "is not valid for '127.0.0.1' (the server's certificate is for another name)",
        ),
        (
            "server",
            "coap.example",
            "TLS handshake failed: certificate verify failed: Hostname mismatch, certificate "
            "is not valid for 'coap.example' (the server's certificate is for another name)",
        ),
        (
            "expired",
            "127.0.0.1",
            "TLS handshake failed: certificate verify failed: certificate has expired "
            "(the server's certificate)",
        ),
    ],
)
def test_a_server_that_fails_verification_is_refused_in_one_line(
    loop: str,
    pki: Pki,
    certificate: str,
    name: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with (
            tls_server(serving(getattr(pki, certificate))) as server,
            tls_client(client_context(TlsCredentials(ca=pki.ca))) as (_, transport),
        ):
            address = address_of(server)
            with pytest.raises(NetworkError) as failure:
                await transport.connect(address, server_hostname=name)
            assert str(failure.value) == f"127.0.0.1:{address[1]}: {message}"
            assert "\n" not in str(failure.value)
            assert transport.connection_count == 0
            await asyncio.sleep(0.1)
            assert server.connection_count == 0 and server.handshake_failures == 1

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    # the server's side of it: the client hung up during the handshake, once, no traceback
    (record,) = [r for r in caplog.records if r.name == "coapkit.transport"]
    assert record.getMessage().endswith(
        "TLS handshake failed: the client closed the connection (it may not trust our certificate)"
    )
    assert record.exc_info is None


def test_insecure_skips_the_name_check_only(loop: str, pki: Pki) -> None:
    async def main() -> None:
        insecure = client_context(TlsCredentials(ca=pki.ca, insecure=True))
        async with tls_server(serving(pki.wrong_name)) as server:
            assert await fetch(server, insecure) == b"hello"
        # the chain is still verified: a certificate from another CA is refused
        async with tls_server(serving(pki.stranger)) as server:
            with pytest.raises(NetworkError, match="not issued by a trusted CA"):
                await fetch(server, insecure)

    run_on(loop, main())


def test_a_server_requiring_client_certificates(
    loop: str, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        strict = serving(pki.server, ca=pki.ca, require_client_cert=True)
        async with tls_server(strict) as server:
            # with one issued under the server's CA: accepted, and the server knows who
            for pair, name in ((pki.client, b"client1"), (pki.client2, b"client2")):
                context = client_context(TlsCredentials(ca=pki.ca, cert=pair.cert, key=pair.key))
                assert await fetch(server, context, "whoami") == name

            # without one: refused, twice (logged once)
            for _ in range(2):
                with pytest.raises(NetworkError) as failure:
                    await fetch(server, client_context(TlsCredentials(ca=pki.ca)))
                assert str(failure.value).endswith(
                    "TLS handshake failed: the server closed the connection (it may require "
                    "a client certificate, refuse ours, or accept no TLS version we offer)"
                )

            # with one from another CA: refused
            stranger = client_context(
                TlsCredentials(
                    ca=pki.ca, cert=pki.stranger_client.cert, key=pki.stranger_client.key
                )
            )
            with pytest.raises(NetworkError, match="may require a client certificate"):
                await fetch(server, stranger)
            await asyncio.sleep(0.1)
            assert server.handshake_failures == 3 and server.connection_count == 0

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    lines = [r.getMessage() for r in caplog.records if r.name == "coapkit.transport"]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "TLS handshake failed: the client sent no certificate (one is required)",
        "TLS handshake failed: certificate verify failed: unable to get local issuer "
        "certificate (the client's certificate is not issued by a trusted CA)",
    ]


def test_a_client_certificate_is_optional_unless_required(loop: str, pki: Pki) -> None:
    async def main() -> None:
        optional = serving(pki.server, ca=pki.ca)
        async with tls_server(optional) as server:
            anonymous = client_context(TlsCredentials(ca=pki.ca))
            assert await fetch(server, anonymous, "whoami") == b"nobody"
            known = client_context(
                TlsCredentials(ca=pki.ca, cert=pki.client.cert, key=pki.client.key)
            )
            assert await fetch(server, known, "whoami") == b"client1"

    run_on(loop, main())


def test_tls_meets_plain_tcp(loop: str, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        # a TLS client at a plain coap+tcp listener (which sends its CSM first)
        async with tls_server(None) as plain:
            with pytest.raises(NetworkError, match="the server does not speak TLS"):
                await fetch(plain, client_context(TlsCredentials(ca=pki.ca)))
        # a plain client at a TLS listener: its CSM is no ClientHello
        async with tls_server(serving(pki.server)) as server, tls_client(None) as (_, client):
            address = address_of(server)
            await client.connect(address)
            for _ in range(50):
                if server.handshake_failures:
                    break
                await asyncio.sleep(0.02)
            assert server.handshake_failures == 1 and server.connection_count == 0

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    assert any(
        r.getMessage().endswith(
            "TLS handshake failed: the client does not speak TLS (a plain coap+tcp port?)"
        )
        for r in caplog.records
    )


def test_handshakes_count_against_the_limits_and_time_out(
    loop: str, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        limits = StreamLimits(max_per_host=2, handshake_timeout=0.5)
        async with tls_server(serving(pki.server), limits=limits) as server:
            port = server.local_address[1]
            silent = []
            for _ in range(3):  # TCP connections that never send a ClientHello
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                silent.append(sock)
            await asyncio.sleep(0.2)
            assert server.refused == 1 and len(server._handshakes) == 2
            await asyncio.sleep(0.8)
            assert server.handshake_failures == 2 and not server._handshakes
            # the limit is free again
            assert await fetch(server, client_context(TlsCredentials(ca=pki.ca))) == b"hello"
            for sock in silent:
                sock.close()

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    timeouts = [r for r in caplog.records if r.getMessage().endswith("TLS handshake timed out")]
    assert len(timeouts) == 1  # once per host and cause


def test_closing_a_listener_ends_handshakes_under_way(loop: str, pki: Pki) -> None:
    async def main() -> None:
        async with tls_server(serving(pki.server)) as server:
            sock = socket.create_connection(server.local_address[:2])
            sock.setblocking(False)
            await asyncio.sleep(0.1)
            assert len(server._handshakes) == 1
        assert not server._handshakes  # cancelled and awaited by close / wait_closed
        loop_ = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop_.sock_recv(sock, 10), 2) == b""  # closed on us
        sock.close()

    run_on(loop, main())


def test_many_clients_shake_hands_at_once(loop: str, pki: Pki) -> None:
    """Each listener connection's ClientHello reaches TLS, whenever the loop first reads it."""

    async def main() -> None:
        context = client_context(TlsCredentials(ca=pki.ca))
        async with tls_server(serving(pki.server)) as server:
            payloads = await asyncio.gather(*(fetch(server, context) for _ in range(60)))
            assert payloads == [b"hello"] * 60
            assert server.handshake_failures == 0

    run_on(loop, main())


def test_no_tls_version_in_common(loop: str, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        modern = serving(pki.server)
        modern.minimum_version = ssl.TLSVersion.TLSv1_3
        older = client_context(TlsCredentials(ca=pki.ca))
        older.maximum_version = ssl.TLSVersion.TLSv1_2
        async with tls_server(modern) as server:
            with pytest.raises(NetworkError, match="TLS handshake failed: the server closed"):
                await fetch(server, older)
            await asyncio.sleep(0.1)
            assert server.handshake_failures == 1

    with caplog.at_level(logging.WARNING, logger="coapkit.transport"):
        run_on(loop, main())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "coapkit.transport"]
    assert line.endswith(
        "TLS handshake failed: no TLS version in common (coapkit's default is TLS 1.2 or later)"
    )
