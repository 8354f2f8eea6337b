"""CoAP over DTLS (``coaps://``) against libcoap 4.3.1, both ways, both of its DTLS builds.

* coapkit asking, ``coap-server-openssl`` and ``coap-server-gnutls`` serving: with
  a pre-shared key (``-k KEY -h HINT``) and with certificates (``-c``/``-j``/``-C``,
  which makes it require a client certificate issued under that CA).  ``-p P``
  makes it listen on P for UDP and on P+1 for DTLS (its ``-h`` says so; the
  ``created DTLS endpoint`` log line confirms it), so the coaps URI names P+1.
  GET, PUT, block-wise both ways (its ``/example_data``), Observe of ``/time``.
* ``coap-client-openssl`` and ``coap-client-gnutls`` asking a coapkit Server on
  ``coaps://``: PSK (``-k KEY -u IDENTITY``) and certificates (``-c``/``-j`` with
  ``-C`` or ``-R``); GET with the identity seen by the resource, PUT, Block2 from
  us and Block1 to us, Observe; an unknown identity, a wrong key and a missing
  client certificate refused, each logged once.

What libcoap does that RFC 6347 (or RFC 7252 §9) does not ask for is recorded as
PEER DEVIATION where a test meets it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from coapkit import Client, Code, Response, Server
from coapkit.dtls import DtlsConfig
from coapkit.errors import DtlsError
from coapkit.resources import Request, Resource
from tests.dtls.conftest import require_pyopenssl
from tests.interop.peers import parse_dump

if TYPE_CHECKING:
    from tests.security.certs import Pki

pytestmark = pytest.mark.interop

BUILDS = ["openssl", "gnutls"]
KEY = b"secretkey"
BIG = b"".join(b"line %04d\n" % n for n in range(310))  # 3,100 bytes: four blocks


@pytest.fixture(autouse=True)
def dtls_available() -> None:
    require_pyopenssl()


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        message = f"{tool} not installed (apt-get install libcoap3-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


def psk(identity: bytes = b"dev1", key: bytes = KEY) -> Any:
    from coapkit.security.dtls import DtlsCredentials

    return DtlsCredentials(psk_identity=identity, psk=key)


# -- coapkit asking, coap-server-{openssl,gnutls} serving ----------------------------------


def free_udp_port_pair() -> int:
    """A port P such that P and P+1 are free for UDP (and TCP) on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        try:
            for candidate in (port, port + 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no two adjacent free ports")


def bound(port: int) -> bool:
    """Whether somebody holds UDP ``port`` on 127.0.0.1 (our bind is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


@contextmanager
def libcoap_server(build: str, *args: str | Path) -> Iterator[int]:
    """coap-server-BUILD with ``args``; yields its DTLS port (P+1)."""
    tool = f"coap-server-{build}"
    require(tool)
    port = free_udp_port_pair()
    process = subprocess.Popen(
        [tool, "-A", "127.0.0.1", "-p", str(port), "-d", "10", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not bound(port + 1):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{tool} did not start")
            time.sleep(0.05)
        yield port + 1
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("build", BUILDS)
async def test_get_put_block_wise_and_observe_from_libcoap_with_psk(build: str) -> None:
    with libcoap_server(build, "-k", KEY.decode(), "-h", "libcoap-hint") as port:
        uri = f"coaps://127.0.0.1:{port}"
        async with Client(dtls=psk(), timeout=20) as client:
            banner = await client.get(f"{uri}/")
            assert banner.payload.startswith(b"This is a test server made with libcoap")
            layer = client._secure().endpoint.security
            assert layer is not None
            [remote] = list(layer._sessions)
            identity = layer.identity(remote)
            assert identity is not None and identity.psk_identity == b"dev1"
            assert identity.version == "DTLSv1.2" and "PSK" in (identity.cipher or "")
            # the hint it sends (-h) reaches our PSK callback
            assert identity.psk_hint == b"libcoap-hint"
            put = await client.put(f"{uri}/example_data", b"over DTLS")
            assert put.code in (Code.CREATED, Code.CHANGED)  # 2.01 the first time
            assert (await client.get(f"{uri}/example_data")).payload == b"over DTLS"
            # Block1 to it (3,100 bytes in 1,024-byte blocks), Block2 back from it
            big = await client.put(f"{uri}/example_data", BIG)
            assert big.code == Code.CHANGED
            assert (await client.get(f"{uri}/example_data")).payload == BIG
            seen = []
            async with client.observe(f"{uri}/time") as observation:
                async for notification in observation:
                    seen.append(notification)
                    if len(seen) == 3:  # the registration's answer and two (1 s apart)
                        break
            assert len({n.payload for n in seen}) == 3
            observes = [n.options.observe for n in seen]
            assert observes == sorted(observes)
            assert len(layer) == 1  # every request in one session


@pytest.mark.parametrize("build", BUILDS)
async def test_certificates_with_libcoap_server(build: str, pki: Pki) -> None:
    from coapkit.security.dtls import DtlsCredentials

    server_material = ["-c", pki.server.cert, "-j", pki.server.key, "-C", pki.ca]
    with libcoap_server(build, *server_material) as port:
        # -C: it requires a client certificate under that CA; we verify its certificate
        # and the name in the URI (localhost and 127.0.0.1 are both in it)
        mine = DtlsCredentials(ca=pki.ca, cert=pki.client.cert, key=pki.client.key)
        async with Client(dtls=mine, timeout=20) as client:
            for host in ("127.0.0.1", "localhost"):
                response = await client.get(f"coaps://{host}:{port}/time")
                assert response.code == Code.CONTENT
        async with Client(dtls=DtlsCredentials(ca=pki.ca), timeout=20) as client:
            with pytest.raises(DtlsError) as refused:
                await client.get(f"coaps://127.0.0.1:{port}/time")
        if build == "openssl":
            assert str(refused.value) == (
                "DTLS handshake failed: the server refused the handshake (it may require a "
                "client certificate)"
            )
        else:
            # PEER DEVIATION (libcoap 4.3.1 with GnuTLS): a client that sends no
            # certificate where one is required gets a bad_certificate alert; RFC 5246
            # §7.4.6 has the server continue or answer handshake_failure.  Our line
            # still names the missing certificate.  Asserted as observed:
            assert str(refused.value) == (
                "DTLS handshake failed: the server requires a client certificate (it "
                "answered: alert bad certificate)"
            )
        assert refused.value.cause in ("handshake_failure", "certificate_refused")
        # its certificate is not for other.example: we refuse it
        async with Client(dtls=mine, timeout=20) as client:
            with pytest.raises(DtlsError, match="is for another name"):
                await _get_as(client, port, "other.example")


async def _get_as(client: Client, port: int, name: str) -> Response:
    """GET /time from 127.0.0.1:port checking the server's certificate for ``name``."""
    parsed, remotes = await client.resolve(f"coaps://127.0.0.1:{port}/time")
    driver = client._secure_route(parsed, remotes[0])
    layer = driver.endpoint.security
    assert layer is not None
    layer.expect(remotes[0], name, client._dtls)
    message = client.build_request("GET", parsed)
    reply, source = await driver.request(message, remotes[0])
    return Response.from_message(reply, remote=source)


@pytest.mark.parametrize("build", BUILDS)
async def test_a_wrong_key_with_libcoap_server_times_out_naming_the_keys(build: str) -> None:
    with libcoap_server(build, "-k", KEY.decode()) as port:
        config = DtlsConfig(handshake_timeout=4.0)
        async with Client(dtls=psk(key=b"not the key"), dtls_config=config) as client:
            with pytest.raises(DtlsError) as caught:
                await client.get(f"coaps://127.0.0.1:{port}/")
    # libcoap's server drops a Finished that does not verify without a word (RFC 6347
    # §4.1.2.7 allows discarding an invalid record silently): all we see is the silence
    assert caught.value.cause == "timeout"
    assert "the two sides may hold different keys" in str(caught.value)


# -- coap-client-{openssl,gnutls} asking a coapkit server -----------------------------------


class Counter(Resource):
    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value))


def coapkit_server(credentials: Any, **options: Any) -> tuple[Server, dict[str, Any]]:
    server = Server(listen=["coaps://127.0.0.1:0"], dtls=credentials, **options)
    state: dict[str, Any] = {"stored": b"", "counter": Counter()}

    @server.route("/who")
    def who(request: Request) -> Response:
        assert request.security is not None
        return Response(payload=request.security.name)

    @server.route("/big", methods=("GET", "PUT"))
    def big(request: Request) -> Response:
        if request.message.code == Code.PUT:
            state["stored"] = request.message.payload
            return Response(code=Code.CHANGED)
        return Response(payload=BIG)

    server.add("/counter", state["counter"])
    return server, state


async def coap_client(
    build: str, *args: str | Path, timeout: float = 15
) -> subprocess.CompletedProcess[bytes]:
    """Run coap-client-BUILD without blocking the loop that serves it."""
    tool = f"coap-client-{build}"
    require(tool)
    command = [tool, "-B", str(max(1, int(timeout) - 2)), *map(str, args)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def psk_table() -> Any:
    from coapkit.security.dtls import DtlsServerCredentials

    return DtlsServerCredentials(psk={b"dev1": KEY, b"dev2": b"another key"}, psk_hint=b"ck")


@pytest.mark.parametrize("build", BUILDS)
async def test_libcoap_client_with_psk(build: str, tmp_path: Path) -> None:
    server, state = coapkit_server(psk_table())
    async with server:
        uri = server.listeners[0].uri
        key = ["-k", KEY.decode(), "-u", "dev1"]
        who = await coap_client(build, *key, f"{uri}/who")
        assert who.returncode == 0 and who.stdout == b"dev1\n"
        other = await coap_client(build, "-k", "another key", "-u", "dev2", f"{uri}/who")
        assert other.stdout == b"dev2\n"
        # Block2 from us, 1,024-byte blocks, and smaller ones on request
        whole = await coap_client(build, *key, f"{uri}/big")
        assert whole.stdout == BIG + b"\n"
        small = await coap_client(build, *key, "-v", "6", "-b", "256", f"{uri}/big")
        sizes = {
            m.option("Block2")[0].rsplit("/", 1)[1]
            for m in parse_dump(small.stdout)
            if m.code == "2.05"
        }
        assert sizes == {"256"}
        # Block1 to us
        upload = tmp_path / "upload.txt"
        body = b"0123456789" * 310
        upload.write_bytes(body)
        put = await coap_client(build, *key, "-m", "put", "-b", "512", "-f", upload, f"{uri}/big")
        assert put.returncode == 0 and state["stored"] == body
        # Observe: the registration's answer and three notifications
        observing = asyncio.ensure_future(
            coap_client(build, *key, "-v", "6", "-s", "3", f"{uri}/counter", timeout=20)
        )
        counter = state["counter"]
        registry = server.listeners[0].endpoint.observe.registry
        for _ in range(200):
            if registry.count_of(counter):
                break
            await asyncio.sleep(0.02)
        for _ in range(3):
            await asyncio.sleep(0.2)
            counter.value += 1
            counter.updated()
        result = await observing
        notifications = [m for m in parse_dump(result.stdout) if m.code == "2.05"]
        assert [m.payload for m in notifications] == ["0", "1", "2", "3"]
        sequence = [int(m.option("Observe")[0]) for m in notifications]
        assert sequence == sorted(sequence) and len(set(sequence)) == 4


@pytest.mark.parametrize("build", BUILDS)
async def test_libcoap_client_refused_with_one_line_per_cause(
    build: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coapkit.dtls")
    server, _ = coapkit_server(psk_table())
    async with server:
        uri = server.listeners[0].uri
        for _ in range(2):
            unknown = await coap_client(build, "-k", KEY.decode(), "-u", "mallory", f"{uri}/who")
            assert b"mallory" not in unknown.stdout and b"cannot send CoAP pdu" in unknown.stdout
            started = time.monotonic()
            wrong = await coap_client(build, "-k", "wrong", "-u", "dev1", f"{uri}/who")
            assert b"dev1" not in wrong.stdout and b"decrypt" in wrong.stdout.lower()
            # our server tells a client whose Finished does not verify (decrypt_error)
            # rather than leaving it to time out, and sends it no copy of its flight
            # then: libcoap with GnuTLS reads the records of a datagram one per wake-up
            # (observed: a repeated three-record flight read over two seconds), and would
            # read the alert after its own timeout
            assert time.monotonic() - started < 5
        # PEER DEVIATION (libcoap 4.3.1 coap-client, not a protocol matter): a failed
        # handshake ("cannot send CoAP pdu") still exits 0.  Asserted as observed:
        assert unknown.returncode == 0 and wrong.returncode == 0
    lines = [
        r.getMessage().split(": ", 1)[1] for r in caplog.records if r.levelno >= logging.WARNING
    ]
    assert lines == [
        "DTLS handshake failed: the client's PSK identity 'mallory' is not known here",
        "DTLS handshake failed: the client's Finished does not verify: it holds another key "
        "for PSK identity 'dev1'",
    ]


@pytest.mark.parametrize("build", BUILDS)
async def test_libcoap_client_with_certificates(
    build: str, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    from coapkit.security.dtls import DtlsServerCredentials

    credentials = DtlsServerCredentials(
        cert=pki.server.cert, key=pki.server.key, ca=pki.ca, require_client_cert=True
    )
    server, _ = coapkit_server(credentials)
    async with server:
        uri = server.listeners[0].uri
        for trust in ("-C", "-R"):
            for pair, name in ((pki.client, b"client1"), (pki.client2, b"client2")):
                got = await coap_client(
                    build, "-c", pair.cert, "-j", pair.key, trust, pki.ca, f"{uri}/who"
                )
                assert got.returncode == 0 and got.stdout == name + b"\n"
        refused = await coap_client(build, "-C", pki.ca, f"{uri}/who")
        assert b"client" not in refused.stdout and b"cannot send CoAP pdu" in refused.stdout
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [line.split(": ", 1)[1] for line in warnings if "coaps" not in line] == [
        "DTLS handshake failed: the client sent no certificate (one is required)"
    ]
