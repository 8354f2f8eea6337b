"""The tool against a peer nobody here wrote: libcoap's coap-server-notls and coap-client-notls.

(libcoap 4.3.1's ``/async`` resource computes a delay of years, so the
separate-response case is covered by ``/separate`` of our plugtest server
instead, which libcoap's client also exercises below.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.cli.helpers import ServerProcess, run
from tests.interop.peers import coap_client, libcoap_server

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
