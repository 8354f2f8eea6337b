"""The DTLS layer's events on the ``coapkit.dtls`` log: what a server operator reads.

The sans-I/O layer reports sessions made and ended as events
(:mod:`coapkit.dtls.events`); a driver hands them here (``driver.on_event``).
A server logs each failed handshake once per peer host and cause at WARNING,
as one line naming the peer and the cause, never a traceback
(``192.0.2.7:40112: DTLS handshake failed: the client's PSK identity
'dev9' is not known here``); limits reached at WARNING at most once per
``interval``; the rest (sessions made, closed, idle; datagrams dropped) at
DEBUG.  A client logs everything at DEBUG: its caller gets the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from coapkit.dtls.events import DatagramDropped, SessionEnded, SessionEstablished, SessionRefused
from coapkit.trace import show_remote

logger = logging.getLogger("coapkit.dtls")

#: (host, cause) pairs already logged at WARNING; beyond, the set starts afresh
LOGGED_LIMIT = 4096


class DtlsLog:
    """``driver.on_event`` for an endpoint with a DTLS layer (see the module doc)."""

    def __init__(self, *, server: bool, clock: Callable[[], float], interval: float = 60.0) -> None:
        self.server = server
        self._clock = clock
        self.interval = interval
        self._logged: set[tuple[Hashable, str]] = set()
        self._refused_at = -1e18

    def __call__(self, event: Any) -> None:
        cls = event.__class__
        if cls is SessionEstablished:
            if logger.isEnabledFor(logging.DEBUG):
                identity = event.identity
                logger.debug(
                    "DTLS session with %s: %s, %s%s",
                    show_remote(event.remote),
                    identity,
                    identity.cipher,
                    " (resumed)" if identity.resumed else "",
                )
        elif cls is SessionEnded:
            self._ended(event)
        elif cls is SessionRefused:
            now = self._clock()
            if now - self._refused_at >= self.interval:
                self._refused_at = now
                logger.warning(
                    "DTLS handshake with %s refused: %s", show_remote(event.remote), event.reason
                )
        elif cls is DatagramDropped:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("from %s: dropped %s", show_remote(event.remote), event.reason)

    def _ended(self, event: SessionEnded) -> None:
        where = show_remote(event.remote)
        if not (self.server and event.failed):
            logger.debug("%s: %s", where, event.error)
            return
        remote = event.remote
        host = remote[0] if isinstance(remote, tuple) and remote else remote
        key = (host, event.error.cause)
        if key in self._logged:
            logger.debug("%s: %s", where, event.error)
            return
        if len(self._logged) >= LOGGED_LIMIT:
            self._logged.clear()
        self._logged.add(key)
        logger.warning("%s: %s", where, event.error)
