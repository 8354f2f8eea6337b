"""Resources: the things a server serves, with their handlers and their discovery attributes.

RFC 7252 §5.8 (the methods a resource may implement; RFC 8132 §2-3 adds
FETCH, PATCH and iPATCH), §5.10.3-5.10.4 (the Content-Formats a resource
accepts and produces: 4.15 and 4.06 are decided from them), §7.2 (``ct`` in
discovery), RFC 6690 §3 (the ``rt``, ``if``, ``sz`` and ``title`` link
attributes) and RFC 7641 §6 (``obs``).

Two styles, one interface the site relies on (``handler``,
``allowed_methods``, ``link`` and the attributes):

* subclass :class:`Resource` and define ``get``, ``post``, ``put``,
  ``delete``, ``fetch``, ``patch`` or ``ipatch`` (plain or ``async def``);
* or let :meth:`~coapkit.resources.site.Site.route` collect functions into a
  :class:`FunctionResource`.

A handler takes the :class:`~coapkit.resources.request.Request` and returns
a :class:`~coapkit.resources.response.Response`, a
:class:`~coapkit.codec.message.Message`, ``bytes``, ``str`` or ``None``
(see :mod:`coapkit.resources.site` for what each becomes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from coapkit.codec.codes import METHODS_BY_NAME, Code, code_name, is_request
from coapkit.codec.content_formats import parse_content_format
from coapkit.codec.link_format import Link
from coapkit.codec.message import Message
from coapkit.codec.types import MessageType
from coapkit.resources.request import Request
from coapkit.resources.response import Response

__all__ = [
    "FunctionResource",
    "Handler",
    "HandlerResult",
    "HandlerT",
    "Resource",
    "ResourceT",
    "method_code",
]

HandlerResult: TypeAlias = Response | Message | bytes | str | None
Handler: TypeAlias = Callable[[Request], HandlerResult | Awaitable[HandlerResult]]
#: A handler's own type, which the route decorators give back unchanged.
HandlerT = TypeVar("HandlerT", bound=Handler)
#: A resource's own class, which ``add`` gives back unchanged.
ResourceT = TypeVar("ResourceT", bound="Resource")

#: The handler method name of each method a :class:`Resource` subclass may define.
METHOD_ATTRIBUTES: Mapping[int, str] = MappingProxyType(
    {
        Code.GET: "get",
        Code.POST: "post",
        Code.PUT: "put",
        Code.DELETE: "delete",
        Code.FETCH: "fetch",
        Code.PATCH: "patch",
        Code.IPATCH: "ipatch",
    }
)

#: Attributes that ``Resource(**attrs)`` and ``Site.route(**attrs)`` may set.
ATTRIBUTES = frozenset(
    {
        "rt",
        "if_",
        "ct",
        "sz",
        "title",
        "observable",
        "hidden",
        "extra_attributes",
        "accepts",
        "produces",
        "notification_type",
        "con_every",
    }
)


#: The attributes that hold Content-Formats, which may be given by name.
_FORMAT_ATTRIBUTES = frozenset({"ct", "accepts", "produces"})


def _numbers(name: str, value: Any) -> Any:
    """Content-Format names in ``value`` (one or a collection) as numbers, the shape kept
    (a collection becomes a frozenset for ``accepts`` and ``produces``, which are tested
    with ``in``; a tuple for ``ct``, whose order is the link's)."""
    if value is None:
        return None
    if isinstance(value, int | str):
        number = _number(value)
        return frozenset({number}) if name != "ct" else number
    numbers = [_number(item) for item in value]
    return tuple(numbers) if name == "ct" else frozenset(numbers)


def _number(value: object) -> int:
    if isinstance(value, str):
        return parse_content_format(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a Content-Format is a number or a name such as 'json', not {value!r}")
    return value


def method_code(method: int | str) -> int:
    """The code of a method given as a name (``"GET"``, case-insensitive) or a code (0.01-0.31)."""
    if isinstance(method, str):
        code = METHODS_BY_NAME.get(method.upper())
        if code is None:
            known = ", ".join(METHODS_BY_NAME)
            raise ValueError(f"unknown method {method!r} (known: {known})")
        return code
    if isinstance(method, bool) or not isinstance(method, int) or not is_request(method):
        raise ValueError(f"a method is a name or a code from 0.01 to 0.31, not {method!r}")
    return method


class Resource:
    """Base class for a resource; define handler methods in a subclass.

    Class attributes (or instance attributes, or keywords to ``__init__``)
    describe the resource for ``/.well-known/core`` and for the site's checks:

    * ``rt``, ``if_``: resource types and interface descriptions (one string or several)
    * ``ct``: the Content-Format(s) of its representations; ``sz``: size estimate
    * ``title``: a human-readable title
    * ``observable``: listed with ``obs`` (RFC 7641 §6)
    * ``hidden``: not listed in ``/.well-known/core`` at all
    * ``extra_attributes``: more link attributes, ``None`` for one without a value
    * ``accepts``: Content-Formats accepted in the payload of POST, PUT, FETCH,
      PATCH and iPATCH; any other gets 4.15 (a request without Content-Format passes)
    * ``produces``: Content-Formats it can answer with; an Accept outside them gets 4.06

    Content-Formats (``ct``, ``accepts``, ``produces``) may be numbers or names, as
    everywhere in coapkit: ``accepts = {"json", "cbor"}`` is ``{50, 60}``.  Names are
    looked up once, when the class is made or the attributes set (by keywords or
    :meth:`set_attributes`), never per request.
    """

    rt: str | Sequence[str] | None = None
    if_: str | Sequence[str] | None = None
    ct: int | str | Sequence[int | str] | None = None
    sz: int | None = None
    title: str | None = None
    observable: bool = False
    hidden: bool = False
    extra_attributes: Mapping[str, str | None] = MappingProxyType({})
    accepts: Collection[int | str] | None = None
    produces: Collection[int | str] | None = None
    notification_type: MessageType | None = None
    """Observe: send notifications as CON or NON (None: the server's default, NON)."""
    con_every: int | None = None
    """Observe: make every Nth notification a CON (None: the server's default)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _FORMAT_ATTRIBUTES:
            if name in cls.__dict__:
                setattr(cls, name, _numbers(name, cls.__dict__[name]))

    def __init__(self, **attrs: Any) -> None:
        self.set_attributes(**attrs)

    def updated(self) -> None:
        """Signal a new state: every server serving this resource notifies its observers.

        Call it from application code whenever the representation changes (RFC 7641 §4.2).
        A server with a notification bus (``Server(bus=...)``) also publishes the change,
        and the servers of the other processes notify theirs (:mod:`coapkit.bus`).
        """
        for listener in list(getattr(self, "_update_listeners", ())):
            listener(self)

    def changed(self) -> None:
        """The same as :meth:`updated`: the resource has a new state."""
        self.updated()

    def update_observation_count(self, count: int) -> None:
        """Called by a server whenever the number of clients observing this resource there
        changes (as aiocoap's hook of the same name): ``count`` is the new number, 0 when
        the last one went (deregistered, reset, unreachable, or the server closed).

        Override it to sample a sensor only while someone observes::

            def update_observation_count(self, count):
                if count and self.sampler is None:
                    self.sampler = asyncio.create_task(self.sample())
                elif not count and self.sampler is not None:
                    self.sampler.cancel()
                    self.sampler = None

        An exception raised here is logged and otherwise ignored.
        """

    def add_update_listener(self, listener: Callable[[Resource], None]) -> None:
        """Called by servers so that :meth:`updated` reaches them."""
        listeners: list[Callable[[Resource], None]] | None = self.__dict__.get("_update_listeners")
        if listeners is None:
            listeners = []
            self.__dict__["_update_listeners"] = listeners
        if listener not in listeners:
            listeners.append(listener)

    def remove_update_listener(self, listener: Callable[[Resource], None]) -> None:
        listeners = self.__dict__.get("_update_listeners")
        if listeners and listener in listeners:
            listeners.remove(listener)

    def set_attributes(self, **attrs: Any) -> None:
        """Set discovery and content-negotiation attributes on this instance."""
        unknown = sorted(set(attrs) - ATTRIBUTES)
        if unknown:
            known = ", ".join(sorted(ATTRIBUTES))
            raise TypeError(f"unknown resource attribute {unknown[0]!r} (known: {known})")
        for name, value in attrs.items():
            setattr(self, name, _numbers(name, value) if name in _FORMAT_ATTRIBUTES else value)

    def __repr__(self) -> str:
        methods = ", ".join(self.allowed_methods()) or "no methods"
        return f"<{type(self).__name__} {methods}>"

    def handler(self, method: int) -> Handler | None:
        """The handler for a method code, or None if this resource does not implement it."""
        name = METHOD_ATTRIBUTES.get(method)
        if name is None:
            return None
        handler = getattr(self, name, None)
        return handler if callable(handler) else None

    def allowed_methods(self) -> list[str]:
        """Names of the methods implemented, in code order: ``["GET", "PUT"]``."""
        return [code_name(code) for code in METHOD_ATTRIBUTES if self.handler(code) is not None]

    def link(self, path: str) -> Link:
        """The link describing this resource at ``path`` (a percent-encoded target)."""
        link = Link.make(
            path,
            rt=self.rt,
            if_=self.if_,
            ct=_numbers("ct", self.ct),
            sz=self.sz,
            obs=self.observable,
            title=self.title,
        )
        if self.extra_attributes:
            link = Link(link.target, link.attributes + tuple(self.extra_attributes.items()))
        return link


class FunctionResource(Resource):
    """A resource made of one function per method code (what ``Site.route`` builds).

    >>> r = FunctionResource({Code.GET: lambda request: "hi"}, rt="greeting")
    >>> r.allowed_methods(), r.rt
    (['GET'], 'greeting')
    """

    def __init__(self, handlers: Mapping[int, Handler] | None = None, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.handlers: dict[int, Handler] = {}
        if handlers:
            for method, function in handlers.items():
                self.add_handler(method, function)

    def add_handler(self, method: int | str, function: Handler) -> None:
        """Serve ``method`` with ``function``; ValueError if that method already has one."""
        code = method_code(method)
        if code in self.handlers:
            raise ValueError(f"{code_name(code)} already has a handler on this resource")
        self.handlers[code] = function

    def handler(self, method: int) -> Handler | None:
        return self.handlers.get(method)

    def allowed_methods(self) -> list[str]:
        return [code_name(code) for code in sorted(self.handlers)]
