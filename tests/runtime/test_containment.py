"""What the stack calls out to may fail; the stack must not (asyncio and uvloop).

Each test injects a raising callback at one point where coapkit calls user
code or the logging system (the datagram tracer, a trace log filter, the
request log, a progress callback, a request handler that never returns or
ignores its cancellation) and checks that the work goes on: responses still
arrive, retransmissions and timeouts still happen, slots are given back, and
the failure is reported on the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest

from coapkit import Code, Message, Options
from coapkit.client import Client
from coapkit.codec.message import decode
from coapkit.codec.types import MessageType
from coapkit.errors import ProtocolUsageError, RequestTimeout
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.resources import Response
from coapkit.server import Server
from tests.runtime.loops import LOOPS, run_on

pytestmark = pytest.mark.parametrize("loop", LOOPS)


class Boom(Exception):
    pass


def make_server(**kwargs: Any) -> Server:
    server = Server(bind=("127.0.0.1", 0), **kwargs)

    @server.route("/hello")
    def hello(request: Any) -> Response:
        return Response(payload="hi")

    @server.route("/big")
    def big(request: Any) -> Response:
        return Response(payload=bytes(5000))

    return server


class Raising(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.calls += 1
        raise Boom("a log filter that raises")


@pytest.fixture
def raising_filter() -> Iterator[tuple[logging.Logger, Raising]]:
    """Attach a raising filter to a logger for the test (the logger named by the test)."""
    attached: list[tuple[logging.Logger, Raising, int]] = []

    def attach(name: str, level: int = logging.DEBUG) -> Raising:
        logger = logging.getLogger(name)
        flt = Raising()
        attached.append((logger, flt, logger.level))
        logger.addFilter(flt)
        logger.setLevel(level)
        return flt

    yield attach  # type: ignore[misc]
    for logger, flt, level in attached:
        logger.removeFilter(flt)
        logger.setLevel(level)


def test_a_raising_tracer_is_switched_off_and_nothing_is_lost(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"server": 0, "client": 0}

    def tracer(side: str) -> Any:
        def trace(direction: str, data: bytes, remote: object) -> None:
            calls[side] += 1
            raise Boom("a tracer that raises (like print to a closed stderr)")

        return trace

    async def main() -> None:
        async with (
            make_server(tracer=tracer("server")) as server,
            Client(timeout=3, tracer=tracer("client")) as client,
        ):
            for _ in range(3):
                response = await client.get(f"coap://127.0.0.1:{server.port}/hello")
                assert response.payload == b"hi"
            big = await client.get(f"coap://127.0.0.1:{server.port}/big")  # block-wise
            assert len(big.payload) == 5000

    with caplog.at_level(logging.ERROR, logger="coapkit.runtime"):
        run_on(loop, main())
    assert calls == {"server": 1, "client": 1}  # each raised once, then was switched off
    failures = [r for r in caplog.records if "tracer" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


def test_a_tracer_failing_in_a_retransmission_does_not_stop_the_timer(loop: str) -> None:
    """The timer's work raised before: the timer was not re-armed, the request hung."""
    sends = 0

    def tracer(direction: str, data: bytes, remote: object) -> None:
        nonlocal sends
        if direction == "send":
            sends += 1
            if sends == 2:  # the first retransmission, sent from the timer
                raise Boom("trace failed")

    async def main() -> float:
        fast = TransmissionParameters(ack_timeout=0.05, max_retransmit=3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            port = silent.getsockname()[1]
            async with Client(transmission=fast, tracer=tracer) as client:
                started = time.monotonic()
                with pytest.raises(RequestTimeout):
                    await asyncio.wait_for(client.get(f"coap://127.0.0.1:{port}/x"), 10)
                elapsed = time.monotonic() - started
            silent.setblocking(False)
            copies = 0
            while True:
                try:
                    silent.recv(100)
                except BlockingIOError:
                    break
                copies += 1
        assert copies == 4  # the request and all three retransmissions went out
        return elapsed

    assert run_on(loop, main()) < 5


def test_a_raising_trace_log_filter_changes_nothing(loop: str, raising_filter: Any) -> None:
    flt = raising_filter("coapkit.trace")

    async def main() -> None:
        async with make_server() as server, Client(timeout=3) as client:
            for _ in range(3):
                assert (await client.get(f"coap://127.0.0.1:{server.port}/hello")).text == "hi"

    run_on(loop, main())
    assert flt.calls >= 1


def test_a_raising_request_log_changes_nothing(loop: str, raising_filter: Any) -> None:
    flt = raising_filter("coapkit.server", logging.INFO)

    async def main() -> None:
        async with make_server(log_requests=True) as server, Client(timeout=3) as client:
            for _ in range(3):
                assert (await client.get(f"coap://127.0.0.1:{server.port}/hello")).text == "hi"
            assert (await client.put(f"coap://127.0.0.1:{server.port}/hello", b"x")).code == (
                Code.METHOD_NOT_ALLOWED
            )

    run_on(loop, main())
    assert flt.calls >= 4


def test_a_raising_request_log_sink_changes_nothing(loop: str) -> None:
    """``Server(request_log=)``, the sink coapkit server writes its access log through."""
    calls = []

    def sink(line: str) -> None:
        calls.append(line)
        raise Boom("the access log is broken")

    async def main() -> None:
        server = make_server(log_requests=True, request_log=sink)
        async with server, Client(timeout=3) as client:
            for _ in range(3):
                assert (await client.get(f"coap://127.0.0.1:{server.port}/hello")).text == "hi"

    run_on(loop, main())
    assert len(calls) == 3


def test_a_raising_progress_callback_does_not_stop_a_transfer(loop: str) -> None:
    def progress(done: int, total: int | None) -> None:
        raise Boom("progress callback")

    async def main() -> None:
        async with make_server() as server, Client(timeout=3) as client:
            uri = f"coap://127.0.0.1:{server.port}/big"
            assert len((await client.get(uri, progress=progress)).payload) == 5000

    run_on(loop, main())


def test_a_handler_that_never_returns_is_answered_500_and_gives_its_slot_back(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Field report: handlers that never return held every max_pending slot for good."""

    async def main() -> None:
        server = make_server(max_pending=4, max_pending_per_remote=4, handler_timeout=0.3)

        @server.route("/never")
        async def never(request: Any) -> Response:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        clients = [Client(timeout=5) for _ in range(4)]
        async with server, Client(timeout=5) as client:
            for other in clients:
                await other.start()
            uri = f"coap://127.0.0.1:{server.port}"
            first = [asyncio.ensure_future(c.get(f"{uri}/never")) for c in clients]
            await asyncio.sleep(0.1)
            busy = await client.get(f"{uri}/never")
            assert busy.code == Code.SERVICE_UNAVAILABLE  # every slot taken
            answers = await asyncio.gather(*first)
            assert [r.code for r in answers] == [Code.INTERNAL_SERVER_ERROR] * 4
            assert answers[0].payload == b""  # nothing internal on the wire
            # The slots are free again: handlers run, and a synchronous one answers.
            assert (await client.get(f"{uri}/never")).code == Code.INTERNAL_SERVER_ERROR
            assert (await client.get(f"{uri}/hello")).text == "hi"
            assert server.driver.handlers_timed_out == 5
            for other in clients:
                await other.close()

    with caplog.at_level(logging.WARNING, logger="coapkit.runtime"):
        run_on(loop, main())
    assert any("/never" in r.getMessage() and "0.3 s" in r.getMessage() for r in caplog.records)


def test_close_does_not_hang_on_a_handler_that_ignores_cancellation(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> float:
        server = make_server(close_grace=0.2)
        started = asyncio.Event()
        stop = False

        @server.route("/stubborn")
        async def stubborn(request: Any) -> Response:
            started.set()
            while not stop:
                with suppress(asyncio.CancelledError):  # swallowed: the application's bug
                    await asyncio.sleep(0.05)
            return Response(payload="never sent")

        async with Client(timeout=5) as client:
            await server.start()
            pending = asyncio.ensure_future(
                client.get(f"coap://127.0.0.1:{server.port}/stubborn", non=True)
            )
            await asyncio.wait_for(started.wait(), 3)
            began = time.monotonic()
            await asyncio.wait_for(server.close(), 5)
            took = time.monotonic() - began
            # The client is told at once that the server went away.
            answer = await asyncio.wait_for(pending, 3)
            assert answer.code == Code.SERVICE_UNAVAILABLE
            assert answer.options.max_age == 30
            stop = True
            await asyncio.sleep(0.1)
        return took

    with caplog.at_level(logging.WARNING, logger="coapkit.runtime"):
        took = run_on(loop, main())
    assert took < 1.5
    assert any("ignored its cancellation" in r.getMessage() for r in caplog.records)


def test_a_request_waiting_after_its_empty_ack_gets_503_when_the_server_closes(
    loop: str,
) -> None:
    """Field report: the client got the empty ACK and then waited up to 247 s."""

    async def main() -> None:
        server = make_server()
        entered = asyncio.Event()

        @server.route("/slow")
        async def slow(request: Any) -> Response:
            entered.set()
            await asyncio.sleep(60)
            return Response(payload="too late")

        await server.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            request = Message(
                MessageType.CON, Code.GET, 0x0101, b"tk", Options.build(uri_path=["slow"])
            )
            sock.sendto(request.encode(), ("127.0.0.1", server.port))
            loop_ = asyncio.get_running_loop()
            empty_ack = decode(await asyncio.wait_for(loop_.sock_recv(sock, 1500), 5))
            assert (empty_ack.mtype, empty_ack.code) == (MessageType.ACK, 0)
            assert entered.is_set()
            await server.close()
            answer = decode(await asyncio.wait_for(loop_.sock_recv(sock, 1500), 1))
        assert answer.code == Code.SERVICE_UNAVAILABLE and answer.token == b"tk"
        assert answer.mtype is MessageType.NON  # nobody would retransmit it

    run_on(loop, main())


def test_serve_forever_cancelled_outside_async_with_closes_its_socket(loop: str) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> tuple[int, int]:
        before = open_fds()
        for _ in range(20):
            server = make_server()
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0.01)
            assert server.port > 0
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert server.port > 0  # still tells which port it had
        return before, open_fds()

    before, after = run_on(loop, main())
    assert after <= before + 2  # 20 rounds leave no sockets behind (the loop's own aside)


def test_a_server_not_started_says_so(loop: str) -> None:
    server = make_server()
    with pytest.raises(ProtocolUsageError, match="not started"):
        _ = server.port


def test_a_host_name_to_bind_is_resolved(loop: str) -> None:
    """``Server(bind=("localhost", 0))`` failed with gaierror; it binds 127.0.0.1 now."""

    async def main() -> None:
        server = Server(bind=("localhost", 0))

        @server.route("/hello")
        def hello(request: Any) -> Response:
            return Response(payload="hi")

        async with server, Client(bind=("localhost", 0), timeout=3) as client:
            assert server.address[0] == "127.0.0.1"
            assert client.local_address[0] == "127.0.0.1"
            assert (await client.get(f"coap://localhost:{server.port}/hello")).text == "hi"
        with pytest.raises(OSError, match=r"cannot resolve 'no-such-host\.invalid'"):
            await Server(bind=("no-such-host.invalid", 0)).start()

    run_on(loop, main())


def test_gather_of_10000_requests_to_one_server_completes(loop: str) -> None:
    """aiocoap completes them all; coapkit failed 8,999 with BacklogFull."""

    async def main() -> None:
        async with make_server() as server, Client(timeout=30) as client:
            uri = f"coap://127.0.0.1:{server.port}/hello"
            responses = await asyncio.gather(*(client.get(uri) for _ in range(10_000)))
            assert {r.text for r in responses} == {"hi"} and len(responses) == 10_000
            assert client.driver._room_waiters == {} and client.driver._waiting == 0

    run_on(loop, main())


def test_beyond_max_waiting_a_request_fails_naming_the_setting(loop: str) -> None:
    async def main() -> None:
        async with make_server() as server, Client(timeout=30, max_waiting=10) as client:
            uri = f"coap://127.0.0.1:{server.port}/hello"
            results = await asyncio.gather(
                *(client.get(uri) for _ in range(1_100)), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, Exception)]
            assert len(failed) == 1_100 - 1 - 1_000 - 10  # outstanding, backlog, waiting
            message = str(failed[0])
            assert "max_waiting" in message and f"127.0.0.1:{server.port}" in message
            assert "::ffff:" not in message
            assert all(r.text == "hi" for r in results if not isinstance(r, Exception))

    run_on(loop, main())
