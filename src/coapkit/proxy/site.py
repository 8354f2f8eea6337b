"""A proxy as a site: forward (RFC 7252 §5.7), reverse, cross-transport, caching (§5.6).

>>> site = ProxySite(forward=True, allow=["*.example.com"])     # doctest: +SKIP
>>> async with site, Server(site, listen=["coap://[::]:5683"]) as server:
...     await server.serve_forever()

Theory of operation
-------------------
:class:`ProxySite` is a :class:`~coapkit.resources.site.Site`, so that any
:class:`~coapkit.server.Server` serves it on every transport it listens on,
and an application keeps its own resources on it.  Its :meth:`dispatch` sees
each request first:

1. A request with Proxy-Uri or Proxy-Scheme is a **forward** request:
   answered 5.05 unless forwarding is on, and unless its target's host and
   port pass the allow list (nothing is sent then).  A request under a
   **reverse rule** (a path prefix, or a Uri-Host) goes to the rule's
   upstream.  Any other request is the site's own, dispatched as usual.
2. The request to forward is made (:mod:`coapkit.proxy.forwarding`: options of
   one hop dropped, Hop-Limit decremented or 5.08), then the hooks run:
   ``authorize`` may refuse it with a response, ``rewrite`` may change its
   target, options or payload.
3. GET and FETCH are answered from the **cache** while fresh (at once, in the
   step the request arrived: a hit costs what a local resource costs), and
   validated with the stored ETag once stale.  Concurrent misses for the same
   request share one upstream request.  A registration (Observe 0) joins or
   starts a **shared observation** (:mod:`coapkit.proxy.observations`).
4. Anything else goes upstream through one :class:`~coapkit.client.Client`,
   which picks the transport from the target's scheme (``coap+tcp``,
   ``coap+ws``...), or through aiohttp for ``http``/``https`` targets
   (:mod:`coapkit.proxy.http_upstream`).  Upstream failures become 5.02 or
   5.04 (:func:`upstream_failure`).

Block-wise transfers are **reassembled** in both directions: the proxy's
server collects a Block1 upload before the request is forwarded and serves a
large response block by block from its own block cache; its client uploads
and downloads upstream block by block.  So each side negotiates its own block
size, and a body is bounded by the server's and the client's
:class:`~coapkit.blockwise.server.BlockwiseConfig`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeAlias

from coapkit.cache import CACHEABLE_METHODS, CacheConfig, CacheKey, ResponseCache, cache_key
from coapkit.client import Client, Observation
from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.codec.uri import CoapUri
from coapkit.errors import (
    BacklogFull,
    CoapError,
    NotStarted,
    OptionValueError,
    RequestTimeout,
    RespondWith,
    UriError,
)
from coapkit.messaging.records import Remote
from coapkit.proxy.forwarding import (
    DEFAULT_HOP_LIMIT,
    Forwarding,
    downstream_response,
    gateway_error,
    hop_limit,
    hop_limit_reached,
    relay_hop_limit_reached,
    upstream_options,
)
from coapkit.proxy.http_upstream import HttpUpstream
from coapkit.proxy.observations import (
    ObservationHub,
    ObservedUpstream,
    SharedObservation,
    Subscription,
)
from coapkit.proxy.rules import (
    AllowList,
    HttpUri,
    ReverseRule,
    Target,
    UnsupportedScheme,
    parse_reverse_rule,
    target_of,
)
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site, error_response, finish
from coapkit.runtime.driver import Driver
from coapkit.transports import MissingExtra

__all__ = [
    "AuthorizeHook",
    "ProxyConfig",
    "ProxySite",
    "RewriteHook",
    "upstream_failure",
]

logger = logging.getLogger("coapkit.proxy")

N = OptionNumber
_PROXY_OPTIONS = (int(N.PROXY_URI), int(N.PROXY_SCHEME))

#: ``authorize(forwarding)``: None lets the request through; a Response answers it instead.
AuthorizeHook: TypeAlias = Callable[[Forwarding], Response | Awaitable[Response | None] | None]
#: ``rewrite(forwarding)``: the request to send instead (``forwarding.replace(...)``).
RewriteHook: TypeAlias = Callable[[Forwarding], Forwarding]


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Settings and bounds of a :class:`ProxySite`."""

    timeout: float | None = 60.0
    """Seconds an upstream request may take before the client gets 5.04 Gateway Timeout
    (None: CoAP's own limits, up to 93 s for a CON)."""
    hop_limit: int = DEFAULT_HOP_LIMIT
    """Hop-Limit given to a request that has none (RFC 8768)."""
    max_observations: int = 1000
    """Upstream observations shared at once; a registration beyond is answered as a plain
    request, without Observe."""
    observe_grace: float = 5.0
    """Seconds an upstream observation stays without observers after its first response."""
    coalesce: bool = True
    """Concurrent identical GET or FETCH requests the cache cannot answer share one
    upstream request (False: each goes upstream)."""
    max_http_body: int = 1024 * 1024
    """The largest body read from an HTTP upstream or taken from an HTTP client (1 MiB)."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """The cache's bounds (entries, bytes)."""

    def __post_init__(self) -> None:
        if not 1 <= self.hop_limit <= 255:
            raise ValueError("hop_limit is 1..255 (RFC 8768)")


NOT_FORWARDING = gateway_error(
    Code.PROXYING_NOT_SUPPORTED, "this proxy does not forward (Proxy-Uri, Proxy-Scheme)"
)


def upstream_failure(exc: BaseException, target: object = "the upstream") -> Response:
    """The response for an upstream request that failed with ``exc``: 5.04 when it timed
    out, 5.05 for a transport this installation cannot reach, 5.02 otherwise."""
    if isinstance(exc, RequestTimeout | TimeoutError):
        reason = str(exc) or "no answer in time"
        return gateway_error(Code.GATEWAY_TIMEOUT, f"{target}: {reason}")
    if isinstance(exc, MissingExtra | UriError):
        return gateway_error(Code.PROXYING_NOT_SUPPORTED, f"{target}: {exc}")
    if isinstance(exc, BacklogFull):
        return Response(Code.SERVICE_UNAVAILABLE, str(exc).encode()[:200], max_age=5)
    return gateway_error(Code.BAD_GATEWAY, f"{target}: {exc}")


#: Plans (where a request goes, with what) kept for reuse: see ProxySite._plan.
PLANS_KEPT = 1024


class _Plan:
    """Where a request goes and with what; see ProxySite._plan."""

    __slots__ = ("key", "message", "observe_key", "options", "remote", "reverse", "target")

    def __init__(
        self,
        target: Target,
        options: Options,
        key: CacheKey | None,
        observe_key: object,
        reverse: bool,
    ) -> None:
        self.target = target
        self.options = options  #: the options to forward (Hop-Limit decremented)
        self.key = key  #: None: the cache takes no part (the method, or OSCORE)
        self.observe_key = observe_key  #: what shares an upstream observation
        self.reverse = reverse
        #: the whole upstream request, when the target is a UDP one at an IP address
        #: (made at the first miss): sent without the client's URI handling
        self.message: Message | None = None
        self.remote: Remote | None = None  #: where that goes, as the client's socket says

    def forwarding(self, request: Request) -> Forwarding:
        return Forwarding(request, self.target, self.options, request.message.payload, self.reverse)


def _key_of(method: int, target: Target, options: Options, payload: bytes) -> CacheKey | None:
    if method not in CACHEABLE_METHODS or N.OSCORE in options:
        return None
    return cache_key(method, target, options, payload)


def _direct(target: CoapUri) -> bool:
    """Whether requests to ``target`` may go straight to the client's UDP driver: plain
    CoAP to an IP address (no name to resolve, no zone, no connection to open)."""
    return target.scheme == "coap" and target.host_is_ip_literal and "%" not in target.host


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # called outside a loop (a test of the site alone)
        return time.monotonic()


class ProxySite(Site):
    """A site that proxies: see the module doc.

    :param forward: act as a forward proxy (Proxy-Uri, Proxy-Scheme); off by default,
        since an open forward proxy is an amplifier and a port scanner (SECURITY.md)
    :param allow: ``HOST[:PORT]`` patterns (``*`` wildcards; ``[::1]`` for IPv6) the
        forward proxy may reach; None: any host and port.  Giving patterns turns
        forwarding on for them.
    :param reverse: reverse rules, ``{"/up": "coap://h:5683/base"}`` or ``"PREFIX=URI"``
        strings (:func:`~coapkit.proxy.rules.parse_reverse_rule`); a prefix is a path, or
        a host name that the request's Uri-Host must name
    :param client: the client that reaches CoAP upstreams (its own transmission
        parameters, TLS material...); by default one made at the first request, closed
        by :meth:`close`
    :param cache: the response cache to use (by default one with ``config.cache``'s bounds)
    :param config: timeouts and bounds (:class:`ProxyConfig`)
    :param authorize: called with each :class:`~coapkit.proxy.forwarding.Forwarding`
        before it goes: return None to let it through, or a Response to answer instead
        (``Response(Code.FORBIDDEN)``); may be ``async``
    :param rewrite: called next: return the request to send (``forwarding.replace(...)``)
    :param name: how this proxy names itself in a 5.08 Hop Limit Reached (its address;
        by default the host's name)
    """

    def __init__(
        self,
        *,
        forward: bool = False,
        allow: Iterable[str] | AllowList | None = None,
        reverse: Mapping[str, str] | Iterable[str | ReverseRule] = (),
        client: Client | None = None,
        cache: ResponseCache | None = None,
        config: ProxyConfig | None = None,
        authorize: AuthorizeHook | None = None,
        rewrite: RewriteHook | None = None,
        name: str | None = None,
        well_known: bool = True,
    ) -> None:
        super().__init__(well_known=well_known)
        self.config = config or ProxyConfig()
        if allow is not None and not isinstance(allow, AllowList):
            allow = AllowList(allow)
        self._plans: dict[object, _Plan] = {}
        self._allow: AllowList | None = allow if allow is None or allow.patterns else None
        self._forwarding_on = forward or self._allow is not None
        rules = (
            [f"{prefix}={uri}" for prefix, uri in reverse.items()]
            if isinstance(reverse, Mapping)
            else list(reverse)
        )
        #: the reverse rules (fixed once made)
        self.rules: tuple[ReverseRule, ...] = tuple(
            rule if isinstance(rule, ReverseRule) else parse_reverse_rule(rule) for rule in rules
        )
        self._path_rules = sorted(
            (rule for rule in self.rules if not rule.is_host),
            key=lambda rule: len(rule.segments),
            reverse=True,
        )
        self._host_rules = {rule.prefix: rule for rule in self.rules if rule.is_host}
        #: the response cache (hits, misses, revalidations in ``cache.stats``)
        self.cache = cache if cache is not None else ResponseCache(self.config.cache)
        #: the shared upstream observations
        self.observations = ObservationHub(self.config.max_observations)
        self.name = name or socket.gethostname()
        self._authorize = authorize
        self._rewrite = rewrite
        #: whether a hook may change what happens to a request (else the fast path)
        self._hooks = (
            authorize is not None
            or rewrite is not None
            or type(self).authorize is not ProxySite.authorize
            or type(self).rewrite is not ProxySite.rewrite
        )
        self._client = client
        self._own_client = client is None
        self._http: HttpUpstream | None = None
        self._in_flight: dict[object, asyncio.Future[Response]] = {}
        self._closed = False

    @property
    def forward(self) -> bool:
        """Whether requests with Proxy-Uri or Proxy-Scheme are forwarded."""
        return self._forwarding_on

    @forward.setter
    def forward(self, on: bool) -> None:
        self._forwarding_on = on
        self._plans.clear()

    @property
    def allow(self) -> AllowList | None:
        """The targets the forward proxy may reach (None: any)."""
        return self._allow

    @allow.setter
    def allow(self, allow: AllowList | None) -> None:
        self._allow = allow
        self._plans.clear()

    def __repr__(self) -> str:
        mode = []
        if self.forward:
            mode.append("forward" + ("" if self.allow is None else f" to {self.allow.patterns}"))
        if self.rules:
            mode.append(", ".join(f"{rule.prefix}={rule.upstream}" for rule in self.rules))
        return f"<ProxySite {'; '.join(mode) or 'not proxying'}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ProxySite:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the shared observations and close what this site opened (its client, its
        HTTP session)."""
        self._closed = True
        await self.observations.close()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def client(self) -> Client:
        """The client that reaches CoAP upstreams, started."""
        client = self._client
        if client is None:
            client = self._client = Client()
        return await client.start()

    @property
    def _driver(self) -> Driver | None:
        """The client's UDP driver while it runs (None before its start, after its close)."""
        client = self._client
        if client is None:
            return None
        try:
            return client.driver
        except NotStarted:
            return None

    def _http_upstream(self) -> HttpUpstream:
        if self._http is None:
            self._http = HttpUpstream(max_body=self.config.max_http_body)
        return self._http

    # -- hooks -------------------------------------------------------------------------------

    def authorize(self, forwarding: Forwarding) -> Response | Awaitable[Response | None] | None:
        """None to forward ``forwarding``, or the response to answer instead; by default
        the ``authorize`` given to the constructor (override to decide in a subclass)."""
        hook = self._authorize
        return None if hook is None else hook(forwarding)

    def rewrite(self, forwarding: Forwarding) -> Forwarding:
        """The request to send for ``forwarding``; by default the ``rewrite`` given to the
        constructor, or ``forwarding`` as it is."""
        hook = self._rewrite
        return forwarding if hook is None else hook(forwarding)

    # -- dispatch ----------------------------------------------------------------------------

    def _route_of(self, request: Request) -> tuple[bool, ReverseRule | None]:
        """(whether ``request`` is proxied, the reverse rule if not a forward request)."""
        for number, _ in request.message.options.items:
            if number in _PROXY_OPTIONS:
                return True, None
        if not self.rules:
            return False, None
        if self._host_rules:
            try:
                host = request.message.options.uri_host
            except OptionValueError:
                host = None
            if host is not None:
                rule = self._host_rules.get(host.lower())
                if rule is not None:
                    return True, rule
        if self._path_rules:
            try:
                path = request.path
            except CoapError:
                return False, None  # the site answers 4.00
            for rule in self._path_rules:
                segments = rule.segments
                if path[: len(segments)] == segments:
                    return True, rule
        return False, None

    def _plan(self, request: Request, rule: ReverseRule | None) -> _Plan | Response:
        """Where ``request`` goes and with what (before the hooks), or the response refusing
        it.  Plans are values of the request's method, options and (FETCH) payload, so the
        last ones made are kept and reused: a cache hit then costs a dictionary lookup."""
        message = request.message
        code = message.code
        memo = (
            None if rule is None else rule.prefix,
            code,
            message.options.items,
            message.payload if code == Code.FETCH else b"",
        )
        plan = self._plans.get(memo)
        if plan is not None:
            return plan
        options = message.options
        try:
            if rule is None:
                if not self.forward:
                    return NOT_FORWARDING
                target = target_of(options)
                allow = self.allow
                if allow is not None and not allow.allows(target.host, target.port):
                    logger.info(
                        "%s: forwarding to %s:%d refused (not allowed)",
                        request.remote,
                        target.host,
                        target.port,
                    )
                    return gateway_error(
                        Code.PROXYING_NOT_SUPPORTED,
                        f"forwarding to {target.host}:{target.port} is not allowed here",
                    )
            else:
                target = rule.target(request.path, request.query)
            hops = hop_limit(options)
            if hops is None:
                hops = self.config.hop_limit  # as if it had come with the initial value
            if hops == 1:
                return hop_limit_reached(self.name)
            hops -= 1
        except UnsupportedScheme as exc:
            return gateway_error(Code.PROXYING_NOT_SUPPORTED, str(exc))
        except UriError as exc:
            return Response(Code.BAD_REQUEST, str(exc).encode("utf-8"))
        except RespondWith as exc:
            return error_response(exc, request)
        forwarded = upstream_options(options, hops)
        if isinstance(forwarded, Response):
            return forwarded
        key = _key_of(code, target, forwarded, message.payload)
        plan = _Plan(target, forwarded, key, (key, hops), rule is not None)
        plans = self._plans
        if len(plans) >= PLANS_KEPT:
            del plans[next(iter(plans))]
        plans[memo] = plan
        return plan

    def dispatch(self, request: Request) -> Response | Awaitable[Response]:
        proxied, rule = self._route_of(request)
        if not proxied:
            return super().dispatch(request)
        plan = self._plan(request, rule)
        if isinstance(plan, Response):
            return plan
        if not self._hooks:
            return self._handle(request, plan, plan, None)
        forwarding = plan.forwarding(request)
        try:
            verdict = self.authorize(forwarding)
        except Exception as exc:
            return error_response(exc, request)
        if isinstance(verdict, Response):
            return verdict
        if verdict is None:
            return self._rewritten(request, plan, forwarding)
        return finish(self._authorized_later(verdict, request, plan, forwarding), request)

    async def _authorized_later(
        self,
        verdict: Awaitable[Response | None],
        request: Request,
        plan: _Plan,
        forwarding: Forwarding,
    ) -> Response:
        answer = await verdict
        if answer is not None:
            return answer
        result = self._rewritten(request, plan, forwarding)
        return result if isinstance(result, Response) else await result

    def _rewritten(
        self, request: Request, plan: _Plan, forwarding: Forwarding
    ) -> Response | Awaitable[Response]:
        try:
            rewritten = self.rewrite(forwarding)
        except Exception as exc:
            return error_response(exc, request)
        if rewritten is forwarding:
            return self._handle(request, plan, plan, forwarding)
        target, options = rewritten.target, rewritten.options
        key = _key_of(rewritten.method, target, options, rewritten.payload)
        sending = _Plan(target, options, key, plan.observe_key, rewritten.reverse)
        return self._handle(request, plan, sending, rewritten)

    def _handle(
        self, request: Request, plan: _Plan, sending: _Plan, forwarding: Forwarding | None
    ) -> Response | Awaitable[Response]:
        """Answer from the cache or a shared observation, or go upstream.  ``plan`` is the
        request's own (its observation key), ``sending`` what goes upstream (rewritten)."""
        key = sending.key
        if forwarding is None:
            forwarding = sending.forwarding(request)
        if key is None:
            return finish(self._forward(forwarding, sending), request)
        try:
            observe = request.observe
        except RespondWith as exc:
            return error_response(exc, request)
        if observe == 0 and not isinstance(sending.target, HttpUri):
            observed = self._observe(request, plan, forwarding, key)
            if observed is not None:
                return observed
        now = _now()
        entry = self.cache.lookup(key, now)
        if entry is not None and entry.fresh(now):
            etags = request.message.options.etags
            if etags and entry.etag in etags:
                return entry.valid(now)
            return entry.serve(now)
        return finish(self._fetch(forwarding, key, entry is not None, sending), request)

    # -- upstream ------------------------------------------------------------------------------

    async def _fetch(
        self, forwarding: Forwarding, key: CacheKey, validate: bool, plan: _Plan | None = None
    ) -> Response:
        """A cacheable request the cache cannot answer: ask upstream (once for concurrent
        identical requests), validating the stale entry if there is one, and store."""
        etags = forwarding.options.etags
        if not self.config.coalesce:
            return await self._revalidating_fetch(forwarding, key, validate, etags, plan)
        flight = (key, forwarding.options.hop_limit, etags)
        running = self._in_flight.get(flight)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = future
        try:
            response = await self._revalidating_fetch(forwarding, key, validate, etags, plan)
        except BaseException:
            future.cancel()  # (cancelled: those waiting for it are answered as it is)
            raise
        finally:
            if self._in_flight.get(flight) is future:
                del self._in_flight[flight]
        if not future.done():
            future.set_result(response)
        return response

    async def _revalidating_fetch(
        self,
        forwarding: Forwarding,
        key: CacheKey,
        validate: bool,
        etags: tuple[bytes, ...],
        plan: _Plan | None,
    ) -> Response:
        stale = self.cache.peek(key) if validate else None
        if stale is not None and stale.etag is not None and stale.etag not in etags:
            forwarding = forwarding.replace(options=forwarding.options.add(N.ETAG, stale.etag))
        response = await self._upstream(forwarding, plan)
        now = _now()
        if response.code == Code.VALID:
            tag = response.options.get(N.ETAG)
            if stale is not None and tag in (None, stale.etag):
                fresh = self.cache.refresh(key, response, now)
                if fresh is not None:
                    return fresh.valid(now) if fresh.etag in etags else fresh.serve(now)
            return response  # the client's own ETag was confirmed
        stored = self.cache.store(key, response, now)
        if stored is not None and etags and stored.etag in etags:
            return stored.valid(now)
        return response

    async def _forward(self, forwarding: Forwarding, plan: _Plan | None = None) -> Response:
        """A request the cache takes no part in (POST, PUT, DELETE..., OSCORE)."""
        response = await self._upstream(forwarding, plan)
        if 64 <= response.code < 96 and forwarding.method not in CACHEABLE_METHODS:
            self.cache.invalidate(forwarding.target)  # its stored responses are outdated
        return response

    async def _upstream(self, forwarding: Forwarding, plan: _Plan | None = None) -> Response:
        """Send ``forwarding`` upstream; its response without the options of that hop, or a
        5.02/5.04/5.05 saying why there is none.  With the ``plan`` it was made from, a
        request to a UDP target at an IP address goes straight to the client's driver."""
        target = forwarding.target
        timeout = self.config.timeout
        try:
            if isinstance(target, HttpUri):
                response = await self._http_upstream().request(forwarding, timeout)
            elif plan is not None and plan.options is forwarding.options and _direct(target):
                driver = self._driver or (await self.client()).driver
                message, remote = plan.message, plan.remote
                if message is None or remote is None:
                    options = Options((*target.to_options().items, *plan.options.items))
                    message = Message(MessageType.CON, forwarding.method, 0, b"", options)
                    remote = driver.transport.remote_for((target.host, target.port))
                    plan.message, plan.remote = message, remote
                if forwarding.payload:
                    message = message.replace(payload=forwarding.payload)
                reply, source = await driver.request(message, remote, timeout=timeout)
                response = Response.from_message(reply, remote=source)
            else:
                client = await self.client()
                message = Message(
                    MessageType.CON,
                    forwarding.method,
                    0,
                    b"",
                    forwarding.options,
                    forwarding.payload,
                )
                response = await client.request(message, target, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except (CoapError, OSError, MissingExtra, TimeoutError) as exc:
            logger.debug("%s: %s", target, exc)
            return upstream_failure(exc, target)
        except Exception as exc:  # an HTTP library error (aiohttp.ClientError...)
            logger.debug("%s: %s", target, exc)
            return upstream_failure(exc, target)
        response = downstream_response(response)
        if response.code == Code.HOP_LIMIT_REACHED:
            response = relay_hop_limit_reached(response, self.name)
        return response

    # -- shared observations (RFC 7641 §5) -------------------------------------------------------

    def _observe(
        self, request: Request, plan: _Plan, forwarding: Forwarding, key: CacheKey
    ) -> Response | Awaitable[Response] | None:
        """Answer a registration from the shared observation of its target (started if
        there is none); None when the hub is full (then it is a plain request)."""
        hub = self.observations
        shared = hub.get(plan.observe_key)
        if shared is None:
            shared = self._start_observation(plan.observe_key, forwarding, key)
            if shared is None:
                return None
        latest = shared.latest
        if latest is not None:
            return latest
        return finish(shared.first(), request)

    def _start_observation(
        self, shared_key: object, forwarding: Forwarding, key: CacheKey
    ) -> SharedObservation | None:
        target = forwarding.target
        assert isinstance(target, CoapUri)
        timeout = self.config.timeout

        async def open_upstream() -> Observation:
            client = await self.client()
            return client.observe(
                target,
                method=forwarding.method,
                payload=forwarding.payload,
                options=forwarding.options,
                timeout=timeout,
            )

        def on_state(response: Response) -> None:
            self.cache.store(key, response, _now())

        return self.observations.start(
            shared_key,
            name=str(target),
            open_upstream=open_upstream,
            on_state=on_state,
            failure=lambda exc: upstream_failure(exc, target),
            grace=self.config.observe_grace,
        )

    def observable_resource(self, request: Request) -> Resource | None:
        proxied, rule = self._route_of(request)
        if not proxied:
            return super().observable_resource(request)
        plan = self._plan(request, rule)
        if isinstance(plan, Response):
            return None
        shared = self.observations.get(plan.observe_key)
        if shared is None or not shared.observable or shared.ended:
            return None
        return shared.resource

    def render_notification(
        self, request: Request, resource: Resource
    ) -> Response | Awaitable[Response]:
        if isinstance(resource, ObservedUpstream):
            latest = resource.shared.latest
            if latest is not None:
                return latest
        return super().render_notification(request, resource)

    async def subscribe(self, request: Request) -> Subscription | Response:
        """Watch a proxied resource outside CoAP (the HTTP front end's event streams): a
        :class:`~coapkit.proxy.observations.Subscription` of its states, sharing the
        upstream observation with CoAP observers; or the response when it cannot be
        observed (refused, not GET or FETCH, an HTTP target, or too many observations)."""
        proxied, rule = self._route_of(request)
        if not proxied:
            result = self.dispatch(request)
            return result if isinstance(result, Response) else await result
        plan = self._plan(request, rule)
        if isinstance(plan, Response):
            return plan
        forwarding = plan.forwarding(request)
        try:
            verdict = self.authorize(forwarding)
            if verdict is not None and not isinstance(verdict, Response):
                verdict = await verdict
            if verdict is not None:
                return verdict
            rewritten = self.rewrite(forwarding)
        except Exception as exc:
            return error_response(exc, request)
        target, options = rewritten.target, rewritten.options
        key = _key_of(rewritten.method, target, options, rewritten.payload)
        shared = None
        if key is not None and not isinstance(target, HttpUri):
            shared = self.observations.get(plan.observe_key) or self._start_observation(
                plan.observe_key, rewritten, key
            )
        if shared is None:
            sending = _Plan(target, options, key, plan.observe_key, rewritten.reverse)
            result = self._handle(request, plan, sending, rewritten)
            return result if isinstance(result, Response) else await result
        return shared.subscribe()
