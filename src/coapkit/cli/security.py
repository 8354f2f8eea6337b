"""Security material on the command line: ``--cert``/``--key``/``--ca``/``--insecure``,
``--psk-identity``/``--psk`` and ``--credentials FILE`` (docs/transports.md).

The client commands and the servers take the same flags and mean the same by
them; this module turns them into what the library takes, before anything is
sent or bound, so that a mistake costs no round trip and ends with one line:

* the client commands: :func:`client_security` gives the
  :class:`~coapkit.security.tls.TlsCredentials` of ``Client(tls=)`` for a
  ``coaps+tcp://`` or ``coaps+ws://`` URI (:func:`client_tls`), or the
  :class:`~coapkit.security.dtls.DtlsCredentials` of ``Client(dtls=)`` for a
  ``coaps://`` URI (:func:`client_dtls`); None for the other schemes, where
  the flags have no effect and a warning says so;
* the servers: :func:`server_security` gives the ``ssl.SSLContext`` of
  ``Server(ssl_context=)`` when a listener is ``coaps+tcp://`` or
  ``coaps+ws://`` (:func:`server_tls`), and the
  :class:`~coapkit.security.dtls.DtlsServerCredentials` of ``Server(dtls=)``
  when one is ``coaps://`` (:func:`server_dtls`).  ``--ca`` there makes
  client certificates mandatory: a server that names the CAs of its clients
  means to know who they are.

A pre-shared key (``--psk-identity ID --psk KEY``, KEY as text or hex after
``0x``) is DTLS's PreSharedKey mode (RFC 7252 §9.1.3.1): a client presents
that identity, a server accepts it with that key.  Certificates are the
Certificate mode (RFC 7252 §9.1.3.3, and RFC 8323 §9.1 over TLS): a client
checks the server's chain against ``--ca`` (the system's trust store without
it) and its name against the URI's host, ``--insecure`` skipping the name
check only.  Over TLS there are no pre-shared keys (Python's :mod:`ssl` has
none before 3.13): ``--psk`` with a ``coaps+tcp://`` or ``coaps+ws://`` URI
or listener alone is refused rather than ignored, since the user meant a
key to protect the exchange.

Exit statuses: options that do not go together (``--key`` without ``--cert``,
``--psk`` without ``--psk-identity``), material that cannot be used (no
certificate in the file, a key of another certificate, an encrypted key), a
credentials file that is not what it should be, and pre-shared keys over TLS
are status 2 (:class:`~coapkit.cli.exits.UsageError`); a file that cannot be
read is status 10 (:class:`~coapkit.cli.exits.LocalFileError`), as an
unreadable ``--payload @FILE`` is.  A failed DTLS handshake is the library's
:class:`~coapkit.errors.DtlsError`, a network error: status 7, its message
naming the cause.

``--credentials FILE`` reads aiocoap's credentials format (aiocoap's
``credentials.py`` and ``credentials.cddl``), so that a file written for
``aiocoap-client --credentials`` works unchanged where it describes what
coapkit has: a JSON object whose keys are URI patterns (``*`` matches
anything) or labels (``:name``), and whose values are a label (a reference
to that entry), ``null`` (no entry), or an object with one key naming the
kind of entry:

* ``{"dtls": {"psk": KEY, "client-identity": ID}}`` (aiocoap's): a DTLS
  pre-shared key, KEY and ID each ``{"ascii": TEXT}``, ``{"hex": HEX}``
  (``-``, ``:`` and spaces between the digits allowed, as aiocoap allows
  them) or, coapkit's addition, a plain string taken as UTF-8 text.  A
  client uses the entry that matches its ``coaps://`` URI; a server accepts
  every ``dtls`` entry of the file, each identity with its key, whatever its
  key in the file (aiocoap's server looks identities up the same way:
  ``CredentialsMap.find_dtls_psk``), so several clients are one file of
  ``":client1": {"dtls": ...}`` entries;
* ``{"tlscert": {"certfile": PEM}}`` (aiocoap's): the CAs that verify the
  server, for a client (``--ca``), over TLS and, coapkit's addition, DTLS;
* ``{"tls": {"cert": PEM, "key": PEM, "ca": PEM, "insecure": BOOL}}``
  (coapkit's addition; every member optional): what the flags of the same
  names give, for a client or a server, over TLS or DTLS (certificates are
  the same X.509 material on both);
* ``{"oscore": {"basedir": DIR}}`` and ``{"edhoc-oscore": {...}}`` (aiocoap's):
  an OSCORE security context, or the EDHOC material that sets one up, read by
  :mod:`coapkit.cli.oscore`; they give no TLS or DTLS material.

A client uses the entry of the longest pattern that matches its URI
(following references), as aiocoap's ``credentials_from_request`` does; a
server the ``tls`` entry that matches its listeners' URIs (besides every
``dtls`` entry, above).  The flags override it, member by member.  A
``dtls`` entry that matches a ``coaps+tcp://`` or ``coaps+ws://`` URI is
refused (a pre-shared key cannot protect TLS here).  Every other kind
aiocoap knows (``any-of``, ``all-of``) is refused when the
file is read, in one line naming the entry: ignoring it could send in the
clear what the file meant to protect.  File names are taken relative to the
current directory, as aiocoap does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coapkit.cli.console import diagnostics
from coapkit.cli.exits import LocalFileError, UsageError
from coapkit.codec.uri import CoapUri
from coapkit.errors import SecurityConfigError
from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials
from coapkit.security.tls import TlsCredentials, client_context, psk_key, server_context

__all__ = [
    "Credentials",
    "TlsEntry",
    "client_dtls",
    "client_security",
    "client_tls",
    "load_credentials",
    "server_dtls",
    "server_security",
    "server_tls",
]

#: the kinds of aiocoap's credentials entries coapkit does not have yet, and why
UNSUPPORTED_KINDS = {
    "any-of": "alternatives (any-of) are not supported",
    "any": "alternatives (any) are not supported",
    "all-of": "combinations (all-of) are not supported",
    "all": "combinations (all) are not supported",
}

PSK_NOT_OVER_TLS = (
    "{scheme}:// with a pre-shared key is not supported (TLS-PSK: Python's ssl module "
    "has none before 3.13); use certificates (--cert, --key, --ca), or coaps:// (DTLS), "
    "which takes pre-shared keys"
)


@dataclass(frozen=True)
class TlsEntry:
    """What an entry of a credentials file gives (None: not given): certificate material
    (``tls``, ``tlscert``), a pre-shared key (``dtls``), or nothing here (``oscore``)."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    insecure: bool | None = None
    #: "tls" (coapkit's), "tlscert" (aiocoap's), "dtls" (aiocoap's: a PSK), "oscore" (none)
    kind: str = "tls"
    psk_identity: bytes | None = None
    psk: bytes | None = None


@dataclass(frozen=True)
class Credentials:
    """A credentials file: entries by pattern or label; a ``str`` value refers to a label."""

    path: str
    entries: dict[str, TlsEntry | str]

    def lookup(self, uri: str) -> tuple[str, TlsEntry] | None:
        """The entry (and its key) that applies to ``uri``: the longest matching pattern's,
        references followed; None when no pattern matches."""
        target = uri
        ordered = sorted(self.entries.items(), key=lambda item: len(item[0]), reverse=True)
        for _ in range(len(ordered) + 1):
            for pattern, value in ordered:
                if _wildcard(pattern).fullmatch(target) is None:
                    continue
                if isinstance(value, str):
                    target = value
                    break
                return pattern, value
            else:
                return None
        raise UsageError(f"--credentials {self.path}: the references for {uri} go in a circle")

    def psk_table(self) -> dict[bytes, bytes]:
        """Every ``dtls`` entry's identity and key: what a server accepts (see the module
        doc); an identity given two different keys is a mistake (status 2)."""
        table: dict[bytes, bytes] = {}
        owner: dict[bytes, str] = {}
        for name, entry in self.entries.items():
            if isinstance(entry, str) or entry.kind != "dtls":
                continue
            assert entry.psk_identity is not None and entry.psk is not None
            known = table.get(entry.psk_identity)
            if known is not None and known != entry.psk:
                raise UsageError(
                    f"--credentials {self.path}: entries {owner[entry.psk_identity]!r} and "
                    f"{name!r} give PSK identity {_show_identity(entry.psk_identity)} "
                    "different keys"
                )
            table[entry.psk_identity] = entry.psk
            owner[entry.psk_identity] = name
        return table


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace("\\*", ".*"))


def _show_identity(identity: bytes) -> str:
    return repr(identity.decode("utf-8", "backslashreplace"))


def load_credentials(path: str) -> Credentials:
    """Read and check a credentials file (see the module doc)."""
    where = f"--credentials {path}"
    if path.endswith(".diag"):
        raise UsageError(
            f"{where}: CBOR diagnostic notation is not supported; write the file as JSON"
        )
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LocalFileError(f"cannot read the credentials file {path!r}: {reason}") from None
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not a JSON file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: the file must hold a JSON object of URI patterns and :labels")
    entries: dict[str, TlsEntry | str] = {}
    for key, value in data.items():
        if value is None:  # aiocoap: null removes an entry
            continue
        entries[key] = _entry(where, key, value)
    for key, value in entries.items():
        if isinstance(value, str) and value not in entries:
            raise UsageError(f"{where}: entry {key!r} refers to {value!r}, which is not there")
    return Credentials(path, entries)


def _entry(where: str, key: str, value: Any) -> TlsEntry | str:
    here = f"{where}: entry {key!r}"
    if isinstance(value, str):
        if not value.startswith(":"):
            raise UsageError(f"{here}: a reference must be a :label, not {value!r}")
        return value
    if not isinstance(value, dict) or len(value) != 1:
        found = ", ".join(value) if isinstance(value, dict) and value else "none"
        raise UsageError(
            f"{here}: an entry is an object with exactly one kind of credential (found {found})"
        )
    ((kind, body),) = value.items()
    if kind in UNSUPPORTED_KINDS:
        raise UsageError(f"{here}: {kind}: {UNSUPPORTED_KINDS[kind]}")
    if kind in ("oscore", "edhoc-oscore"):  # read by coapkit.cli.oscore, no TLS material
        return TlsEntry(kind="oscore")
    if kind not in ("tls", "tlscert", "dtls"):
        raise UsageError(
            f"{here}: unknown kind of credential {kind!r} (coapkit has tls, tlscert, dtls, "
            "oscore, edhoc-oscore)"
        )
    if not isinstance(body, dict):
        raise UsageError(f"{here}: {kind} takes an object")
    if kind == "dtls":
        return _dtls_entry(here, body)
    if kind == "tlscert":
        if set(body) != {"certfile"} or not isinstance(body["certfile"], str):
            raise UsageError(f'{here}: tlscert takes "certfile": the CA file (and nothing else)')
        return TlsEntry(ca=body["certfile"], kind="tlscert")
    members = {"cert": str, "key": str, "ca": str, "insecure": bool}
    for name, member in body.items():
        expected = members.get(name)
        if expected is None:
            raise UsageError(f"{here}: tls has no member {name!r} (it has cert, key, ca, insecure)")
        if not isinstance(member, expected):
            what = "true or false" if expected is bool else "a file name"
            raise UsageError(f"{here}: tls member {name!r} must be {what}")
    return TlsEntry(**body)


def _dtls_entry(here: str, body: dict[str, Any]) -> TlsEntry:
    """aiocoap's ``dtls`` entry: ``psk`` and ``client-identity``, both required (aiocoap's
    ``DTLS`` class takes both), each in one of the byte-string forms of the module doc."""
    unknown = [name for name in body if name not in ("psk", "client-identity")]
    if unknown:
        raise UsageError(f"{here}: dtls has no member {unknown[0]!r} (it has psk, client-identity)")
    missing = [name for name in ("psk", "client-identity") if name not in body]
    if missing:
        raise UsageError(
            f'{here}: dtls needs "psk" and "client-identity" (missing: {", ".join(missing)})'
        )
    identity = _bytes_value(here, "client-identity", body["client-identity"])
    psk = _bytes_value(here, "psk", body["psk"])
    if not psk:
        raise UsageError(f"{here}: the pre-shared key is empty")
    return TlsEntry(kind="dtls", psk_identity=identity, psk=psk)


def _bytes_value(here: str, name: str, value: Any) -> bytes:
    """A byte string of a credentials file: ``{"ascii": TEXT}``, ``{"hex": HEX}`` (aiocoap's
    forms) or a plain string (UTF-8; coapkit's)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and len(value) == 1:
        ((form, text),) = value.items()
        if form == "ascii" and isinstance(text, str):
            if not text.isascii():
                raise UsageError(
                    f'{here}: dtls member {name!r}: {{"ascii": ...}} holds characters that are '
                    'not ASCII (use {"hex": ...} or a plain string)'
                )
            return text.encode("ascii")
        if form == "hex" and isinstance(text, str):
            digits = text.replace("-", "").replace(" ", "").replace(":", "")
            try:
                return bytes.fromhex(digits)
            except ValueError:
                raise UsageError(
                    f"{here}: dtls member {name!r}: {text!r} is not hexadecimal"
                ) from None
    raise UsageError(
        f'{here}: dtls member {name!r} must be {{"ascii": TEXT}}, {{"hex": HEX}} or a string'
    )


# -- the flags --------------------------------------------------------------------------------


def _given(args: argparse.Namespace) -> list[str]:
    """The security flags given on the command line, as typed (``--cert``...), for the
    warning that they have no effect: none when it was given already (``args.warned``:
    a server's supervisor warns once for its workers)."""
    if getattr(args, "warned", False):
        return []
    names = ("cert", "key", "ca", "insecure", "psk_identity", "psk")
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name, None)]


def _check_pairs(args: argparse.Namespace) -> None:
    """Options that only go together: status 2 whatever the URI."""
    if args.key is not None and args.cert is None:
        raise UsageError("--key needs --cert (the certificate the key belongs to)")
    if (args.psk is None) != (args.psk_identity is None):
        raise UsageError("--psk-identity and --psk go together")
    if args.psk is not None:
        try:
            psk_key(args.psk)
        except SecurityConfigError as exc:
            raise UsageError(f"--psk: {exc}") from None
        if not psk_key(args.psk):
            raise UsageError("--psk: the pre-shared key is empty")


def _flag_psk(args: argparse.Namespace) -> tuple[bytes, bytes] | None:
    """``--psk-identity`` (its UTF-8 bytes) and ``--psk`` (checked by :func:`_check_pairs`)."""
    if args.psk is None:
        return None
    return args.psk_identity.encode("utf-8"), psk_key(args.psk)


def _readable(path: str | None, what: str) -> None:
    """LocalFileError (status 10) naming the file when it cannot be read."""
    if path is None or Path(path).is_dir():
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LocalFileError(f"cannot read the {what} file {path!r}: {reason}") from None


def _usable(credentials: TlsCredentials | DtlsCredentials | DtlsServerCredentials) -> None:
    for path, what in (
        (credentials.cert, "certificate"),
        (credentials.key, "key"),
        (credentials.ca, "CA"),
    ):
        _readable(None if path is None else os.fspath(path), what)


def client_security(
    args: argparse.Namespace, uri: CoapUri
) -> tuple[TlsCredentials | None, DtlsCredentials | None]:
    """What ``Client(tls=, dtls=)`` takes for ``uri``: DTLS material for ``coaps://``
    (:func:`client_dtls`), TLS material for the others (:func:`client_tls`)."""
    if uri.scheme == "coaps":
        return None, client_dtls(args, uri)
    return client_tls(args, uri), None


def client_tls(args: argparse.Namespace, uri: CoapUri) -> TlsCredentials | None:
    """The TLS material of a client command for ``uri`` (None: none needed, or the system's
    trust store will do); checked here, so that bad material fails before the network."""
    _check_pairs(args)
    credentials = None if args.credentials is None else load_credentials(args.credentials)
    if not uri.secure:
        given = _given(args)
        if given:
            diagnostics.line(
                f"coapkit: warning: {', '.join(given)} ignored: {uri.scheme}:// has no TLS "
                "or DTLS (coaps://, coaps+tcp:// and coaps+ws:// use them)"
            )
        return None
    if args.psk is not None:
        raise UsageError(f"--psk: {PSK_NOT_OVER_TLS.format(scheme=uri.scheme)}")
    found = None if credentials is None else credentials.lookup(str(uri))
    entry = TlsEntry() if found is None else found[1]
    if found is not None and entry.kind == "dtls":
        raise UsageError(
            f"--credentials {args.credentials}: entry {found[0]!r}: a dtls entry (a pre-shared "
            f"key) cannot protect {uri.scheme}://; use a tls or tlscert entry"
        )
    tls = TlsCredentials(
        cert=args.cert if args.cert is not None else entry.cert,
        key=args.key if args.cert is not None else entry.key,
        ca=args.ca if args.ca is not None else entry.ca,
        insecure=bool(args.insecure or entry.insecure),
    )
    if tls.key is not None and tls.cert is None:
        raise UsageError(f"--credentials {args.credentials}: a key without its certificate")
    if tls == TlsCredentials():
        return None
    _usable(tls)
    try:
        client_context(tls)
    except SecurityConfigError as exc:
        raise UsageError(str(exc)) from None
    if tls.insecure:
        _warn_insecure(args, uri)
    return tls


def _warn_insecure(args: argparse.Namespace, uri: CoapUri) -> None:
    origin = "--insecure" if args.insecure else f"--credentials {args.credentials} (insecure)"
    diagnostics.line(
        f"coapkit: warning: {origin}: not checking that the server's certificate is "
        f"for {uri.host!r} (its chain is still verified)"
    )


def client_dtls(args: argparse.Namespace, uri: CoapUri) -> DtlsCredentials | None:
    """The DTLS material of a client command for a ``coaps://`` URI (None: the library's
    default, certificates checked against the system's trust store).

    ``--psk-identity``/``--psk`` or a matching ``dtls`` entry give the
    PreSharedKey mode (RFC 7252 §9.1.3.1); ``--cert``/``--key``/``--ca``/
    ``--insecure`` or a matching ``tls``/``tlscert`` entry the Certificate
    mode (§9.1.3.3); given both, the client offers both kinds of suites and
    the server chooses.  The flags override the entry, member by member.  The
    material is loaded here (the ``dtls`` extra's OpenSSL context), so that a
    file that cannot be used fails before the network.
    """
    _check_pairs(args)
    credentials = None if args.credentials is None else load_credentials(args.credentials)
    found = None if credentials is None else credentials.lookup(str(uri))
    entry = TlsEntry() if found is None else found[1]
    psk = _flag_psk(args)
    if psk is None and entry.kind == "dtls":
        assert entry.psk_identity is not None and entry.psk is not None
        psk = (entry.psk_identity, entry.psk)
    try:
        dtls = DtlsCredentials(
            psk_identity=None if psk is None else psk[0],
            psk=None if psk is None else psk[1],
            cert=args.cert if args.cert is not None else entry.cert,
            key=args.key if args.cert is not None else entry.key,
            ca=args.ca if args.ca is not None else entry.ca,
            insecure=bool(args.insecure or entry.insecure),
        )
    except SecurityConfigError as exc:  # the flags were checked: the entry's doing
        raise UsageError(f"--credentials {args.credentials}: {exc}") from None
    if dtls == DtlsCredentials():
        return None
    _usable(dtls)
    from coapkit.security.openssl_dtls import OpenSslClientEngine  # the dtls extra: checked

    try:
        OpenSslClientEngine().context(dtls)
    except SecurityConfigError as exc:
        raise UsageError(str(exc)) from None
    if dtls.insecure:
        if dtls.uses_certificates:
            _warn_insecure(args, uri)
        elif not getattr(args, "warned", False):
            diagnostics.line(
                "coapkit: warning: --insecure ignored: with a pre-shared key alone there is "
                "no certificate to check"
            )
    return dtls


def server_security(
    args: argparse.Namespace, uris: list[CoapUri]
) -> tuple[ssl.SSLContext | None, DtlsServerCredentials | None]:
    """What ``Server(ssl_context=, dtls=)`` takes for these listeners (:func:`server_tls`
    for the ``coaps+tcp://`` and ``coaps+ws://`` ones, :func:`server_dtls` for the
    ``coaps://`` ones); flags that none of them uses are ignored with one warning."""
    _check_pairs(args)
    if args.credentials is not None:  # a broken file fails whatever the listeners
        load_credentials(args.credentials)
    tls_uris = [uri for uri in uris if uri.secure and uri.scheme != "coaps"]
    dtls_uris = [uri for uri in uris if uri.scheme == "coaps"]
    if not tls_uris and not dtls_uris:
        given = _given(args)
        if given:
            diagnostics.line(
                f"coapkit: warning: {', '.join(given)} ignored: no coaps://, coaps+tcp:// or "
                "coaps+ws:// listener"
            )
        return None, None
    if args.psk is not None and not dtls_uris:
        raise UsageError(f"--psk: {PSK_NOT_OVER_TLS.format(scheme=tls_uris[0].scheme)}")
    return server_tls(args, tls_uris), server_dtls(args, dtls_uris)


def server_tls(args: argparse.Namespace, uris: list[CoapUri]) -> ssl.SSLContext | None:
    """The TLS context of a server for its listeners (None: no TLS listener); checked here,
    so that bad material fails before anything is bound.  ``--psk`` is for the ``coaps://``
    listeners (see :func:`server_security`), not for these."""
    _check_pairs(args)
    credentials = None if args.credentials is None else load_credentials(args.credentials)
    secure = [uri for uri in uris if uri.secure and uri.scheme != "coaps"]
    if not secure:
        return None
    entry = _server_entry(args, credentials, secure, "TLS")
    cert = args.cert if args.cert is not None else entry.cert
    key = args.key if args.cert is not None else entry.key
    ca = args.ca if args.ca is not None else entry.ca
    if cert is None:
        schemes = " and ".join(sorted({f"{uri.scheme}://" for uri in secure}))
        raise UsageError(
            f"a {schemes} listener needs the server's certificate and key: --cert PEM --key PEM"
        )
    tls = TlsCredentials(cert=cert, key=key, ca=ca, require_client_cert=ca is not None)
    _usable(tls)
    try:
        return server_context(tls)
    except SecurityConfigError as exc:
        raise UsageError(str(exc)) from None


def server_dtls(args: argparse.Namespace, uris: list[CoapUri]) -> DtlsServerCredentials | None:
    """The DTLS material of a server for its ``coaps://`` listeners (None: there are none).

    The pre-shared keys it accepts (RFC 7252 §9.1.3.1: a table of identities
    and keys) are ``--psk-identity``/``--psk`` and every ``dtls`` entry of
    ``--credentials``; its certificate (§9.1.3.3) is ``--cert``/``--key`` or
    the ``tls`` entry that matches the listeners, and ``--ca`` (or the
    entry's ``ca``) makes client certificates mandatory, as on a TLS
    listener.  At least one of the two modes; the material is loaded here (an
    OpenSSL context of the ``dtls`` extra), so that it fails before anything
    is bound.
    """
    _check_pairs(args)
    credentials = None if args.credentials is None else load_credentials(args.credentials)
    secure = [uri for uri in uris if uri.scheme == "coaps"]
    if not secure:
        return None
    entry = _server_entry(args, credentials, secure, "DTLS")
    table = {} if credentials is None else credentials.psk_table()
    psk = _flag_psk(args)
    if psk is not None:
        identity, key = psk
        if table.get(identity, key) != key:
            raise UsageError(
                f"--psk-identity {args.psk_identity}: --credentials {args.credentials} gives "
                "this identity another key"
            )
        table[identity] = key
    cert = args.cert if args.cert is not None else entry.cert
    key_file = args.key if args.cert is not None else entry.key
    ca = args.ca if args.ca is not None else entry.ca
    if not table and cert is None:
        raise UsageError(
            "a coaps:// listener needs a pre-shared key (--psk-identity ID --psk KEY, or dtls "
            "entries in --credentials) or the server's certificate and key (--cert PEM --key PEM)"
        )
    if cert is None and ca is not None:
        raise UsageError(
            "--ca on a coaps:// listener asks clients for certificates, which needs the "
            "server's own: --cert PEM --key PEM"
        )
    try:
        dtls = DtlsServerCredentials(
            psk=table or None, cert=cert, key=key_file, ca=ca, require_client_cert=ca is not None
        )
    except SecurityConfigError as exc:
        raise UsageError(str(exc)) from None
    _usable(dtls)
    from coapkit.security.openssl_dtls import OpenSslServerEngine  # the dtls extra: checked

    try:
        OpenSslServerEngine(dtls)
    except SecurityConfigError as exc:
        raise UsageError(str(exc)) from None
    return dtls


def _server_entry(
    args: argparse.Namespace, credentials: Credentials | None, secure: list[CoapUri], what: str
) -> TlsEntry:
    """The ``tls`` entry that matches a server's ``what`` (TLS, DTLS) listeners: one for
    all of them (a server has one certificate); a ``dtls`` or ``oscore`` entry there gives
    no certificate (the ``dtls`` ones are the PSK table, :meth:`Credentials.psk_table`)."""
    if credentials is None:
        return TlsEntry()
    matches = {credentials.lookup(_listen_text(uri)) for uri in secure}
    if len(matches) > 1:
        raise UsageError(
            f"--credentials {args.credentials}: the {what} listeners match different entries; "
            "a server has one certificate"
        )
    found = matches.pop()
    if found is None:
        return TlsEntry()
    pattern, entry = found
    if entry.kind == "tlscert":
        raise UsageError(
            f"--credentials {args.credentials}: entry {pattern!r}: tlscert names the CAs a "
            'client trusts; a server\'s certificate goes in a "tls" entry (cert, key)'
        )
    if entry.kind != "tls":
        return TlsEntry()
    return entry


def _listen_text(uri: CoapUri) -> str:
    """A listener's URI as a credentials pattern sees it: scheme://host:port/."""
    return str(replace(uri, path=(), query=()))


def upstream_dtls(path: str) -> dict[str, DtlsCredentials]:
    """``coapkit proxy --upstream-credentials FILE``: the DTLS material of the proxy's own
    client, per ``coaps://`` pattern of the file (``Client(dtls=)``'s mapping, longest
    pattern first when several match): a ``dtls`` entry's pre-shared key, or a ``tls``/
    ``tlscert`` entry's certificates.  The file is aiocoap's format, read as a client
    reads it; entries for other schemes give nothing here.  Checked whole before the proxy
    starts (status 2 for material that cannot be used)."""
    credentials = load_credentials(path)
    found: dict[str, DtlsCredentials] = {}
    for pattern in credentials.entries:
        if not pattern.lower().startswith("coaps://"):
            continue
        resolved = credentials.lookup(pattern)  # the pattern matches itself: its entry
        if resolved is None or resolved[1].kind not in ("dtls", "tls", "tlscert"):
            continue
        entry = resolved[1]
        try:
            dtls = DtlsCredentials(
                psk_identity=entry.psk_identity,
                psk=entry.psk,
                cert=entry.cert,
                key=entry.key,
                ca=entry.ca,
                insecure=bool(entry.insecure),
            )
        except SecurityConfigError as exc:
            raise UsageError(f"--upstream-credentials {path}: {exc}") from None
        _usable(dtls)
        from coapkit.security.openssl_dtls import OpenSslClientEngine  # the dtls extra

        try:
            OpenSslClientEngine().context(dtls)
        except SecurityConfigError as exc:
            raise UsageError(f"--upstream-credentials {path}: {exc}") from None
        found[pattern] = dtls
    return found
