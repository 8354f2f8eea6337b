"""CoAP clients reaching ``http://`` and ``https://`` resources through the proxy
(RFC 7252 §10.2, the CoAP-to-HTTP direction; RFC 8075 §6 for the header mappings).

A forward request whose Proxy-Uri (or Proxy-Scheme) names an HTTP resource is
sent with aiohttp (the ``http`` extra): GET, POST, PUT, DELETE and PATCH keep
their names (iPATCH is sent as PATCH; FETCH has no HTTP method: 5.01);
Content-Format becomes Content-Type, Accept the Accept header, the request's
ETags If-None-Match (so that a 304 comes back as 2.03 Valid), If-Match and
If-None-Match their HTTP namesakes.  The answer's status, Content-Type,
Cache-Control and ETag become the response code, Content-Format, Max-Age and
ETag (:mod:`coapkit.proxy.mapping`).  Redirects are followed for GET (aiohttp's
default, at most 10); a body larger than ``max_body`` is refused with 5.02.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coapkit.codec.codes import Code, code_name
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.errors import OptionValueError
from coapkit.proxy.extra import require_aiohttp
from coapkit.proxy.forwarding import Forwarding, gateway_error
from coapkit.proxy.mapping import (
    coap_code,
    coap_etag,
    content_format_for,
    max_age_from,
    media_type,
)
from coapkit.resources.response import Response

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpUpstream"]

N = OptionNumber

_METHODS = {
    Code.GET: "GET",
    Code.POST: "POST",
    Code.PUT: "PUT",
    Code.DELETE: "DELETE",
    Code.PATCH: "PATCH",
    Code.IPATCH: "PATCH",
}


def _raw_entity_tag(etag: bytes) -> str:
    return '"' + etag.decode("latin-1") + '"'


class HttpUpstream:
    """One aiohttp session for every HTTP target of a proxy, made at its first use."""

    def __init__(self, *, max_body: int = 1024 * 1024) -> None:
        require_aiohttp()
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def headers(self, options: Options) -> dict[str, str] | Response:
        """The HTTP request headers for a CoAP request's options (4.02 for bad values)."""
        headers: dict[str, str] = {}
        try:
            content_format = options.content_format
            accept = options.accept
            etags = options.etags
            if_match = options.if_match
            if_none_match = options.if_none_match
        except OptionValueError as exc:
            return Response(Code.BAD_OPTION, exc.reason.encode("utf-8"))
        if content_format is not None:
            content_type, encoding = media_type(content_format)
            headers["Content-Type"] = content_type
            if encoding:
                headers["Content-Encoding"] = encoding
        if accept is not None:
            headers["Accept"] = media_type(accept)[0]
        if etags:
            headers["If-None-Match"] = ", ".join(_raw_entity_tag(tag) for tag in etags)
        elif if_none_match:
            headers["If-None-Match"] = "*"
        if if_match:
            headers["If-Match"] = ", ".join(
                _raw_entity_tag(tag) if tag else "*" for tag in if_match
            )
        return headers

    async def request(self, forwarding: Forwarding, timeout: float | None) -> Response:
        """Send ``forwarding`` to its HTTP target; the answer as a CoAP response.  Network
        failures raise (the caller maps them to 5.02 and 5.04)."""
        import aiohttp

        method = _METHODS.get(Code(forwarding.method))
        if method is None:
            name = code_name(forwarding.method)
            return gateway_error(Code.NOT_IMPLEMENTED, f"{name} has no HTTP equivalent")
        headers = self.headers(forwarding.options)
        if isinstance(headers, Response):
            return headers
        session = self._client()
        limit = aiohttp.ClientTimeout(total=timeout)
        async with session.request(
            method,
            str(forwarding.target),
            data=forwarding.payload or None,
            headers=headers,
            timeout=limit,
            allow_redirects=method == "GET",
        ) as answer:
            length = answer.content_length
            if length is not None and length > self.max_body:
                return gateway_error(
                    Code.BAD_GATEWAY, f"the HTTP response body ({length} bytes) is too large"
                )
            body = bytearray()
            async for chunk in answer.content.iter_chunked(65536):
                body += chunk
                if len(body) > self.max_body:
                    return gateway_error(Code.BAD_GATEWAY, "the HTTP response body is too large")
            return self.response(answer, bytes(body), forwarding.method)

    def response(self, answer: aiohttp.ClientResponse, body: bytes, method: int) -> Response:
        code = coap_code(answer.status, method)
        content_type = answer.headers.get("Content-Type")
        content_format = content_format_for(content_type) if content_type and body else None
        if code == Code.VALID:
            body = b""
        return Response(
            code,
            body,
            content_format=content_format,
            max_age=max_age_from(answer.headers.get("Cache-Control")),
            etag=coap_etag(answer.headers.get("ETag")),
        )
