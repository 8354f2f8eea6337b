"""Every ``async def`` test here runs on a :class:`VirtualEventLoop`: in virtual time."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from coapkit.testing import VirtualEventLoop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], VirtualEventLoop]]:
    return {"virtual": VirtualEventLoop}
