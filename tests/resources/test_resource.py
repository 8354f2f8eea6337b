"""Resource and FunctionResource: handlers, allowed methods, attributes and links."""

from __future__ import annotations

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.link_format import Link, serialize_link_format
from coapkit.resources import FunctionResource, Request, Resource, Response
from coapkit.resources.resource import method_code


class Thermometer(Resource):
    rt = "temperature-c"
    if_ = ("sensor", "core.s")
    ct = (0, 50)
    sz = 12
    title = "Room temperature"
    observable = True

    def get(self, request: Request) -> Response:
        return Response(payload="21.5")

    async def put(self, request: Request) -> None:
        return None


class Empty(Resource):
    pass


def test_handlers_are_the_defined_methods() -> None:
    t = Thermometer()
    handler = t.handler(Code.GET)
    assert handler is not None
    assert handler(Request.build()) == Response(payload="21.5")
    assert t.handler(Code.PUT) is not None
    assert t.handler(Code.POST) is None
    assert t.handler(8) is None
    assert t.allowed_methods() == ["GET", "PUT"]


def test_all_methods_in_code_order() -> None:
    class Everything(Resource):
        def ipatch(self, request: Request) -> None: ...
        def patch(self, request: Request) -> None: ...
        def fetch(self, request: Request) -> None: ...
        def delete(self, request: Request) -> None: ...
        def put(self, request: Request) -> None: ...
        def post(self, request: Request) -> None: ...
        def get(self, request: Request) -> None: ...

    assert Everything().allowed_methods() == [
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "FETCH",
        "PATCH",
        "iPATCH",
    ]


def test_a_non_callable_attribute_is_not_a_handler() -> None:
    class Odd(Resource):
        get = "not a function"

    assert Odd().handler(Code.GET) is None
    assert Odd().allowed_methods() == []


def test_repr() -> None:
    assert repr(Thermometer()) == "<Thermometer GET, PUT>"
    assert repr(Empty()) == "<Empty no methods>"


def test_defaults() -> None:
    e = Empty()
    assert (e.rt, e.if_, e.ct, e.sz, e.title) == (None, None, None, None, None)
    assert (e.observable, e.hidden, e.accepts, e.produces) == (False, False, None, None)
    assert dict(e.extra_attributes) == {}
    assert e.link("/e") == Link("/e")


def test_link_has_every_attribute_in_order() -> None:
    link = Thermometer().link("/sensors/temp")
    assert serialize_link_format([link]) == (
        '</sensors/temp>;rt="temperature-c";if="sensor core.s";ct="0 50";sz=12;obs;'
        'title="Room temperature"'
    )
    assert link.rt == ("temperature-c",)
    assert link.if_ == ("sensor", "core.s")
    assert link.ct == (0, 50)
    assert link.obs


def test_extra_attributes_follow_even_with_registered_names() -> None:
    r = Resource(ct=40, extra_attributes={"anchor": "/x", "foo": None, "rt": "extra"})
    assert r.link("/r").attributes == (
        ("ct", "40"),
        ("anchor", "/x"),
        ("foo", None),
        ("rt", "extra"),
    )


def test_keyword_attributes_are_set_on_the_instance() -> None:
    r = Resource(rt="a", hidden=True, accepts={0}, produces=[50], title="T")
    assert (r.rt, r.hidden, r.accepts, r.produces, r.title) == ("a", True, {0}, {50}, "T")
    assert Resource().rt is None  # the class default is untouched


def test_content_formats_may_be_given_by_name() -> None:
    """Names as the CLI takes them, looked up when the class or the attributes are made."""

    class Sensor(Resource):
        ct = ("json", "cbor")
        accepts = frozenset({"application/json", 60})
        produces = "json"

    assert (Sensor.ct, Sensor.accepts, Sensor.produces) == ((50, 60), {50, 60}, {50})
    r = Resource(ct="link-format", accepts=["text"], produces=("cbor", "senml+json"))
    assert (r.ct, r.accepts, r.produces) == (40, {0}, {60, 110})
    assert Sensor().link("/s").ct == (50, 60)
    with pytest.raises(ValueError, match="unknown content format 'jsno'"):
        Resource(accepts={"jsno"})
    with pytest.raises(TypeError, match="a Content-Format is a number or a name"):
        Resource(produces=[b"json"])


def test_unknown_keyword_attribute() -> None:
    with pytest.raises(TypeError, match="unknown resource attribute 'colour'"):
        Resource(colour="red")
    with pytest.raises(TypeError, match="unknown resource attribute 'if'"):
        Resource(**{"if": "sensor"})


# -- FunctionResource ---------------------------------------------------------------------


def get_hello(request: Request) -> str:
    return "hello"


def test_function_resource() -> None:
    r = FunctionResource({Code.PUT: get_hello, Code.GET: get_hello}, rt="greeting")
    assert r.handler(Code.GET) is get_hello
    assert r.handler(Code.POST) is None
    assert r.allowed_methods() == ["GET", "PUT"]
    assert r.rt == "greeting"
    assert repr(r) == "<FunctionResource GET, PUT>"


def test_function_resource_add_handler() -> None:
    r = FunctionResource()
    assert r.allowed_methods() == []
    r.add_handler("post", get_hello)
    r.add_handler(8, get_hello)  # an unregistered method code may be served
    assert r.allowed_methods() == ["POST", "method 0.08"]
    with pytest.raises(ValueError, match="POST already has a handler"):
        r.add_handler(Code.POST, get_hello)


def test_method_code() -> None:
    assert method_code("get") == Code.GET
    assert method_code("iPATCH") == Code.IPATCH
    assert method_code(Code.FETCH) == Code.FETCH
    assert method_code(31) == 31


@pytest.mark.parametrize("method", [0, 32, Code.CONTENT, True, 1.0, "BREW"])
def test_method_code_refuses(method: object) -> None:
    with pytest.raises(ValueError, match="method"):
        method_code(method)  # type: ignore[arg-type]
