"""The resource directory's data: registrations, their parameters, links and lookups.

RFC 9176 §5.3 (registration parameters: ``ep``, ``d``, ``lt``, ``base`` and extra
attributes such as ``et``), §5.3.1 (what an update may change), §6 (lookup filters,
``page`` and ``count``), Appendix C (resolving the links of a registration against its
base: RFC 3986 §5.2), and the JSON and CBOR serialisations of links that RFC 9176 lists
beside ``application/link-format`` (``application/link-format+json``, 504, and
``application/link-format+cbor``, 64: an array of one object per link, ``href`` and
the attributes as members).

Pure like the core (docs/architecture.md rule 1): no clock, no I/O.  Everything the
stores and the resources share lives here, so that the SQLite and the Redis stores
store and match exactly the same things: :func:`index_entries` is what a lookup can
filter on, :func:`value_matches` how a filter value matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from coapkit.codec.codes import Code
from coapkit.codec.content_formats import LINK_FORMAT
from coapkit.codec.link_format import Link, parse_link_format, serialize_link_format
from coapkit.errors import BadRequest, LinkFormatError, RespondWith

__all__ = [
    "LINK_FORMAT_CBOR",
    "LINK_FORMAT_JSON",
    "LINK_FORMATS",
    "Lookup",
    "RDConfig",
    "Registration",
    "RegistrationParameters",
    "check_base",
    "decode_links",
    "encode_links",
    "endpoint_attributes",
    "endpoint_link",
    "index_entries",
    "matching_positions",
    "merge_attributes",
    "pack_attributes",
    "pack_links",
    "unpack_attributes",
    "unpack_links",
    "parse_lookup",
    "parse_registration",
    "resolve",
    "resolved_links",
    "value_matches",
]

#: ``application/link-format+cbor`` and ``application/link-format+json`` (IANA CoAP
#: Content-Formats; the serialisations RFC 9176 lists beside link-format)
LINK_FORMAT_CBOR = 64
LINK_FORMAT_JSON = 504
#: The Content-Formats registrations are read in and lookups answered in
LINK_FORMATS = frozenset({LINK_FORMAT, LINK_FORMAT_JSON, LINK_FORMAT_CBOR})

#: RFC 9176 §5.3: the lifetime when a registration gives none (25 hours), and its range
DEFAULT_LIFETIME = 90_000
MAX_LIFETIME = 4_294_967_295
#: RFC 9176 §5.3: ``ep`` and ``d`` are at most 63 bytes of UTF-8
MAX_NAME_BYTES = 63

#: parameters with a meaning of their own, never stored as endpoint attributes
_SINGLE = ("ep", "d", "lt", "base")
_NOT_ATTRIBUTES = frozenset({*_SINGLE, "page", "count", "href", "anchor", "rt", "if", "ct"})
#: link attributes whose value is a space-separated list, each item matched alone
_LIST_VALUED = frozenset({"rt", "if", "ct", "rel"})


@dataclass(frozen=True)
class RDConfig:
    """The limits and defaults of a resource directory (docs/rd.md, SECURITY.md).

    ``default_lifetime``: the ``lt`` of a registration that gives none (RFC 9176:
    90,000 s); ``max_lifetime``: the largest ``lt`` taken (RFC 9176's own bound, 2^32-1
    s, by default; a larger one, or 0, is answered 4.00).  ``max_body``: the largest
    registration payload in bytes (4.13 with Size1 beyond; a body that large arrives
    block-wise).  ``max_links``: links in one registration (4.13 beyond).
    ``max_attribute_length``: bytes of a ``base`` or of an extra attribute's value.
    ``max_registrations``: registrations in the directory (5.03 with Max-Age beyond);
    ``max_per_source``: registrations made from one source address (5.03 beyond).
    ``simple_timeout``: seconds a simple registration waits for the endpoint's
    ``/.well-known/core`` (5.04 beyond).
    """

    default_lifetime: int = DEFAULT_LIFETIME
    max_lifetime: int = MAX_LIFETIME
    max_body: int = 16_384
    max_links: int = 256
    max_attribute_length: int = 255
    max_registrations: int = 1_000_000
    max_per_source: int = 1_000
    simple_timeout: float = 30.0
    retry_after: int = 60
    """Max-Age of a 5.03 for a full directory: when to try again."""

    def __post_init__(self) -> None:
        if not 1 <= self.default_lifetime <= self.max_lifetime <= MAX_LIFETIME:
            raise ValueError("need 1 <= default_lifetime <= max_lifetime <= 4294967295")
        for name in ("max_body", "max_links", "max_registrations", "max_per_source"):
            if getattr(self, name) < 1:
                raise ValueError(f"RDConfig.{name} must be at least 1")


@dataclass(frozen=True)
class Registration:
    """One registration (RFC 9176 §5.3) as the directory stores it.

    ``id`` names the registration resource (``/reg/ID``); ``sector`` is ``d`` (``""``
    for none); ``base`` the URI the links are resolved against, ``explicit_base``
    whether the registrant gave it (otherwise it follows the source address of each
    update, RFC 9176 §5.3.1); ``expires`` the wall-clock time (seconds since the epoch)
    after which it is gone; ``attributes`` the endpoint attributes (``et`` and the
    extra parameters, in order); ``links`` as registered (relative ones unresolved);
    ``source`` the host it came from (the per-source limit) and ``owner`` the security
    identity that made it (the registration policy's business).
    """

    id: int
    ep: str
    sector: str
    base: str
    explicit_base: bool
    lifetime: int
    expires: float
    attributes: tuple[tuple[str, str | None], ...] = ()
    links: tuple[Link, ...] = ()
    source: str = ""
    owner: str | None = None

    @property
    def path(self) -> str:
        """The registration resource's path: ``/reg/ID``."""
        return f"/reg/{self.id}"

    def with_changes(self, **changes: Any) -> Registration:
        return replace(self, **changes)


@dataclass(frozen=True)
class RegistrationParameters:
    """The query of a registration or an update, checked (None: not given)."""

    ep: str | None = None
    sector: str | None = None
    lifetime: int | None = None
    base: str | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Lookup:
    """A lookup's filters (``(name, value)``, value None for "has it") and its page."""

    filters: tuple[tuple[str, str | None], ...] = ()
    page: int = 0
    count: int | None = None

    @property
    def offset(self) -> int:
        return self.page * self.count if self.count is not None else 0


# -- parameters ------------------------------------------------------------------------------


def _arguments(query: Iterable[str]) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for argument in query:
        name, equals, value = argument.partition("=")
        if not name:
            raise BadRequest(f"query argument {argument!r} has no name")
        pairs.append((name.lower(), value if equals else None))
    return pairs


def _name(what: str, value: str | None) -> str:
    if not value:
        raise BadRequest(f"{what} is empty")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadRequest(f"{what} is longer than {MAX_NAME_BYTES} bytes (RFC 9176 §5.3)")
    return value


def _lifetime(value: str | None, config: RDConfig) -> int:
    text = value or ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise BadRequest(f"lt must be a number of seconds, not {value!r}")
    lifetime = int(text)
    if not 1 <= lifetime <= config.max_lifetime:
        raise BadRequest(f"lt must be between 1 and {config.max_lifetime} seconds, not {text}")
    return lifetime


def check_base(value: str | None, config: RDConfig) -> str:
    """``base`` as RFC 9176 §5.3 wants it: an absolute URI, no query nor fragment."""
    if not value:
        raise BadRequest("base is empty")
    if len(value.encode("utf-8")) > config.max_attribute_length:
        raise BadRequest(f"base is longer than {config.max_attribute_length} bytes")
    scheme, authority, _, query, fragment = _split(value)
    if scheme is None or authority is None:
        raise BadRequest(f"base must be an absolute URI such as coap://host:port, not {value!r}")
    if query is not None or fragment is not None:
        raise BadRequest("base must have neither query nor fragment")
    if any(char in value for char in ' <>"\\^`{|}') or not value.isprintable():
        raise BadRequest(f"base {value!r} is not a URI")
    return value


def parse_registration(
    query: Sequence[str], config: RDConfig, *, update: bool = False
) -> RegistrationParameters:
    """The parameters of a registration (RFC 9176 §5.3) or an update (§5.3.1);
    BadRequest naming the fault.  ``ep`` is not required here: the policy may take it
    from the security identity."""
    seen: set[str] = set()
    values: dict[str, str | None] = {}
    attributes: list[tuple[str, str | None]] = []
    for name, value in _arguments(query):
        if name in _SINGLE:
            if name in seen:
                raise BadRequest(f"{name} is given more than once")
            seen.add(name)
            values[name] = value
        elif name in _NOT_ATTRIBUTES:
            raise BadRequest(f"{name} is not a registration parameter (RFC 9176 §5.3)")
        else:
            if value is not None and len(value.encode("utf-8")) > config.max_attribute_length:
                raise BadRequest(f"{name} is longer than {config.max_attribute_length} bytes")
            attributes.append((name, value))
    if update and ("ep" in values or "d" in values):
        raise BadRequest("ep and d cannot be changed by an update (RFC 9176 §5.3.1)")
    return RegistrationParameters(
        ep=_name("ep", values["ep"]) if "ep" in values else None,
        sector=_name("d", values["d"]) if "d" in values else None,
        lifetime=_lifetime(values["lt"], config) if "lt" in values else None,
        base=check_base(values["base"], config) if "base" in values else None,
        attributes=tuple(attributes),
    )


def merge_attributes(
    old: tuple[tuple[str, str | None], ...], new: tuple[tuple[str, str | None], ...]
) -> tuple[tuple[str, str | None], ...]:
    """An update's attributes over the registration's (RFC 9176 §5.3.1): a name given
    replaces every value it had, an empty value (``name=``) removes it."""
    if not new:
        return old
    names = {name for name, _ in new}
    kept = [(name, value) for name, value in old if name not in names]
    kept.extend((name, value) for name, value in new if value != "")
    return tuple(kept)


def parse_lookup(query: Sequence[str]) -> Lookup:
    """The filters and page of a lookup (RFC 9176 §6); BadRequest for a bad page."""
    filters: list[tuple[str, str | None]] = []
    page: int | None = None
    count: int | None = None
    for name, value in _arguments(query):
        if name in ("page", "count"):
            text = value or ""
            if not (text.isascii() and text.isdigit()) or len(text) > 9:
                raise BadRequest(f"{name} must be a number, not {value!r}")
            if name == "page":
                page = int(text)
            else:
                count = int(text)
            continue
        filters.append((name, None if value in (None, "", "*") else value))
    if page is not None and count is None:
        raise BadRequest("page needs count (RFC 9176 §6)")
    return Lookup(tuple(filters), page or 0, count)


def value_matches(candidate: str, pattern: str | None) -> bool:
    """A lookup filter's value against one stored value: equal, or a prefix for a
    pattern ending in ``*``; None matches any value (RFC 9176 §6, RFC 6690 §4.1)."""
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return candidate.startswith(pattern[:-1])
    return candidate == pattern


# -- link formats ----------------------------------------------------------------------------


def _cbor() -> Any:
    from coapkit.resources.response import load_cbor

    return load_cbor()


def decode_links(payload: bytes, content_format: int | None) -> list[Link]:
    """The links of a registration payload; BadRequest for one that does not parse,
    4.15 for a Content-Format that is not a link format (none means link-format)."""
    if content_format is None or content_format == LINK_FORMAT:
        try:
            return parse_link_format(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest("the link-format payload is not UTF-8") from None
        except LinkFormatError as exc:
            raise BadRequest(f"malformed link-format: {exc}") from None
    if content_format == LINK_FORMAT_JSON:
        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadRequest(f"malformed link-format+json: {exc}") from None
        return _links_from_objects(document, "link-format+json")
    if content_format == LINK_FORMAT_CBOR:
        cbor2 = _cbor()
        try:
            document = cbor2.loads(payload)
        except (cbor2.CBORError, ValueError, RecursionError) as exc:
            raise BadRequest(f"malformed link-format+cbor: {exc}") from None
        return _links_from_objects(document, "link-format+cbor")
    raise RespondWith(
        Code.UNSUPPORTED_CONTENT_FORMAT,
        f"Content-Format {content_format} is not a link format "
        f"(accepted: {', '.join(str(n) for n in sorted(LINK_FORMATS))})",
    )


def _links_from_objects(document: object, what: str) -> list[Link]:
    if not isinstance(document, list):
        raise BadRequest(f"{what} is an array of links")
    links = []
    for item in document:
        if not isinstance(item, dict) or not isinstance(item.get("href"), str):
            raise BadRequest(f"each link of {what} is a map with a text href")
        attributes: list[tuple[str, str | None]] = []
        for name, value in item.items():
            if name == "href":
                continue
            if not isinstance(name, str):
                raise BadRequest(f"{what}: attribute names are text")
            for single in value if isinstance(value, list) else [value]:
                if single is True:
                    attributes.append((name, None))
                elif isinstance(single, str):
                    attributes.append((name, single))
                elif isinstance(single, int) and not isinstance(single, bool):
                    attributes.append((name, str(single)))
                else:
                    raise BadRequest(f"{what}: the value of {name!r} is not text")
        link = Link(item["href"], tuple(attributes))
        if "<" in link.target or ">" in link.target:
            raise BadRequest(f"{what}: a target holds '<' or '>'")
        links.append(link)
    return links


def _objects(links: Iterable[Link]) -> list[dict[str, Any]]:
    objects = []
    for link in links:
        item: dict[str, Any] = {"href": link.target}
        for name, value in link.attributes:
            shown: Any = True if value is None else value
            if name in item:
                previous = item[name]
                item[name] = [*previous, shown] if isinstance(previous, list) else [previous, shown]
            else:
                item[name] = shown
        objects.append(item)
    return objects


def encode_links(links: Iterable[Link], content_format: int) -> bytes:
    """Links in one of :data:`LINK_FORMATS`."""
    if content_format == LINK_FORMAT_JSON:
        return json.dumps(_objects(links), separators=(",", ":"), ensure_ascii=False).encode()
    if content_format == LINK_FORMAT_CBOR:
        data: bytes = _cbor().dumps(_objects(links))
        return data
    return serialize_link_format(links).encode("utf-8")


# -- resolution (RFC 3986 §5.2, RFC 9176 Appendix C) -----------------------------------------


def _split(uri: str) -> tuple[str | None, str | None, str, str | None, str | None]:
    """(scheme, authority, path, query, fragment) of a URI reference (RFC 3986 Appendix B)."""
    fragment = query = scheme = authority = None
    rest = uri
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
    if "?" in rest:
        rest, query = rest.split("?", 1)
    colon = rest.find(":")
    if colon > 0 and "/" not in rest[:colon] and rest[0].isalpha():
        scheme, rest = rest[:colon], rest[colon + 1 :]
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority, rest = (rest[2:], "") if end < 0 else (rest[2:end], rest[end:])
    return scheme, authority, rest, query, fragment


def _remove_dots(path: str) -> str:
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if not path.startswith("/") or result.startswith("/") else "/" + result


def resolve(base: str, reference: str) -> str:
    """``reference`` resolved against ``base`` (RFC 3986 §5.2.2, strict), for any scheme."""
    scheme, authority, path, query, fragment = _split(reference)
    if scheme is None:
        b_scheme, b_authority, b_path, b_query, _ = _split(base)
        scheme = b_scheme
        if authority is None:
            if not path:
                path = b_path
                if query is None:
                    query = b_query
            else:
                if not path.startswith("/"):
                    if b_authority is not None and not b_path:
                        path = "/" + path
                    else:
                        path = b_path[: b_path.rfind("/") + 1] + path
                path = _remove_dots(path)
            authority = b_authority
        else:
            path = _remove_dots(path)
    else:
        path = _remove_dots(path)
    text = f"{scheme}:" if scheme is not None else ""
    if authority is not None:
        text += f"//{authority}"
    text += path
    if query is not None:
        text += f"?{query}"
    if fragment is not None:
        text += f"#{fragment}"
    return text


def resolved_links(registration: Registration) -> list[Link]:
    """The links of a registration as a resource lookup gives them (RFC 9176 §6,
    Appendix C): targets and anchors absolute, resolved against the base; a link
    without an anchor gets the base as its anchor (its context)."""
    base = registration.base
    result = []
    for link in registration.links:
        target = resolve(base, link.target)
        anchor = link.anchor
        anchor = base if anchor is None else resolve(base, anchor)
        attributes = [(name, value) for name, value in link.attributes if name.lower() != "anchor"]
        attributes.append(("anchor", anchor))
        result.append(Link(target, tuple(attributes)))
    return result


def endpoint_attributes(registration: Registration) -> list[tuple[str, str | None]]:
    """The attributes of a registration that an endpoint lookup shows and filters on."""
    attributes: list[tuple[str, str | None]] = [("ep", registration.ep)]
    if registration.sector:
        attributes.append(("d", registration.sector))
    attributes.append(("base", registration.base))
    attributes.append(("lt", str(registration.lifetime)))
    attributes.extend(registration.attributes)
    return attributes


def endpoint_link(registration: Registration) -> Link:
    """The registration as an endpoint lookup lists it (RFC 9176 §6)."""
    attributes = endpoint_attributes(registration)
    attributes.append(("rt", "core.rd-ep"))
    return Link(registration.path, tuple(attributes))


def _entries(attributes: Iterable[tuple[str, str | None]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, value in attributes:
        key = name.lower()
        if value is None:
            found.append((key, ""))
        elif key in _LIST_VALUED:
            found.extend((key, word) for word in value.split())
        else:
            found.append((key, value))
    return found


def index_entries(registration: Registration) -> list[tuple[int, str, str]]:
    """What a lookup can filter on: ``(link, name, value)`` with link 0 for the
    registration's own attributes (``ep``, ``d``, ``base``, ``lt``, ``et``... and
    ``href``, the registration resource's path) and 1, 2... for each link's (``href``
    and ``anchor`` resolved, each word of ``rt``, ``if``, ``ct`` and ``rel`` alone,
    ``""`` for an attribute without value).

    The same rule for both lookups (as aiocoap's): a filter matches an entry of the
    registration or of the link, so an endpoint lookup finds an endpoint by a
    resource's ``rt``, and a resource lookup finds the resources of an endpoint by its
    ``ep``."""
    entries = [(0, name, value) for name, value in _entries(endpoint_attributes(registration))]
    entries.append((0, "href", registration.path))
    for position, link in enumerate(resolved_links(registration), start=1):
        entries.append((position, "href", link.target))
        entries.extend((position, name, value) for name, value in _entries(link.attributes))
    return entries


def matching_positions(registration: Registration, lookup: Lookup) -> tuple[bool, list[int]]:
    """Whether the registration passes every filter of an endpoint lookup, and the
    positions (1, 2...) of its links that pass every filter of a resource lookup: the
    rule of :func:`index_entries`, in Python (the stores do it in their own way)."""
    entries = index_entries(registration)
    positions = set(range(1, len(registration.links) + 1))
    for name, pattern in lookup.filters:
        hits = {
            link for link, key, value in entries if key == name and value_matches(value, pattern)
        }
        if not hits:
            return False, []
        if 0 not in hits:
            positions &= hits
    return True, sorted(positions)


# -- how the stores keep a registration's parts as text ---------------------------------------


def pack_attributes(attributes: Iterable[tuple[str, str | None]]) -> str:
    return json.dumps([list(pair) for pair in attributes], separators=(",", ":"))


def unpack_attributes(text: str) -> tuple[tuple[str, str | None], ...]:
    return tuple((str(name), value) for name, value in json.loads(text))


def pack_links(links: Iterable[Link]) -> str:
    return serialize_link_format(links)


def unpack_links(text: str) -> tuple[Link, ...]:
    return tuple(parse_link_format(text)) if text else ()
