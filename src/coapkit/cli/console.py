"""The tool's two streams, stdout (results) and stderr (diagnostics), and what a closed one does.

The rules are curl's, and they live here so that no command has to remember them:

* **stderr** (:data:`diagnostics`) carries what a person reads: the
  ``coapkit: ...`` error line, ``-v`` trace lines, progress bars, the servers'
  request log, argparse's usage errors.  Writing there is best effort.  The
  first write that fails (the reader of a pipe went away: EPIPE; a terminal
  hung up: EIO; a closed file object: ValueError) is swallowed, and stderr is
  *gone* from then on: nothing more is attempted on it, ``-v`` stops tracing
  and the servers stop logging.  A closed stderr never changes what a command
  does nor its exit status.
* **stdout** (:data:`output`) carries the results.  Once it cannot be
  written there is no point going on: :class:`OutputClosed` (a
  :class:`~coapkit.cli.exits.LocalFileError`) ends the command with status
  10.  It ends quietly when the reader went away (EPIPE, what ``| head``
  does), and with a ``coapkit:`` line otherwise (``> /dev/full``).  A
  command that writes nothing to stdout (``-o FILE``, a 4.04 whose code goes
  to stderr, a server) is not affected by a closed stdout at all.
* A stream that failed gets /dev/null put over its file descriptor
  (:func:`retire`): the text still in Python's buffer and the interpreter's
  own flush at exit then go nowhere, instead of failing with "Exception
  ignored ... BrokenPipeError" and turning the exit status into 120.
  :func:`settle`, called once by :func:`coapkit.cli.main.main` before it
  returns, does the interpreter's flush first, under the same rule.

``sys.stdout`` and ``sys.stderr`` are looked up at each write, not at
import, so that a redirection (``contextlib.redirect_stderr``, pytest's
``capsys``) is honoured; which stream failed is remembered per stream
object, so a fresh one is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import stat
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from coapkit.cli.exits import LocalFileError

__all__ = [
    "DiagnosticHandler",
    "Diagnostics",
    "Output",
    "OutputClosed",
    "diagnostics",
    "hold_standard_descriptors",
    "output",
    "retire",
    "settle",
    "stdout_gone",
    "watch_stdout",
]

#: What a write to a closed or broken stream raises (ValueError: the file object is closed).
_WRITE_ERRORS = (OSError, ValueError)


class OutputClosed(LocalFileError):
    """stdout cannot be written any more: the command ends with status 10.

    ``quiet`` when its reader went away (EPIPE): the person who closed it
    (``| head``) needs no message about it, as with a process that SIGPIPE
    ends; any other failure (a full disk, a stdout closed from the start)
    says why.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "cannot write to stdout: its reader went away")
        self.quiet = reason is None


def retire(stream: object) -> None:
    """Put /dev/null over the file descriptor of ``stream``, a stream that failed.

    Python keeps what it could not write in the stream's buffer and tries
    again when the interpreter exits; that last flush failing prints an
    "Exception ignored" message and makes the exit status 120.  With
    /dev/null in its place the flush succeeds, and nothing else (libuv,
    a C extension) can block on or fail on the dead pipe either.  A stream
    without a file descriptor (a test's StringIO) or a closed one is left
    as it is.
    """
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, *_WRITE_ERRORS):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def hold_standard_descriptors() -> None:
    """Put /dev/null on whichever of file descriptors 0, 1 and 2 is not open.

    Started with one of them closed (``2>&-``, ``>&-``, ``<&-``), Python
    makes that ``sys`` stream None, and the number goes to the next file
    the process opens: a socket, or uvloop's epoll descriptor, which libuv
    then refuses to close (an assertion: the process aborts at exit with
    status 134).  Holding the number with /dev/null keeps every later
    descriptor above 2; ``sys.stdout``/``sys.stderr`` stay None, so the
    rules above still see the stream as closed.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                held = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if held != fd:  # a lower number was free after all: move it
                os.dup2(held, fd)
                os.close(held)


def _flush(stream: TextIO) -> None:
    """``stream.flush()``, waiting for a non-blocking descriptor (EAGAIN) as a blocking one would.

    A stderr inherited in non-blocking mode (some CI runners and process
    managers share one) reports a full pipe as BlockingIOError; that is a
    slow reader, not a gone one.  Python keeps the unwritten bytes buffered,
    so flushing again once the pipe has room writes each byte once.
    """
    while True:
        try:
            stream.flush()
            return
        except BlockingIOError:
            select.select([], [stream.fileno()], [])


class Diagnostics:
    """stderr, written best effort (see the module doc); :data:`diagnostics` is the instance.

    It has the ``write``/``flush``/``isatty``/``fileno`` of a text stream, so
    that the progress bar and a logging handler can write to it as to a file.
    """

    def __init__(self) -> None:
        self._dead: object = None  #: the stream object that failed (None: none has)

    def _stream(self) -> TextIO | None:
        stream = sys.stderr
        if stream is None or stream is self._dead:  # None: started with stderr closed (2>&-)
            return None
        return stream

    @property
    def gone(self) -> bool:
        """Whether nothing written here can be read any more."""
        return self._stream() is None

    def _fail(self, stream: TextIO) -> None:
        self._dead = stream
        retire(stream)

    def write(self, text: str) -> int:
        """Write ``text`` and flush it; the characters written (0 once stderr is gone)."""
        stream = self._stream()
        if stream is None or not text:
            return 0
        try:
            with contextlib.suppress(BlockingIOError):  # buffered all the same: flushed below
                stream.write(text)
            _flush(stream)
        except _WRITE_ERRORS:
            self._fail(stream)
            return 0
        return len(text)

    def line(self, text: str) -> None:
        """``text`` as one line of its own."""
        self.write(text if text.endswith("\n") else text + "\n")

    def traceback(self) -> None:
        """The traceback of the exception being handled (``-v`` on an internal error)."""
        self.write(traceback.format_exc())

    def flush(self) -> None:
        stream = self._stream()
        if stream is None:
            return
        try:
            _flush(stream)
        except _WRITE_ERRORS:
            self._fail(stream)

    def isatty(self) -> bool:
        stream = self._stream()
        try:
            return stream is not None and stream.isatty()
        except (AttributeError, *_WRITE_ERRORS):
            return False

    def fileno(self) -> int:
        stream = self._stream()
        if stream is None:
            raise OSError("stderr is closed")
        return stream.fileno()


class Output:
    """stdout, for the results (see the module doc); :data:`output` is the instance.

    Every write is flushed and goes out whole: a blocking write to a full
    pipe can come back short (interrupted by a signal, or, seen on Linux,
    by the io_uring work libuv leaves pending once a uvloop loop has run in
    the process), and Python's buffered stdout then lost the rest of a
    100 kB payload.  So: ``os.write`` until all of it is out.
    """

    def __init__(self) -> None:
        self._dead: object = None  #: the stream object that failed
        self._error: OutputClosed | None = None  #: and how

    def _fail(self, stream: object, exc: BaseException) -> OutputClosed:
        self._dead = stream
        if isinstance(exc, BrokenPipeError):
            error = OutputClosed()
        elif isinstance(exc, OSError) and exc.strerror:
            error = OutputClosed(f"cannot write to stdout: {exc.strerror}")
        else:
            error = OutputClosed("cannot write to stdout: it is closed")
        self._error = error
        retire(stream)
        return error

    def _stream(self) -> TextIO:
        stream = sys.stdout
        if stream is None:  # started with stdout closed (>&-): nowhere to write to
            raise OutputClosed("cannot write to stdout: it is closed")
        if stream is self._dead:
            assert self._error is not None
            raise OutputClosed(None if self._error.quiet else str(self._error))
        return stream

    def text(self, text: str) -> None:
        """``text`` and a newline (unless it ends with one); OutputClosed if it cannot be."""
        if not text:
            return
        line = text if text.endswith("\n") else text + "\n"
        stream = self._stream()
        try:
            stream.fileno()
        except (AttributeError, *_WRITE_ERRORS):  # not a file (a test's StringIO)
            try:
                stream.write(line)
                stream.flush()
            except UnicodeError:  # a ValueError, but about the text: not a closed stream
                raise
            except _WRITE_ERRORS as exc:
                raise self._fail(stream, exc) from None
            return
        encoding = getattr(stream, "encoding", None) or "utf-8"
        self.write(line.encode(encoding, getattr(stream, "errors", None) or "strict"))

    def write(self, data: bytes) -> None:
        """``data`` on stdout, whole (see the class doc); OutputClosed if it cannot be."""
        stream = self._stream()
        try:
            _flush(stream)  # whatever went through sys.stdout itself comes first
            try:
                fd = stream.fileno()
            except (AttributeError, *_WRITE_ERRORS):  # not a file (a test's capture)
                buffer = getattr(stream, "buffer", None)
                if buffer is None:  # a StringIO: text only
                    stream.write(data.decode("utf-8", "replace"))
                    stream.flush()
                else:
                    buffer.write(data)
                    buffer.flush()
                return
            view = memoryview(data)
            while view:
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    select.select([], [fd], [])
                    continue
                view = view[written:]
        except _WRITE_ERRORS as exc:
            raise self._fail(stream, exc) from None

    def settle(self) -> None:
        """Flush what went through ``sys.stdout`` itself; retire it if that fails."""
        stream = sys.stdout
        if stream is None or stream is self._dead:
            return
        try:
            _flush(stream)
        except _WRITE_ERRORS as exc:
            self._fail(stream, exc)


diagnostics = Diagnostics()
output = Output()


def settle() -> None:
    """Flush both streams before the interpreter does, retiring one that cannot be flushed.

    Called once at the end of :func:`coapkit.cli.main.main`: whatever is
    left to write, the exit status is already decided and no flush at exit
    can change it.
    """
    output.settle()
    diagnostics.flush()


# -- a closed stdout while a command waits ---------------------------------------------------


def _hung_up(fd: int) -> bool:
    """Whether the reader of the pipe (or the peer of the socket) ``fd`` writes to is gone."""
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: only POLLERR, POLLHUP and POLLNVAL come back
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _stdout_pipe() -> int | None:
    """stdout's file descriptor if it is a pipe or a socket (what a reader can leave), else None.

    A file never closes under us, and on a terminal typing would look like
    readability to a watcher; those are left to the next write to tell.
    """
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, *_WRITE_ERRORS):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or not hasattr(select, "poll"):
        return None
    return fd


def stdout_gone() -> bool:
    """Whether stdout's reader has already gone away (``| head -c0``), before anything is written.

    ``--observe`` asks before it registers: an observation nobody can read
    would be registered only to be cancelled.
    """
    fd = _stdout_pipe()
    return fd is not None and _hung_up(fd)


def watch_stdout(loop: asyncio.AbstractEventLoop, closed: Callable[[], None]) -> Callable[[], None]:
    """Call ``closed`` as soon as stdout's reader goes away; returns the function that stops it.

    For a command that can wait long between two writes (``--observe``):
    without this, ``coapkit get URI --observe | head -1`` would notice that
    head is gone only at the next notification, which may be hours away.
    The kernel reports a pipe whose reader closed as an error condition,
    which epoll (and so asyncio's and uvloop's ``add_reader``) delivers even
    to a watcher of readability, never otherwise true of a pipe's write end.
    Only pipes and sockets are watched (see :func:`_stdout_pipe`); any
    wake-up that is not a hang-up ends the watch, leaving it to the next
    write to tell.
    """
    fd = _stdout_pipe()
    if fd is None:
        return lambda: None
    watching = True

    def stop() -> None:
        nonlocal watching
        if watching:
            watching = False
            loop.remove_reader(fd)

    def check() -> None:
        hung_up = _hung_up(fd)
        stop()
        if hung_up:
            closed()

    try:
        loop.add_reader(fd, check)
    except (OSError, ValueError, RuntimeError):  # a descriptor this loop cannot watch
        return lambda: None
    return stop


# -- the servers' log --------------------------------------------------------------------------


class DiagnosticHandler(logging.StreamHandler[Diagnostics]):
    """A logging handler writing to :data:`diagnostics`.

    Once stderr is gone the log has nowhere to go, so the first record after
    that switches the ``coapkit`` loggers off: with ``-v`` the servers would
    otherwise go on formatting every datagram (the trace on ``coapkit.trace``)
    for no one.  ``before`` is called before each record is written: the
    servers' request log (:mod:`coapkit.cli.requestlog`) writes the lines it
    has gathered, so that they come out in the order they were made.
    """

    def __init__(self) -> None:
        super().__init__(diagnostics)
        self.before: Callable[[], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if diagnostics.gone:
            logging.getLogger("coapkit").setLevel(logging.CRITICAL + 1)
            return
        if self.before is not None:
            self.before()
        super().emit(record)
