"""The request commands against ``coapkit server`` (demo resources) and fake peers, end to end."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.helpers import FakePeer, ServerProcess, cli_env, one_error_line, run, run_bytes


def test_get_prints_the_payload(demo_server):
    result = run("get", f"{demo_server.url}/hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, CoAP!\n", "")


def test_every_method(demo_server):
    url = demo_server.url
    assert run("post", f"{url}/counter").stdout == "1\n"
    assert run("get", f"{url}/counter").stdout == "1\n"
    put = run("put", f"{url}/echo", "--payload", "put me")
    assert (put.returncode, put.stdout) == (0, "put me\n")
    fetch = run("fetch", f"{url}/echo", "--payload", "fetch me")
    assert (fetch.returncode, fetch.stdout) == (0, "fetch me\n")
    # the demo has no PATCH, iPATCH or DELETE handlers: the methods still go out and get 4.05
    for method in ("patch", "ipatch", "delete"):
        result = run(method, f"{url}/echo", "--payload", "x")
        assert result.returncode == 4
        assert result.stderr.startswith("4.05 Method Not Allowed")
    trace = run("ipatch", f"{url}/echo", "-v").stderr
    assert "> CON iPATCH" in trace


def test_time_resource(demo_server):
    result = run("get", f"{demo_server.url}/time")
    assert result.returncode == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", result.stdout)


def test_not_found_exit_status_and_stderr(demo_server):
    result = run("get", f"{demo_server.url}/nowhere")
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr == "4.04 Not Found: not found\n"


def test_server_error_exit_status(demo_server):
    # a server that is not a proxy answers Proxy-Uri with 5.05 (RFC 7252 §5.10.2)
    result = run("get", f"{demo_server.url}/hello", "--option", "Proxy-Uri=coap://example.org/")
    assert result.returncode == 5
    assert result.stderr.startswith("5.05 Proxying Not Supported")


def test_success_without_payload_reports_code_on_stderr(demo_server):
    # /echo with an empty payload answers 2.04 without payload: say so, or nothing would show
    result = run("post", f"{demo_server.url}/echo")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "2.04 Changed\n")


def test_json_payload_is_indented(demo_server):
    result = run(
        "put", f"{demo_server.url}/echo", "--payload", '{"a":[1,{"b":null}]}', "--content-format",
        "json",
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout == '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}\n'


def test_invalid_json_is_shown_as_text_with_a_note(demo_server):
    result = run("put", f"{demo_server.url}/echo", "--payload", "{oops", "--content-format", "50")
    assert result.returncode == 0
    assert result.stdout == "{oops\n"
    assert result.stderr == "coapkit: note: the payload is not valid JSON\n"


def test_cbor_payload_as_diagnostic_notation(demo_server, tmp_path):
    cbor2 = pytest.importorskip("cbor2")
    source = tmp_path / "reading.cbor"  # .cbor: Content-Format 60 guessed from the extension
    source.write_bytes(cbor2.dumps({"temp": 21.5, "raw": b"\x01\x02", "tags": [1, "two"]}))
    result = run("put", f"{demo_server.url}/echo", "--payload", f"@{source}")
    assert result.returncode == 0
    assert result.stdout == '{"temp": 21.5, "raw": h\'0102\', "tags": [1, "two"]}\n'


def test_cbor_without_cbor2_prints_hex_and_one_hint(demo_server, tmp_path):
    blocker = tmp_path / "block"
    (blocker / "cbor2").mkdir(parents=True)
    (blocker / "cbor2" / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    result = run(
        "put", f"{demo_server.url}/echo", "--payload", "\x01", "--content-format", "cbor",
        extra_path=str(blocker),
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout == f"00000000  {'01':<47}  .\n"
    assert result.stderr.count("\n") == 1
    assert "pip install 'coapkit[cbor]'" in result.stderr


def test_link_format_one_link_per_line(demo_server):
    result = run("get", f"{demo_server.url}/.well-known/core")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert '</counter>;rt="counter";title="A counter: GET reads it, POST increments it",' in lines
    assert all(line.startswith("</") for line in lines)
    assert all(line.endswith(",") for line in lines[:-1])


def test_binary_payload_as_hexdump(demo_server, tmp_path):
    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(20)))
    result = run("put", f"{demo_server.url}/echo", "--payload", f"@{source}")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................",
        "00000010  10 11 12 13                                      ....",
    ]


def test_output_file_gets_the_raw_payload(demo_server, tmp_path):
    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(256)))
    target = tmp_path / "out.bin"
    result = run("put", f"{demo_server.url}/echo", "--payload", f"@{source}", "-o", str(target))
    assert (result.returncode, result.stdout) == (0, "")
    assert target.read_bytes() == bytes(range(256))
    raw = run_bytes("put", f"{demo_server.url}/echo", "--payload", f"@{source}", "-o", "-")
    assert raw.stdout == bytes(range(256))


def test_output_file_is_not_written_for_an_error(demo_server, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    result = run("get", f"{demo_server.url}/nowhere", "-o", str(target))
    assert result.returncode == 4
    assert target.read_text() == "keep me"


def test_output_file_not_writable(demo_server, tmp_path):
    result = run("get", f"{demo_server.url}/hello", "-o", str(tmp_path / "no" / "such" / "dir"))
    assert result.returncode == 10
    assert "cannot write the output file" in result.stderr


def test_payload_from_stdin(demo_server):
    result = run("post", f"{demo_server.url}/echo", "--payload", "-", input=b"from stdin")
    assert (result.returncode, result.stdout) == (0, "from stdin\n")


def test_payload_text_is_text_plain_and_content_format_overrides(demo_server):
    text = json.loads(run("post", f"{demo_server.url}/echo", "--payload", "hi", "--json").stdout)
    assert text["content_format"] == 0
    named = run(
        "post", f"{demo_server.url}/echo", "--payload", "[1]", "--content-format", "json", "--json"
    )
    assert json.loads(named.stdout)["content_format"] == 50
    numbered = run(
        "post", f"{demo_server.url}/echo", "--payload", "x", "--content-format", "42", "--json"
    )
    assert json.loads(numbered.stdout)["content_format_name"] == "application/octet-stream"


def test_json_output(demo_server):
    result = run("get", f"{demo_server.url}/hello", "--json")
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document == {
        "code": "2.05",
        "code_name": "Content",
        "success": True,
        "options": {"Content-Format": 0},
        "content_format": 0,
        "content_format_name": "text/plain; charset=utf-8",
        "payload": "Hello, CoAP!",
        "payload_encoding": "utf-8",
        "payload_size": 12,
        "remote": f"127.0.0.1:{demo_server.port}",
    }


def test_json_output_binary_payload_is_base64(demo_server, tmp_path):
    source = tmp_path / "blob.bin"
    source.write_bytes(b"\xff\x00\xfe")
    result = run("put", f"{demo_server.url}/echo", "--payload", f"@{source}", "--json")
    document = json.loads(result.stdout)
    assert (document["payload"], document["payload_encoding"]) == ("/wD+", "base64")


def test_json_output_of_an_error(demo_server):
    result = run("get", f"{demo_server.url}/nowhere", "--json")
    assert result.returncode == 4
    document = json.loads(result.stdout)
    assert (document["code"], document["code_name"], document["success"]) == (
        "4.04",
        "Not Found",
        False,
    )
    assert result.stderr == "4.04 Not Found: not found\n"


def test_verbose_trace(demo_server):
    result = run("get", f"{demo_server.url}/hello?x=1", "-v", "--accept", "text")
    assert result.returncode == 0
    assert result.stdout == "Hello, CoAP!\n"
    lines = result.stderr.splitlines()
    sent = re.match(r"> CON GET  MID (\d+)  token ([0-9a-f]{16})  to 127\.0\.0\.1:(\d+)", lines[0])
    assert sent, lines
    mid, token = sent.group(1), sent.group(2)
    assert ">   Uri-Path: 'hello'" in lines
    assert ">   Uri-Query: 'x=1'" in lines
    assert ">   Accept: 0 (text/plain; charset=utf-8)" in lines
    received = [line for line in lines if line.startswith("< ")]
    assert received[0].startswith(f"< ACK 2.05 Content  MID {mid}  token {token}  from 127.0.0.1")
    assert "<   Content-Format: 0 (text/plain; charset=utf-8)" in lines
    assert '<   payload: 12 bytes "Hello, CoAP!"' in lines
    assert "retransmission" not in result.stderr


def test_non_request(demo_server):
    result = run("get", f"{demo_server.url}/hello", "--non", "-v")
    assert result.returncode == 0
    assert result.stderr.startswith("> NON GET")
    assert "\n< NON 2.05 Content" in result.stderr


def test_options(demo_server):
    result = run(
        "get", f"{demo_server.url}/hello", "-v",
        "--option", "Uri-Query=a=1",
        "--option", "65000=0x0102",
        "--option", "65001=text",
        "--option", "ETag=v1",
        "--option", "if_none_match",
        "--option", "Max-Age=60",
        "--option", "Accept=json",
    )  # fmt: skip
    lines = result.stderr.splitlines()
    assert ">   Uri-Query: 'a=1'" in lines
    assert ">   Option 65000: 0x0102 (elective)" in lines
    assert ">   Option 65001: 0x74657874 (critical)" in lines
    assert ">   ETag: 0x7631" in lines
    assert ">   If-None-Match: (empty)" in lines
    assert ">   Max-Age: 60" in lines
    assert ">   Accept: 50 (application/json)" in lines


def test_retransmission_is_marked(lossy_peer):
    # the peer ignores the first CON and answers its retransmission (ACK_TIMEOUT: 2-3 s)
    result = run("get", f"coap://127.0.0.1:{lossy_peer.port}/x", "-v", "--timeout", "10")
    assert result.returncode == 0
    assert result.stdout == "late\n"
    sent = [line for line in result.stderr.splitlines() if line.startswith("> CON")]
    assert len(sent) == 2
    assert "retransmission" not in sent[0]
    assert sent[1].endswith("[retransmission 1]")
    assert sent[0].split("(")[0] == sent[1].split("(")[0]  # same MID and token
    assert len(lossy_peer.received) == 2 and lossy_peer.received[0] == lossy_peer.received[1]


def test_reset_by_peer(reset_peer):
    result = run("get", f"coap://127.0.0.1:{reset_peer.port}/x")
    assert result.returncode == 9
    assert result.stderr.count("\n") == 1
    assert "answered with RST" in result.stderr


def test_timeout(silent_port):
    for extra in ((), ("--non",)):
        result = run("get", f"coap://127.0.0.1:{silent_port}/x", "--timeout", "0.3", *extra)
        assert result.returncode == 8
        assert result.stderr.startswith(f"coapkit: no response from 127.0.0.1:{silent_port}")
        assert result.stderr.count("\n") == 1


def test_observe_a_resource_that_is_not_observable(demo_server):
    # the first response comes without Observe: printed, a note, and its own status
    result = run("get", f"{demo_server.url}/hello", "--observe", "--count", "2")
    assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
    assert result.stderr == (
        "coapkit: the resource is not observable: the server answered without Observe\n"
    )
    missing = run("get", f"{demo_server.url}/nowhere", "--observe")
    assert (missing.returncode, missing.stderr) == (4, "4.04 Not Found: not found\n")


def test_partial_block_response_fails_cleanly():
    # a peer that answers every request with block 0 of a larger body: the client asks for
    # block 1 again and again, gets block 0 each time, and gives up: never a truncated body
    from tests.cli.helpers import FakePeer

    def first_block(data: bytes, count: int) -> bytes:
        tkl = data[0] & 0x0F
        token = data[4 : 4 + tkl]
        block2 = bytes((0xD1, 23 - 13, 0x0A))  # Block2 num 0, more, 64 bytes
        return bytes((0x60 | tkl, 0x45, data[2], data[3])) + token + block2 + b"\xff" + b"a" * 64

    peer = FakePeer(first_block)
    try:
        result = run("get", f"coap://127.0.0.1:{peer.port}/big")
    finally:
        peer.close()
    assert (result.returncode, result.stdout) == (11, "")
    assert one_error_line(result).startswith("coapkit: block-wise transfer failed: ")
    assert len(peer.received) > 2  # it did ask for the following blocks


def test_ctrl_c_interrupts_a_request():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(15)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coapkit",
                "get",
                f"coap://127.0.0.1:{silent.getsockname()[1]}/x",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**cli_env(), "PYTHONFAULTHANDLER": "1"},
        )
        silent.recv(100)  # the request is out: the client is waiting in its event loop
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{process.pid}/status").read_text()
            masks = [line for line in status.splitlines() if line.startswith("Sig")]
            process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: where is it stuck?
            out, err = process.communicate(timeout=10)
            pytest.fail(
                f"still running 10 s after SIGINT; its signal masks {masks}, ours "
                f"{signal.pthread_sigmask(signal.SIG_BLOCK, [])}:\n{err.decode(errors='replace')}"
            )
    assert (process.returncode, out, err) == (130, b"", b"coapkit: interrupted\n")


def test_large_put_goes_block_wise_and_arrives_intact(demo_server, tmp_path):
    # 60,000 bytes: Block1 up to /echo (2.31 for each block but the last), and the echo
    # back in Block2 blocks; both ways intact
    body = random.Random(7).randbytes(60_000)
    source = tmp_path / "big.bin"
    source.write_bytes(body)
    target = tmp_path / "back.bin"
    result = run(
        "put", f"{demo_server.url}/echo", "--payload", f"@{source}", "-o", str(target), "-v"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.read_bytes() == body
    trace = result.stderr
    assert trace.count("< ACK 2.31 Continue") == 58  # 59 blocks of 1024 bytes, the last short
    assert ">   Block1: 0+/1024" in trace and ">   Size1: 60000" in trace
    assert ">   Block1: 58/1024" in trace
    assert "<   Block2: 0+/1024" in trace and "<   Size2: 60000" in trace
    assert "<   Block2: 58/1024" in trace


def test_large_put_to_a_silent_port_times_out(silent_port, tmp_path):
    # a body too large for one datagram goes block-wise: nobody answers the first block
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 70000)
    started = time.monotonic()
    result = run(
        "put", f"coap://127.0.0.1:{silent_port}/x", "--payload", f"@{big}", "--timeout", "0.5"
    )
    assert result.returncode == 8
    assert one_error_line(result).startswith(f"coapkit: no response from 127.0.0.1:{silent_port}")
    assert time.monotonic() - started < 10


# -- issue 16: -o on a success without payload, oversized options, 4.13, reserved codes --------


def test_output_file_is_left_alone_by_a_success_without_payload(tmp_path):
    """2.03 Valid (the ETag sent still matches) and a 2.04 without payload carry no
    representation: FILE keeps what it had, and stderr says so."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_text("the file's text")
    server = ServerProcess("fileserver", str(root), "--write")
    try:
        url = f"{server.url}/notes.txt"
        target = tmp_path / "copy.txt"
        assert run("get", url, "-o", str(target)).returncode == 0
        assert target.read_text() == "the file's text"
        (etag,) = json.loads(run("get", url, "--json").stdout)["options"]["ETag"]
        valid = run("get", url, "--option", f"ETag={etag}", "-o", str(target))
        assert (valid.returncode, valid.stdout) == (0, "")
        assert valid.stderr == f"2.03 Valid: {target} left as it was\n"
        assert target.read_text() == "the file's text"
        changed = run("put", url, "--payload", "new text", "-o", str(target))
        assert (changed.returncode, changed.stderr) == (
            0,
            f"2.04 Changed: {target} left as it was\n",
        )
        assert target.read_text() == "the file's text"
        assert (root / "notes.txt").read_text() == "new text"
        again = run("get", url, "-o", str(target))  # a representation: written as before
        assert (again.returncode, again.stderr) == (0, "")
        assert target.read_text() == "new text"
    finally:
        server.stop()


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["", "-v"])
def test_an_option_too_large_for_one_message_is_a_usage_error(demo_server, verbose):
    big = "x" * 1200
    result = run("get", f"{demo_server.url}/hello", "--option", f"65000={big}", *verbose)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("coapkit:")]
    assert line.startswith("coapkit: the request does not fit in one CoAP message: a message of ")
    assert line.endswith("not the options: shorten the --option values (1200 bytes)")
    observing = run("get", f"{demo_server.url}/time", "--observe", "--option", f"65000={big}")
    assert observing.returncode == 2
    assert "shorten the --option values" in one_error_line(observing)


def test_4_13_shows_the_servers_limit(demo_server, tmp_path):
    body = tmp_path / "big.bin"
    body.write_bytes(bytes(70000))  # the demo server takes bodies of up to 64 KiB
    result = run("put", f"{demo_server.url}/echo", "--payload", f"@{body}")
    assert result.returncode == 4
    assert one_error_line(result) == (
        "4.13 Request Entity Too Large: request body too large "
        "(the server takes at most 65536 bytes)"
    )


def reserved_class_answer(code: int) -> Callable[[bytes, int], bytes | None]:
    """A peer acknowledging every CON with ``code`` (a reserved class) and the token."""

    def answer(data: bytes, count: int) -> bytes | None:
        tkl = data[0] & 0x0F
        return bytes((0x60 | tkl, code, data[2], data[3])) + data[4 : 4 + tkl] + b"\xffhi"

    return answer


@pytest.mark.parametrize("code", [0x20, 0xC0, 0xE1], ids=["1.00", "6.00", "7.01"])
def test_a_code_in_a_reserved_class_is_exit_5_at_once(code):
    peer = FakePeer(reserved_class_answer(code))
    try:
        started = time.monotonic()
        result = run("get", f"coap://127.0.0.1:{peer.port}/x")
        assert time.monotonic() - started < 10  # not after the retransmissions
    finally:
        peer.close()
    assert result.returncode == 5, result.stderr
    name = f"{code >> 5}.{code & 0x1F:02d}"
    assert (
        one_error_line(result) == f"coapkit: the server answered {name}, a code in a reserved class"
    )
    assert len(peer.received) == 1  # no retransmission: the answer would be the same


def test_class_3_is_exit_5_too():
    peer = FakePeer(reserved_class_answer(0x60))
    try:
        result = run("get", f"coap://127.0.0.1:{peer.port}/x")
    finally:
        peer.close()
    assert (result.returncode, result.stderr) == (5, "3.00: hi\n")


def test_discover_takes_the_uris_query_as_filters(demo_server):
    def paths(*args: str) -> list[str]:
        result = run("discover", *args)
        assert result.returncode == 0, result.stderr
        return [line.split()[0] for line in result.stdout.splitlines()[1:]]

    assert paths(f"{demo_server.url}?rt=counter") == ["/counter"]
    assert paths(f"{demo_server.url}/any/path?rt=time") == ["/time"]  # the path is ignored
    assert paths(f"{demo_server.url}/.well-known/core?rt=greeting") == ["/hello"]
    assert paths(f"{demo_server.url}?rt=counter", "--rt", "time") == []  # both apply
    assert len(paths(demo_server.url)) == 4
