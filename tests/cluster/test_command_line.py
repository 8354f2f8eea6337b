"""The command line's part of a cluster: ``coapkit server --echo-key-file`` (an Echo value
issued by one process is accepted by another with the same key file), ``--congestion cocoa``
and the round-trip estimates that ``-v`` shows, client and server."""

from __future__ import annotations

import socket
from pathlib import Path

from coapkit import Code, Message, Options
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from tests.cli.helpers import ServerProcess, run


def ask(sock: socket.socket, port: int, mid: int, echo: bytes | None = None) -> Message:
    """GET /large (1 KiB blocks: more than three times the request) from ``sock``."""
    options = (
        Options.build(uri_path=["large"], echo=echo) if echo else Options.build(uri_path=["large"])
    )
    request = Message(MessageType.CON, Code.GET, mid, b"\x01\x02", options)
    sock.sendto(request.encode(), ("127.0.0.1", port))
    return decode(sock.recv(2048))


def test_an_echo_value_from_one_process_is_accepted_by_another(tmp_path: Path) -> None:
    key = tmp_path / "echo.key"
    key.write_bytes(bytes(range(32)))
    first = ServerProcess("server", "--plugtest", "--echo-key-file", str(key))
    second = ServerProcess("server", "--plugtest", "--echo-key-file", str(key))
    other = ServerProcess("server", "--plugtest")  # a key of its own
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            challenge = ask(sock, first.port, 1)
            assert challenge.code == Code.UNAUTHORIZED
            echo = challenge.options.echo
            assert echo is not None
            # the client's answer reaches the second process: accepted at once
            assert ask(sock, second.port, 2, echo).code == Code.CONTENT
            # a process with another key challenges again
            assert ask(sock, other.port, 3, echo).code == Code.UNAUTHORIZED
    finally:
        for server in (first, second, other):
            assert server.stop() == 0


def test_an_echo_key_file_too_short_or_missing(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"0123456789")
    result = run("server", "--port", "0", "--echo-key-file", str(short))
    assert result.returncode == 10
    assert "holds 10 bytes; an Echo key needs 16 or more" in result.stderr
    missing = run("server", "--port", "0", "--echo-key-file", str(tmp_path / "nothing"))
    assert missing.returncode == 10 and "cannot read the Echo key from" in missing.stderr
    workers = run("server", "--port", "0", "--workers", "2", "--echo-key-file", str(short))
    assert workers.returncode == 10


def test_verbose_shows_the_round_trip_estimates() -> None:
    server = ServerProcess("server", "-v", "--congestion", "cocoa")
    try:
        fixed = run("get", f"{server.url}/hello", "-v")
        assert fixed.returncode == 0 and "* peer " not in fixed.stderr  # nothing learnt
        adaptive = run("get", f"{server.url}/hello", "-v", "--congestion", "cocoa")
        assert adaptive.returncode == 0
        assert f"* peer 127.0.0.1:{server.port}: RTO " in adaptive.stderr
        assert "(cocoa; strong RTT " in adaptive.stderr and ", 1 sample)" in adaptive.stderr
        # a CON notification to an observer gives the server a sample of its own
        observed = run("get", f"{server.url}/time", "--observe", "--count", "1", "-v")
        assert observed.returncode == 0
    finally:
        assert server.stop() == 0
    log = server.log()
    assert " peer 127.0.0.1:" in log and "(cocoa; " in log
