"""A small public-key infrastructure for the TLS tests, generated with ``cryptography``.

The tests need certificates that fail in each way a user meets (not issued
by the trusted CA, issued for another name, expired) next to ones that pass,
and libcoap must accept them too; checking them in would mean keys in the
repository that expire one day.  :func:`make_pki` writes them into a
directory (a test's ``tmp_path``) in PEM, as ``--cert``/``--key``/``--ca``
and libcoap's ``-c``/``-j``/``-C`` take them.

Keys are ECDSA P-256 (fast to make, accepted by OpenSSL and libcoap); the
certificates carry what OpenSSL's strict verification asks for (basic
constraints, key usage, subject and authority key identifiers), so they
also pass Python 3.13's ``VERIFY_X509_STRICT`` default.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class Pki:
    """Everything :func:`make_pki` writes.

    ``ca`` issued ``server``, ``client``, ``client2`` and ``expired``;
    ``other_ca`` issued ``stranger`` (a server certificate for the same
    names that nobody trusting ``ca`` accepts).
    """

    ca: Path
    other_ca: Path
    server: Pair  #: 127.0.0.1, ::1 and localhost, for servers
    wrong_name: Pair  #: a server certificate for ``other.example`` only
    expired: Pair  #: a server certificate for 127.0.0.1 and localhost that expired yesterday
    stranger: Pair  #: a server certificate for 127.0.0.1 and localhost from ``other_ca``
    client: Pair  #: CN=client1, for clients
    client2: Pair  #: CN=client2, for clients
    stranger_client: Pair  #: CN=mallory, a client certificate from ``other_ca``


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "coapkit tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(key: PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(certificate: x509.Certificate, path: Path) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _make_ca(directory: Path, stem: str, common_name: str) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_cert(certificate, directory / f"{stem}.pem")
    _write_key(key, directory / f"{stem}-key.pem")
    return certificate, key


def _issue(
    directory: Path,
    stem: str,
    issuer: tuple[x509.Certificate, PrivateKey],
    common_name: str,
    *,
    names: tuple[str, ...] = (),
    client: bool = False,
    expired: bool = False,
) -> Pair:
    issuer_certificate, issuer_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if names:
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}-key.pem", certificate)
    _write_cert(certificate, pair.cert)
    _write_key(key, pair.key)
    return pair


LOCAL_NAMES = ("127.0.0.1", "::1", "localhost")


def make_pki(directory: Path) -> Pki:
    """Write a CA, the certificates the tests use and their keys into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory, "ca", "coapkit test CA")
    other = _make_ca(directory, "other-ca", "another CA")
    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        server=_issue(directory, "server", ca, "localhost", names=LOCAL_NAMES),
        wrong_name=_issue(directory, "wrong-name", ca, "other.example", names=("other.example",)),
        expired=_issue(directory, "expired", ca, "localhost", names=LOCAL_NAMES, expired=True),
        stranger=_issue(directory, "stranger", other, "localhost", names=LOCAL_NAMES),
        client=_issue(directory, "client", ca, "client1", client=True),
        client2=_issue(directory, "client2", ca, "client2", client=True),
        stranger_client=_issue(directory, "mallory", other, "mallory", client=True),
    )
