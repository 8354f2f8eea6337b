"""The errors of OSCORE (RFC 8613 §8), as a client meets them and as a server answers them.

A client's protected exchange that fails raises an :class:`OscoreError` (a
:class:`~coapkit.errors.RequestError`, so code that catches request errors
catches these too), each with a one-line message naming the cause: the
server's unprotected error (4.01 "Security context not found", 4.01 "Replay
detected", 4.02 "Failed to decode COSE", 4.00 "Decryption failed"), or a
response that failed verification here.

On the server side, processing a request raises :class:`Rejection`, which
carries the code and diagnostic of §8.2's error responses and whether the
answer can be protected (it can once the request was verified, as for the
Echo challenge of Appendix B.1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coapkit.codec.codes import Code, code_name
from coapkit.errors import CoapError, RequestError, SecurityConfigError

if TYPE_CHECKING:
    from coapkit.oscore.protection import RequestBinding

__all__ = [
    "OscoreConfigError",
    "OscoreError",
    "PeerRejected",
    "ProtectionInvalid",
    "Rejection",
]


class OscoreError(RequestError):
    """A request protected with OSCORE did not give a verified response."""

    hint = "check that both ends use the same security context (IDs, secret, salt, ID Context)"


class ProtectionInvalid(OscoreError):
    """A response failed OSCORE verification here: tampered with, protected with another
    key, or not bound to our request (§8.4)."""


class PeerRejected(OscoreError):
    """The server answered our protected request with an unprotected OSCORE error (§8.2):
    ``code`` and ``diagnostic`` are what it said."""

    def __init__(self, message: str, code: int, diagnostic: str) -> None:
        super().__init__(message)
        self.code = code
        self.diagnostic = diagnostic


class OscoreConfigError(SecurityConfigError):
    """A security context or a credentials file cannot be used (a missing key, an ID too
    long for the algorithm, a directory in use by another process)."""


class Rejection(CoapError):
    """Why a server does not process a request further (RFC 8613 §8.2, §7.4, B.1.2).

    ``binding`` is set when the request was verified (its answer is protected, as for
    the Echo challenge); otherwise the answer goes out unprotected, with an Outer
    Max-Age of 0 so that no proxy caches it.
    """

    def __init__(
        self,
        code: int,
        diagnostic: str,
        *,
        binding: RequestBinding | None = None,
        echo: bytes | None = None,
    ) -> None:
        super().__init__(f"{code_name(code)} {diagnostic}")
        self.code = code
        self.diagnostic = diagnostic
        self.binding = binding
        self.echo = echo


def decode_failure(detail: str) -> Rejection:
    """§8.2 step 2: the OSCORE option or the COSE object cannot be decoded: 4.02."""
    return Rejection(Code.BAD_OPTION, f"Failed to decode COSE ({detail})")


def context_not_found() -> Rejection:
    """§8.2 step 2: no Recipient Context for the kid (and kid context): 4.01."""
    return Rejection(Code.UNAUTHORIZED, "Security context not found")


def replay_detected() -> Rejection:
    """§7.4: the Partial IV was seen before: 4.01."""
    return Rejection(Code.UNAUTHORIZED, "Replay detected")


def decryption_failed() -> Rejection:
    """§8.2 step 6: the ciphertext does not verify: 4.00."""
    return Rejection(Code.BAD_REQUEST, "Decryption failed")
