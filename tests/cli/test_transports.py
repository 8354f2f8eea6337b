"""The tool on every transport (docs/transports.md, /work/shared/TRANSPORTS.md's contract):
client commands with coap+tcp, coaps+tcp, coap+ws and coaps+ws URIs, servers with several
``--listen`` URIs, the security flags and ``--credentials``, and the one-line failures.

Everything goes through the real console script (:func:`tests.cli.helpers.run`);
the certificates are made per session (tests/security/certs.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import Listening, one_error_line, run
from tests.interop.peers import coap_client, libcoap_server

if TYPE_CHECKING:
    from tests.security.certs import Pki

pytest.importorskip("websockets")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not os.environ.get("CI"):
        pytest.importorskip("cryptography")
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def everywhere(pki: Pki) -> Iterator[Listening]:
    """The demo resources on UDP, TCP, TLS, WebSocket and WebSocket over TLS at once."""
    server = Listening(
        "server",
        "--obs-period", "0.2",
        "--listen", "coap://127.0.0.1:0",
        "--listen", "coap+tcp://127.0.0.1:0",
        "--listen", "coaps+tcp://127.0.0.1:0",
        "--listen", "coap+ws://127.0.0.1:0",
        "--listen", "coaps+ws://127.0.0.1:0",
        "--cert", pki.server.cert,
        "--key", pki.server.key,
    )  # fmt: skip
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log()


def test_the_start_up_line_names_every_bound_uri(everywhere: Listening) -> None:
    assert [uri.partition("://")[0] for uri in everywhere.bound] == [
        "coap", "coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws",
    ]  # fmt: skip
    for uri in everywhere.bound:
        assert re.fullmatch(r"coaps?(\+tcp|\+ws)?://127\.0\.0\.1:\d+", uri), uri
        assert not uri.endswith(":0")


@pytest.mark.parametrize("scheme", ["coap", "coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws"])
def test_requests_on_every_transport(everywhere: Listening, pki: Pki, scheme: str) -> None:
    base = everywhere.uri[scheme]
    tls = ["--ca", str(pki.ca)] if scheme.startswith("coaps") else []
    got = run("get", f"{base}/hello", *tls)
    assert (got.returncode, got.stdout, got.stderr) == (0, "Hello, CoAP!\n", "")
    put = run("put", f"{base}/echo", "--payload", f"over {scheme}", *tls)
    assert (put.returncode, put.stdout) == (0, f"over {scheme}\n")
    observed = run("get", f"{base}/time", "--observe", "--count", "3", *tls)
    assert observed.returncode == 0, observed.stderr
    assert len(observed.stdout.splitlines()) == 3
    ping = run("ping", base, *tls)
    answer = "RST" if scheme == "coap" else "Pong"
    assert ping.returncode == 0
    assert re.fullmatch(rf"{answer} from 127\.0\.0\.1:\d+: round trip \d+\.\d\d ms\n", ping.stdout)
    discovered = run("discover", base, "--json", *tls)
    assert discovered.returncode == 0
    hrefs = [link["href"] for link in json.loads(discovered.stdout)]
    assert {"/hello", "/counter", "/time", "/echo"} <= set(hrefs)


def test_the_verbose_trace_shows_the_frames(everywhere: Listening) -> None:
    result = run("get", f"{everywhere.uri['coap+tcp']}/hello", "-v")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    starts = [line.split("  ")[0] for line in lines if re.match(r"[<>] \S", line)]
    assert starts[0] == "> CSM"  # then the GET, and the server's CSM and response
    assert sorted(starts[1:]) == ["< 2.05 Content", "< CSM", "> GET"]
    assert ">   Max-Message-Size: 66688" in lines
    assert ">   Uri-Path: 'hello'" in lines
    ping = run("ping", everywhere.uri["coap+ws"], "-v")
    starts = [line.split("  ")[0] for line in ping.stderr.splitlines()]
    assert "> Ping" in starts and "< Pong" in starts


def test_the_server_log_and_trace_on_a_connection(pki: Pki) -> None:
    server = Listening("server", "--listen", "coap+tcp://127.0.0.1:0", "-v")
    try:
        assert run("get", f"{server.uri['coap+tcp']}/hello").returncode == 0
        server.wait_for_log("GET /hello -> 2.05 Content")
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "< CSM  token (empty)  from 127.0.0.1:" in log
    assert "> 2.05 Content  token " in log


# -- the plugtest set and the file server on every listener -----------------------------------


@pytest.fixture(scope="module")
def plugtest() -> Iterator[Listening]:
    server = Listening(
        "server", "--plugtest", "--obs-period", "0.2",
        "--listen", "coap://127.0.0.1:0",
        "--listen", "coap+tcp://127.0.0.1:0",
        "--listen", "coap+ws://127.0.0.1:0",
    )  # fmt: skip
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize("scheme", ["coap+tcp", "coap+ws"])
def test_the_plugtest_set_over_connections(plugtest: Listening, scheme: str) -> None:
    from coapkit.cli.plugtest import LARGE

    base = plugtest.uri[scheme]
    test = run("get", f"{base}/test")
    assert test.returncode == 0 and "Code: 1 (GET)" in test.stdout
    created = run("post", f"{base}/test", "--payload", "x")
    assert created.returncode == 0
    assert "2.01 Created  Location: /location1/location2/location3" in created.stderr
    assert run("get", f"{base}/seg1/seg2/seg3").returncode == 0
    query = run("get", f"{base}/query?first=1&second=2")
    assert "first=1" in query.stdout and "second=2" in query.stdout
    assert run("get", f"{base}/multi-format", "--accept", "json", "--json").returncode == 0
    large = run("get", f"{base}/large", "-o", "-")
    assert (large.returncode, large.stdout.encode()) == (0, LARGE)
    upload = run("post", f"{base}/large-post", "--payload", "abc" * 500)
    assert (upload.returncode, upload.stdout) == (0, "ABC" * 500 + "\n")
    observed = run("get", f"{base}/obs", "--observe", "--count", "2")
    assert observed.returncode == 0 and len(observed.stdout.splitlines()) == 2
    listed = run("discover", base, "--rt", "Type1")
    assert listed.returncode == 0
    assert "/link1" in listed.stdout and "/link3" in listed.stdout
    assert "/link2" not in listed.stdout


def test_the_file_server_on_several_listeners(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("some notes\n")
    server = Listening(
        "fileserver", tmp_path,
        "--listen", "coap://127.0.0.1:0",
        "--listen", "coap+tcp://127.0.0.1:0",
        "--listen", "coap+ws://127.0.0.1:0",
    )  # fmt: skip
    try:
        for uri in server.bound:
            result = run("get", f"{uri}/notes.txt")
            assert (result.returncode, result.stdout) == (0, "some notes\n"), uri
    finally:
        assert server.stop() == 0


# -- TLS: verification and the one-line failures --------------------------------------------------


@pytest.fixture(scope="module")
def tls_servers(pki: Pki) -> Iterator[dict[str, Listening]]:
    """coaps+tcp servers: with the right certificate, one for another name, one that
    requires client certificates."""
    servers = {
        "plain": Listening(
            "server", "--listen", "coaps+tcp://127.0.0.1:0",
            "--cert", pki.server.cert, "--key", pki.server.key,
        ),
        "wrong-name": Listening(
            "server", "--listen", "coaps+tcp://127.0.0.1:0",
            "--cert", pki.wrong_name.cert, "--key", pki.wrong_name.key,
        ),
        "mutual": Listening(
            "server", "--listen", "coaps+tcp://127.0.0.1:0", "--listen", "coaps+ws://127.0.0.1:0",
            "--cert", pki.server.cert, "--key", pki.server.key, "--ca", pki.ca,
        ),
    }  # fmt: skip
    yield servers
    for server in servers.values():
        assert server.stop() == 0
        assert "Traceback" not in server.log()


def test_a_server_from_a_ca_not_trusted(tls_servers: dict[str, Listening], pki: Pki) -> None:
    server = tls_servers["plain"]
    for trust in (["--ca", str(pki.other_ca)], []):  # another CA; the system's store
        result = run("get", f"{server.uri['coaps+tcp']}/hello", *trust)
        assert result.returncode == 7
        line = one_error_line(result)
        assert line.startswith("coapkit: 127.0.0.1:")
        assert "TLS handshake failed: certificate verify failed" in line
        assert line.endswith("(the server's certificate is not issued by a trusted CA)")
    # the server logs the cause once for this client host (and minute), not per attempt
    server.wait_for_log("TLS handshake failed")
    time.sleep(0.2)
    assert server.log().count("TLS handshake failed") == 1


def test_a_server_certificate_for_another_name(tls_servers: dict[str, Listening], pki: Pki) -> None:
    uri = f"{tls_servers['wrong-name'].uri['coaps+tcp']}/hello"
    refused = run("get", uri, "--ca", str(pki.ca))
    assert refused.returncode == 7
    assert one_error_line(refused).endswith("(the server's certificate is for another name)")
    insecure = run("get", uri, "--ca", str(pki.ca), "--insecure")
    assert (insecure.returncode, insecure.stdout) == (0, "Hello, CoAP!\n")
    assert one_error_line(insecure) == (
        "coapkit: warning: --insecure: not checking that the server's certificate is for "
        "'127.0.0.1' (its chain is still verified)"
    )
    # --insecure skips the name only: a CA not trusted is still refused
    stranger = run("get", uri, "--ca", str(pki.other_ca), "--insecure")
    assert stranger.returncode == 7
    assert "not issued by a trusted CA" in stranger.stderr


def refused_in_one_line(result: subprocess.CompletedProcess[str]) -> bool:
    """A client refused by the server after its own TLS 1.3 handshake: one line, saying so."""
    line = one_error_line(result)
    return "handshake failed" in line or "no open connection to 127.0.0.1:" in line


@pytest.mark.parametrize("scheme", ["coaps+tcp", "coaps+ws"])
def test_client_certificates_where_the_server_has_ca(
    tls_servers: dict[str, Listening], pki: Pki, scheme: str
) -> None:
    server = tls_servers["mutual"]
    uri = f"{server.uri[scheme]}/hello"
    ca = ["--ca", str(pki.ca)]
    mine = ["--cert", str(pki.client.cert), "--key", str(pki.client.key)]
    accepted = run("get", uri, *ca, *mine)
    assert (accepted.returncode, accepted.stdout, accepted.stderr) == (0, "Hello, CoAP!\n", "")
    observed = run("get", uri.replace("/hello", "/time"), "--observe", "--count", "2", *ca, *mine)
    assert observed.returncode == 0
    without = run("get", uri, *ca)
    assert without.returncode == 7
    # Over TLS 1.3 the refusal comes after the client's handshake: the WebSocket
    # transport then reads "the WebSocket handshake failed: did not receive a valid HTTP
    # response", the TCP one guesses why the server hung up.  Since the client waits for
    # the server's CSM (Driver.connection_ready), a connection found closed already by
    # then reads "no open connection to HOST:PORT", the reason lost (reported).
    assert refused_in_one_line(without)
    foreign = ["--cert", str(pki.stranger_client.cert), "--key", str(pki.stranger_client.key)]
    refused = run("get", uri, *ca, *foreign)
    assert refused.returncode == 7
    assert refused_in_one_line(refused)
    server.wait_for_log("the client sent no certificate (one is required)")
    server.wait_for_log("the client's certificate is not issued by a trusted CA")


def test_material_that_cannot_be_used(pki: Pki, tmp_path: Path) -> None:
    uri = "coaps+tcp://127.0.0.1:9/x"
    cases = [
        (["--ca", str(pki.ca), "--key", str(pki.client.key)], 2, "--key needs --cert"),
        (["--ca", str(tmp_path / "none.pem")], 10, "cannot read the CA file"),
        (["--cert", str(pki.client.cert), "--key", str(pki.server.key)], 2,
         "the key does not belong to the certificate"),
        (["--ca", str(pki.client.key)], 2, "no PEM certificate"),
        (["--psk-identity", "dev1"], 2, "--psk-identity and --psk go together"),
        (["--psk-identity", "dev1", "--psk", "0xzz"], 2, "not hexadecimal"),
        (["--psk-identity", "dev1", "--psk", "secretkey"], 2,
         "coaps+tcp:// with a pre-shared key is not supported (TLS-PSK"),
    ]  # fmt: skip
    for flags, status, fragment in cases:
        result = run("get", uri, *flags)
        assert result.returncode == status, (flags, result.stderr)
        line = one_error_line(result)
        assert line.startswith("coapkit: ") and fragment in line, (flags, line)


def test_security_flags_without_tls_are_ignored_with_a_warning(
    everywhere: Listening, pki: Pki
) -> None:
    result = run("get", f"{everywhere.uri['coap+tcp']}/hello", "--ca", str(pki.ca), "--insecure")
    assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
    assert one_error_line(result) == (
        "coapkit: warning: --ca, --insecure ignored: coap+tcp:// has no TLS or DTLS "
        "(coaps://, coaps+tcp:// and coaps+ws:// use them)"
    )


# -- server set-up errors --------------------------------------------------------------------------


def test_server_set_up_errors(pki: Pki) -> None:
    cases = [
        (["--listen", "coaps+tcp://127.0.0.1:0"], 2,
         "coapkit: a coaps+tcp:// listener needs the server's certificate and key: "
         "--cert PEM --key PEM"),
        (["--listen", "coaps+tcp://127.0.0.1:0", "--cert", str(pki.server.cert),
          "--key", str(pki.server.key), "--psk-identity", "dev1", "--psk", "key"], 2,
         "coapkit: --psk: coaps+tcp:// with a pre-shared key is not supported (TLS-PSK: "
         "Python's ssl module has none before 3.13); use certificates (--cert, --key, --ca), "
         "or coaps:// (DTLS), which takes pre-shared keys"),
        (["--listen", "coaps+ws://127.0.0.1:0", "--cert", str(pki.client.cert),
          "--key", str(pki.server.key)], 2,
         f"coapkit: cannot use certificate '{pki.client.cert}' with key '{pki.server.key}': "
         "the key does not belong to the certificate"),
        (["--workers", "2", "--listen", "coaps+ws://127.0.0.1:0"], 2,
         "coapkit: a coaps+ws:// listener needs the server's certificate and key"),
        (["--listen", "coap://127.0.0.1:0", "--port", "0"], 2,
         "coapkit: --listen replaces --bind and --port: give the address and port in the URI "
         "(--listen coap://ADDR:PORT)"),
        (["--listen", "coap+tcp://127.0.0.1:0/path"], 6,
         "coapkit: bad URI: --listen coap+tcp://127.0.0.1:0/path: a listener takes no path "
         "nor query"),
        (["--listen", "http://127.0.0.1:0"], 6, "coapkit: bad URI: unknown scheme 'http'"),
    ]  # fmt: skip
    for flags, status, expected in cases:
        result = run("server", *flags)
        assert result.returncode == status, (flags, result.stderr)
        assert one_error_line(result).startswith(expected), (flags, result.stderr)


def test_a_listener_that_cannot_bind_is_named() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "server",
            "--listen", f"coap://127.0.0.1:{port}",
            "--listen", f"coap+tcp://127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode == 7
    assert one_error_line(result) == (
        f"coapkit: cannot listen on coap+tcp://127.0.0.1:{port}: Address already in use"
    )


def test_tls_flags_on_a_server_without_a_tls_listener(pki: Pki) -> None:
    server = Listening("server", "--listen", "coap+tcp://127.0.0.1:0", "--ca", pki.ca)
    try:
        assert run("get", f"{server.uri['coap+tcp']}/hello").returncode == 0
    finally:
        assert server.stop() == 0
    assert (
        "coapkit: warning: --ca ignored: no coaps://, coaps+tcp:// or coaps+ws:// listener"
        in server.log()
    )


# -- the ws extra missing -----------------------------------------------------------------------


def test_without_the_ws_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    (blocker / "websockets").mkdir(parents=True)
    (blocker / "websockets" / "__init__.py").write_text(
        "raise ImportError('blocked by the test')\n"
    )
    hint = "CoAP over WebSockets needs the ws extra: pip install 'coapkit[ws]'"
    for command in (
        ["get", "coap+ws://127.0.0.1:9/x"],
        ["ping", "coaps+ws://127.0.0.1:9"],
        ["discover", "coap+ws://127.0.0.1:9"],
    ):
        result = run(*command, extra_path=str(blocker))
        assert result.returncode == 6, result.stderr
        assert one_error_line(result) == (
            f"coapkit: bad URI: {command[1].partition(':')[0]}:// cannot be used: {hint}"
        )
    server = run("server", "--listen", "coap+ws://127.0.0.1:0", extra_path=str(blocker))
    assert server.returncode == 6
    assert one_error_line(server) == f"coapkit: bad URI: --listen coap+ws://127.0.0.1:0: {hint}"
    # the other transports do not need it
    tcp = Listening("server", "--listen", "coap+tcp://127.0.0.1:0", extra_path=str(blocker))
    try:
        assert run("get", f"{tcp.uri['coap+tcp']}/hello", extra_path=str(blocker)).returncode == 0
    finally:
        assert tcp.stop() == 0


# -- --credentials FILE (aiocoap's format) --------------------------------------------------------


def write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_credentials_in_aiocoaps_form_and_coapkits(
    tls_servers: dict[str, Listening], pki: Pki, tmp_path: Path
) -> None:
    plain = tls_servers["plain"].uri["coaps+tcp"]
    mutual = tls_servers["mutual"].uri["coaps+tcp"]
    # as aiocoap's tests write it: the CA file that verifies the server, per origin
    aiocoap_file = write_json(
        tmp_path / "aiocoap.json", {f"{plain}/*": {"tlscert": {"certfile": str(pki.ca)}}}
    )
    result = run("get", f"{plain}/hello", "--credentials", aiocoap_file)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, CoAP!\n", "")
    # a label shared by two patterns; the longest pattern that matches wins
    labelled = write_json(
        tmp_path / "labelled.json",
        {
            "coaps+tcp://*": ":lab",
            f"{mutual}/counter": {"tlscert": {"certfile": str(pki.ca)}},
            ":lab": {
                "tls": {"cert": str(pki.client.cert), "key": str(pki.client.key), "ca": str(pki.ca)}
            },
            "coap://unused.example/*": None,
        },
    )
    assert run("get", f"{mutual}/hello", "--credentials", labelled).stdout == "Hello, CoAP!\n"
    counter = run("get", f"{mutual}/counter", "--credentials", labelled)
    assert counter.returncode == 7  # that entry has no client certificate
    # the command line overrides the entry
    overridden = run(
        "get", f"{mutual}/counter", "--credentials", labelled,
        "--cert", str(pki.client.cert), "--key", str(pki.client.key),
    )  # fmt: skip
    assert overridden.returncode == 0
    insecure = write_json(
        tmp_path / "insecure.json",
        {"*": {"tls": {"ca": str(pki.ca), "insecure": True}}},
    )
    other = tls_servers["wrong-name"].uri["coaps+tcp"]
    result = run("get", f"{other}/hello", "--credentials", insecure)
    assert result.returncode == 0
    assert one_error_line(result).startswith(
        f"coapkit: warning: --credentials {insecure} (insecure): not checking"
    )


def test_a_server_with_credentials(pki: Pki, tmp_path: Path) -> None:
    credentials = write_json(
        tmp_path / "server.json",
        {"coaps+tcp://*": {"tls": {"cert": str(pki.server.cert), "key": str(pki.server.key)}}},
    )
    server = Listening(
        "server", "--listen", "coaps+tcp://127.0.0.1:0", "--credentials", credentials
    )
    try:
        result = run("get", f"{server.uri['coaps+tcp']}/hello", "--ca", str(pki.ca))
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
    finally:
        assert server.stop() == 0


def test_credentials_that_cannot_be_used(pki: Pki, tmp_path: Path) -> None:
    files = {
        "dtls": {":client1": {"dtls": {"psk": {"ascii": "secret"}}}},
        "two": {"coaps+tcp://*": {"tls": {}, "tlscert": {"certfile": "ca.pem"}}},
        "kind": {"coaps+tcp://*": {"pem": {}}},
        "member": {"coaps+tcp://*": {"tls": {"certfile": "x.pem"}}},
        "reference": {"coaps+tcp://*": ":nobody"},
        "array": [],
    }
    expected = {
        "dtls": 'entry \':client1\': dtls needs "psk" and "client-identity" (missing: '
        "client-identity)",
        "two": "entry 'coaps+tcp://*': an entry is an object with exactly one kind of "
        "credential (found tls, tlscert)",
        "kind": "entry 'coaps+tcp://*': unknown kind of credential 'pem' (coapkit has tls, "
        "tlscert, dtls, oscore, edhoc-oscore)",
        "member": "entry 'coaps+tcp://*': tls has no member 'certfile' (it has cert, key, ca, "
        "insecure)",
        "reference": "entry 'coaps+tcp://*' refers to ':nobody', which is not there",
        "array": "the file must hold a JSON object of URI patterns and :labels",
    }
    for name, content in files.items():
        path = write_json(tmp_path / f"{name}.json", content)
        for command in (["get", "coaps+tcp://127.0.0.1:9/x"], ["server", "--port", "0"]):
            result = run(*command, "--credentials", path)
            assert result.returncode == 2, (name, command, result.stderr)
            assert one_error_line(result) == f"coapkit: --credentials {path}: {expected[name]}"
    broken = tmp_path / "broken.json"
    broken.write_text('{"coaps+tcp://*": ')
    result = run("get", "coaps+tcp://127.0.0.1:9/x", "--credentials", str(broken))
    assert result.returncode == 2
    assert "not valid JSON: Expecting value (line 1 column 19)" in one_error_line(result)
    missing = run("get", "coaps+tcp://127.0.0.1:9/x", "--credentials", str(tmp_path / "no.json"))
    assert missing.returncode == 10
    assert "cannot read the credentials file" in one_error_line(missing)
    diag = run("get", "coaps+tcp://127.0.0.1:9/x", "--credentials", str(tmp_path / "c.diag"))
    assert diag.returncode == 2
    assert "CBOR diagnostic notation is not supported" in one_error_line(diag)
    client_side = write_json(tmp_path / "tlscert.json", {"*": {"tlscert": {"certfile": "ca.pem"}}})
    server = run("server", "--listen", "coaps+tcp://127.0.0.1:0", "--credentials", client_side)
    assert server.returncode == 2
    assert "tlscert names the CAs a client trusts" in one_error_line(server)


# -- --workers with connection listeners -----------------------------------------------------------


def test_workers_share_tcp_and_websocket_listeners() -> None:
    server = Listening(
        "server", "--workers", "2",
        "--listen", "coap://127.0.0.1:0",
        "--listen", "coap+tcp://127.0.0.1:0",
        "--listen", "coap+ws://127.0.0.1:0",
    )  # fmt: skip
    try:
        server.wait_for_log("2 workers serving on coap://127.0.0.1:")
        line = next(line for line in server.log().splitlines() if "2 workers serving" in line)
        assert ", coap+tcp://127.0.0.1:" in line and ", coap+ws://127.0.0.1:" in line
        tcp = next(uri for uri in re.findall(r"coap\+tcp://[\d.]+:\d+", line))
        ws = next(uri for uri in re.findall(r"coap\+ws://[\d.]+:\d+", line))
        for _ in range(16):  # a connection each: the kernel spreads them over both workers
            assert run("get", f"{tcp}/hello").stdout == "Hello, CoAP!\n"
        assert run("get", f"{ws}/hello").stdout == "Hello, CoAP!\n"
    finally:
        status = server.stop(signal.SIGINT)
    log = server.log()
    assert status == 0, log
    served = set(re.findall(r"\[worker (\d+)\] 127\.0\.0\.1:\d+ GET /hello", log))
    assert len(served) == 2, log


# -- interoperability: libcoap's tools over coap+tcp -----------------------------------------------


@pytest.mark.interop
def test_libcoap_client_against_our_tcp_listener() -> None:
    server = Listening(
        "server", "--listen", "coap://127.0.0.1:0", "--listen", "coap+tcp://127.0.0.1:0"
    )
    try:
        base = server.uri["coap+tcp"]
        got = coap_client("-m", "get", f"{base}/hello")
        assert got.returncode == 0
        assert got.stdout.decode().strip() == "Hello, CoAP!"
        put = coap_client("-m", "put", "-e", "from libcoap", f"{base}/echo")
        assert put.stdout.decode().strip() == "from libcoap"
        discovered = coap_client("-m", "get", f"{base}/.well-known/core")
        assert "</hello>" in discovered.stdout.decode()
        observed = coap_client("-m", "get", "-s", "3", f"{base}/time")  # Observe for 3 s
        assert observed.returncode == 0
        assert len(re.findall(r"\d{4}-\d\d-\d\dT[\d:]+Z", observed.stdout.decode())) >= 3
    finally:
        assert server.stop() == 0
    assert "GET /hello -> 2.05 Content" in server.log()


@pytest.mark.interop
def test_our_client_against_libcoap_over_tcp() -> None:
    with libcoap_server() as port:  # -p PORT: UDP and TCP
        base = f"coap+tcp://127.0.0.1:{port}"
        result = run("get", f"{base}/")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("This is a test server made with libcoap")
        verbose = run("get", f"{base}/time", "-v")
        assert verbose.returncode == 0
        assert "< CSM" in verbose.stderr and "< 2.05 Content" in verbose.stderr
        # PEER DEVIATION: libcoap 4.3.1 answers a Ping with a Pong of an empty token
        # where RFC 8323 §5.4 wants the Ping's; with one ping waiting on the connection
        # coapkit takes it for the answer all the same
        ping = run("ping", base, "--timeout", "5", "-v")
        assert ping.returncode == 0, ping.stderr
        assert "< Pong  token (empty)" in ping.stderr
        assert ping.stdout.startswith(f"Pong from 127.0.0.1:{port}")
        listed = run("discover", base)
        assert listed.returncode == 0 and "/time" in listed.stdout
        put = run("put", f"{base}/example_data", "--payload", "over tcp")
        assert put.returncode == 0, put.stderr
        assert run("get", f"{base}/example_data").stdout == "over tcp\n"
        observed = run("get", f"{base}/time", "--observe", "--count", "2", "--timeout", "10")
        assert observed.returncode == 0 and len(observed.stdout.splitlines()) == 2


# -- the event loops, --help ---------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_either_loop(everywhere: Listening, pki: Pki, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    for scheme in ("coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws"):
        tls = ["--ca", str(pki.ca)] if scheme.startswith("coaps") else []
        result = run("get", f"{everywhere.uri[scheme]}/hello", "--loop", loop, *tls)
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), scheme


def test_help_shows_the_schemes_and_the_security_options() -> None:
    from tests.cli.helpers import run_in_process

    client_flags = ("--cert", "--key", "--ca", "--insecure", "--psk-identity", "--psk")
    for command in ("get", "post", "ping", "discover"):
        shown = run_in_process(command, "--help").stdout
        for flag in (*client_flags, "--credentials"):
            assert f"{flag} " in shown, (command, flag)
        for scheme in ("coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws"):
            assert scheme in shown, (command, scheme)
        assert "'coapkit[ws]'" in shown
    for command in ("server", "fileserver"):
        shown = run_in_process(command, "--help").stdout
        for flag in ("--listen", "--cert", "--key", "--ca", "--psk-identity", "--psk"):
            assert f"{flag} " in shown, (command, flag)
        assert "--insecure" not in shown
        assert "--listen coap://BIND:PORT" in shown
