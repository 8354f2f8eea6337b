"""The notification bus on a real redis-server that the tests start: a change in process A
reaches the observers of process B, and keeps doing so across a restart of Redis (the bus
reconnects, says so in the log, and nothing published meanwhile is lost)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from coapkit import Client
from coapkit.bus.redis import RedisBus
from tests.cluster.services import RedisServer, bus_app, wait_for


@pytest.fixture
def redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(tmp_path)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


async def next_text(observation: object, timeout: float = 15.0) -> str:
    response = await asyncio.wait_for(anext(observation), timeout)  # type: ignore[call-overload]
    return str(response.text)


async def test_a_change_in_process_a_reaches_the_observers_of_process_b(
    tmp_path: Path, redis: RedisServer
) -> None:
    store = tmp_path / "setting"
    store.write_text("1")
    a, a_port = bus_app(tmp_path, "a", redis.url, store)
    b, b_port = bus_app(tmp_path, "b", redis.url, store)
    try:
        for process in (a, b):
            process.wait_log(r"notification bus: connected to Redis at redis://127\.0\.0\.1")
        async with Client() as writer, Client() as watcher:
            observation = watcher.observe(f"coap://127.0.0.1:{b_port}/setting")
            assert await next_text(observation) == "1"
            await writer.put(f"coap://127.0.0.1:{a_port}/setting", "2")
            assert await next_text(observation) == "2"  # changed in A, heard at B

            redis.stop()  # Redis restarted mid-test
            for process in (a, b):
                process.wait_log(
                    r"notification bus: lost Redis at redis://\S+ \(.+\); reconnecting"
                )
            await writer.put(f"coap://127.0.0.1:{a_port}/setting", "3")  # while it is away
            redis.start()
            for process in (a, b):
                process.wait_log(r"notification bus: reconnected to Redis at redis://\S+")
            assert await next_text(observation, 30) == "3"  # published meanwhile: not lost

            await writer.put(f"coap://127.0.0.1:{a_port}/setting", "4")
            texts = [await next_text(observation)]
            while texts[-1] != "4":  # B's own re-notification of "3" may come first
                texts.append(await next_text(observation))
            assert set(texts) <= {"3", "4"}
            observation.cancel()
        assert "Traceback" not in a.log() + b.log()
    finally:
        a.stop()
        b.stop()


async def test_connections_skip_their_own_messages_and_resync_after_an_overflow(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coapkit.bus")
    bus = RedisBus(redis.url, channel="test:own", max_pending=2)
    heard: dict[str, list[str | None]] = {"a": [], "b": []}
    a = await bus.connect(heard["a"].append)
    b = await bus.connect(heard["b"].append)
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: a.connected and b.connected,
            10,
            "both connected",  # type: ignore[attr-defined]
        )
        a.publish("/x")
        a.publish("/x")  # coalesced: one message
        a.publish("/y")
        await asyncio.to_thread(wait_for, lambda: heard["b"] == ["/x", "/y"], 10, "/x and /y at b")
        assert heard["a"] == []  # not its own
        for path in ("/1", "/2", "/3"):  # more than max_pending at once: "*" instead
            b.publish(path)
        await asyncio.to_thread(wait_for, lambda: None in heard["a"], 10, "a resync at a")
        assert heard["a"][0] is None and heard["a"][1:] == ["/2", "/3"]
    finally:
        await a.close()
        await b.close()
    assert "notification bus: connected to Redis at" in caplog.text


async def test_a_bus_started_while_redis_is_away_connects_when_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coapkit.bus")
    redis = RedisServer(tmp_path)
    bus = RedisBus(redis.url, retry_max=0.2)
    heard: list[str | None] = []
    connection = await bus.connect(heard.append)
    try:
        await asyncio.sleep(0.5)
        assert "notification bus: cannot reach Redis at" in caplog.text
        connection.publish("/early")  # kept until Redis is there
        redis.start()
        await asyncio.to_thread(
            wait_for,
            lambda: connection.connected,
            10,
            "connected",  # type: ignore[attr-defined]
        )
    finally:
        await connection.close()
        redis.stop()
    assert "notification bus: connected to Redis at" in caplog.text
