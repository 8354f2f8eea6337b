"""Proxying with peers nobody here wrote, over loopback:

* the coapkit Client through libcoap 4.3.1's forward proxy (``coap-server-notls -P``)
  to a coapkit Server;
* libcoap's ``coap-client-notls -P`` through coapkit's forward proxy to a libcoap server;
* an aiocoap 0.4.17 client through coapkit's reverse proxy (GET, POST, block-wise,
  Observe);
* an HTTP client (aiohttp) through coapkit's cross proxy to a coapkit server.

Peer deviations met here are said where they are met.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from coapkit import Client, Code, Options, Request, Resource, Response, Server, Site
from coapkit.proxy import ProxySite
from coapkit.proxy.http import HttpCrossProxy
from tests.interop.peers import (
    COAP_SERVER,
    _wait_for_coap,
    free_udp_port,
    libcoap_server,
    require_aiocoap,
    run_coap_client,
)

pytestmark = pytest.mark.interop

BODY = bytes(i % 251 for i in range(4000))


class Ticks(Resource):
    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.counts: list[int] = []

    def get(self, request: Request) -> Response:
        return Response(payload=f"tick {self.value}")

    def update_observation_count(self, count: int) -> None:
        self.counts.append(count)


def coapkit_origin() -> tuple[Site, Ticks]:
    site = Site()
    ticks = site.add("/ticks", Ticks())

    @site.route("/hello")
    def hello(request: Request) -> Response:
        return Response(payload="hello from coapkit", max_age=30)

    @site.route("/items", methods=["POST"])
    def items(request: Request) -> Response:
        return Response(Code.CREATED, payload=f"stored {len(request.payload)} bytes")

    @site.route("/big")
    def big(request: Request) -> Response:
        return Response(payload=BODY, content_format="octet")

    return site, ticks


@asynccontextmanager
async def coapkit_proxy(**options: object) -> AsyncIterator[tuple[ProxySite, str]]:
    site = ProxySite(**options)  # type: ignore[arg-type]
    async with Server(site, listen=["coap://127.0.0.1:0"]) as server, site:
        yield site, server.listeners[0].uri


@asynccontextmanager
async def libcoap_forward_proxy() -> AsyncIterator[int]:
    """``coap-server-notls -P ,NAME``: a forward proxy connecting directly to each target."""
    port = free_udp_port()
    process = await asyncio.create_subprocess_exec(
        COAP_SERVER, "-A", "127.0.0.1", "-p", str(port), "-P", ",libcoap-proxy",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.to_thread(
            _wait_for_coap, "127.0.0.1", port, asyncio.get_running_loop().time() + 10
        )
        yield port
    finally:
        process.terminate()
        await process.wait()


# -- coapkit's client through libcoap's proxy ------------------------------------------------


async def test_coapkit_client_through_libcoap_proxy() -> None:
    site, ticks = coapkit_origin()
    async with Server(site, listen=["coap://127.0.0.1:0"]) as origin, Client() as client:
        async with libcoap_forward_proxy() as proxy_port:
            proxy = f"coap://127.0.0.1:{proxy_port}"
            target = origin.listeners[0].uri
            response = await client.get(proxy, options=Options.build(proxy_uri=f"{target}/hello"))
            assert response.code == Code.CONTENT and response.text == "hello from coapkit"
            # libcoap 4.3.1's proxy drops the Content-Format of the response it relays
            # (its debug log shows the option arrive and not leave); coapkit's keeps it.
            assert response.content_format is None
            posted = await client.post(
                proxy, bytes(100), options=Options.build(proxy_uri=f"{target}/items")
            )
            assert posted.code == Code.CREATED and posted.text == "stored 100 bytes"
            big = await client.get(proxy, options=Options.build(proxy_uri=f"{target}/big"))
            assert big.payload == BODY
            missing = await client.get(proxy, options=Options.build(proxy_uri=f"{target}/x"))
            assert missing.code == Code.NOT_FOUND
            # Proxy-Scheme with Uri-Host and Uri-Port works too
            host, port = origin.listeners[0].uri.removeprefix("coap://").split(":")
            options = Options.build(
                proxy_scheme="coap", uri_host=host, uri_port=int(port), uri_path=["hello"]
            )
            assert (await client.get(proxy, options=options)).text == "hello from coapkit"
        assert ticks.counts == []


async def test_coapkit_client_observes_through_libcoap_proxy() -> None:
    site, ticks = coapkit_origin()
    async with (
        Server(site, listen=["coap://127.0.0.1:0"]) as origin,
        Client() as client,
        libcoap_forward_proxy() as proxy_port,
    ):
        options = Options.build(proxy_uri=f"{origin.listeners[0].uri}/ticks")
        observation = client.observe(f"coap://127.0.0.1:{proxy_port}", options=options)
        async with observation:
            texts = [(await anext(observation)).text]
            for _ in range(2):
                ticks.value += 1
                ticks.updated()
                texts.append((await asyncio.wait_for(anext(observation), 10)).text)
        assert texts == ["tick 0", "tick 1", "tick 2"]
        assert ticks.counts[:1] == [1]


# -- libcoap's client through coapkit's proxy --------------------------------------------------


async def test_libcoap_client_through_coapkit_proxy_to_libcoap_server() -> None:
    with libcoap_server("-d", "10") as origin_port:
        async with coapkit_proxy(forward=True) as (site, proxy):
            origin = f"coap://127.0.0.1:{origin_port}"
            result = await run_coap_client("-P", proxy, f"{origin}/")
            assert result.returncode == 0, result.stderr
            assert result.stdout.decode().startswith("This is a test server made with libcoap")
            # PUT creates a resource on the libcoap server (-d), through the proxy
            put = await run_coap_client(
                "-P", proxy, "-m", "put", "-e", "via coapkit", f"{origin}/made"
            )
            assert put.returncode == 0, put.stderr
            got = await run_coap_client("-P", proxy, f"{origin}/made")
            assert got.stdout.decode() == "via coapkit\n"  # (coap-client adds the newline)
            # block-wise: a body of several blocks up, and back down
            body = bytes(i % 26 + 97 for i in range(3000))
            put = await run_coap_client(
                "-P", proxy, "-m", "put", "-b", "512", "-f", "-", f"{origin}/large", input_data=body
            )
            assert put.returncode == 0, put.stderr
            got = await run_coap_client("-P", proxy, "-b", "512", f"{origin}/large")
            assert got.stdout == body + b"\n"
            # /time is observable on libcoap's server: observed through the proxy
            observed = await run_coap_client("-P", proxy, "-s", "3", f"{origin}/time", timeout=20)
            assert observed.returncode == 0
            assert len(observed.stdout.decode().split()) >= 3 * 2  # "Mon DD HH:MM:SS" lines
            assert site.observations.started == 1
            missing = await run_coap_client("-P", proxy, f"{origin}/nothing")
            assert b"4.04" in missing.stdout + missing.stderr


async def test_libcoap_client_refused_by_the_allow_list() -> None:
    with libcoap_server() as origin_port:
        async with coapkit_proxy(allow=["example.org"]) as (_, proxy):
            result = await run_coap_client("-P", proxy, f"coap://127.0.0.1:{origin_port}/")
            assert b"5.05" in result.stdout + result.stderr


# -- aiocoap's client through coapkit's reverse proxy ------------------------------------------


async def test_aiocoap_client_through_coapkit_reverse_proxy() -> None:
    require_aiocoap()
    import aiocoap

    site, ticks = coapkit_origin()
    async with (
        Server(site, listen=["coap://127.0.0.1:0"]) as origin,
        coapkit_proxy(reverse={"/up": origin.listeners[0].uri}) as (_, proxy),
    ):
        context = await aiocoap.Context.create_client_context(transports=["udp6"])
        try:
            request = aiocoap.Message(code=aiocoap.GET, uri=f"{proxy}/up/hello")
            response = await context.request(request).response
            assert str(response.code) == "2.05 Content"
            assert response.payload == b"hello from coapkit"
            post = aiocoap.Message(code=aiocoap.POST, uri=f"{proxy}/up/items", payload=bytes(2500))
            response = await context.request(post).response  # block-wise up
            assert response.payload == b"stored 2500 bytes"
            big = aiocoap.Message(code=aiocoap.GET, uri=f"{proxy}/up/big")
            response = await context.request(big).response  # block-wise down
            assert response.payload == BODY
            observe = aiocoap.Message(code=aiocoap.GET, uri=f"{proxy}/up/ticks", observe=0)
            pending = context.request(observe)
            first = await pending.response
            assert first.payload == b"tick 0" and first.opt.observe is not None
            ticks.value += 1
            ticks.updated()
            update = await asyncio.wait_for(anext(aiter(pending.observation)), 10)
            assert update.payload == b"tick 1"
            pending.observation.cancel()
        finally:
            await context.shutdown()


# -- an HTTP client through coapkit's cross proxy ----------------------------------------------


async def test_http_client_through_coapkit_cross_proxy() -> None:
    site, _ = coapkit_origin()
    async with (
        Server(site, listen=["coap://127.0.0.1:0"]) as origin,
        coapkit_proxy(forward=True) as (proxy_site, _),
        HttpCrossProxy(proxy_site, port=0) as front,
        aiohttp.ClientSession() as http,
    ):
        base = f"{front.url}/hc/{origin.listeners[0].uri}"
        async with http.get(f"{base}/hello") as answer:
            assert answer.status == 200 and await answer.text() == "hello from coapkit"
            assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        async with http.get(f"{base}/nothing") as answer:
            assert answer.status == 404
        async with http.post(f"{base}/items", data=b"abc") as answer:
            assert answer.status == 201 and await answer.text() == "stored 3 bytes"
        dead = f"{front.url}/hc/coap://127.0.0.1:{free_udp_port()}/x"
        async with http.get(dead) as answer:
            assert answer.status in (502, 504)
