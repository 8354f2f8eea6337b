"""The proxy's cache on the virtual clock: freshness, revalidation, eviction, coalescing."""

from __future__ import annotations

import asyncio

from coapkit import CON, Code, Message, Options, Request, Response
from coapkit.cache import CacheConfig
from coapkit.proxy import ProxyConfig
from tests.proxy.helpers import proxied

TEMP = "coap://origin/temp"


async def test_fresh_responses_come_from_the_cache() -> None:
    async with proxied() as s:
        first = await s.client.get("coap://proxy", options=s.via(TEMP))
        await asyncio.sleep(10)
        second = await s.client.get("coap://proxy", options=s.via(TEMP))
        assert first.payload == second.payload and s.origin.calls("/temp") == 1
        # served from the cache with the freshness left (RFC 7252 §5.7.1), rounded down
        assert first.max_age == 30 and second.max_age == 19
        stats = s.proxy.cache.stats
        assert (stats.hits, stats.misses) == (1, 1)


async def test_a_stale_response_is_validated_with_its_etag() -> None:
    async with proxied() as s:
        await s.client.get("coap://proxy", options=s.via(TEMP))
        await asyncio.sleep(31)  # Max-Age 30: stale now
        response = await s.client.get("coap://proxy", options=s.via(TEMP))
        assert response.code == Code.CONTENT and response.text == "21 C"
        # the proxy asked with its ETag; the origin said 2.03 without a body
        validation = s.origin.seen[-1]
        assert validation.etags == (b"v1",)
        answers = [m for m in s.sent_upstream() if m.code == Code.VALID]
        assert answers == [] or all(not m.payload for m in answers)
        assert s.proxy.cache.stats.revalidations == 1
        # fresh again for the 2.03's Max-Age
        await asyncio.sleep(20)
        await s.client.get("coap://proxy", options=s.via(TEMP))
        assert s.origin.calls("/temp") == 2


async def test_a_changed_representation_replaces_the_stale_one() -> None:
    async with proxied() as s:
        await s.client.get("coap://proxy", options=s.via(TEMP))
        s.origin.version = 2
        await asyncio.sleep(31)
        response = await s.client.get("coap://proxy", options=s.via(TEMP))
        assert response.text == "22 C" and response.etag == b"v2"
        assert s.proxy.cache.stats.revalidations == 0


async def test_a_client_holding_the_current_etag_gets_2_03() -> None:
    async with proxied() as s:
        await s.client.get("coap://proxy", options=s.via(TEMP))
        options = Options.build(proxy_uri=TEMP, etag=[b"v0", b"v1"])
        response = await s.client.get("coap://proxy", options=options)
        assert response.code == Code.VALID and response.etag == b"v1" and not response.payload
        assert s.origin.calls("/temp") == 1
        # without a stored response the client's ETags go upstream, and the 2.03 comes back
        await asyncio.sleep(31)
        s.proxy.cache.clear()
        response = await s.client.get("coap://proxy", options=options)
        assert response.code == Code.VALID and s.origin.seen[-1].etags == (b"v0", b"v1")


async def test_no_etag_means_fetching_again_once_stale() -> None:
    async with proxied() as s:
        for _ in range(2):
            response = await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
            assert response.max_age in (4, 5)
        await asyncio.sleep(6)
        await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert s.origin.calls("/plain") == 2


async def test_the_least_recently_used_response_is_evicted() -> None:
    config = ProxyConfig(cache=CacheConfig(max_entries=2))
    async with proxied(config=config) as s:
        for path in ("temp", "plain", "temp", "echo?x", "plain", "temp"):
            await s.client.get("coap://proxy", options=s.via(f"coap://origin/{path}"))
        # temp, plain stored; temp hit; echo (Max-Age 0) not stored; plain hit; temp hit
        assert s.origin.calls("/temp") == 1 and s.origin.calls("/plain") == 1
        for path in ("big", "temp", "plain"):
            await s.client.get("coap://proxy", options=s.via(f"coap://origin/{path}"))
        # big evicted plain (least recently used), then temp hit, plain fetched again
        assert s.origin.calls("/temp") == 1 and s.origin.calls("/plain") == 2
        assert s.proxy.cache.stats.evictions == 2 and len(s.proxy.cache) == 2


async def test_the_cache_is_bounded_in_bytes() -> None:
    config = ProxyConfig(cache=CacheConfig(max_bytes=6000, max_entry_bytes=5500))
    async with proxied(config=config) as s:
        await s.client.get("coap://proxy", options=s.via("coap://origin/big"))
        await s.client.get("coap://proxy", options=s.via(TEMP))
        assert len(s.proxy.cache) == 2
        await s.client.get("coap://proxy", options=s.via("coap://origin/big?again"))
        assert len(s.proxy.cache) == 2 and s.proxy.cache.size <= 6000


async def test_the_accept_option_keeps_responses_apart() -> None:
    async with proxied() as s:
        await s.client.get("coap://proxy", options=s.via(TEMP), accept=0)
        await s.client.get("coap://proxy", options=s.via(TEMP))
        await s.client.get("coap://proxy", options=s.via(TEMP), accept=0)
        assert s.origin.calls("/temp") == 2


async def test_an_unsafe_request_drops_the_stored_responses_of_its_target() -> None:
    async with proxied() as s:
        await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        put = await s.client.put("coap://proxy", "new", options=s.via("coap://origin/plain"))
        assert put.code == Code.CHANGED and put.text == "PUT new"
        await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert s.origin.calls("/plain") == 3


async def test_concurrent_misses_share_one_upstream_request() -> None:
    async with proxied() as s:
        slow = "coap://origin/slow?s=3"
        clients = [s.net.client() for _ in range(10)]
        for client in clients:
            await client.start()
        try:
            responses = await asyncio.gather(
                *(c.get("coap://proxy", options=s.via(slow)) for c in clients)
            )
        finally:
            for client in clients:
                await client.close()
        assert {r.text for r in responses} == {"done"}
        assert s.origin.calls("/slow") == 1


async def test_oscore_requests_are_forwarded_and_never_cached() -> None:
    # Through the site itself: a coapkit endpoint answers 4.02 to the OSCORE option until
    # coapkit speaks OSCORE, so the request is made here (as the OSCORE layer would hand it).
    async with proxied() as s:
        options = Options.build(proxy_uri="coap://origin/plain", oscore=b"\x09\x00")
        for _ in range(2):
            message = Message(CON, Code.GET, 0, b"", options)
            result = s.proxy.dispatch(Request(message, ("192.0.2.9", 5683)))
            assert not isinstance(result, Response)  # not from the cache: forwarded
            await result
        # (the origin here speaks no OSCORE and answers 4.02, which is cacheable: but not
        # for a protected request)
        forwarded = s.upstream_requests()
        assert len(forwarded) == 2 and all(m.options.oscore == b"\x09\x00" for m in forwarded)
        assert len(s.proxy.cache) == 0


async def test_concurrent_misses_each_go_upstream_without_coalescing() -> None:
    async with proxied(config=ProxyConfig(coalesce=False)) as s:
        slow = "coap://origin/slow?s=3"
        clients = [s.net.client() for _ in range(3)]
        for client in clients:
            await client.start()
        try:
            await asyncio.gather(*(c.get("coap://proxy", options=s.via(slow)) for c in clients))
        finally:
            for client in clients:
                await client.close()
        assert s.origin.calls("/slow") == 3
