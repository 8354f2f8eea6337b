"""``edhoc-oscore`` entries of a credentials map (aiocoap 0.4.17's format), made usable.

An entry (aiocoap's ``credentials.cddl``)::

    {"edhoc-oscore": {
        "suite": 2, "method": 3,
        "own_cred_style": "by-key-id",        # or "by-value"
        "own_cred": {14: CCS},                # this party's credential (a kccs map)
        "private_key_file": "me.cosekey",     # or "private_key": {1: 2, -1: 1, -4: d}
        "peer_cred": {14: CCS}                # or {"unauthenticated": true}
    }}

A client uses the entry of the URI it requests (pattern ``coap://host/*``):
its own credential and key, and the server's ``peer_cred``.  A server takes
its identity from the entry that has ``own_cred`` and accepts the peers of
every entry's ``peer_cred``, each known by its entry's key (``":client1"``,
what its requests show as ``security``); ``{"unauthenticated": true}``
accepts any peer that sends its credential by value, which authenticates
nothing about who it is.

In JSON, where maps have text keys and there are no byte strings, an integer
key is written as its digits (``"14"``, ``"-2"``) and a byte string as
``{"hex": "..."}`` or ``{"ascii": "..."}``, as aiocoap's "compatible-bstr"
allows.  Credentials are encoded canonically (RFC 7049 §3.9), as aiocoap
encodes them, so that both stacks hash the same bytes.

Only EC2 P-256 private keys (``{1: 2, -1: 1, -4: d}``, what ``aiocoap-keygen``
writes) and OKP keys (``{1: 1, -1: 4 or 6, -4: d}``) are taken.  Reading key
files is the runtime's (:func:`coapkit.runtime.oscore_files.load_credentials`):
this module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coapkit.edhoc.cbor import CborItem
from coapkit.edhoc.credentials import Credential, Identity, TrustedPeers, ccs_credential
from coapkit.edhoc.crypto import SUITES
from coapkit.edhoc.errors import EdhocError
from coapkit.edhoc.session import METHODS
from coapkit.oscore.errors import OscoreConfigError

__all__ = ["EdhocEntry", "normalise", "parse_edhoc_entry", "parse_private_key", "server_setup"]

KNOWN_ITEMS = frozenset(
    {
        "suite",
        "method",
        "own_cred_style",
        "own_cred",
        "peer_cred",
        "private_key_file",
        "private_key",
        "use_combined_edhoc",
    }
)
_INTEGER = re.compile(r"-?[0-9]+")


def normalise(value: object) -> CborItem:
    """A JSON-ish value as CBOR would have it: digit keys as integers, ``{"hex": ...}``
    and ``{"ascii": ...}`` as byte strings (aiocoap's compatible-bstr)."""
    if isinstance(value, Mapping):
        if len(value) == 1 and "hex" in value and isinstance(value["hex"], str):
            text = re.sub(r"[\s:-]", "", value["hex"])
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise OscoreConfigError(f"not hex: {value['hex']!r}") from None
        if len(value) == 1 and "ascii" in value and isinstance(value["ascii"], str):
            try:
                return value["ascii"].encode("ascii")
            except UnicodeEncodeError:
                raise OscoreConfigError("an ascii value is not ASCII") from None
        out: dict[CborItem, CborItem] = {}
        for name, item in value.items():
            key = int(name) if isinstance(name, str) and _INTEGER.fullmatch(name) else name
            out[normalise(key)] = normalise(item)
        return out
    if isinstance(value, (list, tuple)):
        return [normalise(item) for item in value]
    if value is None or isinstance(value, (bool, int, bytes, str)):
        return value
    raise OscoreConfigError(f"a credential holds a {type(value).__name__}")


def parse_private_key(key: object) -> bytes:
    """The 32-byte private key of a COSE_Key (aiocoap's key file: ``{1: 2, -1: 1, -4: d}``)."""
    parsed = normalise(key)
    if not isinstance(parsed, dict) or parsed.get(1) not in (1, 2):
        raise OscoreConfigError("a private key is a COSE_Key map of kty 1 (OKP) or 2 (EC2)")
    d = parsed.get(-4)
    if not isinstance(d, bytes) or len(d) != 32:
        raise OscoreConfigError("a private key needs a 32-byte d (-4)")
    if parsed.get(1) == 2 and parsed.get(-1) != 1:
        raise OscoreConfigError("an EC2 private key is on P-256 (crv 1)")
    return d


@dataclass(frozen=True)
class EdhocEntry:
    """One ``edhoc-oscore`` entry: ``identity`` (None: a peer entry of a server),
    ``peer`` (the credential expected of the other party; None with ``unauthenticated``)."""

    key: str
    method: int
    suite: int
    identity: Identity | None
    peer: Credential | None
    unauthenticated: bool = False
    use_combined: bool | None = None
    peers: TrustedPeers = field(default_factory=TrustedPeers)


def _kccs(where: str, value: CborItem) -> dict[CborItem, CborItem]:
    if not isinstance(value, dict) or list(value) != [14] or not isinstance(value[14], dict):
        raise OscoreConfigError(f"{where}: a credential is a kccs map, {{14: {{...}}}}")
    return value[14]


def parse_edhoc_entry(key: str, body: object, read_key_file: Callable[[str], object]) -> EdhocEntry:
    """An ``edhoc-oscore`` entry's body, checked; ``read_key_file(path)`` gives the
    COSE_Key map of a ``private_key_file``."""
    where = f"credentials entry {key!r}: edhoc-oscore"
    if not isinstance(body, Mapping):
        raise OscoreConfigError(f"{where} takes an object")
    unknown = set(body) - KNOWN_ITEMS
    if unknown:
        raise OscoreConfigError(f"{where} has no item {sorted(unknown)[0]!r}")
    suite, method = body.get("suite"), body.get("method")
    if not isinstance(suite, int) or suite not in SUITES:
        raise OscoreConfigError(f"{where}: suite {suite!r} is not supported (0 to 3)")
    if not isinstance(method, int) or method not in METHODS:
        raise OscoreConfigError(f"{where}: method {method!r} does not exist (0 to 3)")
    try:
        identity = _own(where, body, read_key_file)
        peer_value = normalise(body.get("peer_cred"))
        unauthenticated = peer_value == {"unauthenticated": True}
        peer = None
        if peer_value is not None and not unauthenticated:
            peer = ccs_credential(_kccs(where, peer_value), label=key)
    except EdhocError as exc:
        raise OscoreConfigError(f"{where}: {exc.reason}") from None
    combined = body.get("use_combined_edhoc")
    peers = TrustedPeers([peer] if peer else [], accept_unknown=unauthenticated)
    return EdhocEntry(
        key,
        method,
        suite,
        identity,
        peer,
        unauthenticated,
        combined if isinstance(combined, bool) else None,
        peers,
    )


def _own(
    where: str, body: Mapping[str, Any], read_key_file: Callable[[str], object]
) -> Identity | None:
    own = normalise(body.get("own_cred"))
    style = body.get("own_cred_style")
    key_file, key = body.get("private_key_file"), body.get("private_key")
    if key_file is not None and key is not None:
        raise OscoreConfigError(f"{where}: private_key and private_key_file exclude each other")
    if own is None:
        if style is not None or key_file is not None or key is not None:
            raise OscoreConfigError(
                f"{where}: own_cred, own_cred_style and a private key go together"
            )
        return None
    if style not in ("by-key-id", "by-value") or (key_file is None and key is None):
        raise OscoreConfigError(
            f"{where}: own_cred needs own_cred_style (by-key-id or by-value) and a private key"
        )
    if key_file is not None:
        if not isinstance(key_file, str):
            raise OscoreConfigError(f"{where}: private_key_file is a path")
        key = read_key_file(key_file)
    credential = ccs_credential(_kccs(where, own), by_value=style == "by-value")
    return Identity(credential, parse_private_key(key))


def server_setup(entries: Mapping[str, object]) -> tuple[Identity, TrustedPeers] | None:
    """A server's EDHOC identity (the entry with an own credential; the first of them)
    and the peers of every entry (``CredentialsMap.edhoc``); None without an own
    credential."""
    found = [e for e in entries.values() if isinstance(e, EdhocEntry)]
    identity = next((e.identity for e in found if e.identity is not None), None)
    if identity is None:
        return None
    peers = [e.peer for e in found if e.peer is not None]
    unauthenticated = any(e.unauthenticated for e in found)
    return identity, TrustedPeers(peers, accept_unknown=unauthenticated)
