"""The pieces behind the output, in process: CBOR diagnostic notation, payload rendering,
--json, the -v trace, discovery tables and --option typing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from coapkit.cli.diagnostic import cbor_to_diagnostic, diagnostic
from coapkit.cli.exits import UsageError
from coapkit.cli.render import (
    Trace,
    links_table,
    options_json,
    render_payload,
    response_json,
    show_remote,
)
from coapkit.cli.requests import parse_option
from coapkit.codec.codes import Code
from coapkit.codec.link_format import parse_link_format
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.resources import Response

cbor2 = pytest.importorskip("cbor2")


# -- CBOR diagnostic notation (RFC 8949 §8) ---------------------------------------------------


@pytest.mark.parametrize(
    ("hex_data", "expected"),
    [
        # RFC 8949 Appendix A examples
        ("00", "0"),
        ("17", "23"),
        ("1903e8", "1000"),
        ("1bffffffffffffffff", "18446744073709551615"),
        ("c249010000000000000000", "18446744073709551616"),
        ("3bffffffffffffffff", "-18446744073709551616"),
        ("20", "-1"),
        ("f90000", "0.0"),
        ("f98000", "-0.0"),
        ("f93c00", "1.0"),
        ("fb3ff199999999999a", "1.1"),
        ("f93e00", "1.5"),
        ("fa47c35000", "100000.0"),
        ("fb7e37e43c8800759c", "1.0e+300"),
        ("f97c00", "Infinity"),
        ("f97e00", "NaN"),
        ("f9fc00", "-Infinity"),
        ("f4", "false"),
        ("f5", "true"),
        ("f6", "null"),
        ("f7", "undefined"),
        ("f0", "simple(16)"),
        ("f8ff", "simple(255)"),
        ("c074323031332d30332d32315432303a30343a30305a", '0("2013-03-21T20:04:00Z")'),
        ("c11a514b67b0", "1(1363896240)"),
        ("d74401020304", "23(h'01020304')"),
        ("d818456449455446", "24(h'6449455446')"),
        ("40", "h''"),
        ("4401020304", "h'01020304'"),
        ("60", '""'),
        ("6161", '"a"'),
        ("62225c", '"\\"\\\\"'),
        ("62c3bc", '"ü"'),
        ("80", "[]"),
        ("83010203", "[1, 2, 3]"),
        ("8301820203820405", "[1, [2, 3], [4, 5]]"),
        ("a0", "{}"),
        ("a201020304", "{1: 2, 3: 4}"),
        ("a26161016162820203", '{"a": 1, "b": [2, 3]}'),
        ("5f42010243030405ff", "h'0102030405'"),  # indefinite length: the bytes are shown
        ("c482213903e7", "4([-2, -1000])"),  # a decimal fraction stays a tag
        ("d9d9f7a0", "55799({})"),
    ],
)
def test_rfc_8949_examples(hex_data, expected):
    assert cbor_to_diagnostic(bytes.fromhex(hex_data)) == expected


def test_long_values_break_over_lines():
    value = {"name": "sensor-1", "values": list(range(30)), "ok": True}
    text = cbor_to_diagnostic(cbor2.dumps(value), width=40)
    assert text.splitlines()[0] == "{"
    assert '  "name": "sensor-1",' in text.splitlines()
    assert text.splitlines()[-1] == "}"
    assert text.replace("\n", "").replace("  ", "").count("29") == 1


def test_sequences_and_errors():
    assert cbor_to_diagnostic(bytes.fromhex("0102"), sequence=True) == "1,\n2"
    with pytest.raises(ValueError, match="1 byte follows the data item"):
        cbor_to_diagnostic(bytes.fromhex("0102"))
    with pytest.raises(ValueError, match="not valid CBOR"):
        cbor_to_diagnostic(b"\xff")
    with pytest.raises(ValueError, match="not valid CBOR"):
        cbor_to_diagnostic(b"")


def test_self_referencing_value_does_not_recurse_forever():
    assert cbor_to_diagnostic(bytes.fromhex("d81c81d81d00")) == "[...]"


def test_python_objects_from_older_cbor2_map_back_to_tags():
    import datetime
    import uuid

    moment = datetime.datetime(2013, 3, 21, 20, 4, tzinfo=datetime.UTC)
    assert diagnostic(moment) == '0("2013-03-21T20:04:00Z")'
    assert diagnostic(Decimal("1.5")) == "4([-1, 15])"
    assert diagnostic(uuid.UUID(int=1)) == "37(h'00000000000000000000000000000001')"
    assert diagnostic({2, 1}) == "258([1, 2])"
    assert diagnostic(Decimal("NaN")) == "NaN"


# -- payloads ----------------------------------------------------------------------------------


def test_render_payload_by_content_format():
    assert render_payload(b"", 50).text == ""
    assert render_payload(b'{"a":1}', 50).text == '{\n  "a": 1\n}'
    assert render_payload(b'{"a":1}', 110).text == '{\n  "a": 1\n}'  # senml+json
    assert render_payload(b"\xa1\x61a\x01", 60).text == '{"a": 1}'
    assert render_payload(b"\x01\x02", 63).text == "1,\n2"  # cbor-seq
    assert render_payload(b"</a>;ct=0,</b>", 40).text == "</a>;ct=0,\n</b>"
    assert render_payload(b"plain", 0).text == "plain"
    assert render_payload(b"<x/>", 41).text == "<x/>"
    assert render_payload(b"no format", None).text == "no format"
    assert render_payload(b"\x00\x01", None).text.startswith("00000000  00 01")
    assert render_payload(b"text but binary", 42).text.startswith("00000000  74 65")
    assert render_payload(b"\xff\xfe", 0).text.startswith("00000000  ff fe")


def test_render_payload_notes_what_is_wrong():
    bad_cbor = render_payload(b"\xff", 60)
    assert bad_cbor.text.startswith("00000000  ff") and "not valid CBOR" in bad_cbor.note
    bad_link = render_payload(b"no link", 40)
    assert bad_link.text == "no link" and "not valid link-format" in bad_link.note


def test_render_cbor_without_cbor2(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cbor2", None)  # import cbor2 now raises ImportError
    rendered = render_payload(b"\xa0", 60)
    assert rendered.text.startswith("00000000  a0")
    assert rendered.note == (
        "install cbor2 to see CBOR as diagnostic notation: pip install 'coapkit[cbor]'"
    )


# -- --json -------------------------------------------------------------------------------------


def test_response_json():
    options = Options.build(
        etag=b"\x01\x02", location_path=["a", "b"], max_age=5, content_format=60, block2=0x0A
    ).add(65000, b"\xff")
    response = Response(Code.CREATED, b"\xa0", options=options, remote=("::ffff:10.0.0.1", 5683))
    document = response_json(response)
    assert document == {
        "code": "2.01",
        "code_name": "Created",
        "success": True,
        "options": {
            "ETag": ["0x0102"],
            "Location-Path": ["a", "b"],
            "Content-Format": 60,
            "Max-Age": 5,
            "Block2": {"num": 0, "more": True, "size": 64},
            "Option 65000": ["0xff"],
        },
        "content_format": 60,
        "content_format_name": "application/cbor",
        "payload": "oA==",
        "payload_encoding": "base64",
        "payload_size": 1,
        "remote": "10.0.0.1:5683",
    }
    json.dumps(document)  # it is JSON


def test_options_json_edge_cases():
    assert options_json([(5, b"")]) == {"If-None-Match": True}
    assert options_json([(14, b"\x00\x00\x00\x00\x01")]) == {"Max-Age": "0x0000000001"}  # invalid


# -- the trace -----------------------------------------------------------------------------------


def test_trace_marks_retransmissions_and_duplicates():
    lines: list[str] = []
    clock = iter([0.0, 0.0, 2.5, 2.6, 2.7]).__next__
    trace = Trace(lines.append, clock)
    request = Message(MessageType.CON, Code.GET, 0x1234, b"\xab", Options.build(uri_path=["x"]))
    reply = Message(MessageType.ACK, Code.CONTENT, 0x1234, b"\xab", payload=b"hi")
    remote = ("::ffff:127.0.0.1", 5683, 0, 0)
    trace("send", request.encode(), remote)
    trace("send", request.encode(), remote)
    trace("recv", reply.encode(), remote)
    trace("recv", reply.encode(), remote)
    assert lines[0].splitlines() == [
        "> CON GET  MID 4660  token ab  to 127.0.0.1:5683  (7 bytes, +0.000 s)",
        ">   Uri-Path: 'x'",
    ]
    assert lines[1].splitlines()[0].endswith("(7 bytes, +2.500 s)  [retransmission 1]")
    assert lines[2].splitlines() == [
        "< ACK 2.05 Content  MID 4660  token ab  from 127.0.0.1:5683  (8 bytes, +2.600 s)",
        '<   payload: 2 bytes "hi"',
    ]
    assert lines[3].splitlines()[0].endswith("[duplicate 1]")


def test_trace_of_garbage():
    lines: list[str] = []
    Trace(lines.append, lambda: 0.0)("recv", b"\x00", ("127.0.0.1", 1))
    assert lines == [
        "< 1 byte from 127.0.0.1:1, not a CoAP message: "
        "message of 1 bytes is shorter than the 4-byte header"
    ]


def test_show_remote():
    assert show_remote(("127.0.0.1", 5683)) == "127.0.0.1:5683"
    assert show_remote(("::1", 5683, 0, 0)) == "[::1]:5683"
    assert show_remote(("::ffff:192.0.2.1", 1, 0, 0)) == "192.0.2.1:1"
    assert show_remote(("fe80::1", 5683, 0, 1)) == "[fe80::1%lo]:5683"


# -- discovery table ---------------------------------------------------------------------------


def test_links_table():
    links = parse_link_format(
        '</s/temp>;rt="temperature";if="sensor";ct="0 50";obs;title="Temp",</big>;sz=1280,</x>'
    )
    assert links_table(links).splitlines() == [
        "PATH     RT           IF      CT               SZ    OBS  TITLE",
        "/s/temp  temperature  sensor  0 text, 50 json        obs  Temp",
        "/big                                           1280",
        "/x",
    ]


# -- --option typing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Uri-Query=a=1", (15, b"a=1")),
        ("uri_query=b", (15, b"b")),
        ("15=c", (15, b"c")),
        ("65000=0x0102", (65000, b"\x01\x02")),
        ("65000=text", (65000, b"text")),
        ("65000", (65000, b"")),
        ("Max-Age=60", (14, b"\x3c")),
        ("Max-Age=0", (14, b"")),
        ("Max-Age=0x003c", (14, b"\x00\x3c")),
        ("Content-Format=json", (12, b"\x32")),
        ("Accept=application/cbor", (17, b"\x3c")),
        ("ETag=v1", (4, b"v1")),
        ("ETag=0xCAFE", (4, b"\xca\xfe")),
        ("If-None-Match", (5, b"")),
        ("If-None-Match=", (5, b"")),
        ("Observe", (6, b"")),
        ("Uri-Path", (11, b"")),
    ],
)
def test_parse_option(text, expected):
    assert parse_option(text) == expected


@pytest.mark.parametrize(
    "text", ["Nope=1", "Max-Age=-1", "Max-Age=1.5", "ETag=123456789", "Uri-Host", "Accept=nope"]
)
def test_parse_option_rejects(text):
    with pytest.raises(UsageError, match="--option"):
        parse_option(text)


def test_trace_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(Trace, "MEMORY", 2)
    lines: list[str] = []
    trace = Trace(lines.append, lambda: 0.0)
    datagrams = [Message(MessageType.NON, Code.GET, mid).encode() for mid in range(3)]
    for data in (*datagrams, datagrams[2], datagrams[0]):
        trace("send", data, ("127.0.0.1", 1))
    assert lines[3].endswith("[retransmission 1]")  # still remembered
    assert "retransmission" not in lines[4]  # forgotten: the oldest went first
