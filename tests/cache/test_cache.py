"""The response cache alone, sans I/O: time is an argument (RFC 7252 §5.6)."""

from __future__ import annotations

import pytest

from coapkit import BlockValue, Code, Options, Response
from coapkit.cache import CacheConfig, ResponseCache, cache_key, key_options
from coapkit.codec.uri import parse_uri

TARGET = parse_uri("coap://origin.example/temp")
KEY = cache_key(Code.GET, TARGET, Options())


def content(payload: str = "21 C", **options: object) -> Response:
    return Response(Code.CONTENT, payload, **options)


# -- keys (§5.4.6) ---------------------------------------------------------------------------


def test_the_same_uri_written_differently_is_the_same_key() -> None:
    other = parse_uri("coap://ORIGIN.example:5683/temp")
    assert cache_key(Code.GET, other, Options()) == KEY


def test_options_of_the_key() -> None:
    # Accept is part of the key; ETag, Observe, Block2, Hop-Limit, Size2 and the target's
    # options are not.
    with_accept = cache_key(Code.GET, TARGET, Options.build(accept=50))
    assert with_accept != KEY
    handled = Options.build(
        etag=[b"x"],
        observe=0,
        block2=BlockValue(0, False, 6),
        hop_limit=3,
        size2=0,
        uri_path=["temp"],
    )
    assert key_options(handled) == ()
    assert cache_key(Code.GET, TARGET, handled) == KEY


def test_unknown_options_count_by_their_number() -> None:
    # 65000 (0xFDE8): safe to forward, not NoCacheKey: part of the key.  65020 (0xFDFC) has
    # the NoCacheKey pattern (bits 0x1E == 0x1C): not.
    assert cache_key(Code.GET, TARGET, Options([(65000, b"a")])) != KEY
    assert cache_key(Code.GET, TARGET, Options([(65020, b"a")])) == KEY


def test_fetch_payload_is_part_of_the_key_get_payload_is_not() -> None:
    assert cache_key(Code.FETCH, TARGET, Options(), b"a") != cache_key(
        Code.FETCH, TARGET, Options(), b"b"
    )
    assert cache_key(Code.GET, TARGET, Options(), b"a") == KEY


# -- freshness (§5.6.1) ----------------------------------------------------------------------


def test_fresh_for_max_age_then_gone_without_an_etag() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(max_age=30), now=100.0)
    entry = cache.lookup(KEY, now=129.5)
    assert entry is not None and entry.fresh(129.5)
    assert entry.serve(129.5).max_age == 0  # rounded down: 0.5 s left
    assert entry.serve(110.0).max_age == 20
    assert cache.lookup(KEY, now=130.0) is None  # stale, nothing to validate it with
    assert len(cache) == 0
    assert cache.stats.hits == 1 and cache.stats.misses == 1


def test_default_max_age_is_60_seconds() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(), now=0.0)
    assert cache.lookup(KEY, now=59.9) is not None
    assert cache.lookup(KEY, now=60.0) is None


def test_serving_reuses_the_response_while_the_max_age_is_the_same() -> None:
    cache = ResponseCache()
    entry = cache.store(KEY, content(max_age=30), now=0.0)
    assert entry is not None
    assert entry.serve(1.2) is entry.serve(1.7)
    assert entry.serve(2.1).max_age == 27


# -- what is not stored (§5.9, RFC 8613) -------------------------------------------------------


@pytest.mark.parametrize("code", [Code.CREATED, Code.DELETED, Code.CHANGED, Code.VALID, 70])
def test_non_cacheable_codes_are_not_stored(code: int) -> None:
    cache = ResponseCache()
    assert cache.store(KEY, Response(code, b"x"), now=0.0) is None
    assert len(cache) == 0


@pytest.mark.parametrize("code", [Code.CONTENT, Code.NOT_FOUND, Code.INTERNAL_SERVER_ERROR])
def test_content_and_errors_are_stored(code: int) -> None:
    cache = ResponseCache()
    assert cache.store(KEY, Response(code, b"x"), now=0.0) is not None


def test_oscore_protected_responses_are_not_stored() -> None:
    cache = ResponseCache()
    assert cache.store(KEY, content(oscore=b"\x09"), now=0.0) is None


def test_max_age_zero_is_stored_only_with_an_etag() -> None:
    cache = ResponseCache()
    assert cache.store(KEY, content(max_age=0), now=0.0) is None
    assert cache.store(KEY, content(max_age=0, etag=b"v1"), now=0.0) is not None
    entry = cache.lookup(KEY, now=0.0)
    assert entry is not None and not entry.fresh(0.0)  # stale at once, to validate


def test_a_non_cacheable_answer_removes_what_was_stored() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(), now=0.0)
    cache.store(KEY, Response(Code.CHANGED), now=1.0)
    assert len(cache) == 0


def test_transfer_options_are_not_stored() -> None:
    cache = ResponseCache()
    entry = cache.store(KEY, content(observe=7, block2=BlockValue(0, False, 6), size2=4), now=0.0)
    assert entry is not None
    assert entry.response.options == Options.build(content_format=0)


# -- validation (§5.6.2) -----------------------------------------------------------------------


def test_stale_with_an_etag_is_validated_and_refreshed_by_2_03() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(max_age=10, etag=b"v1"), now=0.0)
    stale = cache.lookup(KEY, now=20.0)
    assert stale is not None and not stale.fresh(20.0) and stale.etag == b"v1"
    assert cache.stats.validations == 1
    valid = Response(Code.VALID, etag=b"v1", max_age=50)
    fresh = cache.refresh(KEY, valid, now=20.0)
    assert fresh is not None and fresh.fresh(69.0) and not fresh.fresh(70.0)
    served = fresh.serve(20.0)
    assert served.code == Code.CONTENT and served.text == "21 C" and served.max_age == 50
    assert cache.stats.revalidations == 1


def test_a_2_03_for_another_etag_refreshes_nothing() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(max_age=10, etag=b"v1"), now=0.0)
    assert cache.refresh(KEY, Response(Code.VALID, etag=b"v2"), now=20.0) is None
    assert cache.stats.revalidations == 0


def test_valid_answers_a_client_holding_the_etag() -> None:
    cache = ResponseCache()
    entry = cache.store(KEY, content(max_age=10, etag=b"v1"), now=0.0)
    assert entry is not None
    valid = entry.valid(4.0)
    assert valid.code == Code.VALID and valid.etag == b"v1" and valid.max_age == 6


# -- bounds and LRU --------------------------------------------------------------------------


def key_of(number: int) -> tuple[int, object, tuple[tuple[int, bytes], ...], bytes]:
    return cache_key(Code.GET, TARGET.with_path(str(number)), Options())


def test_entries_are_bounded_least_recently_used_first() -> None:
    cache = ResponseCache(CacheConfig(max_entries=3))
    for number in range(3):
        cache.store(key_of(number), content(str(number)), now=0.0)
    assert cache.lookup(key_of(0), now=1.0) is not None  # 0 is now the most recent
    cache.store(key_of(3), content("3"), now=2.0)
    assert len(cache) == 3 and cache.stats.evictions == 1
    assert cache.peek(key_of(1)) is None  # the least recently used went
    assert all(cache.peek(key_of(n)) is not None for n in (0, 2, 3))


def test_bytes_are_bounded() -> None:
    cache = ResponseCache(CacheConfig(max_bytes=1000, max_entry_bytes=600))
    cache.store(key_of(0), Response(payload=bytes(400)), now=0.0)
    cache.store(key_of(1), Response(payload=bytes(400)), now=0.0)
    assert len(cache) == 2 and cache.size == 800
    cache.store(key_of(2), Response(payload=bytes(400)), now=0.0)
    assert len(cache) == 2 and cache.size == 800 and cache.peek(key_of(0)) is None
    assert cache.store(key_of(3), Response(payload=bytes(601)), now=0.0) is None  # too big
    assert cache.size == 800


def test_invalidate_drops_every_response_of_a_target() -> None:
    cache = ResponseCache()
    cache.store(KEY, content(), now=0.0)
    cache.store(cache_key(Code.GET, TARGET, Options.build(accept=0)), content(), now=0.0)
    cache.store(key_of(9), content(), now=0.0)
    assert cache.invalidate(TARGET) == 2
    assert len(cache) == 1 and cache.invalidate(TARGET) == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CacheConfig(max_entries=-1)
