"""``coapkit proxy``: the command line of the proxy, end to end over loopback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli.helpers import ServerProcess, cli_env, one_error_line, run


class ProxyProcess:
    """``coapkit proxy ARGS`` on free ports; the bound URIs read from its log."""

    def __init__(self, *args: str) -> None:
        self.log_file = tempfile.NamedTemporaryFile(prefix="coapkit-proxy-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coapkit", "proxy", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            env=cli_env(),
        )
        deadline = time.monotonic() + 15
        while "Ctrl-C stops" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the proxy did not start:\n{self.log()}")
            time.sleep(0.02)
        self.uris = re.search(r"serving CoAP on (.*)", self.log()).group(1).split(", ")  # type: ignore[union-attr]
        http = re.search(r"cross proxy\) on (\S+)", self.log())
        self.http = http.group(1) if http else None

    def log(self) -> str:
        return Path(self.log_file.name).read_text("utf-8", "replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def origin() -> ServerProcess:
    server = ServerProcess("server")
    yield server  # type: ignore[misc]
    server.stop()


def test_forward_and_http(origin: ServerProcess) -> None:
    proxy = ProxyProcess("--forward", "--listen", "coap://127.0.0.1:0", "--http", "127.0.0.1:0")
    try:
        target = f"{origin.url}/hello"
        result = run("get", proxy.uris[0], "--option", f"Proxy-Uri={target}")
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
        assert proxy.http is not None
        with urllib.request.urlopen(f"{proxy.http}/hc/{target}", timeout=20) as answer:
            assert answer.status == 200 and answer.read() == b"Hello, CoAP!"
            assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    finally:
        assert proxy.stop() == 0
    log = proxy.log()
    assert "forwarding to any host and port, loopback included" in log
    assert "GET / -> 2.05 Content" in log and "HTTP GET /hc/coap://" in log
    assert log.rstrip().endswith("stopped")


def test_allow_narrows_forwarding(origin: ServerProcess) -> None:
    proxy = ProxyProcess("--allow", "example.org", "--listen", "coap://127.0.0.1:0")
    try:
        result = run("get", proxy.uris[0], "--option", f"Proxy-Uri={origin.url}/hello")
        assert result.returncode == 5
        assert result.stderr == (
            "5.05 Proxying Not Supported: forwarding to "
            f"127.0.0.1:{origin.port} is not allowed here\n"
        )
    finally:
        proxy.stop()
    assert "forwarding to example.org only" in proxy.log()
    assert "loopback included" not in proxy.log()


def test_reverse_rules_on_several_transports(origin: ServerProcess) -> None:
    proxy = ProxyProcess(
        "--reverse",
        f"/up={origin.url}",
        "--listen",
        "coap://127.0.0.1:0",
        "--listen",
        "coap+tcp://127.0.0.1:0",
    )
    try:
        assert [uri.partition(":")[0] for uri in proxy.uris] == ["coap", "coap+tcp"]
        result = run("get", f"{proxy.uris[0]}/up/hello")
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
        code = (
            "import asyncio, sys\n"
            "from coapkit import Client\n"
            "async def main():\n"
            "    async with Client() as client:\n"
            "        print((await client.get(sys.argv[1])).text)\n"
            "asyncio.run(main())\n"
        )
        over_tcp = subprocess.run(
            [sys.executable, "-c", code, f"{proxy.uris[1]}/up/hello"],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=30,
            check=False,
        )
        assert over_tcp.stdout == "Hello, CoAP!\n", over_tcp.stderr
        refused = run("get", proxy.uris[0], "--option", f"Proxy-Uri={origin.url}/hello")
        assert refused.returncode == 5
    finally:
        proxy.stop()
    assert f"reverse: /up -> {origin.url}" in proxy.log()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ((), 2, "nothing to proxy: give --forward, --allow or --reverse"),
        (("--reverse", "/up"), 2, "a reverse rule is PREFIX=URI"),
        (("--allow", "::1"), 2, "write an IPv6 host in brackets"),
        (("--forward", "--http", "8080"), 2, "--http takes HOST:PORT"),
        (("--forward", "--listen", "coap:/x"), 6, "bad URI"),
        (("--forward", "--cache-entries", "-1"), 2, "--cache-entries cannot be negative"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], status: int, message: str) -> None:
    result = run("proxy", *args)
    assert result.returncode == status
    assert message in one_error_line(result)


def test_a_port_in_use_is_a_network_error() -> None:
    with __import__("socket").socket(2, 2) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run("proxy", "--forward", "--listen", f"coap://127.0.0.1:{port}")
    assert result.returncode == 7 and "cannot listen" in result.stderr


def test_help_has_examples() -> None:
    result = run("proxy", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    assert "coapkit proxy --forward --allow" in result.stdout


def test_tls_and_websocket_listeners_with_the_server_flags(
    origin: ServerProcess, tmp_path: Path
) -> None:
    pytest.importorskip("cryptography")
    from tests.security.certs import make_pki

    pki = make_pki(tmp_path)
    proxy = ProxyProcess(
        "--reverse", f"/up={origin.url}",
        "--listen", "coaps+tcp://127.0.0.1:0",
        "--listen", "coap+ws://127.0.0.1:0",
        "--cert", str(pki.server.cert),
        "--key", str(pki.server.key),
    )  # fmt: skip
    try:
        tls, ws = proxy.uris
        assert tls.startswith("coaps+tcp://") and ws.startswith("coap+ws://")
        result = run("get", f"{tls}/up/hello", "--ca", str(pki.ca))
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
        result = run("get", f"{ws}/up/hello")
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
    finally:
        assert proxy.stop() == 0


def test_a_dtls_listener_with_a_pre_shared_key(origin: ServerProcess) -> None:
    """coapkit proxy takes coaps:// listeners with the server's DTLS flags: a client with
    the key reaches the origin through it; one with another key is refused in one line."""
    pytest.importorskip("OpenSSL")
    proxy = ProxyProcess(
        "--reverse", f"/up={origin.url}",
        "--listen", "coaps://127.0.0.1:0",
        "--psk-identity", "gateway-client",
        "--psk", "0x00112233445566778899aabbccddeeff",
    )  # fmt: skip
    try:
        (dtls,) = proxy.uris
        assert dtls.startswith("coaps://")
        key = ("--psk-identity", "gateway-client", "--psk", "0x00112233445566778899aabbccddeeff")
        result = run("get", f"{dtls}/up/hello", *key)
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
        wrong = ("--psk-identity", "gateway-client", "--psk", "not the key")
        result = run("get", f"{dtls}/up/hello", *wrong, "--timeout", "5")
        assert result.returncode == 7, result.stderr  # told at once (decrypt_error), no timeout
        assert len(result.stderr.strip().splitlines()) == 1 and "DTLS" in result.stderr
    finally:
        assert proxy.stop() == 0


def test_a_reverse_rule_to_a_dtls_origin_with_upstream_credentials(tmp_path: Path) -> None:
    """--upstream-credentials (aiocoap's format) gives the proxy's own client its key for a
    coaps:// origin: a plain coap:// client reaches the DTLS origin through the proxy
    (cross-transport); without the file the proxy cannot get in (5.02 Bad Gateway)."""
    pytest.importorskip("OpenSSL")
    from tests.cli.helpers import Listening

    origin = Listening(
        "server", "--listen", "coaps://127.0.0.1:0",
        "--psk-identity", "the-proxy", "--psk", "origin secret",
    )  # fmt: skip
    upstream = origin.uri["coaps"]
    credentials = tmp_path / "upstream.json"
    entry = {"dtls": {"psk": {"ascii": "origin secret"}, "client-identity": "the-proxy"}}
    credentials.write_text(json.dumps({f"{upstream}/*": entry}))
    proxy = ProxyProcess(
        "--reverse", f"/up={upstream}",
        "--listen", "coap://127.0.0.1:0",
        "--upstream-credentials", str(credentials),
    )  # fmt: skip
    without = ProxyProcess("--reverse", f"/up={upstream}", "--listen", "coap://127.0.0.1:0")
    try:
        result = run("get", f"{proxy.uris[0]}/up/hello")
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
        refused = run("get", f"{without.uris[0]}/up/hello")
        assert refused.returncode == 5 and "5.02" in refused.stderr, refused.stderr
    finally:
        assert proxy.stop() == 0
        assert without.stop() == 0
        origin.stop()
    assert origin.log().count("GET /hello -> 2.05 Content") == 1  # the proxy's, over DTLS


def test_listen_and_bind_do_not_go_together() -> None:
    result = run("proxy", "--forward", "--listen", "coap://127.0.0.1:0", "--port", "5683")
    assert result.returncode == 2 and "--listen replaces --bind and --port" in result.stderr
