"""A response cache for proxies (RFC 7252 §5.6), sans I/O: keys, freshness, validation, bounds.

Part of the core (docs/architecture.md rule 1): it reads no clock (every call
takes ``now``) and does no I/O, so a proxy on the asyncio loop and a test on
the virtual clock run the same code.  :mod:`coapkit.cache.keys` says which
requests share a stored response; :mod:`coapkit.cache.store` keeps them.
"""

from coapkit.cache.keys import CACHEABLE_METHODS, CacheKey, cache_key, key_options
from coapkit.cache.store import (
    DEFAULT_MAX_AGE,
    CacheConfig,
    CacheEntry,
    CacheStats,
    ResponseCache,
    is_cacheable,
)

__all__ = [
    "CACHEABLE_METHODS",
    "DEFAULT_MAX_AGE",
    "CacheConfig",
    "CacheEntry",
    "CacheKey",
    "CacheStats",
    "ResponseCache",
    "cache_key",
    "is_cacheable",
    "key_options",
]
