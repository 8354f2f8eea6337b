"""A forward proxy (RFC 7252 §5.7.2): Proxy-Uri and Proxy-Scheme, what is forwarded, the
gateway errors, Hop-Limit (RFC 8768), the allow list and the hooks; in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from coapkit import CON, Code, Message, Options, Request, Response
from coapkit.proxy import AllowList, Forwarding, ProxyConfig, ProxySite
from coapkit.testing import VirtualNetwork
from tests.proxy.helpers import BODY, Origin, proxied


async def test_get_through_proxy_uri() -> None:
    async with proxied() as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.CONTENT and response.text == "21 C"
        assert response.etag == b"v1" and response.content_format == 0
        assert response.max_age in (29, 30)
        (request,) = s.upstream_requests()
        # the target travels as Uri-Host (a name) and Uri-Path; no Proxy-Uri upstream
        assert request.options.uri_host == "origin" and request.options.uri_path == ("temp",)
        assert request.options.proxy_uri is None


async def test_get_through_proxy_scheme_and_uri_options() -> None:
    async with proxied() as s:
        options = Options.build(
            proxy_scheme="coap", uri_host="origin", uri_path=["echo"], uri_query=["a=1"]
        )
        response = await s.client.get(s.proxy_uri, options=options)
        assert response.code == Code.CONTENT and response.text.startswith("GET  hops=15")
        (request,) = s.origin.seen
        assert request.query == ("a=1",)


async def test_post_with_a_body_and_its_content_format() -> None:
    async with proxied() as s:
        response = await s.client.post(
            "coap://proxy", '{"a":1}', content_format="json", options=s.via("coap://origin/echo")
        )
        assert response.code == Code.CONTENT
        assert response.text == 'POST {"a":1} hops=15' and response.content_format == 50


async def test_forwarding_is_off_unless_asked() -> None:
    async with proxied(forward=False) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.PROXYING_NOT_SUPPORTED
        assert "does not forward" in response.text
        assert s.sent_upstream() == [] and s.origin.seen == []


async def test_a_target_outside_the_allow_list_is_refused_and_nothing_is_sent() -> None:
    async with proxied(allow=["origin:5683"]) as s:
        net = s.net
        other = await net.server(s.origin.site, address="other").start()
        try:
            ok = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
            assert ok.code == Code.CONTENT
            for uri in ("coap://other/temp", "coap://origin:5684/temp", "coap://192.0.2.99/x"):
                refused = await s.client.get("coap://proxy", options=s.via(uri))
                assert refused.code == Code.PROXYING_NOT_SUPPORTED, uri
                assert "not allowed" in refused.text
            # nothing but the one allowed request left the proxy's client
            sent_from_proxy = [
                entry for entry in net.trace if entry.src == s.upstream.local_address
            ]
            assert {entry.dst for entry in sent_from_proxy} == {s.origin_server.address}
            assert s.origin.calls("/temp") == 1
        finally:
            await other.close()


async def test_allow_patterns_take_wildcards() -> None:
    async with proxied(allow=["orig*"]) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.CONTENT
        refused = await s.client.get("coap://proxy", options=s.via("coap://proxy/x"))
        assert refused.code == Code.PROXYING_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("ftp://origin/x", Code.PROXYING_NOT_SUPPORTED),  # a scheme nobody speaks here
        # DTLS: the proxy's client speaks it now (the dtls extra), so the proxy tries and
        # finds nothing listening on the origin's port 5684: 5.02, not 5.05
        ("coaps://origin/x", Code.BAD_GATEWAY),
        ("coap://origin/%zz", Code.BAD_REQUEST),  # malformed
        ("origin/x", Code.BAD_REQUEST),  # not absolute
    ],
)
async def test_targets_the_proxy_cannot_reach(uri: str, code: int) -> None:
    async with proxied() as s:
        response = await s.client.get("coap://proxy", options=s.via(uri))
        assert response.code == code, response.text
        assert s.origin.seen == []


async def test_an_unreachable_upstream_is_a_bad_gateway() -> None:
    async with proxied() as s:
        # nothing listens there: the network says "port unreachable" at once
        response = await s.client.get("coap://proxy", options=s.via("coap://origin:9999/x"))
        assert response.code == Code.BAD_GATEWAY
        assert "unreachable" in response.text and response.max_age == 0


async def test_a_silent_upstream_is_a_gateway_timeout() -> None:
    net = VirtualNetwork(seed=3, unreachable=False)  # a host that is gone says nothing
    async with proxied(net=net, config=ProxyConfig(timeout=20.0)) as s:
        started = net.now
        response = await s.client.get("coap://proxy", options=s.via("coap://192.0.2.200/x"))
        assert response.code == Code.GATEWAY_TIMEOUT and response.max_age == 0
        assert 20.0 <= net.now - started < 21.0


async def test_gateway_errors_are_not_cached() -> None:
    async with proxied() as s:
        for _ in range(2):
            response = await s.client.get("coap://proxy", options=s.via("coap://origin:9999/x"))
            assert response.code == Code.BAD_GATEWAY
        assert len(s.proxy.cache) == 0


async def test_origin_errors_pass_through() -> None:
    async with proxied() as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/none"))
        assert response.code == Code.NOT_FOUND and response.text == "not found"
        response = await s.client.delete("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.METHOD_NOT_ALLOWED


async def test_block_wise_both_ways_is_reassembled_at_the_proxy() -> None:
    async with proxied() as s:
        download = await s.client.get("coap://proxy", options=s.via("coap://origin/big"))
        assert download.payload == BODY and download.content_format == 42
        upload = await s.client.put("coap://proxy", BODY, options=s.via("coap://origin/upload"))
        assert upload.code == Code.CHANGED and upload.text == "5000"
        assert s.origin.uploads == [BODY]
        # the origin's handlers ran once each: the blocks were gathered on each side
        assert s.origin.calls("/big") == 1 and s.origin.calls("/upload") == 1


# -- Hop-Limit (RFC 8768) ----------------------------------------------------------------------


async def test_hop_limit_is_added_then_decremented() -> None:
    async with proxied() as s:
        plain = await s.client.post("coap://proxy", "", options=s.via("coap://origin/echo"))
        assert plain.text.endswith("hops=15")
        options = Options.build(proxy_uri="coap://origin/echo", hop_limit=5)
        five = await s.client.post("coap://proxy", "", options=options)
        assert five.text.endswith("hops=4")


async def test_hop_limit_1_is_not_forwarded() -> None:
    async with proxied() as s:
        options = Options.build(proxy_uri="coap://origin/echo", hop_limit=1)
        response = await s.client.get("coap://proxy", options=options)
        assert response.code == Code.HOP_LIMIT_REACHED and response.text == "proxy"
        assert s.origin.seen == []
        zero = await s.client.get(
            "coap://proxy", options=Options([(35, b"coap://origin/x"), (16, b"\0")])
        )
        assert zero.code == Code.BAD_REQUEST


async def test_an_unknown_unsafe_option_is_not_forwarded() -> None:
    async with proxied() as s:
        # 65002: elective, unsafe to forward, unknown: a 5.02 (RFC 7252 §5.7.1).  Over
        # CoAP the proxy's endpoint drops unknown elective options before any resource
        # sees them, as every coapkit server does: so this is the site's own rule.
        message = Message(
            CON, Code.GET, 0, b"", Options([(35, b"coap://origin/echo"), (65002, b"x")])
        )
        response = s.proxy.dispatch(Request(message, ("192.0.2.9", 5683)))
        assert isinstance(response, Response)
        assert response.code == Code.BAD_GATEWAY and s.origin.seen == []
        # 65000: elective, safe to forward, unknown: dropped by the endpoint, so not forwarded
        options = Options([(35, b"coap://origin/echo"), (65000, b"x")])
        response = await s.client.get("coap://proxy", options=options)
        assert response.code == Code.CONTENT
        assert s.origin.seen[-1].options.get(65000) is None
        # 65001: critical and unknown: 4.02 from the proxy's endpoint, nothing forwarded
        options = Options([(35, b"coap://origin/echo"), (65001, b"x")])
        response = await s.client.get("coap://proxy", options=options)
        assert response.code == Code.BAD_OPTION and len(s.origin.seen) == 1


# -- hooks -----------------------------------------------------------------------------------


async def test_authorize_refuses_and_nothing_is_sent() -> None:
    seen: list[Forwarding] = []

    def authorize(forwarding: Forwarding) -> Response | None:
        seen.append(forwarding)
        if forwarding.target.path == ("temp",):
            return None
        return Response(Code.FORBIDDEN, "not that one")

    async with proxied(authorize=authorize) as s:
        ok = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        no = await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert (ok.code, no.code, no.text) == (Code.CONTENT, Code.FORBIDDEN, "not that one")
        assert s.origin.calls("/plain") == 0
        assert [f.host for f in seen] == ["origin", "origin"]
        assert seen[0].options.hop_limit == 15 and not seen[0].reverse


async def test_an_async_authorize_hook() -> None:
    async def authorize(forwarding: Forwarding) -> Response | None:
        await asyncio.sleep(1)
        if forwarding.request.remote.host.startswith("192.0.2."):
            return Response(Code.UNAUTHORIZED)
        return None

    async with proxied(authorize=authorize) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.UNAUTHORIZED and s.origin.seen == []


async def test_rewrite_changes_the_target() -> None:
    def rewrite(forwarding: Forwarding) -> Forwarding:
        target = forwarding.target
        return forwarding.replace(target=target.with_path("echo"))  # type: ignore[union-attr]

    async with proxied(rewrite=rewrite) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.text.startswith("GET  hops=15")
        assert s.origin.calls("/temp") == 0 and s.origin.calls("/echo") == 1


async def test_a_raising_hook_is_a_5_00_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def authorize(forwarding: Forwarding) -> Response | None:
        raise ValueError("a bug in the hook")

    async with proxied(authorize=authorize) as s:
        response = await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert response.code == Code.INTERNAL_SERVER_ERROR
        assert "a bug in the hook" not in response.text
    assert "ValueError" in caplog.text


async def test_local_resources_stay_served() -> None:
    async with proxied() as s:

        @s.proxy.route("/status")
        def status(request: object) -> str:
            return "proxy up"

        response = await s.client.get("coap://proxy/status")
        assert response.text == "proxy up"
        links = await s.client.discover("coap://proxy")
        assert [link.target for link in links] == ["/status"]


async def test_origin_sees_the_proxy_not_the_client() -> None:
    origin = Origin()
    async with proxied(origin=origin) as s:
        await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert origin.seen[0].remote.host == s.upstream.local_address[0]


async def test_a_subclass_decides_in_its_own_authorize() -> None:
    class Picky(ProxySite):
        def authorize(self, forwarding: Forwarding) -> Response | None:
            return None if forwarding.request.method == Code.GET else Response(Code.FORBIDDEN)

    net = VirtualNetwork(seed=5)
    origin = Origin()
    site = Picky(reverse={"/up": "coap://origin"})
    async with (
        net.server(origin.site, address="origin"),
        net.server(site, address="proxy"),
        site,
        net.client() as client,
    ):
        assert (await client.get("coap://proxy/up/plain")).code == Code.CONTENT
        assert (await client.put("coap://proxy/up/plain", "x")).code == Code.FORBIDDEN
    assert origin.calls("/plain") == 1


async def test_the_same_request_again_reuses_its_plan() -> None:
    async with proxied() as s:
        for _ in range(3):
            await s.client.get("coap://proxy", options=s.via("coap://origin/temp"))
        assert len(s.proxy._plans) == 1


async def test_turning_forwarding_off_and_narrowing_it_apply_at_once() -> None:
    async with proxied() as s:
        ok = await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert ok.code == Code.CONTENT
        s.proxy.allow = AllowList(["elsewhere"])
        refused = await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert refused.code == Code.PROXYING_NOT_SUPPORTED
        s.proxy.allow = None
        s.proxy.forward = False
        refused = await s.client.get("coap://proxy", options=s.via("coap://origin/plain"))
        assert "does not forward" in refused.text
        assert s.origin.calls("/plain") == 1
