"""coaps:// through the real Client and Server over loopback UDP: PSK and certificates, the
peer's identity on the request, block-wise both ways, Observe, close_notify both ways,
errors as one exception on the client and one log line per peer and cause on the server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import coapkit.transports
from coapkit import Client, Code, Response, Server
from coapkit.dtls import DtlsConfig
from coapkit.errors import DtlsError, NetworkError, UriError
from coapkit.resources import Request, Resource
from coapkit.transports import DTLS_EXTRA
from tests.dtls.conftest import require_pyopenssl
from tests.runtime.loops import LOOPS, run_on

if TYPE_CHECKING:
    from tests.security.certs import Pki

BIG = b"".join(b"line %04d\n" % n for n in range(400))  # 4,000 bytes: four blocks and more
KEYS = {b"dev1": b"secretkey", b"dev2": b"0x0123"}


@pytest.fixture(autouse=True)
def dtls_available() -> None:
    require_pyopenssl()


def psk(identity: bytes = b"dev1", key: bytes | None = None) -> Any:
    from coapkit.security.dtls import DtlsCredentials

    return DtlsCredentials(psk_identity=identity, psk=KEYS[identity] if key is None else key)


def psk_server(**options: Any) -> Server:
    from coapkit.security.dtls import DtlsServerCredentials

    server = Server(
        listen=["coaps://127.0.0.1:0"],
        dtls=DtlsServerCredentials(psk=KEYS, psk_hint=b"coapkit"),
        **options,
    )
    serve(server)
    return server


class Clock(Resource):
    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value))


def serve(server: Server) -> None:
    store = {"body": b""}

    @server.route("/who")
    def who(request: Request) -> Response:
        security = request.security
        assert security is not None
        return Response(payload=f"{security.name} {security.cipher}")

    @server.route("/big", methods=("GET", "PUT"))
    def big(request: Request) -> Response:
        if request.message.code == Code.PUT:
            store["body"] = request.message.payload
            return Response(code=Code.CHANGED)
        return Response(payload=BIG)

    @server.route("/stored")
    def stored(request: Request) -> Response:
        return Response(payload=store["body"])

    server.add("/clock", Clock())


@pytest.mark.parametrize("loop", LOOPS)
def test_psk_get_put_blockwise_and_observe(loop: str) -> None:
    async def main() -> None:
        async with psk_server() as server, Client(dtls=psk()) as client:
            uri = server.listeners[0].uri
            assert uri.startswith("coaps://127.0.0.1:")
            response = await client.get(f"{uri}/who")
            assert response.text.startswith("dev1 PSK-AES128-GCM-SHA256")
            assert (await client.get(f"{uri}/big")).payload == BIG  # Block2 from the server
            put = await client.put(f"{uri}/big", BIG)  # Block1 to the server
            assert put.code == Code.CHANGED
            assert (await client.get(f"{uri}/stored")).payload == BIG
            clock = server.site.match(["clock"])[0]
            seen = []
            async with client.observe(f"{uri}/clock") as observation:
                async for notification in observation:
                    seen.append(notification.text)
                    if len(seen) == 3:
                        break
                    clock.value += 1
                    clock.updated()
            assert seen == ["0", "1", "2"]
            layer = server.listeners[0].security
            assert layer is not None and len(layer) == 1  # one session carried it all
        await asyncio.sleep(0.05)
        # the client's close_notify ended the server's session
        assert layer is not None and len(layer) == 0

    run_on(loop, main())


def test_per_uri_credentials_and_several_identities() -> None:
    async def main() -> None:
        async with psk_server() as first, psk_server() as second:
            one, two = first.listeners[0].uri, second.listeners[0].uri
            table = {f"{one}/*": psk(b"dev1"), f"{two}/*": psk(b"dev2")}
            async with Client(dtls=table) as client:
                assert (await client.get(f"{one}/who")).text.startswith("dev1 ")
                assert (await client.get(f"{two}/who")).text.startswith("dev2 ")

    asyncio.run(main())


def test_certificates_and_the_client_s_subject(pki: Pki) -> None:
    from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials

    async def main() -> None:
        credentials = DtlsServerCredentials(
            cert=pki.server.cert, key=pki.server.key, ca=pki.ca, require_client_cert=True
        )
        server = Server(listen=["coaps://127.0.0.1:0"], dtls=credentials)
        serve(server)
        async with server:
            port = server.port
            client_credentials = DtlsCredentials(
                ca=pki.ca, cert=pki.client2.cert, key=pki.client2.key
            )
            async with Client(dtls=client_credentials) as client:
                response = await client.get(f"coaps://localhost:{port}/who")
                assert response.text.startswith("client2 ECDHE-ECDSA-AES128-GCM-SHA256")
            async with Client(dtls=DtlsCredentials(ca=pki.ca)) as client:
                with pytest.raises(DtlsError) as caught:
                    await client.get(f"coaps://127.0.0.1:{port}/who")
                assert caught.value.cause == "handshake_failure"

    asyncio.run(main())


def test_errors_one_exception_on_the_client_one_line_per_peer_on_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="coapkit")

    async def main() -> None:
        async with psk_server() as server:
            uri = server.listeners[0].uri
            for _ in range(3):
                async with Client(dtls=psk(b"mallory", b"secretkey")) as client:
                    with pytest.raises(DtlsError) as caught:
                        await client.get(f"{uri}/who")
                    assert str(caught.value) == (
                        "DTLS handshake failed: the server rejected PSK identity 'mallory'"
                    )
                    assert caught.value.cause == "unknown_psk_identity"
                    assert isinstance(caught.value, NetworkError)  # exit 7 in the CLI
            async with Client(dtls=psk()) as client:
                with pytest.raises(NetworkError, match="port unreachable"):
                    await client.get("coaps://127.0.0.1:9/who", timeout=10)

    asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(": ", 1)[1] for r in warnings] == [
        "DTLS handshake failed: the client's PSK identity 'mallory' is not known here"
    ]  # three clients from one host: logged once
    assert warnings[0].name == "coapkit.dtls"
    assert not any(r.exc_info for r in caplog.records)


def test_idle_sessions_close_and_the_next_request_makes_a_new_one() -> None:
    async def main() -> None:
        config = DtlsConfig(idle_timeout=0.3)
        async with psk_server(dtls_config=config) as server, Client(dtls=psk()) as client:
            uri = server.listeners[0].uri
            assert (await client.get(f"{uri}/who")).code == Code.CONTENT
            layer = server.listeners[0].security
            assert layer is not None and len(layer) == 1
            await asyncio.sleep(0.6)
            assert len(layer) == 0  # closed with a close_notify; the client closed its own
            response = await client.get(f"{uri}/who")
            assert response.code == Code.CONTENT and len(layer) == 1
            assert layer.identity(next(iter(layer._sessions))).resumed

    asyncio.run(main())


def test_coaps_without_material_is_refused_at_start() -> None:
    async def main() -> None:
        with pytest.raises(UriError, match=r"coaps:// needs DTLS material"):
            async with Server(listen=["coaps://127.0.0.1:0"]):
                pass

    asyncio.run(main())


SRC = Path(coapkit.transports.__file__).parents[2]


def test_without_the_extra_one_line_names_coapkit_dtls() -> None:
    code = (
        "import sys; sys.modules['OpenSSL'] = None\n"
        "import asyncio, coapkit, coapkit.client, coapkit.server\n"
        "from coapkit.transports import MissingExtra\n"
        "async def main():\n"
        "    async with coapkit.Client() as client:\n"
        "        try:\n"
        "            await client.get('coaps://127.0.0.1/x')\n"
        "        except MissingExtra as exc:\n"
        "            print(exc.extra, exc)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dtls {DTLS_EXTRA}"
    assert (
        DTLS_EXTRA == "coaps:// (CoAP over DTLS) needs the dtls extra: pip install 'coapkit[dtls]'"
    )


def test_the_traces_show_the_coap_messages_inside_the_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A DatagramTrace (coapkit -v) and the coapkit.trace log show each DTLS record and,
    marked "in DTLS", the CoAP message it carried: the records alone show only sizes."""
    from coapkit.trace import DatagramTrace

    lines: list[str] = []

    class Collect(DatagramTrace):
        def __call__(self, direction: str, data: bytes, remote: object) -> None:
            lines.extend(self.lines(direction, data, remote))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with psk_server() as server, Client(dtls=psk(), tracer=Collect(loop.time)) as client:
            with caplog.at_level(logging.DEBUG, logger="coapkit.trace"):
                await client.get(f"{server.listeners[0].uri}/who")

    asyncio.run(main())
    request = next(i for i, line in enumerate(lines) if line.startswith("> CON GET  MID"))
    assert " bytes in DTLS, +" in lines[request]
    assert lines[request + 1] == ">   Uri-Path: 'who'"
    assert lines[request + 2].startswith("> DTLS application_data(epoch 1, ")
    response = next(i for i, line in enumerate(lines) if line.startswith("< ACK 2.05 Content"))
    assert lines[response - 1].startswith("< DTLS application_data(epoch 1, ")
    logged = [record.getMessage() for record in caplog.records if record.name == "coapkit.trace"]
    # the server's side, on the log: the request it decrypted and the answer it sealed
    assert any(text.startswith("< CON GET  MID") and " in DTLS, +" in text for text in logged)
    assert any(text.startswith("> ACK 2.05 Content") and " in DTLS, +" in text for text in logged)
