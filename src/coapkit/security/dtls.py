"""DTLS material for ``coaps://`` (RFC 7252 §9): what a client and a server are given.

RFC 7252 §9 names three security modes; coapkit offers two of them:

* **PreSharedKey** (§9.1.3.1): a client has one identity and key per server
  (or URI pattern); a server has a table of identities and their keys, and
  may send an identity hint.  The mandatory suite is
  TLS_PSK_WITH_AES_128_CCM_8; the AES-GCM suites most OpenSSL peers prefer
  come first.
* **Certificate** (§9.1.3.3): the server's X.509 certificate is verified
  against ``ca`` (the system's trust store without it) and its name checked
  against the URI's host (``insecure`` skips the name check only).  A
  server verifies client certificates against its ``ca`` when one is
  sent, and requires one with ``require_client_cert``.  The mandatory suite
  is TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; ECDHE with AES-GCM, ECDSA or RSA,
  comes first.

RawPublicKey (§9.1.3.2) and connection IDs (RFC 9146) are not offered.

These are plain values: reading files and checking the material happens when a
client or server starts (:mod:`coapkit.security.openssl_dtls`, the ``dtls``
extra), with one-line :class:`~coapkit.errors.SecurityConfigError` messages
naming the file and the cause.  A client takes one :class:`DtlsCredentials`
for every ``coaps://`` URI, or a mapping from URI patterns to them
(:func:`credentials_for`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from coapkit.errors import SecurityConfigError

StrPath = str | os.PathLike[str]


def _key_bytes(value: bytes | str | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class DtlsCredentials:
    """A client's DTLS material for a server.

    ``psk_identity`` and ``psk`` (bytes; a ``str`` is taken as UTF-8) for the
    PreSharedKey mode; ``ca`` (a PEM file or a directory of them; the system
    store without it), ``cert`` and ``key`` (a client certificate) and
    ``insecure`` (no name check) for the Certificate mode.  With a PSK and no
    certificate material, only PSK suites are offered.
    """

    psk_identity: bytes | None = None
    psk: bytes | None = None
    cert: StrPath | None = None
    key: StrPath | None = None
    ca: StrPath | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "psk_identity", _key_bytes(self.psk_identity, "psk_identity"))
        object.__setattr__(self, "psk", _key_bytes(self.psk, "psk"))
        if (self.psk is None) != (self.psk_identity is None):
            raise SecurityConfigError(
                "a pre-shared key needs both its identity and its key (psk_identity and psk; "
                "--psk-identity and --psk)"
            )
        if self.psk is not None and not self.psk:
            raise SecurityConfigError("the pre-shared key is empty")
        if self.key is not None and self.cert is None:
            raise SecurityConfigError("a key without its certificate (key without cert)")

    @property
    def uses_psk(self) -> bool:
        return self.psk is not None

    @property
    def uses_certificates(self) -> bool:
        """Whether certificate suites are offered: always, unless only a PSK is given."""
        return not self.uses_psk or self.ca is not None or self.cert is not None


@dataclass(frozen=True, slots=True)
class DtlsServerCredentials:
    """A server's DTLS material.

    ``psk``: identities and their keys (bytes; ``str`` taken as UTF-8), any
    number; ``psk_hint``: the identity hint sent to clients (none by default).
    ``cert`` and ``key``: the server's certificate (and chain) and key; ``ca``:
    trust anchors for client certificates, verified when sent;
    ``require_client_cert``: refuse clients without one.  At least a PSK or a
    certificate; both may be given (clients choose).
    """

    psk: Mapping[bytes, bytes] | None = None
    psk_hint: bytes | None = None
    cert: StrPath | None = None
    key: StrPath | None = None
    ca: StrPath | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        if self.psk is not None:
            table: dict[bytes, bytes] = {}
            for identity, key in self.psk.items():
                name = _key_bytes(identity, "a PSK identity")
                value = _key_bytes(key, "a pre-shared key")
                assert name is not None and value is not None
                if not value:
                    raise SecurityConfigError(f"the pre-shared key of identity {name!r} is empty")
                table[name] = value
            object.__setattr__(self, "psk", _Keys(table))
        object.__setattr__(self, "psk_hint", _key_bytes(self.psk_hint, "psk_hint"))
        if not self.psk and self.cert is None:
            raise SecurityConfigError(
                "a coaps:// server needs a pre-shared key (psk; --psk-identity and --psk) or a "
                "certificate and key (cert and key; --cert and --key)"
            )
        if self.key is not None and self.cert is None:
            raise SecurityConfigError("a key without its certificate (key without cert)")
        if self.require_client_cert and self.ca is None:
            raise SecurityConfigError(
                "requiring client certificates needs the CAs that issue them (ca; --ca)"
            )

    @property
    def uses_certificates(self) -> bool:
        return self.cert is not None


class _Keys(dict[bytes, bytes]):
    """A server's PSK table, hashable by identity so that the credentials value is."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:  # never the keys
        return f"<{len(self)} PSK identities: {', '.join(repr(name) for name in self)}>"


#: what ``Client(dtls=...)`` takes: one set of credentials for every ``coaps://`` URI, or
#: URI patterns mapped to them
ClientDtls: TypeAlias = DtlsCredentials | Mapping[str, DtlsCredentials]


def credentials_for(dtls: ClientDtls | None, uri: str) -> DtlsCredentials | None:
    """The credentials for ``uri`` (a ``coaps://`` URI): ``dtls`` itself, or the entry of
    the mapping whose pattern matches it.  A pattern is a URI, matched exactly, or a URI
    prefix ending in ``*`` (``coaps://[::1]/*``, ``coaps://*``); the exact match wins,
    then the longest prefix.  None when nothing matches.

    >>> table = {"coaps://sensor.example/*": DtlsCredentials(psk_identity=b"a", psk=b"k")}
    >>> credentials_for(table, "coaps://sensor.example/temp").psk_identity
    b'a'
    >>> credentials_for(table, "coaps://other.example/temp") is None
    True
    """
    if dtls is None or isinstance(dtls, DtlsCredentials):
        return dtls
    exact = dtls.get(uri)
    if exact is not None:
        return exact
    best: tuple[int, DtlsCredentials] | None = None
    for pattern, credentials in dtls.items():
        if pattern.endswith("*") and uri.startswith(pattern[:-1]):
            if best is None or len(pattern) > best[0]:
                best = (len(pattern), credentials)
    return None if best is None else best[1]
