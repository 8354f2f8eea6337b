"""Client and server over real loopback sockets, in one process.

These wait on events with timeouts; no test sleeps for protocol timing (that
is tested on the virtual clock).
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from coapkit import Code
from coapkit.client import Client
from coapkit.compiled import is_compiled
from coapkit.errors import ErrorResponse, NetworkError, RequestCancelled, RequestTimeout
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.resources import Resource, Response, Site
from coapkit.server import Server
from tests.interop.peers import free_udp_port


class Counter(Resource):
    rt = "counter"
    title = "A counter"

    def __init__(self) -> None:
        self.value = 0

    def get(self, request):
        return Response(payload=str(self.value))

    async def post(self, request):
        self.value += 1
        return Response(Code.CHANGED, payload=str(self.value))


def make_site() -> Site:
    site = Site()
    site.add("/counter", Counter())

    @site.route("/hello")
    def hello(request):
        return Response(payload="Hello, CoAP!")

    @site.route("/echo", methods=("PUT", "POST", "FETCH"))
    def echo(request):
        return Response(Code.CHANGED, request.payload, content_format=request.content_format)

    @site.route("/slow")
    async def slow(request):
        await asyncio.sleep(0.3)
        return Response(payload="finally")

    @site.route("/broken")
    def broken(request):
        raise RuntimeError("handler bug")

    return site


@pytest.fixture
async def server_v4():
    async with Server(make_site(), bind=("127.0.0.1", 0)) as server:
        yield server


@pytest.fixture
async def server_dual():
    async with Server(make_site(), bind=("::", 0)) as server:
        yield server


async def test_get_ipv4(server_v4):
    async with Client() as client:
        response = await client.get(f"coap://127.0.0.1:{server_v4.port}/hello")
    assert response.code == Code.CONTENT
    assert response.text == "Hello, CoAP!"
    assert response.content_format == 0


async def test_get_ipv6_and_dual_stack(server_dual):
    async with Client() as client:
        six = await client.get(f"coap://[::1]:{server_dual.port}/hello")
        four = await client.get(f"coap://127.0.0.1:{server_dual.port}/hello")
    assert six.text == four.text == "Hello, CoAP!"


async def test_hostname_resolves(server_dual):
    async with Client() as client:
        response = await client.get(f"coap://localhost:{server_dual.port}/hello")
    assert response.text == "Hello, CoAP!"


async def test_methods_and_payloads(server_v4):
    base = f"coap://127.0.0.1:{server_v4.port}"
    async with Client() as client:
        assert (await client.post(f"{base}/counter")).text == "1"
        assert (await client.post(f"{base}/counter", non=True)).text == "2"
        assert (await client.get(f"{base}/counter")).text == "2"
        echoed = await client.put(f"{base}/echo", b"\x01\x02", content_format=42)
        assert (echoed.code, echoed.payload, echoed.content_format) == (
            Code.CHANGED,
            b"\x01\x02",
            42,
        )
        fetched = await client.fetch(f"{base}/echo", '{"a": 1}', content_format=50)
        assert fetched.json() == {"a": 1}


async def test_error_codes(server_v4):
    base = f"coap://127.0.0.1:{server_v4.port}"
    async with Client() as client:
        assert (await client.get(f"{base}/nowhere")).code == Code.NOT_FOUND
        not_allowed = await client.delete(f"{base}/hello")
        assert not_allowed.code == Code.METHOD_NOT_ALLOWED
        assert (await client.get(f"{base}/broken")).code == Code.INTERNAL_SERVER_ERROR
        # the server survives a handler that raises
        assert (await client.get(f"{base}/hello")).code == Code.CONTENT
        with pytest.raises(ErrorResponse) as info:
            await client.get(f"{base}/nowhere", raise_for_status=True)
        assert info.value.code == Code.NOT_FOUND
        assert "4.04 Not Found" in str(info.value)


async def test_slow_handler_gets_separate_response(server_v4):
    trace: list[tuple[str, bytes]] = []
    async with Client(
        tracer=lambda direction, data, remote: trace.append((direction, data))
    ) as client:
        response = await client.get(f"coap://127.0.0.1:{server_v4.port}/slow")
    assert response.text == "finally"
    received_types = [data[0] >> 4 & 3 for direction, data in trace if direction == "recv"]
    assert received_types[0] == 2  # an empty ACK first
    assert trace[1][1][1] == 0  # ... that is empty (code 0.00)
    assert 0 in received_types[1:]  # then the response as a CON
    sent_types = [data[0] >> 4 & 3 for direction, data in trace if direction == "send"]
    assert sent_types[-1] == 2  # which the client acknowledged


async def test_discovery(server_v4):
    async with Client() as client:
        links = await client.discover(f"coap://127.0.0.1:{server_v4.port}")
        targets = [link.target for link in links]
        assert "/counter" in targets and "/hello" in targets
        filtered = await client.discover(f"coap://127.0.0.1:{server_v4.port}", rt="counter")
        assert [link.target for link in filtered] == ["/counter"]


async def test_ping(server_v4):
    async with Client() as client:
        rtt = await client.ping(f"coap://127.0.0.1:{server_v4.port}")
    assert 0 <= rtt < 1


async def test_closed_port_fails_fast_with_network_error():
    port = free_udp_port()
    async with Client() as client:
        started = time.monotonic()
        with pytest.raises(NetworkError) as info:
            await client.get(f"coap://127.0.0.1:{port}/x")
        assert time.monotonic() - started < 1.0
    assert "refused" in str(info.value) or "unreachable" in str(info.value)


async def test_closed_ipv6_port_fails_fast():
    port = free_udp_port("::1")
    async with Client() as client:
        with pytest.raises(NetworkError):
            await asyncio.wait_for(client.get(f"coap://[::1]:{port}/x"), 1.0)


async def test_unknown_host_is_a_network_error():
    async with Client() as client:
        with pytest.raises(NetworkError, match="cannot resolve"):
            await client.get("coap://no-such-host.invalid/x")


async def test_non_request_times_out():
    # a UDP socket that never answers: the NON request times out after the given time
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with Client() as client:
            with pytest.raises(RequestTimeout):
                await client.get(f"coap://127.0.0.1:{port}/x", non=True, timeout=0.2)


async def test_con_request_gives_up_with_fast_parameters():
    fast = TransmissionParameters(ack_timeout=0.02, max_retransmit=2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with Client(transmission=fast) as client:
            with pytest.raises(RequestTimeout) as info:
                await client.get(f"coap://127.0.0.1:{port}/x")
        datagrams = 0
        silent.setblocking(False)
        while True:
            try:
                silent.recv(100)
            except BlockingIOError:
                break
            datagrams += 1
    assert "no acknowledgement" in str(info.value)
    assert datagrams == 3  # first transmission + MAX_RETRANSMIT retransmissions


async def test_sequential_requests_do_not_churn_loop_timers(server_v4, monkeypatch):
    """Each request arms a retransmission deadline that its response clears; the driver
    keeps one loop timer that fires no later than needed instead of cancelling and
    scheduling one twice per request."""
    uri = f"coap://127.0.0.1:{server_v4.port}/hello"
    loop = asyncio.get_running_loop()
    async with Client() as client:
        await client.get(uri)
        scheduled = []
        original = loop.call_at

        def counting_call_at(when, callback, *args, **kwargs):
            if getattr(callback, "__self__", None) is client.driver:
                scheduled.append(when)
            return original(when, callback, *args, **kwargs)

        monkeypatch.setattr(loop, "call_at", counting_call_at)
        for _ in range(50):
            assert (await client.get(uri)).payload == b"Hello, CoAP!"
    # Only a deadline earlier than the armed one moves the timer: with randomised
    # ACK_TIMEOUTs that is a new minimum, about ln(50) = 4 times in 50 requests (the old
    # driver scheduled two per request, one for the send and one after the response: 100).
    assert len(scheduled) <= 15, scheduled


async def test_an_earlier_deadline_rearms_the_timer():
    """A request with a long deadline arms the timer late; a later request with a short
    one must still time out on time (the timer is moved earlier, never left later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with Client() as client:
            slow = asyncio.ensure_future(
                client.get(f"coap://127.0.0.1:{port}/x", non=True, timeout=30)
            )
            await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await client.get(f"coap://127.0.0.1:{port}/y", non=True, timeout=0.2)
            assert time.monotonic() - started < 5
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow


async def test_shutdown_leaves_no_tasks(server_v4):
    before = asyncio.all_tasks()
    async with Client() as client:
        slow = asyncio.ensure_future(client.get(f"coap://127.0.0.1:{server_v4.port}/slow"))
        await asyncio.sleep(0)
        await client.get(f"coap://127.0.0.1:{server_v4.port}/hello")
    with pytest.raises(RequestCancelled):
        await slow
    await server_v4.close()
    await asyncio.sleep(0)
    leftover = asyncio.all_tasks() - before
    assert leftover == set()


async def test_one_client_cannot_take_every_handler_slot():
    """max_pending_per_remote: a client with that many handlers awaiting gets 5.03 for
    more, while another client is still served, and is served again once they finish."""
    release = asyncio.Event()
    site = Site()

    @site.route("/wait")
    async def wait(request):
        await release.wait()
        return Response(payload="done")

    @site.route("/quick")
    async def quick(request):
        await asyncio.sleep(0)
        return Response(payload="quick")

    async with Server(site, bind=("127.0.0.1", 0), max_pending_per_remote=3) as server:
        base = f"coap://127.0.0.1:{server.port}"
        async with (
            Client(transmission=TransmissionParameters(nstart=8)) as greedy,
            Client() as other,
        ):
            waiting = [asyncio.ensure_future(greedy.get(f"{base}/wait")) for _ in range(3)]
            while len(server.driver._tasks) < 3:
                await asyncio.sleep(0.01)
            refused = await greedy.get(f"{base}/quick")
            assert (refused.code, refused.max_age) == (Code.SERVICE_UNAVAILABLE, 2)
            assert server.driver.overloaded == 1
            assert (await other.get(f"{base}/quick")).text == "quick"
            release.set()
            assert [r.text for r in await asyncio.gather(*waiting)] == ["done"] * 3
            assert (await greedy.get(f"{base}/quick")).text == "quick"
            assert server.driver._pending_by_remote == {}


async def test_too_many_pending_handlers_get_503():
    release = asyncio.Event()
    site = Site()

    @site.route("/wait")
    async def wait(request):
        await release.wait()
        return Response(payload="done")

    async with Server(site, bind=("127.0.0.1", 0), max_pending=2) as server:
        uri = f"coap://127.0.0.1:{server.port}/wait"
        async with Client() as client:
            first = [asyncio.ensure_future(client.get(uri, non=True)) for _ in range(2)]
            while len(server.driver._tasks) < 2:
                await asyncio.sleep(0.01)
            refused = await client.get(uri)
            assert refused.code == Code.SERVICE_UNAVAILABLE
            assert refused.max_age == 2
            assert server.driver.overloaded == 1
            release.set()
            assert [r.text for r in await asyncio.gather(*first)] == ["done", "done"]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_the_drivers_fast_path_serves_the_same(fast_path: bool) -> None:
    """Plain requests after the first from a client go through Endpoint.accept_request and
    Endpoint.respond_now when the driver's fast path is on, through the general path when
    it is off; the client sees the same either way (CON and NON, a handler answering at
    once and one awaiting)."""
    taken = {"accepted": 0, "answered": 0}
    async with Server(make_site(), bind=("127.0.0.1", 0)) as server:
        server.driver.fast_path = fast_path
        endpoint = server.endpoint

        def counting(method, key):
            def wrapper(*args):
                result = method(*args)
                taken[key] += result is not None
                return result

            return wrapper

        counted = not is_compiled()  # a compiled Endpoint's methods cannot be wrapped
        if counted:
            endpoint.accept_request = counting(endpoint.accept_request, "accepted")
            endpoint.respond_now = counting(endpoint.respond_now, "answered")
        url = f"coap://127.0.0.1:{server.port}"
        async with Client() as client:
            texts = []
            for non in (False, False, True, True):
                response = await client.get(f"{url}/hello", non=non)
                texts.append((response.code, response.text))
            slow = await client.get(f"{url}/slow")
            changed = await client.post(f"{url}/counter")
    assert texts == [(Code.CONTENT, "Hello, CoAP!")] * 4
    assert (slow.text, changed.code, changed.text) == ("finally", Code.CHANGED, "1")
    stats = endpoint.stats
    assert stats.piggybacked >= 3  # the CON GETs, and /slow unless its empty ACK went first
    if fast_path and counted:
        # all but the first CON and the first NON (a new peer, a new dedup stream)
        assert taken["accepted"] == 4
        assert taken["answered"] >= 4
    else:
        assert taken == {"accepted": 0, "answered": 0}
