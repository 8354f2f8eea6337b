"""EDHOC's exceptions: one class for everything that ends a session.

RFC 9528 §6 (the error message: ERR_CODE 1, an unspecified error with a
diagnostic text; ERR_CODE 2, the wrong selected cipher suite, with the
Responder's SUITES_R).  Every problem with a received message, however
malformed, is an :class:`EdhocError`; a session that raised one is over
(§6: "the session MUST be discontinued").
"""

from __future__ import annotations

from coapkit.errors import CoapError

__all__ = ["ERR_UNSPECIFIED", "ERR_WRONG_SUITE", "EdhocError", "EdhocPeerError"]

#: §6.2: an error with a text for a human
ERR_UNSPECIFIED = 1
#: §6.3: the selected cipher suite is not what the Responder supports
ERR_WRONG_SUITE = 2


class EdhocError(CoapError):
    """An EDHOC session failed here: ``err_code`` and, for ERR_CODE 2, ``suites_r``
    (the Responder's cipher suites, most preferred first) say what the error message
    sent to the peer says (:func:`coapkit.edhoc.messages.encode_error`)."""

    hint = "the EDHOC session is discontinued: start a new one"

    def __init__(
        self, reason: str, *, err_code: int = ERR_UNSPECIFIED, suites_r: tuple[int, ...] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.err_code = err_code
        self.suites_r = suites_r


class EdhocPeerError(EdhocError):
    """The peer sent an EDHOC error message (§6) instead of the next message."""
