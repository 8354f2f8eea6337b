"""Notifications shared by the processes of a cluster (RFC 7641 §4.2, across processes).

When the state of a resource changes in one process, the observers that
every other process holds must hear of it too.  A :class:`NotificationBus`
carries "the resource at PATH has a new state" from the process where it
changed to every other; each process then notifies its own observers, and
renders the new state itself, so the state has to live where every process
reads it (a database, a file, Redis).  Nothing but paths crosses the bus.

* No bus (the default): in-process.  ``resource.changed()`` reaches the
  servers of this process that serve the resource, and only those.
* :class:`LocalBus`: servers of one process connected as a cluster would be,
  for tests (a cluster in virtual time, see :mod:`coapkit.testing`).
* :class:`~coapkit.bus.redis.RedisBus`: Redis pub/sub, for processes and
  machines (``pip install coapkit[redis]``).

A server connects with :meth:`NotificationBus.connect`, handing over what to
call when another process publishes a change: ``deliver(path)``, or
``deliver(None)`` when changes may have been missed (the connection to Redis
was lost meanwhile): the server then notifies the observers of every resource
observed there, with the state it reads now.  It publishes through the
:class:`BusConnection` it gets back; a connection never delivers its own
publications (the server has notified its own observers already).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

__all__ = ["BusConnection", "Deliver", "LocalBus", "NotificationBus"]

logger = logging.getLogger("coapkit.bus")

Deliver = Callable[[str | None], None]
"""What a bus calls when another process published a change: the resource's path, or None
for "anything may have changed"."""


class BusConnection(Protocol):
    """One server's connection to a bus."""

    def publish(self, path: str) -> None:
        """The resource at ``path`` (a site's pattern, ``/sensors/{name}`` included) has a
        new state; returns at once (sent in the background)."""

    async def close(self) -> None:
        """Disconnect; nothing is delivered afterwards."""


class NotificationBus(Protocol):
    """Where servers publish changes and hear of the others' (see the module docstring)."""

    async def connect(self, deliver: Deliver) -> BusConnection:
        """Connect a server: ``deliver`` hears of the changes other connections publish."""


class LocalBus:
    """Connections in one process, delivering each publication to every other connection
    at once (in the same step).  For tests: two :class:`~coapkit.server.Server` objects
    with one ``LocalBus`` behave as two processes on one Redis."""

    def __init__(self) -> None:
        self._connections: list[_LocalConnection] = []

    async def connect(self, deliver: Deliver) -> BusConnection:
        connection = _LocalConnection(self, deliver)
        self._connections.append(connection)
        return connection

    def _publish(self, origin: _LocalConnection, path: str) -> None:
        for connection in list(self._connections):
            if connection is not origin:
                try:
                    connection.deliver(path)
                except Exception:
                    logger.exception("notification bus: delivering %s failed", path)

    def _remove(self, connection: _LocalConnection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)


class _LocalConnection:
    def __init__(self, bus: LocalBus, deliver: Deliver) -> None:
        self.bus = bus
        self.deliver = deliver

    def publish(self, path: str) -> None:
        self.bus._publish(self, path)

    async def close(self) -> None:
        self.bus._remove(self)
