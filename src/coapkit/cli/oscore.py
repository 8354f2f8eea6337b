"""OSCORE on the command line: ``--credentials FILE`` and ``coapkit server --require-oscore``.

``--credentials FILE`` is aiocoap's credentials format (see
:mod:`coapkit.oscore.credentials`): its ``oscore`` entries name security context
directories in aiocoap's layout (:mod:`coapkit.runtime.oscore_files`).  A client
command protects a request whose URI matches an entry's pattern with that
context, over whichever transport the URI names; a server knows every
``oscore`` entry's client, each by its label (``":client1"``), which its
handlers see as ``request.security``.  ``--require-oscore PREFIX`` (repeatable)
makes the resources under that path answer unprotected requests with 4.01.

The contexts are loaded, and locked, before anything is sent or bound, and
closed (their state stored exactly) when the command ends.  A file or directory
that cannot be used is one line (status 2; an unreadable file, status 10); the
oscore extra missing is one line naming it (status 6, as for a transport whose
extra is missing).  Entries of other kinds (``tls``, ``tlscert``, ``dtls``...)
are not this module's: it leaves them to whoever handles them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from coapkit.cli.exits import LocalFileError, MissingExtraError, UsageError

if TYPE_CHECKING:
    from coapkit.oscore.credentials import CredentialsMap
    from coapkit.oscore.server import OscoreServer
    from coapkit.resources.site import Site

__all__ = [
    "CLIENT_HELP",
    "SERVER_HELP",
    "add_client_arguments",
    "add_server_arguments",
    "client_credentials",
    "server_oscore",
]

CLIENT_HELP = """
OSCORE (RFC 8613): --credentials FILE in aiocoap's format maps URI patterns to
security context directories (aiocoap's layout: settings.json, secret.json,
sequence.json), e.g.
  {"coap://device.example/*": {"oscore": {"basedir": "contexts/device/"}}}
A request whose URI matches is protected end to end, over any transport; a
failed OSCORE exchange is one line naming the cause (status 4 when the server
refused it with 4.01, 4.00 or 4.02; status 7 when its answer fails verification).
"""

SERVER_HELP = """
OSCORE (RFC 8613): --credentials FILE (aiocoap's format) names the security
context of each client, e.g. {":client1": {"oscore": {"basedir": "from-client1/"}}};
a protected request is served with the client's label as request.security, and
--require-oscore PREFIX (repeatable) answers unprotected requests under PREFIX
with 4.01 Unauthorized.  One process uses a context at a time (--workers 1).
"""


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--credentials FILE`` (unless the parser has it already, for TLS)."""
    if not _has(parser, "--credentials"):
        parser.add_argument(
            "--credentials",
            metavar="FILE",
            help="security material per URI pattern, in aiocoap's JSON credentials format "
            "(OSCORE contexts: see below)",
        )


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--credentials FILE`` and ``--require-oscore PREFIX``."""
    add_client_arguments(parser)
    parser.add_argument(
        "--require-oscore",
        action="append",
        default=[],
        metavar="PREFIX",
        help="answer unprotected requests under this path prefix with 4.01 (repeatable)",
    )


def _load(path: str) -> CredentialsMap:
    try:
        from coapkit.oscore.algorithms import OscoreUnavailable, require_crypto

        require_crypto()
        from coapkit.oscore.errors import OscoreConfigError
        from coapkit.runtime.oscore_files import load_credentials
    except ImportError as exc:
        raise MissingExtraError(str(exc)) from None
    try:
        return load_credentials(path)
    except OscoreUnavailable as exc:
        raise MissingExtraError(str(exc)) from None
    except OscoreConfigError as exc:
        text = str(exc)
        if text.startswith(f"credentials file {path} does not exist") or "cannot be read" in text:
            raise LocalFileError(text) from None
        raise UsageError(f"--credentials {path}: {text}") from None


def uses_oscore(args: argparse.Namespace) -> bool:
    """Whether ``--credentials`` names OSCORE contexts (an ``oscore`` entry): a file with
    TLS material only needs neither the oscore extra nor one process per context.  A file
    that cannot be read or parsed says no here; its loader reports it."""
    path = getattr(args, "credentials", None)
    if path is None:
        return False
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and any(
        isinstance(value, dict) and ("oscore" in value or "edhoc-oscore" in value)
        for value in data.values()
    )


@contextmanager
def client_credentials(args: argparse.Namespace) -> Iterator[CredentialsMap | None]:
    """The OSCORE credentials of a client command (None without ``--credentials``), closed
    when the command ends."""
    path = getattr(args, "credentials", None)
    if path is None or not uses_oscore(args):
        yield None
        return
    credentials = _load(path)
    try:
        yield credentials
    finally:
        credentials.close()


@contextmanager
def server_oscore(
    args: argparse.Namespace, site: Site | None = None
) -> Iterator[OscoreServer | None]:
    """The OSCORE layer of a server command (None without ``--credentials`` and
    ``--require-oscore``), its contexts closed when the server stops.  With
    ``edhoc-oscore`` entries (one with the server's own credential), ``site`` gets
    ``/.well-known/edhoc``: clients set OSCORE contexts up with EDHOC (RFC 9528)."""
    path = getattr(args, "credentials", None)
    require = list(getattr(args, "require_oscore", []) or [])
    if path is None or not uses_oscore(args):
        if require:
            raise UsageError(
                "--require-oscore needs --credentials with the clients' OSCORE contexts"
            )
        yield None
        return
    if getattr(args, "workers", 1) > 1:
        raise UsageError(
            "--credentials with --workers: a security context may be used by one process "
            "only (its sequence numbers must never repeat); run one worker"
        )
    credentials = _load(path)
    try:
        from coapkit.oscore.server import OscoreServer

        try:
            layer = OscoreServer(credentials.server_contexts(), require=require)
        except ValueError as exc:
            raise UsageError(f"--credentials {path}: {exc}") from None
        if site is not None and credentials.edhoc:
            import time

            from coapkit.edhoc.coap import EdhocResource
            from coapkit.edhoc.config import server_setup

            setup = server_setup(credentials.edhoc)
            if setup is not None:
                identity, peers = setup
                suites = sorted({entry.suite for entry in credentials.edhoc.values()})
                resource = EdhocResource(
                    identity, peers, layer, clock=time.monotonic, suites=suites
                )
                site.add("/.well-known/edhoc", resource)
        yield layer
    finally:
        credentials.close()
