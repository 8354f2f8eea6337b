"""Where a resource directory keeps its registrations: one small interface, two back ends.

:class:`Store` is everything the directory asks of its storage; the SQLite store
(:mod:`coapkit.rd.sqlite_store`, the default: a file, no set-up) and the Redis store
(:mod:`coapkit.rd.redis_store`: several directory processes sharing one directory) both
implement it and pass the same tests (tests/rd/test_store.py).

The rules every store keeps:

* Time is an argument (``now``, seconds since the epoch): a registration whose
  ``expires`` is not after ``now`` is gone for every read, whether or not it has been
  purged yet.  No timer per registration: SQLite compares timestamps in its queries
  and purges in batches (:meth:`Store.purge`), Redis lets key TTLs run out.
* A write is complete or absent: a registration is acknowledged only once the store
  has it (SQLite: committed; Redis: the transaction executed), and a failed one leaves
  nothing behind.
* ``(sector, ep)`` is unique: :meth:`Store.register` replaces a live registration of
  the same name, keeping its id (its registration resource), or creates one.
* Lookups filter by :func:`coapkit.rd.model.index_entries` and match values by
  :func:`coapkit.rd.model.value_matches`, and page in id order, then link order.
"""

from __future__ import annotations

from typing import Protocol

from coapkit.codec.link_format import Link
from coapkit.rd.model import Lookup, Registration

__all__ = ["Store", "open_store"]


class Store(Protocol):
    """The storage of a resource directory (see the module doc for the rules)."""

    async def open(self) -> None:
        """Connect, create what is missing; idempotent."""

    async def close(self) -> None:
        """Let go of the connection; the data stays."""

    async def register(self, registration: Registration, now: float) -> Registration:
        """Store a registration: it replaces a live one of the same ``(sector, ep)`` and
        takes its id; otherwise it gets a new id, never one used before.  The
        registration's own ``id`` is ignored; the stored one is returned."""

    async def get(self, id: int, now: float) -> Registration | None:
        """The live registration ``id``, links included; None when there is none."""

    async def find(self, sector: str, ep: str, now: float) -> Registration | None:
        """The live registration of ``ep`` in ``sector``, links included."""

    async def update(self, registration: Registration, now: float) -> bool:
        """Write a changed registration over the live one of the same id (an update,
        RFC 9176 §5.3.1: lifetime, base, attributes, links); False when it is gone."""

    async def remove(self, id: int) -> bool:
        """Delete a registration; False when there was none."""

    async def endpoints(self, lookup: Lookup, now: float) -> list[Registration]:
        """The live registrations that pass the lookup's filters, in id order, paged;
        their ``links`` are left empty (an endpoint lookup does not show them)."""

    async def resources(self, lookup: Lookup, now: float) -> list[Link]:
        """The resolved links (:func:`coapkit.rd.model.resolved_links`) that pass the
        lookup's filters, in id then link order, paged."""

    async def count(self, now: float, source: str | None = None) -> int:
        """Live registrations, all of them or those made from ``source``."""

    async def purge(self, now: float) -> int:
        """Remove what has expired (reads already ignore it); how many went."""


async def open_store(spec: str) -> Store:
    """The store named by ``spec``: ``redis://HOST:PORT/N`` for Redis, anything else
    a path of a SQLite file (``:memory:`` for one that lives as long as the process);
    opened."""
    store: Store
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from coapkit.rd.redis_store import RedisStore

        store = RedisStore(spec)
    else:
        from coapkit.rd.sqlite_store import SQLiteStore

        store = SQLiteStore(spec)
    await store.open()
    return store
