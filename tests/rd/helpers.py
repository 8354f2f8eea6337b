"""A directory and endpoints on a virtual network, for the protocol tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from coapkit.rd import ResourceDirectory, SQLiteStore
from coapkit.testing import VirtualNetwork

RD = "coap://rd"


def loop_clock() -> float:
    return asyncio.get_running_loop().time()


@asynccontextmanager
async def directory(
    net: VirtualNetwork, path: Path | str = ":memory:", **options: Any
) -> AsyncIterator[ResourceDirectory]:
    """A directory on ``net`` at ``rd`` (192.0.2.x:5683) over a SQLite store at ``path``,
    lifetimes on the loop's virtual clock."""
    store = SQLiteStore(str(path), thread=False)  # virtual time: no thread
    await store.open()
    host = net.add_host("rd")
    rd = ResourceDirectory(store, clock=loop_clock, network=net, bind=(host, 5683), **options)
    try:
        async with rd:
            yield rd
    finally:
        await store.close()
