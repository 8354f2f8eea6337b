"""What the DTLS session layer asks of a DTLS implementation (an *engine*), sans I/O.

The session layer (:mod:`coapkit.dtls.layer`) owns what does not depend on
the cryptography: which session a datagram belongs to, the stateless cookie
exchange, the session and handshake limits, the retransmission timer on the
endpoint's clock, idle timeouts.  An engine owns the cryptography of each
session, and nothing else: no sockets, no timers of its own that anyone
waits for, no knowledge of CoAP.

Per session, the engine takes whole datagrams of ciphertext and hands back
an :class:`EngineStep`: datagrams of ciphertext to send (handshake flights,
alerts), plaintexts for the message layer, and what happened (established,
closed by the peer, failed with a :class:`~coapkit.errors.DtlsError`).  It
encrypts one plaintext datagram at a time (:meth:`EngineSession.send`).

Retransmission (RFC 6347 §4.2.4) is split so that the timer is the layer's,
on the endpoint's clock (docs/architecture.md rule 2): when a flight is due
again the layer calls :meth:`EngineSession.timeout`; an engine whose own
clock agrees retransmits with fresh record numbers and returns the
datagrams, one whose clock does not (a virtual clock runs ahead of it)
returns None and the layer resends the flight as it was first sent.

The first engine is pyOpenSSL's (:mod:`coapkit.security.openssl_dtls`).  A
connection-ID engine (RFC 9146) would add one thing: a way to name the
session of a ``tls12_cid`` record whatever address it comes from
(:meth:`DtlsLayer.route` is where the layer would ask it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from coapkit.errors import DtlsError


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who the peer of a DTLS session proved to be: what a resource may authorise by.

    ``psk_identity`` when the session was made with a pre-shared key; the
    ``subject`` (and the rest) of the peer's certificate when it sent one
    and it was verified against the trust anchors; neither for a client
    that a certificate-only server did not ask to authenticate.
    """

    psk_identity: bytes | None = None
    subject: tuple[tuple[str, str], ...] = ()
    """(attribute, value) pairs of the certificate's subject, in order:
    ``(("organizationName", "ACME"), ("commonName", "client1"))``."""
    issuer: tuple[tuple[str, str], ...] = ()
    alt_names: tuple[tuple[str, str], ...] = ()
    """subjectAltName entries: ``(("DNS", "localhost"), ("IP Address", "127.0.0.1"))``."""
    certificate: bytes | None = None
    """The peer's verified certificate (DER), if it sent one."""
    cipher: str | None = None  #: the negotiated cipher suite (OpenSSL's name)
    version: str | None = None  #: "DTLSv1.2"
    resumed: bool = False  #: the session resumed an earlier one (abbreviated handshake)
    psk_hint: bytes | None = field(default=None, compare=False)
    """Client side: the identity hint the server sent, if any."""

    @property
    def authenticated(self) -> bool:
        """Whether the peer proved an identity (a PSK, or a verified certificate)."""
        return self.psk_identity is not None or self.certificate is not None

    @property
    def label(self) -> str:
        """:attr:`name`, under the name every :class:`~coapkit.resources.request.SecurityIdentity`
        has (an OSCORE identity's is its credentials label)."""
        return self.name

    @property
    def protocol(self) -> str:
        """The security layer that vouched for the peer: ``"dtls"``."""
        return "dtls"

    @property
    def common_name(self) -> str | None:
        """The (last) Common Name of the certificate's subject, if any."""
        names = [value for key, value in self.subject if key == "commonName"]
        return names[-1] if names else None

    @property
    def sha256(self) -> str | None:
        """The certificate's SHA-256 fingerprint (hex), for pinning."""
        return None if self.certificate is None else hashlib.sha256(self.certificate).hexdigest()

    @property
    def name(self) -> str:
        """A short, printable name: the PSK identity, the certificate's Common Name (or
        whole subject), or ``anonymous``."""
        if self.psk_identity is not None:
            return self.psk_identity.decode("utf-8", "backslashreplace")
        if self.certificate is not None:
            return self.common_name or ", ".join(f"{k}={v}" for k, v in self.subject)
        return "anonymous"

    def __str__(self) -> str:
        if self.psk_identity is not None:
            return f"PSK identity {self.name!r}"
        if self.certificate is not None:
            return f"certificate {self.name!r}"
        return "no client authentication"


@dataclass(slots=True)
class EngineStep:
    """What one datagram (or one call) did to a session."""

    datagrams: list[bytes] = field(default_factory=list)  #: ciphertext to send, in order
    plaintexts: list[bytes] = field(default_factory=list)  #: for the message layer, in order
    established: bool = False  #: the handshake completed in this step
    closed: bool = False  #: the peer closed the session (close_notify): it is over
    failure: DtlsError | None = None  #: the session failed: it is over


class EngineSession(Protocol):
    """One DTLS association, as an engine keeps it."""

    @property
    def established(self) -> bool: ...

    def receive(self, datagram: bytes) -> EngineStep:
        """Ciphertext from the peer: whole records (the layer checked the framing)."""

    def send(self, plaintext: bytes) -> list[bytes]:
        """Encrypt one datagram of the message layer (an established session only)."""

    def timeout(self) -> list[bytes] | None:
        """The layer's retransmission timer fired: the last flight again, with fresh record
        numbers, when the engine's own clock agrees; None when it does not (the layer
        then resends the flight as first sent); an empty list when the engine knows the
        peer has the flight (nothing is sent)."""

    def close(self) -> list[bytes]:
        """Our close_notify (nothing once the session failed)."""

    def identity(self) -> PeerIdentity:
        """Who the peer proved to be (an established session)."""


class ClientEngine(Protocol):
    """Makes client sessions."""

    def connect(
        self, remote: Hashable, server_name: str | None, credentials: Any
    ) -> tuple[EngineSession, EngineStep]:
        """A new session to ``remote`` (``server_name``: the host the URI named, for the
        certificate check and SNI; ``credentials``: what the client was given for that
        URI) and its first flight (the ClientHello).  A failure in the step (unusable
        credentials) ends it at once."""


class ServerEngine(Protocol):
    """Makes server sessions from ClientHellos whose cookie the layer has checked."""

    def accept(self, hello: bytes, remote: Hashable) -> tuple[EngineSession, EngineStep]:
        """A new session for the datagram ``hello`` (a ClientHello with a valid cookie)
        from ``remote``, and what answering it produced (the server's flight)."""
