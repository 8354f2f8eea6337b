"""Credentials maps: which security context a request uses, in aiocoap's JSON format.

The format is aiocoap's (``aiocoap/credentials.py``), so that one file works
with ``aiocoap-client --credentials`` and ``coapkit get --credentials``::

    {
      "coap://localhost/*": {"oscore": {"basedir": "client1/for-fileserver/"}},
      "coap://other/*": ":shared",
      ":shared": {"oscore": {"basedir": "contexts/shared/"}}
    }

Each key is a URI pattern (``*`` matches any text) or a label (``:name``);
each value is a reference to a label or an object with exactly one key, the
kind of credential.  A client takes the entry of the longest pattern that
matches the request's URI (following references); a server takes every
``oscore`` entry, and a request verified with one is from that entry's key
(``":client1"``: aiocoap's ``authenticated_claims``).  Kinds other than
``oscore`` (``dtls``, ``tlscert``, ``any-of``, ``all-of``, ``edhoc-oscore``, and
coapkit's ``tls``) are accepted and kept for whoever handles them, so that a file written for
both purposes loads; a kind nobody knows is an error, as it is for aiocoap.

This module is pure: it parses the structure and matches URIs.  Reading the
file and the context directories is the runtime's
(:mod:`coapkit.runtime.oscore_files`), which builds the contexts and hands
them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from coapkit.oscore.context import SecurityContext
from coapkit.oscore.errors import OscoreConfigError

__all__ = ["CredentialsMap", "OscoreEntry", "OtherEntry", "Reference", "parse_credentials"]

#: the kinds of credential aiocoap 0.4.17 defines, and coapkit's "tls" (the command line's
#: TLS entries: certificate, key, CAs)
KNOWN_KINDS = frozenset({"oscore", "dtls", "tlscert", "any-of", "all-of", "edhoc-oscore", "tls"})
#: how many references a lookup follows (a loop of references is an error)
MAX_REFERENCES = 16


@dataclass(frozen=True, slots=True)
class OscoreEntry:
    """``{"oscore": {"basedir": "DIR/"}}``: a security context directory."""

    basedir: str


@dataclass(frozen=True, slots=True)
class Reference:
    """``":label"``: use the entry of that label."""

    target: str


@dataclass(frozen=True, slots=True)
class OtherEntry:
    """A credential of another kind (TLS, DTLS...), kept as it was written."""

    kind: str
    value: Any


Entry = OscoreEntry | Reference | OtherEntry


class EdhocSetup(Protocol):
    """What an ``edhoc-oscore`` entry becomes (:class:`coapkit.edhoc.config.EdhocEntry`):
    the party's identity, the peers it accepts, the method and the cipher suite."""

    @property
    def identity(self) -> Any: ...

    @property
    def peers(self) -> Any: ...

    @property
    def method(self) -> int: ...

    @property
    def suite(self) -> int: ...


def _entry(key: str, value: object) -> Entry:
    if isinstance(value, str):
        if not value.startswith(":"):
            raise OscoreConfigError(f"credentials entry {key!r}: a reference starts with ':'")
        return Reference(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        found = ", ".join(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
        raise OscoreConfigError(
            f"credentials entry {key!r} must be an object with exactly one key, "
            f"the kind of credential (found: {found or 'nothing'})"
        )
    ((kind, body),) = value.items()
    if kind not in KNOWN_KINDS:
        raise OscoreConfigError(f"credentials entry {key!r}: unknown kind of credential {kind!r}")
    if kind != "oscore":
        return OtherEntry(kind, body)
    if not isinstance(body, Mapping):
        raise OscoreConfigError(f"credentials entry {key!r}: 'oscore' takes an object")
    unknown = set(body) - {"basedir", "contextfile"}
    if unknown:
        raise OscoreConfigError(
            f"credentials entry {key!r}: 'oscore' has no item {sorted(unknown)[0]!r}"
        )
    basedir = body.get("basedir", body.get("contextfile"))
    if not isinstance(basedir, str) or not basedir:
        raise OscoreConfigError(f"credentials entry {key!r}: 'oscore' needs a 'basedir'")
    return OscoreEntry(basedir)


def parse_credentials(data: object) -> dict[str, Entry]:
    """The entries of a credentials map (a JSON object); OscoreConfigError says what is
    wrong in one line."""
    if not isinstance(data, Mapping):
        raise OscoreConfigError("a credentials file holds a JSON object")
    entries: dict[str, Entry] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise OscoreConfigError("a credentials key is a string")
        if value is None:
            continue  # aiocoap: null removes an entry
        entries[key] = _entry(key, value)
    for key, entry in entries.items():
        if isinstance(entry, Reference) and entry.target not in entries:
            raise OscoreConfigError(
                f"credentials entry {key!r} refers to {entry.target!r}, which is not there"
            )
    return entries


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text).replace("\\*", ".*"))


class CredentialsMap:
    """The credentials of a client or a server, with the OSCORE contexts made.

    ``entries`` come from :func:`parse_credentials`; ``contexts`` maps the key of each
    ``oscore`` entry to its security context (the runtime loads them from their
    directories: :func:`coapkit.runtime.oscore_files.load_credentials`).
    """

    def __init__(
        self,
        entries: Mapping[str, Entry],
        contexts: Mapping[str, SecurityContext],
        edhoc: Mapping[str, EdhocSetup] | None = None,
    ) -> None:
        self.entries = dict(entries)
        self.contexts = dict(contexts)
        #: the ``edhoc-oscore`` entries, made by the runtime (:mod:`coapkit.edhoc.config`)
        self.edhoc = dict(edhoc or {})
        self._patterns = sorted(
            ((key, _pattern(key)) for key in self.entries if not key.startswith(":")),
            key=lambda item: len(item[0]),
            reverse=True,
        )

    @classmethod
    def from_data(cls, data: object, load: Callable[[str, str], SecurityContext]) -> CredentialsMap:
        """Parse ``data`` and make each OSCORE context with ``load(basedir, label)``."""
        entries = parse_credentials(data)
        contexts = {
            key: load(entry.basedir, key)
            for key, entry in entries.items()
            if isinstance(entry, OscoreEntry)
        }
        return cls(entries, contexts)

    def entry_for_uri(self, uri: str) -> tuple[str, Entry] | None:
        """The entry (and its key) a request to ``uri`` uses: the longest matching
        pattern's, references followed; None when no pattern matches."""
        matching = (key for key, pattern in self._patterns if pattern.fullmatch(uri))
        key = next(matching, None)
        if key is None:
            return None
        entry = self.entries[key]
        for _ in range(MAX_REFERENCES):
            if not isinstance(entry, Reference):
                return key, entry
            key = entry.target
            entry = self.entries[key]
        raise OscoreConfigError(f"credentials: the references from {uri!r} go round in a loop")

    def context_for_uri(self, uri: str) -> SecurityContext | None:
        """The OSCORE context a client protects a request to ``uri`` with, or None."""
        found = self.entry_for_uri(uri)
        if found is None:
            return None
        return self.contexts.get(found[0])

    def edhoc_for_uri(self, uri: str) -> tuple[str, EdhocSetup] | None:
        """The ``edhoc-oscore`` entry (and its key) a request to ``uri`` sets OSCORE up
        with, or None."""
        found = self.entry_for_uri(uri)
        if found is None or found[0] not in self.edhoc:
            return None
        return found[0], self.edhoc[found[0]]

    def server_contexts(self) -> list[SecurityContext]:
        """Every OSCORE context, for a server: each labelled with its entry's key."""
        return list(self.contexts.values())

    def close(self) -> None:
        """Close every context (exact state stored, directories unlocked)."""
        for context in self.contexts.values():
            context.close()
