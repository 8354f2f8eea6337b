"""An asyncio event loop whose clock is virtual: waiting costs no real time.

Theory of operation
-------------------
asyncio's loop turns in :meth:`BaseEventLoop._run_once`: it runs what is
ready, and otherwise asks its selector to wait until the next timer is due.
:class:`VirtualEventLoop` keeps asyncio's loop as it is and changes two
things: :meth:`~VirtualEventLoop.time` reads a :class:`VirtualClock`, and its
selector never sleeps.  When the loop would wait, the selector polls the
real file descriptors once (a thread finishing its work wakes the loop
through one) and then *jumps* the clock instead: to the next loop timer, or
to the next event of a :class:`~coapkit.testing.SimulatedNetwork` the loop
drives (a datagram arriving, a sans-I/O node's timer), whichever comes first,
and handles that event.  This is trio's ``MockClock(autojump_threshold=0)``
for asyncio.

So the real :class:`~coapkit.Client` and :class:`~coapkit.Server`, their
driver's one timer, ``asyncio.sleep``, ``asyncio.timeout`` and
``wait_for`` all run as they would, in the order they would, but a 93 s
retransmission timeout (RFC 7252 §4.8.2: MAX_TRANSMIT_WAIT) or a 247 s
exchange lifetime passes in microseconds; and since nothing depends on how
fast the machine is, the same program gives the same run every time.

When nothing at all is scheduled (no timer, no datagram in flight, no thread
at work) no task can ever be woken: a real loop would hang for ever, this one
raises :class:`VirtualTimeDeadlock` at once.

Name resolution never leaves the process either: :meth:`~VirtualEventLoop.getaddrinfo`
answers the host names of the :class:`~coapkit.testing.VirtualNetwork` the loop
runs, and numeric addresses, without a resolver thread.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

from coapkit.testing.clock import VirtualClock
from coapkit.testing.network import SimulatedNetwork

if TYPE_CHECKING:
    from coapkit.testing.virtual import VirtualNetwork

__all__ = ["VirtualEventLoop", "VirtualTimeDeadlock", "run"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class VirtualTimeDeadlock(RuntimeError):
    """Every task waits, and nothing scheduled in virtual time (no timer, no datagram in
    flight, no thread at work) can wake any of them."""


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that polls the real descriptors and otherwise moves virtual time on."""

    def __init__(self, loop: VirtualEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        loop = self._loop
        if loop._advance(timeout):
            return []
        if loop._real_waits or len(self.get_map()) > 1:
            # A thread is at work (run_in_executor) or a real socket is watched: only the
            # real world can wake the loop now.  (One descriptor is the loop's own pipe.)
            return super().select(None)
        raise VirtualTimeDeadlock(
            "every task is waiting and nothing is scheduled in virtual time (no timer, no "
            "datagram in flight, no thread at work): a real event loop would wait for ever"
        )


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop on a :class:`VirtualClock` (see the module doc).

    Use :func:`run` like :func:`asyncio.run`, or give the class as a loop factory:
    ``asyncio.Runner(loop_factory=VirtualEventLoop)``, or pytest-asyncio's
    ``pytest_asyncio_loop_factories`` hook (see the guide).
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        #: the loop's time; :meth:`time` reads it
        self.clock = clock if clock is not None else VirtualClock()
        self._driven: list[SimulatedNetwork] = []
        self._networks: list[VirtualNetwork] = []
        self._real_waits = 0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.clock.now

    # -- simulated networks ---------------------------------------------------------------

    def drive(self, network: SimulatedNetwork) -> None:
        """Handle ``network``'s events in time order with the loop's own timers.

        The network is put on the loop's clock (moved forward to the network's time if
        that is later).  From then on, let virtual time pass by awaiting
        (``await asyncio.sleep(10)``), not with the network's ``run_*`` methods.
        """
        if network in self._driven:
            return
        if network.clock is not self.clock:
            if network.clock.now > self.clock.now:
                self.clock.advance_to(network.clock.now)
            network.clock = self.clock
        self._driven.append(network)

    def drives(self, network: SimulatedNetwork) -> bool:
        """Whether this loop handles ``network``'s events (see :meth:`drive`)."""
        return network in self._driven

    def join(self, network: VirtualNetwork) -> None:
        """Run ``network`` (called by the network when it is first used on this loop): its
        events are driven, its host names resolved; the first one joined is the loop's
        :attr:`datagram_network`."""
        if network not in self._networks:
            self._networks.append(network)
            self.drive(network.simulated)

    @property
    def datagram_network(self) -> VirtualNetwork:
        """The network a ``Client()`` or ``Server()`` made without ``network=`` uses on this
        loop: the first :class:`~coapkit.testing.VirtualNetwork` used here, or a new one
        (seed 0, no loss) if none was.  Real sockets have no place in virtual time: their
        retransmission timers would fire before any real answer could arrive."""
        if not self._networks:
            from coapkit.testing.virtual import VirtualNetwork

            VirtualNetwork()._join(self)
        return self._networks[0]

    def _advance(self, timeout: float | None) -> bool:
        """Do the next thing that happens in virtual time: the earliest network event if it
        is due no later than the loop's next timer (``timeout`` from now), else move the
        clock to that timer.  False when neither exists."""
        clock = self.clock
        target = None if timeout is None else clock.now + timeout
        nearest: float | None = None
        chosen: SimulatedNetwork | None = None
        for network in self._driven:
            when = network.next_event_time()
            if when is not None and (nearest is None or when < nearest):
                nearest, chosen = when, network
        if chosen is not None and nearest is not None and (target is None or nearest <= target):
            chosen.step()
            return True
        if target is None:
            return False
        clock.advance_to(target)
        return True

    # -- what would wait for the real world -------------------------------------------------

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """Resolve a host name of the networks running here, or a numeric address; any
        other name fails as an unknown name would (no DNS in virtual time)."""
        name = host.decode("idna") if isinstance(host, bytes) else host
        if name is not None:
            for network in self._networks:
                address = network.lookup(name)
                if address is not None:
                    return _address_info(address, port, family)
        try:
            return socket.getaddrinfo(
                host, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            raise socket.gaierror(
                socket.EAI_NONAME,
                f"{name!r} is not a host of the virtual network (add_host names one)",
            ) from None

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        """As asyncio's; while the thread works, the loop waits for it in real time."""
        future = super().run_in_executor(executor, func, *args)
        self._real_waits += 1
        future.add_done_callback(self._real_wait_done)
        return future

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        self._real_waits += 1  # its thread wakes the loop when the executor has shut down
        try:
            await super().shutdown_default_executor(*args, **kwargs)
        finally:
            self._real_waits -= 1

    def _real_wait_done(self, _future: asyncio.Future[Any]) -> None:
        self._real_waits -= 1


def _address_info(address: str, port: Any, family: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo``'s answer for one address of a virtual network."""
    number = int(port) if port is not None else 0
    if ":" in address:
        if family not in (0, socket.AF_INET6):
            return []
        return [
            (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", (address, number, 0, 0))
        ]
    if family not in (0, socket.AF_INET):
        return []
    return [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", (address, number))]


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run ``main`` in virtual time on a new :class:`VirtualEventLoop`, as
    :func:`asyncio.run` runs it in real time, and return its result."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualEventLoop) as runner:
        return runner.run(main)
