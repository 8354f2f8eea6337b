"""Sends the kernel refuses for now (full buffers) and hosts that are not there, for real.

A peer in a network namespace behind a veth link with a token-bucket queue
(``tests.runtime.netns``): a large queue and a small send buffer make
``sendto`` fail with ``EAGAIN``; a tiny queue makes it fail with ``ENOBUFS``
(Linux reports that only to sockets with ``IP_RECVERR`` on, as coapkit's are).
Neither is the peer's failure: every datagram must arrive, in order, and
nothing is reported.  An address on the link that nobody has draws
``EHOSTUNREACH`` for that address only.  On asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from typing import Any

import pytest

from coapkit.errors import NetworkError
from coapkit.transports.udp import UdpTransport
from tests.runtime.loops import LOOPS, run_on
from tests.runtime.netns import Receiver, veth_link

pytestmark = pytest.mark.parametrize("loop", LOOPS)


class Sink:
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.errors: list[tuple[Any, NetworkError]] = []

    def datagram_received(self, data: bytes, remote: Any, multicast: bool) -> None:
        self.datagrams.append((data, remote))

    def error_received(self, remote: Any, error: NetworkError, head: bytes) -> None:
        self.errors.append((remote, error))

    def batch_done(self) -> None:
        pass


async def drained(transport: UdpTransport, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while transport._write_backlog:
        assert time.monotonic() < deadline, "the send backlog did not drain"
        await asyncio.sleep(0.01)


def send_through(loop: str, qdisc: str, count: int, sndbuf: int | None) -> None:
    with veth_link() as link:
        link.set_qdisc(qdisc)
        receiver = Receiver(link, count)
        try:

            async def main() -> tuple[int, list[tuple[Any, NetworkError]], list[bytes]]:
                sink = Sink()
                transport = UdpTransport.bind(asyncio.get_running_loop(), sink, link.local, 0)
                if sndbuf is not None:
                    transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                for n in range(count):
                    transport.sendto(b"%08d" % n + bytes(392), receiver.address)
                waited = len(transport._write_backlog)
                await drained(transport)
                deadline = time.monotonic() + 10
                while not sink.datagrams and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                transport.close()
                return waited, sink.errors, [data for data, _ in sink.datagrams]

            waited, errors, back = run_on(loop, main())
            received = receiver.result()
        finally:
            receiver.stop()
    assert waited > 0, "the kernel never refused a send: the test did not test anything"
    assert errors == []
    assert received == [f"{n:08d}" for n in range(count)]  # all of them, in order
    assert back == [b"hello from the namespace"]  # and the socket still received


def test_a_full_send_buffer_waits_for_room_and_loses_nothing(loop: str) -> None:
    # A queue that holds everything, drained at 4 Mbit/s; 8 KiB of send buffer: EAGAIN.
    send_through(loop, "tbf rate 4mbit burst 16kb limit 10000000", 400, sndbuf=4096)


def test_a_full_device_queue_is_retried_and_loses_nothing(loop: str) -> None:
    # A queue of 3 KB: the device refuses with ENOBUFS, which has no readiness event.
    send_through(loop, "tbf rate 4mbit burst 4kb limit 3000", 200, sndbuf=None)


def test_an_absent_host_is_reported_for_its_address_only(loop: str) -> None:
    with veth_link() as link:
        receiver = Receiver(link, 1)
        try:

            async def main() -> list[tuple[Any, NetworkError]]:
                sink = Sink()
                transport = UdpTransport.bind(asyncio.get_running_loop(), sink, link.local, 0)
                absent = (link.absent, 5683)
                transport.sendto(b"anyone?", absent)
                deadline = time.monotonic() + 10
                while not sink.errors and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                transport.sendto(b"00000000", receiver.address)
                while not sink.datagrams and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                transport.close()
                return sink.errors

            errors = run_on(loop, main())
            assert receiver.result() == ["00000000"]
        finally:
            receiver.stop()
    assert [(remote, error.errno) for remote, error in errors] == [
        ((link.absent, 5683), errno.EHOSTUNREACH)
    ]
