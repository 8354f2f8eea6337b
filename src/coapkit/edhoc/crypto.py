"""EDHOC's cipher suites and the primitives behind them, from ``cryptography``.

RFC 9528 §3.6 and §10.2: a cipher suite names an EDHOC AEAD, an EDHOC hash, a
MAC length, an ECDH curve and a signature algorithm (and the application AEAD
and hash, for OSCORE).  coapkit supports suites 0 to 3, the ones with
SHA-256:

===== ================== ===== ======= =======
suite EDHOC AEAD         MAC   curve   signing
===== ================== ===== ======= =======
0     AES-CCM-16-64-128  8     X25519  EdDSA
1     AES-CCM-16-128-128 16    X25519  EdDSA
2     AES-CCM-16-64-128  8     P-256   ES256
3     AES-CCM-16-128-128 16    P-256   ES256
===== ================== ===== ======= =======

Keys are raw bytes throughout: a private key is the 32-byte scalar (P-256
``d``, an X25519 key, an Ed25519 seed); a public key is what travels, 32
bytes (X25519, Ed25519, or the x-coordinate of a P-256 point: §3.7, the
"compact representation" of RFC 6090, in which the y-coordinate does not
matter to ECDH).  A P-256 public key for ES256 verification needs its y too:
64 bytes, x then y.  Every failure of a peer's key or signature is an
:class:`~coapkit.edhoc.errors.EdhocError`.

Ephemeral keys come from ``cryptography``'s key generation, the operating
system's CSPRNG (§9.1: each session's ephemeral key is fresh, so each
session's keys are new).  :func:`generate_private` is the only place a
secret is drawn; the session classes take an ephemeral key as a parameter
too, the seam through which the tests play RFC 9529's traces.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from coapkit.edhoc.errors import EdhocError
from coapkit.oscore.algorithms import OscoreUnavailable

__all__ = [
    "SUITES",
    "CipherSuite",
    "aead_decrypt",
    "aead_encrypt",
    "ecdh",
    "generate_private",
    "hash_sha256",
    "hkdf_expand",
    "hkdf_extract",
    "public_of",
    "sign",
    "verify",
]


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One EDHOC cipher suite (RFC 9528 §3.6)."""

    number: int
    tag_length: int  #: of the EDHOC AEAD (AES-CCM-16-64-128: 8, AES-CCM-16-128-128: 16)
    mac_length: int  #: of MAC_2 and MAC_3 when the party authenticates with static DH
    curve: str  #: "x25519" or "p256"
    signature: str  #: "eddsa" or "es256"
    key_length: int = 16
    iv_length: int = 13
    hash_length: int = 32
    #: what OSCORE uses afterwards (RFC 9528 Appendix A.1): the application AEAD and hash
    app_aead: str = "AES-CCM-16-64-128"
    app_hash: str = "sha256"


SUITES: dict[int, CipherSuite] = {
    0: CipherSuite(0, 8, 8, "x25519", "eddsa"),
    1: CipherSuite(1, 16, 16, "x25519", "eddsa"),
    2: CipherSuite(2, 8, 8, "p256", "es256"),
    3: CipherSuite(3, 16, 16, "p256", "es256"),
}


def _require() -> Any:
    try:
        from cryptography.hazmat.primitives import asymmetric
    except ImportError:
        raise OscoreUnavailable("cryptography is not installed (EDHOC needs it)") from None
    return asymmetric


def hash_sha256(data: bytes) -> bytes:
    """H() of every suite coapkit supports (§4.1.1)."""
    return hashlib.sha256(data).digest()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869 §2.2; EDHOC_Extract, RFC 9528 §4.1.1)."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with SHA-256 (RFC 5869 §2.3), written out: the blocks are few."""
    if length > 255 * 32:
        raise EdhocError("EDHOC_KDF: output too long")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def generate_private(curve: str) -> bytes:
    """A fresh private key on ``curve`` (the OS CSPRNG, through ``cryptography``)."""
    _require()
    if curve == "x25519":
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return X25519PrivateKey.generate().private_bytes_raw()
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_numbers().private_value.to_bytes(32, "big")


def _p256_private(private: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    value = int.from_bytes(private, "big")
    try:
        return ec.derive_private_key(value, ec.SECP256R1())
    except ValueError:
        raise EdhocError("not a P-256 private key") from None


def public_of(curve: str, private: bytes, *, full: bool = False) -> bytes:
    """The public key of ``private``: 32 bytes (P-256: x; with ``full``, x then y)."""
    _require()
    if len(private) != 32:
        raise EdhocError("a private key is 32 bytes")
    if curve == "x25519":
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    if curve == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    numbers = _p256_private(private).public_key().public_numbers()
    x = int(numbers.x).to_bytes(32, "big")
    return x + int(numbers.y).to_bytes(32, "big") if full else x


def ecdh(curve: str, private: bytes, public: bytes) -> bytes:
    """The ECDH shared secret (§5.2: the x-coordinate for P-256, as RFC 6090 gives it)."""
    _require()
    if curve == "x25519":
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey,
            X25519PublicKey,
        )

        if len(public) != 32:
            raise EdhocError("an X25519 public key is 32 bytes")
        try:
            return X25519PrivateKey.from_private_bytes(private).exchange(
                X25519PublicKey.from_public_bytes(public)
            )
        except ValueError:
            # an all-zero result: a small-order point (RFC 7748 §6.1, RFC 9528 §9.2)
            raise EdhocError("X25519: the peer's public key is of small order") from None
    from cryptography.hazmat.primitives.asymmetric import ec

    if len(public) == 64:
        public = public[:32]
    if len(public) != 32:
        raise EdhocError("a P-256 public key is a 32-byte x-coordinate")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x02" + public)
    except ValueError:
        raise EdhocError("P-256: the peer's public key is not on the curve") from None
    return bytes(_p256_private(private).exchange(ec.ECDH(), peer))


def sign(algorithm: str, private: bytes, data: bytes) -> bytes:
    """A COSE signature (RFC 9053 §2): EdDSA's 64 bytes, or ES256's r and s, 32 bytes each."""
    _require()
    if algorithm == "eddsa":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(private).sign(data)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    der = _p256_private(private).sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(algorithm: str, public: bytes, signature: bytes, data: bytes) -> None:
    """Check a COSE signature; EdhocError when it does not verify."""
    _require()
    from cryptography.exceptions import InvalidSignature

    if len(signature) != 64:
        raise EdhocError("the signature is not 64 bytes")
    try:
        if algorithm == "eddsa":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
            return
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        if len(public) != 64:
            raise EdhocError("ES256 needs the peer's P-256 key with x and y")
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public)
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise EdhocError("the signature does not verify") from None


def aead_encrypt(suite: CipherSuite, key: bytes, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """The EDHOC AEAD (AES-CCM with the suite's tag length)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    return AESCCM(key, tag_length=suite.tag_length).encrypt(iv, plaintext, aad)


def aead_decrypt(suite: CipherSuite, key: bytes, iv: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext, or EdhocError when the ciphertext does not verify."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    if len(ciphertext) < suite.tag_length:
        raise EdhocError("the ciphertext is shorter than its tag")
    try:
        return AESCCM(key, tag_length=suite.tag_length).decrypt(iv, ciphertext, aad)
    except InvalidTag:
        raise EdhocError("the ciphertext does not verify") from None
