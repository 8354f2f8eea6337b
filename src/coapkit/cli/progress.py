"""The progress bar of a block-wise transfer (RFC 7959), drawn on stderr.

:class:`ProgressBar` is the ``progress(done, total)`` callback of
:meth:`coapkit.client.Client.request`, which calls it after each block but
the last.  It draws one line, rewritten in place with a carriage return,
only for a transfer of more than a few blocks (more than
:data:`MIN_BLOCKS` blocks or :data:`MIN_BYTES` bytes) and only while a
person watches: the request commands make one only when stderr is a
terminal (and not with ``-v``, whose trace lines would cut through it).
:meth:`ProgressBar.finish` draws the final state and ends the line, so
whatever follows on stderr starts on a line of its own.

With the total known (Size1 of an upload, Size2 of a download) the line
shows a bar, the percentage and ``done / total``; otherwise the bytes so
far.  A request whose body goes up in blocks and whose response comes back
in blocks has two phases: the callback does not say which one a call is
about, but the upload always comes first and the download starts again
from its first block, so a ``done`` that does not grow (or a new total)
after the upload starts the download's line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

__all__ = ["MIN_BLOCKS", "MIN_BYTES", "ProgressBar", "human_bytes"]

#: Draw only for a transfer of more blocks than this ...
MIN_BLOCKS = 4
#: ... or of more bytes than this.
MIN_BYTES = 4096
#: Redraw at most this often (seconds); the first and the final state are always drawn.
REDRAW_INTERVAL = 0.1
BAR_WIDTH = 30


class Stream(Protocol):
    """Where the bar is drawn: the tool's stderr (:data:`coapkit.cli.console.diagnostics`,
    which never raises once the terminal is gone), or a StringIO in a test."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class Terminal(Protocol):
    """What :func:`terminal_width` asks: the descriptor of the terminal (OSError if none)."""

    def fileno(self) -> int: ...


def human_bytes(count: int) -> str:
    """``512 B``, ``1.3 KiB``, ``97.7 KiB``, ``12.0 MiB``."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


class ProgressBar:
    """Draws ``done / total`` of a block-wise transfer on ``stream`` (see the module doc)."""

    def __init__(
        self,
        stream: Stream,
        clock: Callable[[], float],
        *,
        uploading: bool = False,
        width: int = 80,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.width = max(width, 40)
        self.uploading = uploading  #: the first phase is an upload (the request body is large)
        self.calls = 0  #: callbacks in the current phase (one per block but the last)
        self.done = 0
        self.total: int | None = None
        self.drawn = False  #: something of the current line is on the screen
        self._last_draw = float("-inf")
        self._shown = 0  #: length of the line on the screen, to blank what a shorter one leaves

    def __call__(self, done: int, total: int | None) -> None:
        if self.calls and (done <= self.done or total != self.total):
            if self.uploading:
                self._upload_complete()  # the body is up; the response's blocks are coming
            else:
                self.calls = 0  # the representation changed: the download started over
        self.calls += 1
        self.done, self.total = done, total
        if not self._worth_showing():
            return
        now = self.clock()
        if self.drawn and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._draw(now)

    def finish(self, received: int | None = None) -> None:
        """The transfer is over: draw its final state and end the line.

        ``received`` is the size of the response body when the request
        succeeded (None when it failed: the line ends where it was).  Nothing
        is drawn for a transfer too small to have been shown.
        """
        if received is not None:
            if self.uploading:
                self._upload_complete()
            elif self.calls:
                self.done = received
                if self.total is None or self.total < received:
                    self.total = received
                if self._worth_showing():
                    self._draw(self.clock())
        self._end_phase()

    def _upload_complete(self) -> None:
        if self.total is not None and self.calls:
            self.done = self.total
            if self._worth_showing():
                self._draw(self.clock())
        self._end_phase()
        self.uploading = False

    def _end_phase(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False
        self.calls = 0
        self._shown = 0

    def _worth_showing(self) -> bool:
        if self.drawn:
            return True
        size = self.total if self.total is not None else self.done
        return self.calls > MIN_BLOCKS or size > MIN_BYTES

    def line(self) -> str:
        """The text of the current state, without the carriage return."""
        verb = "sent" if self.uploading else "received"
        done, total = self.done, self.total
        if total is None or total <= 0:
            return f"{verb} {human_bytes(done)}"
        fraction = min(done / total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"{verb} [{bar}] {fraction * 100:3.0f}%  {human_bytes(done)} / {human_bytes(total)}"
        return text[: self.width - 1]

    def _draw(self, now: float) -> None:
        text = self.line()
        padding = " " * max(0, self._shown - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._shown = len(text)
        self._last_draw = now
        self.drawn = True


def terminal_width(stream: Terminal) -> int:
    """The width of the terminal ``stream`` is on (80 when it cannot say)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80
    return columns if columns > 0 else 80
