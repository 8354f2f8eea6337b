"""The resource directory server (RFC 9176): its resources on a site, served by a Server.

Resources (the paths of RFC 9176's examples):

* ``/rd`` (``rt=core.rd``): registration, §5.3.  POST with ``ep``, ``d``, ``lt``,
  ``base``, ``et`` and extra attributes in the query and the links in the payload
  (link-format, or its JSON or CBOR form); 2.01 Created with the registration
  resource in Location-Path.  The same ``(d, ep)`` again replaces the registration and
  keeps its resource.
* ``/reg/ID``: the registration resource.  POST updates it (§5.3.1: ``lt``, ``base``
  and attributes in the query; a payload of links replaces the links, as does PUT,
  which aiocoap-rd takes), GET shows its links, DELETE removes it (§5.3.2).  4.04 for
  one that expired or never was: the registrant registers anew.
* ``/rd-lookup/ep`` and ``/rd-lookup/res`` (``rt=core.rd-lookup-ep``,
  ``core.rd-lookup-res``): endpoint and resource lookup, §6, with every filter (an
  attribute of the registration or of a link, a trailing ``*`` for a prefix, a bare
  name for "has it"), links resolved against the registration's base, ``page`` and
  ``count``; link-format, or JSON (504) or CBOR (64) by Accept.
* ``/.well-known/rd``: simple registration, §5.1: an empty POST; the directory
  fetches the sender's ``/.well-known/core`` and registers that, answering 2.04.
* ``/.well-known/core`` lists the first three (discovery, §4.3: ``?rt=core.rd*``).

Theory of operation: the resources are thin; the decisions are the model's
(:mod:`coapkit.rd.model`: what a parameter may be), the policy's
(:mod:`coapkit.rd.policy`: who may use which name) and the store's
(:mod:`coapkit.rd.store`: the one place registrations live, so that a restart, or
several processes sharing a Redis store, changes nothing).  A request is checked
whole before anything is written, and written in one store call, so a refused
request leaves nothing behind.  A store that fails is answered 5.03 with Max-Age,
once logged.  Time for lifetimes is ``clock()``, wall-clock seconds by default
(registrations outlive the process); a purge task removes expired registrations once
a minute, though every read already ignores them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from types import TracebackType
from typing import Any, TypeVar

from coapkit.client import Client
from coapkit.codec.codes import Code, is_success
from coapkit.codec.content_formats import LINK_FORMAT
from coapkit.errors import BadRequest, CoapError, RespondWith
from coapkit.rd.model import (
    LINK_FORMATS,
    RDConfig,
    Registration,
    RegistrationParameters,
    decode_links,
    encode_links,
    endpoint_link,
    merge_attributes,
    parse_lookup,
    parse_registration,
)
from coapkit.rd.policy import OpenPolicy, RegistrationPolicy
from coapkit.rd.store import Store
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site
from coapkit.server import Server

__all__ = ["ResourceDirectory"]

logger = logging.getLogger("coapkit.rd")

T = TypeVar("T")

#: seconds between two purges of expired registrations
PURGE_INTERVAL = 60.0


def _accept(request: Request) -> int:
    accept = request.accept
    return LINK_FORMAT if accept is None else accept


def _links_response(links: Any, request: Request) -> Response:
    content_format = _accept(request)
    return Response(
        Code.CONTENT, encode_links(links, content_format), content_format=content_format
    )


class _RDResource(Resource):
    def __init__(self, directory: ResourceDirectory, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.directory = directory


def _changing(response: Response, directory: ResourceDirectory) -> Response:
    """``response`` to a registration, an update or a removal; a success changes what
    the lookups find, so their observers are told (:meth:`ResourceDirectory.lookups_changed`)."""
    if is_success(response.code):
        directory.lookups_changed()
    return response


class _Registrations(_RDResource):
    """``/rd``: registration (RFC 9176 §5.3)."""

    rt = "core.rd"
    ct = (LINK_FORMAT, 64, 504)
    accepts = LINK_FORMATS

    async def post(self, request: Request) -> Response:
        return _changing(await self.directory.register(request), self.directory)


class _Simple(_RDResource):
    """``/.well-known/rd``: simple registration (RFC 9176 §5.1)."""

    hidden = True

    async def post(self, request: Request) -> Response:
        return _changing(await self.directory.register_simple(request), self.directory)


class _Registration(_RDResource):
    """``/reg/{id}``: one registration (RFC 9176 §5.3.1, §5.3.2)."""

    hidden = True
    accepts = LINK_FORMATS
    produces = LINK_FORMATS

    async def get(self, request: Request) -> Response:
        registration = await self.directory.registration(request)
        return _links_response(registration.links, request)

    async def post(self, request: Request) -> Response:
        return _changing(await self.directory.update(request), self.directory)

    async def put(self, request: Request) -> Response:
        response = await self.directory.update(request, replace_links=True)
        return _changing(response, self.directory)

    async def delete(self, request: Request) -> Response:
        return _changing(await self.directory.remove(request), self.directory)


class _EndpointLookup(_RDResource):
    """``/rd-lookup/ep`` (RFC 9176 §6); observable: each observer is sent its own lookup's
    answer again whenever a registration, update, removal or expiry may have changed it."""

    observable = True
    rt = "core.rd-lookup-ep"
    ct = (LINK_FORMAT, 64, 504)
    produces = LINK_FORMATS

    async def get(self, request: Request) -> Response:
        lookup = parse_lookup(request.query)
        now = self.directory.clock()
        found = await self.directory._store_call(self.directory.store.endpoints(lookup, now))
        return _links_response([endpoint_link(item) for item in found], request)


class _ResourceLookup(_RDResource):
    """``/rd-lookup/res`` (RFC 9176 §6); observable, as the endpoint lookup is."""

    observable = True
    rt = "core.rd-lookup-res"
    ct = (LINK_FORMAT, 64, 504)
    produces = LINK_FORMATS

    async def get(self, request: Request) -> Response:
        lookup = parse_lookup(request.query)
        now = self.directory.clock()
        found = await self.directory._store_call(self.directory.store.resources(lookup, now))
        return _links_response(found, request)


class ResourceDirectory:
    """A resource directory (RFC 9176) on ``store``, served by its own :class:`Server`.

    >>> directory = ResourceDirectory(store, listen=["coap://[::]:5683"])  # doctest: +SKIP
    >>> async with directory:
    ...     await directory.serve_forever()

    ``site``: a site to add the directory's resources to (by default a new one);
    ``config``: the limits (:class:`~coapkit.rd.model.RDConfig`); ``policy``: who may
    register which names (:mod:`coapkit.rd.policy`; open by default); ``identify``:
    the security identity of a request, ``None`` when it has none (by default the
    PSK identity or certificate name its DTLS session proved, or the name, else the
    SHA-256 fingerprint, of the TLS client certificate of its connection; OSCORE
    identities plug in here); ``clock``: seconds since the
    epoch (``time.time``; a test in virtual time passes the loop's clock).  Other
    keywords go to the :class:`Server` (``listen=``, ``network=``...).  The store is
    the caller's: opened before, closed after.
    """

    def __init__(
        self,
        store: Store,
        *,
        site: Site | None = None,
        config: RDConfig | None = None,
        policy: RegistrationPolicy | None = None,
        identify: Callable[[Request], str | None] | None = None,
        clock: Callable[[], float] = time.time,
        **server_options: Any,
    ) -> None:
        self.store = store
        self.config = config or RDConfig()
        self.policy = policy or OpenPolicy()
        self.clock = clock
        self._identify = identify
        self.site = site if site is not None else Site()
        self.site.add("/rd", _Registrations(self))
        self.site.add("/reg/{id}", _Registration(self))
        self._lookups = (_EndpointLookup(self), _ResourceLookup(self))
        self.site.add("/rd-lookup/ep", self._lookups[0])
        self.site.add("/rd-lookup/res", self._lookups[1])
        self.site.add("/.well-known/rd", _Simple(self))
        self.server = Server(self.site, **server_options)
        self._client: Client | None = None
        self._purger: asyncio.Task[None] | None = None
        self._store_failing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> ResourceDirectory:
        await self.server.start()
        if self._purger is None:
            self._purger = asyncio.get_running_loop().create_task(self._purge_regularly())
        return self

    async def close(self) -> None:
        purger, self._purger = self._purger, None
        if purger is not None:
            purger.cancel()
            with suppress(asyncio.CancelledError):
                await purger
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self.server.close()

    async def serve_forever(self) -> None:
        await self.start()
        await self.server.serve_forever()

    async def __aenter__(self) -> ResourceDirectory:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _purge_regularly(self) -> None:
        while True:
            try:
                removed = await self.store.purge(self.clock())
            except Exception as exc:
                logger.warning("purging expired registrations failed: %s", exc)
            else:
                if removed:
                    logger.debug("purged %d expired registrations", removed)
                    self.lookups_changed()
            await asyncio.sleep(PURGE_INTERVAL)

    def lookups_changed(self) -> None:
        """The directory's content changed: the observers of the lookups (RFC 9176 §6 lets
        lookups be observed, RFC 7641) get their lookup's answer again.  Each observer's
        query is its own, so one that filters for something else receives the same answer
        once more (with a new Observe number): cheaper than a lookup per observer to
        find out.  Behind several processes sharing a Redis
        store, give the server a notification bus (``Server(bus=)``, :mod:`coapkit.bus`),
        and a change in one process reaches the observers held by all."""
        for lookup in self._lookups:
            lookup.changed()

    # -- the requester ----------------------------------------------------------------------

    def identity(self, request: Request) -> str | None:
        """The requester's security identity (see the class doc), or None."""
        if self._identify is not None:
            return self._identify(request)
        security = request.security
        if security is not None and security.protocol == "dtls" and security.label:
            # a DTLS peer (coaps://): its PSK identity or certificate name, as the session
            # layer proved it (RFC 9176 §7: the requester's authenticated identity)
            return security.label
        for listener in self.server.listeners:
            peer_identity = getattr(listener.transport, "peer_identity", None)
            if peer_identity is None:
                continue
            try:
                certificate = peer_identity(request._remote)
            except Exception:
                continue
            if certificate is not None:
                name: str | None = certificate.common_name
                return name if name is not None else certificate.sha256
        return None

    def source_base(self, request: Request) -> str:
        """The base URI of the request's source (RFC 9176 §5.3: when ``base`` is not
        given): the scheme of the listener it came in on, the source address and port."""
        scheme = "coap"
        security = request.security
        if security is not None and security.protocol == "dtls":
            return f"coaps://{request.remote}"  # it came in a DTLS session: coaps://
        for listener in self.server.listeners:
            connected = getattr(listener.transport, "is_connected", None)
            if listener.scheme != "coap" and connected is not None:
                with suppress(Exception):
                    if connected(request._remote):
                        scheme = listener.scheme
                        break
        return f"{scheme}://{request.remote}"

    async def _store_call(self, call: Awaitable[T]) -> T:
        """A store operation; a failing store is 5.03 (logged once per outage)."""
        try:
            result = await call
        except CoapError:
            raise
        except Exception as exc:
            if not self._store_failing:
                self._store_failing = True
                logger.error("the resource directory's store failed: %r", exc)
            raise RespondWith(
                Code.SERVICE_UNAVAILABLE,
                "the directory's store is unavailable; try again later",
                max_age=self.config.retry_after,
            ) from None
        if self._store_failing:
            self._store_failing = False
            logger.info("the resource directory's store works again")
        return result

    # -- registration ------------------------------------------------------------------------

    def _check_body(self, request: Request) -> None:
        if len(request.payload) > self.config.max_body:
            raise RespondWith(
                Code.REQUEST_ENTITY_TOO_LARGE,
                f"registrations take at most {self.config.max_body} bytes of links",
                size1=self.config.max_body,
            )

    def _check_links(self, count: int) -> None:
        if count > self.config.max_links:
            raise RespondWith(
                Code.REQUEST_ENTITY_TOO_LARGE,
                f"a registration holds at most {self.config.max_links} links, not {count}",
            )

    async def register(self, request: Request) -> Response:
        """POST ``/rd`` (RFC 9176 §5.3)."""
        params = parse_registration(request.query, self.config)
        self._check_body(request)
        links = decode_links(request.payload, request.content_format)
        self._check_links(len(links))
        registration = await self._store_registration(request, params, links, params.base)
        return Response(Code.CREATED, location_path=["reg", str(registration.id)])

    async def register_simple(self, request: Request) -> Response:
        """POST ``/.well-known/rd`` (RFC 9176 §5.1): fetch the sender's links, register."""
        params = parse_registration(request.query, self.config)
        if params.base is not None:
            raise BadRequest("a simple registration takes no base: the source address is it")
        if request.payload:
            raise BadRequest("a simple registration has no payload")
        name = params.ep or self.policy.default_name(self.identity(request))
        if name is None:
            raise BadRequest("ep is missing (RFC 9176 §5.1)")
        base = self.source_base(request)
        if self._client is None:
            self._client = await Client().start()
        try:
            response = await self._client.get(
                f"{base}/.well-known/core",
                accept=LINK_FORMAT,
                timeout=self.config.simple_timeout,
            )
        except CoapError as exc:
            raise RespondWith(
                Code.GATEWAY_TIMEOUT, f"could not fetch {base}/.well-known/core: {exc}"
            ) from None
        if not response.is_success:
            raise RespondWith(
                Code.BAD_GATEWAY,
                f"{base}/.well-known/core answered {response.code.dotted}",
            )
        if len(response.payload) > self.config.max_body:
            raise RespondWith(
                Code.BAD_GATEWAY,
                f"{base}/.well-known/core holds more than {self.config.max_body} bytes",
            )
        try:
            links = decode_links(response.payload, response.content_format)
        except RespondWith as exc:
            raise RespondWith(
                Code.BAD_GATEWAY, f"{base}/.well-known/core: {exc.diagnostic}"
            ) from None
        self._check_links(len(links))
        await self._store_registration(request, params, links, None)
        return Response(Code.CHANGED)

    async def _store_registration(
        self,
        request: Request,
        params: RegistrationParameters,
        links: list[Any],
        base: str | None,
    ) -> Registration:
        identity = self.identity(request)
        source = request.remote.host
        ep = params.ep or self.policy.default_name(identity)
        if ep is None:
            raise BadRequest("ep is missing (RFC 9176 §5.3)")
        sector = params.sector or ""
        now = self.clock()
        store = self.store
        existing = await self._store_call(store.find(sector, ep, now))
        self.policy.check(identity=identity, source=source, ep=ep, sector=sector, existing=existing)
        if existing is None:
            if await self._store_call(store.count(now)) >= self.config.max_registrations:
                raise RespondWith(
                    Code.SERVICE_UNAVAILABLE,
                    f"the directory is full ({self.config.max_registrations} registrations)",
                    max_age=self.config.retry_after,
                )
            mine = await self._store_call(store.count(now, source))
            if mine >= self.config.max_per_source:
                raise RespondWith(
                    Code.SERVICE_UNAVAILABLE,
                    f"{source} has {mine} registrations, the most one source may have",
                    max_age=self.config.retry_after,
                )
        lifetime = params.lifetime or self.config.default_lifetime
        draft = Registration(
            id=0,
            ep=ep,
            sector=sector,
            base=base if base is not None else self.source_base(request),
            explicit_base=base is not None,
            lifetime=lifetime,
            expires=now + lifetime,
            attributes=params.attributes,
            links=tuple(links),
            source=source,
            owner=self.policy.owner(identity, source),
        )
        stored = await self._store_call(store.register(draft, now))
        logger.info(
            "%s %s as %s%s (lifetime %d s)",
            "registered" if existing is None else "registered again",
            stored.path,
            ep,
            f" in {sector}" if sector else "",
            lifetime,
        )
        return stored

    # -- the registration resource ------------------------------------------------------------

    async def _existing(self, request: Request) -> Registration:
        text = request.params.get("id", "")
        registration = None
        if text.isascii() and text.isdigit() and len(text) < 19:
            now = self.clock()
            registration = await self._store_call(self.store.get(int(text), now))
        if registration is None:
            raise RespondWith(Code.NOT_FOUND, "no such registration (expired or removed)")
        return registration

    async def registration(self, request: Request) -> Registration:
        """The registration a request to ``/reg/ID`` names; 4.04 when it is gone."""
        return await self._existing(request)

    def _check_owner(self, request: Request, registration: Registration) -> None:
        self.policy.check(
            identity=self.identity(request),
            source=request.remote.host,
            ep=registration.ep,
            sector=registration.sector,
            existing=registration,
        )

    async def update(self, request: Request, *, replace_links: bool = False) -> Response:
        """POST (or PUT) ``/reg/ID`` (RFC 9176 §5.3.1)."""
        params = parse_registration(request.query, self.config, update=True)
        links = None
        if replace_links or request.payload:
            self._check_body(request)
            links = decode_links(request.payload, request.content_format)
            self._check_links(len(links))
        registration = await self._existing(request)
        self._check_owner(request, registration)
        now = self.clock()
        lifetime = params.lifetime or registration.lifetime
        base, explicit = registration.base, registration.explicit_base
        if params.base is not None:
            base, explicit = params.base, True
        elif not explicit:
            base = self.source_base(request)  # the source address may have changed (NAT)
        changed = registration.with_changes(
            base=base,
            explicit_base=explicit,
            lifetime=lifetime,
            expires=now + lifetime,
            attributes=merge_attributes(registration.attributes, params.attributes),
            links=registration.links if links is None else tuple(links),
        )
        if not await self._store_call(self.store.update(changed, now)):
            raise RespondWith(Code.NOT_FOUND, "no such registration (expired or removed)")
        return Response(Code.CHANGED)

    async def remove(self, request: Request) -> Response:
        """DELETE ``/reg/ID`` (RFC 9176 §5.3.2)."""
        registration = await self._existing(request)
        self._check_owner(request, registration)
        await self._store_call(self.store.remove(registration.id))
        logger.info("removed %s (%s)", registration.path, registration.ep)
        return Response(Code.DELETED)
