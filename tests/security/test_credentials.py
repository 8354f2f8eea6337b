"""coapkit.security.tls: the contexts it builds, and the one line for material it cannot use."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coapkit.errors import CoapError, SecurityConfigError
from coapkit.security.tls import TlsCredentials, client_context, psk_key, server_context

if TYPE_CHECKING:
    from tests.security.certs import Pki


def test_server_context_defaults(pki: Pki) -> None:
    context = server_context(TlsCredentials(cert=pki.server.cert, key=pki.server.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no ca: no client certificate asked for
    optional = server_context(TlsCredentials(cert=pki.server.cert, key=pki.server.key, ca=pki.ca))
    assert optional.verify_mode == ssl.CERT_OPTIONAL
    required = server_context(
        TlsCredentials(
            cert=pki.server.cert, key=pki.server.key, ca=pki.ca, require_client_cert=True
        )
    )
    assert required.verify_mode == ssl.CERT_REQUIRED


def test_client_context_defaults(pki: Pki) -> None:
    context = client_context(TlsCredentials(ca=pki.ca))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "coapkit tests"),), (("commonName", "coapkit test CA"),))
    ]  # the given trust anchors replace the system's
    insecure = client_context(TlsCredentials(ca=pki.ca, insecure=True))
    assert insecure.verify_mode == ssl.CERT_REQUIRED and not insecure.check_hostname
    system = client_context()
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname


def test_a_directory_of_trust_anchors(pki: Pki, tmp_path: Path) -> None:
    # hashed names, as `openssl rehash` makes them
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / f"{subject_hash}.0").write_bytes(pki.ca.read_bytes())
    context = client_context(TlsCredentials(ca=tmp_path))
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_a_combined_certificate_and_key_file(pki: Pki, tmp_path: Path) -> None:
    combined = tmp_path / "both.pem"
    combined.write_bytes(pki.server.cert.read_bytes() + pki.server.key.read_bytes())
    server_context(TlsCredentials(cert=combined))


def test_psk_over_tls_is_refused_in_one_line(pki: Pki) -> None:
    psk = TlsCredentials(psk_identity=b"dev1", psk=b"secretkey")
    for build in (client_context, server_context):
        with pytest.raises(SecurityConfigError) as failure:
            build(psk)
        message = str(failure.value)
        assert message.startswith("coaps+tcp with a pre-shared key is not supported yet")
        assert "PSK comes with DTLS (coaps://)" in message and "\n" not in message


def test_psk_key_is_text_or_hex() -> None:
    assert psk_key("secretkey") == b"secretkey"
    assert psk_key("0x73656372") == b"secr"
    assert psk_key("0X00ff") == b"\x00\xff"
    assert psk_key("é") == "é".encode()
    with pytest.raises(SecurityConfigError, match="starts with 0x but is not hexadecimal"):
        psk_key("0xzz")


def unusable(pki: Pki, tmp_path: Path) -> list[tuple[str, TlsCredentials, str, str]]:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    encrypted = tmp_path / "encrypted-key.pem"
    subprocess.run(
        [
            *("openssl", "pkey", "-in", str(pki.server.key), "-aes256", "-passout", "pass:x"),
            *("-out", str(encrypted)),
        ],
        check=True,
    )
    server, client = pki.server, pki.client
    return [
        (
            "server",
            TlsCredentials(),
            "",
            "a coaps+tcp server needs its certificate and key (cert and key; --cert and --key)",
        ),
        (
            "server",
            TlsCredentials(cert=server.cert, key=server.key, require_client_cert=True),
            "",
            "requiring client certificates needs the CAs that issue them (ca; --ca)",
        ),
        (
            "server",
            TlsCredentials(cert=tmp_path / "missing.pem", key=server.key),
            f"cannot read certificate '{tmp_path}/missing.pem' with key '{server.key}'",
            "No such file or directory",
        ),
        (
            "server",
            TlsCredentials(cert=server.cert, key=client.key),
            f"cannot use certificate '{server.cert}' with key '{client.key}'",
            "the key does not belong to the certificate",
        ),
        (
            "server",
            TlsCredentials(cert=server.cert),
            f"cannot use certificate '{server.cert}'",
            "no private key in the certificate file (give the key file too)",
        ),
        (
            "server",
            TlsCredentials(cert=not_pem, key=server.key),
            f"cannot use certificate '{not_pem}' with key '{server.key}'",
            f"no PEM certificate in '{not_pem}'",
        ),
        (
            "client",
            TlsCredentials(cert=client.cert, key=not_pem),
            f"cannot use certificate '{client.cert}' with key '{not_pem}'",
            f"no PEM private key in '{not_pem}'",
        ),
        (
            "server",
            TlsCredentials(cert=server.cert, key=encrypted),
            f"the key of certificate '{server.cert}' with key '{encrypted}' is encrypted",
            "give it unencrypted (openssl pkey -in KEY -out PLAIN)",
        ),
        (
            "client",
            TlsCredentials(ca=tmp_path / "missing-ca.pem"),
            f"cannot read CA file '{tmp_path}/missing-ca.pem'",
            "No such file or directory",
        ),
        (
            "client",
            TlsCredentials(ca=not_pem),
            f"cannot use CA file '{not_pem}'",
            "no PEM certificate in it (no certificate or crl found)",
        ),
        ("client", TlsCredentials(key=client.key), "", "a key without its certificate"),
    ]


def test_unusable_material_fails_in_one_line_naming_the_file(pki: Pki, tmp_path: Path) -> None:
    for side, credentials, where, cause in unusable(pki, tmp_path):
        build = server_context if side == "server" else client_context
        with pytest.raises(SecurityConfigError) as failure:
            build(credentials)
        message = str(failure.value)
        assert message.startswith(where) and message.endswith(cause) if where else cause in message
        assert "\n" not in message
        assert isinstance(failure.value, CoapError) and isinstance(failure.value, ValueError)
