"""The resource directory's tests: protocol behaviour in virtual time (``virtual``), the
store suite on both back ends, Redis against a real ``redis-server``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from coapkit.testing import VirtualEventLoop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], object]]:
    if item.get_closest_marker("real_loop") is not None:
        import asyncio

        return {"asyncio": asyncio.new_event_loop}
    return {"virtual": VirtualEventLoop}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_loop: runs on asyncio's own loop (real sockets: Redis, subprocesses)"
    )


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the session (each test uses a key prefix of its own)."""
    from tests.rd.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
