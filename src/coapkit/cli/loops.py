"""``--loop asyncio|uvloop|auto``: which event loop runs a command.

uvloop (libuv under asyncio's interface) serves and sends the same
datagrams with less overhead per wake-up.  ``auto``, the default, takes it
when it is installed and asyncio's own loop otherwise; ``uvloop`` insists on
it (a usage error, status 2, when it is missing); ``asyncio`` never uses it.

The choice is made before anything is created: :func:`choose_loop` decides
(and fails) first, :func:`run` then runs the command's coroutine on it.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from coapkit.cli.arguments import LOOP_CHOICES
from coapkit.cli.exits import UsageError

__all__ = ["LOOP_CHOICES", "choose_loop", "run"]

T = TypeVar("T")


def _uvloop() -> Any:
    """The uvloop module (an optional dependency: ``pip install 'coapkit[speed]'``)."""
    return importlib.import_module("uvloop")


def _uvloop_available() -> bool:
    try:
        _uvloop()
    except ImportError:
        return False
    return True


def choose_loop(requested: str | None) -> str:
    """``"asyncio"`` or ``"uvloop"`` for ``--loop`` (None or ``"auto"``: uvloop if installed)."""
    if requested in (None, "auto"):
        return "uvloop" if _uvloop_available() else "asyncio"
    if requested == "uvloop" and not _uvloop_available():
        raise UsageError("--loop uvloop: uvloop is not installed (pip install uvloop)")
    if requested not in LOOP_CHOICES:
        raise UsageError(f"--loop must be one of {', '.join(LOOP_CHOICES)}, not {requested!r}")
    return requested


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` to completion on the loop :func:`choose_loop` named; Ctrl-C (SIGINT)
    cancels it and raises KeyboardInterrupt."""
    if loop == "uvloop":
        result: T = _uvloop().run(_interruptible(main))
        return result
    return asyncio.run(_interruptible(main))


async def _interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``main``, cancelled by SIGINT through the event loop's own signal handler.

    With asyncio.run's own handler (a plain ``signal.signal`` handler), a ``coapkit
    get`` on uvloop waiting for a silent peer now and then outlived its Ctrl-C in the
    test suite.  A handler registered with the loop is run by the loop itself, on
    either loop.  A command that handles SIGINT itself (observe, server) replaces this
    handler while it runs.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread; Windows
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)
