"""A real ``redis-server`` (the Debian package) on a free loopback port, for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_redis() -> str:
    """The path of redis-server and the redis package, or a skip (a failure in CI)."""
    server = shutil.which("redis-server")
    message = None
    if server is None:
        message = "redis-server not installed (apt-get install redis-server)"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            message = "the redis package is not installed (pip install 'coapkit[redis]')"
    if message is not None:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert server is not None
    return server


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start redis-server on a free port, with its files in ``directory`` (appendonly,
    so that its data survives it); yields ``redis://127.0.0.1:PORT/0``; stops it."""
    server = require_redis()
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
