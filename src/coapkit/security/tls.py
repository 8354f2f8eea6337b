"""TLS material for CoAP over TLS (``coaps+tcp``, RFC 8323 §9.1): credentials and contexts.

Why a module of its own: the client, the server and the command-line tool
must verify peers the same way, with the same defaults, and fail on bad
material with the same one-line messages.  They describe the material with
a :class:`TlsCredentials` and get an :class:`ssl.SSLContext` from
:func:`server_context` or :func:`client_context`, which the stream
transport takes (``StreamTransport(ssl_context=...)``).

What the contexts do, and the rule behind each choice:

* **TLS 1.2 at least.**  RFC 8323 §9.1 applies the TLS profile of RFC 7925,
  which is TLS 1.2; older versions are refused.  TLS 1.3 is used when both
  sides have it.
* **ALPN ``coap``** is offered by clients and accepted by servers: RFC 8323
  §11.7 registers it for CoAP over TLS.  It is not *required*: a peer that
  offers no ALPN is still served, and a server that selects none is still
  used.  RFC 8323 §11.4 gives coaps+tcp its own port (5684) precisely for
  TLS implementations without ALPN; libcoap 4.3.1 offers and selects
  ``coap`` (tests/interop/test_libcoap_tls.py), other stacks may not.
* **Certificates** (RFC 8323 §9.1's Certificate mode, RFC 7925 §4.4): a
  client always verifies the server's chain, against ``ca`` when given (it
  replaces the system's trust store, as curl's ``--cacert`` does) and
  against the system's trust store otherwise, and checks that the
  certificate names the host it asked for (RFC 6125: the subjectAltName's
  DNS names or IP addresses; the Common Name is not consulted).
  ``insecure`` skips that name check only; the chain is still verified.  A
  server verifies a client certificate against ``ca`` when one is sent
  (``require_client_cert`` makes one mandatory).
* **Pre-shared keys** (RFC 8323 §9.1's PreSharedKey mode) cannot be had
  over TLS here: Python's :mod:`ssl` has no PSK interface before 3.13.  A
  PSK configuration raises :class:`~coapkit.errors.SecurityConfigError`
  saying so; PSK comes with DTLS (``coaps://``).
* **Raw public keys** (RawPublicKey mode) are not offered by :mod:`ssl`.

Unreadable or inconsistent material (a missing file, a key that does not
belong to its certificate, a file without a certificate, a key that needs a
password) raises :class:`~coapkit.errors.SecurityConfigError` with one line
naming the file and the cause, when the context is built; nothing prompts
for a password on the terminal.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from coapkit.errors import SecurityConfigError

ALPN = "coap"
"""The ALPN protocol ID of CoAP over TLS (RFC 8323 §11.7)."""

StrPath = str | os.PathLike[str]

PSK_UNSUPPORTED = (
    "coaps+tcp with a pre-shared key is not supported yet (Python's ssl module has no TLS-PSK "
    "before Python 3.13); use certificates (cert, key, ca) for coaps+tcp; PSK comes with DTLS "
    "(coaps://)"
)


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """The TLS material of one endpoint (all PEM files; see the module doc for the checks).

    Clients: ``ca`` (or the system store), optionally ``cert``/``key`` as a
    client certificate, ``insecure`` to skip the server name check.
    Servers: ``cert``/``key`` (required), ``ca`` to verify client
    certificates, ``require_client_cert`` to refuse clients without one.
    """

    cert: StrPath | None = None
    """Own certificate (PEM; may hold the chain, and the key when ``key`` is not given)."""
    key: StrPath | None = None
    """The private key of ``cert`` (PEM, unencrypted)."""
    ca: StrPath | None = None
    """Trust anchors for the peer: a PEM file of CA certificates, or a directory of them
    (hashed names, as ``openssl rehash`` makes).  A client without it uses the system store."""
    insecure: bool = False
    """Client: do not check that the server's certificate names the host (the chain is
    still verified).  Ignored by servers."""
    require_client_cert: bool = False
    """Server: refuse clients that send no certificate issued under ``ca``."""
    psk_identity: bytes | None = None
    """Pre-shared key identity: not supported over TLS (see :data:`PSK_UNSUPPORTED`)."""
    psk: bytes | None = None
    """Pre-shared key: not supported over TLS (see :data:`PSK_UNSUPPORTED`)."""

    @property
    def uses_psk(self) -> bool:
        return self.psk is not None or self.psk_identity is not None


def psk_key(text: str) -> bytes:
    """A pre-shared key as the command line gives it: text, or hex after ``0x``.

    >>> psk_key("secretkey"), psk_key("0x736563")
    (b'secretkey', b'sec')
    """
    if text[:2].lower() == "0x":
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise SecurityConfigError(
                f"pre-shared key {text!r} starts with 0x but is not hexadecimal"
            ) from None
    return text.encode("utf-8")


def server_context(credentials: TlsCredentials) -> ssl.SSLContext:
    """A context for a ``coaps+tcp`` listener: own certificate and key required; client
    certificates verified against ``ca`` when sent, and required with
    ``require_client_cert``."""
    if credentials.uses_psk:
        raise SecurityConfigError(PSK_UNSUPPORTED)
    if credentials.cert is None:
        raise SecurityConfigError(
            "a coaps+tcp server needs its certificate and key (cert and key; --cert and --key)"
        )
    if credentials.require_client_cert and credentials.ca is None:
        raise SecurityConfigError(
            "requiring client certificates needs the CAs that issue them (ca; --ca)"
        )
    context = _context(ssl.Purpose.CLIENT_AUTH, credentials.ca)
    _common(context, credentials)
    if credentials.ca is not None:
        context.verify_mode = (
            ssl.CERT_REQUIRED if credentials.require_client_cert else ssl.CERT_OPTIONAL
        )
    return context


def client_context(credentials: TlsCredentials | None = None) -> ssl.SSLContext:
    """A context for ``coaps+tcp`` connections: the server's chain verified against ``ca``
    (the system store without it), its name checked unless ``insecure``, a client
    certificate sent when ``cert`` is given."""
    credentials = credentials or TlsCredentials()
    if credentials.uses_psk:
        raise SecurityConfigError(PSK_UNSUPPORTED)
    if credentials.key is not None and credentials.cert is None:
        raise SecurityConfigError("a key without its certificate (key without cert)")
    context = _context(ssl.Purpose.SERVER_AUTH, credentials.ca)
    context.check_hostname = not credentials.insecure
    context.verify_mode = ssl.CERT_REQUIRED
    _common(context, credentials)
    return context


def _common(context: ssl.SSLContext, credentials: TlsCredentials) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN])
    if credentials.cert is not None:
        _load_cert(context, credentials.cert, credentials.key)


def _no_password() -> NoReturn:
    raise _NeedsPassword


class _NeedsPassword(Exception):
    pass


def _load_cert(context: ssl.SSLContext, cert: StrPath, key: StrPath | None) -> None:
    where = f"{os.fspath(cert)!r}" + ("" if key is None else f" with key {os.fspath(key)!r}")
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _NeedsPassword:
        raise SecurityConfigError(
            f"the key of certificate {where} is encrypted: give it unencrypted "
            "(openssl pkey -in KEY -out PLAIN)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            cause = "the key does not belong to the certificate"
        elif not _holds(cert, b"CERTIFICATE-----"):
            cause = f"no PEM certificate in {os.fspath(cert)!r}"
        elif not _holds(cert if key is None else key, b"PRIVATE KEY-----"):
            cause = (
                "no private key in the certificate file (give the key file too)"
                if key is None
                else f"no PEM private key in {os.fspath(key)!r}"
            )
        else:
            cause = _reason(exc)
        raise SecurityConfigError(f"cannot use certificate {where}: {cause}") from None
    except OSError as exc:
        raise SecurityConfigError(
            f"cannot read certificate {where}: {exc.strerror or exc}"
        ) from None


def _context(purpose: ssl.Purpose, ca: StrPath | None) -> ssl.SSLContext:
    """Python's recommended settings, trusting ``ca`` only (the system store without it)."""
    if ca is None:
        return ssl.create_default_context(purpose)
    try:
        if Path(ca).is_dir():
            return ssl.create_default_context(purpose, capath=ca)
        return ssl.create_default_context(purpose, cafile=ca)
    except ssl.SSLError as exc:
        raise SecurityConfigError(
            f"cannot use CA file {os.fspath(ca)!r}: no PEM certificate in it ({_reason(exc)})"
        ) from None
    except OSError as exc:
        raise SecurityConfigError(
            f"cannot read CA file {os.fspath(ca)!r}: {exc.strerror or exc}"
        ) from None


def _holds(path: StrPath, marker: bytes) -> bool:
    """Whether a PEM file has a block ending in ``marker`` (to say which file is wrong)."""
    try:
        return marker in Path(path).read_bytes()
    except OSError:
        return False


def _reason(exc: ssl.SSLError) -> str:
    return (exc.reason or str(exc)).lower().replace("_", " ")
