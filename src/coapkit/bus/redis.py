"""A notification bus on Redis pub/sub (``pip install coapkit[redis]``).

Theory of operation
-------------------
Each :class:`RedisConnection` (one per server) runs one task that keeps two
Redis connections: a subscriber on the bus's channel and a publisher.  A
message is ``ORIGIN PATH``: the connection's random origin (its own messages
come back to it and are skipped) and the resource's path; ``ORIGIN *`` means
"anything may have changed".

Publishing never waits: :meth:`RedisConnection.publish` puts the path in a
set of pending paths (one entry per path however often it changes: only the
newest state matters, RFC 7641 §4.5.2) and the task sends it; a path leaves
the set once Redis has it, so what is published while Redis is away goes out
when it is back.  The set holds ``max_pending`` paths; beyond, the oldest
goes and ``*`` is sent instead, once.

When Redis goes away (restarted, the network cut), the task logs it once
(WARNING on ``coapkit.bus``), tries again after 0.1 s, doubling up to
``retry_max``, and logs the reconnection (INFO).  Pub/sub keeps nothing for a
subscriber that is away, so on reconnecting the connection calls
``deliver(None)``: the server notifies every observer it holds of the state
it reads now, which covers whatever was published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from coapkit.bus import BusConnection, Deliver

__all__ = ["RedisBus", "RedisConnection"]

logger = logging.getLogger("coapkit.bus")

#: the first pause before connecting again, doubled up to ``retry_max``
FIRST_RETRY = 0.1


def _require_redis() -> Any:
    try:
        import redis.asyncio
    except ImportError:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            "RedisBus needs the redis package: pip install 'coapkit[redis]'"
        ) from None
    return redis.asyncio


class RedisBus:
    """Redis pub/sub as a :class:`~coapkit.bus.NotificationBus`.

    ``url``: the Redis server (``redis://host:port/db``, ``rediss://`` for TLS,
    ``unix:///path``); ``channel``: the channel every process of one cluster
    uses; ``retry_max``: the longest pause between attempts to reconnect;
    ``max_pending``: paths kept while Redis is away.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel: str = "coapkit:notifications",
        retry_max: float = 5.0,
        max_pending: int = 10_000,
    ) -> None:
        _require_redis()
        if retry_max <= 0 or max_pending < 1:
            raise ValueError("retry_max must be positive and max_pending at least 1")
        self.url = url
        self.channel = channel
        self.retry_max = retry_max
        self.max_pending = max_pending

    def __repr__(self) -> str:
        return f"RedisBus({self.url!r}, channel={self.channel!r})"

    async def connect(self, deliver: Deliver) -> BusConnection:
        connection = RedisConnection(self, deliver)
        connection.start()
        return connection


class RedisConnection:
    """One server's connection to a :class:`RedisBus` (see the module docstring)."""

    def __init__(self, bus: RedisBus, deliver: Deliver) -> None:
        self.bus = bus
        self.deliver = deliver
        self.origin = secrets.token_hex(8)
        self.connected = False  #: subscribed right now
        self.reconnections = 0  #: times it came back after losing Redis
        #: paths to publish, each with the number of the change that put it there
        self._pending: dict[str, int] = {}
        self._changes = 0
        self._overflow = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def publish(self, path: str) -> None:
        pending = self._pending
        pending.pop(path, None)
        self._changes += 1
        pending[path] = self._changes
        if len(pending) > self.bus.max_pending:
            del pending[next(iter(pending))]
            self._overflow = True
        self._wake.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    # -- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        redis = _require_redis()
        bus = self.bus
        pause = FIRST_RETRY
        ever = lost = False
        while True:
            client = redis.Redis.from_url(bus.url, health_check_interval=5, socket_keepalive=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(bus.channel)
                self.connected = True
                pause = FIRST_RETRY
                if ever:
                    self.reconnections += 1
                    logger.info(
                        "notification bus: reconnected to Redis at %s; notifying the observers "
                        "here again, and sending %d change(s) published meanwhile",
                        bus.url,
                        len(self._pending),
                    )
                    self._deliver(None)
                else:
                    logger.info(
                        "notification bus: connected to Redis at %s (channel %s)",
                        bus.url,
                        bus.channel,
                    )
                ever, lost = True, False
                self._wake.set()  # whatever waits goes out now
                await self._pump(client, pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis' ConnectionError, TimeoutError, OSError...
                self.connected = False
                if not lost:
                    lost = True
                    logger.warning(
                        "notification bus: %s Redis at %s (%s); reconnecting",
                        "lost" if ever else "cannot reach",
                        bus.url,
                        exc or type(exc).__name__,
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, bus.retry_max)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _pump(self, client: Any, pubsub: Any) -> None:
        """Read and publish until either fails (the failure is raised)."""
        reader = asyncio.ensure_future(self._read(pubsub))
        writer = asyncio.ensure_future(self._write(client))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    async def _read(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            data = message.get("data")
            if not isinstance(data, bytes):
                continue
            origin, _, path = data.decode("utf-8", "replace").partition(" ")
            if origin == self.origin or not path:
                continue
            self._deliver(None if path == "*" else path)
        raise ConnectionError("the subscription ended")

    async def _write(self, client: Any) -> None:
        channel = self.bus.channel
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._overflow:
                await client.publish(channel, f"{self.origin} *")
                self._overflow = False
            pending = self._pending
            while pending:
                path, change = next(iter(pending.items()))
                await client.publish(channel, f"{self.origin} {path}")
                if pending.get(path) == change:  # not changed again meanwhile
                    del pending[path]

    def _deliver(self, path: str | None) -> None:
        try:
            self.deliver(path)
        except Exception:
            logger.exception("notification bus: delivering %s failed", path or "a resync")
