"""What the DTLS session layer reports: sessions made, sessions ended, datagrams refused."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from coapkit.dtls.engine import PeerIdentity
from coapkit.errors import DtlsError


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """A handshake with ``remote`` completed."""

    remote: Hashable
    identity: PeerIdentity
    client: bool  #: we are the client of this session


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session with ``remote`` is over: ``error`` says why (its :attr:`~DtlsError.cause`
    is ``idle`` or ``closed`` for an orderly end).  ``established``: it had completed its
    handshake (False: the handshake failed)."""

    remote: Hashable
    error: DtlsError
    established: bool
    client: bool

    @property
    def failed(self) -> bool:
        """A handshake that failed, or a session that ended in an error (not an orderly
        close, an idle timeout, or a new session from the same address)."""
        return self.error.cause not in ("closed", "idle", "replaced")


@dataclass(frozen=True, slots=True)
class SessionRefused:
    """A ClientHello with a valid cookie found the session or handshake limit reached."""

    remote: Hashable
    reason: str


@dataclass(frozen=True, slots=True)
class DatagramDropped:
    """A datagram no session takes: not DTLS records, for no session, or unsupported."""

    remote: Hashable
    reason: str


DtlsEvent = SessionEstablished | SessionEnded | SessionRefused | DatagramDropped
