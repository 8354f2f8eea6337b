"""The exceptions coapkit raises.

Two rules decide where an error surfaces (see docs/architecture.md, "Errors"):

* Misuse of the API (an impossible message, a bad URI, a full backlog) raises
  at the call, as a subclass of :class:`CoapError`.
* Misbehaviour of a peer never raises out of the sans-I/O core: it becomes an
  event and an RST or a silent drop.  Only the client API turns the outcome
  of a request (timeout, reset, network error, error response) back into an
  exception for the caller who is awaiting it.

Every message is one line a person can read; :attr:`CoapError.hint`, where
set, is a second line the command-line tool prints to say what to try.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coapkit.resources.response import Response


class CoapError(Exception):
    """Root of every exception coapkit raises on purpose."""

    hint: str | None = None


# -- codec -------------------------------------------------------------------


class DecodeError(CoapError):
    """A datagram is not a well-formed CoAP message (RFC 7252 §3).

    ``reason`` says what is wrong.  When the fixed header was readable (at
    least four bytes, version 1), ``mtype`` and ``mid`` carry its message type
    and message ID so that the messaging layer can answer a malformed
    Confirmable message with a Reset, as RFC 7252 §4.2 requires; otherwise
    both are ``None`` and the datagram is to be dropped silently.
    """

    def __init__(
        self, reason: str, *, mtype: int | None = None, mid: int | None = None, offset: int = 0
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mtype = mtype
        self.mid = mid
        self.offset = offset

    @property
    def header_readable(self) -> bool:
        """True if the type and message ID of the bad message are known."""
        return self.mid is not None


class EncodeError(CoapError, ValueError):
    """A message cannot be put on the wire (e.g. a 9-byte token, a MID above 0xFFFF)."""


class OptionValueError(CoapError, ValueError):
    """An option's value does not fit its registered format or length (RFC 7252 §5.4.3).

    Raised by the typed option accessors and builders; ``number`` is the option number.
    """

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(reason)
        self.number = number
        self.reason = reason


class UriError(CoapError, ValueError):
    """A URI cannot be used for CoAP (RFC 7252 §6): relative, a fragment, an unknown scheme..."""


class SecurityConfigError(CoapError, ValueError):
    """Security material cannot be used: a certificate or key file that cannot be read or
    does not fit, a mode that is not supported (TLS with a pre-shared key)."""


class LinkFormatError(CoapError, ValueError):
    """A link-format document (RFC 6690) cannot be parsed."""


# -- message layer and exchanges ----------------------------------------------


class ProtocolUsageError(CoapError):
    """The sans-I/O core was asked to do something CoAP forbids (e.g. a CON to multicast)."""


class BacklogFull(CoapError):
    """Too many messages are waiting for NSTART towards one peer (RFC 7252 §4.7)."""

    hint = "slow down, raise the backlog limit, or raise NSTART for this peer"


class PeerTableFull(BacklogFull):
    """No state can be made for a new remote: the message layer's peer table is full and
    every peer in it holds message IDs that must not be reused yet (RFC 7252 §4.4)."""

    hint = "try again later, or raise MessagingConfig.max_peers"


class EndpointClosed(CoapError):
    """The endpoint has been shut down; nothing more is sent or received."""


class NotStarted(ProtocolUsageError, RuntimeError):
    """A client or server was used before ``start()`` or after it was closed.

    The socket, and so the local address, exists only between the two; ``async with
    Client() as client:`` (or ``async with server:``) starts it and closes it.
    """

    hint = "use 'async with Client() as client:' or 'await client.start()' first"


# -- outcomes of a request, as the client API raises them ----------------------


class RequestError(CoapError):
    """A request did not produce a response."""


class RequestTimeout(RequestError, TimeoutError):
    """No response arrived in time (NON request, or the per-request timeout expired)."""

    hint = "is the server running and reachable? try --timeout or -v"


class RetransmissionsExceeded(RequestTimeout):
    """A Confirmable message was sent MAX_RETRANSMIT + 1 times and never acknowledged."""

    hint = "no CoAP endpoint answered; check the host, port and firewall"


class ResetByPeer(RequestError):
    """The peer answered with a Reset: it did not recognise or refused the message."""

    hint = "the peer rejected the message (RST); it may not serve this request or token"


class NetworkError(RequestError, OSError):
    """The network reported an error for this peer (e.g. ICMP port unreachable)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        RequestError.__init__(self, message)
        self.errno = errno
        self.strerror = message

    def __str__(self) -> str:
        return str(self.strerror)


class DtlsError(NetworkError):
    """A DTLS session (``coaps://``) could not be made or ended under a request: the
    message names the cause (``DTLS handshake failed: the server rejected PSK identity
    'dev1'``), :attr:`cause` is a short code for programs."""

    #: the short codes :attr:`cause` takes
    CAUSES = frozenset(
        {
            "handshake_failure",  # the peer refused the handshake (no suite in common...)
            "unknown_psk_identity",  # the server knows no key for our PSK identity
            "psk_mismatch",  # the keys of the two sides differ
            "bad_certificate",  # the peer's certificate did not verify
            "certificate_refused",  # the peer refused our certificate (or its absence)
            "timeout",  # no (complete) handshake in time
            "closed",  # the peer closed the session (close_notify, or an alert)
            "idle",  # closed here after a time without traffic
            "replaced",  # the peer started a new session from the same address
            "limit",  # a session limit of this endpoint was reached
            "config",  # our own material is unusable for this peer
            "protocol",  # a DTLS error not listed above
        }
    )

    def __init__(self, message: str, cause: str = "protocol") -> None:
        NetworkError.__init__(self, message)
        self.cause = cause
        self.hint = _DTLS_HINTS.get(cause)


_DTLS_HINTS = {
    "unknown_psk_identity": "check the PSK identity (--psk-identity) the server expects",
    "psk_mismatch": "check the pre-shared key (--psk) of this identity",
    "bad_certificate": "check the CA (--ca) and the name in the URI",
    "certificate_refused": "the server may require a client certificate (--cert, --key)",
    "handshake_failure": "the two sides need a mode in common: a pre-shared key (--psk-identity, "
    "--psk) or certificates (--cert, --key, --ca)",
    "timeout": "is a DTLS server running on that port (coaps:// defaults to 5684)?",
}


class TransferError(RequestError):
    """A block-wise transfer could not be completed (representation changed, body too large...)."""


class BadResponse(RequestError):
    """The response was rejected: it carried an unrecognised critical option (RFC 7252 §5.4.1)."""

    hint = "the peer answered with a critical option coapkit does not implement"


class ReservedCodeResponse(BadResponse):
    """The server acknowledged the request with a code in a class CoAP reserves (1.xx,
    6.xx, 7.xx; RFC 7252 §3): no response a client can read, and asking again would get
    the same answer, so the request ends at once.  ``code`` is the code received."""

    hint = ""

    def __init__(self, code: int) -> None:
        super().__init__(
            f"the server answered {code >> 5}.{code & 0x1F:02d}, a code in a reserved class"
        )
        self.code = code


class RequestCancelled(RequestError):
    """The request was cancelled locally (by the caller or by shutdown)."""


class ErrorResponse(RequestError):
    """The server answered with a 4.xx or 5.xx code (raised only when asked to, by
    ``raise_for_status=True`` or :meth:`Response.raise_for_status`).

    ``response`` is the whole :class:`~coapkit.resources.response.Response` (its
    ``.json()``, ``.remote``, options...), as httpx's ``HTTPStatusError.response`` is, so
    that a handler of the error can read what the server said; ``code`` is its code.
    """

    def __init__(self, response: Response, message: str | None = None) -> None:
        from coapkit.codec.codes import code_name

        self.response = response
        self.code = response.code
        text = message or code_name(response.code)
        if response.payload and message is None:
            try:
                diagnostic = response.payload.decode("utf-8")
            except UnicodeDecodeError:
                diagnostic = ""
            if diagnostic and diagnostic.isprintable():
                text = f"{text}: {diagnostic}"
        super().__init__(text)


# -- server side ----------------------------------------------------------------


class RespondWith(CoapError):
    """Raised by a resource handler to answer with an error code.

    ``raise RespondWith(Code.NOT_FOUND, "no such sensor")`` answers 4.04 with a
    diagnostic payload (RFC 7252 §5.5.2); ``options`` are response options
    (``max_age=30``).  It and its subclasses are the only exceptions whose code and
    text reach the client: anything else a handler raises is a bug of the server,
    answered 5.00 with a generic diagnostic and logged with its traceback, so that
    no internal detail leaks onto the wire.
    """

    def __init__(self, code: int, diagnostic: str = "", **options: Any) -> None:
        super().__init__(diagnostic or str(code))
        self.code = code
        self.diagnostic = diagnostic
        self.options = options


class BadRequest(RespondWith, ValueError):
    """4.00 Bad Request: what the client sent cannot be used.

    The request accessors raise it (:meth:`Request.json` and :meth:`Request.cbor` for a
    malformed payload, :attr:`Request.text` for one that is not UTF-8, the path and
    query for segments that are not UTF-8, the typed options for malformed values), and
    so may a handler: ``raise BadRequest("temperature must be a number")``.  It is a
    ``ValueError`` too, as the parsing errors it stands for are.
    """

    def __init__(self, diagnostic: str = "", **options: Any) -> None:
        from coapkit.codec.codes import Code

        super().__init__(Code.BAD_REQUEST, diagnostic, **options)
