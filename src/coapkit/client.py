"""The asyncio CoAP client.

>>> async def main():                                          # doctest: +SKIP
...     async with Client() as client:
...         response = await client.get("coap://[::1]/hello")
...         print(response.code, response.text)

A :class:`Client` owns one UDP socket (dual-stack, ephemeral port) and one
sans-I/O endpoint driven by :class:`~coapkit.runtime.driver.Driver`.  Every
method takes a URI (RFC 7252 §6) and typed keywords, spelled as an httpx user
types them where the two meet (``params=`` for the query, ``json=``,
``timeout=``, ``raise_for_status=``), so that a misspelled one fails at the
call and under a type checker; each request resolves
its host through the event loop, sends CON by default (``non=True`` for NON),
and returns a :class:`~coapkit.resources.response.Response`, or raises
:class:`~coapkit.errors.RequestTimeout`,
:class:`~coapkit.errors.RetransmissionsExceeded`,
:class:`~coapkit.errors.ResetByPeer`, :class:`~coapkit.errors.NetworkError`,
and with ``raise_for_status=True`` :class:`~coapkit.errors.ErrorResponse`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.codes import METHODS_BY_NAME, Code
from coapkit.codec.content_formats import CBOR, JSON, TEXT_PLAIN
from coapkit.codec.link_format import Link, parse_link_format
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import EMPTY_OPTIONS, Options
from coapkit.codec.types import MessageType
from coapkit.codec.uri import CoapUri, parse_uri
from coapkit.connections import ConnectionLayer, StreamConfig
from coapkit.dtls import DtlsConfig, DtlsLayer
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError, NotStarted, RequestCancelled, RequestTimeout
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.layer import MessagingConfig
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.records import Remote
from coapkit.resources.response import Response, dump_json, load_cbor
from coapkit.runtime.driver import Driver, ProgressCallback, ResponseStream, Tracer
from coapkit.runtime.dtls import DtlsLog
from coapkit.runtime.entropy import SystemEntropy
from coapkit.runtime.network import DatagramNetwork, DatagramTransport, default_network
from coapkit.security.dtls import ClientDtls, DtlsCredentials, credentials_for
from coapkit.security.tls import TlsCredentials, client_context
from coapkit.transports import require_dtls, require_websockets
from coapkit.transports.tcp import StreamTransport, remote_key
from coapkit.transports.udp import resolve_bind_host

if TYPE_CHECKING:
    from coapkit.edhoc.credentials import Identity, PeerLookup
    from coapkit.oscore.context import SecurityContext
    from coapkit.oscore.credentials import CredentialsMap

logger = logging.getLogger("coapkit.client")

#: A request payload: bytes-like (sent as they are) or ``str`` (sent as UTF-8).
Payload: TypeAlias = bytes | bytearray | memoryview | str
#: A Content-Format: its number or its name (``"json"``, ``"application/cbor"``).
ContentFormat: TypeAlias = int | str
#: One query parameter's value; ``None`` gives ``name=``.
QueryValue: TypeAlias = str | int | float | None
#: Query parameters as httpx takes them: a mapping (a list value repeats the name) or
#: ``(name, value)`` pairs.
QueryParams: TypeAlias = (
    Mapping[str, QueryValue | Sequence[QueryValue]] | Iterable[tuple[str, QueryValue]]
)
#: Options given as they are: an :class:`Options` value or ``(number, bytes)`` pairs.
RawOptions: TypeAlias = Options | Iterable[tuple[int, bytes]]

_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
#: what a client using OSCORE understands in a response: the OSCORE option too
_WITH_OSCORE = UNDERSTOOD_OPTIONS | {int(OptionNumber.OSCORE)}


class Client:
    """An asyncio CoAP client; use it as an async context manager.

    :param bind: local address, by default ``("::", 0)`` (dual stack, any free port)
    :param transmission: RFC 7252 §4.8 transmission parameters (ACK_TIMEOUT,
        MAX_RETRANSMIT, NSTART...) for every request; each request may pass its own
        ``transmission=``.  (Query parameters are ``params=`` of each request.)
    :param messaging: message-layer limits (:class:`~coapkit.messaging.layer.MessagingConfig`)
    :param token_length: bytes of random token per request (RFC 7252 §5.3.1)
    :param timeout: default per-request timeout in seconds (``None``: CoAP's own timing);
        for an observation it bounds each registration exchange (see :meth:`observe`)
    :param tracer: ``tracer(direction, data, remote)`` called for every datagram
        (see :mod:`coapkit.trace` for the readable form)
    :param multicast_interface: interface for multicast requests
    :param blockwise: block sizes and the largest response body reassembled
        (:class:`~coapkit.blockwise.server.BlockwiseConfig`)
    :param max_waiting: requests that may wait, in all, for their turn towards a server:
        NSTART (1) requests are outstanding towards each server and
        ``MessagingConfig.backlog_limit`` (1,000) more are queued in the message layer;
        beyond those, requests wait in order here, so that ``asyncio.gather`` of
        10,000 requests to one server completes.  Beyond ``max_waiting``, a request
        fails at once with :class:`~coapkit.errors.BacklogFull` naming this setting.
    :param network: where the socket is opened (:mod:`coapkit.runtime.network`): by
        default the host's UDP stack, or in virtual time the loop's
        :class:`~coapkit.testing.VirtualNetwork`
    :param tls: certificates for ``coaps+tcp://`` and ``coaps+ws://``
        (:class:`~coapkit.security.tls.TlsCredentials`: the CA to trust, a client
        certificate); without it the system's trust store verifies the server
    :param stream: connection settings for ``coap+tcp://``, ``coaps+tcp://``,
        ``coap+ws://`` and ``coaps+ws://`` (:class:`~coapkit.connections.StreamConfig`:
        Max-Message-Size, keep-alive, idle timeout)
    :param dtls: DTLS material for ``coaps://`` (the ``dtls`` extra): one
        :class:`~coapkit.security.dtls.DtlsCredentials` (a PSK identity and key, or a CA
        and a client certificate) for every server, or URI patterns mapped to them
        (``{"coaps://sensor.example/*": DtlsCredentials(...)}``,
        :func:`~coapkit.security.dtls.credentials_for`); without it, or for a URI no
        pattern matches, the system's trust store verifies the server's certificate
    :param dtls_config: the DTLS sessions' timers and limits
        (:class:`~coapkit.dtls.DtlsConfig`)
    :param oscore: OSCORE credentials (:class:`~coapkit.oscore.CredentialsMap`, e.g. from
        :func:`~coapkit.runtime.oscore_files.load_credentials`): a request (and an
        observation) whose URI matches one of its patterns is protected with that
        security context (RFC 8613), over any transport

    The URI's scheme picks the transport: ``coap://`` over UDP; ``coap+tcp://`` and
    ``coaps+tcp://`` over TCP and TLS, ``coap+ws://`` and ``coaps+ws://`` over
    WebSockets (RFC 8323; WebSockets need ``coapkit[ws]``).  Over those four the client
    keeps one connection per server (origin), opened at the first request and reused,
    closed when idle or when the client closes.  ``coaps://`` goes over DTLS (the ``dtls``
    extra), on a socket of its own, in one session per server made at the first request
    and reused.
    """

    def __init__(
        self,
        *,
        bind: tuple[str, int] | None = None,
        transmission: TransmissionParameters = DEFAULT_PARAMETERS,
        messaging: MessagingConfig | None = None,
        token_length: int = 8,
        timeout: float | None = None,
        tracer: Tracer | None = None,
        multicast_interface: str | int | None = None,
        blockwise: BlockwiseConfig | None = None,
        max_waiting: int = 100_000,
        network: DatagramNetwork | None = None,
        tls: TlsCredentials | None = None,
        stream: StreamConfig | None = None,
        dtls: ClientDtls | None = None,
        dtls_config: DtlsConfig | None = None,
        oscore: CredentialsMap | None = None,
    ) -> None:
        self._bind = bind or ("::", 0)
        self._network = network
        self._max_waiting = max_waiting
        self._blockwise = blockwise
        self._multicast_interface = multicast_interface
        #: the transmission parameters of requests that do not give their own
        self.transmission = transmission
        self._messaging = messaging
        self._token_length = token_length
        self.timeout = timeout  #: default per-request timeout in seconds (None: RFC timing)
        self._tracer = tracer
        self._driver: Driver | None = None
        self._transport: DatagramTransport | None = None
        self._tls = tls
        self._stream = stream or StreamConfig()
        self._dtls = dtls
        self._dtls_config = dtls_config
        self._dtls_engine: Any = None
        self._bind_host = self._bind[0]
        #: the drivers of the connection schemes used so far (coap+tcp, coaps+ws...)
        self._channels: dict[str, Driver] = {}
        #: OSCORE credentials: which requests are protected with which context
        self.oscore = oscore
        self._understood = UNDERSTOOD_OPTIONS if oscore is None else _WITH_OSCORE
        self._oscore_contexts: dict[CoapUri, SecurityContext | None] = {}
        #: OSCORE contexts EDHOC established, by credentials entry and origin, and the
        #: runs under way (one per origin at a time)
        self._edhoc_contexts: dict[tuple[str, str], SecurityContext] = {}
        self._edhoc_runs: dict[tuple[str, str], asyncio.Future[SecurityContext]] = {}
        self._edhoc_c_i = 0

    # -- lifecycle ------------------------------------------------------------------------

    def _started(self) -> bool:
        return self._driver is not None

    async def start(self) -> Client:
        if self._driver is not None:
            return self
        loop = asyncio.get_running_loop()
        host = await resolve_bind_host(loop, self._bind[0])
        if self._started():  # by another task meanwhile
            return self
        self._bind_host = host
        network = self._network or default_network(loop)
        endpoint = Endpoint(
            rng=network.random_source(),
            transmission=self.transmission,
            messaging=self._messaging,
            token_length=self._token_length,
            blockwise=self._blockwise,
            understood_options=self._understood,
        )
        driver = Driver(endpoint, loop, tracer=self._tracer, max_waiting=self._max_waiting)
        transport = network.bind(loop, driver, host, self._bind[1], pktinfo=False)
        driver.attach(transport)
        if self._multicast_interface is not None:
            transport.set_multicast_interface(self._multicast_interface)
        self._driver, self._transport = driver, transport
        return self

    async def close(self) -> None:
        driver, self._driver = self._driver, None
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()
        if driver is not None:
            await driver.close()

    async def __aenter__(self) -> Client:
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
        """The running driver; :class:`~coapkit.errors.NotStarted` before start or after close."""
        if self._driver is None:
            raise _not_started()
        return self._driver

    @property
    def local_address(self) -> tuple[Any, ...]:
        """The address of the client's socket; there is none before start or after close
        (:class:`~coapkit.errors.NotStarted`)."""
        if self._driver is None or self._transport is None:
            raise _not_started()
        return self._transport.local_address

    # -- addressing ---------------------------------------------------------------------------

    async def resolve(self, uri: str | CoapUri) -> tuple[CoapUri, list[Remote]]:
        """Parse ``uri`` and resolve its host to the socket addresses to try, in order."""
        parsed = _parse_cached(uri) if isinstance(uri, str) else uri
        driver = self.driver
        if parsed.transport != "udp":
            return parsed, await self._resolve_stream(parsed)
        transport = self._secure().transport if parsed.secure else driver.transport
        host = parsed.host
        if parsed.host_is_ip_literal and "%" not in host:
            # A numeric address needs no resolver (and no trip through its thread pool).
            return parsed, [transport.remote_for((host, parsed.port))]
        try:
            if parsed.host_is_ip_literal:
                # A zoned literal (fe80::1%eth0): the zone becomes the scope ID.  Numeric, so
                # it never blocks; and uvloop's getaddrinfo loses the scope ID (uvloop #539).
                infos = socket.getaddrinfo(
                    host, parsed.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
                )
            else:
                loop = asyncio.get_running_loop()
                infos = await loop.getaddrinfo(host, parsed.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise NetworkError(f"cannot resolve host {host!r}: {exc.strerror}") from None
        remotes: list[Remote] = []
        for family, _, _, _, sockaddr in infos:
            if family == socket.AF_INET6 and transport.family != socket.AF_INET6:
                continue
            try:
                remote = transport.remote_for(tuple(sockaddr))
            except NetworkError:
                continue
            if remote not in remotes:
                remotes.append(remote)
        if not remotes:
            raise NetworkError(f"no usable address for host {host!r}")
        return parsed, remotes

    async def _resolve_stream(self, parsed: CoapUri) -> list[Remote]:
        """The addresses of a ``coap+tcp``/``coap+ws`` (and ``coaps+``) URI's host, as
        connection keys (RFC 8323: one connection per origin)."""
        host = parsed.host
        if parsed.host_is_ip_literal and "%" not in host:
            return [remote_key((host, parsed.port))]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, parsed.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NetworkError(f"cannot resolve host {host!r}: {exc.strerror}") from None
        remotes: list[Remote] = []
        for _family, _, _, _, sockaddr in infos:
            remote = remote_key(tuple(sockaddr))
            if remote not in remotes:
                remotes.append(remote)
        if not remotes:
            raise NetworkError(f"no usable address for host {host!r}")
        return remotes

    def _channel(self, scheme: str) -> Driver:
        """The driver and transport of one connection scheme, made at its first use."""
        channel = self._channels.get(scheme)
        if channel is not None:
            return channel
        loop = asyncio.get_running_loop()
        websocket = scheme.endswith("+ws")
        secure = scheme.startswith("coaps")
        context = client_context(self._tls) if secure else None
        endpoint = Endpoint(
            rng=SystemEntropy(),
            transmission=self.transmission,
            token_length=self._token_length,
            blockwise=self._blockwise,
            layer=ConnectionLayer(params=self.transmission, config=self._stream),
            understood_options=self._understood,
        )
        framing = "ws" if websocket else "tcp"
        tracer = self._tracer
        with_framing = getattr(tracer, "with_framing", None)  # a DatagramTrace (coapkit -v)
        if with_framing is not None:
            tracer = with_framing(framing)
        driver = Driver(
            endpoint, loop, tracer=tracer, max_waiting=self._max_waiting, framing=framing
        )
        transport: Any
        if websocket:
            require_websockets()
            from coapkit.transports.websocket import WebSocketTransport

            transport = WebSocketTransport(
                loop,
                driver,
                ssl_context=context,
                max_message_size=self._stream.max_message_size,
            )
        else:
            transport = StreamTransport(loop, driver, ssl_context=context)
        driver.attach(transport)
        self._channels[scheme] = driver
        return driver

    async def _route(self, parsed: CoapUri, remote: Remote) -> Driver:
        """The driver that carries requests to ``remote`` for ``parsed``'s scheme; over a
        connection, the connection is opened first (or the open one reused)."""
        if parsed.transport == "udp":
            return self._secure_route(parsed, remote) if parsed.secure else self.driver
        driver = self._channel(parsed.scheme)
        hostname = parsed.host.partition("%")[0]
        await driver.transport.connect(remote, server_hostname=hostname)
        await driver.connection_ready(remote)  # the peer's CSM: what it can take
        return driver

    def _secure(self) -> Driver:
        """The driver of ``coaps://``: an endpoint with a DTLS layer on a socket of its own,
        made at the first use (the ``dtls`` extra)."""
        channel = self._channels.get("coaps")
        if channel is not None:
            return channel
        self.driver  # noqa: B018  # NotStarted before start
        require_dtls()
        from coapkit.security.openssl_dtls import OpenSslClientEngine

        loop = asyncio.get_running_loop()
        network = self._network or default_network(loop)
        config = self._dtls_config or DtlsConfig()
        self._dtls_engine = engine = OpenSslClientEngine(mtu=config.mtu)
        endpoint = Endpoint(
            rng=network.random_source(),
            transmission=self.transmission,
            messaging=self._messaging,
            token_length=self._token_length,
            blockwise=self._blockwise,
            security=DtlsLayer(rng=network.random_source(), config=config, client=engine),
        )
        tracer = self._tracer
        with_framing = getattr(tracer, "with_framing", None)  # a DatagramTrace (coapkit -v)
        if with_framing is not None:
            tracer = with_framing("dtls")
        driver = Driver(
            endpoint, loop, tracer=tracer, max_waiting=self._max_waiting, framing="dtls"
        )
        driver.on_event = DtlsLog(server=False, clock=loop.time)
        transport = network.bind(loop, driver, self._bind_host, 0, pktinfo=False)
        driver.attach(transport)
        self._channels["coaps"] = driver
        return driver

    def _in_handshake(self, parsed: CoapUri, remote: Remote, exc: RequestTimeout) -> RequestTimeout:
        """A timeout that struck while the DTLS handshake with ``remote`` was still going:
        it says so, since no CoAP message could even be sent (a peer that silently drops
        records it cannot decrypt, RFC 6347 §4.1.2.7, looks like this with a wrong key
        until the handshake itself times out).  Any other timeout is ``exc`` itself."""
        channel = self._channels.get("coaps") if parsed.scheme == "coaps" else None
        security = None if channel is None else channel.endpoint.security
        if security is None or security.session(remote) is None or security.established(remote):
            return exc
        error = RequestTimeout(
            f"{exc}: the DTLS handshake with {describe_remote(remote)} had not completed"
        )
        error.hint = (
            "is a DTLS server running there? with a pre-shared key, the two sides may hold "
            "different keys (-v shows the handshake)"
        )
        return error

    def _secure_route(self, parsed: CoapUri, remote: Remote) -> Driver:
        """The coaps:// driver, told which host and credentials a handshake with ``remote``
        is for (the material is read now: a bad file fails this request, not later)."""
        driver = self._secure()
        credentials = credentials_for(self._dtls, str(parsed)) or DtlsCredentials()
        self._dtls_engine.context(credentials)
        security = driver.endpoint.security
        assert security is not None
        security.expect(remote, parsed.host.partition("%")[0], credentials)
        return driver

    # -- requests --------------------------------------------------------------------------------

    def build_request(
        self,
        method: int | str | Message,
        uri: CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
    ) -> Message:
        """The request message for ``method`` on ``uri``: the URI's options, ``params`` as
        more Uri-Query options, then ``options``, ``content_format`` and ``accept``.

        The arguments are those of :meth:`request`; see there.
        """
        data, default_format = _payload(payload, json, cbor)
        if isinstance(method, Message):
            base_options = method.options
            code = method.code
            if not data and json is None and cbor is None:
                data = method.payload
        else:
            base_options = EMPTY_OPTIONS
            code = _method_code(method)
        if params is not None:
            uri = replace(uri, query=uri.query + _query_arguments(params))
        uri_options = _uri_options(uri)
        if options is None and not base_options.items:
            opts = uri_options  # the common case: nothing to merge
        else:
            merged = list(uri_options.items)
            merged.extend(base_options.items)
            if options is not None:
                if isinstance(options, Options):
                    merged.extend(options.items)
                elif isinstance(options, Mapping | str | bytes):
                    raise TypeError(
                        "options= takes an Options value (Options.build(etag=b'...')) or "
                        f"(number, bytes) pairs, not {type(options).__name__}"
                    )
                else:
                    merged.extend(options)
            opts = Options(merged)
        if content_format is None and default_format is not None and _CONTENT_FORMAT not in opts:
            content_format = default_format
        if content_format is not None:
            opts = opts.replace(content_format=content_format)
        if accept is not None:  # (replace(accept=None) would remove an Accept of options=)
            opts = opts.replace(accept=accept)
        return Message(MessageType.CON, code, options=opts, payload=data)

    async def request(
        self,
        method: int | str | Message,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Send a request and return its response.

        :param method: a code (``Code.GET``), a name (``"GET"``) or a whole
            :class:`Message` whose code, options and payload are used
        :param uri: a ``coap://`` URI (its query, percent-decoded, becomes Uri-Query)
        :param payload: ``bytes`` (or ``bytearray``, ``memoryview``) as they are, or a
            ``str`` sent as UTF-8 with Content-Format 0 (text/plain) unless another is
            given; anything else is a TypeError (an ``int`` is no payload: ``bytes(21)``
            would be 21 zero bytes)
        :param json: a value sent as compact UTF-8 JSON with Content-Format 50
            (``application/json``) unless another is given; instead of ``payload``
        :param cbor: a value sent as CBOR with Content-Format 60 (``application/cbor``)
            unless another is given; instead of ``payload``.  Needs ``coapkit[cbor]``.
        :param params: query parameters, as httpx takes them: a mapping
            (``{"rt": "temp", "n": 3}``; a list value repeats the name) or a sequence of
            ``(name, value)`` pairs, each appended to the URI's query as one Uri-Query
            option ``name=value`` (values: ``str``, ``int``, ``float``, ``bool`` as
            ``true``/``false``, ``None`` as an empty value).  An option carries the
            text as it is, so nothing is percent-encoded on the wire; the URI of the
            request, where one is shown, percent-encodes what needs it.
        :param content_format: the payload's Content-Format, a number or a name
            (``50``, ``"json"``, ``"application/json"``)
        :param accept: the Content-Format asked for (Accept), a number or a name
        :param options: more options: an :class:`Options` value
            (``Options.build(etag=b"v1", if_none_match=True)``, checked against the
            registry) or raw ``(number, bytes)`` pairs; ``content_format`` and
            ``accept``, when given, replace theirs
        :param non: send as NON instead of CON
        :param timeout: seconds to wait for the response (default: the client's
            ``timeout``; ``None``: CoAP's own retransmission and lifetime bounds)
        :param transmission: RFC 7252 §4.8 transmission parameters for this request
            (default: the client's)
        :param raise_for_status: raise :class:`~coapkit.errors.ErrorResponse` for a
            4.xx or 5.xx response instead of returning it
        :param progress: ``progress(done, total)``, called after each block of a
            block-wise transfer
        """
        parsed, remotes = await self.resolve(uri)
        message = self.build_request(
            method,
            parsed,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
        )
        mtype = MessageType.NON if non else MessageType.CON
        if timeout is None:
            timeout = self.timeout
        context = await self._security_context(parsed)
        last_error: NetworkError | None = None
        for remote in remotes:
            try:
                driver = await self._route(parsed, remote)
                if context is None:
                    reply, source = await driver.request(
                        message,
                        remote,
                        mtype=mtype,
                        transmission=transmission,
                        timeout=timeout,
                        progress=progress,
                    )
                else:
                    reply, source = await self._protected(
                        driver, context, message, remote, mtype, transmission, timeout, progress
                    )
            except NetworkError as exc:
                logger.debug("%s: %s", describe_remote(remote), exc)
                last_error = exc
                continue
            except RequestTimeout as exc:
                raise self._in_handshake(parsed, remote, exc) from None
            response = Response.from_message(reply, remote=source)
            if raise_for_status:
                response.raise_for_status()
            return response
        assert last_error is not None
        raise last_error

    def _oscore_context(self, uri: CoapUri) -> SecurityContext | None:
        """The OSCORE context a request to ``uri`` is protected with, if any (looked up once
        per URI: the credentials do not change while the client runs)."""
        if self.oscore is None:
            return None
        cache = self._oscore_contexts
        try:
            return cache[uri]
        except KeyError:
            pass
        context = cache[uri] = self.oscore.context_for_uri(str(uri))
        if len(cache) > 256:
            del cache[next(iter(cache))]
        return context

    async def _security_context(self, uri: CoapUri) -> SecurityContext | None:
        """The OSCORE context for a request to ``uri``: a static one from the credentials,
        or one EDHOC establishes with the origin first (an ``edhoc-oscore`` entry; once
        per origin, reused until the client closes).  EDHOC's own requests are never
        protected (RFC 9528 Appendix A.2)."""
        if self.oscore is None or uri.path == (".well-known", "edhoc"):
            return None
        context = self._oscore_context(uri)
        if context is not None:
            return context
        found = self.oscore.edhoc_for_uri(str(uri))
        if found is None:
            return None
        key, entry = found
        origin = str(uri.with_path())
        cache_key = (key, origin)
        context = self._edhoc_contexts.get(cache_key)
        if context is not None:
            return context
        running = self._edhoc_runs.get(cache_key)
        if running is None:
            running = self._edhoc_runs[cache_key] = asyncio.ensure_future(
                self.establish_edhoc(
                    origin,
                    entry.identity,
                    entry.peers,
                    method=entry.method,
                    suites=(entry.suite,),
                    label=key,
                )
            )
            running.add_done_callback(lambda _: self._edhoc_runs.pop(cache_key, None))
        context = await asyncio.shield(running)
        self._edhoc_contexts[cache_key] = context
        return context

    async def establish_edhoc(
        self,
        uri: str | CoapUri,
        identity: Identity,
        peers: PeerLookup,
        *,
        method: int = 3,
        suites: Sequence[int] = (2,),
        label: str | None = None,
        timeout: float | None = None,
    ) -> SecurityContext:
        """Run EDHOC (RFC 9528, over CoAP as its Appendix A.2 says) with the server of
        ``uri`` and return the OSCORE security context it yields (Appendix A.1), in
        memory.  ``identity``: this client's credential and private key; ``peers``: the
        server credentials it accepts (:class:`~coapkit.edhoc.TrustedPeers`).  Raises
        :class:`~coapkit.edhoc.EdhocError` when the server refuses or does not prove
        its credential."""
        from coapkit.edhoc.coap import CONTENT_FORMAT_CID_EDHOC, InitiatorExchange

        parsed, _ = await self.resolve(uri)
        target = parsed.with_path(".well-known", "edhoc")
        # C_I: a one-byte integer (the shortest OSCORE Recipient ID), a new one each run
        values = (*range(0x18), *range(0x20, 0x38))
        c_i = bytes((values[self._edhoc_c_i % len(values)],))
        self._edhoc_c_i += 1
        exchange = InitiatorExchange(identity, peers, c_i=c_i, method=method, suites=suites)
        first = await self.request(
            "POST",
            target,
            exchange.request_1(),
            content_format=CONTENT_FORMAT_CID_EDHOC,
            timeout=timeout,
        )
        second = await self.request(
            "POST",
            target,
            exchange.on_response_2(first.code, first.payload),
            content_format=CONTENT_FORMAT_CID_EDHOC,
            timeout=timeout,
        )
        exchange.on_response_4(second.code, second.payload)
        return exchange.security_context(label)

    def _inner_block_size(self) -> int:
        """Inner blocks of at most 512 bytes: protected, they fit in one 1024-byte payload."""
        config = self._blockwise or BlockwiseConfig()
        return min(config.max_block_size, 512)

    def _protected(
        self,
        driver: Driver,
        context: SecurityContext,
        message: Message,
        remote: Remote,
        mtype: MessageType,
        transmission: TransmissionParameters | None,
        timeout: float | None,
        progress: ProgressCallback | None,
    ) -> Coroutine[Any, Any, tuple[Message, Remote]]:
        """The coroutine of one protected request (no frame of its own in between)."""
        from coapkit.runtime.oscore import protected_request

        config = self._blockwise or BlockwiseConfig()
        return protected_request(
            driver,
            context,
            message,
            remote,
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            progress=progress,
            block_size=self._inner_block_size(),
            max_body=config.max_response_body,
        )

    # The methods' own signatures, not **kwargs: a misspelled keyword (``timout=3``) is a
    # TypeError at the call and an error for a type checker, not a surprise later.

    async def get(
        self,
        uri: str | CoapUri,
        *,
        params: QueryParams | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """GET ``uri``; the keywords are those of :meth:`request`."""
        return await self.request(
            Code.GET,
            uri,
            params=params,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def delete(
        self,
        uri: str | CoapUri,
        *,
        params: QueryParams | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """DELETE ``uri``; the keywords are those of :meth:`request`."""
        return await self.request(
            Code.DELETE,
            uri,
            params=params,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def post(
        self,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """POST ``payload`` (or ``json=``, ``cbor=``) to ``uri``; see :meth:`request`."""
        return await self.request(
            Code.POST,
            uri,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def put(
        self,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """PUT ``payload`` (or ``json=``, ``cbor=``) at ``uri``; see :meth:`request`."""
        return await self.request(
            Code.PUT,
            uri,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def fetch(
        self,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """FETCH (RFC 8132) ``uri`` with ``payload`` (or ``json=``, ``cbor=``) as the
        query body; see :meth:`request`."""
        return await self.request(
            Code.FETCH,
            uri,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def patch(
        self,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """PATCH (RFC 8132) ``uri`` with ``payload`` (or ``json=``, ``cbor=``); see
        :meth:`request`."""
        return await self.request(
            Code.PATCH,
            uri,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def ipatch(
        self,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
        raise_for_status: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """iPATCH (RFC 8132, idempotent) ``uri`` with ``payload`` (or ``json=``,
        ``cbor=``); see :meth:`request`."""
        return await self.request(
            Code.IPATCH,
            uri,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
            non=non,
            timeout=timeout,
            transmission=transmission,
            raise_for_status=raise_for_status,
            progress=progress,
        )

    async def ping(self, uri: str | CoapUri, *, timeout: float | None = None) -> float:
        """Send a CoAP ping (empty CON; over a connection a Ping signal, RFC 8323 §5.4);
        returns the round-trip time in seconds of the RST (or Pong).

        Like :meth:`request`, tries the host's addresses in turn while the
        network reports an error, and raises :class:`RequestTimeout` when
        ``timeout`` expires.
        """
        parsed, remotes = await self.resolve(uri)
        last_error: NetworkError | None = None
        for remote in remotes:
            try:
                driver = await self._route(parsed, remote)
                coro = driver.ping(remote)
                if timeout is None:
                    return await coro
                return await asyncio.wait_for(coro, timeout)
            except NetworkError as exc:
                logger.debug("%s: %s", describe_remote(remote), exc)
                last_error = exc
            except TimeoutError as exc:
                if not isinstance(exc, RequestTimeout):
                    where = describe_remote(remote)
                    answer = "RST" if parsed.transport == "udp" else "Pong"
                    exc = RequestTimeout(f"no {answer} from {where} within {timeout:g} s")
                raise self._in_handshake(parsed, remote, exc) from None
        assert last_error is not None
        raise last_error

    async def discover(
        self, uri: str | CoapUri, *, rt: str | None = None, if_: str | None = None, **filters: str
    ) -> list[Link]:
        """GET ``/.well-known/core`` (RFC 6690) of the server in ``uri``, optionally filtered."""
        parsed = parse_uri(uri) if isinstance(uri, str) else uri
        query = []
        if rt is not None:
            query.append(f"rt={rt}")
        if if_ is not None:
            query.append(f"if={if_}")
        query.extend(f"{name}={value}" for name, value in filters.items())
        target = CoapUri(
            parsed.scheme, parsed.host, parsed.port, (".well-known", "core"), tuple(query)
        )
        response = await self.get(target, raise_for_status=True)
        return parse_link_format(response.payload.decode("utf-8", "replace"))

    def observe(
        self,
        uri: str | CoapUri,
        *,
        method: int | str = Code.GET,
        payload: Payload = b"",
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        non: bool = False,
        timeout: float | None = None,
        transmission: TransmissionParameters | None = None,
    ) -> Observation:
        """Observe a resource (RFC 7641): an async iterator of the first response and each
        fresh notification, in order.

        >>> async with client.observe("coap://[::1]/time") as observation:   # doctest: +SKIP
        ...     async for response in observation:
        ...         print(response.text)

        Leaving the ``async with`` block (or :meth:`Observation.cancel`) deregisters.

        The iteration ends cleanly (``StopAsyncIteration``) after a response without
        Observe (the server does not, or no longer, lets us observe), and when this
        program ends the observation: :meth:`Observation.cancel` (from any task, also
        while another task awaits the next notification), leaving the ``async with``
        block, or closing the client.  It raises when the server or the network ends it:
        :class:`~coapkit.errors.ResetByPeer`, :class:`~coapkit.errors.NetworkError`, or
        :class:`~coapkit.errors.RequestTimeout` when the server stopped answering.

        ``timeout`` (default: the client's ``timeout``) bounds each registration
        exchange, not the life of the observation: the first response must come within
        it, and so must the answer to each re-registration.  A notification is fresh
        for its Max-Age (60 s without one); when Max-Age and a margin of 5 s pass
        without a notification, the client registers again (RFC 7641 §3.3.1).  If that
        is not answered in time (``timeout``; without one, when a CON's retransmissions
        give up, at most 93 s, or after 145 s for a NON) the iteration raises
        :class:`~coapkit.errors.RequestTimeout` and :attr:`Observation.active` becomes
        False.  A server that went away is noticed then, and at once if the network says
        so (ICMP port unreachable: :class:`~coapkit.errors.NetworkError`).

        ``method`` (GET, or FETCH with a body) and the other keywords are those of
        :meth:`request`; the request is built here, so a wrong argument raises at once.
        """
        parsed = _parse_cached(uri) if isinstance(uri, str) else uri
        message = self.build_request(
            method,
            parsed,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
        )
        message = message.replace(options=message.options.replace(observe=0))
        return Observation(
            self, parsed, message, non=non, timeout=timeout, transmission=transmission
        )

    def open_stream(
        self,
        message: Message,
        remote: Remote,
        *,
        non: bool = False,
        timeout: float | None = None,
        token: bytes | None = None,
        transmission: TransmissionParameters | None = None,
        driver: Driver | None = None,
    ) -> ResponseStream:
        """Low level: send a request that stays open (see :meth:`Client.observe`);
        ``driver``: the one of the URI's scheme (default: UDP's)."""
        return (driver or self.driver).open_stream(
            message,
            remote,
            mtype=MessageType.NON if non else MessageType.CON,
            transmission=transmission,
            timeout=timeout,
            token=token,
        )

    async def multicast(
        self,
        method: int | str,
        uri: str | CoapUri,
        payload: Payload = b"",
        *,
        json: Any = None,
        cbor: Any = None,
        params: QueryParams | None = None,
        content_format: ContentFormat | None = None,
        accept: ContentFormat | None = None,
        options: RawOptions | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Response]:
        """Send a NON request to a multicast group and yield every response until ``timeout``
        (default DEFAULT_LEISURE plus a margin); the keywords are those of :meth:`request`."""
        parsed, remotes = await self.resolve(uri)
        message = self.build_request(
            method,
            parsed,
            payload,
            json=json,
            cbor=cbor,
            params=params,
            content_format=content_format,
            accept=accept,
            options=options,
        )
        wait = timeout if timeout is not None else self.transmission.default_leisure + 1.0
        stream = self.driver.open_stream(message, remotes[0], mtype=MessageType.NON, timeout=wait)
        while True:
            try:
                item = await stream.next()
            except RequestTimeout:
                return
            if item is None:
                return
            reply, source = item
            yield Response.from_message(reply, remote=source)


class Observation:
    """An observation started by :meth:`Client.observe`; iterate it for responses.

    The registration is sent by :meth:`start` (``async with`` or the first ``anext``).
    :meth:`cancel` and the end of the ``async with`` block, from any task, end the
    iteration cleanly: a task awaiting the next response gets ``StopAsyncIteration``, and
    responses not yet taken are dropped.  So does closing the client: the program, not
    the server, ended the observation.  An error that ends the observation (see
    :meth:`Client.observe`) is raised once; the iteration is over after it, as an async
    generator's is.
    """

    def __init__(
        self,
        client: Client,
        uri: CoapUri,
        message: Message,
        *,
        non: bool,
        timeout: float | None,
        transmission: TransmissionParameters | None = None,
    ) -> None:
        self._client = client
        self._uri = uri
        self._message = message  #: the registration, Observe=0 and all
        self._non = non
        self._timeout = timeout
        self._transmission = transmission
        self._stream: ResponseStream | None = None
        self._driver: Driver | None = None  #: the driver of the URI's scheme, once started
        self._finished = False
        self.first: Response | None = None  #: the response to the registration

    async def start(self) -> Observation:
        """Send the registration (once); ``async with`` and the first ``anext`` call it."""
        if not self._settled():
            client = self._client
            parsed, remotes = await client.resolve(self._uri)
            driver = await client._route(parsed, remotes[0])
            if self._settled():
                return self  # started or cancelled by another task while resolving
            timeout = self._timeout if self._timeout is not None else client.timeout
            self._driver = driver
            context = await client._security_context(parsed)
            if self._settled():
                return self
            if context is not None:
                from coapkit.runtime.oscore import OscoreStream

                self._stream = OscoreStream.open(
                    driver,
                    context,
                    self._message,
                    remotes[0],
                    mtype=MessageType.NON if self._non else MessageType.CON,
                    transmission=self._transmission,
                    timeout=timeout,
                    block_size=client._inner_block_size(),
                )
                return self
            self._stream = client.open_stream(
                self._message,
                remotes[0],
                non=self._non,
                timeout=timeout,
                transmission=self._transmission,
                driver=driver,
            )
        return self

    def _settled(self) -> bool:
        """Whether the registration went out already, or never will (cancelled)."""
        return self._stream is not None or self._finished

    def __aiter__(self) -> Observation:
        return self

    async def __anext__(self) -> Response:
        if self._finished:
            raise StopAsyncIteration
        await self.start()
        stream = self._stream
        if stream is None:  # cancelled before the registration was sent
            raise StopAsyncIteration
        try:
            item = await stream.next()
        except RequestCancelled:
            # cancel() from another task, or the client closed: this program ended the
            # observation, which is no failure of it (the stream says "cancelled").
            self._finished = True
            raise StopAsyncIteration from None
        except BaseException:
            self._finished = True  # raised once, as an async generator's error is
            raise
        if item is None or self._finished:
            # (cancelled while a response was on its way to this task: dropped)
            self._finished = True
            raise StopAsyncIteration
        reply, source = item
        response = Response.from_message(reply, remote=source)
        if self.first is None:
            self.first = response
        return response

    @property
    def active(self) -> bool:
        """True while notifications may still come."""
        return self._stream is not None and not self._stream.ended

    def cancel(self) -> None:
        """Stop observing; the server is told with a GET carrying Observe=1 (RFC 7641 §3.6).

        The iteration ends cleanly, also for a task awaiting the next response.  Calling
        it again, or after the observation ended, or once the client is closed, does
        nothing more.
        """
        self._finished = True
        stream = self._stream
        driver = self._driver
        if stream is not None and stream.handle is not None and not stream.ended:
            if driver is not None and not driver.closed:
                driver.cancel(stream.handle)

    def __del__(self) -> None:
        # Dropped while the server may still notify (a `break` out of `async for` without
        # `async with`): deregister as leaving `async with` would, and say so.
        stream = self._stream
        if stream is None or stream.ended or self._finished or stream.handle is None:
            return
        driver = self._driver
        if driver is None or driver.closed:
            return
        warnings.warn(
            f"an observation of {self._uri} was dropped while active; it is deregistered "
            "now (use 'async with client.observe(...)' to end it where you decide)",
            ResourceWarning,
            source=self,
            stacklevel=1,
        )
        with suppress(RuntimeError):  # the loop is closed: nothing can be sent any more
            driver.loop.call_soon(driver.cancel, stream.handle)

    async def __aenter__(self) -> Observation:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


@lru_cache(maxsize=256)
def _parse_cached(uri: str) -> CoapUri:
    """URIs are values: a client asking for the same one again need not parse it again."""
    return parse_uri(uri)


@lru_cache(maxsize=256)
def _uri_options(uri: CoapUri) -> Options:
    """A URI's request options, built once per URI (both are immutable values)."""
    return uri.to_options()


def _not_started() -> NotStarted:
    return NotStarted(
        "the client is not started (or is closed); "
        "use 'async with Client() as client:' or 'await client.start()'"
    )


def _payload(payload: object, json: Any, cbor: Any) -> tuple[bytes, int | None]:
    """The payload's bytes and the Content-Format its kind implies (None for bytes).

    Only bytes-like values and ``str`` are payloads: ``bytes(21)`` is 21 zero bytes and
    ``bytes([21])`` one byte 0x15, so an ``int`` or a list is refused rather than guessed.
    """
    if json is not None or cbor is not None:
        if json is not None and cbor is not None:
            raise TypeError("give json= or cbor=, not both")
        if payload:
            raise TypeError("give a payload or json=/cbor=, not both")
        if json is not None:
            return dump_json(json), JSON
        return load_cbor().dumps(cbor), CBOR
    if payload.__class__ is bytes:
        return payload, None
    if isinstance(payload, str):
        return payload.encode("utf-8"), TEXT_PLAIN
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload), None
    raise TypeError(
        f"a payload is bytes or str, not {type(payload).__name__} "
        "(for a number, send its text: str(21); for data, json= or cbor=)"
    )


def _query_arguments(params: object) -> tuple[str, ...]:
    """``params`` as Uri-Query arguments ``name=value``, in order (checked at run time:
    the caller's type checker may not have been asked)."""
    if isinstance(params, TransmissionParameters):
        raise TypeError(
            "params= is the query (as in httpx); transmission parameters go in transmission="
        )
    if isinstance(params, str | bytes):
        raise TypeError(
            "params= takes a mapping or (name, value) pairs; put a query string in the URI"
        )
    if isinstance(params, Mapping):
        pairs: Iterable[Any] = params.items()
    elif isinstance(params, Iterable):
        pairs = params
    else:
        raise TypeError(
            f"params= takes a mapping or (name, value) pairs, not {type(params).__name__}"
        )
    arguments: list[str] = []
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError(f"params= takes (name, value) pairs, not {pair!r}") from None
        if not isinstance(name, str):
            raise TypeError(f"a query parameter's name is a str, not {name!r}")
        if "=" in name:
            # The server splits each argument at its first "=": the name would be cut.
            raise ValueError(f"a query parameter's name cannot contain '=': {name!r}")
        values = value if isinstance(value, list | tuple) else (value,)
        arguments.extend(f"{name}={_query_value(name, item)}" for item in values)
    return tuple(arguments)


def _query_value(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(
        f"query parameter {name!r}: a value is a str, int, float, bool or None, "
        f"not {type(value).__name__}"
    )


def _method_code(method: int | str) -> int:
    if isinstance(method, str):
        code = METHODS_BY_NAME.get(method.upper())
        if code is None:
            raise ValueError(f"unknown method {method!r}; use GET, POST, PUT, DELETE, FETCH, ...")
        return code
    return int(method)
