"""The field report, through the real tools: one of two observers is killed with SIGKILL.

``coapkit server`` (its /time notifies every second), two ``coapkit get
…/time --observe``, ``kill -KILL`` the first: the second must go on receiving
a notification every second (it got one every 6 s, by re-registering, when the
killed observer's ICMP errors were blamed on it).  libcoap's coap-client as
the surviving observer too, when installed (it got none).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.cli.helpers import ServerProcess, cli_env

_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess("server")
    yield process
    process.stop()


class Lines:
    """The /time values a process printed, with the time each arrived (read by a thread).

    coap-client prints payloads without a newline, so values are found by their
    shape (``2026-12-07T14:55:44Z``) rather than by lines.
    """

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env()
        )
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        pending = b""
        while chunk := os.read(fd, 4096):
            pending += chunk
            now, end = time.monotonic(), 0
            for match in _TIME.finditer(pending):
                self.lines.append((now, match.group().decode()))
                end = match.end()
            pending = pending[end:]

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert time.monotonic() < deadline, f"only {len(self.lines)} lines: {self.lines}"
            time.sleep(0.02)

    def since(self, moment: float) -> list[str]:
        return [line for t, line in self.lines if t >= moment]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def observe(argv: list[str]) -> Lines:
    return Lines(argv)


def coapkit_observer(url: str) -> Lines:
    return observe([sys.executable, "-m", "coapkit", "get", f"{url}/time", "--observe"])


def check_survivor(server: ServerProcess, survivor: Lines) -> None:
    victim = coapkit_observer(server.url)
    try:
        victim.wait_for(1)
        survivor.wait_for(1)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed_at = time.monotonic()
        time.sleep(5.5)
        # One new state a second: five or six notifications in 5.5 s, none lost.
        assert len(survivor.since(killed_at)) >= 5, survivor.lines
        assert survivor.process.poll() is None
    finally:
        victim.stop()
        survivor.stop()


def test_a_killed_coapkit_observer_does_not_cost_the_other_its_notifications(
    server: ServerProcess,
) -> None:
    check_survivor(server, coapkit_observer(server.url))


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="needs libcoap3-bin")
def test_a_killed_observer_does_not_cost_libcoap_its_notifications(
    server: ServerProcess,
) -> None:
    # stdbuf: coap-client writes through stdio, block-buffered into a pipe
    libcoap = observe(
        ["stdbuf", "-oL", "coap-client-notls", "-m", "get", "-s", "60", f"{server.url}/time"]
    )
    check_survivor(server, libcoap)
