"""Run a test's scenario on each event loop coapkit supports: asyncio's own and uvloop.

The two loops watch sockets differently (a selector versus libuv poll
handles) and have differed where it hurt (a socket that uvloop stopped
reading after one ICMP error), so the socket-level tests run on both.  CI
installs uvloop (the ``test`` extra) and must not skip these; elsewhere a
missing uvloop skips its half.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

LOOPS = ["asyncio", "uvloop"]


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh loop of the kind named ``loop``."""
    if loop == "uvloop":
        if os.environ.get("CI") == "true":
            import uvloop
        else:
            uvloop = pytest.importorskip("uvloop")
        return uvloop.run(main)  # type: ignore[no-any-return]
    return asyncio.run(main)
