"""Transports that carry CoAP messages: UDP; TCP and TLS; WebSockets (the ``ws`` extra).

The core has no dependency.  CoAP over WebSockets (RFC 8323 §4) uses the
``websockets`` library, installed with ``pip install 'coapkit[ws]'``; code
that offers it (a client for a ``coap+ws`` URI, a server's listener) calls
:func:`require_websockets` first, so that a missing or too old library is
one line naming the extra rather than a traceback from deep inside.
"""

from __future__ import annotations

#: the oldest websockets whose asyncio API the WebSocket transport uses (its
#: ``proxy=None`` came in 15.0); the ``ws`` extra asks for it
WEBSOCKETS_MINIMUM = (15, 0)

WS_EXTRA = "CoAP over WebSockets needs the ws extra: pip install 'coapkit[ws]'"


class MissingExtra(ImportError):
    """An optional dependency is not installed (or too old); the message names the extra."""

    def __init__(self, message: str, extra: str) -> None:
        super().__init__(message, name=extra)
        self.extra = extra


def require_websockets() -> None:
    """Raise :class:`MissingExtra` (one line, naming the ``ws`` extra) unless a usable
    ``websockets`` (15.0 or later) can be imported."""
    try:
        import websockets.asyncio.client
        import websockets.asyncio.server  # noqa: F401
        from websockets.version import version
    except ImportError:
        raise MissingExtra(WS_EXTRA, "ws") from None
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:  # a development version: trust it
        return
    if found < WEBSOCKETS_MINIMUM:
        raise MissingExtra(f"{WS_EXTRA} (websockets {version} is too old)", "ws") from None
