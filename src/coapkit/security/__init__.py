"""Security material for CoAP: TLS for ``coaps+tcp`` (RFC 8323 §9) now; DTLS and OSCORE later.

This package turns what a user configures (files, flags, a credentials
file) into what the transports take (an :class:`ssl.SSLContext`), with the
defaults and checks in one place, so that the client, the server and the
command-line tool verify peers the same way.  It uses the standard
library's :mod:`ssl` only: the core stays free of dependencies.
"""

from coapkit.security.tls import (
    TlsCredentials,
    client_context,
    psk_key,
    server_context,
)

__all__ = ["TlsCredentials", "client_context", "psk_key", "server_context"]
