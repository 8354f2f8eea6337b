"""HTTP clients reaching CoAP resources: the HTTP-to-CoAP cross proxy (RFC 8075), on aiohttp.

>>> site = ProxySite(forward=True)                              # doctest: +SKIP
>>> async with site, HttpCrossProxy(site, port=8080):
...     ...   # curl http://127.0.0.1:8080/hc/coap://sensor.example/temperature

Theory of operation
-------------------
Every HTTP request becomes a CoAP request dispatched on a
:class:`~coapkit.proxy.site.ProxySite`, so that the allow list, the hooks,
the cache and the shared observations are the same for HTTP and CoAP clients:

* ``/hc/URI`` (RFC 8075 §5: the default "hc" resource, the target URI
  appended; also ``/hc/?target_uri=URI``) is a forward request for ``URI``
  (any CoAP scheme the proxy speaks; it needs forwarding on, as a CoAP
  client's Proxy-Uri does).  A percent-encoded URI is decoded, and
  ``coap:/host`` (a path normaliser merged the slashes) is read as
  ``coap://host``.
* Any other path is a request for that path on the site: its reverse rules
  (``/up`` -> ``coap://h/base``; a rule for ``/`` makes a default upstream)
  and its own resources.

The method maps to CoAP's (HEAD is a GET without the body; GET, POST, PUT,
DELETE, PATCH and FETCH by name; others 501), the headers to options and
back (:mod:`coapkit.proxy.mapping`: Content-Type and Content-Format, Accept,
If-None-Match as ETags, so that 2.03 becomes 304, If-Match; ETag,
Cache-Control from Max-Age, Location from Location-Path/-Query, Retry-After
from the Max-Age of a 5.03), and the response code to the status.

**Observing from HTTP: Server-Sent Events.**  A GET whose Accept asks for
``text/event-stream`` is answered with an event stream of the resource's
states, sharing the upstream observation with the CoAP observers: one
``message`` event per state (``data:`` lines of the payload as text, or
``event: base64`` with the payload in base64 when it is not text), an
``event: coap-error`` with the code and diagnostic when the observation ends
with an error, and ``event: end`` when it ends otherwise; a comment every
``keepalive`` seconds keeps intermediaries from closing an idle stream.
SSE rather than long polling: one request for the whole observation, a
browser's ``EventSource`` reconnects by itself, and nothing is missed between
two polls.  A browser that navigates to a resource (its Accept prefers
``text/html``, which no CoAP Content-Format is) gets a small page that shows
the value and follows it live through the event stream.
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging
import re
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from coapkit.codec.codes import Code, code_name
from coapkit.codec.content_formats import BY_NUMBER
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.codec.uri import CoapUri
from coapkit.errors import EncodeError, OptionValueError, UriError
from coapkit.proxy.extra import require_aiohttp
from coapkit.proxy.mapping import (
    accepted_formats,
    cache_control,
    content_format_for,
    entity_tag,
    http_status,
    media_type,
    parse_entity_tags,
)
from coapkit.proxy.observations import Subscription
from coapkit.proxy.rules import HttpUri, UnsupportedScheme, parse_target
from coapkit.proxy.site import ProxySite
from coapkit.resources.request import Request
from coapkit.resources.response import Response

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["HttpCrossProxy"]

logger = logging.getLogger("coapkit.proxy")

_METHODS = {
    "GET": Code.GET,
    "HEAD": Code.GET,
    "POST": Code.POST,
    "PUT": Code.PUT,
    "DELETE": Code.DELETE,
    "PATCH": Code.PATCH,
    "FETCH": Code.FETCH,
}
_SINGLE_SLASH = re.compile(r"^(coaps?(?:\+tcp|\+ws)?):/(?!/)", re.IGNORECASE)
_PLAIN_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")
_CACHEABLE_STATUS_CODES = (Code.CONTENT, Code.VALID)


class _Refused(Exception):
    """An HTTP request that cannot become a CoAP one: ``status`` and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class HttpCrossProxy:
    """An HTTP server in front of a :class:`~coapkit.proxy.site.ProxySite`; see the module doc.

    :param site: the proxy the requests go through
    :param host: the address to listen on; :param port: its port (0: any free one,
        :attr:`port` tells which)
    :param prefix: the path under which target URIs are given (RFC 8075's ``/hc/``)
    :param max_streams: event streams open at once; one more is answered 503
    :param keepalive: seconds between the comments that keep an idle event stream open
    :param log_requests: log one line per request on ``coapkit.proxy`` (INFO)
    """

    def __init__(
        self,
        site: ProxySite,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        prefix: str = "/hc/",
        max_streams: int = 1000,
        keepalive: float = 15.0,
        log_requests: bool = False,
    ) -> None:
        require_aiohttp()
        self.site = site
        self.host = host
        self._port = port
        self.prefix = "/" + prefix.strip("/") + "/"
        self.max_streams = max_streams
        self.keepalive = keepalive
        self.log_requests = log_requests
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._bound: tuple[Any, ...] | None = None

    def __repr__(self) -> str:
        return f"<HttpCrossProxy {self.url if self._bound else 'not started'}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> HttpCrossProxy:
        """Listen (once); :attr:`url` tells where."""
        if self._runner is not None:
            return self
        from aiohttp import web

        app = web.Application(client_max_size=self.site.config.max_http_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host.strip("[]"), self._port), family=family)
        except OSError:
            await runner.cleanup()
            raise
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self._bound = sock.getsockname()
        logger.info("serving HTTP (RFC 8075 cross proxy) on %s", self.url)
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        for task in list(self._streams):
            task.cancel()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HttpCrossProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._bound is None:
            raise RuntimeError("the HTTP cross proxy is not started")
        return int(self._bound[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, as bound."""
        host = self.host.strip("[]")
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    # -- from HTTP to CoAP --------------------------------------------------------------------

    def target_options(self, raw_path: str) -> Options | None:
        """The options naming the target of ``raw_path`` (the path and query as received):
        Proxy-Uri (or Proxy-Scheme and Uri-* when too long) under the prefix, else
        Uri-Path and Uri-Query; None when it is the prefix without a target."""
        path, question, query = raw_path.partition("?")
        prefix = self.prefix
        if path == prefix or path == prefix.rstrip("/"):
            target = parse_qs(query).get("target_uri", [""])[0] if question else ""
            if not target:
                return None
            return self._proxy_options(target)
        if path.startswith(prefix):
            return self._proxy_options(raw_path[len(prefix) :])
        try:
            segments = [unquote(part, errors="strict") for part in path.split("/")[1:]]
            arguments = (
                [unquote(part, errors="strict") for part in query.split("&")] if query else []
            )
        except UnicodeDecodeError:
            raise _Refused(400, "the path is not UTF-8 once percent-decoded") from None
        if segments == [""]:
            segments = []
        try:
            return Options.build(uri_path=segments, uri_query=arguments)
        except OptionValueError as exc:
            raise _Refused(414, exc.reason) from None

    def _proxy_options(self, text: str) -> Options:
        if not _PLAIN_SCHEME.match(text):  # percent-encoded whole: coap%3A%2F%2Fh%2Fx
            text = unquote(text)
        text = _SINGLE_SLASH.sub(r"\1://", text)
        try:
            target = parse_target(text)
        except UnsupportedScheme as exc:
            raise _Refused(502, str(exc)) from None
        except UriError as exc:
            raise _Refused(400, f"bad target URI: {exc}") from None
        if isinstance(target, HttpUri):
            raise _Refused(400, "the target of /hc/ is a CoAP URI (coap://...), not HTTP")
        assert isinstance(target, CoapUri)
        try:
            return target.to_proxy_options()
        except UriError:
            try:
                return target.to_proxy_options(use_proxy_scheme=True)
            except UriError as exc:
                raise _Refused(414, str(exc)) from None

    def request_options(self, options: Options, headers: Any) -> Options:
        """``options`` with what the HTTP headers say (Content-Type, Accept, conditions)."""
        values: dict[str, Any] = {}
        content_type = headers.get("Content-Type")
        if content_type:
            number = content_format_for(content_type, headers.get("Content-Encoding"))
            if number is None:
                raise _Refused(415, f"no CoAP Content-Format for {content_type}")
            values["content_format"] = number
        accept = headers.get("Accept")
        if accept:
            wanted = accepted_formats(accept)
            if wanted:
                values["accept"] = wanted[0]
        if_none_match = headers.get("If-None-Match")
        if if_none_match:
            tags = parse_entity_tags(if_none_match)
            if tags is None:
                values["if_none_match"] = True
            elif tags:
                values["etag"] = tags[:8]
        if_match = headers.get("If-Match")
        if if_match:
            tags = parse_entity_tags(if_match)
            values["if_match"] = [b""] if tags is None else tags[:8]
        try:
            return options.replace(**values) if values else options
        except OptionValueError as exc:
            raise _Refused(400, exc.reason) from None

    # -- from CoAP to HTTP --------------------------------------------------------------------

    def http_response(self, response: Response, *, conditional: bool = False) -> web.Response:
        """The HTTP response for a CoAP one (RFC 8075 §7)."""
        from aiohttp import web

        code = response.code
        payload = response.payload
        error = code >= 128
        status = http_status(code, has_payload=bool(payload), conditional=conditional)
        headers: dict[str, str] = {"Vary": "Accept"}
        options = response.options
        try:
            content_format = options.content_format
            max_age = options.max_age
        except OptionValueError:
            content_format = max_age = None
        etag = options.get(4)
        if etag is not None:
            headers["ETag"] = entity_tag(etag)
        if code in _CACHEABLE_STATUS_CODES or error:
            headers["Cache-Control"] = cache_control(max_age)
        if code == Code.SERVICE_UNAVAILABLE and max_age is not None:
            headers["Retry-After"] = str(max_age)
        location = _location(options)
        if location:
            headers["Location"] = location
        if status in (204, 304):
            return web.Response(status=status, headers=headers)
        if payload or error:
            content_type, encoding = media_type(content_format, error=error)
            headers["Content-Type"] = content_type
            if encoding:
                headers["Content-Encoding"] = encoding
        if error and not payload:
            payload = code_name(code).encode()
        return web.Response(status=status, body=payload, headers=headers)

    # -- the handler ------------------------------------------------------------------------

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        from aiohttp import web

        answer: web.StreamResponse
        try:
            answer = await self._answer(http)
        except _Refused as refused:
            answer = web.Response(
                status=refused.status,
                text=str(refused) + "\n",
                headers={"Cache-Control": "max-age=0"},
            )
        if self.log_requests:
            logger.info(
                "%s HTTP %s %s -> %d", http.remote, http.method, http.raw_path, answer.status
            )
        return answer

    async def _answer(self, http: web.Request) -> web.StreamResponse:
        from aiohttp import web

        method = _METHODS.get(http.method.upper())
        if method is None:
            raise _Refused(501, f"{http.method} has no CoAP equivalent")
        options = self.target_options(http.raw_path)
        if options is None:
            return web.Response(
                text=f"CoAP cross proxy: GET {self.prefix}coap://host/path\n",
                headers={"Cache-Control": "max-age=0"},
            )
        accept = http.headers.get("Accept", "")
        events = method == Code.GET and "text/event-stream" in accept
        if method == Code.GET and not events and _prefers_html(accept):
            return self._viewer(http.raw_path)
        options = self.request_options(options, http.headers)
        body = await http.read()
        try:
            message = Message(MessageType.CON, method, 0, b"", options, body)
            if events:
                message = message.replace(options=message.options.replace(observe=0))
        except EncodeError as exc:
            raise _Refused(400, str(exc)) from None
        peer = http.transport.get_extra_info("peername") if http.transport else None
        request = Request(message, tuple(peer[:2]) if peer else ("0.0.0.0", 0))
        if events:
            return await self._stream(http, request)
        result = self.site.dispatch(request)
        response = result if isinstance(result, Response) else await result
        conditional = "If-None-Match" in http.headers
        return self.http_response(response, conditional=conditional)

    async def _stream(self, http: web.Request, request: Request) -> web.StreamResponse:
        from aiohttp import web

        if len(self._streams) >= self.max_streams:
            raise _Refused(503, "too many event streams open; try again later")
        outcome = await self.site.subscribe(request)
        if isinstance(outcome, Response):
            return self.http_response(outcome)
        first = await outcome.shared.first()
        if first.code >= 128:  # refused upstream at once: an HTTP error, not a stream
            outcome.close()
            return self.http_response(first)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        stream = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await stream.prepare(http)
            await self._follow(stream, outcome)
        except ConnectionError:
            pass  # the client went away
        finally:  # (also when cancelled: the client went away, or the proxy is closing)
            outcome.close()
            self._streams.discard(task)
        return stream

    async def _follow(self, stream: web.StreamResponse, subscription: Subscription) -> None:
        number = 0
        states = aiter(subscription)
        while True:
            try:
                state = await asyncio.wait_for(anext(states), self.keepalive)
            except TimeoutError:
                await stream.write(b": keep-alive\n\n")
                continue
            except StopAsyncIteration:
                await stream.write(b"event: end\ndata: the observation ended\n\n")
                return
            number += 1
            await stream.write(_event(state, number))
            if state.code >= 128:
                return

    def _viewer(self, raw_path: str) -> web.Response:
        from aiohttp import web

        title = html.escape(unquote(raw_path, errors="replace"))
        return web.Response(
            text=_VIEWER.replace("{title}", title),
            content_type="text/html",
            headers={"Cache-Control": "no-cache", "Vary": "Accept"},
        )


def _prefers_html(accept: str) -> bool:
    """Whether an Accept header lists text/html first, as a browser navigating does."""
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first == "text/html"


def _location(options: Options) -> str:
    try:
        path, query = options.location_path, options.location_query
    except OptionValueError:
        return ""
    if not path and not query:
        return ""
    text = "/" + "/".join(path)
    return text + ("?" + "&".join(query) if query else "")


def _event(response: Response, number: int) -> bytes:
    """One Server-Sent Event for a state of an observed resource."""
    if response.code >= 128:
        diagnostic = response.payload.decode("utf-8", "replace").replace("\n", " ")
        text = (
            f"{code_name(response.code)}: {diagnostic}" if diagnostic else code_name(response.code)
        )
        return f"event: coap-error\nid: {number}\ndata: {text}\n\n".encode()
    payload = response.payload
    try:
        content_format = response.options.content_format
    except OptionValueError:
        content_format = None
    entry = BY_NUMBER.get(content_format) if content_format is not None else None
    textual = entry is None or entry.is_text
    if textual:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            textual = False
    if not textual:
        encoded = base64.b64encode(payload).decode("ascii")
        return f"event: base64\nid: {number}\ndata: {encoded}\n\n".encode()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = "".join(f"data: {line}\n" for line in lines)
    return f"id: {number}\n{data}\n".encode()


_VIEWER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{font-family:sans-serif;margin:2em}#value{font-size:2em;white-space:pre-wrap}
#status{color:#666}</style></head>
<body><p id="status">connecting</p><pre id="value"></pre>
<script>
"use strict";
const value = document.getElementById("value");
const status = document.getElementById("status");
let count = 0;
const source = new EventSource(location.pathname + location.search);
function show(text) {
  count += 1;
  value.textContent = text;
  status.textContent = "live: " + count + " states";
  document.title = text;
}
source.onmessage = (event) => show(event.data);
source.addEventListener("base64", (event) => show("(" + atob(event.data).length + " bytes)"));
source.addEventListener("coap-error", (event) => {
  status.textContent = "ended: " + event.data;
  source.close();
});
source.addEventListener("end", () => {
  status.textContent = "ended";
  source.close();
});
source.onerror = () => { status.textContent = "reconnecting"; };
</script>
</body></html>
"""
