"""The SQLite store of a resource directory: one file, no set-up, survives restarts.

Theory of operation
-------------------
Three tables: ``registrations`` (one row per registration, ``UNIQUE (sector, ep)``,
its links as the link-format text registered), ``links`` (each link resolved against
the base, as a resource lookup shows it, ready to send) and ``entries`` (what lookups
filter on, :func:`coapkit.rd.model.index_entries`, indexed by name and value).  A
registration and its rows are written in one transaction: a crash leaves either all
of them or none.

The database is in WAL mode with ``synchronous=NORMAL`` by default: a committed
transaction survives the process being killed (it is in the WAL, which the next open
replays), though not a power cut between the commit and the next checkpoint; pass
``synchronous="FULL"`` for that too, at the cost of an fsync per registration.

Expiry is by timestamp: every read asks for ``expires > now``, so an expired
registration is gone the instant it expires whatever the purge has done;
:meth:`SQLiteStore.purge` deletes expired rows in one statement per table, called
by the directory once a minute.  No timer per registration, and nothing kept in
memory per registration: the process's memory does not grow with the directory.

sqlite3 blocks.  Every query runs on one worker thread of the store's own, which
also owns the connection, so the event loop never waits for the disk; the queries
are short (an indexed lookup, or a few inserts in one transaction), so one thread is
enough and keeps them in order.  ``thread=False`` runs them on the loop instead: for
tests in virtual time, whose clock must not move while a thread works (a
registration's queries take well under a millisecond, bench/bench_rd.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from coapkit.codec.link_format import Link, parse_link_format, serialize_link_format
from coapkit.rd.model import (
    Lookup,
    Registration,
    index_entries,
    pack_attributes,
    pack_links,
    resolved_links,
    unpack_attributes,
    unpack_links,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sector TEXT NOT NULL,
    ep TEXT NOT NULL,
    base TEXT NOT NULL,
    explicit_base INTEGER NOT NULL,
    lifetime INTEGER NOT NULL,
    expires REAL NOT NULL,
    attributes TEXT NOT NULL,
    links TEXT NOT NULL,
    source TEXT NOT NULL,
    owner TEXT,
    UNIQUE (sector, ep)
);
CREATE INDEX IF NOT EXISTS registrations_expires ON registrations (expires);
CREATE INDEX IF NOT EXISTS registrations_source ON registrations (source, expires);
CREATE TABLE IF NOT EXISTS links (
    reg INTEGER NOT NULL,
    position INTEGER NOT NULL,
    link TEXT NOT NULL,
    PRIMARY KEY (reg, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    reg INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_value ON entries (name, value, reg, position);
CREATE INDEX IF NOT EXISTS entries_by_reg ON entries (reg, name, value, position);
"""

_COLUMNS = (
    "id, sector, ep, base, explicit_base, lifetime, expires, attributes, {links}, source, owner"
)
_WITH_LINKS = _COLUMNS.format(links="links")
_WITHOUT_LINKS = _COLUMNS.format(links="''")

#: above every character: the upper bound of a prefix range (BINARY collation, UTF-8)
_TOP = "\U0010ffff"


def _row(row: tuple[Any, ...]) -> Registration:
    return Registration(
        id=row[0],
        sector=row[1],
        ep=row[2],
        base=row[3],
        explicit_base=bool(row[4]),
        lifetime=row[5],
        expires=row[6],
        attributes=unpack_attributes(row[7]),
        links=unpack_links(row[8]),
        source=row[9],
        owner=row[10],
    )


def _condition(name: str, pattern: str | None, link_column: str | None) -> tuple[str, list[object]]:
    """An EXISTS clause for one filter over ``entries``; ``link_column`` is the link
    position a resource lookup is at (entries of the registration, 0, match too)."""
    where = ["e.name = ?"]
    values: list[object] = [name]
    if pattern is not None:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            if prefix:
                where.append("e.value >= ? AND e.value < ?")
                values += [prefix, prefix + _TOP]
        else:
            where.append("e.value = ?")
            values.append(pattern)
    if link_column is None:
        clause = "r.id IN (SELECT e.reg FROM entries e WHERE " + " AND ".join(where) + ")"
    else:
        where.append(f"e.position IN (0, {link_column})")
        clause = "EXISTS (SELECT 1 FROM entries e WHERE e.reg = r.id AND " + " AND ".join(where)
        clause += ")"
    return clause, values


class SQLiteStore:
    """A :class:`~coapkit.rd.store.Store` in a SQLite file (``":memory:"``: in memory).

    ``synchronous``: SQLite's ``PRAGMA synchronous`` (``"NORMAL"``: a committed
    registration survives the process being killed; ``"FULL"``: a power cut too).
    """

    def __init__(self, path: str, *, synchronous: str = "NORMAL", thread: bool = True) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous is OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = path
        self.synchronous = synchronous.upper()
        self.thread = thread
        self._open = False
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    # -- the worker thread ----------------------------------------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if not self._open:
            raise RuntimeError("the store is not open")
        if self._executor is None:
            return function(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))

    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None
        return self._connection

    def _connect(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA busy_timeout=5000")  # another process writing: wait for it
        connection.executescript(_SCHEMA)
        self._connection = connection

    async def open(self) -> None:
        if self._open:
            return
        if self.thread:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="coapkit-rd-sqlite")
        self._open = True
        try:
            await self._run(self._connect)
        except BaseException:
            self._open = False
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None
            raise

    async def close(self) -> None:
        if not self._open:
            return

        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._run(close)
        self._open = False
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- writes ---------------------------------------------------------------------------------

    def _write_rows(self, db: sqlite3.Connection, registration: Registration) -> None:
        rid = registration.id
        db.executemany(
            "INSERT INTO links (reg, position, link) VALUES (?, ?, ?)",
            [
                (rid, position, serialize_link_format([link]))
                for position, link in enumerate(resolved_links(registration), start=1)
            ],
        )
        db.executemany(
            "INSERT INTO entries (reg, position, name, value) VALUES (?, ?, ?, ?)",
            [(rid, position, name, value) for position, name, value in index_entries(registration)],
        )

    def _delete_rows(self, db: sqlite3.Connection, rid: int) -> None:
        db.execute("DELETE FROM links WHERE reg = ?", (rid,))
        db.execute("DELETE FROM entries WHERE reg = ?", (rid,))

    def _register(self, registration: Registration, now: float) -> Registration:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT id, expires FROM registrations WHERE sector = ? AND ep = ?",
                (registration.sector, registration.ep),
            ).fetchone()
            values = (
                registration.base,
                int(registration.explicit_base),
                registration.lifetime,
                registration.expires,
                pack_attributes(registration.attributes),
                pack_links(registration.links),
                registration.source,
                registration.owner,
            )
            if row is not None and row[1] > now:  # a live registration of that name
                rid = row[0]
                db.execute(
                    "UPDATE registrations SET base = ?, explicit_base = ?, lifetime = ?, "
                    "expires = ?, attributes = ?, links = ?, source = ?, owner = ? WHERE id = ?",
                    (*values, rid),
                )
                self._delete_rows(db, rid)
            else:
                if row is not None:  # expired, not purged yet: gone, its id with it
                    db.execute("DELETE FROM registrations WHERE id = ?", (row[0],))
                    self._delete_rows(db, row[0])
                cursor = db.execute(
                    "INSERT INTO registrations (sector, ep, base, explicit_base, lifetime, "
                    "expires, attributes, links, source, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (registration.sector, registration.ep, *values),
                )
                assert cursor.lastrowid is not None
                rid = cursor.lastrowid
            stored = registration.with_changes(id=rid)
            self._write_rows(db, stored)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return stored

    async def register(self, registration: Registration, now: float) -> Registration:
        return await self._run(self._register, registration, now)

    def _update(self, registration: Registration, now: float) -> bool:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "UPDATE registrations SET base = ?, explicit_base = ?, lifetime = ?, "
                "expires = ?, attributes = ?, links = ?, source = ?, owner = ? "
                "WHERE id = ? AND expires > ?",
                (
                    registration.base,
                    int(registration.explicit_base),
                    registration.lifetime,
                    registration.expires,
                    pack_attributes(registration.attributes),
                    pack_links(registration.links),
                    registration.source,
                    registration.owner,
                    registration.id,
                    now,
                ),
            )
            if cursor.rowcount != 1:
                db.execute("ROLLBACK")
                return False
            self._delete_rows(db, registration.id)
            self._write_rows(db, registration)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return True

    async def update(self, registration: Registration, now: float) -> bool:
        return await self._run(self._update, registration, now)

    def _remove(self, rid: int) -> bool:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute("DELETE FROM registrations WHERE id = ?", (rid,))
            self._delete_rows(db, rid)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cursor.rowcount > 0

    async def remove(self, id: int) -> bool:
        return await self._run(self._remove, id)

    def _purge(self, now: float) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            expired = "(SELECT id FROM registrations WHERE expires <= ?)"
            db.execute(f"DELETE FROM links WHERE reg IN {expired}", (now,))
            db.execute(f"DELETE FROM entries WHERE reg IN {expired}", (now,))
            cursor = db.execute("DELETE FROM registrations WHERE expires <= ?", (now,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cursor.rowcount

    async def purge(self, now: float) -> int:
        return await self._run(self._purge, now)

    # -- reads ----------------------------------------------------------------------------------

    def _one(self, where: str, values: tuple[object, ...]) -> Registration | None:
        row = (
            self._db()
            .execute(
                f"SELECT {_WITH_LINKS} FROM registrations r WHERE {where} AND expires > ?", values
            )
            .fetchone()
        )
        return None if row is None else _row(row)

    async def get(self, id: int, now: float) -> Registration | None:
        return await self._run(self._one, "id = ?", (id, now))

    async def find(self, sector: str, ep: str, now: float) -> Registration | None:
        return await self._run(self._one, "sector = ? AND ep = ?", (sector, ep, now))

    def _endpoints(self, lookup: Lookup, now: float) -> list[Registration]:
        where = ["r.expires > ?"]
        values: list[object] = [now]
        for name, pattern in lookup.filters:
            clause, more = _condition(name, pattern, None)
            where.append(clause)
            values += more
        limit = -1 if lookup.count is None else lookup.count
        sql = (
            f"SELECT {_WITHOUT_LINKS} FROM registrations r WHERE {' AND '.join(where)} "
            "ORDER BY r.id LIMIT ? OFFSET ?"
        )
        rows = self._db().execute(sql, (*values, limit, lookup.offset)).fetchall()
        return [_row(row) for row in rows]

    async def endpoints(self, lookup: Lookup, now: float) -> list[Registration]:
        return await self._run(self._endpoints, lookup, now)

    def _resources(self, lookup: Lookup, now: float) -> list[Link]:
        where = ["r.expires > ?"]
        values: list[object] = [now]
        for name, pattern in lookup.filters:
            clause, more = _condition(name, pattern, "l.position")
            where.append(clause)
            values += more
        limit = -1 if lookup.count is None else lookup.count
        sql = (
            "SELECT l.link FROM links l JOIN registrations r ON r.id = l.reg "
            f"WHERE {' AND '.join(where)} ORDER BY l.reg, l.position LIMIT ? OFFSET ?"
        )
        rows = self._db().execute(sql, (*values, limit, lookup.offset)).fetchall()
        return [parse_link_format(row[0])[0] for row in rows]

    async def resources(self, lookup: Lookup, now: float) -> list[Link]:
        return await self._run(self._resources, lookup, now)

    def _count(self, now: float, source: str | None) -> int:
        if source is None:
            row = (
                self._db()
                .execute("SELECT COUNT(*) FROM registrations WHERE expires > ?", (now,))
                .fetchone()
            )
        else:
            row = (
                self._db()
                .execute(
                    "SELECT COUNT(*) FROM registrations WHERE source = ? AND expires > ?",
                    (source, now),
                )
                .fetchone()
            )
        return int(row[0])

    async def count(self, now: float, source: str | None = None) -> int:
        return await self._run(self._count, now, source)
