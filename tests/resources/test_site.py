"""Site: the resource tree, the decorator style and dispatch with its automatic answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Generator
from typing import Any

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import BadRequest, OptionValueError, RespondWith
from coapkit.resources import FunctionResource, Request, Resource, Response, Site
from coapkit.resources.site import finish

from .helpers import answer, req, step

# -- fixtures -------------------------------------------------------------------------------


class Store(Resource):
    """A resource with state and ETags, in the style of the plugtest resources."""

    rt = "store"
    accepts = frozenset({0, 50})
    produces = frozenset({0})

    def __init__(self) -> None:
        super().__init__()
        self.value = b"initial"
        self.version = 1

    @property
    def etag(self) -> bytes:
        return self.version.to_bytes(1, "big")

    def get(self, request: Request) -> Response:
        if self.etag in request.etags:
            return Response(Code.VALID, etag=self.etag, max_age=30)
        return Response(Code.CONTENT, self.value, content_format=0, etag=self.etag, max_age=30)

    def put(self, request: Request) -> Response:
        if not request.preconditions_met(self.etag):
            raise RespondWith(Code.PRECONDITION_FAILED)
        self.value = request.payload
        self.version += 1
        return Response(Code.CHANGED, etag=self.etag)


def make_site(**kw: Any) -> Site:
    site = Site(**kw)
    site.add("/store", Store())
    return site


def dispatch(site: Site, *args: Any, **kw: Any) -> Response:
    result = site.dispatch(req(*args, **kw))
    assert isinstance(result, Response), "expected a ready response"
    return result


# -- the resource tree ---------------------------------------------------------------------


def test_add_returns_the_resource_and_get_resource_finds_it() -> None:
    site = Site()
    store = Store()
    assert site.add("/a/{id}", store) is store
    assert site.get_resource("/a/{id}") is store
    assert site.get_resource("/a/{other}") is store  # the pattern, not the names
    assert site.get_resource("/a/1") is None
    assert site.get_resource("/nothing") is None


def test_add_refuses_non_resources_and_taken_paths() -> None:
    site = make_site()
    with pytest.raises(TypeError, match="expected a Resource"):
        site.add("/f", lambda request: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="/store is already registered"):
        site.add("/store/", Store())
    with pytest.raises(ValueError, match="starts with '/'"):
        site.add("store", Store())


def test_resources_in_path_order() -> None:
    site = Site()
    b, a, p = Store(), Store(), Store()
    site.add("/b", b)
    site.add("/a/{x}", p)
    site.add("/a", a)
    paths = [path for path, _ in site.resources()]
    assert paths == ["/.well-known/core", "/a", "/a/{x}", "/b"]
    assert site.resources()[1] == ("/a", a)


def test_remove() -> None:
    site = make_site()
    store = site.get_resource("/store")
    assert site.remove("/store") is store
    assert site.get_resource("/store") is None
    with pytest.raises(KeyError):
        site.remove("/store")


def test_match() -> None:
    site = Site(well_known=False)
    r = site.add("/users/{user}/files/{path*}", Store())
    assert site.match(("users", "ann", "files", "a", "b")) == (r, {"user": "ann", "path": "a/b"})
    assert site.match(("users",)) is None


def test_repr() -> None:
    assert repr(make_site()) == "<Site 2 resources>"
    assert repr(Site(well_known=False)) == "<Site 0 resources>"


# -- automatic answers --------------------------------------------------------------------


def test_not_found() -> None:
    r = dispatch(make_site(), "GET", "/nothing/here")
    assert (r.code, r.payload) == (Code.NOT_FOUND, b"not found")
    assert r.content_format is None  # a diagnostic payload has no Content-Format (§5.5.2)


def test_method_not_allowed_lists_the_allowed_methods() -> None:
    r = dispatch(make_site(), "POST", "/store")
    assert (r.code, r.text) == (Code.METHOD_NOT_ALLOWED, "allowed: GET, PUT")
    assert r.content_format is None


def test_unknown_method_code_is_method_not_allowed() -> None:
    site = make_site()
    request = Request(Message(MessageType.CON, 8, options=Options.build(uri_path=["store"])), None)
    r = answer(site.dispatch(request))
    assert (r.code, r.text) == (Code.METHOD_NOT_ALLOWED, "allowed: GET, PUT")


def test_resource_without_methods() -> None:
    site = Site()
    site.add("/empty", Resource())
    r = dispatch(site, "GET", "/empty")
    assert (r.code, r.text) == (Code.METHOD_NOT_ALLOWED, "allowed: none")


@pytest.mark.parametrize(
    "options",
    [
        {"proxy_uri": "coap://example.com/x"},
        {"proxy_scheme": "coap"},
        {"proxy_scheme": "http", "uri_host": "example.com"},
    ],
)
def test_proxy_requests_get_proxying_not_supported(options: dict[str, Any]) -> None:
    r = dispatch(make_site(), "GET", "/store", **options)
    assert (r.code, r.text) == (Code.PROXYING_NOT_SUPPORTED, "this server is not a proxy")


def test_proxy_check_comes_before_routing() -> None:
    r = dispatch(make_site(), "GET", "/nothing", proxy_uri="coap://h/store")
    assert r.code == Code.PROXYING_NOT_SUPPORTED


def test_unsupported_content_format() -> None:
    r = dispatch(make_site(), "PUT", "/store", b"\xa0", content_format=60)
    assert (r.code, r.text) == (
        Code.UNSUPPORTED_CONTENT_FORMAT,
        "Content-Format 60 is not accepted here (accepted: 0, 50)",
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "FETCH", "PATCH", "iPATCH"])
def test_accepts_applies_to_methods_with_a_payload(method: str) -> None:
    site = Site()
    site.route("/r", [method], accepts=[50])(lambda request: None)
    r = dispatch(site, method, "/r", b"x", content_format=0)
    assert r.code == Code.UNSUPPORTED_CONTENT_FORMAT
    assert r.text.endswith("(accepted: 50)")


def test_accepts_passes_matching_or_absent_content_format_and_other_methods() -> None:
    site = make_site()
    assert dispatch(site, "PUT", "/store", "text").code == Code.CHANGED
    assert dispatch(site, "PUT", "/store", b"raw").code == Code.CHANGED  # no Content-Format
    assert dispatch(site, "GET", "/store", content_format=60).code == Code.CONTENT
    empty = Site()
    empty.route("/r", "PUT", accepts=())(lambda request: None)
    r = dispatch(empty, "PUT", "/r", b"x", content_format=0)
    assert r.text == "Content-Format 0 is not accepted here (accepted: none)"


def test_not_acceptable() -> None:
    r = dispatch(make_site(), "GET", "/store", accept=50)
    assert (r.code, r.text) == (
        Code.NOT_ACCEPTABLE,
        "cannot answer with Content-Format 50 (available: 0)",
    )
    assert dispatch(make_site(), "GET", "/store", accept=0).code == Code.CONTENT


def test_accept_is_free_without_produces() -> None:
    site = Site()
    site.route("/any")(lambda request: b"x")
    assert dispatch(site, "GET", "/any", accept=12345).code == Code.CONTENT


def test_non_utf8_path_is_a_bad_request() -> None:
    request = Request(Message.decode(bytes.fromhex("40010001b2c328")), None)
    r = answer(make_site().dispatch(request))
    assert (r.code, r.text) == (Code.BAD_REQUEST, "Uri-Path is not valid UTF-8")
    assert r.content_format is None


def test_params_are_filled_in() -> None:
    site = Site()
    seen: list[dict[str, str]] = []

    @site.route("/sensors/{id}")
    @site.route("/files/{path*}")
    def handler(request: Request) -> None:
        seen.append(request.params)

    dispatch(site, "GET", "/sensors/7")
    dispatch(site, "GET", "/files/a/b/")
    dispatch(site, "GET", "/files")
    assert seen == [{"id": "7"}, {"path": "a/b"}, {"path": ""}]


def test_routing_precedence_through_dispatch() -> None:
    site = Site()
    site.route("/sensors/{id}")(lambda request: "param " + request.params["id"])
    site.route("/sensors/all")(lambda request: "exact")
    site.route("/{rest*}")(lambda request: "fallback " + request.params["rest"])
    site.route("/")(lambda request: "root")
    assert dispatch(site, "GET", "/sensors/all").text == "exact"
    assert dispatch(site, "GET", "/sensors/all/").text == "exact"
    assert dispatch(site, "GET", "/sensors/3").text == "param 3"
    assert dispatch(site, "GET", "/sensors/3/x").text == "fallback sensors/3/x"
    assert dispatch(site, "GET", "/").text == "root"
    assert dispatch(site, "GET", "/.well-known/core").content_format == 40


# -- handler results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("GET", Code.CONTENT),
        ("FETCH", Code.CONTENT),
        ("POST", Code.CHANGED),
        ("PUT", Code.CHANGED),
        ("DELETE", Code.DELETED),
        ("PATCH", Code.CHANGED),
        ("iPATCH", Code.CHANGED),
    ],
)
def test_none_bytes_and_str_get_the_method_default_code(method: str, code: int) -> None:
    site = Site()
    results: list[Any] = [None, b"\x01\x02", bytearray(b"ba"), "text"]
    site.route("/r", [method])(lambda request: results.pop(0))
    none, raw, array, text = (dispatch(site, method, "/r") for _ in range(4))
    assert none == Response(code)
    assert raw == Response(code, b"\x01\x02")
    assert array == Response(code, b"ba")
    assert text == Response(code, "text")
    assert text.content_format == 0


def test_custom_method_code_defaults_to_changed() -> None:
    site = Site()
    site.route("/r", [8])(lambda request: None)
    request = Request(Message(MessageType.CON, 8, options=Options.build(uri_path=["r"])), None)
    assert answer(site.dispatch(request)).code == Code.CHANGED


def test_response_and_message_results() -> None:
    site = Site()
    response = Response(Code.CREATED, location_path=["r", "1"])
    site.route("/response", "POST")(lambda request: response)
    message = Message(MessageType.NON, Code.DELETED, 9, b"tok", payload=b"gone")
    site.route("/message", "DELETE")(lambda request: message)
    assert site.dispatch(req("POST", "/response")) is response
    assert dispatch(site, "DELETE", "/message") == Response(Code.DELETED, b"gone")


def test_unsupported_results_are_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    site = Site()
    site.route("/int")(lambda request: 42)  # type: ignore[type-var]
    site.route("/request-message")(lambda request: Message(code=Code.GET))
    with caplog.at_level(logging.ERROR, logger="coapkit.server"):
        r = dispatch(site, "GET", "/int")
        assert (r.code, r.text) == (Code.INTERNAL_SERVER_ERROR, "internal server error")
        assert dispatch(site, "GET", "/request-message").code == Code.INTERNAL_SERVER_ERROR
    messages = [record.getMessage() for record in caplog.records]
    assert "returned 42" in messages[0]
    assert "returned <Message CON GET" in messages[1]
    assert "not int" in str(caplog.records[0].exc_info[1])  # type: ignore[index]


# -- exceptions -------------------------------------------------------------------------------


def test_respond_with_gives_its_code_diagnostic_and_options() -> None:
    site = Site()

    @site.route("/busy")
    def busy(request: Request) -> None:
        raise RespondWith(Code.SERVICE_UNAVAILABLE, "try later", max_age=10)

    r = dispatch(site, "GET", "/busy")
    assert (r.code, r.payload, r.max_age) == (Code.SERVICE_UNAVAILABLE, b"try later", 10)
    assert r.content_format is None


def test_respond_with_without_diagnostic_and_with_a_success_code() -> None:
    site = Site()

    @site.route("/valid")
    def valid(request: Request) -> None:
        raise RespondWith(Code.VALID, etag=b"v")

    r = dispatch(site, "GET", "/valid")
    assert (r.code, r.payload, r.etag) == (Code.VALID, b"", b"v")


@pytest.mark.parametrize(
    "error",
    [
        RespondWith(Code.GET, "a method is no answer"),
        RespondWith(Code.NOT_FOUND, "x", colour="red"),
        RespondWith(Code.NOT_FOUND, "\udc80"),
    ],
)
def test_unusable_respond_with_is_an_internal_error(
    error: RespondWith, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site()

    @site.route("/bad")
    def bad(request: Request) -> None:
        raise error

    with caplog.at_level(logging.ERROR, logger="coapkit.server"):
        r = dispatch(site, "GET", "/bad")
    assert r.code == Code.INTERNAL_SERVER_ERROR
    assert "cannot be sent as a response" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    "error",
    [
        ValueError("could not convert string to float: 'warm'"),
        OptionValueError(12, "Content-Format must be 0 to 2 bytes, not 3"),
        KeyError("sensor-7"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "secret detail"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_any_other_exception_is_a_5_00_without_its_text(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """A ValueError deep in a handler is the server's bug, not the client's: 5.00 with the
    generic diagnostic, the text and traceback only in the log (it used to be 4.00 with
    the exception's text on the wire)."""
    site = Site()

    @site.route("/broken", "PUT")
    def broken(request: Request) -> None:
        raise error

    with caplog.at_level(logging.DEBUG, logger="coapkit.server"):
        r = dispatch(site, "PUT", "/broken", "warm")
    assert (r.code, r.payload) == (Code.INTERNAL_SERVER_ERROR, b"internal server error")
    assert r.content_format is None
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[1] is error
    assert str(error) not in r.text


def test_bad_request_gives_4_00_with_its_diagnostic() -> None:
    site = Site()

    @site.route("/temperature", "PUT")
    def temperature(request: Request) -> Response:
        try:
            value = float(request.text)
        except ValueError:
            raise BadRequest("the temperature is a number (°C)", max_age=5) from None
        return Response(Code.CHANGED, str(value))

    r = dispatch(site, "PUT", "/temperature", "warm")
    assert (r.code, r.text, r.max_age) == (Code.BAD_REQUEST, "the temperature is a number (°C)", 5)
    assert r.content_format is None
    assert dispatch(site, "PUT", "/temperature", "21.5").text == "21.5"
    error = BadRequest("x")
    assert isinstance(error, RespondWith) and isinstance(error, ValueError)
    assert error.code == Code.BAD_REQUEST


def test_malformed_options_of_the_request_are_bad_requests() -> None:
    """Content-Format and Accept the client sent malformed (3 bytes, RFC 7252 §5.10.3 allows
    2): the site's 4.15/4.06 checks and the request's accessors answer 4.00 saying so."""
    site = make_site()

    @site.route("/echo", "POST")
    def echo(request: Request) -> str:
        return f"{request.content_format}"

    @site.route("/observe")
    def observe(request: Request) -> str:
        return f"{request.observe}"

    three = b"\x00\x00\x32"
    for path, method, option, raw in [
        ("/store", "PUT", OptionNumber.CONTENT_FORMAT, three),  # read for ``accepts``
        ("/store", "GET", OptionNumber.ACCEPT, three),  # and for ``produces``
        ("/echo", "POST", OptionNumber.CONTENT_FORMAT, three),  # by the handler
        ("/observe", "GET", OptionNumber.OBSERVE, b"\x00\x00\x00\x01"),
    ]:
        built = req(method, path, b"x" if method != "GET" else b"")
        message = built.message.replace(options=built.message.options.add(option, raw))
        request = Request(message, ("192.0.2.1", 5683))
        r = answer(site.dispatch(request))
        assert r.code == Code.BAD_REQUEST, (path, method)
        assert "must be 0 to" in r.text


def test_request_accessor_errors_are_bad_requests() -> None:
    site = Site()

    @site.route("/json", "POST")
    def post_json(request: Request) -> Response:
        return Response.json_(request.json())

    @site.route("/text", "POST")
    def post_text(request: Request) -> str:
        return request.text.upper()

    ok = dispatch(site, "POST", "/json", b'{"a":1}')
    assert (ok.code, ok.json()) == (Code.CONTENT, {"a": 1})
    r = dispatch(site, "POST", "/json", b"{nope")
    assert r.code == Code.BAD_REQUEST
    assert r.text.startswith("payload is not valid JSON: ")
    r = dispatch(site, "POST", "/text", b"\xff")
    assert (r.code, r.text) == (Code.BAD_REQUEST, "payload is not valid UTF-8")
    assert dispatch(site, "POST", "/text", "abc").text == "ABC"


def test_other_exceptions_are_internal_errors_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = Site()

    @site.route("/boom")
    def boom(request: Request) -> None:
        raise RuntimeError("secret database password is hunter2")

    with caplog.at_level(logging.ERROR, logger="coapkit.server"):
        r = dispatch(site, "GET", "/boom")
    assert (r.code, r.payload) == (Code.INTERNAL_SERVER_ERROR, b"internal server error")
    assert b"hunter2" not in r.payload
    assert b"Traceback" not in r.payload
    (record,) = caplog.records
    assert record.name == "coapkit.server"
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "handler for <Request GET /boom from 192.0.2.1:5683> raised RuntimeError"
    )
    assert record.exc_info is not None
    assert "hunter2" in caplog.text  # the traceback is in the log, not on the wire
    assert "Traceback" in caplog.text


# -- sync and async handlers ------------------------------------------------------------


class Mixed(Resource):
    def get(self, request: Request) -> str:
        return "sync"

    async def put(self, request: Request) -> str:
        return "async " + request.text

    async def post(self, request: Request) -> Response:
        await asyncio.sleep(0)
        return Response(Code.CREATED, location_path=["mixed", "1"])

    async def delete(self, request: Request) -> None:
        raise RespondWith(Code.FORBIDDEN, "no")

    async def fetch(self, request: Request) -> None:
        raise ValueError("bad fetch")

    async def patch(self, request: Request) -> None:
        raise KeyError("oops")

    async def ipatch(self, request: Request) -> int:
        return 5


def test_a_sync_handler_gives_a_ready_response() -> None:
    site = Site()
    site.add("/mixed", Mixed())
    assert isinstance(site.dispatch(req("GET", "/mixed")), Response)


def test_an_async_handler_gives_an_awaitable() -> None:
    site = Site()
    site.add("/mixed", Mixed())
    result = site.dispatch(req("PUT", "/mixed", "x"))
    assert not isinstance(result, Response)
    assert isinstance(result, Awaitable)
    assert step(result) == Response(Code.CHANGED, "async x")


def test_automatic_answers_are_ready_even_for_async_resources() -> None:
    site = Site()
    site.add("/mixed", Mixed())
    site.get_resource("/mixed").accepts = {0}  # type: ignore[union-attr]
    result = site.dispatch(req("PUT", "/mixed", b"x", content_format=60))
    assert isinstance(result, Response)
    assert result.code == Code.UNSUPPORTED_CONTENT_FORMAT


def test_async_handler_that_suspends_runs_under_asyncio() -> None:
    site = Site()
    site.add("/mixed", Mixed())
    result = site.dispatch(req("POST", "/mixed"))
    assert not isinstance(result, Response)

    async def main() -> Response:
        return await result

    r = asyncio.run(main())
    assert (r.code, r.location_path) == (Code.CREATED, ("mixed", "1"))


def test_async_outcomes_are_normalised_like_sync_ones(caplog: pytest.LogCaptureFixture) -> None:
    site = Site()
    site.add("/mixed", Mixed())
    forbidden = answer(site.dispatch(req("DELETE", "/mixed")))
    assert (forbidden.code, forbidden.text) == (Code.FORBIDDEN, "no")
    with caplog.at_level(logging.ERROR, logger="coapkit.server"):
        bad = answer(site.dispatch(req("FETCH", "/mixed")))
        oops = answer(site.dispatch(req("PATCH", "/mixed")))
        five = answer(site.dispatch(req("iPATCH", "/mixed")))
    assert bad == Response(Code.INTERNAL_SERVER_ERROR, b"internal server error")
    assert oops == Response(Code.INTERNAL_SERVER_ERROR, b"internal server error")
    assert five.code == Code.INTERNAL_SERVER_ERROR
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3
    assert "raised ValueError" in caplog.records[0].getMessage()
    assert "raised KeyError" in caplog.records[1].getMessage()


def test_a_sync_handler_returning_an_awaitable_is_awaited() -> None:
    site = Site()

    async def later() -> str:
        return "later"

    site.route("/later")(lambda request: later())
    result = site.dispatch(req("GET", "/later"))
    assert not isinstance(result, Response)
    assert step(result) == Response(Code.CONTENT, "later")


def test_cancellation_propagates_through_finish() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        step(finish(cancelled(), req()))


def test_any_awaitable_result_is_awaited() -> None:
    class Ready:
        """An awaitable that is not a coroutine and never suspends."""

        def __await__(self) -> Generator[None, None, str]:
            yield from ()  # a generator that yields nothing
            return "ready"

    site = Site()
    site.route("/ready", "POST")(lambda request: Ready())
    result = site.dispatch(req("POST", "/ready"))
    assert not isinstance(result, Response)
    assert step(result) == Response(Code.CHANGED, "ready")


# -- the decorator style ------------------------------------------------------------------


def test_several_decorators_build_one_resource() -> None:
    site = Site()
    state = {"value": "0"}

    @site.route("/counter", rt="counter", observable=True)
    def read(request: Request) -> str:
        return state["value"]

    @site.route("/counter", ["PUT", "POST"], title="Counter")
    def write(request: Request) -> None:
        state["value"] = request.text

    resource = site.get_resource("/counter")
    assert isinstance(resource, FunctionResource)
    assert resource.allowed_methods() == ["GET", "POST", "PUT"]
    assert (resource.rt, resource.observable, resource.title) == ("counter", True, "Counter")
    assert dispatch(site, "PUT", "/counter", "5").code == Code.CHANGED
    assert dispatch(site, "GET", "/counter").text == "5"
    assert read.__name__ == "read"  # the decorator gives the function back


def test_route_accepts_a_single_method_name_and_codes() -> None:
    site = Site()
    site.route("/a", "delete")(lambda request: None)
    site.route("/a", [Code.GET, "fetch"])(lambda request: None)
    assert site.get_resource("/a").allowed_methods() == ["GET", "DELETE", "FETCH"]  # type: ignore[union-attr]


def test_route_errors() -> None:
    site = make_site()
    with pytest.raises(ValueError, match="unknown method 'BREW'"):
        site.route("/x", "BREW")
    with pytest.raises(ValueError, match="at least one method"):
        site.route("/x", [])
    with pytest.raises(ValueError, match="/store is served by <Store GET, PUT>"):
        site.route("/store")(lambda request: None)
    site.route("/f/{id}")(lambda request: None)
    with pytest.raises(ValueError, match="already has a GET handler"):
        site.route("/f/{id}", ["PUT", "GET"])(lambda request: None)
    assert site.get_resource("/f/{id}").allowed_methods() == ["GET"]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"/f/\{name\} and /f/\{id\} name their parameters"):
        site.route("/f/{name}", "PUT")(lambda request: None)
    with pytest.raises(TypeError, match="unknown resource attribute"):
        site.route("/g", colour="red")(lambda request: None)


# -- what the plugtest resources need ----------------------------------------------------------


def test_resources_can_appear_and_disappear_while_serving() -> None:
    site = Site()

    @site.route("/create", "POST")
    def create(request: Request) -> Response:
        name = request.text
        child = FunctionResource()

        def read(request: Request) -> str:
            return "I am " + name

        def delete(request: Request) -> None:
            site.remove("/items/" + name)

        child.add_handler("GET", read)
        child.add_handler("DELETE", delete)
        site.add("/items/" + name, child)
        return Response(Code.CREATED, location_path=["items", name])

    assert dispatch(site, "GET", "/items/x").code == Code.NOT_FOUND
    created = dispatch(site, "POST", "/create", "x")
    assert (created.code, created.location_path) == (Code.CREATED, ("items", "x"))
    assert dispatch(site, "GET", "/items/x").text == "I am x"
    assert "</items/x>" in dispatch(site, "GET", "/.well-known/core").text
    assert dispatch(site, "DELETE", "/items/x").code == Code.DELETED
    assert dispatch(site, "GET", "/items/x").code == Code.NOT_FOUND
    assert "items" not in dispatch(site, "GET", "/.well-known/core").text


def test_etag_validation_and_conditional_put() -> None:
    site = make_site()
    first = dispatch(site, "GET", "/store")
    assert (first.code, first.payload, first.etag, first.max_age) == (
        Code.CONTENT,
        b"initial",
        b"\x01",
        30,
    )
    valid = dispatch(site, "GET", "/store", etag=[b"\x09", b"\x01"])
    assert (valid.code, valid.payload, valid.etag) == (Code.VALID, b"", b"\x01")
    assert dispatch(site, "PUT", "/store", "new", if_match=[b"\x09"]).code == (
        Code.PRECONDITION_FAILED
    )
    changed = dispatch(site, "PUT", "/store", "new", if_match=[b"\x01"])
    assert (changed.code, changed.etag) == (Code.CHANGED, b"\x02")
    assert dispatch(site, "PUT", "/store", "newer", if_none_match=True).code == (
        Code.PRECONDITION_FAILED
    )
    assert dispatch(site, "GET", "/store").payload == b"new"


def test_multi_segment_paths_and_query_echo() -> None:
    site = Site()

    @site.route("/seg1/seg2/seg3")
    def deep(request: Request) -> str:
        return "&".join(request.query)

    r = dispatch(site, "GET", "/seg1/seg2/seg3?first=1&second=2")
    assert (r.code, r.text) == (Code.CONTENT, "first=1&second=2")
    assert dispatch(site, "GET", "/seg1/seg2").code == Code.NOT_FOUND


def test_route_checks_the_path_at_once() -> None:
    with pytest.raises(ValueError, match="starts with '/'"):
        Site().route("nope")
