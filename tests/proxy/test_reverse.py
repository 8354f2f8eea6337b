"""A reverse proxy: path prefixes and host names mapped to upstream base URIs; in virtual time."""

from __future__ import annotations

import pytest

from coapkit import Code, Options
from coapkit.proxy import ProxySite, ReverseRule, parse_reverse_rule
from coapkit.proxy.rules import HttpUri
from tests.proxy.helpers import BODY, proxied


async def test_a_prefix_maps_onto_the_upstream_base() -> None:
    async with proxied(forward=False, reverse={"/up": "coap://origin/"}) as s:
        response = await s.client.get("coap://proxy/up/temp")
        assert response.code == Code.CONTENT and response.text == "21 C"
        echo = await s.client.post("coap://proxy/up/echo?x=1", "hi")
        assert echo.text == "POST hi hops=15"
        assert s.origin.seen[-1].query == ("x=1",)
        # outside the prefix: the proxy's own site
        assert (await s.client.get("coap://proxy/temp")).code == Code.NOT_FOUND


async def test_the_base_path_and_query_come_first() -> None:
    async with proxied(forward=False, reverse=["/e=coap://origin/echo?from=proxy"]) as s:
        response = await s.client.get("coap://proxy/e?x=1")
        assert response.code == Code.CONTENT
        assert s.origin.seen[-1].path == ("echo",)
        assert s.origin.seen[-1].query == ("from=proxy", "x=1")


async def test_the_longest_prefix_wins_and_a_root_rule_is_the_default() -> None:
    rules = {"/": "coap://origin/", "/a/b": "coap://origin/echo"}
    async with proxied(forward=False, reverse=rules) as s:
        assert (await s.client.get("coap://proxy/temp")).text == "21 C"
        await s.client.get("coap://proxy/a/b")
        assert s.origin.seen[-1].path == ("echo",)


async def test_a_host_rule_matches_uri_host() -> None:
    async with proxied(forward=False, reverse={"sensors.example": "coap://origin/"}) as s:
        options = Options.build(uri_host="sensors.example", uri_path=["temp"])
        response = await s.client.get(s.proxy_uri, options=options)
        assert response.code == Code.CONTENT and response.text == "21 C"
        # another Uri-Host: the proxy's own site
        response = await s.client.get(s.proxy_uri + "/temp")
        assert response.code == Code.NOT_FOUND


async def test_forward_requests_are_refused_by_a_reverse_only_proxy() -> None:
    async with proxied(forward=False, reverse={"/up": "coap://origin/"}) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.PROXYING_NOT_SUPPORTED


async def test_block_wise_through_a_reverse_rule() -> None:
    async with proxied(forward=False, reverse={"/up": "coap://origin"}) as s:
        download = await s.client.get("coap://proxy/up/big")
        assert download.payload == BODY
        upload = await s.client.put("coap://proxy/up/upload", BODY[:3000])
        assert upload.text == "3000" and s.origin.uploads == [BODY[:3000]]


async def test_a_reverse_target_is_not_subject_to_the_allow_list() -> None:
    async with proxied(allow=["nowhere.example"], reverse={"/up": "coap://origin/"}) as s:
        assert (await s.client.get("coap://proxy/up/temp")).code == Code.CONTENT
        refused = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert refused.code == Code.PROXYING_NOT_SUPPORTED


def test_parsing_rules() -> None:
    rule = parse_reverse_rule("/up=coap+tcp://h:9/base")
    assert rule.prefix == "/up" and str(rule.upstream) == "coap+tcp://h:9/base"
    assert rule.target(("up", "x"), ("q",)).__str__() == "coap+tcp://h:9/base/x?q"
    host = parse_reverse_rule("Sensors.Example=https://h/api")
    assert host.is_host and host.prefix == "sensors.example"
    assert isinstance(host.upstream, HttpUri)
    assert str(host.target(("a b",), ())) == "https://h/api/a%20b"
    for bad in ("/up", "=coap://h", "/up=", "/up=ftp://h", "a/b=coap://h", "/up=coap://h/%zz"):
        with pytest.raises(ValueError):
            parse_reverse_rule(bad)
    assert isinstance(ProxySite(reverse=[rule]).rules[0], ReverseRule)
