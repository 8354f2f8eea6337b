"""A response cache for a proxy (RFC 7252 §5.6, §5.7.1, §5.9, §5.10.5-§5.10.6), sans I/O.

Theory of operation
-------------------
:class:`ResponseCache` maps a :data:`~coapkit.cache.keys.CacheKey` to one
stored response.  It never reads a clock: every call takes ``now`` (seconds,
any monotonic origin), so the same code runs on the asyncio loop's clock and
on the virtual clock of the tests.

* **What is stored** (:meth:`ResponseCache.store`): responses to GET and
  FETCH whose code is cacheable: 2.05 Content (§5.9.1.5) and the error
  classes 4.xx and 5.xx (§5.9.2, §5.9.3: "cacheable"); never 2.01, 2.02,
  2.04 (§5.9.1: not cacheable), never a success code coapkit does not know
  (§5.6), never a response protected by OSCORE (RFC 8613 §4.2: the proxy
  cannot read it, and its Max-Age is the outer one).  A response with
  Max-Age 0 is stored only when it has an ETag: it is stale at once, but can
  be validated.  The Observe, Block1, Block2, Size1 and Size2 options are
  dropped: the cache holds whole representations.
* **Freshness** (§5.6.1): a response is fresh for its Max-Age (60 s when it
  has none, §5.10.5) after it was stored.  Served from the cache, its Max-Age
  is what is left of that (§5.7.1: "the Max-Age ... MUST be adjusted"),
  rounded down.
* **Validation** (§5.6.2): :meth:`ResponseCache.lookup` returns a stale entry
  when it has an ETag, for the caller to send its ETag upstream; a 2.03 Valid
  then refreshes it (:meth:`ResponseCache.refresh`: the Max-Age and the other
  options the 2.03 carries replace the stored ones, §5.9.1.3).  A stale entry
  without an ETag is dropped when met.
* **Bounds**: at most ``max_entries`` entries and ``max_bytes`` bytes (payload
  and option values); a single response above ``max_entry_bytes`` is not
  stored.  Entries are kept in least-recently-used order (an ordered dict:
  O(1) per operation); storing past a bound evicts from the old end.
* **Statistics** (:class:`CacheStats`): hits (fresh answers), misses (nothing
  usable), validations sent (stale entries looked up) and revalidations (2.03
  answers that refreshed an entry), stores and evictions.
* **Invalidation**: a successful unsafe request (POST, PUT, DELETE...) to a
  target makes its stored responses stale in practice; the caller drops them
  with :meth:`ResponseCache.invalidate` (as HTTP caches do, RFC 9111 §4.4).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from coapkit.cache.keys import CacheKey
from coapkit.codec.codes import Code
from coapkit.codec.option_registry import OptionNumber
from coapkit.errors import OptionValueError
from coapkit.resources.response import Response

__all__ = [
    "DEFAULT_MAX_AGE",
    "CacheConfig",
    "CacheEntry",
    "CacheStats",
    "ResponseCache",
    "is_cacheable",
]

N = OptionNumber

#: Max-Age when a response has none (RFC 7252 §5.10.5).
DEFAULT_MAX_AGE = 60

#: Options of a stored response that describe its transfer, not the representation.
_TRANSFER_OPTIONS = (N.OBSERVE, N.BLOCK1, N.BLOCK2, N.SIZE1, N.SIZE2, N.Q_BLOCK2)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The bounds of a :class:`ResponseCache`."""

    max_entries: int = 1024
    """Responses stored at once; one more evicts the least recently used."""
    max_bytes: int = 8 * 1024 * 1024
    """Bytes of payloads and option values stored at once (8 MiB)."""
    max_entry_bytes: int = 1024 * 1024
    """The largest response stored (1 MiB); larger ones are passed on, not kept."""

    def __post_init__(self) -> None:
        if self.max_entries < 0 or self.max_bytes < 0 or self.max_entry_bytes < 0:
            raise ValueError("cache bounds cannot be negative")


@dataclass(slots=True)
class CacheStats:
    """What a cache did, counted since it was made."""

    hits: int = 0
    """Lookups answered by a fresh stored response."""
    misses: int = 0
    """Lookups that found nothing usable (nothing stored, or stale without an ETag)."""
    validations: int = 0
    """Lookups that found a stale response with an ETag, to validate upstream."""
    revalidations: int = 0
    """Stale responses that a 2.03 Valid made fresh again."""
    stores: int = 0
    """Responses stored (new, or replacing an older one)."""
    evictions: int = 0
    """Responses dropped to stay within the bounds."""


class CacheEntry:
    """One stored response, with the times that decide its freshness."""

    __slots__ = ("_served", "etag", "expires_at", "key", "response", "size", "stored_at")

    def __init__(self, key: CacheKey, response: Response, now: float, max_age: int) -> None:
        self.key = key
        self.response = response  #: as stored: Observe and Block options removed
        self.stored_at = now
        self.expires_at = now + max_age
        self.etag: bytes | None = response.options.get(N.ETAG)
        self.size = _size(response)
        self._served: tuple[int, Response] | None = None

    def __repr__(self) -> str:
        return f"<CacheEntry {self.response!r} expires at {self.expires_at:g}>"

    def fresh(self, now: float) -> bool:
        """Whether the response may be served without asking the origin (§5.6.1)."""
        return now < self.expires_at

    def remaining(self, now: float) -> int:
        """Seconds of freshness left, rounded down (the Max-Age to serve it with)."""
        left = self.expires_at - now
        return int(left) if left > 0 else 0

    def serve(self, now: float) -> Response:
        """The stored response with its Max-Age set to the freshness left (§5.7.1)."""
        remaining = self.remaining(now)
        served = self._served
        if served is not None and served[0] == remaining:
            return served[1]
        response = self.response.replace(max_age=remaining)
        self._served = (remaining, response)
        return response

    def valid(self, now: float) -> Response:
        """A 2.03 Valid confirming this entry's ETag, for a client that holds it (§5.6.2)."""
        return Response(Code.VALID, etag=self.etag, max_age=self.remaining(now))


def _size(response: Response) -> int:
    return len(response.payload) + sum(len(value) for _, value in response.options.items)


def is_cacheable(response: Response) -> bool:
    """Whether the code and options of ``response`` allow storing it (see the module doc)."""
    code = response.code
    if code != Code.CONTENT and not 128 <= code < 192:  # 2.05, 4.xx, 5.xx
        return False
    return N.OSCORE not in response.options


def _max_age(response: Response) -> int | None:
    try:
        value = response.options.max_age
    except OptionValueError:
        return None  # a malformed Max-Age: not worth keeping
    return DEFAULT_MAX_AGE if value is None else value


class ResponseCache:
    """Stored responses by cache key, bounded and least-recently-used; see the module doc.

    >>> from coapkit.cache.keys import cache_key
    >>> from coapkit.codec.options import Options
    >>> cache = ResponseCache()
    >>> key = cache_key(Code.GET, "coap://h/t", Options())
    >>> _ = cache.store(key, Response(payload="21 C", max_age=30), now=100.0)
    >>> cache.lookup(key, now=110.0).serve(110.0).max_age
    20
    >>> cache.lookup(key, now=131.0) is None  # stale, and no ETag to validate it with
    True
    """

    def __init__(self, config: CacheConfig | None = None) -> None:
        self.config = config or CacheConfig()
        self.stats = CacheStats()
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._by_target: dict[Hashable, set[CacheKey]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<ResponseCache {len(self._entries)} entries, {self._bytes} bytes>"

    @property
    def size(self) -> int:
        """Bytes stored (payloads and option values)."""
        return self._bytes

    # -- reading ---------------------------------------------------------------------------

    def lookup(self, key: CacheKey, now: float) -> CacheEntry | None:
        """The entry for ``key``, fresh or stale with an ETag (check :meth:`CacheEntry.fresh`);
        None when there is nothing usable.  Counts a hit, a validation or a miss."""
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        if now < entry.expires_at:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry
        if entry.etag is None:
            self._drop(entry)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.validations += 1
        return entry

    def peek(self, key: CacheKey) -> CacheEntry | None:
        """The entry for ``key`` whatever its state, without counting or reordering."""
        return self._entries.get(key)

    # -- writing ---------------------------------------------------------------------------

    def store(self, key: CacheKey, response: Response, now: float) -> CacheEntry | None:
        """Store ``response`` under ``key`` (replacing what was there); None when it may not
        be stored (its code, OSCORE, Max-Age 0 without ETag, or its size)."""
        if not is_cacheable(response):
            self.remove(key)
            return None
        max_age = _max_age(response)
        options = response.options
        if max_age is None or (max_age == 0 and N.ETAG not in options):
            self.remove(key)
            return None
        if any(number in options for number in _TRANSFER_OPTIONS):
            response = response.replace(options=options.remove(*_TRANSFER_OPTIONS))
        entry = CacheEntry(key, response, now, max_age)
        config = self.config
        if entry.size > config.max_entry_bytes or entry.size > config.max_bytes:
            self.remove(key)
            return None
        self.remove(key)
        self._entries[key] = entry
        self._by_target.setdefault(key[1], set()).add(key)
        self._bytes += entry.size
        self.stats.stores += 1
        self._evict()
        return entry

    def refresh(self, key: CacheKey, valid: Response, now: float) -> CacheEntry | None:
        """A 2.03 Valid for the stored entry's ETag came back: the entry is fresh again for
        the 2.03's Max-Age, its options updated by the 2.03's (§5.9.1.3); None when nothing
        matching is stored.  A 2.03 without an ETag counts as confirming the stored one (the
        caller sent no other)."""
        entry = self._entries.get(key)
        if entry is None or entry.etag is None:
            return None
        tag = valid.options.get(N.ETAG)
        if tag is not None and tag != entry.etag:
            return None
        max_age = _max_age(valid)
        if max_age is None:
            return None
        updates = valid.options.remove(*_TRANSFER_OPTIONS)
        options = entry.response.options
        for number in updates.numbers():
            options = options.set_raw(number, updates.get_all(number))
        fresh = CacheEntry(key, entry.response.replace(options=options), now, max_age)
        self._drop(entry)
        self._entries[key] = fresh
        self._by_target.setdefault(key[1], set()).add(key)
        self._bytes += fresh.size
        self.stats.revalidations += 1
        self._evict()
        return fresh

    def remove(self, key: CacheKey) -> None:
        """Forget the response stored under ``key``, if any."""
        entry = self._entries.get(key)
        if entry is not None:
            self._drop(entry)

    def invalidate(self, target: Hashable) -> int:
        """Forget every response stored for ``target`` (after a successful unsafe request
        to it); returns how many."""
        keys = self._by_target.get(target)
        if not keys:
            return 0
        dropped = 0
        for key in list(keys):
            entry = self._entries.get(key)
            if entry is not None:
                self._drop(entry)
                dropped += 1
        return dropped

    def clear(self) -> None:
        self._entries.clear()
        self._by_target.clear()
        self._bytes = 0

    # -- bounds ------------------------------------------------------------------------------

    def _drop(self, entry: CacheEntry) -> None:
        key = entry.key
        del self._entries[key]
        self._bytes -= entry.size
        keys = self._by_target.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_target[key[1]]

    def _evict(self) -> None:
        config = self.config
        entries = self._entries
        while entries and (len(entries) > config.max_entries or self._bytes > config.max_bytes):
            _, oldest = next(iter(entries.items()))
            self._drop(oldest)
            self.stats.evictions += 1
