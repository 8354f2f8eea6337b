"""The servers' request log (cli/requestlog.py): lines gathered per loop turn, one write,
in order with the logging records, off once stderr is gone; Server(request_log=)."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from typing import Any

import pytest

from coapkit.cli import console
from coapkit.cli.console import DiagnosticHandler, Diagnostics
from coapkit.cli.requestlog import RequestLog
from coapkit.client import Client
from coapkit.resources import Response
from coapkit.server import Server


class Writes(io.StringIO):
    """stderr that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


class Closed(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def own_stderr(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> None:
    """Put ``stream`` in place of stderr, in the test itself: pytest's capture puts its own
    back between a fixture's setup and the test."""
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(console, "diagnostics", Diagnostics())


NOON = time.mktime((2026, 12, 7, 12, 0, 0, 0, 0, -1))


def test_the_lines_of_one_loop_turn_go_out_in_one_write_at_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = Writes()
    own_stderr(monkeypatch, stderr)

    async def main() -> None:
        log = RequestLog(asyncio.get_running_loop(), prefix="[worker 7] ", clock=lambda: NOON)
        for n in range(3):
            log.add(f"127.0.0.1:1000{n} GET /hello -> 2.05 Content")
        assert stderr.getvalue() == ""  # not yet: at the loop's next turn
        await asyncio.sleep(0)
        assert stderr.writes == 1
        log.add("127.0.0.1:10003 GET /time -> 2.05 Content")
        log.flush()  # at once, whatever the loop does (the server stopping)
        assert stderr.writes == 2

    asyncio.run(main())
    assert stderr.getvalue().splitlines() == [
        f"2026-12-07 12:00:00 [worker 7] 127.0.0.1:1000{n} GET /hello -> 2.05 Content"
        for n in range(3)
    ] + ["2026-12-07 12:00:00 [worker 7] 127.0.0.1:10003 GET /time -> 2.05 Content"]


def test_a_logging_record_writes_the_gathered_lines_first(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = Writes()
    own_stderr(monkeypatch, stderr)
    handler = DiagnosticHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("coapkit.server", logging.WARNING, "", 0, "a warning", (), None)

    async def main() -> None:
        log = RequestLog(asyncio.get_running_loop(), clock=lambda: NOON)
        handler.before = log.flush
        log.add("first request")
        handler.emit(record)
        log.add("second request")

    asyncio.run(main())
    assert stderr.getvalue().splitlines() == [
        "2026-12-07 12:00:00 first request",
        "a warning",
        "2026-12-07 12:00:00 second request",  # at the loop's next turn
    ]


def test_once_stderr_is_gone_the_log_switches_itself_off(monkeypatch: pytest.MonkeyPatch) -> None:
    own_stderr(monkeypatch, Closed())
    offs: list[bool] = []

    async def main() -> None:
        log = RequestLog(asyncio.get_running_loop(), off=lambda: offs.append(True))
        log.add("a line nobody reads")
        await asyncio.sleep(0)  # the write fails: off
        log.add("another")
        await asyncio.sleep(0)  # stderr is gone: not tried, off is not called again

    asyncio.run(main())
    assert offs == [True]


def test_server_request_log_takes_the_lines_instead_of_the_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines: list[str] = []

    async def main() -> None:
        server = Server(bind=("127.0.0.1", 0), log_requests=True, request_log=lines.append)

        @server.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hi")

        async with server, Client(timeout=5) as client:
            await client.get(f"coap://127.0.0.1:{server.port}/hello")
            await client.get(f"coap://127.0.0.1:{server.port}/caf%C3%A9")
            server.log_requests = False
            await client.get(f"coap://127.0.0.1:{server.port}/hello")

    with caplog.at_level(logging.INFO, logger="coapkit.server"):
        asyncio.run(main())
    assert [line.split(" ", 1)[1] for line in lines] == [
        "GET /hello -> 2.05 Content",
        "GET /caf%C3%A9 -> 4.04 Not Found",
    ]
    assert lines[0].startswith("127.0.0.1:")
    assert not [r for r in caplog.records if "->" in r.getMessage()]
