"""CoAP over TCP (``coap+tcp``, RFC 8323) against libcoap 4.3.1, both ways, through the
public Client and Server.

* coapkit serving (``Server(listen=["coap+tcp://…"])``), ``coap-client-notls``
  asking: GET, PUT, a Block2 download and a Block1 upload, and Observe.
* coapkit asking (``Client().get("coap+tcp://…")``), ``coap-server-notls``
  serving (``-p PORT``: it listens on PORT for UDP and TCP): GET ``/`` and
  ``/time``, a PUT of a block-wise body read back, and an observation of ``/time``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest

from coapkit import Client, Code, Request, Response, Server
from coapkit.resources import Resource

pytestmark = pytest.mark.interop

BIG = b"".join(b"line %04d\n" % n for n in range(310))  # 3100 bytes


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        message = f"{tool} not installed (apt-get install libcoap3-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class Ticker(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(payload=str(self.value))


@asynccontextmanager
async def coapkit_server() -> AsyncIterator[tuple[Server, Ticker, dict[str, bytes]]]:
    server = Server(listen=["coap+tcp://127.0.0.1:0"])
    ticker = server.add("/ticker", Ticker())
    stored: dict[str, bytes] = {}

    @server.route("/hello")
    def hello(request: Request) -> Response:
        return Response(payload="hello over TCP")

    @server.route("/big")
    def big(request: Request) -> Response:
        return Response(payload=BIG)

    @server.route("/store", methods=("PUT",))
    def store(request: Request) -> Response:
        stored["body"] = request.payload
        return Response(Code.CHANGED)

    async with server:
        yield server, ticker, stored


async def coap_client(*args: str, timeout: float = 20) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "coap-client-notls",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return out


async def test_libcoap_client_gets_puts_and_transfers_blocks() -> None:
    require("coap-client-notls")
    async with coapkit_server() as (server, _, stored):
        uri = server.listeners[0].uri
        assert await coap_client("-m", "get", f"{uri}/hello") == b"hello over TCP\n"
        assert (await coap_client("-m", "get", "-b", "1024", f"{uri}/big")).rstrip() == BIG.rstrip()
        await coap_client("-m", "put", "-b", "1024", "-e", BIG.decode(), f"{uri}/store")
        assert stored["body"] == BIG


async def test_libcoap_client_observes() -> None:
    require("coap-client-notls")
    async with coapkit_server() as (server, ticker, _):
        uri = server.listeners[0].uri
        process = await asyncio.create_subprocess_exec(
            "stdbuf",
            "-oL",
            "coap-client-notls",
            "-m",
            "get",
            "-s",
            "10",
            f"{uri}/ticker",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdout is not None
        listener = server.listeners[0]
        try:
            seen = b""
            deadline = time.monotonic() + 10
            while listener.endpoint.observe.registry.count_of(ticker) == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            for value in (1, 2, 3):
                ticker.value = value
                ticker.updated()
                while str(value).encode() not in seen:
                    seen += await asyncio.wait_for(process.stdout.read(64), 5)
            assert seen.replace(b"\n", b"").startswith(b"0")  # the registration's answer
        finally:
            process.kill()
            await process.wait()
        # its connection is gone, and its observation with it (RFC 8323 §7)
        deadline = time.monotonic() + 5
        while listener.endpoint.observe.registry.count_of(ticker):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


@contextmanager
def libcoap_server() -> Iterator[int]:
    require("coap-server-notls")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["coap-server-notls", "-A", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "coap-server-notls did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def test_coapkit_client_against_libcoap_server() -> None:
    with libcoap_server() as port:
        base = f"coap+tcp://127.0.0.1:{port}"
        async with Client(timeout=10) as client:
            root = await client.get(f"{base}/")
            assert root.code == Code.CONTENT and b"libcoap" in root.payload
            now = await client.get(f"{base}/time")
            assert now.code == Code.CONTENT and now.payload
            # libcoap's example server keeps a PUT body at /example_data
            put = await client.put(f"{base}/example_data", BIG)
            assert put.code in (Code.CHANGED, Code.CREATED)
            back = await client.get(f"{base}/example_data")
            assert back.payload == BIG
            async with client.observe(f"{base}/time") as observation:
                first = await asyncio.wait_for(anext(observation), 5)
                second = await asyncio.wait_for(anext(observation), 5)  # once a second
                assert first.options.observe is not None and second.payload
