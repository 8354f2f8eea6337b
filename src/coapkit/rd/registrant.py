"""The registration client: keeps a server's resources registered with a resource directory.

RFC 9176 §4.3 (finding the registration resource: ``/.well-known/core?rt=core.rd``
on the directory, when its URI has no path), §5.3 (registration: POST of the
server's ``/.well-known/core`` links), §5.3.1 (updates before the lifetime runs out;
a 4.04 means the directory lost the registration: register again) and §5.3.2
(removal when the server stops cleanly).

Theory of operation
-------------------
One task per :class:`Registrant`: discover (once), register, then sleep until a
quarter of the lifetime (at most 300 s) is left and update; repeat.  An update that
gets 4.04 registers anew at once (a directory that restarted without its store, or
whose registration expired meanwhile); a directory that does not answer, or answers
5.03, is tried again after a back-off that doubles from 2 s up to 300 s (a 5.03's
Max-Age when it gives one), with a fresh registration once the lifetime is past.
Nothing out there stops the task: failures are logged and retried (architecture
rule 12); :meth:`Registrant.stop` deletes the registration.

Over UDP the requests go out of the server's own socket, so that the directory
takes their source address as the registration's base (RFC 9176 §5.3) and no
``base`` needs to be known; for a directory reached over another transport, or a
server without a ``coap://`` listener, ``base=`` says where the server is.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from contextlib import suppress
from types import TracebackType

from coapkit.client import Client
from coapkit.codec.codes import Code, code_name
from coapkit.codec.content_formats import LINK_FORMAT
from coapkit.codec.link_format import Link, serialize_link_format
from coapkit.codec.message import Message
from coapkit.codec.types import MessageType
from coapkit.codec.uri import CoapUri, parse_uri
from coapkit.errors import CoapError, LinkFormatError, NetworkError
from coapkit.resources.response import Response
from coapkit.server import Server

__all__ = ["Registrant"]

logger = logging.getLogger("coapkit.rd")

#: the back-off of failed attempts: from this, doubling, up to MAX_BACKOFF
FIRST_BACKOFF = 2.0
MAX_BACKOFF = 300.0
#: the most time left before expiry at which an update is sent
MAX_MARGIN = 300.0


class Registrant:
    """Registers ``server``'s resources with the resource directory at ``rd`` and keeps
    them registered until :meth:`stop` (or the end of ``async with``) removes them.

    ``rd``: the directory, ``coap://host[:port]`` (its registration resource found by
    discovery) or the registration resource itself (``coap://host/rd``).  ``ep``: the
    endpoint name (by default the host name); ``sector``, ``lifetime`` (RFC 9176's
    default 90,000 s), ``base`` (see the module doc) and ``attributes`` (``et`` and
    other registration parameters) as RFC 9176 §5.3 has them.  ``links``: what to
    register (by default the links of the server's ``/.well-known/core``).
    ``timeout``: seconds each request may take (by default CoAP's own, about 93 s).
    """

    def __init__(
        self,
        server: Server,
        rd: str,
        *,
        ep: str | None = None,
        sector: str | None = None,
        lifetime: int = 90_000,
        base: str | None = None,
        attributes: Mapping[str, str | None] | None = None,
        links: Callable[[], list[Link]] | None = None,
        timeout: float | None = None,
    ) -> None:
        if not 1 <= lifetime <= 4_294_967_295:
            raise ValueError("lifetime is 1 to 4294967295 seconds (RFC 9176 §5.3)")
        self.server = server
        self.rd = parse_uri(rd)
        self.ep = ep if ep is not None else socket.gethostname().partition(".")[0]
        self.sector = sector
        self.lifetime = lifetime
        self.base = base
        self.attributes = dict(attributes or {})
        self._links = links
        self.timeout = timeout
        #: the registration resource (``/reg/4``), once registered
        self.location: str | None = None
        #: ``starting``, ``registering``, ``registered``, ``retrying`` or ``stopped``
        self.state = "starting"
        #: set at each successful registration or update, cleared by whoever waits on it
        self.registered = asyncio.Event()
        self.registrations = 0  #: registrations made (a re-registration counts again)
        self.updates = 0  #: updates that succeeded
        self._directory: CoapUri | None = self.rd if self.rd.path else None
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._send_links = False

    def __repr__(self) -> str:
        where = self.location or self.rd
        return f"<Registrant {self.ep} at {where}: {self.state}>"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> Registrant:
        """Start registering (in the background); the server must be started."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        """Stop refreshing and delete the registration (a failure is logged)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        location, self.location = self.location, None
        if location is not None:
            try:
                response = await self._request(Code.DELETE, self._at(location), timeout=5.0)
                if not response.is_success and response.code != Code.NOT_FOUND:
                    logger.warning("removing %s answered %s", location, code_name(response.code))
                else:
                    logger.info("removed the registration %s", location)
            except CoapError as exc:
                logger.warning("could not remove the registration %s: %s", location, exc)
        self.state = "stopped"
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> Registrant:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def refresh(self, *, with_links: bool = True) -> None:
        """Update the registration now: with the links again (after the site changed),
        or ``with_links=False`` a plain update that only renews the lifetime."""
        self._send_links = with_links
        self._wake.set()

    # -- requests ---------------------------------------------------------------------------

    def _at(self, path: str) -> CoapUri:
        return self.rd.join(path)

    def _use_server_socket(self, uri: CoapUri) -> bool:
        return uri.scheme == "coap" and any(
            listener.scheme == "coap" for listener in self.server.listeners
        )

    async def _request(
        self,
        method: int,
        uri: CoapUri,
        *,
        query: tuple[str, ...] = (),
        payload: bytes = b"",
        content_format: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        options = uri.to_options()
        if query:
            options = options.replace(uri_query=[*uri.query, *query])
        if content_format is not None:
            options = options.replace(content_format=content_format)
        timeout = self.timeout if timeout is None else timeout
        if self._use_server_socket(uri):
            listener = next(item for item in self.server.listeners if item.scheme == "coap")
            driver = listener.driver
            remote = await self._resolve(driver.transport, uri)
            message = Message(MessageType.CON, method, options=options, payload=payload)
            reply, source = await driver.request(message, remote, timeout=timeout)
            return Response.from_message(reply, remote=source)
        if self._client is None:
            self._client = await Client().start()
        target = CoapUri(uri.scheme, uri.host, uri.port, uri.path, (*uri.query, *query))
        return await self._client.request(
            method, target, payload, content_format=content_format, timeout=timeout
        )

    @staticmethod
    async def _resolve(transport: object, uri: CoapUri) -> object:
        remote_for = getattr(transport, "remote_for")  # noqa: B009
        if uri.host_is_ip_literal:
            return remote_for((uri.host, uri.port))
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(uri.host, uri.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise NetworkError(f"cannot resolve host {uri.host!r}: {exc.strerror}") from None
        for info in infos:
            with suppress(NetworkError):
                return remote_for(tuple(info[4]))
        raise NetworkError(f"no usable address for host {uri.host!r}")

    # -- the steps --------------------------------------------------------------------------

    def _base(self) -> str | None:
        if self.base is not None or self._use_server_socket(self.rd):
            return self.base
        raise ValueError(
            f"a registration over {self.rd.scheme}:// needs base= (the server's URI): "
            "the directory cannot take it from the source address"
        )

    def _payload(self) -> bytes:
        links = self._links() if self._links is not None else self.server.site.links()
        return serialize_link_format(links).encode("utf-8")

    async def _discover(self) -> CoapUri:
        if self._directory is not None:
            return self._directory
        response = await self._request(
            Code.GET, self._at("/.well-known/core"), query=("rt=core.rd",)
        )
        directory = self._at("/rd")
        if response.is_success:
            try:
                found = [link for link in response.links() if "core.rd" in link.rt]
            except LinkFormatError:
                found = []
            if found:
                directory = self._at(found[0].target)
        self._directory = directory
        logger.debug("registering at %s", directory)
        return directory

    async def _register(self) -> None:
        self.state = "registering"
        directory = await self._discover()
        query = [f"ep={self.ep}"]
        if self.sector is not None:
            query.append(f"d={self.sector}")
        if self.lifetime != 90_000:
            query.append(f"lt={self.lifetime}")
        base = self._base()
        if base is not None:
            query.append(f"base={base}")
        query.extend(
            name if value is None else f"{name}={value}" for name, value in self.attributes.items()
        )
        response = await self._request(
            Code.POST,
            directory,
            query=tuple(query),
            payload=self._payload(),
            content_format=LINK_FORMAT,
        )
        if response.code != Code.CREATED and not response.is_success:
            raise _Refused(response)
        if not response.location_path:
            raise _Refused(response, "the directory gave no registration resource")
        self.location = "/" + "/".join(response.location_path)
        self.registrations += 1
        logger.info("registered %s at %s", self.ep, self._at(self.location))

    async def _update(self, with_links: bool) -> bool:
        """Update the registration; False when the directory no longer has it."""
        assert self.location is not None
        payload = self._payload() if with_links else b""
        response = await self._request(
            Code.POST,
            self._at(self.location),
            payload=payload,
            content_format=LINK_FORMAT if with_links else None,
        )
        if response.code == Code.NOT_FOUND:
            logger.info("the directory lost %s; registering again", self.location)
            self.location = None
            return False
        if not response.is_success:
            raise _Refused(response)
        self.updates += 1
        return True

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF
        expires = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.location is None or loop.time() >= expires:
                    self.location = None
                    await self._register()
                elif not await self._update(self._wake.is_set() and self._send_links):
                    continue
                self._wake.clear()
                self._send_links = False
                expires = loop.time() + self.lifetime
                self.state = "registered"
                self.registered.set()
                backoff = FIRST_BACKOFF
                margin = min(self.lifetime / 4, MAX_MARGIN)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.lifetime - margin)
            except _Refused as refused:
                delay = refused.retry_after(backoff)
                logger.warning("%s; trying again in %.0f s", refused, delay)
                await self._back_off(delay)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except (CoapError, OSError) as exc:
                logger.warning(
                    "the resource directory %s: %s; trying again in %.0f s", self.rd, exc, backoff
                )
                await self._back_off(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _back_off(self, delay: float) -> None:
        self.state = "retrying"
        await asyncio.sleep(delay)


class _Refused(CoapError):
    """The directory answered a registration or update with an error."""

    def __init__(self, response: Response, reason: str | None = None) -> None:
        detail = reason or response.text or "no diagnostic"
        super().__init__(f"the resource directory answered {code_name(response.code)}: {detail}")
        self.response = response

    def retry_after(self, backoff: float) -> float:
        if self.response.code == Code.SERVICE_UNAVAILABLE and self.response.max_age is not None:
            return float(max(self.response.max_age, 1))
        return backoff
