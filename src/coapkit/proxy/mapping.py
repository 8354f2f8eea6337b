"""CoAP and HTTP, one in terms of the other (RFC 8075 §6-§7; RFC 7252 §10).

Pure functions, no HTTP library: both cross-proxy directions use them.

* **Response codes**: CoAP to HTTP by RFC 8075 §7 (Table 2): 2.05 is 200,
  2.01 201, 2.03 304 when the HTTP request was conditional (200 otherwise),
  2.02 and 2.04 200 (204 without a payload), 4.01 403 (HTTP's 401 would need
  a WWW-Authenticate challenge CoAP has not), 4.05 405, 5.05 502, 5.08 508
  (Loop Detected; RFC 8768 §4), the other 4.xx and 5.xx their HTTP namesakes
  and their class's x00 when there is none.  HTTP to CoAP by RFC 7252 §10.2:
  200 is 2.05 for GET and FETCH and 2.04 otherwise, 201 2.01, 204 2.04 (2.02
  for DELETE), 304 2.03, 4xx and 5xx their CoAP namesakes, others their
  class's x.00.
* **Media types** (RFC 8075 §6.2): a Content-Format is its registered media
  type and content coding; an HTTP media type is looked up with its
  parameters, then without (``text/plain`` without a charset, or with
  ``utf-8``, is Content-Format 0).
* **Freshness** (RFC 8075 §6.5): Max-Age N is ``Cache-Control: max-age=N``
  (a response without Max-Age is fresh for 60 s); from HTTP, ``max-age``
  (``s-maxage`` first) gives Max-Age, ``no-store``, ``no-cache`` or
  ``private`` give 0, and a response without either is given 0 too: HTTP's
  heuristic freshness has no CoAP equivalent.
* **Entity tags** (RFC 8075 §6.5.2): a CoAP ETag is shown as the strong HTTP
  entity tag of its hex digits; an HTTP entity tag of at most 8 bytes is the
  CoAP ETag of its bytes (longer ones cannot be carried and are dropped).
"""

from __future__ import annotations

import re

from coapkit.codec.codes import Code
from coapkit.codec.content_formats import BY_NUMBER, TEXT_PLAIN

__all__ = [
    "cache_control",
    "coap_code",
    "content_format_for",
    "entity_tag",
    "http_status",
    "max_age_from",
    "media_type",
    "parse_entity_tags",
]

_COAP_TO_HTTP: dict[int, int] = {
    Code.CREATED: 201,
    Code.DELETED: 200,
    Code.VALID: 200,
    Code.CHANGED: 200,
    Code.CONTENT: 200,
    Code.BAD_REQUEST: 400,
    Code.UNAUTHORIZED: 403,
    Code.BAD_OPTION: 400,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.NOT_ACCEPTABLE: 406,
    Code.REQUEST_ENTITY_INCOMPLETE: 400,
    Code.CONFLICT: 409,
    Code.PRECONDITION_FAILED: 412,
    Code.REQUEST_ENTITY_TOO_LARGE: 413,
    Code.UNSUPPORTED_CONTENT_FORMAT: 415,
    Code.UNPROCESSABLE_ENTITY: 422,
    Code.TOO_MANY_REQUESTS: 429,
    Code.INTERNAL_SERVER_ERROR: 500,
    Code.NOT_IMPLEMENTED: 501,
    Code.BAD_GATEWAY: 502,
    Code.SERVICE_UNAVAILABLE: 503,
    Code.GATEWAY_TIMEOUT: 504,
    Code.PROXYING_NOT_SUPPORTED: 502,
    Code.HOP_LIMIT_REACHED: 508,
}

_HTTP_TO_COAP: dict[int, int] = {
    201: Code.CREATED,
    304: Code.VALID,
    400: Code.BAD_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    406: Code.NOT_ACCEPTABLE,
    409: Code.CONFLICT,
    412: Code.PRECONDITION_FAILED,
    413: Code.REQUEST_ENTITY_TOO_LARGE,
    415: Code.UNSUPPORTED_CONTENT_FORMAT,
    422: Code.UNPROCESSABLE_ENTITY,
    429: Code.TOO_MANY_REQUESTS,
    500: Code.INTERNAL_SERVER_ERROR,
    501: Code.NOT_IMPLEMENTED,
    502: Code.BAD_GATEWAY,
    503: Code.SERVICE_UNAVAILABLE,
    504: Code.GATEWAY_TIMEOUT,
    508: Code.HOP_LIMIT_REACHED,
}


def http_status(code: int, *, has_payload: bool = True, conditional: bool = False) -> int:
    """The HTTP status for a CoAP response code (RFC 8075 §7)."""
    if code == Code.VALID and conditional:
        return 304
    if code in (Code.DELETED, Code.CHANGED) and not has_payload:
        return 204
    status = _COAP_TO_HTTP.get(code)
    if status is not None:
        return status
    klass = code >> 5
    return {2: 200, 4: 400, 5: 500}.get(klass, 502)


def coap_code(status: int, method: int) -> int:
    """The CoAP response code for an HTTP status (RFC 7252 §10.2)."""
    if status in (200, 203):
        return Code.CONTENT if method in (Code.GET, Code.FETCH) else Code.CHANGED
    if status == 204:
        return Code.DELETED if method == Code.DELETE else Code.CHANGED
    code = _HTTP_TO_COAP.get(status)
    if code is not None:
        return code
    if 200 <= status < 300:
        return Code.CONTENT if method in (Code.GET, Code.FETCH) else Code.CHANGED
    if 400 <= status < 500:
        return Code.BAD_REQUEST
    if 500 <= status < 600:
        return Code.INTERNAL_SERVER_ERROR
    return Code.BAD_GATEWAY  # 1xx, 3xx other than 304: nothing CoAP can say


# -- media types ----------------------------------------------------------------------------


def media_type(content_format: int | None, *, error: bool = False) -> tuple[str, str | None]:
    """The HTTP Content-Type (and Content-Encoding) of a Content-Format.  Without one, a
    diagnostic payload (``error``) is text, anything else application/octet-stream."""
    if content_format is None:
        return ("text/plain; charset=utf-8" if error else "application/octet-stream"), None
    entry = BY_NUMBER.get(content_format)
    if entry is None:
        return "application/octet-stream", None
    return entry.media_type, entry.encoding


def _normalise_media(text: str) -> tuple[str, str]:
    """``(type/subtype, the whole type without spaces)``, lower case."""
    whole = text.strip().lower()
    base = whole.split(";", 1)[0].strip()
    return base, re.sub(r"\s*;\s*", ";", whole)


_BY_MEDIA: dict[str, int] = {}
_BY_BASE: dict[str, int] = {}
for _entry in BY_NUMBER.values():
    if _entry.encoding is not None:
        continue
    _base, _whole = _normalise_media(_entry.media_type)
    _BY_MEDIA.setdefault(_whole, _entry.number)
    if ";" not in _whole:
        _BY_BASE.setdefault(_base, _entry.number)


def content_format_for(content_type: str, content_encoding: str | None = None) -> int | None:
    """The Content-Format of an HTTP media type, or None when there is none."""
    base, whole = _normalise_media(content_type)
    if content_encoding and content_encoding.strip().lower() not in ("identity", ""):
        encoding = content_encoding.strip().lower()
        for entry in BY_NUMBER.values():
            if entry.encoding == encoding and _normalise_media(entry.media_type)[0] == base:
                return entry.number
        return None
    if base == "text/plain":
        charset = re.search(r"charset\s*=\s*\"?([\w-]+)", whole)
        if charset is None or charset.group(1) in ("utf-8", "us-ascii"):
            return TEXT_PLAIN
        return None
    number = _BY_MEDIA.get(whole)
    if number is None and whole == base:
        number = _BY_BASE.get(base)
    if number is None:
        number = _BY_BASE.get(base)
    return number


def accepted_formats(accept: str) -> list[int] | None:
    """The Content-Formats an HTTP Accept header asks for, best first; None when it takes
    anything (``*/*``, or no header)."""
    ranked: list[tuple[float, int, int]] = []
    for index, item in enumerate(accept.split(",")):
        parts = [part.strip() for part in item.split(";")]
        if not parts[0]:
            continue
        quality = 1.0
        for parameter in parts[1:]:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if parts[0] == "*/*" or parts[0].endswith("/*"):
            if quality > 0:
                return None
            continue
        number = content_format_for(";".join(parts[:1] + [p for p in parts[1:] if p[:2] != "q="]))
        if number is not None and quality > 0:
            ranked.append((-quality, index, number))
    ranked.sort()
    return [number for _, _, number in ranked]


# -- freshness and validators ----------------------------------------------------------------


def cache_control(max_age: int | None) -> str:
    """``Cache-Control`` for a CoAP response's Max-Age (60 s when it has none)."""
    return f"max-age={60 if max_age is None else max_age}"


def max_age_from(cache_control_header: str | None) -> int:
    """The Max-Age of an HTTP response: its ``s-maxage``/``max-age``, else 0."""
    if not cache_control_header:
        return 0
    directives: dict[str, str] = {}
    for part in cache_control_header.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if {"no-store", "no-cache", "private"} & directives.keys():
        return 0
    for name in ("s-maxage", "max-age"):
        seconds = directives.get(name)
        if seconds is not None and seconds.isdigit():
            return min(int(seconds), 0xFFFFFFFF)
    return 0


def entity_tag(etag: bytes) -> str:
    """A CoAP ETag as a strong HTTP entity tag: ``"0a1b"``."""
    return f'"{etag.hex()}"'


def parse_entity_tags(header: str) -> list[bytes] | None:
    """The CoAP ETags of an HTTP If-None-Match or If-Match header (entity tags written by
    :func:`entity_tag`, or others of at most 8 bytes); None for ``*``."""
    header = header.strip()
    if header == "*":
        return None
    tags = []
    for tag in re.findall(r'(?:W/)?"([^"]*)"', header):
        try:
            value = bytes.fromhex(tag) if len(tag) % 2 == 0 and tag else tag.encode("latin-1")
        except ValueError:
            value = tag.encode("latin-1", "replace")
        if 1 <= len(value) <= 8:
            tags.append(value)
    return tags


def coap_etag(http_etag: str | None) -> bytes | None:
    """The CoAP ETag for an HTTP response's entity tag, or None if it has none that fits."""
    if not http_etag:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"([^"]*)"\s*', http_etag)
    if match is None:
        return None
    value = match.group(1).encode("latin-1", "replace")
    return value if 1 <= len(value) <= 8 else None
