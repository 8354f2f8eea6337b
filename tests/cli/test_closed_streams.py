"""Closed streams (issue 15): stderr is best effort, a closed stdout ends a command with status 10.

Every command runs as the real tool in a subprocess, against real servers on
loopback, three ways: with its streams open, with stderr closed, and with
stdout closed.  "Closed" is what a pipe whose reader went away looks like:
the write end of an ``os.pipe()`` whose read end is closed before the child
starts, so that every write the child makes fails with EPIPE (Python ignores
SIGPIPE).  Each run has a timeout, so a hang fails the test instead of
stalling the suite.

The rules checked:

* a closed stderr changes neither what the command does nor its exit
  status (4.04 is 4, a closed port 7, a timeout 8, a bad URI 6, ...), with
  ``-v`` too;
* a closed stdout ends a command that has results to write with status 10,
  quietly; a command with nothing for stdout (``-o FILE``, an error whose code
  goes to stderr) keeps its status, and ``-o FILE`` writes the same file;
* nothing is left for the interpreter's flush at exit to trip on: no
  "Exception ignored ... BrokenPipeError", no status 120.

The children run without PYTHONUNBUFFERED (as a user's shell runs the tool):
their stdout is then block-buffered, which is where an unflushed write used
to surface at exit.  A few cases run with it set as well.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.helpers import FakePeer, ServerProcess, cli_env, rst_for, run
from tests.interop.peers import free_udp_port

#: Long enough for any command here (the slowest is a timeout of 0.5 s); a hang fails.
HANG = 20

#: Status for a closed stdout that had results to take (coapkit.cli.exits.EXIT_FILE).
CLOSED_STDOUT = 10

MODES = ("open", "stderr closed", "stdout closed")


def child_env(*, unbuffered: bool = False) -> dict[str, str]:
    env = cli_env()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def closed_pipe() -> int:
    """The write end of a pipe nobody reads any more: every write to it fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@dataclass
class Outcome:
    status: int
    stdout: bytes  #: b"" when stdout was the closed one
    stderr: bytes  #: b"" when stderr was the closed one


def spawn(
    args: list[str], mode: str, *, unbuffered: bool = False, cwd: Path | None = None
) -> Outcome:
    """``coapkit ARGS`` with one stream closed (or none, for ``mode`` "open")."""
    dead = closed_pipe() if mode != "open" else None
    try:
        result = subprocess.run(
            [sys.executable, "-m", "coapkit", *args],
            stdin=subprocess.DEVNULL,
            stdout=dead if mode == "stdout closed" else subprocess.PIPE,
            stderr=dead if mode == "stderr closed" else subprocess.PIPE,
            env=child_env(unbuffered=unbuffered),
            cwd=cwd,
            timeout=HANG,
            check=False,
        )
    finally:
        if dead is not None:
            os.close(dead)
    return Outcome(result.returncode, result.stdout or b"", result.stderr or b"")


def assert_clean_exit(outcome: Outcome) -> None:
    """Nothing escaped the tool's own handling: no traceback, no interpreter complaint."""
    assert b"Traceback" not in outcome.stderr, outcome.stderr
    assert b"Exception ignored" not in outcome.stderr, outcome.stderr
    assert outcome.status != 120, outcome.stderr


# -- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("served")
    (root / "notes.txt").write_text("some notes\n")
    server = ServerProcess("fileserver", str(root), "--write")
    yield server, root
    server.stop()


@pytest.fixture
def reset_port() -> Iterator[int]:
    peer = FakePeer(rst_for)
    yield peer.port
    peer.close()


@dataclass
class Servers:
    """What the cases talk to: URLs and ports, known once the fixtures are up."""

    demo: str
    plugtest: str
    files: str
    root: Path
    closed: str  #: a port nothing listens on (ICMP port unreachable: status 7)
    silent: str  #: a bound port that never answers (status 8 after --timeout)
    reset: str  #: a peer that answers everything with RST (status 9)


@pytest.fixture
def servers(demo_server, plugtest_server, files, silent_port, reset_port) -> Servers:
    file_server, root = files
    return Servers(
        demo=demo_server.url,
        plugtest=plugtest_server.url,
        files=file_server.url,
        root=root,
        closed=f"coap://127.0.0.1:{free_udp_port()}",
        silent=f"coap://127.0.0.1:{silent_port}",
        reset=f"coap://127.0.0.1:{reset_port}",
    )


# -- the cases --------------------------------------------------------------------------------


@dataclass
class Case:
    """One command line, its exit status, and whether a success has results for stdout."""

    name: str
    argv: Callable[[Servers], list[str]]
    status: int
    writes_stdout: bool = False  #: a closed stdout makes it CLOSED_STDOUT (a success only)
    setup: Callable[[Servers], None] = field(default=lambda servers: None)

    def expected(self, mode: str) -> int:
        if mode == "stdout closed" and self.writes_stdout:
            return CLOSED_STDOUT
        return self.status


def _recreate(name: str) -> Callable[[Servers], None]:
    def setup(servers: Servers) -> None:
        (servers.root / name).write_text("to be deleted\n")

    return setup


HEX_GET = "44017d34 0a1b2c3d bb74656d7065726174757265"

CASES = [
    # requests, each method
    Case("get", lambda s: ["get", f"{s.demo}/hello"], 0, writes_stdout=True),
    Case("get 4.04", lambda s: ["get", f"{s.demo}/nope"], 4),
    Case("get 4.04 --json", lambda s: ["get", f"{s.demo}/nope", "--json"], 4),
    Case("post", lambda s: ["post", f"{s.demo}/echo", "--payload", "hi"], 0, writes_stdout=True),
    Case("put", lambda s: ["put", f"{s.files}/put.txt", "--payload", "new"], 0),
    Case("delete", lambda s: ["delete", f"{s.files}/gone.txt"], 0, setup=_recreate("gone.txt")),
    Case("fetch", lambda s: ["fetch", f"{s.demo}/echo", "--payload", "q"], 0, writes_stdout=True),
    Case("patch 4.05", lambda s: ["patch", f"{s.demo}/echo", "--payload", "p"], 4),
    Case("ipatch 4.05", lambda s: ["ipatch", f"{s.demo}/echo", "--payload", "p"], 4),
    Case("ping", lambda s: ["ping", s.demo], 0, writes_stdout=True),
    Case("discover", lambda s: ["discover", s.demo], 0, writes_stdout=True),
    Case(
        "observe --count",
        lambda s: ["get", f"{s.demo}/time", "--observe", "--count", "2"],
        0,
        writes_stdout=True,
    ),
    Case("-o FILE", lambda s: ["get", f"{s.plugtest}/large", "-o", "large.bin"], 0),
    Case("-o -", lambda s: ["get", f"{s.demo}/hello", "-o", "-"], 0, writes_stdout=True),
    # failures before or without an answer
    Case("closed port", lambda s: ["get", f"{s.closed}/x"], 7),
    Case("timeout", lambda s: ["get", f"{s.silent}/x", "--timeout", "0.5"], 8),
    Case("reset", lambda s: ["get", f"{s.reset}/x"], 9),
    Case("bad URI", lambda s: ["get", "coap//127.0.0.1/x"], 6),
    Case("bad --option", lambda s: ["get", f"{s.demo}/hello", "--option", "Foo=1"], 2),
    Case("bad argument", lambda s: ["get", f"{s.demo}/hello", "--timeout", "soon"], 2),
    Case("no command", lambda s: [], 2),
    Case("missing payload file", lambda s: ["put", f"{s.demo}/echo", "--payload", "@nofile"], 10),
    # no network
    Case("decode", lambda s: ["decode", HEX_GET], 0, writes_stdout=True),
    Case("decode bad hex", lambda s: ["decode", "zz"], 2),
    Case("decode malformed", lambda s: ["decode", "4f"], 3),
    Case("--help", lambda s: ["get", "--help"], 0, writes_stdout=True),
    Case("--version", lambda s: ["--version"], 0, writes_stdout=True),
    Case("completion", lambda s: ["completion", "bash"], 0, writes_stdout=True),
    # servers that cannot start
    Case("fileserver missing DIR", lambda s: ["fileserver", "/no/such/dir", "--port", "0"], 10),
]

#: The same with -v: the datagram trace goes to the closed stderr as well.
VERBOSE = {
    "get", "get 4.04", "post", "put", "delete", "fetch", "patch 4.05", "ping", "discover",
    "observe --count", "-o FILE", "closed port", "timeout", "reset",
}  # fmt: skip

ALL = [*CASES, *(
    Case(f"{case.name} -v", lambda s, c=case: [*c.argv(s), "-v"], case.status, case.writes_stdout,
         case.setup)
    for case in CASES if case.name in VERBOSE
)]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ALL, ids=[case.name for case in ALL])
def test_the_exit_status_depends_on_the_outcome_only(case, mode, servers, tmp_path):
    case.setup(servers)
    outcome = spawn(case.argv(servers), mode, cwd=tmp_path)
    assert_clean_exit(outcome)
    assert outcome.status == case.expected(mode), (outcome.stdout, outcome.stderr)
    if mode == "open" and case.status != 0:
        assert outcome.stderr, "a failure says why on stderr"
    if mode == "stdout closed" and case.writes_stdout and case.status == 0:
        # the reader went away on purpose (| head): no message about it
        assert b"coapkit:" not in outcome.stderr, outcome.stderr


def test_a_closed_stderr_leaves_stdout_as_it_was(servers, tmp_path):
    for args in (
        ["get", f"{servers.demo}/hello"],
        ["get", f"{servers.demo}/hello", "-v"],
        ["discover", servers.demo, "-v"],
        ["get", f"{servers.demo}/time", "--observe", "--count", "3", "-v"],
    ):
        open_run = spawn(args, "open", cwd=tmp_path)
        closed_run = spawn(args, "stderr closed", cwd=tmp_path)
        assert closed_run.status == open_run.status == 0
        if "/time" in args[1]:  # the time changes; the number of lines does not
            assert len(closed_run.stdout.splitlines()) == len(open_run.stdout.splitlines()) == 3
        else:
            assert closed_run.stdout == open_run.stdout != b""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("verbose", [False, True], ids=["", "-v"])
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_dash_o_writes_the_same_file_whatever_is_closed(
    servers, tmp_path, mode, verbose, unbuffered
):
    # /large is 1280 bytes in Block2 blocks: the body is put together before it is written
    args = ["get", f"{servers.plugtest}/large", "-o", "large.bin", *(["-v"] if verbose else [])]
    reference = spawn(args, "open", cwd=tmp_path)
    assert reference.status == 0
    expected = (tmp_path / "large.bin").read_bytes()
    assert len(expected) == 1280
    (tmp_path / "large.bin").unlink()
    outcome = spawn(args, mode, cwd=tmp_path, unbuffered=unbuffered)
    assert_clean_exit(outcome)
    assert outcome.status == 0
    assert (tmp_path / "large.bin").read_bytes() == expected


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["get", "{demo}/hello", "-v"], 0),
        (["get", "{demo}/nope", "-v"], 4),
        (["get", "{closed}/x", "-v"], 7),
        (["get", "{silent}/x", "-v", "--timeout", "0.5"], 8),
        (["get", "coap//x", "-v"], 6),
    ],
    ids=["2.05", "4.04", "closed port", "timeout", "bad URI"],
)
def test_unbuffered_streams_too(servers, args, status, unbuffered):
    argv = [arg.format(**vars(servers)) for arg in args]
    outcome = spawn(argv, "stderr closed", unbuffered=unbuffered)
    assert_clean_exit(outcome)
    assert outcome.status == status


# -- 2>&1 | head -1 and friends ---------------------------------------------------------------


def shell_pipeline(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in bash with pipefail: the status is coapkit's unless head failed."""
    env = child_env()
    env["COAPKIT"] = f"{sys.executable} -m coapkit"
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ("$COAPKIT get {demo}/hello -v 2>&1 | head -1", CLOSED_STDOUT),
        ("$COAPKIT get {demo}/nope -v 2>&1 | head -1", 4),
        ("$COAPKIT ping {demo} -v 2>&1 | head -1", CLOSED_STDOUT),
        ("$COAPKIT discover {demo} -v 2>&1 | head -1", CLOSED_STDOUT),
        ("$COAPKIT post {demo}/counter -v 2>&1 | head -1", CLOSED_STDOUT),
        ("$COAPKIT get {demo}/time --observe -v 2>&1 | head -1", CLOSED_STDOUT),
        ("$COAPKIT get {demo}/time --observe | head -1", CLOSED_STDOUT),
        ("$COAPKIT get {closed}/x -v 2>&1 | head -1", 7),
        ("$COAPKIT get {silent}/x --timeout 0.5 -v 2>&1 | head -1", 8),
        ("$COAPKIT get {demo}/hello | head -c0", CLOSED_STDOUT),
    ],
)
def test_the_pipelines_of_the_field_report(servers, command, status):
    result = shell_pipeline(command.format(**vars(servers)))
    assert result.returncode == status, result.stderr
    assert result.stdout.count("\n") <= 1
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


def test_dash_o_with_a_pipeline_that_closes_writes_the_file(servers, tmp_path):
    target = tmp_path / "hello.txt"
    for _ in range(5):  # the field report: 9 of 10 tries went wrong
        target.unlink(missing_ok=True)
        result = shell_pipeline(f"$COAPKIT get {servers.demo}/hello -o {target} -v 2>&1 | head -1")
        assert result.returncode == 0, result.stderr
        assert target.read_text() == "Hello, CoAP!"


# -- stdout: closed from the start, failing, or closed while observing ------------------------


def run_without_fd(fd: int, args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """``coapkit ARGS`` started with file descriptor ``fd`` closed (``<&-``, ``>&-``, ``2>&-``)."""
    return subprocess.run(
        [sys.executable, "-m", "coapkit", *args],
        capture_output=True,
        env=child_env(),
        preexec_fn=lambda: os.close(fd),
        timeout=HANG,
        check=False,
    )


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("fd", [0, 2], ids=["<&-", "2>&-"])
def test_a_descriptor_closed_from_the_start_changes_nothing(servers, fd, loop):
    # Python makes that stream None, and the next socket (or uvloop's epoll descriptor,
    # which libuv then refuses to close: an abort, status 134) would get its number
    for path, status, out in (("hello", 0, b"Hello, CoAP!\n"), ("nope", 4, b"")):
        result = run_without_fd(fd, ["get", f"{servers.demo}/{path}", "-v", "--loop", loop])
        assert (result.returncode, result.stdout) == (status, out), result.stderr
        if fd == 0:
            assert b"< ACK" in result.stderr  # the trace is there


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_stdout_closed_from_the_start_is_a_file_error_with_a_message(servers, loop):
    # coapkit get ... >&-: nothing can take the payload; that is not a reader gone away
    result = run_without_fd(1, ["get", f"{servers.demo}/hello", "--loop", loop])
    assert result.returncode == CLOSED_STDOUT
    assert result.stderr.decode() == "coapkit: cannot write to stdout: it is closed\n"
    assert run_without_fd(1, ["get", f"{servers.demo}/nope"]).returncode == 4


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_on_stdout_says_so(servers):
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "coapkit", "get", f"{servers.demo}/hello"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=child_env(),
            timeout=HANG,
            check=False,
        )
    assert result.returncode == CLOSED_STDOUT
    assert result.stderr.decode() == "coapkit: cannot write to stdout: No space left on device\n"


@pytest.fixture(scope="module")
def slow_demo() -> Iterator[ServerProcess]:
    """/time changes once a minute: after the first response an observer waits a long time."""
    server = ServerProcess("server", "--obs-period", "60")
    yield server
    server.stop()


def test_an_observer_notices_a_closed_stdout_without_waiting_for_a_notification(slow_demo):
    process = subprocess.Popen(
        [sys.executable, "-m", "coapkit", "get", f"{slow_demo.url}/time", "--observe", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        assert first.endswith(b"Z\n")
        started = time.monotonic()
        process.stdout.close()  # head -1 has its line and goes away
        status = process.wait(HANG)
        waited = time.monotonic() - started
        err = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert status == CLOSED_STDOUT, err
    assert waited < 10  # the next notification is a minute away
    assert "* stdout closed: deregistering" in err
    assert ">   Observe: 1" in err  # the server is told (RFC 7641 §3.6)
    assert "Traceback" not in err and "coapkit:" not in err


# -- the servers with a closed stderr ---------------------------------------------------------


def wait_until_serving(port: int, deadline: float = 15) -> None:
    """Ping 127.0.0.1:port until an RST comes back (a CoAP endpoint listens there)."""
    end = time.monotonic() + deadline
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        mid = 0
        while time.monotonic() < end:
            mid += 1
            sock.sendto(bytes((0x40, 0, 0, mid & 0xFF)), ("127.0.0.1", port))
            try:
                if sock.recv(64)[:1] == b"\x70":
                    return
            except (TimeoutError, ConnectionRefusedError):
                continue
    raise AssertionError(f"nothing answered on port {port}")


@pytest.mark.parametrize("verbose", [False, True], ids=["", "-v"])
@pytest.mark.parametrize("closed", ["stderr", "stdout"])
@pytest.mark.parametrize("command", ["server", "fileserver"])
def test_a_server_with_a_closed_stream_serves_and_stops_with_0(command, closed, verbose, tmp_path):
    (tmp_path / "hello.txt").write_text("Hello, file!")
    port = free_udp_port()
    args = [command, *([str(tmp_path)] if command == "fileserver" else [])]
    args += ["--bind", "127.0.0.1", "--port", str(port), *(["-v"] if verbose else [])]
    dead = closed_pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "coapkit", *args],
        stdout=dead if closed == "stdout" else subprocess.DEVNULL,
        stderr=dead if closed == "stderr" else subprocess.DEVNULL,
        env=child_env(),
    )
    os.close(dead)
    try:
        wait_until_serving(port)
        path = "hello.txt" if command == "fileserver" else "hello"
        for _ in range(3):  # each request is logged (to the closed stderr)
            result = run("get", f"coap://127.0.0.1:{port}/{path}")
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("Hello, ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(HANG) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("mode", ["stderr closed", "stdout closed"])
@pytest.mark.parametrize(
    "extra", [[], ["--workers", "2"], ["-v"]], ids=["one process", "--workers 2", "-v"]
)
def test_a_busy_port_is_7_whatever_is_closed(mode, extra):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        outcome = spawn(["server", "--bind", "127.0.0.1", "--port", str(port), *extra], mode)
    assert_clean_exit(outcome)
    assert outcome.status == 7
