"""Security material on the command line: ``--cert``/``--key``/``--ca``/``--insecure``,
``--psk-identity``/``--psk`` and ``--credentials FILE`` (docs/transports.md).

The client commands and the servers take the same flags and mean the same by
them; this module turns them into what the library takes, before anything is
sent or bound, so that a mistake costs no round trip and ends with one line:

* the client commands: :func:`client_tls` gives the
  :class:`~coapkit.security.tls.TlsCredentials` of ``Client(tls=)`` for a
  ``coaps+tcp://`` or ``coaps+ws://`` URI (None for the other schemes, where
  the flags have no effect and a warning says so);
* the servers: :func:`server_tls` gives the ``ssl.SSLContext`` of
  ``Server(ssl_context=)`` when a listener is ``coaps+tcp://`` or
  ``coaps+ws://``.  ``--ca`` there makes client certificates mandatory: a
  server that names the CAs of its clients means to know who they are.

Exit statuses: options that do not go together (``--key`` without ``--cert``,
``--psk`` without ``--psk-identity``), material that cannot be used (no
certificate in the file, a key of another certificate, an encrypted key), a
credentials file that is not what it should be, and pre-shared keys (over
TLS there are none in Python's :mod:`ssl` before 3.13, and DTLS is not
there yet) are status 2 (:class:`~coapkit.cli.exits.UsageError`); a file
that cannot be read is status 10 (:class:`~coapkit.cli.exits.LocalFileError`),
as an unreadable ``--payload @FILE`` is.

``--credentials FILE`` reads aiocoap's credentials format (aiocoap's
``credentials.py`` and ``credentials.cddl``), so that a file written for
``aiocoap-client --credentials`` works unchanged where it describes what
coapkit has: a JSON object whose keys are URI patterns (``*`` matches
anything) or labels (``:name``), and whose values are a label (a reference
to that entry), ``null`` (no entry), or an object with one key naming the
kind of entry:

* ``{"tlscert": {"certfile": PEM}}`` (aiocoap's): the CAs that verify the
  server, for a client (``--ca``);
* ``{"tls": {"cert": PEM, "key": PEM, "ca": PEM, "insecure": BOOL}}``
  (coapkit's addition; every member optional): what the flags of the same
  names give, for a client or a server;
* ``{"oscore": {"basedir": DIR}}`` (aiocoap's): an OSCORE security context,
  read by :mod:`coapkit.cli.oscore`; it gives no TLS material.

A client uses the entry of the longest pattern that matches its URI
(following references), as aiocoap's ``credentials_from_request`` does; a
server the entry that matches its TLS listeners' URIs.  The flags override
it, member by member.  Every other kind aiocoap knows (``dtls``,
``edhoc-oscore``, ``any-of``, ``all-of``) is refused when the file is read,
in one line naming the entry: ignoring it could send in the clear what the
file meant to protect.  File names are taken relative to the current
directory, as aiocoap does.
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
from coapkit.security.tls import TlsCredentials, client_context, psk_key, server_context

__all__ = [
    "Credentials",
    "TlsEntry",
    "client_tls",
    "load_credentials",
    "server_tls",
]

#: the kinds of aiocoap's credentials entries coapkit does not have yet, and why
UNSUPPORTED_KINDS = {
    "dtls": "DTLS (coaps://) is not supported yet",
    "any-of": "alternatives (any-of) are not supported",
    "any": "alternatives (any) are not supported",
    "all-of": "combinations (all-of) are not supported",
    "all": "combinations (all) are not supported",
}

PSK_NOT_OVER_TLS = (
    "{scheme}:// with a pre-shared key is not supported yet (TLS-PSK: Python's ssl module "
    "has none before 3.13); use certificates (--cert, --key, --ca); pre-shared keys come "
    "with DTLS (coaps://)"
)


@dataclass(frozen=True)
class TlsEntry:
    """What a ``tls`` or ``tlscert`` entry of a credentials file gives (None: not given)."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    insecure: bool | None = None
    kind: str = "tls"  #: "tls" (coapkit's), "tlscert" (aiocoap's), "oscore" (none: OSCORE's)


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


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace("\\*", ".*"))


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
    if kind not in ("tls", "tlscert"):
        raise UsageError(
            f"{here}: unknown kind of credential {kind!r} (coapkit has tls, tlscert, oscore)"
        )
    if not isinstance(body, dict):
        raise UsageError(f"{here}: {kind} takes an object")
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


def _usable(credentials: TlsCredentials) -> None:
    for path, what in (
        (credentials.cert, "certificate"),
        (credentials.key, "key"),
        (credentials.ca, "CA"),
    ):
        _readable(None if path is None else os.fspath(path), what)


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
                "(coaps+tcp:// and coaps+ws:// use them)"
            )
        return None
    if args.psk is not None:
        raise UsageError(f"--psk: {PSK_NOT_OVER_TLS.format(scheme=uri.scheme)}")
    found = None if credentials is None else credentials.lookup(str(uri))
    entry = TlsEntry() if found is None else found[1]
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
        origin = "--insecure" if args.insecure else f"--credentials {args.credentials} (insecure)"
        diagnostics.line(
            f"coapkit: warning: {origin}: not checking that the server's certificate is "
            f"for {uri.host!r} (its chain is still verified)"
        )
    return tls


def server_tls(args: argparse.Namespace, uris: list[CoapUri]) -> ssl.SSLContext | None:
    """The TLS context of a server for its listeners (None: no TLS listener); checked here,
    so that bad material fails before anything is bound."""
    _check_pairs(args)
    credentials = None if args.credentials is None else load_credentials(args.credentials)
    secure = [uri for uri in uris if uri.secure]
    if not secure:
        given = _given(args)
        if given:
            diagnostics.line(
                f"coapkit: warning: {', '.join(given)} ignored: no coaps+tcp:// or coaps+ws:// "
                "listener"
            )
        return None
    if args.psk is not None:
        raise UsageError(f"--psk: {PSK_NOT_OVER_TLS.format(scheme=secure[0].scheme)}")
    entry = TlsEntry()
    if credentials is not None:
        matches = {credentials.lookup(_listen_text(uri)) for uri in secure}
        if len(matches) > 1:
            raise UsageError(
                f"--credentials {args.credentials}: the TLS listeners match different entries; "
                "a server has one certificate"
            )
        found = matches.pop()
        if found is not None:
            pattern, entry = found
            if entry.kind == "tlscert":
                raise UsageError(
                    f"--credentials {args.credentials}: entry {pattern!r}: tlscert names the CAs a "
                    'client trusts; a server\'s certificate goes in a "tls" entry (cert, key)'
                )
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


def _listen_text(uri: CoapUri) -> str:
    """A listener's URI as a credentials pattern sees it: scheme://host:port/."""
    return str(replace(uri, path=(), query=()))
