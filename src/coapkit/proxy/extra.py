"""The ``http`` extra: aiohttp, for the HTTP sides of the cross proxy (RFC 8075, RFC 7252 §10).

The CoAP proxy itself needs nothing beyond the core.  Serving HTTP clients
(:class:`~coapkit.proxy.http.HttpCrossProxy`) and reaching ``http://`` and
``https://`` targets for CoAP clients use aiohttp, installed with
``pip install 'coapkit[http]'``; code that needs it calls
:func:`require_aiohttp` first, so that a missing library is one line naming
the extra rather than a traceback.
"""

from __future__ import annotations

from coapkit.transports import MissingExtra

__all__ = ["AIOHTTP_MINIMUM", "HTTP_EXTRA", "require_aiohttp"]

#: the oldest aiohttp whose API the cross proxy uses (the http extra asks for it)
AIOHTTP_MINIMUM = (3, 9)

HTTP_EXTRA = "HTTP proxying needs the http extra: pip install 'coapkit[http]'"


def require_aiohttp() -> None:
    """Raise :class:`~coapkit.transports.MissingExtra` (one line, naming the ``http``
    extra) unless a usable aiohttp (3.9 or later) can be imported."""
    try:
        import aiohttp
    except ImportError:
        raise MissingExtra(HTTP_EXTRA, "http") from None
    try:
        found = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])
    except ValueError:  # a development version: trust it
        return
    if found < AIOHTTP_MINIMUM:
        raise MissingExtra(f"{HTTP_EXTRA} (aiohttp {aiohttp.__version__} is too old)", "http")
