"""The asyncio CoAP server: a :class:`~coapkit.resources.site.Site` served over UDP.

>>> from coapkit import Server, Response                       # doctest: +SKIP
>>> server = Server(bind=("::", 5683))
>>> @server.route("/hello")
... def hello(request):
...     return Response(payload="Hello, CoAP!")
>>> async def main():
...     async with server:
...         await server.serve_forever()

Handlers may be plain functions (answered in the same step as the request
arrived, so the response is piggybacked in the ACK) or ``async def``
coroutines; a coroutine that takes longer than the empty-ACK delay gets an
empty ACK first and its response is sent separately (RFC 7252 §5.2.2).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import replace
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.bus import BusConnection, NotificationBus
from coapkit.codec.codes import Code, code_name
from coapkit.codec.message import Message, ResponseParts
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.uri import CoapUri, parse_uri, quote_segment
from coapkit.connections import ConnectionLayer, StreamConfig
from coapkit.dtls import DtlsConfig, DtlsLayer
from coapkit.endpoint import Endpoint
from coapkit.errors import NotStarted, UriError
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.exchanges.events import IncomingRequest
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.layer import MessagingConfig
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.records import Inbound
from coapkit.observe.registry import ObserveConfig, Observer, ObserveRegistry
from coapkit.randomness import RandomSource
from coapkit.resources.request import Request
from coapkit.resources.resource import HandlerT, Resource, ResourceT
from coapkit.resources.response import Response
from coapkit.resources.site import Site
from coapkit.runtime.driver import Driver, Tracer
from coapkit.runtime.dtls import DtlsLog
from coapkit.runtime.entropy import SystemEntropy
from coapkit.runtime.network import DatagramNetwork, DatagramTransport, default_network
from coapkit.security.dtls import DtlsServerCredentials
from coapkit.transports import require_dtls, require_websockets
from coapkit.transports.tcp import StreamLimits, StreamTransport
from coapkit.transports.udp import (
    COAP_MULTICAST_V4,
    COAP_MULTICAST_V6_LINK,
    COAP_MULTICAST_V6_SITE,
    resolve_bind_host,
)

if TYPE_CHECKING:
    from coapkit.oscore.server import OscoreServer

logger = logging.getLogger("coapkit.server")
_OBSERVE = int(OptionNumber.OBSERVE)
_URI_PATH = int(OptionNumber.URI_PATH)
#: the options a server with OSCORE understands (the OSCORE option itself, RFC 8613 §2)
_WITH_OSCORE = UNDERSTOOD_OPTIONS | {int(OptionNumber.OSCORE)}
#: and, with an EDHOC resource, the EDHOC option of a combined request (RFC 9668 §3.1)
_WITH_EDHOC = _WITH_OSCORE | {int(OptionNumber.EDHOC)}

DEFAULT_PORT = 5683
#: async renderings of one observer's notifications that may run at once (see _render)
RENDERS_PER_OBSERVER = 2
ALL_COAP_GROUPS = (COAP_MULTICAST_V4, COAP_MULTICAST_V6_LINK, COAP_MULTICAST_V6_SITE)


class Listener:
    """One transport a server listens on: the URI it is bound to and the endpoint and
    driver that serve it.  Every listener of a server serves the same site."""

    __slots__ = ("driver", "scheme", "security", "transport", "uri")

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.uri = ""  #: the bound URI, its port chosen when 0 was asked for
        self.driver: Driver = None  # type: ignore[assignment]  # set right after
        self.transport: Any = None
        #: the DTLS sessions of a coaps:// listener (who each peer is); None for the others
        self.security: DtlsLayer | None = None

    @property
    def endpoint(self) -> Endpoint:
        return self.driver.endpoint

    def __repr__(self) -> str:
        return f"<Listener {self.uri or self.scheme}>"


class Server:
    """Serves a site of resources on one or more transports (UDP by default; ``listen=``
    takes URIs of every scheme: ``coap://``, ``coap+tcp://``...); use it as an async
    context manager."""

    #: async renderings of one observer's notifications that may run at once
    renders_per_observer = RENDERS_PER_OBSERVER

    def __init__(
        self,
        site: Site | None = None,
        *,
        bind: tuple[str, int] = ("::", DEFAULT_PORT),
        transmission: TransmissionParameters = DEFAULT_PARAMETERS,
        messaging: MessagingConfig | None = None,
        multicast: bool | Iterable[str] = False,
        multicast_interface: str | int = 0,
        reuse_port: bool = False,
        log_requests: bool = False,
        request_log: Callable[[str], object] | None = None,
        tracer: Tracer | None = None,
        observe: ObserveConfig | None = None,
        blockwise: BlockwiseConfig | None = None,
        amplification: AmplificationConfig | None = None,
        max_pending: int = 1000,
        max_pending_per_remote: int = 100,
        handler_timeout: float | None = None,
        close_grace: float = 2.0,
        network: DatagramNetwork | None = None,
        listen: Iterable[str] | None = None,
        stream: StreamConfig | None = None,
        stream_limits: StreamLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        dtls: DtlsServerCredentials | None = None,
        dtls_config: DtlsConfig | None = None,
        oscore: OscoreServer | None = None,
        bus: NotificationBus | None = None,
    ) -> None:
        """``transmission``: RFC 7252 §4.8 transmission parameters (ACK_TIMEOUT,
        MAX_RETRANSMIT...) of the CON messages it sends (separate responses,
        notifications).  ``handler_timeout``: seconds an ``async`` handler may run
        before it is cancelled and its request answered 5.00 (default:
        EXCHANGE_LIFETIME, 247 s: no client waits longer).  ``close_grace``: how long
        :meth:`close` waits for cancelled handlers before abandoning them with a warning.
        ``network``: where the socket is opened (:mod:`coapkit.runtime.network`): by
        default the host's UDP stack, or in virtual time the loop's
        :class:`~coapkit.testing.VirtualNetwork`.

        ``listen``: the URIs to serve on, any number, every scheme
        (``coap://[::]:5683``, ``coap+tcp://127.0.0.1:0``...); port 0 picks a free
        one, :attr:`listeners` tells which.  Without it, ``bind`` means
        ``coap://HOST:PORT``.  ``stream``: the connection settings of ``coap+tcp``
        and ``coaps+tcp`` listeners (RFC 8323: Max-Message-Size, keep-alive, idle
        timeout); ``stream_limits``: how many connections they take;
        ``ssl_context``: the server's TLS context for ``coaps+tcp``.  ``dtls``: the
        DTLS material of ``coaps://`` listeners (pre-shared keys, a certificate; the
        ``dtls`` extra), ``dtls_config`` their session limits and timers.

        ``oscore``: the OSCORE layer (:class:`~coapkit.oscore.OscoreServer`: the security
        contexts of the clients, the paths that require protection); protected requests
        are verified and answered through it on every listener (RFC 8613).

        ``log_requests``: one line per answered request (:func:`request_line`), to the
        ``coapkit.server`` logger at INFO, or to ``request_log`` when given: a function
        taking the line, for a program that writes its access log itself (``coapkit
        server`` does, more cheaply than a logging record per request).

        ``bus``: where changes are shared with the other processes of a cluster
        (:mod:`coapkit.bus`, e.g. :class:`~coapkit.bus.redis.RedisBus`): a change here
        (``resource.changed()``, :meth:`notify`) is published, and a change published
        elsewhere notifies the observers held here.  Behind a load balancer, also give
        every process the same ``AmplificationConfig(secret=...)`` and
        ``ObserveConfig(clock_sequence=True)`` (docs/deployment.md); their clock offsets
        are set here, from this host's wall clock."""
        offset = time.time() - time.monotonic()  # the loop's clock is the monotonic one
        if amplification is not None and amplification.secret is not None:
            if not amplification.clock_offset:
                amplification = replace(amplification, clock_offset=offset)
        if observe is not None and observe.clock_sequence and not observe.clock_offset:
            observe = replace(observe, clock_offset=offset)
        self.site = site if site is not None else Site()
        #: the OSCORE layer between the listeners and the site, if any
        self.oscore = oscore
        self._bind = bind
        self._network = network
        #: RFC 7252 §4.8 transmission parameters of separate responses and notifications
        self.transmission = transmission
        self._messaging = messaging
        self._multicast = multicast
        self._multicast_interface = multicast_interface
        self._reuse_port = reuse_port
        self._log_requests = log_requests
        self._request_log = request_log
        self._tracer = tracer
        self._blockwise = blockwise
        self._amplification = amplification
        self._max_pending = max_pending
        self._max_pending_per_remote = max_pending_per_remote
        self._handler_timeout = handler_timeout
        self._close_grace = close_grace
        self._address: tuple[Any, ...] | None = None
        self._observe_config = observe
        self._listen = list(listen) if listen is not None else None
        self._stream = stream
        self._stream_limits = stream_limits
        self._ssl_context = ssl_context
        self._dtls = dtls
        self._dtls_config = dtls_config
        #: the observers of the first listener (each listener keeps its own)
        self.observers = ObserveRegistry(observe)
        self._listeners: list[Listener] = []
        self._driver: Driver | None = None
        self._transport: DatagramTransport | None = None
        self._stopped: asyncio.Event | None = None
        self._observed: set[Resource] = set()
        #: the observer count each resource was last told (update_observation_count)
        self._observation_counts: dict[Resource, int] = {}
        #: rendering tasks per observer (at most RENDERS_PER_OBSERVER); a newer state
        #: beyond waits as the one next sequence number to render (coalesced)
        self._render_tasks: dict[Observer, list[asyncio.Task[Any]]] = {}
        self._render_next: dict[Observer, int] = {}
        self._bus = bus
        self._bus_connection: BusConnection | None = None
        #: the site's path of each resource and the other way round, for the bus
        self._paths: dict[Resource, str] = {}
        self._resources: dict[str, Resource] = {}

    # -- the site -------------------------------------------------------------------------------

    def add(self, path: str, resource: ResourceT) -> ResourceT:
        """Serve ``resource`` at ``path`` (see :meth:`Site.add`)."""
        return self.site.add(path, resource)

    def route(
        self, path: str, methods: Sequence[int | str] | str = ("GET",), **attributes: Any
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: serve a function at ``path`` for ``methods`` (see :meth:`Site.route`).

        The function is returned as it is, its type too, so that a program using it
        type-checks (``mypy --strict``) with plain and ``async def`` handlers alike.
        """
        return self.site.route(path, methods=methods, **attributes)

    # -- lifecycle --------------------------------------------------------------------------------

    def _started(self) -> bool:
        return self._driver is not None

    async def start(self) -> Server:
        if self._driver is not None:
            return self
        loop = asyncio.get_running_loop()
        listen = self._listen
        if listen is None:
            host, port = self._bind
            literal = f"[{host}]" if ":" in host else host
            listen = [f"coap://{literal}:{port}"]
        uris = [parse_uri(uri) for uri in listen]
        listeners: list[Listener] = []
        try:
            for uri in uris:
                listeners.append(await self._open(loop, uri, first=not listeners))
        except BaseException:
            for listener in listeners:
                await listener.driver.close()
            raise
        if self._started():  # by another task meanwhile
            for listener in listeners:
                await listener.driver.close()
            return self
        if not listeners:
            raise ValueError("listen= names no URI to serve on")
        self._listeners = listeners
        primary = listeners[0]
        self._driver, self._transport = primary.driver, primary.transport
        self._address = primary.transport.local_address
        self._stopped = asyncio.Event()
        if self._bus is not None:
            # Every change is published, observed here or not: others may observe it.
            for _, resource in self.site.resources():
                resource.add_update_listener(self._updated)
                self._observed.add(resource)
            self._bus_connection = await self._bus.connect(self._changed_elsewhere)
        with suppress(Exception):  # a raising log filter must not leave a half-started server
            logger.info("serving CoAP on %s", ", ".join(item.uri for item in listeners))
        return self

    async def _open(
        self, loop: asyncio.AbstractEventLoop, uri: CoapUri, *, first: bool
    ) -> Listener:
        """Bind one listener: an endpoint on the right reliability layer, its driver, its
        transport (docs/architecture.md, "Two reliability layers")."""
        listener = Listener(uri.scheme)
        host = await resolve_bind_host(loop, uri.host)
        registry = self.observers if first else ObserveRegistry(self._observe_config)
        if uri.transport == "udp":
            network = self._network or default_network(loop)
            if uri.secure:
                listener.security = self._dtls_layer(network.random_source())
            endpoint = Endpoint(
                rng=network.random_source(),
                transmission=self.transmission,
                messaging=self._messaging,
                blockwise=self._blockwise,
                amplification=self._amplification,
                observers=registry,
                security=listener.security,
                understood_options=self._understood,
            )
        else:  # a connection: TCP, TLS, WebSocket (RFC 8323)
            if uri.transport == "ws":
                require_websockets()
            endpoint = Endpoint(
                rng=SystemEntropy(),
                transmission=self.transmission,
                blockwise=self._blockwise,
                observers=registry,
                layer=ConnectionLayer(params=self.transmission, config=self._stream),
                understood_options=self._understood,
            )
        tracer = self._tracer
        with_framing = getattr(tracer, "with_framing", None)  # a DatagramTrace (coapkit -v)
        framing = "dtls" if uri.scheme == "coaps" else uri.transport
        if with_framing is not None and framing != "udp":
            tracer = with_framing(framing)
        driver = Driver(
            endpoint,
            loop,
            request_handler=partial(self._handle, listener),
            tracer=tracer,
            max_pending=self._max_pending,
            max_pending_per_remote=self._max_pending_per_remote,
            handler_timeout=self._handler_timeout,
            close_grace=self._close_grace,
            framing=framing,
        )
        driver.responded = self._log if self._log_requests else None
        driver.observer_removed = self._observer_removed
        if listener.security is not None:
            driver.on_event = DtlsLog(server=True, clock=loop.time)
        listener.driver = driver
        if uri.transport == "udp":
            transport: Any = network.bind(loop, driver, host, uri.port, reuse_port=self._reuse_port)
            driver.attach(transport)
            if self._multicast and first and not uri.secure:
                groups = ALL_COAP_GROUPS if self._multicast is True else tuple(self._multicast)
                for group in groups:
                    try:
                        transport.join_group(group, self._multicast_interface)
                    except OSError as exc:
                        logger.warning("could not join multicast group %s: %s", group, exc)
        else:
            if uri.secure and self._ssl_context is None:
                raise UriError(f"{uri.scheme}:// needs TLS material (a certificate and key)")
            context = self._ssl_context if uri.secure else None
            if uri.transport == "ws":
                from coapkit.transports.websocket import WebSocketTransport

                transport = WebSocketTransport(
                    loop,
                    driver,
                    ssl_context=context,
                    limits=self._stream_limits,
                    max_message_size=(self._stream or StreamConfig()).max_message_size,
                )
            else:
                transport = StreamTransport(
                    loop, driver, ssl_context=context, limits=self._stream_limits
                )
            driver.attach(transport)
            await transport.listen(host, uri.port, reuse_port=self._reuse_port)
        listener.transport = transport
        bound = transport.local_address
        listener.uri = f"{uri.scheme}://{describe_remote(bound)}"
        return listener

    def _dtls_layer(self, rng: RandomSource) -> DtlsLayer:
        """The DTLS layer of a coaps:// listener, on the pyOpenSSL engine (coapkit[dtls])."""
        if self._dtls is None:
            raise UriError(
                "coaps:// needs DTLS material: Server(dtls=DtlsServerCredentials(...)) with "
                "pre-shared keys or a certificate and key"
            )
        require_dtls()
        from coapkit.security.openssl_dtls import OpenSslServerEngine

        config = self._dtls_config or DtlsConfig()
        engine = OpenSslServerEngine(self._dtls, mtu=config.mtu)
        return DtlsLayer(rng=rng, config=config, server=engine)

    async def close(self) -> None:
        for resource, count in list(self._observation_counts.items()):
            if count:
                self._tell_count(resource, 0)
        self._observation_counts.clear()
        self._driver = None
        connection, self._bus_connection = self._bus_connection, None
        if connection is not None:
            await connection.close()
        listeners, self._listeners = self._listeners, []
        for resource in self._observed:
            resource.remove_update_listener(self._updated)
        self._observed.clear()
        tasks = [task for running in self._render_tasks.values() for task in running]
        self._render_tasks.clear()
        self._render_next.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for listener in listeners:
            await listener.driver.close()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (or the task is cancelled).

        A server that this call started is closed when it returns or is cancelled
        (its socket with it); one started before (``async with``) is left to its owner.
        """
        started_here = self._driver is None
        await self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            if started_here:
                await self.close()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise NotStarted("the server is not started (or closed): use 'async with server:'")
        return self._driver

    @property
    def address(self) -> tuple[Any, ...]:
        """The bound socket address (host, port, ...); after :meth:`close`, the one it had."""
        if self._address is None:
            raise NotStarted("the server is not started: use 'async with server:'")
        return self._address

    @property
    def port(self) -> int:
        return int(self.address[1])

    @property
    def endpoint(self) -> Endpoint:
        """The first listener's endpoint."""
        return self.driver.endpoint

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Every transport served on, in the order of ``listen=``; empty when not running."""
        return tuple(self._listeners)

    @property
    def log_requests(self) -> bool:
        """Whether one line per answered request goes to the ``coapkit.server`` log (INFO)."""
        return self._log_requests

    @log_requests.setter
    def log_requests(self, on: bool) -> None:
        self._log_requests = on
        for listener in self._listeners:  # no call per response while it is off
            listener.driver.responded = self._log if on else None

    # -- requests ----------------------------------------------------------------------------------

    @property
    def _understood(self) -> frozenset[int]:
        if self.oscore is None:
            return UNDERSTOOD_OPTIONS
        return _WITH_OSCORE if self.oscore.edhoc is None else _WITH_EDHOC

    def _dispatch(self, listener: Listener, request: Request) -> Response | Awaitable[Response]:
        """The site's answer, through the OSCORE layer when there is one."""
        if self.oscore is None:
            return self.site.dispatch(request)
        return self.oscore.dispatch(self.site, request, listener.driver.loop.time())

    def _handle(
        self, listener: Listener, event: IncomingRequest
    ) -> ResponseParts | Awaitable[ResponseParts]:
        request = Request(event.request, event.remote, event.handle)
        if listener.security is not None:
            request.security = listener.security.identity(event.remote)
        result = self._dispatch(listener, request)
        if isinstance(result, Response):
            if _OBSERVE in event.request.options:
                message = result.to_message(event.request.token)
                return self._observe_request(listener, request, message)
            return result  # the driver sends its parts: no message built on the fast path
        return self._finish(listener, request, result)

    async def _finish(
        self, listener: Listener, request: Request, pending: Awaitable[Response]
    ) -> Message:
        return self._complete(listener, request, await pending)

    def _complete(self, listener: Listener, request: Request, response: Response) -> Message:
        message = response.to_message(request.message.token)
        if _OBSERVE in request.message.options and self._driver is not None:
            message = self._observe_request(listener, request, message)
        return message

    # -- Observe (RFC 7641): the decisions are the endpoint's (coapkit.observe.server) -----------

    def _observe_request(self, listener: Listener, request: Request, message: Message) -> Message:
        """Let the endpoint register or deregister the sender (§3.1, §3.6) and mark the response."""
        resource: Resource | None
        if self.oscore is not None and OptionNumber.OSCORE in request.message.options:
            resource = self.oscore.observed_resource(request)
        else:
            resource = self.site.observable_resource(request)
        observe = listener.endpoint.observe
        before = observe.registry.find(request._remote, request.message.token)
        message = observe.on_response(
            resource, request.message, request._remote, message, listener.driver.loop.time()
        )
        if resource is not None and resource not in self._observed:
            resource.add_update_listener(self._updated)
            self._observed.add(resource)
        if before is not None and before.key is not resource:
            self._count_changed(before.key)
        if resource is not None:
            self._count_changed(resource)
        return message

    def _observer_removed(self, observer: Observer) -> None:
        self._count_changed(observer.key)

    def _count_changed(self, key: Any) -> None:
        """Tell a resource how many observe it, when that number changed."""
        if not isinstance(key, Resource) or self._driver is None:
            return
        count = sum(item.endpoint.observe.registry.count_of(key) for item in self._listeners)
        if self._observation_counts.get(key, 0) != count:
            self._tell_count(key, count)
        if not count and key in self._observed:
            # Nobody observes it here any more: keep nothing about it (a proxy's resources
            # come and go with their upstream observations), its sequence number included.
            self._observed.discard(key)
            key.remove_update_listener(self._updated)
            for listener in self._listeners:
                listener.endpoint.observe.registry.remove_key(key)

    def _tell_count(self, resource: Resource, count: int) -> None:
        if count:
            self._observation_counts[resource] = count
        else:
            self._observation_counts.pop(resource, None)
        try:
            resource.update_observation_count(count)
        except Exception:
            logger.exception("%r.update_observation_count(%d) failed", resource, count)

    def notify(self, resource: Resource | str) -> None:
        """Notify the observers of ``resource`` of a new state (like ``resource.updated()``).

        ``resource`` may be a path, for a function served with
        ``@server.route(path, observable=True)``: ``server.notify("/time")``.
        """
        if isinstance(resource, str):
            found = self.site.match(resource.strip("/").split("/") if resource.strip("/") else [])
            if found is None:
                raise ValueError(f"no resource at {resource!r}")
            resource = found[0]
        self._updated(resource)

    def _updated(self, resource: Resource) -> None:
        """``resource`` changed here: notify the observers held here, and publish it."""
        if self._driver is None:
            return
        self._notify_here(resource)
        connection = self._bus_connection
        if connection is not None:
            path = self._path_of(resource)
            if path is not None:
                connection.publish(path)

    def _changed_elsewhere(self, path: str | None) -> None:
        """The bus says the resource at ``path`` changed in another process (None: any may
        have changed): notify the observers held here."""
        if self._driver is None:
            return
        if path is None:
            for resource in list(self._observed):
                self._notify_here(resource)
            return
        found = self._resources.get(path)
        if found is None or self._path_of(found) != path:  # new, or moved since
            self._resources = dict(self.site.resources())
            found = self._resources.get(path)
        if found is None:
            logger.debug("notification bus: no resource at %s here", path)
            return
        self._notify_here(found)

    def _path_of(self, resource: Resource) -> str | None:
        path = self._paths.get(resource)
        if path is None:
            for pattern, candidate in self.site.resources():
                if candidate is resource:
                    path = self._paths[resource] = pattern
                    break
        return path

    def _notify_here(self, resource: Resource) -> None:
        for listener in self._listeners:
            now = listener.driver.loop.time()
            sequence, observers = listener.endpoint.observe.updated(resource, now)
            for observer in observers:
                running = self._render_tasks.get(observer)
                if running is not None and len(running) >= self.renders_per_observer:
                    # Renderings for this observer still run: the newest state waits for
                    # one of them to finish, replacing any state that waited before.
                    self._render_next[observer] = sequence
                    continue
                self._render(listener, observer, resource, sequence)

    def _render(
        self, listener: Listener, observer: Observer, resource: Resource, sequence: int
    ) -> None:
        """Render ``observer``'s notification of state ``sequence``; an ``async`` handler
        runs as a task (two at most per observer: one stuck rendering does not hold
        up newer states, and many updates do not make many tasks)."""
        request = Request(observer.request, observer.remote, None)
        if listener.security is not None:
            request.security = listener.security.identity(observer.remote)
        result: Response | Awaitable[Response]
        if self.oscore is not None and OptionNumber.OSCORE in observer.request.options:
            result = self._dispatch(listener, request)  # rendered inside, then protected
        else:
            result = self.site.render_notification(request, resource)
        if isinstance(result, Response):
            self._send_notification(listener, observer, resource, result, sequence)
            return
        task = listener.driver.loop.create_task(
            self._render_later(listener, observer, resource, result, sequence)
        )
        self._render_tasks.setdefault(observer, []).append(task)

    async def _render_later(
        self,
        listener: Listener,
        observer: Observer,
        resource: Resource,
        pending: Awaitable[Response],
        sequence: int,
    ) -> None:
        try:
            response = await pending
        finally:
            running = self._render_tasks.get(observer)
            if running is not None:
                with suppress(ValueError):
                    running.remove(asyncio.current_task())  # type: ignore[arg-type]
                if not running:
                    del self._render_tasks[observer]
        # An older state finishing late is dropped by the endpoint (Observe ordering).
        self._send_notification(listener, observer, resource, response, sequence)
        newer = self._render_next.pop(observer, None)
        if newer is not None and self._driver is not None:
            if listener.endpoint.observe.registry.is_registered(observer):
                self._render(listener, observer, resource, newer)

    def _send_notification(
        self,
        listener: Listener,
        observer: Observer,
        resource: Resource,
        response: Response,
        sequence: int,
    ) -> None:
        if self._driver is None:
            return
        listener.driver.notify(
            observer,
            response.to_message(),
            sequence=sequence,
            mtype=resource.notification_type,
            con_every=resource.con_every,
        )

    def _log(self, handle: Inbound, response: ResponseParts) -> None:
        """One line per answered request (``log_requests``), to ``request_log`` if given,
        else to the ``coapkit.server`` logger at INFO; a protected request's is about the
        inner request (what was asked and answered, and who asked: OSCORE)."""
        inner = self.oscore.described(handle) if self.oscore is not None else None
        if inner is not None:  # what the protected request asked and got, and from whom
            line = f"{describe_remote(handle.remote)} {inner}"
        else:
            line = request_line(handle, response)
        sink = self._request_log
        if sink is None:
            logger.info("%s", line)
        else:
            sink(line)


def request_line(handle: Inbound, response: ResponseParts) -> str:
    """The request log's line for one answer, ``192.0.2.1:5683 GET /hello -> 2.05 Content``:
    what went back, also when the amplification defence held the handler's response
    back for an Echo round trip (then the 4.01 with Echo and the code held back).

    It runs for every request while the log is on, so the names of remotes and path
    segments already seen are looked up rather than made again (bounded caches)."""
    message = handle.message
    where = _path_name(message)
    answer = _CODE_NAMES[response.code]
    if handle.withheld:
        answer = (
            f"{code_name(Code.UNAUTHORIZED)} with Echo ({code_name(handle.withheld)} "
            "held back until the source proves its address)"
        )
    remote = handle.remote
    source = _REMOTE_NAMES.get(remote)
    if source is None:
        source = _REMOTE_NAMES[remote] = describe_remote(remote)
        if len(_REMOTE_NAMES) > _NAMES_KEPT:
            _REMOTE_NAMES.clear()
    return f"{source} {_CODE_NAMES[message.code]} {where} -> {answer}"


def _path_name(message: Message) -> str:
    """``Request.path_string`` without making the Request; "(undecodable path)" if a
    segment is not UTF-8."""
    segments = []
    for number, raw in message.options.items:
        if number == _URI_PATH:
            segment = _SEGMENT_NAMES.get(raw)
            if segment is None:
                try:
                    segment = quote_segment(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    return "(undecodable path)"
                _SEGMENT_NAMES[raw] = segment
                if len(_SEGMENT_NAMES) > _NAMES_KEPT:
                    _SEGMENT_NAMES.clear()
            segments.append(segment)
    return "/" + "/".join(segments)


#: the display name of every code (a message's code is one byte)
_CODE_NAMES = tuple(code_name(code) for code in range(256))
#: how many remotes and path segments :func:`request_line` keeps the names of
_NAMES_KEPT = 4096
_REMOTE_NAMES: dict[Any, str] = {}
_SEGMENT_NAMES: dict[bytes, str] = {}
