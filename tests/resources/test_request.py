"""Request: method, path, query, options, payload accessors and preconditions."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from coapkit.address import Address
from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import BadRequest, RespondWith
from coapkit.resources import Request

from .helpers import req

# A CON GET whose only Uri-Path is the two bytes c3 28: not UTF-8.
BAD_PATH = Message.decode(bytes.fromhex("40010001b2c328"))


def test_constructor_fields() -> None:
    message = Message(MessageType.NON, Code.GET)
    r = Request(message, ("::1", 5683), handle="h", params={"id": "1"})
    assert r.message is message
    assert r.remote == ("::1", 5683)
    assert r.handle == "h"
    assert r.params == {"id": "1"}
    assert r.options is message.options
    fresh = Request(message, ("::1", 5683))
    assert fresh.handle is None
    assert fresh.params == {}
    assert fresh.params is not Request(message, ("::1", 5683)).params


def test_remote_is_an_address_made_when_asked() -> None:
    """The core's tuple is kept as received; the handler sees a typed Address, the same one
    for every request from that peer (made once), with IPv4-mapped shown as IPv4."""
    message = Message(MessageType.CON, Code.GET)
    mapped = ("::ffff:127.0.0.1", 5683, 0, 0)
    r = Request(message, mapped)
    assert r._remote is mapped  # what the server keys observers etc. by
    assert isinstance(r.remote, Address)
    assert r.remote == Address("127.0.0.1", 5683)
    assert (r.remote.host, r.remote.port) == ("127.0.0.1", 5683)
    assert str(r.remote) == "127.0.0.1:5683"
    assert Request(message, mapped).remote is r.remote
    assert str(Request(message, ("::1", 61616, 0, 0)).remote) == "[::1]:61616"


# -- method ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (Code.GET, "GET"),
        (Code.POST, "POST"),
        (Code.PUT, "PUT"),
        (Code.DELETE, "DELETE"),
        (Code.FETCH, "FETCH"),
        (Code.PATCH, "PATCH"),
        (Code.IPATCH, "iPATCH"),
    ],
)
def test_method_and_name(code: int, name: str) -> None:
    r = Request(Message(MessageType.CON, int(code)), None)
    assert r.method is code
    assert r.method_name == name


def test_unregistered_method_code() -> None:
    r = Request(Message(MessageType.CON, 8), ("192.0.2.1", 5683))
    assert r.method == 8
    assert isinstance(r.method, Code)  # one of its own, so that the type says Code
    assert r.method.name == "0.08"
    assert r.method_name == "method 0.08"


# -- path and query ----------------------------------------------------------------------


def test_path_and_path_string() -> None:
    r = req("GET", "/sensors/temp")
    assert r.path == ("sensors", "temp")
    assert r.path_string == "/sensors/temp"
    assert r.path is r.path  # decoded once


def test_root_path() -> None:
    r = req("GET", "/")
    assert r.path == ()
    assert r.path_string == "/"


def test_path_string_is_percent_encoded() -> None:
    r = Request(Message(code=Code.GET, options=Options.build(uri_path=["a b", "x/y", "é"])), None)
    assert r.path == ("a b", "x/y", "é")
    assert r.path_string == "/a%20b/x%2Fy/%C3%A9"


def test_non_utf8_uri_path_is_a_bad_request() -> None:
    r = Request(BAD_PATH, ("192.0.2.1", 5683))
    with pytest.raises(BadRequest) as caught:
        _ = r.path
    assert isinstance(caught.value, RespondWith)
    assert caught.value.code == Code.BAD_REQUEST
    assert caught.value.diagnostic == "Uri-Path is not valid UTF-8"
    assert repr(r) == "<Request GET (path not UTF-8) from 192.0.2.1:5683>"


def test_query_and_params() -> None:
    r = req("GET", "/q?a=1&flag&b=x=y&a=2&=v")
    assert r.query == ("a=1", "flag", "b=x=y", "a=2", "=v")
    assert r.query is r.query
    params = r.query_params
    assert params == {"a": "2", "flag": "", "b": "x=y", "": "v"}
    assert r.query_params is params


def test_no_query() -> None:
    r = req("GET", "/q")
    assert r.query == ()
    assert r.query_params == {}


def test_non_utf8_uri_query_is_a_bad_request() -> None:
    options = Options.build(uri_path=["q"]).add(15, b"x=\xff")
    r = Request(Message(code=Code.GET, options=options), None)
    with pytest.raises(RespondWith) as caught:
        _ = r.query_params
    assert caught.value.code == Code.BAD_REQUEST
    assert caught.value.diagnostic == "Uri-Query is not valid UTF-8"


def test_repr() -> None:
    assert repr(req("PUT", "/a/b")) == "<Request PUT /a/b from 192.0.2.1:5683>"


# -- options ----------------------------------------------------------------------------


def test_option_accessors() -> None:
    r = req(
        "GET",
        "/x",
        content_format=60,
        accept=50,
        observe=0,
        etag=[b"e1", b"e2"],
        if_match=[b"m"],
        if_none_match=True,
    )
    assert r.content_format == 60
    assert r.accept == 50
    assert r.observe == 0
    assert r.etags == (b"e1", b"e2")
    assert r.if_match == (b"m",)
    assert r.if_none_match is True


def test_absent_options() -> None:
    r = req("GET", "/x")
    assert (r.content_format, r.accept, r.observe) == (None, None, None)
    assert (r.etags, r.if_match, r.if_none_match) == ((), (), False)


@pytest.mark.parametrize(
    ("options", "etag", "exists", "met"),
    [
        ({}, b"v1", True, True),
        ({}, None, False, True),
        ({"if_match": [b"v1"]}, b"v1", True, True),
        ({"if_match": [b"v0", b"v1"]}, b"v1", True, True),
        ({"if_match": [b"v0"]}, b"v1", True, False),
        ({"if_match": [b"v1"]}, None, True, False),
        ({"if_match": [b""]}, None, True, True),  # "any representation"
        ({"if_match": [b""]}, None, False, False),
        ({"if_match": [b"v1"]}, b"v1", False, False),
        ({"if_none_match": True}, None, False, True),
        ({"if_none_match": True}, b"v1", True, False),
    ],
)
def test_preconditions(
    options: dict[str, Any], etag: bytes | None, exists: bool, met: bool
) -> None:
    assert req("PUT", "/r", **options).preconditions_met(etag, exists=exists) is met


# -- payload ------------------------------------------------------------------------------


def test_payload_and_text() -> None:
    r = req("POST", "/t", "héllo")
    assert r.payload == "héllo".encode()
    assert r.text == "héllo"
    assert r.content_format == 0


def test_text_that_is_not_utf8_is_a_bad_request() -> None:
    with pytest.raises(RespondWith) as caught:
        _ = req("POST", "/t", b"\xff").text
    assert (caught.value.code, caught.value.diagnostic) == (
        Code.BAD_REQUEST,
        "payload is not valid UTF-8",
    )


def test_json() -> None:
    assert req("POST", "/j", b'{"a": [1]}').json() == {"a": [1]}


@pytest.mark.parametrize(
    ("payload", "diagnostic"),
    [
        (b"{oops", "payload is not valid JSON: "),
        (b"", "payload is not valid JSON: "),
        (b"\xff", "payload is not valid UTF-8"),
        (b"[" * 200_000, "JSON payload is nested too deeply"),
    ],
)
def test_json_errors_are_bad_requests(payload: bytes, diagnostic: str) -> None:
    with pytest.raises(RespondWith) as caught:
        req("POST", "/j", payload).json()
    assert caught.value.code == Code.BAD_REQUEST
    assert caught.value.diagnostic.startswith(diagnostic)


def test_cbor() -> None:
    assert req("POST", "/c", bytes.fromhex("a1616101")).cbor() == {"a": 1}
    with pytest.raises(RespondWith) as caught:
        req("POST", "/c", b"\x9f").cbor()
    assert caught.value.code == Code.BAD_REQUEST
    assert caught.value.diagnostic.startswith("payload is not valid CBOR: ")


def test_cbor_without_cbor2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cbor2", None)
    with pytest.raises(ImportError, match=r"coapkit\[cbor\]"):
        req("POST", "/c", b"\x01").cbor()


# -- Request.build ---------------------------------------------------------------------


def test_build_defaults() -> None:
    r = Request.build()
    assert r.message == Message(MessageType.CON, Code.GET)
    assert r.remote == Address("192.0.2.1", 5683)  # RFC 5737's documentation address
    assert r.handle is None


def test_build_with_everything() -> None:
    r = Request.build(
        "ipatch",
        "/a%20b/c/?x=%26&y",
        b"\x01",
        remote=("::1", 61616),
        handle=7,
        content_format="cbor",
    )
    assert r.method is Code.IPATCH
    assert r.path == ("a b", "c", "")
    assert r.query == ("x=&", "y")
    assert (r.payload, r.content_format, r.handle) == (b"\x01", 60, 7)
    assert r.remote == Address("::1", 61616)


def test_build_text_payload_can_have_another_content_format() -> None:
    assert Request.build(Code.POST, "/", "{}").content_format == 0
    assert Request.build(Code.POST, "/", "{}", content_format=50).content_format == 50


def test_build_refuses_unknown_methods() -> None:
    with pytest.raises(ValueError, match="unknown method 'BREW'"):
        Request.build("BREW")
