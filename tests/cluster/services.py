"""Real services for the cluster tests, each started on a free loopback port and stopped by the
test: redis-server, nginx with its stream module, ``coapkit server`` backends, and the small
application of the notification-bus tests (``bus_app.py``).

A tool that is not installed skips its tests here, and fails them in CI (``.ci/run`` installs
Debian's redis-server, nginx and libnginx-mod-stream).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import cli_env

HERE = Path(__file__).resolve().parent
#: where Debian's libnginx-mod-stream puts the module
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def require(tool: str) -> str:
    """The path of ``tool``; skips the test where it is missing (a failure in CI)."""
    found = shutil.which(tool) or next(
        (str(Path(d) / tool) for d in ("/usr/sbin", "/sbin") if (Path(d) / tool).exists()), None
    )
    if found is None:
        message = f"{tool} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_udp_port() -> int:
    """A port free for UDP (and, for the tests' peace of mind, for TCP too)."""
    while True:
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket() as tcp:
                tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class RedisServer:
    """redis-server on a free loopback port, no persistence; restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.binary = require("redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, 10, "redis-server to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)


class Process:
    """A child process whose stderr goes to a file the test reads (its log)."""

    def __init__(self, command: list[str], log: Path, *, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.command = command
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, env=env or cli_env()
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.log())
            if match:
                found.append(match)
            if self.process.poll() is not None and not match:
                raise AssertionError(f"{self.command[:4]} ended: {self.log()[-2000:]}")
            return match is not None

        wait_for(seen, timeout, f"{pattern!r} in {self.log_path.name}")
        return found[0]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def bus_app(directory: Path, name: str, redis_url: str, store: Path) -> tuple[Process, int]:
    """One process of the bus tests (``bus_app.py``) on a free port; returns it and its port."""
    port = free_udp_port()
    process = Process(
        [
            sys.executable, str(HERE / "bus_app.py"),
            "--port", str(port),
            "--redis", redis_url,
            "--store", str(store),
        ],
        directory / f"{name}.log",
    )  # fmt: skip
    process.wait_log(r"serving CoAP on")
    return process, port


def coapkit_server(directory: Path, name: str, port: int, *args: str) -> Process:
    """``coapkit server --bind 127.0.0.1 --port PORT ARGS`` (its log in ``NAME.log``)."""
    process = Process(
        [sys.executable, "-m", "coapkit", "server", "--bind", "127.0.0.1", "--port", str(port),
         *args],
        directory / f"{name}.log",
    )  # fmt: skip
    process.wait_log(r"serving CoAP on")
    return process


#: the configuration the documentation shows (docs/deployment.md)
NGINX_EXAMPLE = HERE.parents[1] / "examples" / "cluster" / "nginx-coap.conf"
_SESSION_CLIENT = re.compile(r"\*(\d+) udp client ([\d.]+):(\d+) connected to")
_SESSION_UPSTREAM = re.compile(r"\*(\d+) udp proxy [\d.]+:(\d+) connected to [\d.]+:(\d+)")


class Nginx:
    """nginx with the example's stream block, its ports changed: listening on ``port``, in
    front of ``backends`` (ports on 127.0.0.1).  Its error log (level info) names every
    session: which client, which backend."""

    def __init__(
        self, directory: Path, port: int, backends: list[int], *, workers: int = 1
    ) -> None:
        self.binary = require("nginx")
        if not STREAM_MODULE.exists():
            message = f"{STREAM_MODULE} is missing: apt install libnginx-mod-stream"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.directory = directory
        self.port = port
        self.backends = backends
        stream = NGINX_EXAMPLE.read_text()
        stream = stream.replace("listen 5683 udp", f"listen 127.0.0.1:{port} udp")
        lines = [
            f"        server 127.0.0.1:{backend} max_fails=1 fail_timeout=30s;"
            for backend in backends
        ]
        example = re.compile(r"^ *server 127\.0\.0\.1:57\d\d .*;\n", re.MULTILINE)
        first = example.search(stream)
        assert first is not None, "the example's upstream servers moved"
        stream = example.sub("", stream)
        stream = stream[: first.start()] + "\n".join(lines) + "\n" + stream[first.start() :]
        self.config = directory / "nginx.conf"
        self.error_log = directory / "nginx-error.log"
        self.config.write_text(
            f"load_module {STREAM_MODULE};\n"
            f"worker_processes {workers};\n"
            f"pid {directory / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "daemon off;\n"
            "events { worker_connections 16384; }\n" + stream
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config), "-p", str(self.directory),
             "-e", str(self.directory / "nginx-startup.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._listening, 10, "nginx to listen")

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            startup = self.directory / "nginx-startup.log"
            raise AssertionError(f"nginx ended: {startup.read_text() if startup.exists() else ''}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                return True
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)

    def sessions(self) -> dict[str, list[int]]:
        """Client address -> the backend port of each of its sessions, in order."""
        text = self.error_log.read_text(errors="replace")
        clients = {m.group(1): m.group(2) for m in _SESSION_CLIENT.finditer(text)}
        found: dict[str, list[int]] = {}
        for match in _SESSION_UPSTREAM.finditer(text):
            client = clients.get(match.group(1))
            if client is not None:
                found.setdefault(client, []).append(int(match.group(3)))
        return found
