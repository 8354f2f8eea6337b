"""The Redis store of a resource directory: one directory shared by several processes.

Needs ``coapkit[redis]`` (the ``redis`` package's asyncio client); without it, opening
the store fails with one line naming the extra.

Theory of operation
-------------------
Keys, under a prefix (``coapkit:rd:`` by default; ``ID`` is a decimal id):

* ``reg:ID`` - a hash, the registration (its fields as the SQLite columns, plus the
  resolved links) with a TTL: **Redis expires it**, no process has a timer for it;
* ``name:SECTOR-LENGTH:SECTOR:EP`` - the id of the live registration of that name,
  with the same TTL: ``(sector, ep)`` stays unique across processes;
* ``next`` - the last id given (INCR: ids are never reused);
* ``expiry`` - a sorted set of ids by expiry time: the order and the counts of
  lookups, and what :meth:`RedisStore.purge` sweeps; ``source:HOST`` the same per
  source address, for the per-source limit; ``sources`` which host made each id;
* ``index`` - one sorted set of every registration's lookup entries
  (:func:`coapkit.rd.model.index_entries`), each member ``NAME\\0VALUE\\0ID\\0LINK``
  with score 0, so that a filter is one ZRANGEBYLEX: the exact value, a prefix
  (``rt=temp*``), or any value of a name; ``entries:ID`` - a registration's members,
  to take them out again.

Writes go in MULTI/EXEC transactions (a registration is all there or not at all),
those that depend on what is stored under WATCH (another process changing it makes
the transaction retry).  Reads check each id's expiry time against ``now``, so an
expired registration is gone the instant it expires, for every process, before
Redis's TTL or a purge has removed it; the purge (any process, any time: it is
idempotent) takes the expired ids' index entries out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

__all__ = ["RedisStore", "load_redis"]

_SEP = "\x00"


def load_redis() -> Any:
    """The ``redis.asyncio`` module, or an ImportError naming the extra to install."""
    try:
        import redis.asyncio
    except ImportError:
        raise ImportError(
            "a Redis store needs the redis package: pip install 'coapkit[redis]'"
        ) from None
    return redis.asyncio


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _ttl_ms(expires: float, now: float) -> int:
    return max(1, int((expires - now) * 1000))


class RedisStore:
    """A :class:`~coapkit.rd.store.Store` in Redis, at ``url``
    (``redis://HOST:PORT/N``); ``prefix`` starts every key."""

    def __init__(self, url: str, *, prefix: str = "coapkit:rd:") -> None:
        self.url = url
        self.prefix = prefix
        self._redis: Any = None

    def __repr__(self) -> str:
        return f"<RedisStore {self.url}>"

    # -- keys -------------------------------------------------------------------------------

    def _reg(self, rid: int | str) -> str:
        return f"{self.prefix}reg:{rid}"

    def _name(self, sector: str, ep: str) -> str:
        return f"{self.prefix}name:{len(sector)}:{sector}:{ep}"

    def _entries(self, rid: int | str) -> str:
        return f"{self.prefix}entries:{rid}"

    def _source(self, source: str) -> str:
        return f"{self.prefix}source:{source}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}index"

    @property
    def _expiry(self) -> str:
        return f"{self.prefix}expiry"

    @property
    def _sources(self) -> str:
        return f"{self.prefix}sources"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._redis is not None:
            return
        module = load_redis()
        client = module.Redis.from_url(self.url)
        try:
            await client.ping()
        except Exception:
            await client.aclose()
            raise
        self._redis = client

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _db(self) -> Any:
        if self._redis is None:
            raise RuntimeError("the store is not open")
        return self._redis

    # -- encoding ---------------------------------------------------------------------------

    def _members(self, registration: Registration) -> list[str]:
        rid = f"{registration.id:012d}"
        return [
            f"{name}{_SEP}{value}{_SEP}{rid}{_SEP}{position:05d}"
            for position, name, value in index_entries(registration)
            if _SEP not in value and _SEP not in name
        ]

    @staticmethod
    def _fields(registration: Registration) -> dict[str, str]:
        return {
            "sector": registration.sector,
            "ep": registration.ep,
            "base": registration.base,
            "explicit_base": "1" if registration.explicit_base else "0",
            "lifetime": str(registration.lifetime),
            "expires": repr(registration.expires),
            "attributes": pack_attributes(registration.attributes),
            "links": pack_links(registration.links),
            "resolved": serialize_link_format(resolved_links(registration)),
            "source": registration.source,
            "owner": "" if registration.owner is None else "=" + registration.owner,
        }

    @staticmethod
    def _registration(rid: int, raw: dict[Any, Any], *, links: bool = True) -> Registration:
        fields = {_text(key): _text(value) for key, value in raw.items()}
        owner = fields.get("owner", "")
        return Registration(
            id=rid,
            sector=fields["sector"],
            ep=fields["ep"],
            base=fields["base"],
            explicit_base=fields["explicit_base"] == "1",
            lifetime=int(fields["lifetime"]),
            expires=float(fields["expires"]),
            attributes=unpack_attributes(fields["attributes"]),
            links=unpack_links(fields["links"]) if links else (),
            source=fields["source"],
            owner=owner[1:] if owner else None,
        )

    def _write(self, pipe: Any, registration: Registration, now: float, old: Iterable[Any]) -> None:
        """Queue the writes of a registration (in a MULTI): its hash, name, sets, index."""
        rid = registration.id
        ttl = _ttl_ms(registration.expires, now)
        old = list(old)
        if old:
            pipe.zrem(self._index, *old)
        pipe.delete(self._entries(rid))
        pipe.delete(self._reg(rid))
        pipe.hset(self._reg(rid), mapping=self._fields(registration))
        pipe.pexpire(self._reg(rid), ttl)
        pipe.set(self._name(registration.sector, registration.ep), str(rid), px=ttl)
        pipe.zadd(self._expiry, {str(rid): registration.expires})
        pipe.zadd(self._source(registration.source), {str(rid): registration.expires})
        pipe.hset(self._sources, str(rid), registration.source)
        members = self._members(registration)
        if members:
            pipe.zadd(self._index, dict.fromkeys(members, 0))
            pipe.sadd(self._entries(rid), *members)

    async def _previous_source(self, pipe: Any, rid: int | str) -> str | None:
        value = await pipe.hget(self._sources, str(rid))
        return None if value is None else _text(value)

    # -- writes -----------------------------------------------------------------------------

    async def register(self, registration: Registration, now: float) -> Registration:
        db = self._db()
        module = load_redis()
        name = self._name(registration.sector, registration.ep)
        async with db.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(name)
                    current = await pipe.get(name)
                    rid: int | None = None
                    if current is not None:
                        candidate = int(_text(current))
                        score = await pipe.zscore(self._expiry, str(candidate))
                        if score is not None and score > now:
                            rid = candidate
                            await pipe.watch(self._reg(rid), self._entries(rid))
                    old: list[Any] = []
                    old_source = None
                    if rid is None:
                        rid = int(await db.incr(f"{self.prefix}next"))
                    else:
                        old = list(await pipe.smembers(self._entries(rid)))
                        old_source = await self._previous_source(pipe, rid)
                    stored = registration.with_changes(id=rid)
                    pipe.multi()
                    if old_source is not None and old_source != stored.source:
                        pipe.zrem(self._source(old_source), str(rid))
                    self._write(pipe, stored, now, old)
                    await pipe.execute()
                    return stored
                except module.WatchError:
                    continue

    async def update(self, registration: Registration, now: float) -> bool:
        db = self._db()
        module = load_redis()
        rid = registration.id
        async with db.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._reg(rid), self._entries(rid))
                    score = await pipe.zscore(self._expiry, str(rid))
                    if score is None or score <= now or not await pipe.exists(self._reg(rid)):
                        await pipe.reset()
                        return False
                    old = list(await pipe.smembers(self._entries(rid)))
                    old_source = await self._previous_source(pipe, rid)
                    pipe.multi()
                    if old_source is not None and old_source != registration.source:
                        pipe.zrem(self._source(old_source), str(rid))
                    self._write(pipe, registration, now, old)
                    await pipe.execute()
                    return True
                except module.WatchError:
                    continue

    async def _drop(self, rid: int, *, only_if_live_after: float | None = None) -> bool:
        """Remove registration ``rid`` and everything about it; whether it was there
        (its hash, or with ``only_if_live_after`` its expiry above that time)."""
        db = self._db()
        module = load_redis()
        async with db.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._reg(rid), self._entries(rid))
                    raw = await pipe.hmget(self._reg(rid), ["sector", "ep"])
                    members = list(await pipe.smembers(self._entries(rid)))
                    source = await self._previous_source(pipe, rid)
                    score = await pipe.zscore(self._expiry, str(rid))
                    name = None
                    if raw[0] is not None and raw[1] is not None:
                        name = self._name(_text(raw[0]), _text(raw[1]))
                        await pipe.watch(name)
                        if await pipe.get(name) not in (str(rid).encode(), str(rid)):
                            name = None
                    pipe.multi()
                    pipe.delete(self._reg(rid), self._entries(rid))
                    if name is not None:
                        pipe.delete(name)
                    if members:
                        pipe.zrem(self._index, *members)
                    pipe.zrem(self._expiry, str(rid))
                    pipe.hdel(self._sources, str(rid))
                    if source is not None:
                        pipe.zrem(self._source(source), str(rid))
                    await pipe.execute()
                    if only_if_live_after is not None:
                        return score is not None and score > only_if_live_after
                    return raw[0] is not None
                except module.WatchError:
                    continue

    async def remove(self, id: int) -> bool:
        return await self._drop(id)

    async def purge(self, now: float) -> int:
        db = self._db()
        expired = await db.zrangebyscore(self._expiry, "-inf", now)
        for rid in expired:
            await self._drop(int(_text(rid)))
        return len(expired)

    # -- reads ------------------------------------------------------------------------------

    async def _live(self, ids: list[int], now: float) -> list[int]:
        if not ids:
            return []
        scores = await self._db().zmscore(self._expiry, [str(rid) for rid in ids])
        return [
            rid for rid, score in zip(ids, scores, strict=True) if score is not None and score > now
        ]

    async def get(self, id: int, now: float) -> Registration | None:
        if not await self._live([id], now):
            return None
        raw = await self._db().hgetall(self._reg(id))
        return self._registration(id, raw) if raw else None

    async def find(self, sector: str, ep: str, now: float) -> Registration | None:
        current = await self._db().get(self._name(sector, ep))
        return None if current is None else await self.get(int(_text(current)), now)

    async def _hits(self, name: str, pattern: str | None) -> dict[int, set[int]]:
        """The (id, link positions) whose entries pass one filter."""
        head = f"{name}{_SEP}"
        high: str | bytes
        if pattern is None:
            low, high = f"[{head}", f"({name}\x01"
        elif pattern.endswith("*"):  # UTF-8 has no byte 0xFF: above every continuation
            low, high = f"[{head}{pattern[:-1]}", f"({head}{pattern[:-1]}".encode() + b"\xff"
        else:
            low, high = f"[{head}{pattern}{_SEP}", f"({head}{pattern}\x01"
        hits: dict[int, set[int]] = {}
        for member in await self._db().zrangebylex(self._index, low, high):
            parts = _text(member).rsplit(_SEP, 2)
            hits.setdefault(int(parts[1]), set()).add(int(parts[2]))
        return hits

    async def _all_live(self, now: float) -> list[int]:
        ids = await self._db().zrangebyscore(self._expiry, f"({now!r}", "+inf")
        return sorted(int(_text(rid)) for rid in ids)

    async def _matching(self, lookup: Lookup, now: float) -> tuple[list[int], dict[int, set[int]]]:
        """The live ids passing every filter, and for each the link positions that do
        (absent: every link)."""
        if not lookup.filters:
            return await self._all_live(now), {}
        candidates: set[int] | None = None
        narrowed: dict[int, set[int]] = {}
        for name, pattern in lookup.filters:
            hits = await self._hits(name, pattern)
            candidates = set(hits) if candidates is None else candidates & set(hits)
            for rid, found in hits.items():
                if 0 not in found:
                    narrowed[rid] = narrowed[rid] & found if rid in narrowed else set(found)
        live = await self._live(sorted(candidates or ()), now)
        return live, {rid: narrowed[rid] for rid in live if rid in narrowed}

    async def endpoints(self, lookup: Lookup, now: float) -> list[Registration]:
        ids, _ = await self._matching(lookup, now)
        end = None if lookup.count is None else lookup.offset + lookup.count
        page = ids[lookup.offset : end]
        async with self._db().pipeline(transaction=False) as pipe:
            for rid in page:
                pipe.hgetall(self._reg(rid))
            raws = await pipe.execute()
        return [
            self._registration(rid, raw, links=False)
            for rid, raw in zip(page, raws, strict=True)
            if raw
        ]

    async def resources(self, lookup: Lookup, now: float) -> list[Link]:
        ids, narrowed = await self._matching(lookup, now)
        async with self._db().pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hget(self._reg(rid), "resolved")
            texts = await pipe.execute()
        found: list[Link] = []
        for rid, text in zip(ids, texts, strict=True):
            if text is None:
                continue
            links = parse_link_format(_text(text))
            wanted = narrowed.get(rid)
            found.extend(
                link
                for position, link in enumerate(links, start=1)
                if wanted is None or position in wanted
            )
        end = None if lookup.count is None else lookup.offset + lookup.count
        return found[lookup.offset : end]

    async def count(self, now: float, source: str | None = None) -> int:
        key = self._expiry if source is None else self._source(source)
        return int(await self._db().zcount(key, f"({now!r}", "+inf"))
