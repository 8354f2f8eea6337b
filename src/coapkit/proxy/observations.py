"""Shared observations: one upstream observation for every client observing through a proxy.

RFC 7641 §5 (intermediaries): a proxy that observes a resource on behalf of
several clients need register only once with the origin, and can answer each
client's registration and notification from its own state.

Theory of operation
-------------------
The :class:`ObservationHub` holds at most ``max_observations``
:class:`SharedObservation` objects, each keyed by what the downstream
registrations ask (their cache key and Hop-Limit).  A shared observation owns
one task that runs :meth:`coapkit.Client.observe` upstream and keeps the
newest representation in :attr:`SharedObservation.latest`.  Two kinds of
watchers hang on it:

* CoAP observers of the proxy's server: they are registered on
  :attr:`SharedObservation.resource`, an :class:`ObservedUpstream` resource
  made for this observation.  A new upstream state calls
  ``resource.updated()``; the server renders each observer's notification
  from ``latest`` (``ProxySite.render_notification``) and numbers them
  itself.  The server tells the resource how many observe it
  (``update_observation_count``).
* :class:`Subscription` objects (the HTTP front end's event streams), which
  keep only the newest state not yet taken: a slow reader skips states, it
  never queues them.

The upstream observation ends when the last watcher leaves (the client
deregisters upstream, RFC 7641 §3.6), and when nobody has registered within
``grace`` seconds of the first response (a registration the server could not
keep).  When the origin ends it (an error code), or it fails (no answer:
5.04 Gateway Timeout; unreachable, reset: 5.02 Bad Gateway), every watcher
gets that response as the last one: CoAP observers see an error
notification, which ends their observation (§4.2), and may register again;
the next registration starts a new upstream observation.  An origin that
answers without Observe (it does not, or no longer, lets itself be observed)
ends the shared observation too; its response goes to the watchers as a
plain new state, and their next re-registration is answered without Observe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from coapkit.codec.codes import Code
from coapkit.proxy.forwarding import downstream_response
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response

if TYPE_CHECKING:
    from coapkit.client import Observation

__all__ = ["ObservationHub", "ObservedUpstream", "SharedObservation", "Subscription"]

logger = logging.getLogger("coapkit.proxy")

#: How an upstream failure becomes the last response of an observation.
FailureResponse = Callable[[BaseException], Response]


class ObservedUpstream(Resource):
    """The resource that the proxy's server registers the downstream observers of one
    shared observation on; not routed, never listed."""

    observable = True
    hidden = True

    def __init__(self, shared: SharedObservation) -> None:
        super().__init__()
        self.shared = shared

    def __repr__(self) -> str:
        return f"<ObservedUpstream {self.shared.name}>"

    def get(self, request: Request) -> Response:
        latest = self.shared.latest
        return latest if latest is not None else Response(Code.SERVICE_UNAVAILABLE, max_age=1)

    def update_observation_count(self, count: int) -> None:
        self.shared.observers_changed(count)


class Subscription:
    """A watcher of a shared observation outside CoAP (an HTTP event stream): an async
    iterator of its states, the newest first taken; it ends after the last one."""

    def __init__(self, shared: SharedObservation) -> None:
        self.shared = shared
        self._pending: Response | None = None
        self._last = False
        self._done = False
        self._wakeup = asyncio.Event()

    def _push(self, response: Response) -> None:
        if not self._done:
            self._pending = response
            self._wakeup.set()

    def _end(self) -> None:
        """No state comes after the one pending (if any)."""
        self._last = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Response:
        while self._pending is None:
            if self._done or self._last:
                self._done = True
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        response, self._pending = self._pending, None
        if self._last:
            self._done = True
        return response

    def close(self) -> None:
        """Stop watching (the upstream observation ends when nobody else watches)."""
        if not self._done:
            self._done = True
            self._wakeup.set()
        self.shared.unsubscribe(self)


class SharedObservation:
    """One upstream observation and its watchers; see the module doc."""

    def __init__(
        self,
        hub: ObservationHub,
        key: Hashable,
        name: str,
        open_upstream: Callable[[], Awaitable[Observation]],
        on_state: Callable[[Response], None],
        failure: FailureResponse,
        grace: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.hub = hub
        self.key = key
        self.name = name  #: the upstream target, for the log
        self.resource = ObservedUpstream(self)
        self.latest: Response | None = None  #: the newest state (without Observe)
        self.observable = False  #: the origin answered with Observe
        self.ended = False
        self.updates = 0  #: states received after the first
        self._first: asyncio.Future[Response] = loop.create_future()
        self._observers = 0
        self._subscribers: list[Subscription] = []
        self._open_upstream = open_upstream
        self._on_state = on_state
        self._failure = failure
        self._grace = grace
        self._grace_timer: asyncio.TimerHandle | None = None
        self._observation: Observation | None = None
        self._task = loop.create_task(self._run())

    def __repr__(self) -> str:
        state = "ended" if self.ended else "observing" if self.observable else "starting"
        return (
            f"<SharedObservation {self.name} {state}, {self._observers} observers, "
            f"{len(self._subscribers)} subscribers>"
        )

    @property
    def watchers(self) -> int:
        """CoAP observers and subscribers, together."""
        return self._observers + len(self._subscribers)

    async def first(self) -> Response:
        """The first response (already there, or once the origin answers)."""
        return await asyncio.shield(self._first)

    # -- watchers ----------------------------------------------------------------------------

    def observers_changed(self, count: int) -> None:
        self._observers = count
        self._end_if_unwatched()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        if self.latest is not None:
            subscription._push(self.latest)
        if self.ended:
            subscription._end()
        else:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
            self._end_if_unwatched()

    def _end_if_unwatched(self) -> None:
        if not self.ended and self.observable and self.watchers == 0:
            logger.debug("%s: the last observer left; ending the upstream observation", self.name)
            self.close()

    # -- upstream ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            observation = self._observation = await self._open_upstream()
            async with observation:
                async for response in observation:
                    self._received(downstream_response(response), response.observe is not None)
                    if self.ended:
                        return
            if not self.ended:  # the iteration ended without an error: nothing more comes
                self._finish(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.ended:
                logger.info("%s: upstream observation failed: %s", self.name, exc)
                self._finish(self._failure(exc))

    def _received(self, response: Response, observing: bool) -> None:
        success = 64 <= response.code < 96
        first = not self._first.done()
        if not first and not success:
            self._finish(response)  # the origin ended the observation (RFC 7641 §4.2)
            return
        self.latest = response
        if success:
            self._on_state(response)
        last = not (observing and success)
        for subscription in list(self._subscribers):
            subscription._push(response)
        if first:
            self.observable = not last
            self._first.set_result(response)
            if last:
                self.close()
            else:
                loop = asyncio.get_running_loop()
                self._grace_timer = loop.call_later(self._grace, self._end_if_unwatched)
            return
        self.updates += 1
        self.resource.updated()
        if last:
            self._finish(None)

    def _finish(self, final: Response | None) -> None:
        """The upstream observation is over: tell every watcher ``final`` (if any) as the
        last state, and forget this observation."""
        if self.ended:
            return
        if not self._first.done():
            self._first.set_result(final or Response(Code.BAD_GATEWAY, max_age=0))
        elif final is not None:
            self.latest = final
            for subscription in self._subscribers:
                subscription._push(final)
            self.resource.updated()  # an error notification ends each CoAP observation
        self.close()

    def close(self) -> None:
        """End the upstream observation now (deregistering there); the watchers get no
        more states."""
        if not self.ended:
            self.ended = True
            self.hub._forget(self)
            subscribers, self._subscribers = self._subscribers, []
            for subscription in subscribers:
                subscription._end()
        self._stop_upstream()

    def _stop_upstream(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if self._observation is not None:
            self._observation.cancel()  # a GET with Observe=1 upstream (RFC 7641 §3.6)
        elif not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()

    async def wait_closed(self) -> None:
        """Wait for the upstream task to finish (after :meth:`close`)."""
        if self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)


class ObservationHub:
    """The shared observations of one proxy, at most ``max_observations`` at once."""

    def __init__(self, max_observations: int = 1000) -> None:
        self.max_observations = max_observations
        self._shared: dict[Hashable, SharedObservation] = {}
        self._closing: set[SharedObservation] = set()
        #: upstream observations started, in all
        self.started = 0

    def __len__(self) -> int:
        return len(self._shared)

    def __repr__(self) -> str:
        return f"<ObservationHub {len(self._shared)} shared observations>"

    def get(self, key: Hashable) -> SharedObservation | None:
        return self._shared.get(key)

    def start(self, key: Hashable, **arguments: Any) -> SharedObservation | None:
        """A new shared observation under ``key`` (see :class:`SharedObservation` for the
        arguments); None when the hub is full."""
        if len(self._shared) >= self.max_observations:
            return None
        shared = SharedObservation(self, key, **arguments)
        self._shared[key] = shared
        self.started += 1
        return shared

    def _forget(self, shared: SharedObservation) -> None:
        if self._shared.get(shared.key) is shared:
            del self._shared[shared.key]
        self._closing.add(shared)
        shared._task.add_done_callback(lambda _: self._closing.discard(shared))

    def observations(self) -> list[SharedObservation]:
        return list(self._shared.values())

    async def close(self) -> None:
        """End every shared observation and wait for their upstream tasks."""
        for shared in list(self._shared.values()):
            shared.close()
        pending = list(self._closing)
        for shared in pending:
            if not shared._task.done():
                shared._task.cancel()
        await asyncio.gather(*(shared._task for shared in pending), return_exceptions=True)
