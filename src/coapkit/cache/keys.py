"""Cache keys: which requests a stored response may answer (RFC 7252 §5.4.6, §5.6).

A stored response answers a later request when the two requests match "in all
options that are part of the cache key" (RFC 7252 §5.6) and ask for the same
target.  Whether an option is part of the cache key is a property of its
number (§5.4.6, the NoCacheKey bits), so unknown options take part or not
without being understood; on top of that this module leaves out the options
whose meaning a caching proxy handles itself:

* the target (Uri-Host, Uri-Port, Uri-Path, Uri-Query, Proxy-Uri,
  Proxy-Scheme) is given whole, as a normalised URI: two requests naming the
  same URI in different ways (Proxy-Uri, or Proxy-Scheme with Uri-* options)
  are the same request;
* ETag: a request's ETags ask for validation (§5.6.2, §5.10.6.2), which the
  cache answers from the stored response, so a request with and one without
  them share the entry;
* Observe (RFC 7641 §2: "not part of the cache-key"), Block1, Block2, Size1,
  Size2 and Request-Tag (RFC 7959, RFC 9175: the cache stores whole
  representations, reassembled), Hop-Limit (RFC 8768: the proxy decrements
  it; requests that travelled differently ask the same thing), No-Response
  (RFC 7967: how to answer, not what) and Echo (NoCacheKey by its number).

FETCH (RFC 8132 §2) is cacheable and its payload is part of the key; for GET
the payload is not (a GET has none).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeAlias

from coapkit.codec.codes import Code
from coapkit.codec.option_registry import OptionNumber, is_no_cache_key
from coapkit.codec.options import Options

__all__ = ["CACHEABLE_METHODS", "CacheKey", "cache_key", "key_options"]

N = OptionNumber

#: Methods whose responses may be stored (RFC 7252 §5.6: GET; RFC 8132 §2: FETCH).
CACHEABLE_METHODS = frozenset({Code.GET, Code.FETCH})

#: Options left out of the key although their number would put them in (see the module doc).
_HANDLED = frozenset(
    {
        N.URI_HOST,
        N.URI_PORT,
        N.URI_PATH,
        N.URI_QUERY,
        N.PROXY_URI,
        N.PROXY_SCHEME,
        N.ETAG,
        N.OBSERVE,
        N.BLOCK1,
        N.BLOCK2,
        N.Q_BLOCK1,
        N.Q_BLOCK2,
        N.REQUEST_TAG,
        N.HOP_LIMIT,
        N.NO_RESPONSE,
    }
)

#: ``(method, target, options, payload)``: hashable, compared by value.
CacheKey: TypeAlias = tuple[int, Hashable, tuple[tuple[int, bytes], ...], bytes]


def key_options(options: Options) -> tuple[tuple[int, bytes], ...]:
    """The options of a request that take part in its cache key, in wire order."""
    return tuple(
        item for item in options.items if item[0] not in _HANDLED and not is_no_cache_key(item[0])
    )


def cache_key(method: int, target: Hashable, options: Options, payload: bytes = b"") -> CacheKey:
    """The key under which the response to a request is stored and looked up.

    ``target`` is the request's URI, normalised (a :class:`~coapkit.codec.uri.CoapUri`,
    or its text).  ``payload`` counts for FETCH only.

    >>> from coapkit.codec.uri import parse_uri
    >>> a = cache_key(Code.GET, parse_uri("coap://h/t"), Options.build(accept=50, etag=[b"1"]))
    >>> b = cache_key(Code.GET, parse_uri("coap://H:5683/t"), Options.build(accept=50))
    >>> a == b
    True
    """
    return (
        method,
        target,
        key_options(options),
        payload if method == Code.FETCH else b"",
    )
