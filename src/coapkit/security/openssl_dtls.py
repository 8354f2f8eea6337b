"""The DTLS engine on pyOpenSSL (the ``dtls`` extra): DTLS 1.2 over memory BIOs, sans I/O.

It implements :mod:`coapkit.dtls.engine` for :class:`coapkit.dtls.DtlsLayer`:
each session is a pyOpenSSL ``Connection`` without a socket; ciphertext goes
in with ``bio_write`` and comes out with ``bio_read``, cut back into records
and packed into datagrams of at most the MTU.

What comes from where:

* pyOpenSSL (>= 26) gives DTLS contexts, memory BIOs, ``DTLSv1_listen``
  with cookie callbacks, ``DTLSv1_get_timeout``/``DTLSv1_handle_timeout``,
  ``set_ciphertext_mtu``, sessions for resumption.  It has no PSK API.
* The PSK callbacks (``SSL_CTX_set_psk_server_callback``,
  ``SSL_CTX_set_psk_client_callback``, ``SSL_CTX_use_psk_identity_hint``)
  and a few functions pyOpenSSL does not wrap (the host and IP checks of
  ``X509_VERIFY_PARAM``, ``SSL_session_reused``,
  ``SSL_SESSION_get_master_key``, ``SSL_get_verify_result``) come from the
  OpenSSL bindings that ``cryptography`` ships for pyOpenSSL
  (``cryptography.hazmat.bindings.openssl.binding``).
  :data:`coapkit.transports.DTLS_BINDINGS` lists every one of them, and
  :func:`coapkit.transports.require_dtls` refuses to start, naming those a
  given ``cryptography`` lacks (a test checks that the list holds every
  function called here).

The cookie exchange is the layer's (stateless, :mod:`coapkit.dtls.cookies`);
a ClientHello reaches :meth:`OpenSslServerEngine.accept` only with a valid
cookie, and ``DTLSv1_listen`` on a fresh connection then takes it as the
second ClientHello of a cookie exchange (sequence numbers and all), so the
handshake continues where the layer's HelloVerifyRequest left it.

Retransmission: the layer's timer calls :meth:`timeout`; when OpenSSL's own
timer (on its own clock) has run out too, ``DTLSv1_handle_timeout``
retransmits with fresh record numbers; otherwise (a virtual clock ahead of
OpenSSL's) the layer resends the flight as first sent.  OpenSSL draws every
random value of the protocol (randoms, keys, nonces) from its own CSPRNG.
"""

from __future__ import annotations

import contextlib
import ipaddress
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from cryptography import x509
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from coapkit.dtls.engine import EngineStep, PeerIdentity
from coapkit.dtls.records import ALERT, HANDSHAKE, split_records
from coapkit.errors import DtlsError, SecurityConfigError
from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials

_binding = Binding()
_lib: Any = _binding.lib
_ffi: Any = _binding.ffi

DTLS_1_2 = 0xFEFD
#: the PSK suites offered, GCM first, then RFC 7252's mandatory TLS_PSK_WITH_AES_128_CCM_8
PSK_SUITES = (
    "PSK-AES128-GCM-SHA256",
    "PSK-AES256-GCM-SHA384",
    "PSK-AES128-CCM8",
    "PSK-AES128-CCM",
)
#: the certificate suites, GCM first, then the mandatory TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
CERTIFICATE_SUITES = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-CCM8",
    "ECDHE-ECDSA-AES128-CCM",
)
#: OpenSSL 3 puts the 64-bit tags of the CCM_8 suites below its default security level 1
SECURITY_LEVEL = "@SECLEVEL=0"
MTU = 1232  #: IPv6's minimum MTU (1280) less the IPv6 and UDP headers (DtlsConfig.mtu)

_HEADER = 13
_READ = 65536
_READ_CHANGE_CIPHER_SPEC = b"SSLv3/TLS read change cipher spec"
_WANT_READ = _lib.SSL_ERROR_WANT_READ
#: one buffer for every read (sans I/O on one thread: nothing reads two at once)
_BUFFER = _ffi.new("unsigned char[]", _READ)
_DECRYPT_ERROR = 51  #: the alert for a Finished that does not verify (RFC 5246 §7.2.2)


def cipher_list(psk: bool, certificates: bool) -> str:
    suites = (PSK_SUITES if psk else ()) + (CERTIFICATE_SUITES if certificates else ())
    return ":".join((*suites, SECURITY_LEVEL))


def _pointer(ssl: Any) -> int:
    return int(_ffi.cast("uintptr_t", ssl))


#: the live sessions by their SSL pointer, for the PSK callbacks
_SESSIONS: weakref.WeakValueDictionary[int, _Session] = weakref.WeakValueDictionary()


def _server_psk_callback(table: dict[bytes, bytes]) -> Any:
    def callback(ssl: Any, identity: Any, psk: Any, max_length: int) -> int:
        try:
            name = _ffi.string(identity) if identity != _ffi.NULL else b""
            session = _SESSIONS.get(_pointer(ssl))
            if session is not None:
                session.psk_tried = name
            key = table.get(name)
            if key is None or len(key) > max_length:
                return 0
            _ffi.memmove(psk, key, len(key))
            if session is not None:
                session.psk_identity = name
            return len(key)
        except Exception:  # never into OpenSSL: an unknown identity, as far as it knows
            return 0

    return _ffi.callback("unsigned int(*)(SSL *, char *, unsigned char *, unsigned int)", callback)


def _client_psk_callback() -> Any:
    def callback(
        ssl: Any, hint: Any, identity: Any, max_identity: int, psk: Any, max_psk: int
    ) -> int:
        try:
            session = _SESSIONS.get(_pointer(ssl))
            if session is None or session.credentials is None:
                return 0
            session.psk_hint = _ffi.string(hint) if hint != _ffi.NULL else None
            name = session.credentials.psk_identity or b""
            key = session.credentials.psk or b""
            if len(name) + 1 > max_identity or len(key) > max_psk or b"\0" in name:
                return 0
            _ffi.memmove(identity, name + b"\0", len(name) + 1)
            _ffi.memmove(psk, key, len(key))
            return len(key)
        except Exception:
            return 0

    return _ffi.callback(
        "unsigned int(*)(SSL *, char *, char *, unsigned int, unsigned char *, unsigned int)",
        callback,
    )


def _context(server: bool, ciphers: str) -> SSL.Context:
    context = SSL.Context(SSL.DTLS_SERVER_METHOD if server else SSL.DTLS_CLIENT_METHOD)
    context.set_min_proto_version(DTLS_1_2)
    context.set_max_proto_version(DTLS_1_2)
    options = SSL.OP_NO_QUERY_MTU | SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION
    if server:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    context.set_options(options)
    try:
        context.set_cipher_list(ciphers.encode())
    except SSL.Error as exc:
        raise SecurityConfigError(f"OpenSSL offers none of the DTLS suites ({exc})") from None
    return context


def _load_certificate(context: SSL.Context, cert: Any, key: Any) -> None:
    where = f"{str(cert)!r}" + ("" if key is None else f" with key {str(key)!r}")
    try:
        context.use_certificate_chain_file(cert)
    except SSL.Error as exc:
        raise SecurityConfigError(f"cannot use certificate {where}: {_reason(exc)}") from None
    except OSError as exc:
        raise SecurityConfigError(f"cannot read certificate {where}: {exc}") from None
    path = cert if key is None else key
    try:
        with open(path, "rb") as file:
            pem = file.read()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read the key of certificate {where}: {exc}") from None
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise SecurityConfigError(
            f"the key of certificate {where} is encrypted: give it unencrypted "
            "(openssl pkey -in KEY -out PLAIN)"
        ) from None
    except ValueError:
        raise SecurityConfigError(
            f"cannot use certificate {where}: no PEM private key in {str(path)!r}"
        ) from None
    try:
        context.use_privatekey(private)  # type: ignore[arg-type]
        context.check_privatekey()
    except SSL.Error:
        raise SecurityConfigError(
            f"cannot use certificate {where}: the key does not belong to the certificate"
        ) from None


def _load_ca(context: SSL.Context, ca: Any) -> None:
    from pathlib import Path

    try:
        if Path(ca).is_dir():
            context.load_verify_locations(None, ca)
        else:
            if not Path(ca).is_file():
                raise SecurityConfigError(f"cannot read CA file {str(ca)!r}: no such file")
            context.load_verify_locations(ca)
    except SSL.Error as exc:
        raise SecurityConfigError(f"cannot use CA file {str(ca)!r}: {_reason(exc)}") from None


# -- sessions ---------------------------------------------------------------------------------


class _Session:
    """One DTLS association on a pyOpenSSL connection with memory BIOs."""

    def __init__(
        self,
        connection: SSL.Connection,
        *,
        server: bool,
        mtu: int,
        credentials: DtlsCredentials | None = None,
        on_established: Callable[[_Session], None] | None = None,
        resumed: OrderedDict[bytes, bytes] | None = None,
    ) -> None:
        self._connection = connection
        self._server = server
        self._mtu = mtu
        self.credentials = credentials
        self._on_established = on_established
        #: the server engine's PSK identities by master secret (see _remember_psk)
        self._resumed: OrderedDict[bytes, bytes] = OrderedDict() if resumed is None else resumed
        self.established = False
        self.psk_tried: bytes | None = None  #: the identity a client sent (server)
        self.psk_identity: bytes | None = None  #: the identity whose key was used (server)
        self.psk_hint: bytes | None = None  #: the hint the server sent (client)
        self.server_name: str | None = None
        self._next_sequence = 0  #: after the last epoch-0 record we wrote
        self._rejected = 0  #: client Finished messages that did not verify
        _SESSIONS[_pointer(connection._ssl)] = self
        # pyOpenSSL's own handles, for the calls on every datagram (tests/dtls checks them)
        self._ssl = connection._ssl
        self._rbio = connection._into_ssl
        self._wbio = connection._from_ssl
        connection.set_ciphertext_mtu(mtu)

    @property
    def ssl(self) -> Any:
        return self._connection._ssl

    # -- the engine interface -------------------------------------------------------------

    def receive(self, datagram: bytes) -> EngineStep:
        if self.established:
            return self._receive_established(datagram)
        step = EngineStep()
        connection = self._connection
        try:
            connection.bio_write(datagram)
        except SSL.Error as exc:
            step.failure = self._failure(exc)
            return step
        if not self.established:
            try:
                connection.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                step.datagrams = self._drain()
                step.failure = self._failure(exc)
                return step
            else:
                self.established = step.established = True
                if self._on_established is not None:
                    self._on_established(self)
        if self.established:
            self._read(step)
        step.datagrams = self._drain()
        if self._server and not self.established and self._rejected:
            # The client sent a Finished, so it has our flight: it needs no copy (and a
            # peer that reads one record per wake-up would read our alert late).
            step.datagrams = []
        if self._server and not self.established and not step.datagrams:
            if self._finished_rejected(datagram):
                # twice (the client's flight again, whole), not once: a forged record
                # alone cannot end a stranger's handshake
                self._rejected += 1
                if self._rejected >= 2:
                    step.failure = describe(
                        SSL.Error([("", "", "digest check failed")]),
                        server=True,
                        psk_identity=self.psk_tried,
                    )
                    step.datagrams = [self._alert(_DECRYPT_ERROR)]
        return step

    def _receive_established(self, datagram: bytes) -> EngineStep:
        """:meth:`receive` once the handshake is done: OpenSSL called directly, no
        exception for "nothing more to read" (the path of every request)."""
        lib = _lib
        ssl = self._ssl
        if lib.BIO_write(self._rbio, datagram, len(datagram)) != len(datagram):
            return EngineStep(failure=DtlsError("DTLS error: a datagram not taken", "protocol"))
        plaintexts = []
        buffer = _BUFFER
        while True:
            count = lib.SSL_read(ssl, buffer, _READ)
            if count > 0:
                plaintexts.append(_ffi.buffer(buffer, count)[:])
                continue
            if lib.SSL_get_error(ssl, count) == _WANT_READ:
                lib.ERR_clear_error()  # (a record dropped on the way may leave a note)
                return EngineStep(self._drain_records(), plaintexts)
            break
        # close_notify or an error: pyOpenSSL's reading of it
        step = EngineStep(plaintexts=plaintexts)
        self._read(step)
        step.datagrams = self._drain()
        return step

    def _read(self, step: EngineStep) -> None:
        connection = self._connection
        while True:
            try:
                step.plaintexts.append(connection.recv(_READ))
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:  # close_notify: answer it, the session is over
                step.closed = True
                with contextlib.suppress(SSL.Error):
                    connection.shutdown()
                return
            except SSL.Error as exc:
                step.failure = self._failure(exc, established=True)
                return

    def send(self, plaintext: bytes) -> list[bytes]:
        count = _lib.SSL_write(self._ssl, plaintext, len(plaintext))
        if count <= 0:
            self._connection._raise_ssl_error(self._ssl, count)  # raises: nothing is sent
        return self._drain_records()

    def _drain_records(self) -> list[bytes]:
        """What OpenSSL wrote, as datagrams (an established session: no sequence kept)."""
        lib = _lib
        wbio = self._wbio
        buffer = _BUFFER
        count = lib.BIO_read(wbio, buffer, _READ)
        if count <= 0:
            return []
        stream = _ffi.buffer(buffer, count)[:]
        while (count := lib.BIO_read(wbio, buffer, _READ)) > 0:
            stream += _ffi.buffer(buffer, count)[:]
        return pack(stream, self._mtu)

    def timeout(self) -> list[bytes] | None:
        if self._rejected:
            return []  # the client has our flight (it sent a Finished): nothing to resend
        connection = self._connection
        remaining = connection.DTLSv1_get_timeout()
        if remaining is None or remaining > 0:
            return None  # OpenSSL's clock says not yet: the layer resends the flight
        connection.DTLSv1_handle_timeout()
        return self._drain() or None

    def close(self) -> list[bytes]:
        try:
            self._connection.shutdown()
        except SSL.Error:
            return []
        return self._drain()

    def identity(self) -> PeerIdentity:
        connection = self._connection
        cipher = connection.get_cipher_name()
        psk = cipher is not None and "PSK" in cipher
        resumed = bool(_lib.SSL_session_reused(self.ssl))
        identity: bytes | None = None
        if psk:
            if self._server:
                identity = self.psk_identity
                if identity is None and resumed:
                    identity = self._resumed.get(self._master_key())
            elif self.credentials is not None:
                identity = self.credentials.psk_identity
        certificate = None if psk else connection.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            return PeerIdentity(
                psk_identity=identity,
                cipher=cipher,
                version=connection.get_protocol_version_name(),
                resumed=resumed,
                psk_hint=self.psk_hint,
            )
        return PeerIdentity(
            psk_identity=identity,
            subject=_name(certificate.subject),
            issuer=_name(certificate.issuer),
            alt_names=_alt_names(certificate),
            certificate=certificate.public_bytes(_DER),
            cipher=cipher,
            version=connection.get_protocol_version_name(),
            resumed=resumed,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _master_key(self) -> bytes:
        session = _lib.SSL_get_session(self.ssl)
        if session == _ffi.NULL:
            return b""
        buffer = _ffi.new("unsigned char[]", 64)
        length = _lib.SSL_SESSION_get_master_key(session, buffer, 64)
        return bytes(_ffi.buffer(buffer, length))

    def _drain(self) -> list[bytes]:
        connection = self._connection
        chunks = []
        while True:
            try:
                chunks.append(connection.bio_read(_READ))
            except SSL.WantReadError:
                break
        if not chunks:
            return []
        stream = b"".join(chunks)
        if not self.established:
            for record in split_records(stream) or ():
                if record.epoch == 0:
                    self._next_sequence = max(self._next_sequence, record.sequence + 1)
        return pack(stream, self._mtu)

    def _finished_rejected(self, datagram: bytes) -> bool:
        """Whether the client's Finished in ``datagram`` did not verify: OpenSSL drops such
        a record silently (RFC 6347 §4.1.2.7) and waits on, after the ChangeCipherSpec, so
        a client with another key would only ever time out."""
        records = split_records(datagram) or []
        if not any(record.epoch >= 1 and record.content_type == HANDSHAKE for record in records):
            return False
        # past the ChangeCipherSpec, the next message is the Finished: it was this one
        return self._connection.get_state_string() == _READ_CHANGE_CIPHER_SPEC

    def _alert(self, description: int) -> bytes:
        """A fatal alert in epoch 0, after our last record (OpenSSL cannot be asked to send
        one): the client hears why instead of waiting out its handshake."""
        sequence = self._next_sequence
        self._next_sequence += 1
        return (
            bytes((ALERT, 0xFE, 0xFD, 0, 0))
            + sequence.to_bytes(6, "big")
            + b"\x00\x02"
            + bytes((2, description))
        )

    def _failure(self, exc: Exception, *, established: bool = False) -> DtlsError:
        return describe(
            exc,
            server=self._server,
            established=established,
            psk_identity=(
                self.psk_tried
                if self._server
                else (self.credentials.psk_identity if self.credentials else None)
            ),
            verify_result=_lib.SSL_get_verify_result(self.ssl),
            without_certificate=self.credentials is not None and self.credentials.cert is None,
        )


def pack(stream: bytes, mtu: int) -> list[bytes]:
    """Records (as OpenSSL wrote them to its memory BIO, each at most ``mtu`` long) packed
    into datagrams of at most ``mtu`` bytes, in order (RFC 6347 §4.1.1: several records
    may share a datagram; none is split)."""
    size = len(stream)
    if size >= _HEADER and size == _HEADER + int.from_bytes(stream[11:13], "big"):
        return [stream]  # one record: the common case
    datagrams: list[bytes] = []
    start = current = 0
    while current + _HEADER <= size:
        end = current + _HEADER + int.from_bytes(stream[current + 11 : current + 13], "big")
        if end - start > mtu and current > start:
            datagrams.append(stream[start:current])
            start = current
        current = end
    if start < size:
        datagrams.append(stream[start:size])
    return datagrams


#: PSK sessions whose identity a server remembers for their resumption
RESUMED_LIMIT = 4096


def _remember_psk(session: _Session) -> None:
    """Keep a new PSK session's identity by its master secret: on resumption the PSK
    callback is not called again, and the bindings cannot read the identity back."""
    if session.psk_identity is None:
        return
    key = session._master_key()
    if key:
        resumed = session._resumed
        resumed[key] = session.psk_identity
        resumed.move_to_end(key)
        if len(resumed) > RESUMED_LIMIT:
            resumed.popitem(last=False)


# -- engines -------------------------------------------------------------------------------------


class OpenSslServerEngine:
    """Accepts DTLS handshakes with one set of :class:`DtlsServerCredentials`."""

    def __init__(self, credentials: DtlsServerCredentials, *, mtu: int = MTU) -> None:
        self.credentials = credentials
        self.mtu = mtu
        context = _context(True, cipher_list(bool(credentials.psk), credentials.uses_certificates))
        context.set_session_id(b"coapkit-dtls")
        self._callbacks: list[Any] = []
        if credentials.psk:
            table = dict(credentials.psk)
            callback = _server_psk_callback(table)
            self._callbacks.append(callback)
            _lib.SSL_CTX_set_psk_server_callback(context._context, callback)
            if credentials.psk_hint:
                _lib.SSL_CTX_use_psk_identity_hint(context._context, credentials.psk_hint)
        if credentials.cert is not None:
            _load_certificate(context, credentials.cert, credentials.key)
        if credentials.ca is not None:
            _load_ca(context, credentials.ca)
            mode = SSL.VERIFY_PEER
            if credentials.require_client_cert:
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            context.set_verify(mode)
        # DTLSv1_listen needs the cookie callbacks; the layer checked the cookie already
        context.set_cookie_generate_callback(lambda connection: b"\0" * 16)
        context.set_cookie_verify_callback(lambda connection, cookie: True)
        self._context = context
        self._resumed: OrderedDict[bytes, bytes] = OrderedDict()

    def accept(self, hello: bytes, remote: Hashable) -> tuple[_Session, EngineStep]:
        connection = SSL.Connection(self._context)
        connection.set_accept_state()
        session = _Session(
            connection,
            server=True,
            mtu=self.mtu,
            on_established=_remember_psk,
            resumed=self._resumed,
        )
        connection.bio_write(hello)
        try:
            connection.DTLSv1_listen()
        except SSL.WantReadError:
            raise ValueError("OpenSSL did not take the ClientHello") from None
        step = EngineStep()
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            step.failure = session._failure(exc)
        step.datagrams = session._drain()
        return session, step


class OpenSslClientEngine:
    """Makes DTLS handshakes with the credentials the layer is given per remote; offers
    the last session with the same server, for an abbreviated handshake."""

    def __init__(self, default: DtlsCredentials | None = None, *, mtu: int = MTU) -> None:
        self.default = default or DtlsCredentials()
        self.mtu = mtu
        self._contexts: dict[DtlsCredentials, SSL.Context] = {}
        self._callback = _client_psk_callback()
        #: (remote, server name, credentials) -> the last session, for resumption
        self._resumable: OrderedDict[tuple[Hashable, str | None, DtlsCredentials], Any] = (
            OrderedDict()
        )

    def context(self, credentials: DtlsCredentials) -> SSL.Context:
        """The context for ``credentials``, made (and the files read) at the first use;
        raises :class:`SecurityConfigError` for unusable material."""
        context = self._contexts.get(credentials)
        if context is not None:
            return context
        context = _context(False, cipher_list(credentials.uses_psk, credentials.uses_certificates))
        if credentials.uses_psk:
            _lib.SSL_CTX_set_psk_client_callback(context._context, self._callback)
        if credentials.uses_certificates:
            if credentials.ca is not None:
                _load_ca(context, credentials.ca)
            else:
                context.set_default_verify_paths()
            context.set_verify(SSL.VERIFY_PEER)
        if credentials.cert is not None:
            _load_certificate(context, credentials.cert, credentials.key)
        self._contexts[credentials] = context
        return context

    def connect(
        self, remote: Hashable, server_name: str | None, credentials: Any
    ) -> tuple[_Session, EngineStep]:
        if credentials is None:
            credentials = self.default
        assert isinstance(credentials, DtlsCredentials)
        connection = SSL.Connection(self.context(credentials))
        connection.set_connect_state()
        key = (remote, server_name, credentials)
        session = _Session(
            connection,
            server=False,
            mtu=self.mtu,
            credentials=credentials,
            on_established=lambda done: self._established(key, done),
        )
        session.server_name = server_name
        if credentials.uses_certificates and server_name and not credentials.insecure:
            _check_name(connection, server_name)
        if server_name and not _is_ip(server_name):
            connection.set_tlsext_host_name(server_name.encode("idna"))
        resumable = self._resumable.get(key)
        if resumable is not None:
            connection.set_session(resumable)
        step = EngineStep()
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            step.failure = session._failure(exc)
        step.datagrams = session._drain()
        return session, step

    def _established(
        self, key: tuple[Hashable, str | None, DtlsCredentials], done: _Session
    ) -> None:
        saved = done._connection.get_session()
        if saved is None:
            return
        self._resumable[key] = saved
        self._resumable.move_to_end(key)
        if len(self._resumable) > 256:
            self._resumable.popitem(last=False)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _check_name(connection: SSL.Connection, server_name: str) -> None:
    """Make the certificate check include the name (RFC 6125: subjectAltName DNS names, or
    IP addresses for an IP literal)."""
    param = _lib.SSL_get0_param(connection._ssl)
    host = server_name.partition("%")[0]
    if _is_ip(host):
        packed = ipaddress.ip_address(host).packed
        ok = _lib.X509_VERIFY_PARAM_set1_ip(param, packed, len(packed))
    else:
        name = host.encode("idna")
        ok = _lib.X509_VERIFY_PARAM_set1_host(param, name, len(name))
    if ok != 1:
        raise SecurityConfigError(f"cannot check the server's certificate for {server_name!r}")


# -- what went wrong ------------------------------------------------------------------------------


def _reasons(exc: Exception) -> list[str]:
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        return [str(item[-1]).lower() for item in exc.args[0] if isinstance(item, tuple)]
    return [str(exc).lower()]


def _reason(exc: Exception) -> str:
    return "; ".join(_reasons(exc)) or exc.__class__.__name__


def describe(
    exc: Exception,
    *,
    server: bool,
    established: bool = False,
    psk_identity: bytes | None = None,
    verify_result: int = 0,
    without_certificate: bool = False,
) -> DtlsError:
    """One :class:`DtlsError` for an OpenSSL failure, naming the cause as a person would.

    ``server``: we are the server (the peer is a client).  The message has no address:
    the caller adds it where it is shown.
    """
    reasons = _reasons(exc)
    text = " ".join(reasons)
    peer = "client" if server else "server"
    name = repr(psk_identity.decode("utf-8", "backslashreplace")) if psk_identity else "''"
    prefix = "DTLS error" if established else "DTLS handshake failed"

    def error(message: str, cause: str) -> DtlsError:
        return DtlsError(f"{prefix}: {message}", cause)

    if "unknown psk identity" in text:
        return error(f"the server rejected PSK identity {name}", "unknown_psk_identity")
    if "psk identity not found" in text:
        return error(f"the client's PSK identity {name} is not known here", "unknown_psk_identity")
    if "certificate verify failed" in text:
        detail = _lib.X509_verify_cert_error_string(verify_result)
        message = _ffi.string(detail).decode() if detail != _ffi.NULL else "unknown"
        whose = f"the {peer}'s certificate"
        if verify_result in _UNTRUSTED:
            whose += " is not issued by a trusted CA"
        elif verify_result in _OTHER_NAME:
            whose += " is for another name"
        return error(f"certificate verify failed: {message} ({whose})", "bad_certificate")
    if "peer did not return a certificate" in text or "certificate required" in text:
        if server:
            return error("the client sent no certificate (one is required)", "certificate_refused")
        return error("the server requires a client certificate", "certificate_refused")
    for alert, meaning in _REFUSED_OURS.items():
        if alert in text:
            if not server and without_certificate and not psk_identity:
                return error(
                    f"the server requires a client certificate (it answered: {alert})",
                    "certificate_refused",
                )
            return error(f"the {peer} refused us: {meaning}", "certificate_refused")
    if "alert decrypt error" in text:
        return error(
            f"the {peer} could not verify our Finished: it holds another key"
            + (f" for PSK identity {name}" if psk_identity else ""),
            "psk_mismatch",
        )
    if "decrypt error" in text or "bad record mac" in text or "digest check failed" in text:
        return error(
            f"the {peer}'s Finished does not verify: it holds another key"
            + (f" for PSK identity {name}" if psk_identity else ""),
            "psk_mismatch",
        )
    if "no shared cipher" in text or "no ciphers available" in text:
        return error(f"no cipher suite in common with the {peer}", "handshake_failure")
    if "handshake failure" in text:
        if not server and without_certificate and not psk_identity:
            # what OpenSSL servers answer a client that sent no certificate they require
            why = "it may require a client certificate"
        else:
            why = "no cipher suite in common, or a certificate or key it needs"
        return error(f"the {peer} refused the handshake ({why})", "handshake_failure")
    if "protocol version" in text or "unsupported protocol" in text or "version too low" in text:
        return error(
            f"no DTLS version in common with the {peer} (coapkit speaks DTLS 1.2)",
            "handshake_failure",
        )
    if "close notify" in text:
        return DtlsError(f"the {peer} closed the DTLS session", "closed")
    return error(text or exc.__class__.__name__, "protocol")


#: X509 verification codes meaning "not issued by a trusted CA", and "for another name"
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})
_OTHER_NAME = frozenset({62, 64})

_REFUSED_OURS = {
    "alert bad certificate": "it refused our certificate (bad certificate)",
    "alert unknown ca": "it does not trust the CA that issued our certificate",
    "alert certificate unknown": "it refused our certificate (certificate unknown)",
    "alert unsupported certificate": "it refused our certificate (unsupported)",
    "alert certificate expired": "it says our certificate has expired",
    "alert certificate revoked": "it says our certificate is revoked",
    "alert access denied": "it denied access to our identity",
}


# -- certificates as values ---------------------------------------------------------------------

_DER = Encoding.DER

_NAMES = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


def _name(name: x509.Name) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_NAMES.get(attribute.oid, attribute.oid.dotted_string), str(attribute.value))
        for attribute in name
    )


def _alt_names(certificate: x509.Certificate) -> tuple[tuple[str, str], ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[tuple[str, str]] = []
    for entry in extension.value:
        if isinstance(entry, x509.DNSName):
            names.append(("DNS", entry.value))
        elif isinstance(entry, x509.IPAddress):
            names.append(("IP Address", str(entry.value)))
        elif isinstance(entry, x509.UniformResourceIdentifier):
            names.append(("URI", entry.value))
        elif isinstance(entry, x509.RFC822Name):
            names.append(("email", entry.value))
    return tuple(names)
