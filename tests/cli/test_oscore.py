"""OSCORE on the command line: ``--credentials FILE`` for the client commands and the servers,
``coapkit server --require-oscore PREFIX``, the one-line failures and their exit statuses, and a
server killed with SIGKILL and restarted that never reuses a sequence number."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from coapkit import Client
from coapkit.codec.message import decode
from coapkit.oscore.context import ContextParameters
from coapkit.oscore.option import decode_option
from coapkit.runtime.oscore_files import load_credentials, write_context
from tests.cli.helpers import ServerProcess, one_error_line, run

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
PARAMETERS = ContextParameters(SECRET, b"\x01", b"\x02", master_salt=b"cli")


class Contexts:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.client_dir = write_context(base / "client", PARAMETERS)
        self.server_dir = write_context(base / "server", PARAMETERS.reversed())
        self.server_file = base / "server.json"
        self.server_file.write_text(
            json.dumps({":client1": {"oscore": {"basedir": str(self.server_dir)}}})
        )

    def client_file(self, url: str, directory: Path | None = None) -> str:
        path = self.base / "client.json"
        basedir = str(directory or self.client_dir)
        path.write_text(json.dumps({f"{url}/*": {"oscore": {"basedir": basedir}}}))
        return str(path)


@pytest.fixture
def contexts(tmp_path: Path) -> Contexts:
    return Contexts(tmp_path)


def test_protected_requests_and_required_prefixes(contexts: Contexts) -> None:
    server = ServerProcess(
        "server", "--credentials", str(contexts.server_file), "--require-oscore", "/time"
    )
    try:
        credentials = contexts.client_file(server.url)
        hello = run("get", f"{server.url}/hello", "--credentials", credentials)
        assert (hello.returncode, hello.stdout) == (0, "Hello, CoAP!\n"), hello.stderr
        echoed = run("post", f"{server.url}/echo", "--payload", "hi", "--credentials", credentials)
        assert (echoed.returncode, echoed.stdout) == (0, "hi\n"), echoed.stderr
        refused = run("get", f"{server.url}/time")
        assert refused.returncode == 4
        assert "4.01 Unauthorized" in refused.stderr and "OSCORE required" in refused.stderr
        time = run("get", f"{server.url}/time", "--credentials", credentials)
        assert time.returncode == 0 and time.stdout.strip()
        observed = run(
            "get", f"{server.url}/time", "--observe", "--count", "2", "--credentials", credentials
        )
        assert observed.returncode == 0 and len(observed.stdout.splitlines()) == 2
        traced = run("get", f"{server.url}/hello", "-v", "--credentials", credentials)
        assert "OSCORE:" in traced.stderr and "Uri-Path" not in traced.stderr.split("<")[0]
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "OSCORE with 1 client context(s)" in log
    assert "GET /hello (OSCORE :client1) -> 2.05 Content" in log
    assert "GET /time -> 4.01 Unauthorized" in log
    state = json.loads((contexts.server_dir / "sequence.json").read_text())
    assert state["received"] != "unknown"  # stopped cleanly: the exact state is stored


def test_failures_are_one_line_with_their_status(contexts: Contexts, tmp_path: Path) -> None:
    server = ServerProcess("server", "--credentials", str(contexts.server_file))
    try:
        other = write_context(tmp_path / "other", ContextParameters(SECRET, b"\x09", b"\x02"))
        result = run(
            "get", f"{server.url}/hello", "--credentials", contexts.client_file(server.url, other)
        )
        assert result.returncode == 4
        lines = result.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 3 and "Traceback" not in result.stderr
        assert lines[0] == (
            "coapkit: OSCORE: the server has no security context for our Sender ID "
            "(Sender ID 09; it answered 4.01 Unauthorized Security context not found)"
        )
        wrong = write_context(tmp_path / "wrong", ContextParameters(bytes(16), b"\x01", b"\x02"))
        (wrong / "sequence.json").write_text('{"next-to-send": 1000, "received": "unknown"}')
        result = run(
            "get", f"{server.url}/hello", "--credentials", contexts.client_file(server.url, wrong)
        )
        assert result.returncode == 4
        assert "could not decrypt the request (another key?)" in result.stderr
    finally:
        server.stop()
    url = "coap://127.0.0.1:9"
    bad = tmp_path / "bad.json"
    bad.write_text('{"coap://x/*": {"oscore": {}}}')
    result = run("get", f"{url}/x", "--credentials", str(bad))
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"coapkit: --credentials {bad}: credentials entry 'coap://x/*': 'oscore' needs a 'basedir'"
    )
    result = run("get", f"{url}/x", "--credentials", str(tmp_path / "missing.json"))
    assert result.returncode == 10
    assert one_error_line(result) == (
        f"coapkit: cannot read the credentials file '{tmp_path / 'missing.json'}': "
        "No such file or directory"
    )
    result = run("server", "--require-oscore", "/x", "--port", "0")
    assert result.returncode == 2
    assert "--require-oscore needs --credentials" in one_error_line(result)
    result = run("server", "--workers", "2", "--credentials", str(contexts.server_file))
    assert result.returncode == 2 and "one process only" in one_error_line(result)


def test_a_missing_extra_is_one_line_naming_it(contexts: Contexts, tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "cryptography").mkdir(parents=True)
    (fake / "cryptography" / "__init__.py").write_text("raise ImportError('not here')\n")
    credentials = contexts.client_file("coap://127.0.0.1:9")
    result = run("get", "coap://127.0.0.1:9/x", "--credentials", credentials, extra_path=str(fake))
    assert result.returncode == 6
    assert one_error_line(result) == (
        "coapkit: OSCORE needs the oscore extra: pip install 'coapkit[oscore]' "
        "(cryptography is not installed)"
    )


async def observe_time(url: str, credentials_file: str) -> list[bytes]:
    """Observe ``url``/time for three notifications; the datagrams received."""
    seen: list[bytes] = []

    def tracer(direction: str, data: bytes, remote: object) -> None:
        if direction == "recv":
            seen.append(data)

    credentials = load_credentials(credentials_file)
    try:
        async with (
            Client(oscore=credentials, timeout=10, tracer=tracer) as client,
            client.observe(f"{url}/time") as observation,
        ):
            count = 0
            async for _response in observation:
                count += 1
                if count == 3:
                    break
    finally:
        credentials.close()
    return seen


def test_a_server_killed_and_restarted_never_reuses_a_sequence_number(contexts: Contexts) -> None:
    """Five rounds: observe /time (each notification carries a Partial IV of the server's),
    then SIGKILL the server.  The next server finds its window "unknown" and asks for
    Echo first (B.1.2: another number of its own); no number ever comes twice."""
    pivs: list[int] = []
    for _ in range(5):
        server = ServerProcess("server", "--credentials", str(contexts.server_file))
        try:
            credentials_file = contexts.client_file(server.url)
            seen = asyncio.run(observe_time(server.url, credentials_file))
        finally:
            server.stop(signal.SIGKILL)
        for data in seen:
            message = decode(data)
            raw = message.options.oscore
            if raw:
                piv = decode_option(raw).partial_iv
                if piv is not None:
                    pivs.append(int.from_bytes(piv, "big"))
            if message.code == 0x81:  # 4.01: never unprotected here
                assert raw is not None
        state = json.loads((contexts.server_dir / "sequence.json").read_text())
        assert state["received"] == "unknown"  # killed: the window was not stored
    assert len(pivs) >= 5 * 3
    assert len(set(pivs)) == len(pivs), f"a Partial IV came twice: {pivs}"
    assert pivs == sorted(pivs)
