"""OSCORE over a running driver: a client's protected requests and observations.

The sans-I/O part is :mod:`coapkit.oscore.client` (what to send, what a
response means); this module sends what it says through a
:class:`~coapkit.runtime.driver.Driver` and waits.

* :func:`protected_request`: one request of the application, which may take
  several protected exchanges (inner blocks, an Echo round after the server's
  restart); each exchange is a request of the endpoint below, so that
  retransmission, outer block-wise reassembly (a proxy's) and timeouts work as
  for any request.
* :class:`OscoreStream`: an observation (RFC 7641 with RFC 8613 §4.1.3.5).  The
  endpoint's stream carries the outer notifications; each is verified with the
  registration's binding and ordered by its Partial IV (the Notification
  Number), and handed on as the inner message.  The endpoint neither
  re-registers nor deregisters it (its registration cannot be sent twice): a
  notification is fresh for its inner Max-Age, after which (plus a margin) the
  observation registers again with a new protected request; cancelling sends
  a new protected request with Observe=1 (best effort).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import BlockValue
from coapkit.codec.types import MessageType
from coapkit.errors import CoapError, OptionValueError, RequestCancelled, RequestTimeout
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import Remote
from coapkit.oscore.client import NotificationOrder, ProtectedRequest, peer_rejection
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.errors import OscoreError, ProtectionInvalid
from coapkit.oscore.protection import RequestBinding, protect_request, unprotect_response
from coapkit.oscore.rederive import ClientRederivation
from coapkit.runtime.driver import Driver, ProgressCallback, ResponseStream

__all__ = ["OscoreStream", "protected_request"]

logger = logging.getLogger("coapkit.oscore")
N = OptionNumber
_OSCORE = int(N.OSCORE)
_BLOCK2 = int(N.BLOCK2)
_SIZE2 = int(N.SIZE2)
_OBSERVE = int(N.OBSERVE)
_ECHO = int(N.ECHO)
#: seconds a notification stays fresh beyond its Max-Age before re-registering
REREGISTER_MARGIN = 5.0
_DEFAULT_MAX_AGE = 60


async def protected_request(
    driver: Driver,
    context: SecurityContext,
    message: Message,
    remote: Remote,
    *,
    mtype: MessageType | None = None,
    transmission: TransmissionParameters | None = None,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    block_size: int = 512,
    max_body: int = 64 * 1024 * 1024,
) -> tuple[Message, Remote]:
    """Send ``message`` protected with ``context`` and return the verified inner response.

    Raises :class:`~coapkit.oscore.errors.OscoreError` (the server's OSCORE error, or a
    response that fails verification), and whatever a request raises.
    """
    exchange = ProtectedRequest(context, message, block_size=block_size, max_body=max_body)
    outer = exchange.first()
    total = len(message.payload) or None
    while True:
        reply, source = await driver.request(
            outer, remote, mtype=mtype, transmission=transmission, timeout=timeout
        )
        response = exchange.on_response(reply)
        if response is not None:
            return response, source
        if progress is not None and exchange.next is not None:
            with suppress(Exception):
                progress(exchange.messages, total)
        assert exchange.next is not None
        outer = exchange.next


class OscoreStream(ResponseStream):
    """The notifications of an observation made with OSCORE, verified and in order.

    Made by :meth:`open`; its items are ``(inner message, remote)`` as a
    :class:`ResponseStream`'s are.  ``handle`` is the endpoint's handle of the
    current registration (``driver.cancel(stream.handle)`` ends the observation).
    """

    def __init__(
        self,
        driver: Driver,
        context: SecurityContext,
        registration: Message,
        remote: Remote,
        *,
        mtype: MessageType,
        transmission: TransmissionParameters | None,
        timeout: float | None,
        block_size: int = 512,
    ) -> None:
        super().__init__(driver.loop)
        self.driver = driver
        self.context = context
        self.registration = registration.replace(options=registration.options.replace(observe=0))
        self.remote = remote
        self.mtype = mtype
        self.transmission = transmission
        self.timeout = timeout
        self.block_size = block_size
        self._task: asyncio.Task[None] | None = None
        self._echo: bytes | None = None
        #: the Appendix B.2 template the context was derived from, if any
        self._template: SecurityContext | None = None
        #: the registrations made (the first, and one per re-registration)
        self.registrations = 0

    @classmethod
    def open(
        cls,
        driver: Driver,
        context: SecurityContext,
        registration: Message,
        remote: Remote,
        *,
        mtype: MessageType,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        block_size: int = 512,
    ) -> OscoreStream:
        """Send the protected registration and start verifying what comes back."""
        stream = cls(
            driver,
            context,
            registration,
            remote,
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            block_size=block_size,
        )
        stream._task = driver.loop.create_task(stream._start())
        return stream

    async def _start(self) -> None:
        """Register (a template of Appendix B.2 first derives its context with the
        request itself, without Observe: the registration needs a context to go with)."""
        try:
            if self.context.rederive:
                session = ClientRederivation.of(self.context)
                if session.established is None:
                    plain = self.registration.replace(
                        options=self.registration.options.remove(_OBSERVE)
                    )
                    await protected_request(
                        self.driver,
                        self.context,
                        plain,
                        self.remote,
                        mtype=self.mtype,
                        transmission=self.transmission,
                        timeout=self.timeout,
                        block_size=self.block_size,
                    )
                established = session.established
                if established is None:
                    raise OscoreError("OSCORE: the context could not be derived (Appendix B.2)")
                self._template, self.context = self.context, established
            underlying, binding = self._register()
        except (CoapError, OscoreError) as exc:
            self.end(exc)
            return
        except Exception as exc:
            logger.exception("the OSCORE observation of %s failed", self.remote)
            self.end(exc)
            return
        await self._run(underlying, binding)

    def _register(self) -> tuple[ResponseStream, RequestBinding]:
        inner = self.registration
        if self._echo is not None:
            inner = inner.replace(options=inner.options.set_raw(_ECHO, [self._echo]))
        # (a context derived by Appendix B.2 goes without its kid context, as requests do)
        derived = self._template is not None
        outer, binding = protect_request(self.context, inner, send_id_context=not derived)
        underlying = self.driver.open_stream(
            outer,
            self.remote,
            mtype=self.mtype,
            transmission=self.transmission,
            timeout=self.timeout,
            manage_observation=False,
        )
        self.handle = underlying.handle
        self.registrations += 1
        return underlying, binding

    async def _run(self, underlying: ResponseStream, binding: RequestBinding) -> None:
        try:
            await self._pump(underlying, binding)
        except RequestCancelled as exc:
            self.end(exc)
        except CoapError as exc:
            self.end(exc)
        except Exception as exc:  # a bug here must still end the stream, once
            logger.exception("the OSCORE observation of %s failed", self.remote)
            self.end(exc)

    async def _pump(self, underlying: ResponseStream, binding: RequestBinding) -> None:
        order = NotificationOrder()
        first = True
        fresh_until: float | None = None
        #: the outer Observe of the last notification handed on, and whether the current
        #: registration is a re-registration (whose first answer may be that state again)
        last_state: bytes | None = None
        again = False
        loop = self.driver.loop
        while not self.ended:
            try:
                if fresh_until is None:
                    item = await underlying.next()
                else:
                    wait = max(0.0, fresh_until - loop.time())
                    item = await asyncio.wait_for(underlying.next(), wait)
            except TimeoutError as exc:
                if isinstance(exc, RequestTimeout):
                    raise
                # No notification for Max-Age and a margin: register again (§3.3.1).
                self._quietly_cancel(underlying)
                underlying, binding = self._register()
                order = NotificationOrder()
                first = True
                again = True
                fresh_until = None
                continue
            except RequestCancelled:
                if not self.ended:
                    self._deregister(underlying)
                raise
            if item is None:  # the server ended it (or never started it)
                self.end()
                return
            outer, source = item
            if _OSCORE not in outer.options:
                if outer.code >= 128 and first:
                    raise peer_rejection(self.context, outer)
                logger.warning("an unprotected notification from %s was dropped", source)
                continue
            try:
                verified = unprotect_response(binding, outer)
            except ProtectionInvalid as exc:
                if first:
                    raise
                # §8.4.2: an error in an observation does not end it.
                logger.warning("a notification from %s was dropped: %s", source, exc)
                continue
            if not order.accept(verified):
                logger.debug("a stale or replayed notification from %s was dropped", source)
                continue
            inner = verified.message
            if (
                first
                and inner.code == Code.UNAUTHORIZED
                and _ECHO in inner.options
                and self._echo is None
            ):
                # Appendix B.1.2: the server lost its replay window; register again with
                # its Echo value.
                self._echo = inner.options.get(_ECHO)
                self._quietly_cancel(underlying)
                underlying, binding = self._register()
                order = NotificationOrder()
                continue
            state = outer.options.get(_OBSERVE)
            repeated = first and again and state is not None and state == last_state
            first = False
            notification = state is not None and 64 <= inner.code < 96
            if repeated and notification:
                # The answer to a re-registration with the state we have: the observation
                # is confirmed, nothing new to hand on (as RFC 7641 §3.3.1 re-registers).
                fresh_until = loop.time() + self._max_age(inner) + REREGISTER_MARGIN
                continue
            inner = await self._complete(inner)
            if not notification:
                inner = inner.replace(options=inner.options.remove(_OBSERVE))
            last_state = state
            self.push(inner, source)
            if not notification:
                self._quietly_cancel(underlying)
                self.end()
                return
            fresh_until = loop.time() + self._max_age(inner) + REREGISTER_MARGIN

    @staticmethod
    def _max_age(inner: Message) -> int:
        """How long a notification is fresh: its inner Max-Age (60 s without one)."""
        try:
            max_age = inner.options.max_age
        except OptionValueError:
            max_age = None
        return _DEFAULT_MAX_AGE if max_age is None else max_age

    async def _complete(self, inner: Message) -> Message:
        """A notification's whole body: the first block's rest fetched with protected
        Block2 requests (RFC 7959 §2.6)."""
        try:
            block2 = inner.options.block2
        except OptionValueError:
            return inner
        if block2 is None or not block2.more or block2.num != 0:
            return inner
        request = self.registration
        options = request.options.remove(_OBSERVE).replace(block2=BlockValue(1, False, block2.szx))
        follow = _make(request.mtype, request.code, 0, b"", options, b"")
        exchange = ProtectedRequest(self.context, follow, block_size=self.block_size)
        exchange._body = bytearray(inner.payload)
        exchange._etag = inner.options.etag
        exchange._first_options = inner.options
        outer = exchange.first()
        while True:
            reply, _ = await self.driver.request(
                outer, self.remote, transmission=self.transmission, timeout=self.timeout
            )
            done = exchange.on_response(reply)
            if done is not None:
                options = done.options.replace(observe=inner.options.observe)
                return done.replace(options=options.remove(_BLOCK2, _SIZE2))
            assert exchange.next is not None
            outer = exchange.next

    def _quietly_cancel(self, underlying: ResponseStream) -> None:
        """End the endpoint's stream without a deregistration (its registration is
        protected: repeating it would be a replay)."""
        handle = underlying.handle
        if handle is not None and not underlying.ended and not self.driver.closed:
            self.driver.cancel(handle)

    def _deregister(self, underlying: ResponseStream) -> None:
        """Tell the server (best effort) with a new protected GET carrying Observe=1 and
        the registration's token (RFC 7641 §3.6)."""
        handle = underlying.handle
        driver = self.driver
        if handle is None or driver.closed:
            return
        token = handle.token
        request = self.registration
        inner = request.replace(options=request.options.replace(observe=1))
        try:
            derived = self._template is not None
            outer, _ = protect_request(self.context, inner, send_id_context=not derived)
            stream = driver.open_stream(
                outer,
                self.remote,
                mtype=self.mtype,
                timeout=self.timeout or 10.0,
                token=token,
                manage_observation=False,
            )
        except (CoapError, OscoreError) as exc:
            logger.debug("no deregistration sent to %s: %s", self.remote, exc)
            return

        async def settle() -> None:
            with suppress(CoapError):
                await stream.next()
            if stream.handle is not None and not stream.ended and not driver.closed:
                driver.cancel(stream.handle)

        driver.loop.create_task(settle())
