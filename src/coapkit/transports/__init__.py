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


#: the oldest pyOpenSSL the DTLS engine is written against (DTLS timeouts and MTU came in
#: 21.x; the typed, ``as_cryptography`` API in 26.0); the ``dtls`` extra asks for it
PYOPENSSL_MINIMUM = (26, 0)

DTLS_EXTRA = "coaps:// (CoAP over DTLS) needs the dtls extra: pip install 'coapkit[dtls]'"

#: the OpenSSL functions the DTLS engine (:mod:`coapkit.security.openssl_dtls`) calls
#: through ``cryptography``'s bindings, pyOpenSSL having no wrapper for them (the PSK
#: callbacks first of all); a ``cryptography`` without one of them cannot serve coaps://
DTLS_BINDINGS = (
    "SSL_CTX_set_psk_server_callback",
    "SSL_CTX_set_psk_client_callback",
    "SSL_CTX_use_psk_identity_hint",
    "SSL_get0_param",
    "X509_VERIFY_PARAM_set1_host",
    "X509_VERIFY_PARAM_set1_ip",
    "SSL_get_verify_result",
    "X509_verify_cert_error_string",
    "SSL_session_reused",
    "SSL_get_session",
    "SSL_SESSION_get_master_key",
    # on every datagram of an established session, without pyOpenSSL's exceptions
    "SSL_read",
    "SSL_write",
    "BIO_read",
    "BIO_write",
    "SSL_get_error",
    "SSL_ERROR_WANT_READ",
    "ERR_clear_error",
)


def require_dtls() -> None:
    """Raise :class:`MissingExtra` (one line, naming the ``dtls`` extra) unless pyOpenSSL
    26 or later imports with a ``cryptography`` that binds every function in
    :data:`DTLS_BINDINGS` (naming those it lacks)."""
    try:
        from cryptography import __version__ as cryptography_version
        from cryptography.hazmat.bindings.openssl.binding import Binding
        from OpenSSL.version import __version__ as pyopenssl_version
    except ImportError:
        raise MissingExtra(DTLS_EXTRA, "dtls") from None
    try:
        found = tuple(int(part) for part in pyopenssl_version.split(".")[:2])
    except ValueError:  # a development version: trust it
        found = PYOPENSSL_MINIMUM
    if found < PYOPENSSL_MINIMUM:
        raise MissingExtra(f"{DTLS_EXTRA} (pyOpenSSL {pyopenssl_version} is too old)", "dtls")
    missing = [name for name in DTLS_BINDINGS if not hasattr(Binding.lib, name)]
    if missing:
        raise MissingExtra(
            f"{DTLS_EXTRA} (cryptography {cryptography_version} does not bind "
            f"{', '.join(missing)}: install the versions the extra names)",
            "dtls",
        )
