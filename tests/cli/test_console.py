"""coapkit.cli.console in-process: what a failing stream does to the next write, and to exit.

The end-to-end behaviour (exit statuses, files written, no hang) is in
test_closed_streams.py; these tests pin the mechanism it relies on, on real
pipes whose reader is gone: one failed write and stderr is left alone, its
descriptor then points at /dev/null, the trace stops formatting, stdout
raises OutputClosed every time after.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import stat
import sys
from collections.abc import Iterator

import pytest

from coapkit.cli import console
from coapkit.cli.console import Diagnostics, Output, OutputClosed
from coapkit.cli.exits import EXIT_FILE, LocalFileError, exit_status
from coapkit.cli.render import Trace


@pytest.fixture
def dead_pipe() -> Iterator[io.TextIOWrapper]:
    """A text stream on a pipe whose read end is closed, line-buffered like stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = io.TextIOWrapper(open(write_end, "wb"), encoding="utf-8", line_buffering=True)  # noqa: SIM115
    yield stream
    with contextlib.suppress(OSError):  # a test that never retired it leaves bytes unwritable
        stream.close()


class Counting(io.StringIO):
    """A stream whose writes fail like a pipe without reader; it counts the attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise BrokenPipeError(32, "Broken pipe")


def is_devnull(fd: int) -> bool:
    info = os.fstat(fd)
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev


def test_one_failed_write_and_stderr_is_left_alone(monkeypatch):
    stream = Counting()
    monkeypatch.setattr(sys, "stderr", stream)
    diagnostics = Diagnostics()
    assert not diagnostics.gone
    assert diagnostics.write("first\n") == 0  # swallowed
    assert diagnostics.gone
    diagnostics.line("second")
    diagnostics.flush()
    assert stream.attempts == 1
    fresh = io.StringIO()  # another stream (a test's redirection) is tried again
    monkeypatch.setattr(sys, "stderr", fresh)
    assert not diagnostics.gone
    diagnostics.line("third")
    assert fresh.getvalue() == "third\n"


def test_a_closed_file_object_is_gone_too(monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    diagnostics = Diagnostics()
    diagnostics.line("x")  # ValueError: I/O operation on closed file
    assert diagnostics.gone
    assert not diagnostics.isatty()
    with pytest.raises(OSError):
        diagnostics.fileno()


def test_no_stderr_at_all(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)  # started with 2>&-
    diagnostics = Diagnostics()
    assert diagnostics.gone
    assert diagnostics.write("x") == 0


def test_the_failed_descriptor_points_at_devnull_so_the_exit_flush_succeeds(monkeypatch, dead_pipe):
    monkeypatch.setattr(sys, "stderr", dead_pipe)
    fd = dead_pipe.fileno()
    assert not is_devnull(fd)
    Diagnostics().line("lost")
    assert is_devnull(fd)
    dead_pipe.flush()  # what the interpreter does at exit: no BrokenPipeError, no status 120
    dead_pipe.write("more\n")


def test_the_trace_stops_formatting_once_stderr_is_gone(monkeypatch):
    stream = Counting()
    monkeypatch.setattr(sys, "stderr", stream)
    diagnostics = Diagnostics()
    formatted = []

    class Counted(Trace):
        def format(self, direction, data, remote):  # type: ignore[no-untyped-def]
            formatted.append(direction)
            return super().format(direction, data, remote)

    trace = Counted(diagnostics.line, lambda: 0.0, stopped=lambda: diagnostics.gone)
    datagram = bytes((0x40, 0x01, 0x12, 0x34))
    trace("send", datagram, ("127.0.0.1", 5683))  # raises nothing: the first write fails
    trace("recv", datagram, ("127.0.0.1", 5683))
    trace.note("wrote 3 bytes")
    assert formatted == ["send"]
    assert stream.attempts == 1


def test_a_stdout_without_reader_raises_output_closed_quietly_every_time(monkeypatch, dead_pipe):
    monkeypatch.setattr(sys, "stdout", dead_pipe)
    output = Output()
    with pytest.raises(OutputClosed) as first:
        output.text("payload")
    assert first.value.quiet
    assert is_devnull(dead_pipe.fileno())  # retired: now writes would "succeed" ...
    with pytest.raises(OutputClosed) as second:  # ... but the command is still told
        output.write(b"more")
    assert second.value.quiet
    assert isinstance(first.value, LocalFileError)
    assert exit_status(first.value)[0] == EXIT_FILE == 10


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stdout_says_why(monkeypatch):
    with open("/dev/full", "w", encoding="utf-8") as full:
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(OutputClosed) as failed:
            Output().text("payload")
    assert not failed.value.quiet
    assert str(failed.value) == "cannot write to stdout: No space left on device"


def test_no_stdout_at_all(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)  # started with >&-
    with pytest.raises(OutputClosed) as failed:
        Output().text("payload")
    assert not failed.value.quiet


def test_stdout_gone_and_its_watcher(monkeypatch):
    read_end, write_end = os.pipe()
    with open(write_end, "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert not console.stdout_gone()

        async def watch() -> bool:
            loop = asyncio.get_running_loop()
            closed = asyncio.Event()
            stop = console.watch_stdout(loop, closed.set)
            try:
                await asyncio.sleep(0)
                assert not closed.is_set()  # a reader is there: nothing to report
                os.close(read_end)  # the reader goes away
                await asyncio.wait_for(closed.wait(), 5)
                return closed.is_set()
            finally:
                stop()

        assert asyncio.run(watch())
        assert console.stdout_gone()


def test_a_file_is_not_watched(monkeypatch, tmp_path):
    with open(tmp_path / "out.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert not console.stdout_gone()

        async def watch() -> None:
            stop = console.watch_stdout(asyncio.get_running_loop(), lambda: None)
            stop()

        asyncio.run(watch())


def test_the_server_log_switches_itself_off_once_stderr_is_gone(monkeypatch):
    stream = Counting()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(console, "diagnostics", Diagnostics())
    root = logging.getLogger("coapkit")
    monkeypatch.setattr(root, "handlers", [console.DiagnosticHandler()])
    monkeypatch.setattr(root, "propagate", False)
    level = root.level
    try:
        root.setLevel(logging.DEBUG)
        logging.getLogger("coapkit.server").info("one request")  # fails: stderr is gone
        logging.getLogger("coapkit.server").info("another")  # switches the log off
        assert not logging.getLogger("coapkit.trace").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("coapkit.server").isEnabledFor(logging.CRITICAL)
        assert stream.attempts == 1
    finally:
        root.setLevel(level)
