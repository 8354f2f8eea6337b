"""Socket errors on real sockets, on asyncio and on uvloop: never deaf, never the wrong peer.

Each test runs the same scenario on both event loops (``tests.runtime.loops``).
Waiting here is for real I/O to happen (a datagram to arrive, an ICMP error to
come back), with a deadline; protocol timing is tested on the virtual clock
elsewhere.  The few ``time.sleep`` calls stop the event loop on purpose, so that
an ICMP error waits in the socket's error queue while nobody reads it, which is
how a send from a timer or a task meets it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.client import Client
from coapkit.codec.types import MessageType
from coapkit.errors import NetworkError
from coapkit.resources import Response
from coapkit.server import Server
from coapkit.transports.udp import UdpTransport
from tests.interop.peers import free_udp_port
from tests.runtime.loops import LOOPS, run_on

pytestmark = pytest.mark.parametrize("loop", LOOPS)


class Sink:
    """What a transport reports, recorded."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.errors: list[tuple[Any, NetworkError, bytes]] = []

    def datagram_received(self, data: bytes, remote: Any, multicast: bool) -> None:
        self.datagrams.append((data, remote))

    def error_received(self, remote: Any, error: NetworkError, head: bytes) -> None:
        self.errors.append((remote, error, head))

    def batch_done(self) -> None:
        pass


async def until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    """Wait for real I/O to make ``condition`` true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.005)


def live_peer() -> socket.socket:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3.0)
    return peer


def test_a_queued_icmp_error_goes_to_the_remote_it_names_not_to_the_next_send(loop: str) -> None:
    async def main() -> None:
        sink = Sink()
        transport = UdpTransport.bind(asyncio.get_running_loop(), sink, "127.0.0.1", 0)
        closed = ("127.0.0.1", free_udp_port())
        with live_peer() as live:
            transport.sendto(b"to nobody", closed)
            time.sleep(0.05)  # the loop stands still: the ICMP error waits in the queue
            transport.sendto(b"to the live peer", live.getsockname())
            # The kernel returned the queued error from this send; the datagram went anyway.
            assert live.recv(100) == b"to the live peer"
            await until(lambda: sink.errors)
            assert [(remote, error.errno) for remote, error, _ in sink.errors] == [
                (closed, errno.ECONNREFUSED)
            ]
            assert sink.errors[0][2] == b"to nobody"  # the start of the datagram it was about
            live.sendto(b"still listening", transport.local_address)
            await until(lambda: sink.datagrams)
            assert sink.datagrams == [(b"still listening", live.getsockname())]
        transport.close()

    run_on(loop, main())


def test_an_icmp_error_while_the_loop_idles_does_not_make_the_socket_deaf(loop: str) -> None:
    async def main() -> None:
        sink = Sink()
        transport = UdpTransport.bind(asyncio.get_running_loop(), sink, "127.0.0.1", 0)
        closed = ("127.0.0.1", free_udp_port())
        with live_peer() as live:
            for round_ in range(3):  # more than once: the socket stays watched after each
                transport.sendto(b"to nobody", closed)
                await until(lambda n=round_: len(sink.errors) > n)  # type: ignore[misc]
                live.sendto(b"%d" % round_, transport.local_address)
                await until(lambda n=round_: len(sink.datagrams) > n)  # type: ignore[misc]
        assert [data for data, _ in sink.datagrams] == [b"0", b"1", b"2"]
        assert {remote for remote, _, _ in sink.errors} == {closed}
        transport.close()

    run_on(loop, main())


def test_a_datagram_too_large_fails_alone_and_the_socket_goes_on(loop: str) -> None:
    async def main() -> None:
        sink = Sink()
        transport = UdpTransport.bind(asyncio.get_running_loop(), sink, "127.0.0.1", 0)
        with live_peer() as live:
            big = bytes(range(256)) * 280  # 71,680 bytes: more than an IPv4 datagram holds
            transport.sendto(big, live.getsockname())
            transport.sendto(b"small", live.getsockname())
            assert live.recv(100) == b"small"
            await until(lambda: sink.errors)
            [(remote, error, head)] = sink.errors
            assert remote == live.getsockname() and error.errno == errno.EMSGSIZE
            assert head == big[:64]
            live.sendto(b"back", transport.local_address)
            await until(lambda: sink.datagrams)
        transport.close()

    run_on(loop, main())


def test_the_server_answers_after_a_separate_response_met_a_closed_port(loop: str) -> None:
    """The field report: a NON request to a slow handler from a socket that then closes;
    the answer draws an ICMP error; the server must go on serving (uvloop stopped)."""

    async def main() -> None:
        server = Server(bind=("127.0.0.1", 0))
        answered = asyncio.Event()

        @server.route("/slow")
        async def slow(request: Any) -> Response:
            await asyncio.sleep(0.2)
            answered.set()
            return Response(payload="late")

        @server.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hi")

        async with server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
                request = Message(
                    MessageType.NON, Code.GET, 0x1234, b"ab", Options.build(uri_path=["slow"])
                )
                gone.sendto(request.encode(), ("127.0.0.1", server.port))
            await asyncio.wait_for(answered.wait(), 3)
            await asyncio.sleep(0.1)  # the ICMP error comes back while the loop idles
            async with Client(timeout=3) as client:
                for _ in range(3):
                    response = await client.get(f"coap://127.0.0.1:{server.port}/hello")
                    assert response.payload == b"hi"

    run_on(loop, main())


def test_the_client_goes_on_after_a_request_to_a_closed_port(loop: str) -> None:
    async def main() -> None:
        server = Server(bind=("127.0.0.1", 0))

        @server.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hi")

        async with server, Client(timeout=3) as client:
            closed = free_udp_port()
            started = time.monotonic()
            with pytest.raises(NetworkError, match=r"refused|unreachable"):
                await client.get(f"coap://127.0.0.1:{closed}/x")
            assert time.monotonic() - started < 1.0  # at once, not after retransmissions
            for _ in range(3):
                response = await client.get(f"coap://127.0.0.1:{server.port}/hello")
                assert response.payload == b"hi"

    run_on(loop, main())


def test_an_error_for_one_server_fails_only_the_requests_to_it(loop: str) -> None:
    """Requests to a live server in flight while another server's port turns out closed."""

    async def main() -> None:
        server = Server(bind=("127.0.0.1", 0))
        release = asyncio.Event()

        @server.route("/wait")
        async def wait(request: Any) -> Response:
            await release.wait()
            return Response(payload="done")

        async with server, Client(timeout=5) as client:
            waiting = [
                asyncio.ensure_future(client.get(f"coap://127.0.0.1:{server.port}/wait"))
                for _ in range(3)
            ]
            await asyncio.sleep(0.05)
            with pytest.raises(NetworkError):
                await client.get(f"coap://127.0.0.1:{free_udp_port()}/x")
            assert not any(task.done() for task in waiting)
            release.set()
            assert [r.payload for r in await asyncio.gather(*waiting)] == [b"done"] * 3

    run_on(loop, main())
