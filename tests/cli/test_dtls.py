"""``coaps://`` (CoAP over DTLS, RFC 7252 §9) on the command line, per docs/transports.md.

The client commands against ``coapkit server --listen coaps://`` with a
pre-shared key (text and ``0x`` hex, RFC 7252 §9.1.3.1) and with certificates
(§9.1.3.3), several identities from an aiocoap-format ``--credentials`` file,
Observe, ping and discovery inside a session; the one-line failures (status 7
for a handshake that fails, 2 and 10 for material that cannot be used, 6 for
the ``dtls`` extra missing) and the server's one log line per failing peer and
cause; ``--workers`` sharing a ``coaps://`` port; ``coapkit rd`` over DTLS; and
libcoap's ``coap-client-openssl``/``coap-server-openssl`` both ways.

Everything goes through the real console script (:func:`tests.cli.helpers.run`);
the certificates are made per module (tests/security/certs.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import Listening, one_error_line, run

if TYPE_CHECKING:
    from tests.security.certs import Pki

KEY = "secretkey"
KEY_HEX = "0x" + KEY.encode().hex()  # the same key, as --psk takes hex
DEV2_KEY = bytes.fromhex("0a0b0c0d0e0f")  # a key that is not text: {"hex": ...} in the file
DEV1 = ["--psk-identity", "dev1", "--psk", KEY]

WRONG_KEY = (
    "coapkit: DTLS handshake failed: the server could not verify our Finished: it holds "
    "another key for PSK identity 'dev1'; check the pre-shared key (--psk) of this identity"
)
UNKNOWN_IDENTITY = (
    "coapkit: DTLS handshake failed: the server rejected PSK identity 'dev9'; check the PSK "
    "identity (--psk-identity) the server expects"
)


@pytest.fixture(scope="module", autouse=True)
def dtls_extra() -> None:
    if not os.environ.get("CI"):  # CI installs the test extra, which has it
        pytest.importorskip("OpenSSL")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


def write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A server's credentials file in aiocoap's form: an identity per :label, the key
    as ASCII, as hex (with aiocoap's separators), and as a plain string (coapkit's)."""
    directory = tmp_path_factory.mktemp("server-credentials")
    return write_json(
        directory / "clients.json",
        {
            ":dev2": {
                "dtls": {"psk": {"hex": "0a-0b-0c:0d 0e0f"}, "client-identity": {"ascii": "dev2"}}
            },
            ":dev3": {"dtls": {"psk": "dev3's key", "client-identity": "dev3"}},
        },
    )


@pytest.fixture(scope="module")
def server(pki: Pki, clients: str) -> Iterator[Listening]:
    """The demo resources on coaps:// (dev1 from the flags, dev2 and dev3 from the file,
    and a certificate), on coaps+tcp:// (the same certificate) and on coap://."""
    listening = Listening(
        "server",
        "--obs-period", "0.2",
        "--listen", "coaps://127.0.0.1:0",
        "--listen", "coaps+tcp://127.0.0.1:0",
        "--listen", "coap://127.0.0.1:0",
        *DEV1,
        "--credentials", clients,
        "--cert", pki.server.cert,
        "--key", pki.server.key,
    )  # fmt: skip
    yield listening
    assert listening.stop() == 0
    assert "Traceback" not in listening.log()


def test_the_start_up_lines_name_the_listener_and_what_it_accepts(server: Listening) -> None:
    assert re.fullmatch(r"coaps://127\.0\.0\.1:\d+", server.uri["coaps"])
    assert "; DTLS with 3 PSK identities and a certificate); Ctrl-C stops" in server.log()


def test_psk_as_text_and_as_hex(server: Listening) -> None:
    for key in (KEY, KEY_HEX):
        result = run("get", f"{server.uri['coaps']}/hello", "--psk-identity", "dev1", "--psk", key)
        assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, CoAP!\n", "")
    put = run("put", f"{server.uri['coaps']}/echo", "--payload", "inside DTLS", *DEV1)
    assert (put.returncode, put.stdout) == (0, "inside DTLS\n")


def test_several_identities_from_the_servers_credentials(server: Listening) -> None:
    for identity, key in (("dev2", "0x" + DEV2_KEY.hex()), ("dev3", "dev3's key")):
        result = run(
            "get", f"{server.uri['coaps']}/hello", "--psk-identity", identity, "--psk", key
        )
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
    # dev2's key is dev2's only
    crossed = run(
        "get", f"{server.uri['coaps']}/hello", "--psk-identity", "dev3", "--psk", "0x0a0b0c0d0e0f"
    )
    assert crossed.returncode == 7
    assert "the server could not verify our Finished" in one_error_line(crossed)


def test_a_file_written_for_aiocoap_client(server: Listening, tmp_path: Path) -> None:
    content = {
        f"{server.uri['coaps']}/*": {
            "dtls": {"psk": {"ascii": KEY}, "client-identity": {"ascii": "dev1"}}
        },
        "coaps://*": {"dtls": {"psk": {"ascii": "other"}, "client-identity": {"ascii": "nobody"}}},
    }
    path = write_json(tmp_path / "client.json", content)
    try:  # the file is aiocoap's format: aiocoap itself reads it
        from aiocoap.credentials import CredentialsMap

        aiocoaps = CredentialsMap()
        aiocoaps.load_from_dict(content)
        assert aiocoaps[f"{server.uri['coaps']}/*"].as_dtls_psk() == (b"dev1", KEY.encode())
    except ImportError:
        pass
    result = run("get", f"{server.uri['coaps']}/hello", "--credentials", path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, CoAP!\n", "")
    # the flags override the entry
    flags = run(
        "get", f"{server.uri['coaps']}/hello", "--credentials", path, "--psk-identity", "dev9",
        "--psk", KEY,
    )  # fmt: skip
    assert flags.returncode == 7
    assert one_error_line(flags) == UNKNOWN_IDENTITY


def test_a_wrong_key_and_an_unknown_identity(server: Listening) -> None:
    uri = f"{server.uri['coaps']}/hello"
    for _ in range(2):
        wrong = run("get", uri, "--psk-identity", "dev1", "--psk", "not the key")
        assert wrong.returncode == 7
        assert one_error_line(wrong) == WRONG_KEY
        unknown = run("get", uri, "--psk-identity", "dev9", "--psk", KEY)
        assert unknown.returncode == 7
        assert one_error_line(unknown) == UNKNOWN_IDENTITY
    # the server logs each cause once for this client host, in one line
    server.wait_for_log("PSK identity 'dev9' is not known here")
    log = server.log()
    assert (
        log.count("DTLS handshake failed: the client's PSK identity 'dev9' is not known here") == 1
    )
    assert log.count("the client's Finished does not verify: it holds another key") == 1
    assert "Traceback" not in log


def test_certificates(server: Listening, pki: Pki) -> None:
    for host in ("127.0.0.1", "localhost"):
        uri = server.uri["coaps"].replace("127.0.0.1", host)
        result = run("get", f"{uri}/hello", "--ca", str(pki.ca))
        assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, CoAP!\n", "")
    untrusted = run("get", f"{server.uri['coaps']}/hello", "--ca", str(pki.other_ca))
    assert untrusted.returncode == 7
    line = one_error_line(untrusted)
    assert line.startswith("coapkit: DTLS handshake failed: certificate verify failed: ")
    assert "(the server's certificate is not issued by a trusted CA)" in line
    # the same certificate and --ca on the TLS listener beside it
    tls = run("get", f"{server.uri['coaps+tcp']}/hello", "--ca", str(pki.ca))
    assert (tls.returncode, tls.stdout) == (0, "Hello, CoAP!\n")


def test_observe_ping_and_discover_inside_a_session(server: Listening) -> None:
    observed = run("get", f"{server.uri['coaps']}/time", "--observe", "--count", "3", *DEV1)
    assert observed.returncode == 0, observed.stderr
    times = observed.stdout.splitlines()  # the first response and two notifications
    assert len(times) == 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+Z", time) for time in times), times
    ping = run("ping", server.uri["coaps"], *DEV1)
    assert ping.returncode == 0, ping.stderr
    port = server.uri["coaps"].rpartition(":")[2]
    assert re.fullmatch(rf"RST from 127\.0\.0\.1:{port}: round trip [\d.]+ ms\n", ping.stdout)
    listed = run("discover", server.uri["coaps"], *DEV1)
    assert listed.returncode == 0 and "/hello" in listed.stdout and "/time" in listed.stdout


def test_the_verbose_trace_shows_records_and_the_messages_inside(server: Listening) -> None:
    result = run("get", f"{server.uri['coaps']}/hello", "-v", *DEV1)
    assert result.returncode == 0
    trace = result.stderr.splitlines()
    assert trace[0].startswith("> DTLS handshake(epoch 0, ")  # the ClientHello
    request = next(i for i, line in enumerate(trace) if line.startswith("> CON GET  MID"))
    assert "in DTLS, +" in trace[request]
    assert trace[request + 1] == ">   Uri-Path: 'hello'"
    assert trace[request + 2].startswith("> DTLS application_data(epoch 1, ")
    response = next(i for i, line in enumerate(trace) if line.startswith("< ACK 2.05 Content"))
    assert trace[response - 1].startswith("< DTLS application_data(epoch 1, ")
    assert '<   payload: 12 bytes "Hello, CoAP!"' in trace


def test_no_mode_in_common() -> None:
    psk_only = Listening("server", "--listen", "coaps://127.0.0.1:0", *DEV1)
    try:  # a client with neither key nor certificate offers certificate suites only
        result = run("get", f"{psk_only.uri['coaps']}/hello")
    finally:
        assert psk_only.stop() == 0
    assert result.returncode == 7
    assert one_error_line(result).endswith(
        "; the two sides need a mode in common: a pre-shared key (--psk-identity, --psk) or "
        "certificates (--cert, --key, --ca)"
    )
    assert "DTLS handshake failed: no cipher suite in common with the client" in psk_only.log()


def test_a_timeout_during_the_handshake_says_so(silent_port: int) -> None:
    uri = f"coaps://127.0.0.1:{silent_port}"
    for command in (["get", f"{uri}/hello"], ["ping", uri]):
        result = run(*command, *DEV1, "--timeout", "1")
        assert result.returncode == 8
        line = one_error_line(result)
        assert line.endswith(
            f": the DTLS handshake with 127.0.0.1:{silent_port} had not completed; is a DTLS "
            "server running there? with a pre-shared key, the two sides may hold different "
            "keys (-v shows the handshake)"
        ), line


def test_security_flags_for_a_uri_without_dtls_are_ignored(server: Listening) -> None:
    result = run("get", f"{server.uri['coap']}/hello", *DEV1)
    assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
    assert one_error_line(result) == (
        "coapkit: warning: --psk-identity, --psk ignored: coap:// has no TLS or DTLS "
        "(coaps://, coaps+tcp:// and coaps+ws:// use them)"
    )


def test_an_error_response_inside_dtls_is_status_4(server: Listening) -> None:
    # a 4.xx that came through the session is the server's answer, not a DTLS failure
    result = run("get", f"{server.uri['coaps']}/nowhere", *DEV1)
    assert result.returncode == 4
    assert one_error_line(result) == "4.04 Not Found: not found"


# -- certificates on both sides; --insecure ---------------------------------------------------


def test_client_certificates_required_with_ca(pki: Pki) -> None:
    listening = Listening(
        "server", "--listen", "coaps://127.0.0.1:0",
        "--cert", pki.server.cert, "--key", pki.server.key, "--ca", pki.ca,
    )  # fmt: skip
    try:
        assert "DTLS with a certificate (client certificates required)" in listening.log()
        uri = f"{listening.uri['coaps']}/hello"
        mine = ["--ca", str(pki.ca), "--cert", str(pki.client.cert), "--key", str(pki.client.key)]
        result = run("get", uri, *mine)
        assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n"), result.stderr
        without = run("get", uri, "--ca", str(pki.ca))
        assert without.returncode == 7
        assert one_error_line(without) == (
            "coapkit: DTLS handshake failed: the server refused the handshake (it may require "
            "a client certificate); the two sides need a mode in common: a pre-shared key "
            "(--psk-identity, --psk) or certificates (--cert, --key, --ca)"
        )
        stranger = run(
            "get", uri, "--ca", str(pki.ca), "--cert", str(pki.stranger_client.cert),
            "--key", str(pki.stranger_client.key),
        )  # fmt: skip
        assert stranger.returncode == 7
        assert one_error_line(stranger).startswith("coapkit: DTLS handshake failed: the server ")
    finally:
        assert listening.stop() == 0
    assert "the client sent no certificate (one is required)" in listening.log()


def test_insecure_skips_the_name_check_and_says_so(pki: Pki) -> None:
    listening = Listening(
        "server", "--listen", "coaps://127.0.0.1:0",
        "--cert", pki.wrong_name.cert, "--key", pki.wrong_name.key,
    )  # fmt: skip
    try:
        uri = f"{listening.uri['coaps']}/hello"
        checked = run("get", uri, "--ca", str(pki.ca))
        assert checked.returncode == 7
        assert "(the server's certificate is for another name)" in one_error_line(checked)
        insecure = run("get", uri, "--ca", str(pki.ca), "--insecure")
        assert (insecure.returncode, insecure.stdout) == (0, "Hello, CoAP!\n")
        assert one_error_line(insecure) == (
            "coapkit: warning: --insecure: not checking that the server's certificate is for "
            "'127.0.0.1' (its chain is still verified)"
        )
    finally:
        assert listening.stop() == 0


# -- material that cannot be used -----------------------------------------------------------------


def test_client_material_that_cannot_be_used(pki: Pki, tmp_path: Path) -> None:
    uri = "coaps://127.0.0.1:9/x"
    psk_for_tls = write_json(
        tmp_path / "psk.json",
        {"coaps+tcp://*": {"dtls": {"psk": "k", "client-identity": "dev1"}}},
    )
    cases = [
        (uri, ["--psk-identity", "dev1"], 2, "coapkit: --psk-identity and --psk go together"),
        (uri, ["--psk-identity", "dev1", "--psk", "0xzz"], 2, "not hexadecimal"),
        (uri, ["--psk-identity", "dev1", "--psk", "0x"], 2, "the pre-shared key is empty"),
        (uri, ["--ca", str(tmp_path / "none.pem")], 10, "cannot read the CA file"),
        (uri, ["--cert", str(pki.client.cert), "--key", str(pki.server.key)], 2,
         "the key does not belong to the certificate"),
        ("coaps+tcp://127.0.0.1:9/x", DEV1, 2,
         "coapkit: --psk: coaps+tcp:// with a pre-shared key is not supported"),
        ("coaps+tcp://127.0.0.1:9/x", ["--credentials", psk_for_tls], 2,
         f"coapkit: --credentials {psk_for_tls}: entry 'coaps+tcp://*': a dtls entry (a "
         "pre-shared key) cannot protect coaps+tcp://; use a tls or tlscert entry"),
    ]  # fmt: skip
    for target, flags, status, fragment in cases:
        result = run("get", target, *flags)
        assert result.returncode == status, (flags, result.stderr)
        line = one_error_line(result)
        assert line.startswith("coapkit: ") and fragment in line, (flags, line)


def test_credentials_entries_that_cannot_be_used(tmp_path: Path) -> None:
    entries = {
        "no-identity": ({"dtls": {"psk": {"ascii": "k"}}},
                        'dtls needs "psk" and "client-identity" (missing: client-identity)'),
        "member": ({"dtls": {"psk": "k", "client-identity": "a", "hint": "h"}},
                   "dtls has no member 'hint' (it has psk, client-identity)"),
        "hex": ({"dtls": {"psk": {"hex": "zz"}, "client-identity": "a"}},
                "dtls member 'psk': 'zz' is not hexadecimal"),
        "ascii": ({"dtls": {"psk": {"ascii": "clé"}, "client-identity": "a"}},
                  "dtls member 'psk': {\"ascii\": ...} holds characters that are not ASCII (use "
                  '{"hex": ...} or a plain string)'),
        "number": ({"dtls": {"psk": 12, "client-identity": "a"}},
                   "dtls member 'psk' must be {\"ascii\": TEXT}, {\"hex\": HEX} or a string"),
    }  # fmt: skip
    for name, (entry, message) in entries.items():
        path = write_json(tmp_path / f"{name}.json", {":a": entry})
        for command in (["get", "coaps://127.0.0.1:9/x"], ["server", "--port", "0"]):
            result = run(*command, "--credentials", path)
            assert result.returncode == 2, (name, command, result.stderr)
            assert one_error_line(result) == f"coapkit: --credentials {path}: entry ':a': {message}"
    clash = write_json(
        tmp_path / "clash.json",
        {
            ":a": {"dtls": {"psk": "one", "client-identity": "dev1"}},
            ":b": {"dtls": {"psk": "two", "client-identity": "dev1"}},
        },
    )
    result = run("server", "--listen", "coaps://127.0.0.1:0", "--credentials", clash)
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"coapkit: --credentials {clash}: entries ':a' and ':b' give PSK identity 'dev1' "
        "different keys"
    )


def test_server_set_up_errors(pki: Pki) -> None:
    cases = [
        (["--listen", "coaps://127.0.0.1:0"], 2,
         "coapkit: a coaps:// listener needs a pre-shared key (--psk-identity ID --psk KEY, or "
         "dtls entries in --credentials) or the server's certificate and key (--cert PEM --key "
         "PEM)"),
        (["--listen", "coaps://127.0.0.1:0", "--psk", KEY], 2,
         "coapkit: --psk-identity and --psk go together"),
        (["--listen", "coaps://127.0.0.1:0", "--cert", str(pki.client.cert),
          "--key", str(pki.server.key)], 2,
         f"coapkit: cannot use certificate '{pki.client.cert}' with key '{pki.server.key}': "
         "the key does not belong to the certificate"),
        (["--listen", "coaps://127.0.0.1:0", "--cert", "/nonexistent.pem"], 10,
         "coapkit: cannot read the certificate file '/nonexistent.pem'"),
        (["--listen", "coaps://127.0.0.1:0", *DEV1, "--ca", str(pki.ca)], 2,
         "coapkit: --ca on a coaps:// listener asks clients for certificates, which needs the "
         "server's own: --cert PEM --key PEM"),
        (["--workers", "2", "--listen", "coaps://127.0.0.1:0"], 2,
         "coapkit: a coaps:// listener needs a pre-shared key"),
        (["--listen", "coaps+tcp://127.0.0.1:0", "--cert", str(pki.server.cert),
          "--key", str(pki.server.key), *DEV1], 2,
         "coapkit: --psk: coaps+tcp:// with a pre-shared key is not supported"),
    ]  # fmt: skip
    for flags, status, expected in cases:
        result = run("server", *flags)
        assert result.returncode == status, (flags, result.stderr)
        assert one_error_line(result).startswith(expected), (flags, result.stderr)


def test_without_the_dtls_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    (blocker / "OpenSSL").mkdir(parents=True)
    (blocker / "OpenSSL" / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    hint = "coaps:// (CoAP over DTLS) needs the dtls extra: pip install 'coapkit[dtls]'"
    for command in (["get", "coaps://127.0.0.1:9/x", *DEV1], ["ping", "coaps://127.0.0.1:9"]):
        result = run(*command, extra_path=str(blocker))
        assert result.returncode == 6, result.stderr
        assert one_error_line(result) == f"coapkit: bad URI: {hint}"
    server = run("server", "--listen", "coaps://127.0.0.1:0", *DEV1, extra_path=str(blocker))
    assert server.returncode == 6
    assert one_error_line(server) == f"coapkit: bad URI: --listen coaps://127.0.0.1:0: {hint}"


# -- --workers, coapkit rd ----------------------------------------------------------------------


def test_workers_share_a_coaps_port() -> None:
    listening = Listening(
        "server", "--workers", "2", "--listen", "coaps://127.0.0.1:0", *DEV1
    )  # fmt: skip
    try:
        listening.wait_for_log("2 workers serving on coaps://127.0.0.1:")
        line = next(line for line in listening.log().splitlines() if "2 workers serving" in line)
        uri = re.findall(r"coaps://[\d.]+:\d+", line)[0]
        for _ in range(16):  # a new source port each: the kernel spreads them over both
            result = run("get", f"{uri}/counter", *DEV1)
            assert result.returncode == 0, result.stderr
    finally:
        status = listening.stop(signal.SIGINT)
    log = listening.log()
    assert status == 0, log
    served = set(re.findall(r"\[worker (\d+)\] 127\.0\.0\.1:\d+ GET /counter", log))
    assert len(served) == 2, log
    assert "DTLS handshake failed" not in log


def test_a_resource_directory_over_dtls(tmp_path: Path) -> None:
    rd = Listening(
        "rd", "--listen", "coaps://127.0.0.1:0", "--store", tmp_path / "rd.sqlite",
        "--policy", "authenticated", *DEV1,
    )  # fmt: skip
    try:
        base = rd.uri["coaps"]
        registered = run(
            "post", f"{base}/rd?ep=dev1", "--payload", "</temp>;rt=temperature",
            "--content-format", "link-format", *DEV1,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        assert registered.stderr.startswith("2.01 Created  Location: /reg/")
        found = run("get", f"{base}/rd-lookup/res?rt=temperature", *DEV1)
        assert found.returncode == 0
        # the registrant's base is coaps://, where it came from (RFC 9176 §5.3)
        assert re.search(r"<coaps://127\.0\.0\.1:\d+/temp>", found.stdout), found.stdout
        # authenticated: the PSK identity is the only name it may register
        other = run(
            "post", f"{base}/rd?ep=dev2", "--payload", "</x>",
            "--content-format", "link-format", *DEV1,
        )  # fmt: skip
        assert other.returncode == 4
        assert one_error_line(other).startswith("4.03 Forbidden")
    finally:
        assert rd.stop() == 0


# -- interoperability: libcoap's DTLS tools ---------------------------------------------------


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not installed (apt-get install libcoap3-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.mark.interop
def test_libcoap_client_against_our_coaps_listener(server: Listening) -> None:
    tool = _require("coap-client-openssl")
    base = server.uri["coaps"]

    def libcoap(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [tool, "-B", "10", *args], capture_output=True, timeout=30, check=False
        )

    got = libcoap("-u", "dev1", "-k", KEY, "-m", "get", f"{base}/hello")
    assert (got.returncode, got.stdout.decode().strip()) == (0, "Hello, CoAP!")
    put = libcoap(
        "-u", "dev3", "-k", "dev3's key", "-m", "put", "-e", "from libcoap", f"{base}/echo"
    )
    assert put.stdout.decode().strip() == "from libcoap"
    observed = libcoap("-u", "dev1", "-k", KEY, "-s", "2", f"{base}/time")  # Observe for 2 s
    assert observed.returncode == 0
    assert len(re.findall(r"\d{4}-\d\d-\d\dT[\d:]+Z", observed.stdout.decode())) >= 3
    refused = libcoap("-u", "dev1", "-k", "wrong", "-m", "get", f"{base}/hello")
    assert b"Hello" not in refused.stdout
    assert "PUT /echo -> 2.04 Changed" in server.log()


@pytest.mark.interop
def test_our_client_against_libcoap_coaps_server() -> None:
    tool = _require("coap-server-openssl")
    from tests.interop.test_libcoap_dtls import libcoap_server

    assert tool
    with libcoap_server("openssl", "-k", KEY) as port:
        base = f"coaps://127.0.0.1:{port}"
        result = run("get", f"{base}/", *DEV1)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("This is a test server made with libcoap")
        put = run("put", f"{base}/example_data", "--payload", "over DTLS", *DEV1)
        assert put.returncode == 0, put.stderr
        assert run("get", f"{base}/example_data", *DEV1).stdout == "over DTLS\n"
        observed = run("get", f"{base}/time", "--observe", "--count", "2", *DEV1)
        assert observed.returncode == 0 and len(observed.stdout.splitlines()) == 2
        ping = run("ping", base, *DEV1)
        assert ping.returncode == 0 and ping.stdout.startswith(f"RST from 127.0.0.1:{port}")
        # a wrong key: libcoap 4.3.1 with OpenSSL discards the Finished record it cannot
        # decrypt without an alert, as RFC 6347 §4.1.2.7 allows for a record whose MAC
        # fails, so the handshake would time out after 60 s; a --timeout before that
        # ends with status 8, the line saying the handshake had not completed
        wrong = run("get", f"{base}/", "--psk-identity", "dev1", "--psk", "wrong", "--timeout", "2")
        assert wrong.returncode == 8
        assert one_error_line(wrong) == (
            f"coapkit: no response from 127.0.0.1:{port} in time: the DTLS handshake with "
            f"127.0.0.1:{port} had not completed; is a DTLS server running there? with a "
            "pre-shared key, the two sides may hold different keys (-v shows the handshake)"
        )


def test_help_shows_coaps_and_its_options() -> None:
    from tests.cli.helpers import run_in_process

    for command in ("get", "ping", "discover"):
        shown = run_in_process(command, "--help").stdout
        assert "coaps:// (DTLS, 5684)" in shown
        assert "pip\ninstall 'coapkit[dtls]'" in shown
        assert "coapkit get coaps://127.0.0.1/hello --psk-identity dev1 --psk secretkey" in shown
        assert '"client-identity": {"ascii": "dev1"}' in shown
        assert "not supported yet" not in shown
    for command in ("server", "fileserver", "rd"):
        shown = run_in_process(command, "--help").stdout
        assert "--psk-identity ID" in shown and "--psk KEY" in shown, command
        assert "coaps://" in shown, command
        assert "not supported yet" not in shown, command
    assert (
        "DTLS listeners (coaps://) need a pre-shared key"
        in run_in_process("server", "--help").stdout
    )
