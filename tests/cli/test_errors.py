"""Bad input, tried as a new user would: one clear line on stderr, a documented status,
no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.cli.helpers import one_error_line, run, run_in_process
from tests.interop.peers import free_udp_port


@pytest.mark.parametrize(
    ("uri", "status", "fragment"),
    [
        ("coap//127.0.0.1/x", 6, "bad URI: 'coap//127.0.0.1/x' is a relative reference"),
        ("127.0.0.1/x", 6, "bad URI:"),
        ("http://127.0.0.1/x", 6, "bad URI: unknown scheme 'http'"),
        ("coaps://127.0.0.1:1/x", 7, "127.0.0.1:1: port unreachable (connection refused)"),
        ("coap://127.0.0.1:99999/x", 6, "bad URI:"),
        ("coap://[::1/x", 6, "bad URI:"),
        ("coap://127.0.0.1/x#frag", 6, "bad URI:"),
        ("coap://no-such-host.invalid/x", 7, "cannot resolve host 'no-such-host.invalid'"),
        # a link-local address on the loopback interface: the kernel refuses to send at all
        ("coap://[fe80::1%25lo]/x", 7, "[fe80::1]:5683: Network is unreachable"),
    ],
)
def test_bad_destinations(uri, status, fragment):
    result = run("get", uri, "--timeout", "2")
    line = one_error_line(result)
    assert result.returncode == status, line
    assert line.startswith("coapkit: ")
    assert fragment in line


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_closed_port_fails_fast(host):
    port = free_udp_port(host)
    literal = f"[{host}]" if ":" in host else host
    result = run("get", f"coap://{literal}:{port}/x")
    assert result.returncode == 7
    assert one_error_line(result) == (
        f"coapkit: {literal}:{port}: port unreachable (connection refused): nothing listens there"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--payload", "@/no/such/file.json"], "cannot read the payload file '/no/such/file.json'"),
        (["--payload", "@"], "--payload @FILE needs a file name"),
    ],
)
def test_payload_file_problems(args, fragment):
    result = run_in_process("put", "coap://127.0.0.1/x", *args)
    assert result.returncode in (2, 10)
    assert fragment in one_error_line(result)


def test_payload_file_missing_is_a_file_error():
    assert run("put", "coap://127.0.0.1/x", "--payload", "@missing.txt").returncode == 10


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--content-format", "jsn"], "argument --content-format: unknown content format 'jsn'"),
        (["--accept", "application/foo"], "argument --accept: unknown content format"),
        (["--content-format", "70000"], "content format 70000 is above 65535"),
        (["--timeout", "-1"], "argument --timeout: must be a positive number of seconds, not '-1'"),
        (["--timeout=-0.5"], "must be a positive number of seconds"),
        (["--timeout", "0"], "must be a positive number of seconds"),
        (["--timeout", "soon"], "must be a positive number of seconds"),
        (["--timeout", "nan"], "must be a positive number of seconds"),
        (["--count", "0", "--observe"], "argument --count: must be a whole number"),
        (["--count", "2"], "--count only makes sense with --observe"),
        (["--option", "Foo=1"], "unknown option name: 'Foo'"),
        (["--option", "70000=1"], "option number 70000 is above 65535"),
        (["--option", "Max-Age=soon"], "Max-Age takes a decimal number"),
        (["--option", "Max-Age=99999999999"], "Max-Age must be 0 to 4 bytes"),
        (["--option", "ETag=0xzz"], "'0xzz' is not hex bytes"),
        (["--option", "ETag=0x"], "ETag must be 1 to 8 bytes, not 0"),
        (["--option", "If-None-Match=yes"], "If-None-Match takes no value"),
        (["--option", "Uri-Host"], "Uri-Host needs a value"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors(args, fragment):
    result = run_in_process("get", "coap://127.0.0.1/x", *args)
    line = one_error_line(result)
    assert result.returncode == 2, line
    assert fragment in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--content-format", "jsn"], "argument --content-format: unknown content format 'jsn'"),
        (["--timeout", "-1"], "argument --timeout: must be a positive number of seconds, not '-1'"),
    ],
)
def test_usage_errors_through_the_console_script(args, fragment):
    result = run("get", "coap://127.0.0.1/x", *args)
    line = one_error_line(result)
    assert result.returncode == 2
    assert line.startswith(f"coapkit get: error: {fragment}")
    assert line.endswith("(see 'coapkit get --help')")


def test_missing_arguments_and_commands():
    for args, fragment in (
        (["get"], "the following arguments are required: URI"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["server", "--port", "70000"], "must be a port number from 0 to 65535"),
        (["decode", "zz"], "not a hex string"),
    ):
        result = run_in_process(*args)
        assert result.returncode == 2
        assert fragment in one_error_line(result)


def test_no_command_prints_help():
    result = run()
    assert result.returncode == 2
    assert "usage: coapkit" in result.stderr


def test_fileserver_directory_missing(tmp_path):
    result = run("fileserver", str(tmp_path / "nope"))
    assert result.returncode == 10
    assert one_error_line(result) == f"coapkit: '{tmp_path / 'nope'}' does not exist"
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    result = run("fileserver", str(afile))
    assert result.returncode == 10
    assert "is not a directory" in one_error_line(result)


def test_server_port_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run("server", "--bind", "127.0.0.1", "--port", str(port))
    assert result.returncode == 7
    assert one_error_line(result) == (
        f"coapkit: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_decode():
    result = run("decode", "44017d34 0a1b2c3d bb74656d7065726174757265")
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == [
        "CON GET  MID 32052 (0x7d34)  token 0a1b2c3d",
        "  Uri-Path: 'temperature'",
    ]
    malformed = run("decode", "4401")
    assert malformed.returncode == 3
    assert one_error_line(malformed).startswith("coapkit: malformed CoAP message")
