"""Response: construction, options, payload helpers, messages and value behaviour."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest

from coapkit.address import Address
from coapkit.codec.codes import Code
from coapkit.codec.link_format import Link
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import ErrorResponse, LinkFormatError, OptionValueError
from coapkit.resources import Response

# -- construction ----------------------------------------------------------------------


def test_defaults_are_an_empty_content() -> None:
    r = Response()
    assert r.code == Code.CONTENT
    assert r.payload == b""
    assert r.options == Options()
    assert r.remote is None
    assert r.content_format is None


def test_str_payload_is_utf8_and_text_plain() -> None:
    r = Response(Code.CONTENT, "température")
    assert r.payload == "température".encode()
    assert r.content_format == 0


def test_str_payload_keeps_a_content_format_given_as_keyword_or_in_options() -> None:
    assert Response(payload="{}", content_format=50).content_format == 50
    options = Options.build(content_format=41)
    assert Response(payload="<a/>", options=options).content_format == 41


def test_bytes_payload_gets_no_content_format() -> None:
    assert Response(payload=b"\x00\x01").content_format is None


def test_bytearray_and_memoryview_payloads_become_bytes() -> None:
    assert Response(payload=bytearray(b"ab")).payload == b"ab"
    r = Response(payload=memoryview(b"cd"))
    assert type(r.payload) is bytes
    assert r.payload == b"cd"


@pytest.mark.parametrize("payload", [3, None, ["a"]])
def test_other_payload_types_are_refused(payload: object) -> None:
    with pytest.raises(TypeError, match="payload is bytes or str"):
        Response(payload=payload)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [Code.GET, 0, 8, Code.CSM, 256])
def test_non_response_codes_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match="not a response code"):
        Response(code)


@pytest.mark.parametrize("code", ["2.05", True, 69.0])
def test_codes_must_be_ints(code: object) -> None:
    with pytest.raises(TypeError, match="response code is an int"):
        Response(code)  # type: ignore[arg-type]


def test_every_code_is_a_code_member_registered_or_not() -> None:
    assert Response(69).code is Code.CONTENT
    unregistered = Response((2 << 5) | 10)
    assert unregistered.code == 74
    assert isinstance(unregistered.code, Code)  # one of its own: the type says Code
    assert unregistered.code is Code(74)
    assert (unregistered.code.name, str(unregistered.code)) == ("2.10", "2.10")
    assert repr(unregistered) == "<Response 2.10, 0 bytes>"
    received = Response.from_message(Message(MessageType.ACK, (4 << 5) | 10))
    assert received.code is Code(138) and received.code.dotted == "4.10"


def test_option_keywords_merge_into_options() -> None:
    base = Options.build(etag=b"v1", max_age=10)
    r = Response(
        Code.CREATED,
        options=base,
        max_age=30,
        location_path=["a", "b"],
        location_query=["x=1"],
        observe=5,
    )
    assert r.etag == b"v1"
    assert r.max_age == 30
    assert r.location_path == ("a", "b")
    assert r.location_query == ("x=1",)
    assert r.observe == 5


def test_options_must_be_an_options_value() -> None:
    with pytest.raises(TypeError, match="Options value"):
        Response(options=[(12, b"")])  # type: ignore[arg-type]


def test_bad_option_values_raise_at_construction() -> None:
    with pytest.raises(OptionValueError):
        Response(max_age=-1)
    with pytest.raises(TypeError, match="unknown option keyword"):
        Response(colour="red")


# -- the code -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "success", "error"),
    [
        (Code.CONTENT, True, False),
        (Code.CREATED, True, False),
        ((3 << 5) | 1, False, False),
        (Code.NOT_FOUND, False, True),
        (Code.INTERNAL_SERVER_ERROR, False, True),
    ],
)
def test_success_and_error(code: int, success: bool, error: bool) -> None:
    r = Response(code)
    assert r.is_success is success
    assert r.is_error is error


def test_raise_for_status_returns_self_for_success() -> None:
    r = Response(Code.CHANGED)
    assert r.raise_for_status() is r


def test_raise_for_status_raises_error_response_with_diagnostic() -> None:
    r = Response(Code.NOT_FOUND, b"no such sensor")
    with pytest.raises(ErrorResponse) as caught:
        r.raise_for_status()
    assert caught.value.code == Code.NOT_FOUND
    assert str(caught.value) == "4.04 Not Found: no such sensor"
    assert caught.value.response is r  # the Response itself, as httpx's HTTPStatusError has it


def test_error_response_carries_the_response_with_its_json_and_remote() -> None:
    r = Response.json_({"error": "no such sensor", "id": 7}, Code.NOT_FOUND)
    r = r.replace(remote=("192.0.2.1", 5683))
    with pytest.raises(ErrorResponse) as caught:
        r.raise_for_status()
    error = caught.value
    assert error.response.json() == {"error": "no such sensor", "id": 7}
    assert error.response.remote == r.remote
    assert error.code == Code.NOT_FOUND


# -- payload helpers ---------------------------------------------------------------------


def test_text_replaces_undecodable_bytes() -> None:
    assert Response(payload=b"ok \xff").text == "ok \ufffd"


def test_json_round_trip() -> None:
    r = Response.json_({"t": 22.5, "unit": "°C"}, max_age=5)
    assert r.code == Code.CONTENT
    assert r.content_format == 50
    assert r.max_age == 5
    assert r.payload == '{"t":22.5,"unit":"°C"}'.encode()
    assert r.json() == {"t": 22.5, "unit": "°C"}


def test_json_constructor_takes_a_code_and_another_content_format() -> None:
    r = Response.json_([1], Code.CREATED, content_format=110)
    assert (r.code, r.content_format) == (Code.CREATED, 110)


def test_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        Response.json_(float("nan"))


def test_json_error_messages() -> None:
    with pytest.raises(ValueError, match=r"4\.04 Not Found response has no payload"):
        Response(Code.NOT_FOUND).json()
    with pytest.raises(ValueError, match="payload is not valid JSON") as caught:
        Response(payload=b"{oops").json()
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(ValueError, match="not valid JSON"):
        Response(payload=b"\xff\xfe\x00").json()


def test_json_too_deep_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        Response(payload=b"[" * 200_000).json()


def test_cbor_round_trip() -> None:
    r = Response.cbor_({"a": [1, 2]}, Code.CHANGED, etag=b"e")
    assert (r.code, r.content_format, r.etag) == (Code.CHANGED, 60, b"e")
    assert r.payload == bytes.fromhex("a1616182 0102".replace(" ", ""))
    assert r.cbor() == {"a": [1, 2]}


def test_cbor_error_message() -> None:
    with pytest.raises(ValueError, match="payload is not valid CBOR"):
        Response(payload=b"\x9f").cbor()
    with pytest.raises(ValueError, match="not valid CBOR"):
        Response(payload=b"").cbor()


def test_cbor_without_cbor2_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cbor2", None)
    with pytest.raises(ImportError, match=r"pip install coapkit\[cbor\]"):
        Response(payload=b"\x01").cbor()
    with pytest.raises(ImportError, match=r"pip install coapkit\[cbor\]"):
        Response.cbor_(1)


def test_link_format_round_trip() -> None:
    links = [Link.make("/sensors/temp", rt="temperature", obs=True), Link("/x")]
    r = Response.link_format(links)
    assert r.content_format == 40
    assert r.text == '</sensors/temp>;rt="temperature";obs,</x>'
    assert r.links() == links


def test_links_refuses_non_utf8() -> None:
    with pytest.raises(LinkFormatError, match="not valid UTF-8"):
        Response(payload=b"</\xff>").links()


# -- messages -----------------------------------------------------------------------------


def test_to_message_has_placeholders_and_the_token() -> None:
    r = Response(Code.CHANGED, b"done", max_age=0)
    m = r.to_message(b"\x01\x02")
    assert m == Message(MessageType.ACK, Code.CHANGED, 0, b"\x01\x02", r.options, b"done")
    assert r.to_message().token == b""


def test_from_message_keeps_code_options_payload_and_remote() -> None:
    m = Message(MessageType.CON, 69, 77, b"tok", Options.build(content_format=0), b"hi")
    r = Response.from_message(m, remote=("::1", 5683))
    assert r.code is Code.CONTENT
    assert (r.payload, r.content_format, r.text) == (b"hi", 0, "hi")
    assert r.remote == Address("::1", 5683)
    assert isinstance(r.remote, Address)
    assert Response.from_message(r.to_message()) == r


def test_from_message_refuses_a_request() -> None:
    with pytest.raises(ValueError, match="GET is not a response code"):
        Response.from_message(Message(MessageType.CON, Code.GET))


# -- value behaviour ---------------------------------------------------------------------


def test_repr() -> None:
    assert repr(Response(Code.CONTENT, b"x" * 12)) == "<Response 2.05 Content, 12 bytes>"
    assert repr(Response(Code.NOT_FOUND, b"x")) == "<Response 4.04 Not Found, 1 byte>"
    assert repr(Response(Code.DELETED)) == "<Response 2.02 Deleted, 0 bytes>"


def test_equality_and_hash_ignore_the_remote() -> None:
    a = Response(Code.CONTENT, "hi", remote=("192.0.2.1", 5683))
    b = Response(Code.CONTENT, "hi", remote=("192.0.2.2", 5683))
    assert a == b
    assert hash(a) == hash(b)
    assert a != Response(Code.CONTENT, b"hi")  # no Content-Format
    assert a != Response(Code.CHANGED, "hi")
    assert a != Response(Code.CONTENT, "ho")
    assert a != a.to_message()
    assert a.__eq__(object()) is NotImplemented


def test_responses_are_immutable() -> None:
    r = Response()
    with pytest.raises(AttributeError, match="immutable"):
        r.code = Code.CHANGED
    with pytest.raises(AttributeError, match="immutable"):
        del r.payload


def test_replace_fields_and_options() -> None:
    r = Response(Code.CONTENT, "a", max_age=5, remote=("::ffff:192.0.2.1", 5683, 0, 0))
    s = r.replace(code=Code.VALID, payload=b"", max_age=None, etag=b"e1")
    assert (s.code, s.payload, s.max_age, s.etag, s.content_format) == (
        Code.VALID,
        b"",
        None,
        b"e1",
        0,
    )
    assert s.remote == Address("192.0.2.1", 5683)
    assert r.replace(content_format=50).content_format == 50
    assert r.replace(content_format="application/cbor").content_format == 60
    assert r.replace(remote=None).remote is None
    assert r.replace() == r


def test_pickle_and_copy() -> None:
    r = Response(Code.CREATED, b"x", location_path=["n", "1"], remote=("h", 1))
    for clone in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert clone == r
        assert clone.remote == Address("h", 1)
