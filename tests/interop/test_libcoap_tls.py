"""CoAP over TLS (``coaps+tcp``, RFC 8323) against libcoap 4.3.1 (OpenSSL build), both ways.

Certificates come from tests/security/certs.py (one CA; the server's for
127.0.0.1 and localhost; client certificates ``client1`` and ``client2``).

* coapkit serving, ``coap-client-openssl`` asking: ``-c`` certificate, ``-j``
  key, ``-C`` CA (its trust anchor for our server; it also sends ``-c`` as
  its client certificate).  The coapkit side is the driver over the stream
  transport with :func:`coapkit.security.tls.server_context` (the Server
  class learns streams later).
* coapkit asking, ``coap-server-openssl`` serving: it takes ``-c``/``-j``/``-C``
  the same way and, with ``-C``, requires a client certificate issued under
  that CA.  ``-p PORT`` makes it listen on PORT for UDP and TCP and on
  PORT+1 for DTLS and TLS (its ``-h`` says so; the "created TLS endpoint" log
  line confirms it), so the coaps+tcp URI names PORT+1.

Both sides negotiate ALPN ``coap`` (RFC 8323 §11.7): libcoap's client offers
it and its server selects it.  What libcoap does that RFC 8323 (or the TLS
profile it refers to) does not say is recorded as PEER DEVIATION where a
test meets it: coap-client sends Uri-Port for the port it connects to; it
accepts a server certificate for another name, and an expired one; a failed
handshake still exits 0.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any

import pytest

from coapkit import Code, Message, Options
from coapkit.connections import ConnectionLayer
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError
from coapkit.resources import Request, Resource, Response, Site
from coapkit.runtime.driver import Driver
from coapkit.security.tls import TlsCredentials, client_context, server_context
from coapkit.transports.tcp import StreamTransport
from tests.interop.peers import parse_dump

if TYPE_CHECKING:
    from tests.security.certs import Pair, Pki

pytestmark = pytest.mark.interop

CLIENT = "coap-client-openssl"
SERVER = "coap-server-openssl"
BIG = b"".join(b"line %04d\n" % n for n in range(310))  # 3100 bytes: three blocks and more
HUGE = b"".join(b"line %04d\n" % n for n in range(10_000))  # 100,000 bytes: BERT


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        message = f"{tool} not installed (apt-get install libcoap3-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not os.environ.get("CI"):
        pytest.importorskip("cryptography")
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


# -- coapkit serving ---------------------------------------------------------------------


class Counter(Resource):
    """An observable counter; ``bump()`` changes it and notifies."""

    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value))


class Store(Resource):
    def __init__(self) -> None:
        super().__init__()
        self.payload = b""

    def get(self, request: Request) -> Response:
        return Response(payload=self.payload)

    def put(self, request: Request) -> Response:
        self.payload = request.payload
        return Response(Code.CHANGED)


class Served:
    """A coaps+tcp listener on 127.0.0.1 with /hello, /whoami (the client certificate's
    CN), /big (3072 bytes), /store (GET, PUT) and /counter (observable)."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.site = Site()
        self.counter = Counter()
        self.store = Store()
        self.site.add("/counter", self.counter)
        self.site.add("/store", self.store)
        self.site.route("/hello")(lambda request: Response(payload="hello"))
        self.site.route("/big")(lambda request: Response(payload=BIG))
        self.site.route("/whoami")(self.whoami)
        self.seen: list[Any] = []  #: the TLS session of each request, as it arrived

    def whoami(self, request: Request) -> Response:
        identity = self.transport.peer_identity(request.remote)
        return Response(payload="nobody" if identity is None else str(identity.common_name))

    def handle(self, event: Any) -> Any:
        self.seen.append(self.transport.tls_session(event.remote))
        request = Request(event.request, event.remote, event.handle)
        response = self.site.dispatch(request)
        message = response.to_message(event.request.token)
        if event.request.options.observe is not None:
            found = self.site.match(request.path)
            resource = found[0] if found and found[0].observable else None
            message = self.endpoint.observe.on_response(
                resource, event.request, event.remote, message, self.driver.loop.time()
            )
        return message

    def bump(self) -> None:
        self.counter.value += 1
        sequence, observers = self.endpoint.observe.updated(self.counter)
        for observer in observers:
            notification = Response(payload=str(self.counter.value)).to_message()
            self.driver.notify(observer, notification, sequence=sequence)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.endpoint = Endpoint(rng=Random(1), layer=ConnectionLayer())
        self.driver = Driver(self.endpoint, loop, request_handler=self.handle)
        self.transport = StreamTransport(loop, self.driver, ssl_context=self.context)
        self.driver.attach(self.transport)
        await self.transport.listen("127.0.0.1", 0)

    def uri(self, path: str, host: str = "127.0.0.1") -> str:
        return f"coaps+tcp://{host}:{self.transport.local_address[1]}{path}"

    async def observers(self, count: int) -> None:
        """Wait until ``count`` observers are registered on /counter."""
        for _ in range(200):
            if self.endpoint.observe.registry.count_of(self.counter) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the observer never registered")


@asynccontextmanager
async def serving(pki: Pki, pair: Pair | None = None, **kwargs: Any) -> AsyncIterator[Served]:
    """Serve with ``pair`` (the server certificate by default), client certificates
    verified against the CA (``require_client_cert=True`` to require one)."""
    require(CLIENT)
    pair = pair or pki.server
    credentials = TlsCredentials(cert=pair.cert, key=pair.key, ca=pki.ca, **kwargs)
    served = Served(server_context(credentials))
    await served.start()
    try:
        yield served
    finally:
        await served.driver.close()
        await served.transport.wait_closed()


async def coap_client(
    *args: str | Path, timeout: float = 15, input_data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run coap-client-openssl without blocking the loop that serves it."""
    command = [CLIENT, "-B", str(max(1, int(timeout) - 2)), *map(str, args)]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.DEVNULL if input_data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(input_data), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def with_cert(pki: Pki, pair_name: str = "client") -> list[str | Path]:
    pair = getattr(pki, pair_name)
    return ["-C", pki.ca, "-c", pair.cert, "-j", pair.key]


# -- coapkit asking ----------------------------------------------------------------------


def free_port_pair() -> int:
    """A port P such that P and P+1 are free for TCP and UDP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as probe:
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


@contextmanager
def libcoap_tls_server(pki: Pki, *args: str | Path) -> Iterator[int]:
    """coap-server-openssl with the server certificate; yields its coaps+tcp port (P+1)."""
    require(SERVER)
    port = free_port_pair()
    process = subprocess.Popen(
        [SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "10"]
        + ["-c", str(pki.server.cert), "-j", str(pki.server.key), "-C", str(pki.ca)]
        + [str(a) for a in args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port + 1), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("coap-server-openssl did not start") from None
                time.sleep(0.05)
        yield port + 1
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def asking(credentials: TlsCredentials) -> AsyncIterator[tuple[Driver, StreamTransport]]:
    loop = asyncio.get_running_loop()
    driver = Driver(Endpoint(rng=Random(2), layer=ConnectionLayer()), loop)
    transport = StreamTransport(loop, driver, ssl_context=client_context(credentials))
    driver.attach(transport)
    try:
        yield driver, transport
    finally:
        await driver.close()


def request(code: int, path: str, payload: bytes = b"", **options: Any) -> Message:
    segments = [s for s in path.split("/") if s]
    return Message(code=code, options=Options.build(uri_path=segments, **options), payload=payload)


# -- coapkit serving, coap-client-openssl asking -----------------------------------------


async def test_libcoap_gets_with_its_client_certificate_and_is_known_by_it(pki: Pki) -> None:
    async with serving(pki, require_client_cert=True) as served:
        port = str(served.transport.local_address[1])
        for pair, name in (("client", b"client1"), ("client2", b"client2")):
            result = await coap_client(*with_cert(pki, pair), served.uri("/whoami"))
            assert result.returncode == 0, result
            assert result.stdout == name + b"\n"
        verbose = await coap_client(*with_cert(pki), "-v", "6", served.uri("/hello"))
    (get, response) = parse_dump(verbose.stdout)
    assert (get.code, get.option("Uri-Path"), response.code, response.payload) == (
        "GET",
        ["hello"],
        "2.05",
        "hello",
    )
    # PEER DEVIATION (libcoap 4.3.1 coap-client): it sends Uri-Port with the port it
    # connects to.  RFC 8323 §8.6 decomposes a URI as RFC 7252 §6.4 does, step 7 reading
    # "If |port| does not equal the request's destination TCP port, include a Uri-Port".
    # Harmless (we serve any Uri-Port); asserted as observed:
    assert get.option("Uri-Port") == [port]
    # ALPN: libcoap offers "coap" (RFC 8323 §11.7) and we select it
    assert {session.alpn for session in served.seen} == {"coap"}
    assert {session.version for session in served.seen} <= {"TLSv1.2", "TLSv1.3"}


async def test_libcoap_without_a_certificate_is_refused_where_one_is_required(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(pki, require_client_cert=True) as served:
        result = await coap_client("-C", pki.ca, served.uri("/hello"))
        assert b"hello" not in result.stdout
        # PEER DEVIATION (libcoap 4.3.1 coap-client, not a protocol matter): a failed
        # handshake ("cannot send CoAP pdu") still exits 0.  Asserted as observed:
        assert result.returncode == 0
        assert served.transport.handshake_failures == 1
    assert [
        r.getMessage().split(": ", 1)[1] for r in caplog.records if r.name == "coapkit.transport"
    ] == ["TLS handshake failed: the client sent no certificate (one is required)"]
    # where a client certificate is optional, libcoap without one is served as nobody
    async with serving(pki) as served:
        result = await coap_client("-C", pki.ca, served.uri("/whoami"))
        assert result.stdout == b"nobody\n"


async def test_libcoap_puts_and_gets_back(pki: Pki) -> None:
    async with serving(pki) as served:
        put = await coap_client(
            *with_cert(pki), "-m", "put", "-e", "over TLS", served.uri("/store")
        )
        assert put.returncode == 0 and served.store.payload == b"over TLS"
        got = await coap_client(*with_cert(pki), served.uri("/store"))
        assert got.stdout == b"over TLS\n"


async def test_libcoap_block_wise_both_ways(pki: Pki, tmp_path: Path) -> None:
    async with serving(pki) as served:
        # both CSMs announce Block-Wise-Transfer and more than 1152 bytes (libcoap 8 MiB,
        # coapkit 66,688), so a 3100-byte body goes whole, in one message: blocks would
        # only cost round trips (BERT for larger bodies: see test_libcoap_bert.py)
        plain = await coap_client(*with_cert(pki), served.uri("/big"))
        assert plain.returncode == 0 and plain.stdout == BIG + b"\n"
        # 1024-byte blocks asked for (-b 1024): given, and libcoap follows them
        blocks = await coap_client(*with_cert(pki), "-v", "6", "-b", "1024", served.uri("/big"))
        responses = [m for m in parse_dump(blocks.stdout) if m.code == "2.05"]
        assert [m.option("Block2") for m in responses[:4]] == [
            ["0/M/1024"],
            ["1/M/1024"],
            ["2/M/1024"],
            ["3/_/1024"],
        ]
        # smaller blocks asked for (-b 512): given
        small = await coap_client(*with_cert(pki), "-v", "6", "-b", "512", served.uri("/big"))
        sizes = {
            m.option("Block2")[0].rsplit("/", 1)[1]
            for m in parse_dump(small.stdout)
            if m.code == "2.05"
        }
        assert sizes == {"512"}
        # a PUT in 1024-byte Block1 blocks, reassembled by us
        upload = tmp_path / "upload.txt"
        body = b"0123456789" * 310  # (libcoap dumps a payload with newlines as binary data)
        upload.write_bytes(body)
        put = await coap_client(
            *with_cert(pki),
            "-v",
            "6",
            "-m",
            "put",
            "-b",
            "1024",
            "-f",
            upload,
            served.uri("/store"),
        )
        assert put.returncode == 0
        first = parse_dump(put.stdout)[0]
        assert first.code == "PUT" and first.option("Block1") == ["0/M/1024"]
        assert served.store.payload == body


async def test_libcoap_observes(pki: Pki) -> None:
    async with serving(pki) as served:
        observing = asyncio.ensure_future(
            coap_client(*with_cert(pki), "-v", "7", "-s", "3", served.uri("/counter"))
        )
        await served.observers(1)
        for _ in range(3):
            await asyncio.sleep(0.2)
            served.bump()
        result = await observing
        assert served.endpoint.observe.registry.count_of(served.counter) == 0
    messages = parse_dump(result.stdout)  # (-v 7 shows the deregistration too)
    responses = [m for m in messages if m.code == "2.05"]
    assert [m.payload for m in responses] == ["0", "1", "2", "3"]
    sequence = [int(m.option("Observe")[0]) for m in responses]
    assert sequence == sorted(sequence) and len(set(sequence)) == 4
    # leaving, libcoap deregisters with a GET carrying Observe 1, as RFC 8323 §7.3
    # asks of a client over a reliable transport (no RST to a notification there)
    assert [m.option("Observe") for m in messages if m.code == "GET"][-1] == ["1"]


async def test_libcoap_client_checks_the_chain_but_not_the_name_nor_the_dates(pki: Pki) -> None:
    # a certificate from another CA: refused
    async with serving(pki, pki.stranger) as served:
        refused = await coap_client("-C", pki.ca, served.uri("/hello"))
        assert b"hello" not in refused.stdout and b"certificate verify failed" in refused.stdout
    # PEER DEVIATION (libcoap 4.3.1 coap-client): it accepts a server certificate issued
    # for another name (other.example for 127.0.0.1 and localhost) and one that has
    # expired.  RFC 8323 §9.1 applies RFC 7925 §4.4, under which the client checks the
    # server's identity (RFC 6125) and the validity period; coap-client registers a name
    # callback that accepts any CN and sets allow_expired_certs.  coapkit refuses both
    # (tests/security/test_tls.py).  Asserted as observed:
    for pair in (pki.wrong_name, pki.expired):
        async with serving(pki, pair) as served:
            for host in ("127.0.0.1", "localhost"):
                accepted = await coap_client("-C", pki.ca, served.uri("/hello", host=host))
                assert accepted.stdout == b"hello\n"


# -- coapkit asking, coap-server-openssl serving -----------------------------------------


def ours(pki: Pki, pair_name: str | None = "client") -> TlsCredentials:
    if pair_name is None:
        return TlsCredentials(ca=pki.ca)
    pair = getattr(pki, pair_name)
    return TlsCredentials(ca=pki.ca, cert=pair.cert, key=pair.key)


async def test_get_from_libcoap_with_verification_and_alpn(pki: Pki) -> None:
    with libcoap_tls_server(pki) as port:
        async with asking(ours(pki)) as (driver, transport):
            address = ("127.0.0.1", port)
            await transport.connect(address, server_hostname="127.0.0.1")
            banner, _ = await driver.request(request(Code.GET, "/"), address)
            assert banner.code == Code.CONTENT
            assert banner.payload.startswith(b"This is a test server made with libcoap")
            clock, _ = await driver.request(request(Code.GET, "/time"), address)
            assert clock.code == Code.CONTENT and clock.payload
            session = transport.tls_session(address)
            assert session is not None
            assert session.alpn == "coap"  # libcoap selects the ALPN ID we offer
            assert session.peer is not None and session.peer.common_name == "localhost"


async def test_put_and_block_wise_to_libcoap(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    with libcoap_tls_server(pki) as port:
        async with asking(ours(pki)) as (driver, transport):
            address = ("127.0.0.1", port)
            await transport.connect(address, server_hostname="127.0.0.1")
            small, _ = await driver.request(request(Code.PUT, "/example_data", b"tls"), address)
            # (libcoap answers the first PUT to /example_data 2.01: see test_libcoap_server)
            assert small.code in (Code.CREATED, Code.CHANGED)
            got, _ = await driver.request(request(Code.GET, "/example_data"), address)
            assert got.payload == b"tls"
            with caplog.at_level("DEBUG", logger="coapkit.blockwise"):
                big, _ = await driver.request(request(Code.PUT, "/example_data", BIG), address)
                assert big.code == Code.CHANGED
                got, _ = await driver.request(request(Code.GET, "/example_data"), address)
                assert got.payload == BIG
                huge, _ = await driver.request(request(Code.PUT, "/example_data", HUGE), address)
                assert huge.code == Code.CHANGED
                got, _ = await driver.request(request(Code.GET, "/example_data"), address)
                assert got.payload == HUGE
            progress = [r.getMessage() for r in caplog.records if r.name == "coapkit.blockwise"]
            # 3100 bytes go whole (libcoap's CSM takes 8 MiB); 100 kB in BERT blocks of 64
            # 1024-byte blocks up, and of as many as fit our 66,688 bytes (65) down
            assert not any("of 3100 bytes" in line for line in progress)
            assert any("65536 of 100000 bytes" in line for line in progress)
            assert any("66560 of 100000 bytes" in line for line in progress)


async def test_observe_libcoap_time(pki: Pki) -> None:
    with libcoap_tls_server(pki) as port:
        async with asking(ours(pki)) as (driver, transport):
            address = ("127.0.0.1", port)
            await transport.connect(address, server_hostname="127.0.0.1")
            stream = driver.open_stream(request(Code.GET, "/time", observe=0), address)
            received = []
            for _ in range(3):  # the registration's response and two notifications (1 s)
                item = await asyncio.wait_for(stream.next(), 5)
                assert item is not None
                received.append(item[0])
            driver.cancel(stream.handle)
    assert [m.code for m in received] == [Code.CONTENT] * 3
    # over a reliable transport the Observe value of a notification may be empty and is
    # ignored on reception (RFC 8323 §7.2); libcoap still counts up, as over UDP
    sequence = [m.options.observe for m in received]
    assert all(isinstance(n, int) for n in sequence) and sequence == sorted(sequence)
    assert len({m.payload for m in received}) == 3  # the time moved on


async def test_libcoap_requires_our_client_certificate(pki: Pki) -> None:
    with libcoap_tls_server(pki) as port:
        # without one: refused, and the error says why.  libcoap sends the TLS 1.3
        # certificate_required alert ("the server requires a client certificate"), but
        # our CSM may meet the closed socket first (a reset: "... it may require a client
        # certificate, ..."): either way the line names the client certificate.
        async with asking(ours(pki, None)) as (driver, transport):
            address = ("127.0.0.1", port)
            with pytest.raises(NetworkError, match="client certificate"):
                await transport.connect(address, server_hostname="127.0.0.1")
                await driver.request(request(Code.GET, "/"), address)
        # with one from another CA: refused (its unknown_ca alert, or the reset)
        async with asking(ours(pki, "stranger_client")) as (driver, transport):
            with pytest.raises(NetworkError, match=r"CA that issued our certificate|refuse ours"):
                await transport.connect(address, server_hostname="127.0.0.1")
                await driver.request(request(Code.GET, "/"), address)
        # with one from the CA libcoap trusts: served
        async with asking(ours(pki, "client2")) as (driver, transport):
            await transport.connect(address, server_hostname="127.0.0.1")
            response, _ = await driver.request(request(Code.GET, "/"), address)
            assert response.code == Code.CONTENT
