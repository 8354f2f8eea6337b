"""HTTP clients through the cross proxy (RFC 8075) to a coapkit server, over loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import aiohttp
import pytest
from yarl import URL

from coapkit import Client, Code, Options
from coapkit.proxy.http import HttpCrossProxy
from tests.proxy_live.helpers import live


async def test_get_maps_2_05_to_200_with_the_content_type_etag_and_max_age() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        async with http.get(s.hc("/hello")) as answer:
            assert answer.status == 200 and await answer.text() == "hello"
            assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert answer.headers["ETag"] == '"6831"'
            assert answer.headers["Cache-Control"] == "max-age=30"
        async with http.get(s.hc("/data")) as answer:
            assert answer.content_type == "application/json"
            assert await answer.json() == {"t": 21.5}
        async with http.get(s.hc("/binary")) as answer:
            assert answer.content_type == "application/octet-stream"
            assert await answer.read() == bytes(range(8))


async def test_not_found_is_404_and_a_conditional_get_is_304() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        async with http.get(s.hc("/nothing")) as answer:
            assert answer.status == 404 and await answer.text() == "not found"
        async with http.get(s.hc("/hello"), headers={"If-None-Match": '"6831"'}) as answer:
            assert answer.status == 304 and answer.headers["ETag"] == '"6831"'
        async with http.get(s.hc("/hello"), headers={"If-None-Match": '"00"'}) as answer:
            assert answer.status == 200


async def test_post_with_a_body() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        async with http.post(
            s.hc("/items"), data="a thing", headers={"Content-Type": "text/plain"}
        ) as answer:
            assert answer.status == 201 and await answer.text() == "got a thing"
            assert answer.headers["Location"] == "/items/7"
        async with http.post(
            s.hc("/items"), data=b"x", headers={"Content-Type": "text/html"}
        ) as answer:
            assert answer.status == 415  # no CoAP Content-Format for it


async def test_a_dead_upstream_is_502_or_504() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        with __import__("socket").socket(2, 2) as hole:  # a UDP port nobody answers on
            hole.bind(("127.0.0.1", 0))
            port = hole.getsockname()[1]
        async with http.get(f"{s.http.url}/hc/coap://127.0.0.1:{port}/x") as answer:
            assert answer.status in (502, 504)
            assert answer.headers["Cache-Control"] == "max-age=0"
            assert "127.0.0.1" in await answer.text()


async def test_target_forms_and_refusals() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        origin = s.origin_uri
        encoded = origin.replace(":", "%3A").replace("/", "%2F")
        for url in (
            f"{s.http.url}/hc/{encoded}%2Fhello",
            f"{s.http.url}/hc/?target_uri={origin}/hello",
        ):
            async with http.get(url) as answer:
                assert (answer.status, await answer.text()) == (200, "hello"), url
        async with http.get(f"{s.http.url}/hc/ftp://h/x") as answer:
            assert answer.status == 502
        async with http.get(URL(f"{s.http.url}/hc/coap://h/%zz", encoded=True)) as answer:
            assert answer.status == 400
        async with http.get(f"{s.http.url}/hc/http://h/x") as answer:
            assert answer.status == 400
        async with http.request("OPTIONS", s.hc("/hello")) as answer:
            assert answer.status == 501
        async with http.head(s.hc("/hello")) as answer:
            assert answer.status == 200 and answer.headers["ETag"] == '"6831"'


async def test_forwarding_off_and_allow_list_apply_to_http_too() -> None:
    for options, reason in (({"forward": False}, "does not forward"), ({"allow": ["x"]}, "not")):
        async with live(**options) as s, aiohttp.ClientSession() as http:
            answer = await http.get(s.hc("/hello"))
            assert answer.status == 502 and reason in await answer.text()
            answer.release()


async def test_a_default_upstream_is_a_reverse_rule_for_slash() -> None:
    async with live(forward=False) as s, aiohttp.ClientSession() as http:
        site = type(s.proxy)(reverse={"/": s.origin_uri})
        async with HttpCrossProxy(site, port=0) as front, site:
            async with http.get(f"{front.url}/hello") as answer:
                assert (answer.status, await answer.text()) == (200, "hello")
            async with http.get(f"{front.url}/counter?x=1") as answer:
                assert await answer.text() == "value 0"


async def test_the_http_side_shares_the_cache_with_coap_clients() -> None:
    async with live() as s, aiohttp.ClientSession() as http, Client() as client:
        async with http.get(s.hc("/hello")) as answer:
            assert answer.status == 200
        proxy = s.proxy_server.listeners[0].uri
        response = await client.get(proxy, options=Options.build(proxy_uri=f"{s.origin_uri}/hello"))
        assert response.text == "hello"
        assert s.proxy.cache.stats.hits == 1 and s.proxy.cache.stats.misses == 1


async def test_server_sent_events_follow_an_observable_resource() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        headers = {"Accept": "text/event-stream"}
        async with http.get(s.hc("/counter"), headers=headers) as answer:
            assert answer.status == 200 and answer.content_type == "text/event-stream"
            events: list[str] = []
            block = ""
            async for line in answer.content:
                text = line.decode()
                if text == "\n":
                    events.append(block)
                    block = ""
                    if len(events) == 3:
                        break
                    s.counter.tick()
                else:
                    block += text
        assert events == [
            "id: 1\ndata: value 0\n",
            "id: 2\ndata: value 1\n",
            "id: 3\ndata: value 2\n",
        ]
        # the client left: the upstream observation ends
        for _ in range(100):
            if len(s.proxy.observations) == 0 and s.counter.counts[-1:] == [0]:
                break
            await asyncio.sleep(0.05)
        assert len(s.proxy.observations) == 0 and s.counter.counts == [1, 0]


async def test_coap_and_http_observers_share_one_upstream_observation() -> None:
    async with live() as s, aiohttp.ClientSession() as http, Client() as client:
        proxy = s.proxy_server.listeners[0].uri
        options = Options.build(proxy_uri=f"{s.origin_uri}/counter")
        async with client.observe(proxy, options=options) as observation:
            assert (await anext(observation)).text == "value 0"
            headers = {"Accept": "text/event-stream"}
            async with http.get(s.hc("/counter"), headers=headers) as answer:
                first = await answer.content.readuntil(b"\n\n")
                assert first == b"id: 1\ndata: value 0\n\n"
                s.counter.tick()
                assert (await answer.content.readuntil(b"\n\n")).endswith(b"value 1\n\n")
                assert (await anext(observation)).text == "value 1"
                assert s.counter.counts == [1]  # one upstream observer: the proxy
                assert s.proxy.observations.started == 1


async def test_an_unobservable_resource_is_one_event_then_the_end() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        headers = {"Accept": "text/event-stream"}
        async with http.get(s.hc("/hello"), headers=headers) as answer:
            body = await answer.text()
        assert body == "id: 1\ndata: hello\n\nevent: end\ndata: the observation ended\n\n"
        async with http.get(s.hc("/nothing"), headers=headers) as answer:
            assert answer.status == 404  # refused at once: an HTTP error, not a stream


async def test_a_browser_navigation_gets_the_live_viewer() -> None:
    async with live() as s, aiohttp.ClientSession() as http:
        headers = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        async with http.get(s.hc("/counter"), headers=headers) as answer:
            page = await answer.text()
            assert answer.content_type == "text/html"
        assert "new EventSource(location.pathname + location.search)" in page
        assert f"<title>/hc/{s.origin_uri}/counter</title>" in page


async def test_coap_clients_reach_http_resources() -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.Response(status=201, text=f"posted {await request.text()}")
        if request.headers.get("If-None-Match") == '"e1"':
            return web.Response(status=304, headers={"ETag": '"e1"'})
        return web.json_response(
            {"ok": True}, headers={"Cache-Control": "max-age=7", "ETag": '"e1"'}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with live() as s, Client() as client:
            proxy = s.proxy_server.listeners[0].uri
            target = f"http://127.0.0.1:{port}/thing"
            response = await client.get(proxy, options=Options.build(proxy_uri=target))
            assert response.code == Code.CONTENT and response.json() == {"ok": True}
            assert response.content_format == 50 and response.max_age == 7
            assert response.etag == b"e1"
            valid = await client.get(proxy, options=Options.build(proxy_uri=target, etag=[b"e1"]))
            assert valid.code == Code.VALID
            posted = await client.post(proxy, "x", options=Options.build(proxy_uri=target))
            assert posted.code == Code.CREATED and posted.text == "posted x"
            options = Options.build(proxy_scheme="http", uri_host="127.0.0.1", uri_port=1)
            dead = await client.get(proxy, options=options)
            assert dead.code == Code.BAD_GATEWAY
    finally:
        await runner.cleanup()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_through_the_proxy() -> None:
    async with live() as s:
        process = await asyncio.create_subprocess_exec(
            "curl",
            "-s",
            "-i",
            "--max-time",
            "20",
            s.hc("/data"),
            stdout=subprocess.PIPE,
        )
        output, _ = await process.communicate()
    head, _, body = output.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: application/json" in head
    assert json.loads(body) == {"t": 21.5}
