"""OSCORE (RFC 8613): end-to-end protection of CoAP requests and responses, sans I/O.

Needs the ``oscore`` extra (``pip install 'coapkit[oscore]'``: ``cryptography``
and ``cbor2``); without it, making a security context raises
:class:`~coapkit.oscore.algorithms.OscoreUnavailable`, one line naming the extra.

* :class:`ContextParameters` and :class:`SecurityContext`: the security
  context (RFC 8613 §3), its sequence numbers and replay window
  (:mod:`coapkit.oscore.context`);
* :func:`protect_request`, :func:`unprotect_request`, :func:`protect_response`,
  :func:`unprotect_response`: the message transformations (§5, §8);
* :class:`OscoreServer`: the OSCORE layer of a :class:`~coapkit.Server`;
  :class:`CredentialsMap`: which context a :class:`~coapkit.Client` protects a
  request with;
* :mod:`coapkit.runtime.oscore_files`: contexts in aiocoap's directory layout.

The guide "OSCORE" in the documentation walks through them.
"""

from __future__ import annotations

from coapkit.oscore.algorithms import AEADS, OscoreUnavailable
from coapkit.oscore.context import (
    ContextExhausted,
    ContextParameters,
    MemoryStore,
    ReplayWindow,
    SecurityContext,
    SequencePolicy,
    SequenceState,
    SequenceStore,
)
from coapkit.oscore.credentials import CredentialsMap, parse_credentials
from coapkit.oscore.errors import (
    OscoreConfigError,
    OscoreError,
    PeerRejected,
    ProtectionInvalid,
    Rejection,
)
from coapkit.oscore.option import OscoreDecodeError, OscoreOption, decode_option, encode_option
from coapkit.oscore.protection import (
    RequestBinding,
    VerifiedResponse,
    protect_request,
    protect_response,
    unprotect_request,
    unprotect_response,
)
from coapkit.oscore.server import OscoreIdentity, OscoreServer

__all__ = [
    "AEADS",
    "ContextExhausted",
    "ContextParameters",
    "CredentialsMap",
    "MemoryStore",
    "OscoreConfigError",
    "OscoreDecodeError",
    "OscoreError",
    "OscoreIdentity",
    "OscoreOption",
    "OscoreServer",
    "OscoreUnavailable",
    "PeerRejected",
    "ProtectionInvalid",
    "Rejection",
    "ReplayWindow",
    "RequestBinding",
    "SecurityContext",
    "SequencePolicy",
    "SequenceState",
    "SequenceStore",
    "VerifiedResponse",
    "decode_option",
    "encode_option",
    "parse_credentials",
    "protect_request",
    "protect_response",
    "unprotect_request",
    "unprotect_response",
]
