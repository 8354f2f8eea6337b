"""EDHOC (RFC 9528): lightweight authenticated key exchange that sets up OSCORE.

Needs the ``oscore`` extra (``cryptography`` and ``cbor2``).

* :class:`Initiator` and :class:`Responder`: the protocol, sans I/O
  (:mod:`coapkit.edhoc.session`), methods 0 to 3, cipher suites 0 to 3;
* :class:`Credential`, :func:`ccs_credential`, :class:`TrustedPeers`: who a party
  is and whom it accepts (:mod:`coapkit.edhoc.credentials`);
* :class:`EdhocError`: everything that ends a session.

The guide "OSCORE" in the documentation has a section on EDHOC.
"""

from __future__ import annotations

from coapkit.edhoc.credentials import (
    Credential,
    Identity,
    ReceivedIdCred,
    TrustedPeers,
    ccs_credential,
    kid_id_cred,
)
from coapkit.edhoc.errors import EdhocError, EdhocPeerError
from coapkit.edhoc.session import EadItem, Initiator, Responder

__all__ = [
    "Credential",
    "EadItem",
    "EdhocError",
    "EdhocPeerError",
    "Identity",
    "Initiator",
    "ReceivedIdCred",
    "Responder",
    "TrustedPeers",
    "ccs_credential",
    "kid_id_cred",
]
