"""The servers' request log: one line per answered request on stderr, cheaply.

A logging record per request (a ``LogRecord``, a ``Formatter``, a write and a
flush of stderr each time) cost ``coapkit server`` three quarters of its
throughput.  So the request log is written here rather than through
:mod:`logging`: the server hands each line over as a string
(``Server(request_log=)``), the lines of one turn of the event loop are
gathered, and a callback at the next turn writes them with one write, each
line starting with the time and the worker's prefix, as the other log lines
do.  The other log lines (start, stop, warnings, the ``-v`` trace) still go
through :mod:`logging`; :class:`~coapkit.cli.console.DiagnosticHandler`
writes what is gathered here first, so that the lines keep their order.

The rules of :mod:`coapkit.cli.console` hold: the lines go to stderr best
effort, and once stderr is gone the log switches itself off (``off``) and
no line is made any more.  Nothing here raises into the server: a failure
while writing is the console's to swallow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from coapkit.cli import console

__all__ = ["RequestLog"]

#: The time at the start of each line, as ``logging.Formatter`` wrote it (local time).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class RequestLog:
    """Request lines gathered during one turn of ``loop`` and written together at the next.

    ``prefix`` follows the time on each line (a worker's ``[worker PID] ``);
    ``off`` is called once, when stderr turns out to be gone, to stop the
    server making lines.  ``clock`` gives the wall-clock time (for tests).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        prefix: str = "",
        off: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._loop = loop
        self._prefix = prefix
        self._off = off
        self._clock = clock
        self._lines: list[str] = []
        self._second = -1  #: the wall-clock second ``_head`` was made for
        self._head = ""  #: what starts each line written in that second

    def add(self, line: str) -> None:
        """Take one request line (``Server(request_log=)``): written at the loop's next turn."""
        lines = self._lines
        if not lines:
            self._loop.call_soon(self.flush)
        lines.append(line)

    def flush(self) -> None:
        """Write the lines gathered so far, in one write; at once, whatever the loop does."""
        lines = self._lines
        if not lines:
            return
        self._lines = []
        diagnostics = console.diagnostics  # looked up here: a test may put its own
        if diagnostics.gone:
            self._switch_off()
            return
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._head = time.strftime(TIME_FORMAT, time.localtime(now)) + " " + self._prefix
        head = self._head
        if not diagnostics.write(head + ("\n" + head).join(lines) + "\n"):
            self._switch_off()  # that write found stderr gone

    def _switch_off(self) -> None:
        off, self._off = self._off, None
        if off is not None:
            off()
