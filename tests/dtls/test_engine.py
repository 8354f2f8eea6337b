"""The pyOpenSSL engine: what it needs from cryptography's bindings (a loud failure naming
the function if a release drops one), the mandatory cipher suites, certificates and the
errors a person reads, the path MTU."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coapkit.dtls import SessionEnded
from coapkit.errors import DtlsError, SecurityConfigError
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.transports import DTLS_BINDINGS, MissingExtra, require_dtls
from tests.dtls.conftest import require_pyopenssl
from tests.dtls.helpers import CLIENT, SERVER, Pair, client_endpoint, server_endpoint

if TYPE_CHECKING:
    from tests.security.certs import Pki

ENGINE = Path(__file__).resolve().parents[2] / "src" / "coapkit" / "security" / "openssl_dtls.py"


@pytest.fixture(autouse=True)
def dtls_available() -> None:
    require_pyopenssl()


def functions_called_on_the_bindings() -> set[str]:
    tree = ast.parse(ENGINE.read_text())
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("_lib", "lib")
    }


def test_cryptography_binds_every_function_the_engine_calls() -> None:
    """pyOpenSSL has no PSK API: the engine calls the PSK callbacks (and a few more) through
    cryptography's OpenSSL bindings.  If a cryptography release drops one, this fails
    naming it (and ``require_dtls`` refuses to start, naming it too)."""
    from cryptography import __version__
    from cryptography.hazmat.bindings.openssl.binding import Binding

    called = functions_called_on_the_bindings()
    assert "SSL_CTX_set_psk_server_callback" in called
    assert called <= set(DTLS_BINDINGS), called - set(DTLS_BINDINGS)
    missing = [name for name in DTLS_BINDINGS if not hasattr(Binding.lib, name)]
    assert not missing, f"cryptography {__version__} does not bind {', '.join(missing)}"
    require_dtls()


def test_pyopenssl_still_has_the_handles_the_engine_reads() -> None:
    """The engine calls OpenSSL on every datagram through pyOpenSSL's own handles of a
    connection (private attributes): a pyOpenSSL release that renames one fails here."""
    from OpenSSL import SSL

    context = SSL.Context(SSL.DTLS_METHOD)
    connection = SSL.Connection(context)
    for name in ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error"):
        assert hasattr(connection, name), f"pyOpenSSL's Connection has no {name} any more"
    assert hasattr(context, "_context"), "pyOpenSSL's Context has no _context any more"


def test_require_dtls_names_the_missing_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.bindings.openssl.binding import Binding

    class Without:
        def __getattr__(self, name: str) -> object:
            if name == "SSL_CTX_set_psk_client_callback":
                raise AttributeError(name)
            return getattr(real, name)

    real = Binding.lib
    monkeypatch.setattr(Binding, "lib", Without())
    with pytest.raises(MissingExtra, match=r"coapkit\[dtls\].*SSL_CTX_set_psk_client_callback"):
        require_dtls()


def test_pyopenssl_has_no_psk_api_of_its_own() -> None:
    """Should pyOpenSSL gain one, the engine should use it (and this test says so)."""
    from OpenSSL import SSL

    psk = [name for name in dir(SSL.Context) if "psk" in name.lower()]
    assert psk == [], f"pyOpenSSL now offers {psk}: use it instead of the raw bindings"


def test_the_mandatory_psk_suite_ccm_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS_PSK_WITH_AES_128_CCM_8 (RFC 7252 §9.1.3.1), with OpenSSL's @SECLEVEL=0."""
    from coapkit.security import openssl_dtls

    monkeypatch.setattr(openssl_dtls, "PSK_SUITES", ("PSK-AES128-CCM8",))
    pair = Pair(client=client_endpoint())
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    assert pair.server.endpoint.security.identity(CLIENT).cipher == "PSK-AES128-CCM8"


def test_the_mandatory_certificate_suite_ccm_8(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 7252 §9.1.3.3)."""
    from coapkit.security import openssl_dtls
    from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials

    monkeypatch.setattr(openssl_dtls, "CERTIFICATE_SUITES", ("ECDHE-ECDSA-AES128-CCM8",))
    server = server_endpoint(DtlsServerCredentials(cert=pki.server.cert, key=pki.server.key))
    pair = Pair(server=server, client=client_endpoint(DtlsCredentials(ca=pki.ca)))
    assert isinstance(pair.outcome(pair.get(server_name="127.0.0.1")), ResponseEvent)
    assert pair.client.endpoint.security.identity(SERVER).cipher == "ECDHE-ECDSA-AES128-CCM8"


def test_gcm_is_preferred_when_both_sides_have_it() -> None:
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    assert pair.server.endpoint.security.identity(CLIENT).cipher == "PSK-AES128-GCM-SHA256"


def certificate_pair(pki: Pki, client_credentials: object, **server: object) -> Pair:
    from coapkit.security.dtls import DtlsServerCredentials

    options = {"cert": pki.server.cert, "key": pki.server.key, **server}
    return Pair(
        server=server_endpoint(DtlsServerCredentials(**options)),  # type: ignore[arg-type]
        client=client_endpoint(client_credentials),
    )


def test_a_client_certificate_is_the_request_s_identity(pki: Pki) -> None:
    from coapkit.security.dtls import DtlsCredentials

    credentials = DtlsCredentials(ca=pki.ca, cert=pki.client.cert, key=pki.client.key)
    pair = certificate_pair(pki, credentials, ca=pki.ca, require_client_cert=True)
    event = pair.outcome(pair.get(server_name="localhost"))
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello client1"
    identity = pair.server.endpoint.security.identity(CLIENT)
    assert identity.common_name == "client1" and identity.psk_identity is None
    assert ("organizationName", "coapkit tests") in identity.subject
    assert identity.certificate is not None and len(identity.sha256 or "") == 64
    server_seen = pair.client.endpoint.security.identity(SERVER)
    assert ("IP Address", "127.0.0.1") in server_seen.alt_names
    assert ("DNS", "localhost") in server_seen.alt_names


def test_an_anonymous_client_of_a_certificate_server(pki: Pki) -> None:
    from coapkit.security.dtls import DtlsCredentials

    pair = certificate_pair(pki, DtlsCredentials(ca=pki.ca))
    event = pair.outcome(pair.get(server_name="127.0.0.1"))
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello anonymous"
    identity = pair.server.endpoint.security.identity(CLIENT)
    assert not identity.authenticated and str(identity) == "no client authentication"


@pytest.mark.parametrize(
    ("case", "cause", "client_says", "server_says"),
    [
        (
            "wrong name",
            "bad_certificate",
            "certificate verify failed: hostname mismatch (the server's certificate is for "
            "another name)",
            None,
        ),
        (
            "untrusted",
            "bad_certificate",
            "certificate verify failed: unable to get local issuer certificate (the server's "
            "certificate is not issued by a trusted CA)",
            None,
        ),
        (
            "expired",
            "bad_certificate",
            "certificate verify failed: certificate has expired (the server's certificate)",
            None,
        ),
        (
            "no client certificate",
            "handshake_failure",
            "the server refused the handshake (it may require a client certificate)",
            "the client sent no certificate (one is required)",
        ),
        (
            "foreign client certificate",
            "certificate_refused",
            "the server refused us: it does not trust the CA that issued our certificate",
            "certificate verify failed: unable to get local issuer certificate (the client's "
            "certificate is not issued by a trusted CA)",
        ),
        (
            "psk against certificates",
            "handshake_failure",
            "the server refused the handshake (no cipher suite in common, or a certificate "
            "or key it needs)",
            "no cipher suite in common with the client",
        ),
    ],
)
def test_certificate_failures_read_as_their_cause(
    pki: Pki, case: str, cause: str, client_says: str, server_says: str | None
) -> None:
    from coapkit.security.dtls import DtlsCredentials

    name = "127.0.0.1"
    server: dict[str, object] = {}
    credentials = DtlsCredentials(ca=pki.ca)
    if case == "wrong name":
        name = "other.example"
    elif case == "untrusted":
        credentials = DtlsCredentials(ca=pki.other_ca)
    elif case == "expired":
        server = {"cert": pki.expired.cert, "key": pki.expired.key}
    elif case == "no client certificate":
        server = {"ca": pki.ca, "require_client_cert": True}
    elif case == "foreign client certificate":
        server = {"ca": pki.ca, "require_client_cert": True}
        stranger = pki.stranger_client
        credentials = DtlsCredentials(ca=pki.ca, cert=stranger.cert, key=stranger.key)
    elif case == "psk against certificates":
        credentials = DtlsCredentials(psk_identity=b"dev1", psk=b"secretkey")
    pair = certificate_pair(pki, credentials, **server)
    event = pair.outcome(pair.get(server_name=name))
    assert isinstance(event, RequestFailed) and isinstance(event.error, DtlsError)
    assert str(event.error) == f"DTLS handshake failed: {client_says}"
    assert event.error.cause == cause
    ended = [e for _, e in pair.server.events if isinstance(e, SessionEnded)]
    if server_says is None:
        assert not ended or not ended[0].established
    else:
        assert [str(e.error) for e in ended] == [f"DTLS handshake failed: {server_says}"]


def test_unusable_material_is_one_line_at_start(pki: Pki, tmp_path: Path) -> None:
    from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials
    from coapkit.security.openssl_dtls import OpenSslClientEngine, OpenSslServerEngine

    with pytest.raises(SecurityConfigError, match="needs a pre-shared key"):
        DtlsServerCredentials()
    with pytest.raises(SecurityConfigError, match="both its identity and its key"):
        DtlsCredentials(psk=b"k")
    with pytest.raises(SecurityConfigError, match="does not belong to the certificate"):
        OpenSslServerEngine(DtlsServerCredentials(cert=pki.server.cert, key=pki.client.key))
    with pytest.raises(SecurityConfigError, match="cannot read CA file"):
        OpenSslClientEngine().context(DtlsCredentials(ca=tmp_path / "missing.pem"))
    encrypted = tmp_path / "encrypted.pem"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(SecurityConfigError, match="is encrypted: give it unencrypted"):
        OpenSslServerEngine(DtlsServerCredentials(cert=pki.server.cert, key=encrypted))


def test_handshake_flights_fit_the_mtu(pki: Pki) -> None:
    """set_ciphertext_mtu: the certificate flight is fragmented to fit 300 bytes."""
    from coapkit.dtls import DtlsConfig
    from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials
    from coapkit.security.openssl_dtls import OpenSslServerEngine

    credentials = DtlsServerCredentials(cert=pki.server.cert, key=pki.server.key)
    server = server_endpoint(credentials, config=DtlsConfig(mtu=300))
    assert isinstance(server.security._server, OpenSslServerEngine)
    server.security._server.mtu = 300
    pair = Pair(server=server, client=client_endpoint(DtlsCredentials(ca=pki.ca)))
    assert isinstance(pair.outcome(pair.get(server_name="127.0.0.1")), ResponseEvent)
    sizes = [len(entry.data) for entry in pair.sent(SERVER, CLIENT)]
    assert max(sizes) <= 300 and len(sizes) > 5
