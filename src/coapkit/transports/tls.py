"""TLS on a stream connection (RFC 8323 §9.1): why a handshake failed, who the peer is.

Why: OpenSSL's errors name a library state (``[SSL:
TLSV13_ALERT_CERTIFICATE_REQUIRED] ... (_ssl.c:1006)``), not what a user
must change.  :func:`describe_tls_error` turns each failure a user meets (a
server certificate from a CA not trusted, one for another name, an expired
one, a missing or refused client certificate, a peer without TLS, no TLS
version in common) into one line naming the cause, for the errors the
client raises and the lines the server logs.  The contract for such lines
is TRANSPORTS.md's: ``TLS handshake failed: certificate verify failed: ...``.

Who the peer is (for access control, and logs): :func:`tls_session` reads
the negotiated version, cipher and ALPN protocol, and the peer's verified
certificate as a :class:`PeerCertificate`.  A certificate that was not
verified (none requested, none sent) gives none: an identity is only
reported when the chain was checked against the trust anchors.

This module sits beside the stream transport (the transports and the
security package are siblings, docs/architecture.md rule 9), so that
CoAP over TLS and over secure WebSockets share it.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import Any

#: OpenSSL's X509 verification codes that mean "not issued by a trusted CA"
_UNTRUSTED = {2, 18, 19, 20, 21, 27}
_EXPIRED, _NOT_YET_VALID, _REVOKED = 10, 9, 23
_HOST_MISMATCH, _IP_MISMATCH = 62, 64

#: alerts a peer sends about our certificate, and what they mean to us
_REFUSED_OURS = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "it refused our certificate (bad certificate)",
    "TLSV1_ALERT_UNKNOWN_CA": "it does not trust the CA that issued our certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "it refused our certificate (certificate unknown)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "it refused our certificate (unsupported)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "it says our certificate has expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "it says our certificate is revoked",
    "TLSV1_ALERT_ACCESS_DENIED": "it denied access to our certificate's identity",
    "TLSV1_ALERT_DECRYPT_ERROR": "it could not verify our handshake signature (wrong key?)",
}
_NOT_TLS = {
    "WRONG_VERSION_NUMBER",
    "HTTP_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
}
_NO_VERSION = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW",
}


def describe_tls_error(exc: BaseException, *, server_side: bool = False) -> str:
    """One line for a failed TLS handshake or TLS connection, naming the cause.

    ``server_side``: we are the server (the peer is a client); this decides
    whose certificate a verification failure concerns.  The line has no
    address: the caller puts the peer's in front.
    """
    peer = "client" if server_side else "server"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        message = (exc.verify_message or exc.reason or "").strip().rstrip(".")
        if code in _UNTRUSTED:
            why = f"the {peer}'s certificate is not issued by a trusted CA"
        elif code in (_HOST_MISMATCH, _IP_MISMATCH):
            why = "the server's certificate is for another name"
        elif code in (_EXPIRED, _NOT_YET_VALID, _REVOKED):
            why = f"the {peer}'s certificate"
        else:
            why = ""
        return f"TLS handshake failed: certificate verify failed: {message}" + (
            f" ({why})" if why else ""
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"):
            if server_side:
                return "TLS handshake failed: the client sent no certificate (one is required)"
            return "TLS handshake failed: the server requires a client certificate"
        if reason in _REFUSED_OURS:
            return f"TLS handshake failed: the {peer} refused us: {_REFUSED_OURS[reason]}"
        if reason in _NOT_TLS:
            return f"TLS handshake failed: the {peer} does not speak TLS (a plain coap+tcp port?)"
        if reason in _NO_VERSION:
            return (
                "TLS handshake failed: no TLS version in common (coapkit's default is TLS 1.2 "
                "or later)"
            )
        if reason in ("NO_APPLICATION_PROTOCOL", "TLSV1_ALERT_NO_APPLICATION_PROTOCOL"):
            return f"TLS handshake failed: the {peer} does not accept ALPN 'coap'"
        if reason in ("SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER"):
            return (
                f"TLS handshake failed: the {peer} refused the handshake (no cipher suite in "
                "common, or a certificate it needs)"
            )
        if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            return f"TLS handshake failed: the {peer} closed the connection"
        text = reason.lower().replace("_", " ") if reason else str(exc)
        return f"TLS error: {text}"
    if isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc):
        return "TLS handshake timed out"
    if isinstance(exc, TimeoutError):
        return "TLS handshake timed out"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        if server_side:
            return (
                "TLS handshake failed: the client closed the connection (it may not trust "
                "our certificate)"
            )
        return (
            "TLS handshake failed: the server closed the connection (it may require a client "
            "certificate, refuse ours, or accept no TLS version we offer)"
        )
    return f"TLS handshake failed: {exc or exc.__class__.__name__}"


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The verified certificate of a TLS peer: who it is, for access control and logs."""

    subject: tuple[tuple[str, str], ...]
    """(attribute, value) pairs in the order of the certificate, e.g.
    ``(("organizationName", "ACME"), ("commonName", "client1"))``."""
    issuer: tuple[tuple[str, str], ...]
    alt_names: tuple[tuple[str, str], ...]
    """subjectAltName entries, e.g. ``(("DNS", "localhost"), ("IP Address", "127.0.0.1"))``."""
    serial: str
    not_after: str
    der: bytes
    """The certificate as sent (DER)."""

    @property
    def common_name(self) -> str | None:
        """The (last) Common Name of the subject, if any."""
        names = [value for key, value in self.subject if key == "commonName"]
        return names[-1] if names else None

    @property
    def sha256(self) -> str:
        """The certificate's SHA-256 fingerprint (hex), for pinning."""
        return hashlib.sha256(self.der).hexdigest()

    def __str__(self) -> str:
        short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
        return ", ".join(f"{short.get(key, key)}={value}" for key, value in self.subject)


@dataclass(frozen=True, slots=True)
class TlsSession:
    """What one TLS connection negotiated."""

    version: str | None  #: "TLSv1.3"
    cipher: str | None
    alpn: str | None  #: "coap", or None when the peer did not negotiate ALPN
    peer: PeerCertificate | None  #: the peer's verified certificate, if it sent one


def _pairs(rdns: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(key), str(value)) for rdn in rdns or () for key, value in rdn)


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> PeerCertificate | None:
    """The peer's certificate if it sent one and it was verified, else None."""
    details = ssl_object.getpeercert()
    der = ssl_object.getpeercert(binary_form=True)
    if not details or not der:  # none sent, or not verified (CERT_NONE): no identity
        return None
    return PeerCertificate(
        subject=_pairs(details.get("subject")),
        issuer=_pairs(details.get("issuer")),
        alt_names=tuple((str(pair[0]), str(pair[1])) for pair in details.get("subjectAltName", ())),
        serial=str(details.get("serialNumber", "")),
        not_after=str(details.get("notAfter", "")),
        der=der,
    )


def tls_session(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> TlsSession:
    cipher = ssl_object.cipher()
    return TlsSession(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        alpn=ssl_object.selected_alpn_protocol(),
        peer=peer_certificate(ssl_object),
    )
