"""The tool against a peer nobody here wrote: libcoap's coap-server-notls and coap-client-notls.

(libcoap 4.3.1's ``/async`` resource computes a delay of years, so the
separate-response case is covered by ``/separate`` of our plugtest server
instead, which libcoap's client also exercises below.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from coapkit.cli.plugtest import LARGE
from tests.cli.helpers import ServerProcess, run
from tests.interop.peers import coap_client, free_udp_port, libcoap_server, parse_dump

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def libcoap() -> Iterator[str]:
    with libcoap_server() as port:
        yield f"coap://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def libcoap_v6() -> Iterator[str]:
    with libcoap_server(host="::1") as port:
        yield f"coap://[::1]:{port}"


def test_get(libcoap):
    result = run("get", f"{libcoap}/")
    assert result.returncode == 0
    assert result.stdout.startswith("This is a test server made with libcoap")


def test_get_ipv6(libcoap_v6):
    assert run("get", f"{libcoap_v6}/").stdout.startswith("This is a test server")
    assert run("ping", libcoap_v6).returncode == 0


def test_verbose_trace(libcoap):
    result = run("get", f"{libcoap}/time", "-v")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    sent = re.match(r"> CON GET  MID (\d+)  token ([0-9a-f]+)  to 127\.0\.0\.1", lines[0])
    assert sent, lines
    reply = next(line for line in lines if line.startswith("< "))
    assert reply.startswith(f"< ACK 2.05 Content  MID {sent.group(1)}  token {sent.group(2)}")
    assert "<   Max-Age: 1" in lines


def test_discover(libcoap):
    result = run("discover", libcoap)
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert {"/", "/time", "/async", "/example_data"} <= set(rows)
    assert re.search(r"/time +ticks +clock +0 text +obs +Internal Clock", rows["/time"])
    filtered = run("discover", libcoap, "--rt", "ticks", "--json")
    assert [link["href"] for link in json.loads(filtered.stdout)] == ["/time"]


def test_put_then_get(libcoap):
    put = run("put", f"{libcoap}/example_data", "--payload", "written by coapkit")
    assert put.returncode == 0
    assert put.stderr in ("2.01 Created\n", "2.04 Changed\n")
    assert run("get", f"{libcoap}/example_data").stdout == "written by coapkit\n"


def test_error_codes(libcoap):
    missing = run("get", f"{libcoap}/no-such-resource")
    assert (missing.returncode, missing.stderr) == (4, "4.04 Not Found: Not Found\n")
    proxy = run("get", f"{libcoap}/", "--option", "Proxy-Uri=coap://example.org/")
    assert proxy.returncode == 5 and proxy.stderr.startswith("5.05 Proxying Not Supported")


def test_ping(libcoap):
    result = run("ping", libcoap)
    assert result.returncode == 0 and result.stdout.startswith("RST from 127.0.0.1:")


def test_libcoap_client_against_our_plugtest_server():
    server = ServerProcess("server", "--plugtest")
    try:
        test = coap_client("-m", "get", f"{server.url}/test")
        assert test.returncode == 0 and b"Type: 0 (CON)" in test.stdout
        query = coap_client("-m", "get", f"{server.url}/query?first=1&second=2")
        assert b"first=1&second=2" in query.stdout
        separate = coap_client("-m", "get", f"{server.url}/separate")
        assert b"Code: 1 (GET)" in separate.stdout
        created = coap_client("-m", "put", "-e", "made by libcoap", f"{server.url}/create1")
        assert created.returncode == 0
        assert run("get", f"{server.url}/create1").stdout == "made by libcoap\n"
        links = coap_client("-m", "get", f"{server.url}/.well-known/core?rt=Type2")
        assert links.stdout.strip() == (
            b'</link1>;rt="Type1 Type2";if="If1";title="Link test resource",'
            b'</link2>;rt="Type2 Type3";if="If2";title="Link test resource"'
        )
    finally:
        server.stop()


# -- the plugtest's block-wise and Observe resources, to libcoap's coap-client -------------------


@pytest.fixture(scope="module")
def plugtest() -> Iterator[ServerProcess]:
    # the default server: the amplification defence is on (libcoap answers its Echo challenges)
    server = ServerProcess("server", "--plugtest", "--obs-period", "0.2")
    yield server
    server.stop()


@pytest.mark.parametrize("block", [None, "16", "64", "1024"])
def test_libcoap_gets_large_in_blocks(plugtest, tmp_path, block):
    target = tmp_path / "large.txt"
    extra = () if block is None else ("-b", block)
    result = coap_client(*extra, "-o", str(target), f"{plugtest.url}/large")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == LARGE


def test_libcoap_puts_large_update_in_blocks(plugtest, tmp_path):
    body = b"".join(b"%04d written by libcoap in 64-byte blocks\n" % n for n in range(60))
    source = tmp_path / "body.txt"
    source.write_bytes(body)
    url = f"{plugtest.url}/large-update"
    put = coap_client("-m", "put", "-b", "64", "-t", "text/plain", "-f", str(source), url)
    assert put.returncode == 0, put.stderr
    assert run("get", url).stdout.encode() == body
    target = tmp_path / "back.txt"
    assert coap_client("-b", "16", "-o", str(target), url).returncode == 0
    assert target.read_bytes() == body


def test_libcoap_posts_large_create_and_large_post(plugtest, tmp_path):
    body = b"".join(b"line %03d of a posted body\n" % n for n in range(100))
    source = tmp_path / "body.txt"
    source.write_bytes(body)
    created = coap_client("-m", "post", "-b", "64", "-f", str(source), "-v", "6",
                          f"{plugtest.url}/large-create")  # fmt: skip
    assert created.returncode == 0, created.stderr
    final = [m for m in parse_dump(created.stdout + created.stderr) if m.code == "2.01"]
    assert final, created.stdout
    location = final[-1].option("Location-Path")
    assert location[0] == "large-create"
    assert run("get", f"{plugtest.url}/{'/'.join(location)}").stdout.encode() == body
    target = tmp_path / "upper.txt"
    shouted = coap_client("-m", "post", "-b", "64", "-f", str(source), "-o", str(target),
                          f"{plugtest.url}/large-post")  # fmt: skip
    assert shouted.returncode == 0, shouted.stderr
    assert target.read_bytes() == body.upper()


@pytest.mark.parametrize("path", ["obs", "obs-non"])
def test_libcoap_observes(plugtest, path):
    result = coap_client("-s", "2", f"{plugtest.url}/{path}")
    assert result.returncode == 0, result.stderr
    values = re.findall(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.stdout)
    assert len(values) >= 4  # the first response and notifications five times a second


def test_libcoap_observes_large_notifications_in_16_byte_blocks(plugtest):
    result = coap_client("-s", "2", "-b", "16", f"{plugtest.url}/obs-large")
    assert result.returncode == 0, result.stderr
    states = re.findall(
        rb"obs-large state at \S+\n(?:line \d/4: a notification sent in blocks\n){3}",
        result.stdout,
    )
    assert len(states) >= 3
    assert b"4.0" not in result.stdout


def test_coapkit_observes_libcoap_time(libcoap):
    # libcoap's /time: the registration answered with the resource's counter, a CON
    # notification a second, Max-Age 1
    result = run("get", f"{libcoap}/time", "--observe", "--count", "3", "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 3
    assert all(document["options"]["Observe"] is not None for document in documents)
    assert len({document["payload"] for document in documents[1:]}) == 2


def test_coapkit_observes_aiocoap(tmp_path):
    # an aiocoap 0.4.17 server in its own process, with one observable resource
    pytest.importorskip("aiocoap")
    script = tmp_path / "aiocoap_server.py"
    script.write_text(AIOCOAP_SERVER)
    port = free_udp_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        result = run("get", f"coap://127.0.0.1:{port}/obs", "--observe", "--count", "4")
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    values = [int(line.strip("[]")) for line in result.stdout.splitlines()]
    assert len(values) == 4 and values == sorted(set(values))  # each state once, in order


AIOCOAP_SERVER = """
import asyncio, sys
import aiocoap
from aiocoap import resource

class Ticking(resource.ObservableResource):
    def __init__(self):
        super().__init__()
        self.value = 0

    async def render_get(self, request):
        return aiocoap.Message(payload=f"[{self.value}]".encode())

    def tick(self):
        self.value += 1
        self.updated_state()

async def main():
    ticking = Ticking()
    root = resource.Site()
    root.add_resource(["obs"], ticking)
    await aiocoap.Context.create_server_context(
        root, bind=("127.0.0.1", int(sys.argv[1])), transports=["udp6"]
    )
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.2)
        ticking.tick()

asyncio.run(main())
"""
