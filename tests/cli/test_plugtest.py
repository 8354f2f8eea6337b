"""``coapkit server --plugtest``: the resources behave as PLUGTEST.md (and the ETSI TDs) say.

Through the real tool on both ends (``coapkit server --plugtest`` in a
subprocess, ``coapkit get ...`` as the client), plus a few checks of
:func:`plugtest_site` called directly.
"""

from __future__ import annotations

import json
import re

import pytest

from coapkit.cli.plugtest import _cbor, plugtest_site
from coapkit.codec.codes import Code
from coapkit.resources import Request
from tests.cli.helpers import run


def headers(trace: str) -> list[str]:
    """The first line of each datagram in a -v trace (not the option and payload lines)."""
    return [line for line in trace.splitlines() if re.match(r"[<>] (CON|NON|ACK|RST) ", line)]


def response(*args: str) -> tuple[int, dict]:
    result = run(*args, "--json")
    return result.returncode, json.loads(result.stdout)


def test_test_get_con_and_non(plugtest_server):
    status, document = response("get", f"{plugtest_server.url}/test")
    assert (status, document["code"], document["content_format"]) == (0, "2.05", 0)
    assert document["options"]["Max-Age"] == 30
    assert "Type: 0 (CON)\nCode: 1 (GET)\nMID: " in document["payload"]
    non = run("get", f"{plugtest_server.url}/test", "--non", "-v")
    assert non.returncode == 0
    assert non.stdout.startswith("Type: 1 (NON)\nCode: 1 (GET)\nMID: ")
    assert "\n< NON 2.05 Content" in non.stderr


def test_test_post_put_delete(plugtest_server):
    url = f"{plugtest_server.url}/test"
    status, created = response("post", url, "--payload", "x", "--content-format", "text")
    assert (status, created["code"]) == (0, "2.01")
    assert created["options"]["Location-Path"] == ["location1", "location2", "location3"]
    plain = run("post", url, "--payload", "x")
    assert plain.stderr == "2.01 Created  Location: /location1/location2/location3\n"

    assert response("put", url, "--payload", "new")[1]["code"] == "2.04"
    guarded = run("put", url, "--payload", "new", "--option", "If-None-Match")
    assert (guarded.returncode, guarded.stderr) == (4, "4.12 Precondition Failed\n")
    assert response("delete", url)[1]["code"] == "2.02"
    assert response("put", url, "--payload", "again")[1]["code"] == "2.01"  # it did not exist
    assert response("put", url, "--payload", "again", "--non")[1]["code"] == "2.04"


def test_separate_con(plugtest_server):
    result = run("get", f"{plugtest_server.url}/separate", "-v")
    assert result.returncode == 0
    assert result.stdout.startswith("Type: 0 (CON)\nCode: 1 (GET)")
    lines = headers(result.stderr)
    token = re.search(r"token ([0-9a-f]+)", lines[0]).group(1)
    assert lines[0].startswith("> CON GET")
    assert lines[1].startswith("< ACK Empty") and "token (empty)" in lines[1]
    assert lines[2].startswith("< CON 2.05 Content") and f"token {token}" in lines[2]
    assert lines[3].startswith("> ACK Empty")
    response_mid = re.search(r"MID (\d+)", lines[2]).group(1)
    assert f"MID {response_mid} " in lines[3]  # the client acknowledges the separate response


def test_separate_non(plugtest_server):
    result = run("get", f"{plugtest_server.url}/separate", "--non", "-v")
    assert result.returncode == 0
    received = [line for line in headers(result.stderr) if line.startswith("<")]
    assert len(received) == 1 and received[0].startswith("< NON 2.05 Content")
    token = re.search(r"token ([0-9a-f]+)", result.stderr).group(1)
    assert f"token {token}" in received[0]


def test_seg1_seg2_seg3(plugtest_server):
    result = run("get", f"{plugtest_server.url}/seg1/seg2/seg3", "-v")
    assert (result.returncode, result.stdout) == (0, "seg1/seg2/seg3\n")
    for segment in ("seg1", "seg2", "seg3"):
        assert f">   Uri-Path: '{segment}'" in result.stderr
    for method in ("post", "put", "delete"):
        other = run(method, f"{plugtest_server.url}/seg1/seg2/seg3")
        assert (other.returncode, other.stderr) == (4, "4.05 Method Not Allowed: allowed: GET\n")
    assert run("get", f"{plugtest_server.url}/seg1/seg2").returncode == 4


def test_query(plugtest_server):
    result = run("get", f"{plugtest_server.url}/query?first=1&second=2&third=3", "-v")
    assert (result.returncode, result.stdout) == (0, "first=1&second=2&third=3\n")
    assert result.stderr.count(">   Uri-Query:") == 3


def test_location_query(plugtest_server):
    status, document = response("post", f"{plugtest_server.url}/location-query")
    assert (status, document["code"]) == (0, "2.01")
    assert document["options"]["Location-Query"] == ["first=1", "second=2"]
    plain = run("post", f"{plugtest_server.url}/location-query")
    assert plain.stderr == "2.01 Created  Location: ?first=1&second=2\n"


@pytest.mark.parametrize(
    ("accept", "content_format"),
    [(None, 0), ("0", 0), ("text/plain", 0), ("xml", 41), ("json", 50), ("60", 60)],
)
def test_multi_format(plugtest_server, accept, content_format):
    extra = () if accept is None else ("--accept", accept)
    status, document = response("get", f"{plugtest_server.url}/multi-format", *extra)
    assert (status, document["content_format"]) == (0, content_format)


def test_multi_format_rendering_and_406(plugtest_server, tmp_path):
    url = f"{plugtest_server.url}/multi-format"
    as_json = json.loads(run("get", url, "--accept", "json").stdout)
    assert as_json["type"] == "CON" and as_json["code"] == "GET"
    xml = run("get", url, "--accept", "xml").stdout
    assert xml.startswith('<msg type="CON" code="GET" mid="')
    target = tmp_path / "out.cbor"
    assert run("get", url, "--accept", "cbor", "-o", str(target)).returncode == 0
    cbor2 = pytest.importorskip("cbor2")
    assert set(cbor2.loads(target.read_bytes())) == {"type", "code", "mid"}
    diagnostic = run("get", url, "--accept", "cbor").stdout
    assert re.fullmatch(r'\{"type": "CON", "code": "GET", "mid": \d+\}\n', diagnostic)
    refused = run("get", url, "--accept", "42")
    assert refused.returncode == 4
    assert refused.stderr.startswith("4.06 Not Acceptable")


def test_validate(plugtest_server):
    url = f"{plugtest_server.url}/validate"
    status, first = response("get", url)
    assert (status, first["code"]) == (0, "2.05")
    (etag,) = first["options"]["ETag"]
    status, valid = response("get", url, "--option", f"ETag={etag}")
    assert (status, valid["code"], valid["payload"]) == (0, "2.03", "")
    assert valid["options"]["ETag"] == [etag]
    plain = run("get", url, "--option", f"ETag={etag}")
    assert (plain.stdout, plain.stderr) == ("", "2.03 Valid\n")

    status, changed = response("put", url, "--payload", "version 2", "--option", f"If-Match={etag}")
    assert (status, changed["code"]) == (0, "2.04")
    (new_etag,) = changed["options"]["ETag"]
    assert new_etag != etag
    stale = run("put", url, "--payload", "version 3", "--option", f"If-Match={etag}")
    assert (stale.returncode, stale.stderr) == (4, "4.12 Precondition Failed\n")
    status, now = response("get", url, "--option", f"ETag={etag}")  # the old ETag: 2.05 again
    assert (now["code"], now["payload"], now["options"]["ETag"]) == (
        "2.05",
        "version 2",
        [new_etag],
    )


def test_create1_lifecycle(plugtest_server):
    url = f"{plugtest_server.url}/create1"
    absent = run("get", url)
    assert (absent.returncode, absent.stderr) == (4, "4.04 Not Found: not created yet\n")
    assert "/create1" not in run("discover", plugtest_server.url).stdout

    created = run("put", url, "--payload", "hello", "--option", "If-None-Match")
    assert (created.returncode, created.stderr) == (0, "2.01 Created\n")
    again = run("put", url, "--payload", "hello", "--option", "If-None-Match")
    assert (again.returncode, again.stderr) == (4, "4.12 Precondition Failed\n")
    assert run("get", url).stdout == "hello\n"
    assert "/create1" in run("discover", plugtest_server.url).stdout

    deleted = run("delete", url)
    assert (deleted.returncode, deleted.stderr) == (0, "2.02 Deleted\n")
    assert run("get", url).returncode == 4
    assert "/create1" not in run("discover", plugtest_server.url).stdout


def test_links_and_path(plugtest_server):
    for number in (1, 2, 3):
        result = run("get", f"{plugtest_server.url}/link{number}")
        assert result.returncode == 4 and result.stderr.startswith("4.05 Method Not Allowed")
    listing = run("get", f"{plugtest_server.url}/path", "--json")
    document = json.loads(listing.stdout)
    assert (document["code"], document["content_format"]) == ("2.05", 40)
    assert run("get", f"{plugtest_server.url}/path").stdout == (
        "</path/sub1>,\n</path/sub2>,\n</path/sub3>\n"
    )
    for child in ("sub1", "sub2", "sub3"):
        result = run("get", f"{plugtest_server.url}/path/{child}")
        assert (result.returncode, result.stdout) == (0, f"/path/{child}\n")


def _targets(plugtest_server, query: str) -> list[str]:
    result = run("get", f"{plugtest_server.url}/.well-known/core?{query}")
    assert result.returncode == 0, result.stderr
    return re.findall(r"<([^>]*)>", result.stdout)


def test_discovery_filters(plugtest_server):
    assert _targets(plugtest_server, "rt=Type1") == ["/link1", "/link3"]
    assert _targets(plugtest_server, "rt=*") == ["/link1", "/link2", "/link3"]
    assert _targets(plugtest_server, "rt=Ty*") == ["/link1", "/link2", "/link3"]
    assert _targets(plugtest_server, "if=If*") == ["/link1", "/link2"]
    assert _targets(plugtest_server, "href=/link1") == ["/link1"]
    assert _targets(plugtest_server, "href=/link*") == ["/link1", "/link2", "/link3"]
    assert _targets(plugtest_server, "ct=40") == ["/path"]
    assert _targets(plugtest_server, "sz=*") == []  # /large (sz=1280) comes with block-wise
    post = run("post", f"{plugtest_server.url}/.well-known/core")
    assert post.returncode == 4 and post.stderr.startswith("4.05 Method Not Allowed")


def test_discover_table_and_json(plugtest_server):
    table = run("discover", plugtest_server.url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert re.match(r"PATH +RT +IF +CT +TITLE$", lines[0])
    row = next(line for line in lines if line.startswith("/multi-format"))
    assert "0 text, 41 xml, 50 json, 60 cbor" in row
    assert re.match(r"/link1 +Type1 Type2 +If1 +Link test resource$", lines[1])
    filtered = run("discover", plugtest_server.url, "--rt", "Type1", "--if", "foo")
    assert [line.split()[0] for line in filtered.stdout.splitlines()[1:]] == ["/link3"]
    document = json.loads(run("discover", plugtest_server.url, "--json", "--rt", "Type2").stdout)
    assert [link["href"] for link in document] == ["/link1", "/link2"]
    assert document[0]["rt"] == ["Type1", "Type2"] and document[0]["if"] == ["If1"]
    nothing = run("discover", plugtest_server.url, "--rt", "NoSuchType")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (
        0,
        "",
        "no resources matched the filters\n",
    )


# -- the site, called directly ---------------------------------------------------------------


def test_site_direct_dispatch():
    site = plugtest_site(separate_delay=0)
    answer = site.dispatch(Request.build("GET", "/test"))
    assert (answer.code, answer.max_age, answer.content_format) == (Code.CONTENT, 30, 0)
    links = {link.target: link for link in site.links()}
    assert set(links) >= {"/test", "/separate", "/multi-format", "/validate", "/link1", "/path"}
    assert "/create1" not in links
    assert links["/multi-format"].ct == (0, 41, 50, 60)
    assert links["/link3"].rt == ("Type1", "Type3") and links["/link3"].if_ == ("foo",)
    assert links["/link2"].title == "Link test resource"


def test_minimal_cbor_encoder_matches_cbor2():
    cbor2 = pytest.importorskip("cbor2")
    value = {"type": "CON", "n": 23, "big": 70000, "huge": 2**40, "word": "é" * 30, "m": {"a": 1}}
    assert cbor2.loads(_cbor(value)) == value
    assert _cbor(value) == cbor2.dumps(value)
    with pytest.raises(TypeError):
        _cbor([1])
