"""The AEAD algorithms and key derivation functions of an OSCORE security context.

RFC 8613 §3.2 and §5: the AEAD Algorithm (AES-CCM-16-64-128, COSE number 10,
is mandatory; RFC 9053 §4 lists the others) and the HKDF (RFC 5869) with
SHA-256 by default.  The primitives come from ``cryptography``, installed with
``pip install 'coapkit[oscore]'``; without it, :func:`require_crypto` raises
:class:`OscoreUnavailable`, one line that names the extra.

Names are those of aiocoap's context directories (``"algorithm":
"AES-CCM-16-64-128"``, ``"kdf-hashfun": "sha256"``), so that one directory
works with both stacks.  An :class:`Aead` makes its cipher object once per
key (:meth:`Aead.cipher`): a security context keeps the two it needs, rather
than building one per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "AEADS",
    "DEFAULT_AEAD",
    "DEFAULT_HKDF",
    "HKDFS",
    "Aead",
    "Cipher",
    "OscoreUnavailable",
    "hkdf",
    "require_crypto",
]

EXTRA_MESSAGE = "OSCORE needs the oscore extra: pip install 'coapkit[oscore]'"


class OscoreUnavailable(ImportError):
    """``cryptography`` or ``cbor2`` is missing: the message names the extra to install."""

    def __init__(self, detail: str = "") -> None:
        message = EXTRA_MESSAGE + (f" ({detail})" if detail else "")
        super().__init__(message, name="oscore")
        self.extra = "oscore"


class Cipher(Protocol):
    """A keyed AEAD cipher as ``cryptography`` makes them (AESCCM, AESGCM, ChaCha20Poly1305)."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def require_crypto() -> Any:
    """The ``cryptography.hazmat.primitives.ciphers.aead`` module, or OscoreUnavailable."""
    try:
        from cryptography.hazmat.primitives.ciphers import aead
    except ImportError:
        raise OscoreUnavailable("cryptography is not installed") from None
    return aead


@dataclass(frozen=True, slots=True)
class Aead:
    """One COSE AEAD algorithm (RFC 9053 §4): its number, key, nonce and tag lengths."""

    name: str
    number: int
    key_length: int
    nonce_length: int
    tag_length: int
    family: str  # "ccm", "gcm" or "chacha"

    @property
    def max_id_length(self) -> int:
        """The longest Sender or Recipient ID this algorithm allows (RFC 8613 §3.3)."""
        return self.nonce_length - 6

    def cipher(self, key: bytes) -> Cipher:
        """A cipher object for ``key``: made once, used for every message."""
        aead = require_crypto()
        if len(key) != self.key_length:
            raise ValueError(f"{self.name} takes a {self.key_length}-byte key, not {len(key)}")
        if self.family == "ccm":
            cipher: Cipher = aead.AESCCM(key, tag_length=self.tag_length)
        elif self.family == "gcm":
            cipher = aead.AESGCM(key)
        else:
            cipher = aead.ChaCha20Poly1305(key)
        return cipher


def _aeads() -> dict[str, Aead]:
    table = [
        # (name, COSE number, key, nonce, tag, family); RFC 9053 §4.2 for CCM
        ("AES-CCM-16-64-128", 10, 16, 13, 8, "ccm"),
        ("AES-CCM-16-64-256", 11, 32, 13, 8, "ccm"),
        ("AES-CCM-64-64-128", 12, 16, 7, 8, "ccm"),
        ("AES-CCM-64-64-256", 13, 32, 7, 8, "ccm"),
        ("AES-CCM-16-128-128", 30, 16, 13, 16, "ccm"),
        ("AES-CCM-16-128-256", 31, 32, 13, 16, "ccm"),
        ("AES-CCM-64-128-128", 32, 16, 7, 16, "ccm"),
        ("AES-CCM-64-128-256", 33, 32, 7, 16, "ccm"),
        ("A128GCM", 1, 16, 12, 16, "gcm"),
        ("A192GCM", 2, 24, 12, 16, "gcm"),
        ("A256GCM", 3, 32, 12, 16, "gcm"),
        ("ChaCha20/Poly1305", 24, 32, 12, 16, "chacha"),
    ]
    return {row[0]: Aead(*row) for row in table}


#: the AEAD algorithms by the name a context directory gives them
AEADS: dict[str, Aead] = _aeads()
#: by COSE algorithm number
AEADS_BY_NUMBER: dict[int, Aead] = {aead.number: aead for aead in AEADS.values()}
DEFAULT_AEAD = AEADS["AES-CCM-16-64-128"]


def _hash(name: str) -> Callable[[], Any]:
    def make() -> Any:
        require_crypto()
        from cryptography.hazmat.primitives import hashes

        return getattr(hashes, name)()

    return make


#: the HKDF hash functions by their name in a context directory ("kdf-hashfun")
HKDFS: dict[str, Callable[[], Any]] = {
    "sha256": _hash("SHA256"),
    "sha384": _hash("SHA384"),
    "sha512": _hash("SHA512"),
}
DEFAULT_HKDF = "sha256"


def hkdf(hash_name: str, salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Extract then HKDF-Expand (RFC 5869) with the named hash function."""
    require_crypto()
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    # An empty salt is the hash length of zeros (RFC 5869 §2.2): HMAC pads either way.
    return HKDF(algorithm=HKDFS[hash_name](), length=length, salt=salt, info=info).derive(ikm)
