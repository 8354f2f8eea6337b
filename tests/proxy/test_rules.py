"""Targets, allow lists and the HTTP mappings, alone."""

from __future__ import annotations

import pytest

from coapkit import Code, Options
from coapkit.codec.uri import CoapUri
from coapkit.errors import UriError
from coapkit.proxy import AllowList
from coapkit.proxy.mapping import (
    accepted_formats,
    cache_control,
    coap_code,
    coap_etag,
    content_format_for,
    entity_tag,
    http_status,
    max_age_from,
    media_type,
    parse_entity_tags,
)
from coapkit.proxy.rules import HttpUri, UnsupportedScheme, parse_target, target_of


def test_targets_from_proxy_uri_and_proxy_scheme() -> None:
    uri = target_of(Options.build(proxy_uri="coap+tcp://h:99/a?b"))
    assert isinstance(uri, CoapUri) and str(uri) == "coap+tcp://h:99/a?b"
    scheme = target_of(
        Options.build(proxy_scheme="coap+ws", uri_host="h", uri_port=8080, uri_path=["x"])
    )
    assert str(scheme) == "coap+ws://h:8080/x"
    http = target_of(Options.build(proxy_uri="HTTPS://Example.com/a%20b?q=1"))
    assert isinstance(http, HttpUri) and str(http) == "https://example.com/a%20b?q=1"
    assert http.port == 443 and http.path == ("a b",)
    composed = target_of(Options.build(proxy_scheme="http", uri_host="h", uri_path=["x"]))
    assert str(composed) == "http://h/x"
    with pytest.raises(UnsupportedScheme):
        parse_target("gopher://h/")
    for bad in ("http://", "http://h/#frag", "http://u@h/", "coap://h/%"):
        with pytest.raises(UriError):
            parse_target(bad)
    with pytest.raises(UriError, match="no Uri-Host"):
        target_of(Options.build(proxy_scheme="coap"))
    with pytest.raises(UriError, match="neither"):
        target_of(Options())


def test_allow_patterns() -> None:
    allow = AllowList(["*.example.com", "10.0.0.?:5683", "[fe80::*]:*", "LOCALHOST"])
    assert allow.allows("a.example.com", 1)
    assert not allow.allows("example.com", 1)
    assert allow.allows("10.0.0.7", 5683) and not allow.allows("10.0.0.7", 5684)
    assert not allow.allows("10.0.0.17", 5683)
    assert allow.allows("fe80::1%eth0", 9) and allow.allows("localhost", 1)
    for bad in ("", ":5683", "[::1", "::1", "h:port", "h:70000", "[::1]x"):
        with pytest.raises(ValueError):
            AllowList([bad])


def test_response_codes_both_ways() -> None:
    assert http_status(Code.CONTENT) == 200 and http_status(Code.CREATED) == 201
    assert http_status(Code.CHANGED, has_payload=False) == 204
    assert http_status(Code.VALID, conditional=True) == 304
    assert http_status(Code.NOT_FOUND) == 404 and http_status(Code.UNAUTHORIZED) == 403
    assert http_status(Code.GATEWAY_TIMEOUT) == 504
    assert http_status(Code.PROXYING_NOT_SUPPORTED) == 502
    assert http_status(Code.HOP_LIMIT_REACHED) == 508
    assert http_status(Code(4 << 5 | 30)) == 400 and http_status(Code(5 << 5 | 30)) == 500
    assert coap_code(200, Code.GET) == Code.CONTENT and coap_code(200, Code.POST) == Code.CHANGED
    assert coap_code(204, Code.DELETE) == Code.DELETED and coap_code(304, Code.GET) == Code.VALID
    assert coap_code(404, Code.GET) == Code.NOT_FOUND and coap_code(418, Code.GET) == 128
    assert coap_code(599, Code.GET) == Code.INTERNAL_SERVER_ERROR
    assert coap_code(302, Code.GET) == Code.BAD_GATEWAY


def test_media_types_both_ways() -> None:
    assert media_type(0) == ("text/plain; charset=utf-8", None)
    assert media_type(50) == ("application/json", None)
    assert media_type(11050) == ("application/json", "deflate")
    assert media_type(None) == ("application/octet-stream", None)
    assert media_type(None, error=True)[0].startswith("text/plain")
    assert media_type(65000)[0] == "application/octet-stream"
    assert content_format_for("text/plain") == 0
    assert content_format_for("Text/Plain; charset=UTF-8") == 0
    assert content_format_for("text/plain; charset=latin-1") is None
    assert content_format_for("application/json; charset=utf-8") == 50
    assert content_format_for("application/cbor") == 60
    assert content_format_for("application/json", "deflate") == 11050
    assert content_format_for("text/html") is None
    assert accepted_formats("application/cbor;q=0.5, application/json") == [50, 60]
    assert accepted_formats("text/html,*/*;q=0.8") is None
    assert accepted_formats("text/html") == []


def test_freshness_and_entity_tags() -> None:
    assert cache_control(None) == "max-age=60" and cache_control(5) == "max-age=5"
    assert max_age_from("public, max-age=30") == 30
    assert max_age_from("max-age=30, s-maxage=10") == 10
    assert max_age_from("no-store") == 0 and max_age_from(None) == 0
    assert max_age_from("max-age=x") == 0
    assert entity_tag(b"\x0a\x1b") == '"0a1b"'
    assert parse_entity_tags('"0a1b", W/"abc"') == [b"\x0a\x1b", b"abc"]
    assert parse_entity_tags("*") is None
    assert parse_entity_tags('"0123456789abcdef01"') == []  # 9 bytes: no CoAP ETag
    assert coap_etag('"abc"') == b"abc" and coap_etag('W/"x"') == b"x"
    assert coap_etag('"123456789"') is None and coap_etag(None) is None
