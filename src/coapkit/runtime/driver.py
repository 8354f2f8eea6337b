"""The asyncio driver: runs a sans-I/O :class:`~coapkit.endpoint.Endpoint` over a transport.

Theory of operation
-------------------
The driver is thin on purpose.  The transport calls
:meth:`Driver.datagram_received` for every datagram of a batch and
:meth:`Driver.batch_done` once the batch is read; the driver feeds each
datagram to the endpoint with ``loop.time()``, sends what comes back, turns
events into results for the awaiting callers, and after the batch arms
**one** ``loop.call_at`` timer for the endpoint's next deadline.  There is no
task and no timer per message.

Logging: the core returns events instead of logging; the driver logs them on
the logger of the layer they come from (``coapkit.messaging``,
``coapkit.exchanges``, ``coapkit.blockwise``, ``coapkit.observe``; its own
troubles on ``coapkit.runtime``), and every datagram it sends or receives on
``coapkit.trace`` at DEBUG, formatted by :class:`~coapkit.trace.DatagramTrace`
like the command-line tool's ``-v``.  Whether that logger is enabled is asked
once per batch of received datagrams (and once per call from the
application or the timer); when it is not, a datagram costs one attribute
test, as when no ``tracer`` is given.

Containment: the driver is where the stack calls out (request handlers, the
tracer, logging, progress callbacks, the futures of waiting callers) and where
the event loop calls in (datagrams, errors, the timer).  Nothing that fails
out there may stop the work in here: the endpoint sees every datagram before
anything is traced, every event of an output is delivered even if sending or
tracing failed, the timer is re-armed whatever its work raised, and a failing
callback is reported once on the log (a tracer that raises is switched off).
A request handler that raises answers 5.00; one that outlives
``handler_timeout`` is cancelled, answered 5.00 and its slot given back, and
one that ignores its cancellation does not hold up :meth:`Driver.close` for
longer than ``close_grace``.

Client requests wait on a future stored in the request handle's ``owner``;
observations and multicast requests on a :class:`ResponseStream`.  Incoming
requests go to the ``request_handler`` (the server's site): a response that
is ready at once is sent in the same step (so it is piggybacked), one that
needs awaiting runs in a task and is sent when the task finishes.  A handler
answers with a :class:`Message` or with anything else that has its code,
options and payload (:class:`~coapkit.codec.message.ResponseParts`, such as a
``coapkit.resources.Response``): those are sent as they are on the fast path
and made into a message (the request's token, type decided by the endpoint)
only when the general path needs one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, cast

from coapkit.blockwise.client import Transfer, TransferProgress
from coapkit.codec.codes import Code, code_name
from coapkit.codec.message import Message, ResponseParts
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.compiled import mypyc_attr
from coapkit.connections.layer import CloseConnection, ConnectionReady
from coapkit.endpoint import Endpoint, Output
from coapkit.errors import (
    BacklogFull,
    CoapError,
    EndpointClosed,
    NetworkError,
    RequestCancelled,
)
from coapkit.exchanges.events import (
    Diagnostic,
    IncomingRequest,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    RequestRefused,
    ResponseAcknowledged,
    ResponseDeliveryFailed,
    ResponseEvent,
    ResponseRejected,
)
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import Inbound, InboundState, Remote
from coapkit.observe.registry import Observer
from coapkit.observe.server import ObserverRemoved
from coapkit.trace import DatagramTrace, show_remote
from coapkit.trace import logger as trace_logger

logger = logging.getLogger("coapkit.runtime")
#: The core does not log: the driver logs its events on the logger of their layer.
layer_loggers = {
    name: logging.getLogger(f"coapkit.{name}")
    for name in ("messaging", "exchanges", "blockwise", "observe")
}
_DEBUG = logging.DEBUG

RequestHandler = Callable[[IncomingRequest], "ResponseParts | Awaitable[ResponseParts]"]
Tracer = Callable[[str, bytes, Remote], None]
ProgressCallback = Callable[[int, int | None], None]

_EAGER = sys.version_info >= (3, 12)


@mypyc_attr(allow_interpreted_subclasses=True)  # OSCORE's stream (runtime/oscore.py)
class ResponseStream:
    """Responses of a request that stays open (observation, multicast), as an async iterator."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Message, Remote]] = deque()
        self._error: BaseException | None = None
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self.handle: Transfer | None = None

    def push(self, message: Message, remote: Remote) -> None:
        self._items.append((message, remote))
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._wake()

    @property
    def ended(self) -> bool:
        return self._ended

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> tuple[Message, Remote] | None:
        """The next response, ``None`` at a clean end; raises the error that ended it."""
        while not self._items:
            if self._ended:
                if self._error is not None:
                    raise self._error
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Driver:
    """Drives one Endpoint over one transport on one event loop."""

    def __init__(
        self,
        endpoint: Endpoint,
        loop: asyncio.AbstractEventLoop,
        *,
        request_handler: RequestHandler | None = None,
        tracer: Tracer | None = None,
        max_pending: int = 1000,
        max_pending_per_remote: int = 100,
        handler_timeout: float | None = None,
        close_grace: float = 2.0,
        max_waiting: int = 100_000,
        framing: str = "udp",
    ) -> None:
        self.endpoint = endpoint
        self.loop = loop
        #: how the transport frames messages ("udp", "tcp", "ws"), for the trace log
        self.framing = framing
        #: how long a request handler may run before it is cancelled and the request
        #: answered 5.00 (default: EXCHANGE_LIFETIME, after which no client still waits)
        self.handler_timeout = (
            endpoint.messaging.params.exchange_lifetime
            if handler_timeout is None
            else handler_timeout
        )
        #: how long :meth:`close` waits for cancelled handlers to finish
        self.close_grace = close_grace
        #: requests that may wait, in all, for room in a peer's NSTART backlog
        self.max_waiting = max_waiting
        #: requests waiting for room in a peer's backlog, per remote, first come first
        #: served (see :meth:`_wait_for_room`)
        self._room_waiters: dict[Remote, deque[asyncio.Future[None]]] = {}
        self._waiting = 0
        #: handlers cancelled because they outlived handler_timeout
        self.handlers_timed_out = 0
        #: handlers that may be awaiting at once; beyond, requests get 5.03 with Max-Age
        self.max_pending = max_pending
        #: the same for one remote, so that one slow client cannot take every slot
        self.max_pending_per_remote = max_pending_per_remote
        #: requests refused because max_pending (or, for their remote,
        #: max_pending_per_remote) handlers were running
        self.overloaded = 0
        self._pending_by_remote: dict[Remote, int] = {}
        #: called after each answer to a request handler's request went to the endpoint
        #: (the server's request log): ``responded(handle, response)``
        self.responded: Callable[[Inbound, ResponseParts], None] | None = None
        #: called when the endpoint removed an observer on its own (RST, no ACK, ICMP...)
        self.observer_removed: Callable[[Observer], None] | None = None
        #: called with the events the driver does not handle itself (the DTLS layer's:
        #: sessions made and ended), for the server's and client's logs
        self.on_event: Callable[[Any], None] | None = None
        self._overload_logged_at = -1e9
        self.request_handler = request_handler
        self.tracer = tracer
        #: True while datagrams are traced (``tracer`` given, or ``coapkit.trace`` at DEBUG)
        self._tracing = tracer is not None
        self._log_trace: DatagramTrace | None = None  # made when the trace log is first on
        #: the traces of the CoAP messages inside DTLS records (framing "dtls"): the
        #: tracer's own, for a DatagramTrace (``with_framing``), and the trace log's
        self._plain_trace: Any = None
        self._log_plain_trace: DatagramTrace | None = None
        self.transport: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._in_batch = False
        #: running handler tasks -> (deadline, request, remote), in deadline order (the
        #: timeout is one constant, so insertion order is deadline order)
        self._tasks: dict[asyncio.Task[Any], tuple[float, Inbound, Remote]] = {}
        self._trace_failed = False
        #: callers waiting for a connection's CSM from the peer (see connection_ready)
        self._ready_waiters: dict[Remote, list[asyncio.Future[None]]] = {}
        #: (remote, cause) pairs of connections aborted, logged once each (bounded)
        self._abort_logged: set[tuple[Remote, str]] = set()
        self._progress: dict[Transfer, ProgressCallback] = {}
        self._closed = False
        #: take the endpoint's shortcuts for plain requests and answers sent at once
        #: (Endpoint.accept_request, Endpoint.respond_now); the result is the same either way
        self.fast_path = True
        if tracer is not None and framing == "dtls":
            self._trace_plaintexts()

    def attach(self, transport: Any) -> None:
        self.transport = transport

    # -- from the transport ----------------------------------------------------------

    def datagram_received(self, data: bytes, remote: Remote, multicast: bool) -> None:
        if self._closed:
            return
        if not self._in_batch:  # the first datagram of a batch
            self._in_batch = True
            self._check_tracing()
        if self._tracing:
            self._trace("recv", data, remote)
        try:
            now = self.loop.time()
            if self.fast_path and not multicast and self.request_handler is not None:
                inbound = self.endpoint.accept_request(data, remote, now)
                if inbound is not None:
                    self._incoming(IncomingRequest(inbound.message, remote, inbound))
                    return
            self._process(self.endpoint.datagram_received(data, remote, now, multicast=multicast))
        except Exception:
            _report_failure(f"processing a datagram from {show_remote(remote)}")

    def error_received(self, remote: Remote, error: NetworkError, head: bytes = b"") -> None:
        """The network reported ``error`` for ``remote``; ``head`` is the start of the
        datagram it concerns, when known."""
        if self._closed:
            return
        try:
            if logger.isEnabledFor(_DEBUG):
                logger.debug("network error for %s: %s", show_remote(remote), error)
            self._process(self.endpoint.network_error(remote, error, self.loop.time(), head))
        except Exception:
            _report_failure(f"handling a network error for {show_remote(remote)}")

    def batch_done(self) -> None:
        self._in_batch = False
        self._rearm()

    # -- connections (RFC 8323; from a stream transport) ------------------------------------

    def connection_made(self, remote: Remote, websocket: bool = False) -> None:
        """A connection is up: the endpoint sends its CSM."""
        if self._closed:
            return
        try:
            self._process(
                self.endpoint.connection_made(remote, self.loop.time(), websocket=websocket)
            )
        except Exception:
            _report_failure(f"opening the connection to {show_remote(remote)}")

    def connection_lost(self, remote: Remote, error: NetworkError) -> None:
        """A connection closed: its exchanges fail, its observations end."""
        for waiter in self._ready_waiters.pop(remote, ()):
            if not waiter.done():
                waiter.set_exception(error)
        if self._closed:
            return
        try:
            self._process(self.endpoint.connection_lost(remote, error, self.loop.time()))
        except Exception:
            _report_failure(f"closing the connection to {show_remote(remote)}")

    # -- output -------------------------------------------------------------------------

    def _check_tracing(self) -> None:
        """Whether datagrams are traced until the next check (once per batch or call)."""
        self._tracing = not self._trace_failed and (
            self.tracer is not None or trace_logger.isEnabledFor(_DEBUG)
        )
        if self.framing == "dtls":
            self._trace_plaintexts()

    def _trace_plaintexts(self) -> None:
        """Under DTLS: have the session layer report the CoAP messages it decrypts and
        encrypts while datagrams are traced (the records alone show sizes, not messages)."""
        security = self.endpoint.security
        if security is not None:
            security.plaintext_tracer = self._trace_plaintext if self._tracing else None

    def _trace_plaintext(self, direction: str, data: bytes, remote: Remote) -> None:
        """Trace a CoAP message carried inside DTLS, as the tracer's DatagramTrace (if it is
        one) and the trace log show plain datagrams, marked as DTLS's."""
        try:
            tracer = self.tracer
            if tracer is not None:
                inner = self._plain_trace
                if inner is None:
                    with_framing = getattr(tracer, "with_framing", None)
                    inner = self._plain_trace = (
                        False if with_framing is None else with_framing("decrypted")
                    )
                if inner is not False:
                    inner(direction, data, remote)
            if trace_logger.isEnabledFor(_DEBUG):
                trace = self._log_plain_trace
                if trace is None:  # the records' trace's clock and start, when it has one
                    base = self._log_trace
                    trace = self._log_plain_trace = (
                        DatagramTrace(self.loop.time, framing="decrypted")
                        if base is None
                        else base.with_framing("decrypted")
                    )
                trace_logger.debug("%s", trace.format(direction, data, remote))
        except Exception:
            self._trace_failed = True
            self._tracing = False
            self._trace_plaintexts()
            _report_failure("the datagram tracer (tracing is off from now on)")

    def _trace(self, direction: str, data: bytes, remote: Remote) -> None:
        """Trace a datagram; a tracer (or trace log handler) that raises is switched off."""
        try:
            if self.tracer is not None:
                self.tracer(direction, data, remote)
            if trace_logger.isEnabledFor(_DEBUG):
                trace = self._log_trace
                if trace is None:
                    trace = self._log_trace = DatagramTrace(self.loop.time, framing=self.framing)
                trace_logger.debug("%s", trace.format(direction, data, remote))
        except Exception:
            self._trace_failed = True
            self._tracing = False
            _report_failure("the datagram tracer (tracing is off from now on)")

    def _process(self, output: Output) -> None:
        try:
            if output.datagrams:
                self._send(output.datagrams)
        except Exception:
            _report_failure("sending")
        for event in output.events:
            try:
                self._handle(event)
            except Exception:
                _report_failure(f"delivering {event.__class__.__name__}")
        if self._room_waiters:
            self._wake_waiters()
        if not self._in_batch:
            self._rearm()

    def _send(self, datagrams: Sequence[tuple[bytes, Remote]]) -> None:
        if not self._in_batch:  # a call from the application or the timer
            self._check_tracing()
        transport = self.transport
        tracing = self._tracing
        for data, remote in datagrams:
            if tracing:
                self._trace("send", data, remote)
            transport.sendto(data, remote)

    def _rearm(self) -> None:
        if self._closed:
            return
        deadline = self.endpoint.next_deadline()
        if self._tasks:  # the oldest running handler's deadline
            overdue = next(iter(self._tasks.values()))[0]
            if deadline is None or overdue < deadline:
                deadline = overdue
        when = self._timer_when
        if when is not None and (deadline is None or deadline >= when):
            # The armed timer fires no later than needed; when it fires it runs what is due
            # (maybe nothing) and arms for the next deadline.  A client whose requests are
            # answered before their retransmission timers would otherwise cancel and
            # schedule a loop timer twice per request.
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_when = deadline
        self._timer = None if deadline is None else self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        if self._closed:
            return
        try:
            now = self.loop.time()
            if self._tasks:
                self._cancel_overdue(now)
            self._process(self.endpoint.handle_timeout(now))
        except Exception:
            _report_failure("the endpoint's timer")
        finally:
            self._rearm()

    def _handle(self, event: Any) -> None:
        cls = event.__class__
        if cls is IncomingRequest:
            self._incoming(event)
        elif cls is ResponseEvent:
            owner = event.handle.owner
            if isinstance(owner, asyncio.Future):
                if not owner.done():
                    owner.set_result((event.response, event.remote))
            elif isinstance(owner, ResponseStream):
                owner.push(event.response, event.remote)
                if event.final:
                    owner.end()
        elif cls is RequestFailed:
            owner = event.handle.owner
            if isinstance(owner, asyncio.Future):
                if not owner.done():
                    owner.set_exception(event.error)
            elif isinstance(owner, ResponseStream):
                owner.end(event.error)
        elif cls is TransferProgress:
            layer_loggers["blockwise"].debug(
                "%r: %d of %s bytes", event.handle, event.done, event.total or "?"
            )
            callback = self._progress.get(event.handle)
            if callback is not None:
                try:
                    callback(event.done, event.total)
                except Exception:
                    logger.exception("progress callback failed")
        elif cls is PongReceived:
            owner = event.handle.owner
            if isinstance(owner, asyncio.Future) and not owner.done():
                owner.set_result(event.rtt)
        elif cls is CloseConnection:
            self._close_connection(event)
        elif cls is ConnectionReady:
            for waiter in self._ready_waiters.pop(event.remote, ()):
                if not waiter.done():
                    waiter.set_result(None)
            logger.debug(
                "%s: CSM received (Max-Message-Size %d%s)",
                show_remote(event.remote),
                event.max_message_size,
                ", Block-Wise-Transfer" if event.block_wise else "",
            )
        elif cls is ObserverRemoved:
            layer_loggers["observe"].debug("observer %r removed: %s", event.observer, event.reason)
            if self.observer_removed is not None:
                self.observer_removed(event.observer)
        elif cls is RequestAcknowledged:
            layer_loggers["exchanges"].debug(
                "request %r acknowledged; awaiting a separate response", event.handle
            )
        elif cls is RequestRefused:
            if self.responded is not None:
                self._log_response(event.handle, event.response)
        elif cls is Diagnostic:
            layer_loggers[event.layer].debug("from %s: %s", show_remote(event.remote), event.reason)
        elif cls is ResponseAcknowledged:
            layer_loggers["exchanges"].debug(
                "response to %s acknowledged", show_remote(event.remote)
            )
        elif cls is ResponseRejected:
            layer_loggers["exchanges"].debug(
                "response to %s rejected with a Reset", show_remote(event.remote)
            )
        elif cls is ResponseDeliveryFailed:
            layer_loggers["exchanges"].debug(
                "response to %s not acknowledged: %s", show_remote(event.remote), event.error
            )
        elif self.on_event is not None:
            self.on_event(event)

    async def connection_ready(self, remote: Remote) -> None:
        """Wait until the peer's CSM has arrived on the connection to ``remote`` (RFC 8323
        §5.3): then its Max-Message-Size and Block-Wise-Transfer are known, and a first
        large request goes out as the peer can take it.  Raises the connection's error
        if it closes first; the connection layer's CSM timeout bounds the wait."""
        layer = self.endpoint.connections
        if layer is None:
            return
        connection = layer.connection(remote)
        if connection is not None and connection.peer_csm:
            return
        if connection is None or connection.closed:
            ending = layer.ending(remote)
            if isinstance(ending, NetworkError):  # closed already: say why
                raise NetworkError(str(ending), errno=ending.errno)
            raise NetworkError(f"no open connection to {show_remote(remote)}")
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._ready_waiters.setdefault(remote, []).append(waiter)
        try:
            await waiter
        finally:
            waiters = self._ready_waiters.get(remote)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._ready_waiters[remote]

    def _close_connection(self, event: CloseConnection) -> None:
        """The connection layer released or aborted a connection: close it, and say why
        (an abort for the peer's fault once per peer and cause, at WARNING)."""
        transport = self.transport
        if transport is not None:
            transport.close_connection(event.remote, abort=event.aborted)
        if event.aborted:
            key = (event.remote, event.reason)
            if key not in self._abort_logged:
                if len(self._abort_logged) >= 4096:
                    self._abort_logged.clear()
                self._abort_logged.add(key)
                logger.warning(
                    "connection to %s closed: %s", show_remote(event.remote), event.reason
                )
        else:
            logger.debug("connection to %s closed: %s", show_remote(event.remote), event.reason)

    # -- server side ----------------------------------------------------------------------------

    def _incoming(self, event: IncomingRequest) -> None:
        handler = self.request_handler
        if handler is None:
            self._respond(event.handle, Message(code=Code.NOT_FOUND))
            return
        remote = event.remote
        pending_here = self._pending_by_remote.get(remote, 0)
        if len(self._tasks) >= self.max_pending or pending_here >= self.max_pending_per_remote:
            self._refuse_overloaded(event.handle)
            return
        try:
            result = handler(event)
        except Exception:
            logger.exception("request handler failed")
            self._respond(event.handle, Message(code=Code.INTERNAL_SERVER_ERROR))
            return
        if isinstance(result, Message) or not hasattr(result, "__await__"):
            self._respond(event.handle, result)
            return
        pending = cast("Awaitable[ResponseParts]", result)
        if _EAGER:
            task = asyncio.Task(
                self._finish(event.handle, pending),
                loop=self.loop,
                eager_start=True,  # type: ignore[call-arg]
            )
        else:
            task = self.loop.create_task(self._finish(event.handle, pending))
        if not task.done():
            deadline = self.loop.time() + self.handler_timeout
            first = not self._tasks
            self._tasks[task] = (deadline, event.handle, remote)
            self._pending_by_remote[remote] = pending_here + 1
            task.add_done_callback(self._handler_done)
            if first and not self._in_batch:
                self._rearm()

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        entry = self._tasks.pop(task, None)
        if entry is not None:
            self._release(entry[2])

    def _release(self, remote: Remote) -> None:
        left = self._pending_by_remote.get(remote, 1) - 1
        if left > 0:
            self._pending_by_remote[remote] = left
        else:
            self._pending_by_remote.pop(remote, None)

    def _cancel_overdue(self, now: float) -> None:
        """Cancel handlers that outlived ``handler_timeout``: their requests are answered
        5.00 now and their slots given back, whether or not the task obeys the
        cancellation (one that does not is left to finish unheeded)."""
        tasks = self._tasks
        while tasks:
            task, (deadline, handle, remote) = next(iter(tasks.items()))
            if deadline > now:
                return
            del tasks[task]
            self._release(remote)
            self.handlers_timed_out += 1
            _report_failure(
                f"the request handler for {_describe_request(handle)}: still running after "
                f"{self.handler_timeout:g} s; cancelled, answered 5.00",
                traceback=False,
            )
            if handle.state is not InboundState.DONE:
                self._respond(handle, Message(code=Code.INTERNAL_SERVER_ERROR))
            task.cancel()

    def _refuse_overloaded(self, handle: Inbound) -> None:
        """5.03 Service Unavailable with Max-Age: come back later (RFC 7252 §5.9.3.4)."""
        self.overloaded += 1
        now = self.loop.time()
        if now - self._overload_logged_at > 10.0:
            self._overload_logged_at = now
            logger.warning(
                "%d request handlers are running (%d for %s); answering 5.03 until some finish",
                len(self._tasks),
                self._pending_by_remote.get(handle.remote, 0),
                show_remote(handle.remote),
            )
        busy = Message(code=Code.SERVICE_UNAVAILABLE, options=Options.build(max_age=2))
        self._respond(handle, busy)

    async def _finish(self, handle: Inbound, pending: Awaitable[ResponseParts]) -> None:
        response: ResponseParts
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            _report_failure("request handler")
            response = Message(code=Code.INTERNAL_SERVER_ERROR)
        if self._closed:
            return
        if handle.state is InboundState.DONE:
            # Answered meanwhile (the handler outlived its deadline and got 5.00).
            logger.debug("a late handler's response to %s dropped", show_remote(handle.remote))
            return
        self._respond(handle, response)

    def _respond(self, handle: Inbound, response: ResponseParts) -> None:
        if self._closed:
            return
        now = self.loop.time()
        if self.fast_path:
            data = self.endpoint.respond_now(handle, response, now)
            if data is not None:
                if self._in_batch and not self._tracing:  # (what _send would do, in short)
                    self.transport.sendto(data, handle.remote)
                else:
                    self._send(((data, handle.remote),))
                if self.responded is not None:
                    self._log_response(handle, response)
                if not self._in_batch:  # a NON's message ID is held: its expiry may come first
                    self._rearm()
                return
        if not isinstance(response, Message):  # parts only: the request gives the token
            response = Message(
                MessageType.ACK,
                response.code,
                0,
                handle.message.token,
                response.options,
                response.payload,
            )
        try:
            output = self.endpoint.respond(handle, response, now)
        except CoapError as exc:
            logger.warning("could not send the response: %s", exc)
            return
        self._process(output)
        if self.responded is not None:
            self._log_response(handle, response)

    def _log_response(self, handle: Inbound, response: ResponseParts) -> None:
        """The ``responded`` hook (the request log), after the answer went out."""
        hook = self.responded
        if hook is None:
            return
        try:
            hook(handle, response)
        except Exception:
            _report_failure("the request log")

    def respond(
        self,
        handle: Inbound,
        response: Message,
        *,
        mtype: MessageType | None = None,
        owner: Any = None,
    ) -> None:
        """Answer a request outside the request handler's return value (e.g. observe)."""
        if self._closed:
            return
        self._process(
            self.endpoint.respond(handle, response, self.loop.time(), mtype=mtype, owner=owner)
        )

    def notify(
        self,
        observer: Observer,
        notification: Message,
        *,
        sequence: int,
        mtype: MessageType | None = None,
        con_every: int | None = None,
    ) -> None:
        """Send an Observe notification (see :meth:`Endpoint.notify`); nothing once closed."""
        if self._closed:
            return
        self._process(
            self.endpoint.notify(
                observer,
                notification,
                self.loop.time(),
                sequence=sequence,
                mtype=mtype,
                con_every=con_every,
            )
        )

    # -- client side -------------------------------------------------------------------------------

    async def request(
        self,
        message: Message,
        remote: Remote,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[Message, Remote]:
        """Send a request and wait for its (final) response.

        ``progress(done, total)`` is called after each block of a block-wise transfer.
        """
        if self._closed:
            raise EndpointClosed("the client is closed")
        if self._room_waiters and remote in self._room_waiters:
            await self._wait_for_room(remote)  # behind those already waiting
        while True:
            try:
                handle, output = self.endpoint.request(
                    message,
                    remote,
                    self.loop.time(),
                    mtype=mtype,
                    transmission=transmission,
                    timeout=timeout,
                )
                break
            except BacklogFull:
                await self._wait_for_room(remote, first=True)
        future: asyncio.Future[tuple[Message, Remote]] = self.loop.create_future()
        handle.owner = future
        if progress is not None:
            self._progress[handle] = progress
        self._process(output)
        try:
            return await future
        except asyncio.CancelledError:
            self.cancel(handle)
            raise
        finally:
            if progress is not None:
                self._progress.pop(handle, None)

    async def _wait_for_room(self, remote: Remote, *, first: bool = False) -> None:
        """Wait until the peer's NSTART backlog has room (RFC 7252 §4.7: at most NSTART
        exchanges outstanding towards a peer; the message layer queues up to
        ``backlog_limit`` more).  Requests beyond wait here in order, ``max_waiting`` of
        them at most, so that ``gather`` of many requests to one server completes rather
        than failing with :class:`BacklogFull`.  ``first``: this request was woken and
        found no room after all (another took it): it keeps its place at the front.
        """
        if self._closed:
            raise EndpointClosed("the client is closed")
        if self._waiting >= self.max_waiting:
            raise BacklogFull(
                f"{self._waiting} requests already wait for room towards "
                f"{show_remote(remote)} and other peers (NSTART="
                f"{self.endpoint.messaging.parameters_for(remote).nstart}, "
                f"MessagingConfig.backlog_limit="
                f"{self.endpoint.messaging.config.backlog_limit} each); "
                "raise Client(max_waiting=) to let more wait"
            )
        waiter: asyncio.Future[None] = self.loop.create_future()
        waiters = self._room_waiters.setdefault(remote, deque())
        if first:
            waiters.appendleft(waiter)
        else:
            waiters.append(waiter)
        self._waiting += 1
        try:
            await waiter
        finally:
            self._waiting -= 1
            if not waiter.done() or waiter.cancelled():
                with suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters and self._room_waiters.get(remote) is waiters:
                    del self._room_waiters[remote]

    def _wake_waiters(self) -> None:
        """Let as many waiting requests go as each peer's backlog has room for."""
        messaging = self.endpoint.messaging
        limit = messaging.config.backlog_limit
        for remote, waiters in list(self._room_waiters.items()):
            room = limit - messaging.backlog(remote)
            while waiters and room > 0:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    room -= 1
            if not waiters:
                del self._room_waiters[remote]

    def open_stream(
        self,
        message: Message,
        remote: Remote,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        token: bytes | None = None,
        manage_observation: bool = True,
    ) -> ResponseStream:
        """Send a request that stays open; its responses arrive on the returned stream
        (``manage_observation``: see :meth:`Endpoint.request`)."""
        if self._closed:
            raise EndpointClosed("the client is closed")
        stream = ResponseStream(self.loop)
        handle, output = self.endpoint.request(
            message,
            remote,
            self.loop.time(),
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            keep_open=True,
            token=token,
            manage_observation=manage_observation,
        )
        handle.owner = stream
        stream.handle = handle
        self._process(output)
        return stream

    def cancel(self, handle: Transfer) -> None:
        if self._closed:
            return
        self._process(self.endpoint.cancel(handle, self.loop.time()))
        owner = handle.owner
        if isinstance(owner, ResponseStream):
            owner.end(RequestCancelled("cancelled"))

    async def ping(self, remote: Remote) -> float:
        if self._closed:
            raise EndpointClosed("the client is closed")
        future: asyncio.Future[float] = self.loop.create_future()
        handle, output = self.endpoint.ping(remote, self.loop.time())
        handle.owner = future
        self._process(output)
        try:
            return await future
        except asyncio.CancelledError:
            self.cancel(handle)
            raise

    # -- the end ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Answer the requests whose handlers still run with 5.03, fail what is open, stop
        the timer and the handler tasks, close the transport.

        A client whose request got an empty ACK would otherwise wait for a separate
        response until its exchange lifetime ends; 5.03 Service Unavailable (with
        Max-Age 30) tells it at once that the server went away and may be back.  Handler
        tasks are cancelled; those that ignore the cancellation are abandoned after
        ``close_grace`` seconds with a warning naming them.
        """
        if self._closed:
            return
        for waiters in self._room_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(EndpointClosed("the client is closed"))
        self._room_waiters.clear()
        running = list(self._tasks.items())
        for _task, (_deadline, handle, _remote) in running:
            unavailable = Message(code=Code.SERVICE_UNAVAILABLE, options=_CLOSING_OPTIONS)
            try:
                if handle.state is InboundState.PENDING:  # piggybacked, or a NON to a NON
                    self._respond(handle, unavailable)
                elif handle.state is InboundState.ACKED:  # no one will retransmit it: NON
                    self.respond(handle, unavailable, mtype=MessageType.NON)
            except Exception:
                _report_failure("answering a request at shutdown")
        output = self.endpoint.shutdown(self.loop.time())
        if output.datagrams:  # DTLS: a close_notify in each session
            try:
                self._send(output.datagrams)
            except Exception:
                _report_failure("sending at shutdown")
        for event in output.events:
            try:
                self._handle(event)
            except Exception:
                _report_failure(f"delivering {event.__class__.__name__}")
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [task for task, _ in running]
        self._tasks.clear()
        self._pending_by_remote.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.close_grace)
            for task in stuck:
                _report_failure(
                    f"request handler {task.get_coro()!r} ignored its cancellation; "
                    f"abandoned after {self.close_grace:g} s",
                    traceback=False,
                )
        if self.transport is not None:
            self.transport.close()

    @property
    def closed(self) -> bool:
        return self._closed


_CLOSING_OPTIONS = Options.build(max_age=30)


def _report_failure(what: str, *, traceback: bool = True) -> None:
    """Log that something the driver called failed, with its traceback; never raises
    (a logging handler or filter that raises must not take the driver down with it)."""
    with suppress(Exception):
        if traceback:
            logger.exception("%s failed", what)
        else:
            logger.warning("%s", what)


def _describe_request(handle: Inbound) -> str:
    message = handle.message
    try:
        path = "/" + "/".join(message.options.uri_path)
    except CoapError:
        path = "(undecodable path)"
    return f"{code_name(message.code)} {path} from {show_remote(handle.remote)}"
