"""What a proxy may reach and where its reverse rules lead: targets, allow lists, rules.

* **Targets** (RFC 7252 §5.10.2, §6): a forward request names its target with
  Proxy-Uri, or with Proxy-Scheme and the Uri-* options.  The target is a
  :class:`~coapkit.codec.uri.CoapUri` for the CoAP schemes, or an
  :class:`HttpUri` for ``http`` and ``https`` (RFC 8075 §4 calls a proxy that
  takes those a CoAP-to-HTTP cross proxy).  :func:`target_of` reads it.
* **Allow lists**: an open forward proxy lets anyone send requests from the
  proxy's address to any host and port: an amplifier, a port scanner, a way
  past a firewall (see SECURITY.md).  :class:`AllowList` holds ``HOST[:PORT]``
  patterns (``*`` and ``?`` as in shell globs, case-insensitive; an IPv6 host
  in brackets); a target passes when one pattern matches its host as written
  in the request and, when the pattern has one, its port.
* **Reverse rules**: :class:`ReverseRule` maps a path prefix (``/up``) or a
  host name given in Uri-Host (``sensors.example``) to an upstream base URI:
  with ``/up=coap://h:p/base``, ``/up/x?q`` goes to ``coap://h:p/base/x?q``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias
from urllib.parse import quote, unquote, urlsplit

from coapkit.codec.options import Options
from coapkit.codec.uri import DEFAULT_PORTS, CoapUri, parse_proxy_uri, parse_uri
from coapkit.errors import OptionValueError, UriError

__all__ = [
    "HTTP_PORTS",
    "AllowList",
    "HttpUri",
    "ReverseRule",
    "Target",
    "UnsupportedScheme",
    "parse_reverse_rule",
    "parse_target",
    "target_of",
]

#: The default port of each HTTP scheme.
HTTP_PORTS = {"http": 80, "https": 443}


class UnsupportedScheme(UriError):
    """A target whose scheme this proxy does not speak (answered 5.05, RFC 7252 §5.7.2)."""


@dataclass(frozen=True, slots=True)
class HttpUri:
    """An ``http://`` or ``https://`` target, its components decoded as a CoapUri's are."""

    scheme: str
    host: str
    port: int
    path: tuple[str, ...] = ()
    query: tuple[str, ...] = ()

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def transport(self) -> str:
        return "http"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if self.port == HTTP_PORTS[self.scheme] else f"{host}:{self.port}"
        path = "/" + "/".join(quote(segment, safe="!$&'()*+,;=:@") for segment in self.path)
        query = "&".join(quote(argument, safe="!$'()*+,;=:@/?") for argument in self.query)
        return f"{self.scheme}://{authority}{path}" + (f"?{query}" if self.query else "")


#: Where a proxied request goes.
Target: TypeAlias = CoapUri | HttpUri

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def parse_http_uri(text: str) -> HttpUri:
    """An absolute ``http``/``https`` URI; :class:`UriError` when it is not one."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise UriError(f"bad HTTP URI {text[:60]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in HTTP_PORTS:
        raise UriError(f"{text[:60]!r} is not an http:// or https:// URI")
    if parts.fragment:
        raise UriError("URI has a fragment (#...), which a proxied request cannot carry")
    if not parts.hostname:
        raise UriError("URI has no host")
    if parts.username is not None:
        raise UriError("URI has user information (user@host), which is not forwarded")
    path = tuple(unquote(segment) for segment in parts.path.split("/")[1:]) if parts.path else ()
    if path == ("",):
        path = ()
    query = tuple(unquote(argument) for argument in parts.query.split("&")) if parts.query else ()
    return HttpUri(scheme, parts.hostname.lower(), port or HTTP_PORTS[scheme], path, query)


@lru_cache(maxsize=1024)
def parse_target(text: str) -> Target:
    """A target URI of any scheme a proxy may be asked for (cached: URIs are values).

    :class:`UnsupportedScheme` for a scheme that is neither CoAP's nor HTTP's;
    :class:`UriError` for a malformed URI.
    """
    match = _SCHEME.match(text.strip())
    scheme = match.group(1).lower() if match else ""
    if scheme in HTTP_PORTS:
        return parse_http_uri(text)
    if match and scheme not in DEFAULT_PORTS:
        raise UnsupportedScheme(f"this proxy does not speak {scheme}://")
    return parse_uri(text)


def target_of(options: Options) -> Target:
    """The target of a forward request: Proxy-Uri, or Proxy-Scheme with Uri-Host,
    Uri-Port, Uri-Path and Uri-Query (RFC 7252 §5.10.2, §6.5)."""
    try:
        proxy_uri = options.proxy_uri
        scheme = options.proxy_scheme
    except OptionValueError as exc:
        raise UriError(exc.reason) from None
    if proxy_uri is not None:
        return parse_target(proxy_uri)
    if scheme is None:
        raise UriError("request has neither a Proxy-Uri nor a Proxy-Scheme option")
    scheme = scheme.lower()
    if scheme in HTTP_PORTS:
        try:
            host = options.uri_host
            port = options.uri_port
            path, query = options.uri_path, options.uri_query
        except OptionValueError as exc:
            raise UriError(exc.reason) from None
        if host is None:
            raise UriError("Proxy-Scheme request has no Uri-Host, so the target host is unknown")
        return HttpUri(
            scheme,
            host.strip("[]").lower(),
            HTTP_PORTS[scheme] if port is None else port,
            path,
            query,
        )
    if scheme not in DEFAULT_PORTS:
        raise UnsupportedScheme(f"this proxy does not speak {scheme}://")
    return parse_proxy_uri(options)


# -- allow lists ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pattern:
    host: str  #: lower case, no brackets; glob
    port: int | None  #: None: any port

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return fnmatch.fnmatchcase(host.partition("%")[0].lower(), self.host)


def _parse_pattern(text: str) -> _Pattern:
    pattern = text.strip()
    if not pattern:
        raise ValueError("an allow pattern is HOST or HOST:PORT, not empty")
    port_text = ""
    if pattern.startswith("["):
        close = pattern.find("]")
        if close < 0:
            raise ValueError(f"allow pattern {text!r}: IPv6 host has no closing ']'")
        host, rest = pattern[1:close], pattern[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"allow pattern {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif pattern.count(":") > 1:
        raise ValueError(f"allow pattern {text!r}: write an IPv6 host in brackets, [::1]:5683")
    else:
        host, _, port_text = pattern.partition(":")
    if not host:
        raise ValueError(f"allow pattern {text!r} has no host (use * for any host)")
    port: int | None = None
    if port_text and port_text != "*":
        if not port_text.isdigit() or int(port_text) > 0xFFFF:
            raise ValueError(f"allow pattern {text!r}: port {port_text!r} is not 0..65535")
        port = int(port_text)
    return _Pattern(host.lower(), port)


class AllowList:
    """``HOST[:PORT]`` patterns a forward proxy may reach (see the module doc).

    >>> allow = AllowList(["*.example.com", "127.0.0.1:5683", "[::1]"])
    >>> allow.allows("sensor.example.com", 5683), allow.allows("127.0.0.1", 5684)
    (True, False)
    >>> allow.allows("::1", 1)
    True
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._parsed = tuple(_parse_pattern(pattern) for pattern in self.patterns)

    def __repr__(self) -> str:
        return f"AllowList({list(self.patterns)!r})"

    def allows(self, host: str, port: int) -> bool:
        return any(pattern.matches(host, port) for pattern in self._parsed)


# -- reverse rules -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReverseRule:
    """Requests under ``prefix`` (a path, ``/up``; or a host name matched against Uri-Host)
    go to ``upstream`` (a base URI of any scheme the proxy speaks), the rest of their path
    and their query appended."""

    prefix: str
    upstream: Target

    @property
    def is_host(self) -> bool:
        return not self.prefix.startswith("/")

    @property
    def segments(self) -> tuple[str, ...]:
        """The decoded path segments of a path prefix (``()`` for ``/``)."""
        return _segments(self.prefix) if not self.is_host else ()

    def target(self, path: tuple[str, ...], query: tuple[str, ...]) -> Target:
        """Where a request for ``path`` (its segments, the prefix's included) and ``query``
        goes."""
        rest = path[len(self.segments) :]
        base = self.upstream
        joined = base.path + rest if base.path[-1:] != ("",) else base.path[:-1] + rest
        if isinstance(base, CoapUri):
            return CoapUri(base.scheme, base.host, base.port, joined, base.query + query)
        return HttpUri(base.scheme, base.host, base.port, joined, base.query + query)


@lru_cache(maxsize=64)
def _segments(prefix: str) -> tuple[str, ...]:
    stripped = prefix.strip("/")
    return tuple(unquote(part) for part in stripped.split("/")) if stripped else ()


def parse_reverse_rule(text: str) -> ReverseRule:
    """``PREFIX=URI`` (``/up=coap://h:5683/base``, ``sensors.example=coap+tcp://10.0.0.5``)."""
    prefix, equals, uri = text.partition("=")
    prefix, uri = prefix.strip(), uri.strip()
    if not equals or not prefix or not uri:
        raise ValueError(f"a reverse rule is PREFIX=URI (/up=coap://host/base), not {text!r}")
    if not prefix.startswith("/") and ("/" in prefix or ":" in prefix.strip("[]")):
        raise ValueError(f"reverse rule {text!r}: a prefix is a path (/up) or a host name")
    try:
        upstream = parse_target(uri)
    except UriError as exc:
        raise ValueError(f"reverse rule {text!r}: {exc}") from None
    if not prefix.startswith("/"):
        prefix = prefix.lower()
    return ReverseRule(prefix, upstream)
