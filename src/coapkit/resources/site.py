"""The site: a tree of resources, and the dispatch of a request to the right handler.

RFC 7252 §5.8 (methods: an unknown or unsupported method gets 4.05, §5.8
last paragraph), §5.9 (response codes: the default code of each method,
§5.9.1), §5.5.2 (diagnostic payloads, sent without Content-Format), §5.10.2
(Proxy-Uri and Proxy-Scheme: a server that is not a proxy answers 5.05),
§5.10.3-5.10.4 (4.15 and 4.06 from a resource's ``accepts`` and
``produces``), RFC 8132 (FETCH, PATCH, iPATCH), RFC 6690 §4 (the
``/.well-known/core`` resource, added by default).

Theory of operation: :meth:`Site.dispatch` is the one entry point.  It
answers what it can decide alone (not a proxy, not found, method not
allowed, unsupported Content-Format, unacceptable Accept) with a ready
:class:`Response`, then calls the handler.  A plain function's result is
normalised at once, so the common case never touches an event loop; a
coroutine function's result is handed back wrapped in :func:`finish`, an
awaitable that the runtime awaits and that normalises the outcome the same
way.  Exceptions never escape either path, and the rule for them is short:
:class:`RespondWith` (and its :class:`~coapkit.errors.BadRequest`, which the
request's accessors raise for a malformed payload, path or option) gives its
code and diagnostic; anything else is a bug of the server and gives 5.00 with
a generic diagnostic, its traceback in the ``coapkit.server`` log and nothing
of its text on the wire (a ``ValueError`` deep in application code says
nothing about the client's request, and its message may hold internals).

Handler results: a :class:`Response` as it is; a
:class:`~coapkit.codec.message.Message` through
:meth:`Response.from_message`; ``None``, ``bytes`` or ``str`` get the
method's default code (GET and FETCH 2.05 Content, POST, PUT, PATCH and
iPATCH 2.04 Changed, DELETE 2.02 Deleted; RFC 7252 §5.9.1 reserves 2.05 for
GET, so bytes returned by a POST are a 2.04's payload), a ``str`` marked
text/plain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from coapkit.codec.codes import Code, code_name
from coapkit.codec.link_format import Link
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.errors import BadRequest, CoapError, OptionValueError, RespondWith
from coapkit.resources.request import Request
from coapkit.resources.resource import (
    FunctionResource,
    Handler,
    HandlerT,
    Resource,
    ResourceT,
    method_code,
)
from coapkit.resources.response import Response
from coapkit.resources.routing import RouteTable, parse_pattern
from coapkit.resources.well_known import WELL_KNOWN_CORE, WellKnownCore

__all__ = ["Site", "finish"]

logger = logging.getLogger("coapkit.server")


_PROXY_OPTIONS = frozenset({OptionNumber.PROXY_URI, OptionNumber.PROXY_SCHEME})

#: Methods whose payload is checked against a resource's ``accepts``.
PAYLOAD_METHODS = frozenset({Code.POST, Code.PUT, Code.FETCH, Code.PATCH, Code.IPATCH})

#: The code a handler's ``None``, ``bytes`` or ``str`` result gets (RFC 7252 §5.9.1, RFC 8132).
DEFAULT_CODES: dict[int, int] = {
    Code.GET: Code.CONTENT,
    Code.FETCH: Code.CONTENT,
    Code.POST: Code.CHANGED,
    Code.PUT: Code.CHANGED,
    Code.PATCH: Code.CHANGED,
    Code.IPATCH: Code.CHANGED,
    Code.DELETE: Code.DELETED,
}

NOT_PROXY = Response(Code.PROXYING_NOT_SUPPORTED, b"this server is not a proxy")
NOT_FOUND = Response(Code.NOT_FOUND, b"not found")
INTERNAL_ERROR = Response(Code.INTERNAL_SERVER_ERROR, b"internal server error")


def _formats(numbers: Collection[int | str]) -> str:
    return ", ".join(str(number) for number in sorted(numbers)) or "none"


def error_response(exc: Exception, request: Request) -> Response:
    """The response for an exception raised by a handler (or by the request's accessors)."""
    if isinstance(exc, RespondWith):
        try:
            return Response(exc.code, exc.diagnostic.encode("utf-8"), **exc.options)
        except Exception as bad:
            logger.error(
                "%r raised %r, which cannot be sent as a response",
                request,
                exc,
                exc_info=bad,
            )
            return INTERNAL_ERROR
    logger.error("handler for %r raised %s", request, type(exc).__name__, exc_info=exc)
    return INTERNAL_ERROR


def normalise(result: object, request: Request) -> Response:
    """Turn a handler's (non-awaitable) result into a response; 5.00 if it cannot be one."""
    if isinstance(result, Response):
        return result
    try:
        if isinstance(result, Message):
            return Response.from_message(result)
        code = DEFAULT_CODES.get(request.message.code, Code.CHANGED)
        if result is None:
            return Response(code)
        if isinstance(result, str | bytes | bytearray | memoryview):
            return Response(code, result)
        raise TypeError(
            "a handler returns a Response, Message, bytes, str or None, "
            f"not {type(result).__name__}"
        )
    except Exception as exc:
        logger.error("handler for %r returned %r", request, result, exc_info=exc)
        return INTERNAL_ERROR


async def finish(awaitable: Awaitable[object], request: Request) -> Response:
    """Await a coroutine handler's result and turn its outcome into a response.

    Cancellation (a ``BaseException``) propagates: the runtime decides what a
    cancelled request gets.
    """
    try:
        result = await awaitable
    except Exception as exc:
        return error_response(exc, request)
    return normalise(result, request)


class Site:
    """Resources by path, and the dispatch of requests to them.

    >>> site = Site()
    >>> @site.route("/hello", rt="greeting")
    ... def hello(request):
    ...     return "hello " + request.query_params.get("name", "world")
    >>> site.dispatch(Request.build("GET", "/hello?name=coap")).text
    'hello coap'
    >>> site.dispatch(Request.build("GET", "/.well-known/core")).text
    '</hello>;rt="greeting"'

    Paths are percent-encoded URI paths.  ``{name}`` captures one segment and
    a last ``{name*}`` the rest, into ``request.params``; the literal route
    wins where several match (see :mod:`coapkit.resources.routing`).
    ``well_known=False`` leaves ``/.well-known/core`` out.
    """

    def __init__(self, *, well_known: bool = True) -> None:
        self._routes: RouteTable[Resource] = RouteTable()
        if well_known:
            self.add(WELL_KNOWN_CORE, WellKnownCore(self))

    def __repr__(self) -> str:
        return f"<Site {len(self._routes)} resources>"

    # -- the resource tree ---------------------------------------------------------------

    def add(self, path: str, resource: ResourceT) -> ResourceT:
        """Serve ``resource`` at ``path`` from now on; ValueError if the path is taken.

        Returns ``resource``, typed as given, so that ``thermometer = site.add(...)``
        keeps its own class's attributes for a type checker."""
        if not isinstance(resource, Resource):
            raise TypeError(f"expected a Resource, not {type(resource).__name__}")
        self._routes.add(path, resource)
        return resource

    def remove(self, path: str) -> Resource:
        """Stop serving the resource at ``path`` and return it; KeyError if there is none."""
        return self._routes.remove(path).value

    def get_resource(self, path: str) -> Resource | None:
        """The resource registered under the pattern ``path`` (not a request path), or None."""
        route = self._routes.lookup(path)
        return None if route is None else route.value

    def resources(self) -> list[tuple[str, Resource]]:
        """``(pattern, resource)`` for every resource, in path order."""
        return [(route.path, route.value) for route in self._routes.routes()]

    def match(self, path: Sequence[str]) -> tuple[Resource, dict[str, str]] | None:
        """The resource for decoded Uri-Path segments and its path parameters, or None."""
        found = self._routes.match(path)
        if found is None:
            return None
        route, params = found
        return route.value, params

    def observable_resource(self, request: Request) -> Resource | None:
        """The resource an Observe registration in ``request`` is for, or None when it
        cannot be observed (RFC 7641 §3.1); the server asks this after answering it.

        By default the resource at the request's path, if it is ``observable``.  A site
        that serves more than its routes (a proxy) may answer for its other requests."""
        try:
            found = self._routes.match(request.path)
        except CoapError:  # a path that is not UTF-8: the site has answered 4.00 already
            return None
        if found is None or not found[0].value.observable:
            return None
        return found[0].value

    def render_notification(
        self, request: Request, resource: Resource
    ) -> Response | Awaitable[Response]:
        """The notification of ``resource``'s new state to the observer that registered with
        ``request`` (RFC 7641 §4.2); by default the answer to that request again."""
        return self.dispatch(request)

    def links(self) -> list[Link]:
        """The links ``/.well-known/core`` lists: every resource not hidden nor parameterised."""
        return [
            route.value.link(route.path)
            for route in self._routes.routes()
            if not route.value.hidden and not route.parameterised
        ]

    def route(
        self, path: str, methods: Sequence[int | str] | str = ("GET",), **attrs: Any
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator serving ``methods`` at ``path`` with the decorated function.

        Several decorators on one path build up one :class:`FunctionResource`;
        ``attrs`` (``rt=``, ``observable=``, ``accepts=``...) are set on it.
        """
        parts = parse_pattern(path)
        if isinstance(methods, str):
            methods = (methods,)
        codes = [method_code(method) for method in methods]
        if not codes:
            raise ValueError("route() needs at least one method")

        def decorator(function: HandlerT) -> HandlerT:
            route = self._routes.lookup(path)
            if route is None:
                resource = FunctionResource(**attrs)
                self.add(path, resource)
            else:
                existing = route.value
                if not isinstance(existing, FunctionResource):
                    raise ValueError(f"{route.path} is served by {existing!r}, not by functions")
                if route.parts != parts:
                    raise ValueError(f"{path} and {route.path} name their parameters differently")
                taken = [code for code in codes if code in existing.handlers]
                if taken:
                    raise ValueError(f"{route.path} already has a {code_name(taken[0])} handler")
                existing.set_attributes(**attrs)
                resource = existing
            for code in codes:
                resource.add_handler(code, function)
            return function

        return decorator

    # -- dispatch ------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | Awaitable[Response]:
        """The response to ``request``, or an awaitable of it for a coroutine handler."""
        try:
            selected = self._select(request)
            if isinstance(selected, Response):
                return selected
            result = selected(request)
        except Exception as exc:
            return error_response(exc, request)
        if isinstance(result, Response):
            return result
        if isinstance(result, Awaitable):
            return finish(result, request)
        return normalise(result, request)

    def _select(self, request: Request) -> Response | Handler:
        """The handler for ``request``, or the automatic answer when there is none to call."""
        options = request.message.options
        for number, _ in options.items:
            if number in _PROXY_OPTIONS:
                return NOT_PROXY
        found = self._routes.match(request.path)
        if found is None:
            return NOT_FOUND
        route, request.params = found
        resource = route.value
        method = request.message.code
        handler = resource.handler(method)
        if handler is None:
            allowed = ", ".join(resource.allowed_methods()) or "none"
            return Response(Code.METHOD_NOT_ALLOWED, f"allowed: {allowed}".encode())
        accepts = resource.accepts
        if accepts is not None and method in PAYLOAD_METHODS:
            try:
                content_format = options.content_format
            except OptionValueError as exc:  # malformed by the client
                raise BadRequest(exc.reason) from None
            if content_format is not None and content_format not in accepts:
                return Response(
                    Code.UNSUPPORTED_CONTENT_FORMAT,
                    f"Content-Format {content_format} is not accepted here "
                    f"(accepted: {_formats(accepts)})".encode(),
                )
        produces = resource.produces
        if produces is not None:
            try:
                accept = options.accept
            except OptionValueError as exc:
                raise BadRequest(exc.reason) from None
            if accept is not None and accept not in produces:
                return Response(
                    Code.NOT_ACCEPTABLE,
                    f"cannot answer with Content-Format {accept} "
                    f"(available: {_formats(produces)})".encode(),
                )
        return handler
