"""CoAP over DTLS (``coaps://``, RFC 7252 §9; DTLS 1.2, RFC 6347): the session layer, sans I/O.

One more layer between the UDP transport and the message layer: an
:class:`~coapkit.endpoint.Endpoint` built with ``security=DtlsLayer(...)``
hands every datagram it receives to the layer, which returns the plaintexts
for the message layer, and passes every datagram it sends through
:meth:`DtlsLayer.seal`.  The message layer, the exchanges and everything above
are the same as over UDP.  The cryptography is an engine's
(:mod:`coapkit.dtls.engine`; the first is :mod:`coapkit.security.openssl_dtls`).
"""

from coapkit.dtls.engine import ClientEngine, EngineSession, EngineStep, PeerIdentity, ServerEngine
from coapkit.dtls.events import (
    DatagramDropped,
    DtlsEvent,
    SessionEnded,
    SessionEstablished,
    SessionRefused,
)
from coapkit.dtls.layer import DtlsConfig, DtlsLayer, DtlsSession, DtlsStats

__all__ = [
    "ClientEngine",
    "DatagramDropped",
    "DtlsConfig",
    "DtlsEvent",
    "DtlsLayer",
    "DtlsSession",
    "DtlsStats",
    "EngineSession",
    "EngineStep",
    "PeerIdentity",
    "ServerEngine",
    "SessionEnded",
    "SessionEstablished",
    "SessionRefused",
]
