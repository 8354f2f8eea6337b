"""Authentication credentials for EDHOC: CRED_x, ID_CRED_x and the keys they hold.

RFC 9528 §3.5: each party has an authentication credential CRED_x (here a
CWT Claims Set, CCS, whose ``cnf`` claim holds a COSE_Key: what aiocoap and
lakers use; or any encoded credential with its key given beside it, as the
X.509 certificates of RFC 9529's first trace), which it identifies in the
message with ID_CRED_x: by key ID, ``{4: kid}`` (§3.5.3.2, sent compactly as
the bare kid), or by value, ``{14: CCS}`` (``kccs``, RFC 9528 §10.6).  What
the MACs and the transcript hash cover is the exact encoding of CRED_x, so a
:class:`Credential` keeps bytes, not a parsed value.

The peer is trusted through a lookup (:class:`TrustedPeers` or any callable
taking a :class:`ReceivedIdCred`): EDHOC authenticates whatever credential
the lookup returns; a lookup that returns the credential a peer sent by
value without knowing it first (``accept_unknown``) authenticates nothing
about who the peer is (trust on first use), only that it holds the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from coapkit.edhoc.cbor import CborItem, bstr, decode_one, encode_value
from coapkit.edhoc.errors import EdhocError

__all__ = [
    "Credential",
    "Identity",
    "PeerLookup",
    "ReceivedIdCred",
    "TrustedPeers",
    "ccs_credential",
    "kid_id_cred",
]

#: COSE header parameters that identify a credential (RFC 9052 §3.1, RFC 9528 §10.6)
KID = 4
KCCS = 14


def kid_id_cred(kid: bytes) -> bytes:
    """The encoded ``ID_CRED_x = {4: kid}``."""
    return b"\xa1\x04" + bstr(kid)


@dataclass(frozen=True, slots=True)
class Credential:
    """CRED_x with its ID_CRED_x (both encoded) and the public key it authenticates.

    ``public_key``: 32 bytes (X25519, Ed25519, a P-256 x) or, for a P-256 key that
    also verifies ES256 signatures, 64 (x then y).  ``key_id``: the kid inside the
    credential's COSE_Key (a peer may name the credential by it); ``label``: the
    name of the credentials entry (a server's requests show it as their identity).
    """

    cred: bytes
    id_cred: bytes
    public_key: bytes
    key_id: bytes | None = None
    label: str | None = None

    @property
    def compact_id_cred(self) -> bytes:
        """ID_CRED_x as the message carries it (§3.5.3.2): a kid alone when it is
        ``{4: kid}`` (as an integer when the kid is one such byte), else the map."""
        if self.id_cred[:2] == b"\xa1\x04":
            try:
                kid, end = decode_one(self.id_cred, 2)
            except EdhocError:
                return self.id_cred
            if isinstance(kid, bytes) and end == len(self.id_cred):
                if len(kid) == 1 and (kid[0] <= 0x17 or 0x20 <= kid[0] <= 0x37):
                    return kid
                return bstr(kid)
        return self.id_cred


@dataclass(frozen=True, slots=True)
class Identity:
    """A party's own credential and private key (static DH or signing, as the method
    wants: the same P-256 scalar serves both)."""

    credential: Credential
    private_key: bytes


def _cose_key(ccs: CborItem) -> Mapping[CborItem, CborItem]:
    if not isinstance(ccs, dict):
        raise EdhocError("a CWT Claims Set is a map")
    cnf = ccs.get(8)
    key = cnf.get(1) if isinstance(cnf, dict) else None
    if not isinstance(key, dict):
        raise EdhocError("the CWT Claims Set has no COSE_Key in its cnf claim (8: {1: ...})")
    return key


def ccs_credential(
    ccs: bytes | Mapping[CborItem, CborItem],
    *,
    by_value: bool = False,
    label: str | None = None,
) -> Credential:
    """A credential from a CWT Claims Set (encoded, or a map that is encoded canonically,
    as aiocoap encodes its ``own_cred``/``peer_cred``: ``cbor2.dumps(ccs, canonical=True)``).

    ``by_value``: identify it with ``{14: CCS}`` rather than by its key's kid.
    """
    if isinstance(ccs, Mapping):
        encoded = encode_value(dict(ccs), canonical=True)
    else:
        encoded = bytes(ccs)
    parsed, end = decode_one(encoded)
    if end != len(encoded):
        raise EdhocError("bytes after the CWT Claims Set")
    key = _cose_key(parsed)
    kty, x, y, kid = key.get(1), key.get(-2), key.get(-3), key.get(2)
    if not isinstance(x, bytes) or len(x) != 32:
        raise EdhocError("the COSE_Key has no 32-byte x")
    if kty == 2 and isinstance(y, bytes) and len(y) == 32:
        public = x + y
    elif kty in (1, 2):
        public = x
    else:
        raise EdhocError(f"COSE key type {kty!r} is not one EDHOC uses here (1 OKP, 2 EC2)")
    if kid is not None and not isinstance(kid, bytes):
        raise EdhocError("the COSE_Key's kid is not a byte string")
    if by_value:
        id_cred = b"\xa1\x0e" + encoded
    elif kid is None:
        raise EdhocError("a credential sent by key ID needs a kid in its COSE_Key")
    else:
        id_cred = kid_id_cred(kid)
    return Credential(encoded, id_cred, public, kid, label)


@dataclass(frozen=True, slots=True)
class ReceivedIdCred:
    """ID_CRED_x as received: ``encoded`` is the full map (what the MAC covers);
    ``kid`` is set for ``{4: kid}``, ``ccs`` (the encoded CCS) for ``{14: CCS}``."""

    encoded: bytes
    kid: bytes | None = None
    ccs: bytes | None = None


PeerLookup = Callable[[ReceivedIdCred], Credential | None]


class TrustedPeers:
    """The peers a party accepts: found by kid or by the credential sent by value.

    ``accept_unknown``: a credential sent by value that is not among them is accepted
    as it is (aiocoap's ``{"unauthenticated": true}``): the session then proves only
    that the peer holds that key, not who it is.
    """

    def __init__(self, credentials: Iterable[Credential] = (), *, accept_unknown: bool = False):
        self.credentials = list(credentials)
        self.accept_unknown = accept_unknown

    def __call__(self, id_cred: ReceivedIdCred) -> Credential | None:
        for credential in self.credentials:
            if id_cred.ccs is not None and credential.cred == id_cred.ccs:
                return credential
            if id_cred.kid is not None and id_cred.kid == credential.key_id:
                return credential
            if id_cred.encoded == credential.id_cred:
                return credential
        if self.accept_unknown and id_cred.ccs is not None:
            found = ccs_credential(id_cred.ccs, by_value=True, label=None)
            return Credential(found.cred, id_cred.encoded, found.public_key, found.key_id)
        return None
