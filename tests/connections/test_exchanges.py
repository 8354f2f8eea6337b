"""Exchanges, block-wise and Observe over a connection (RFC 8323 §2, §7), in virtual time.

The layers above the connection layer are the ones UDP uses, unchanged:
these tests show them working over it, and what differs: no message types,
message IDs nor acknowledgements on the wire, responses matched by token on
their connection, a lost connection failing its exchanges at once and ending
the observations held on it.
"""

from __future__ import annotations

from typing import Any

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.stream import decode_frame
from coapkit.connections import StreamConfig, signals
from coapkit.errors import NetworkError, RequestTimeout
from coapkit.exchanges.events import IncomingRequest, RequestFailed, ResponseEvent
from coapkit.resources import Resource, Response, Site
from tests.connections.helpers import CLIENT, StreamPair


class Clock(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = 0

    def get(self, request: Any) -> Response:
        return Response(payload=str(self.value))


def make_site() -> tuple[Site, Clock]:
    site = Site()
    clock = Clock()
    site.add("/clock", clock)

    @site.route("/hello")
    def hello(request: Any) -> Response:
        return Response(payload="hello")

    @site.route("/big")
    def big(request: Any) -> Response:
        return Response(payload=bytes(range(256)) * 20)  # 5,120 bytes: block-wise

    @site.route("/upload", methods=("PUT",))
    def upload(request: Any) -> Response:
        return Response(Code.CHANGED, payload=str(len(request.payload)))

    return site, clock


def get(path: str, **options: Any) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=path.split("/"), **options))


def test_a_request_and_its_response_carry_no_type_nor_message_id() -> None:
    site, _ = make_site()
    pair = StreamPair(site)
    pair.connect()
    handle = pair.request(get("hello"))
    [event] = pair.results(handle)
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello"
    frames = [(side, decode_frame(data)) for _, side, data in pair.wire]
    assert [(side, m.code) for side, m in frames[:2]] == [
        ("client", signals.CSM),
        ("server", signals.CSM),
    ]
    request, response = frames[2][1], frames[3][1]
    assert request.code == Code.GET and response.token == request.token
    # The frame is Len/TKL, code, token, options: 1 + 1 + 8 + 6 bytes for GET /hello.
    assert len(pair.wire[2][2]) == 1 + 1 + len(request.token) + 6


def test_a_lost_connection_fails_its_requests_at_once() -> None:
    site, _ = make_site()
    pair = StreamPair(site)
    pair.connect()
    pair.hold = True  # the server never sees it
    handle = pair.request(get("hello"))
    pair.hold = False
    pair.disconnect("connection reset by peer")
    [failed] = pair.results(handle)
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, NetworkError)
    assert "connection reset" in str(failed.error)


def test_an_unanswered_request_times_out_after_the_exchange_lifetime() -> None:
    """No retransmission over a stream: a request sent is delivered; its response is
    awaited as a CON request's is after its ACK (EXCHANGE_LIFETIME, 247 s)."""
    quiet = StreamConfig(keepalive=None)
    pair = StreamPair(make_site()[0], client_config=quiet, server_config=quiet)
    pair.connect()
    pair.hold = True
    handle = pair.request(get("hello"))
    pair.advance(246)
    assert pair.results(handle) == []
    pair.advance(2)
    [failed] = pair.results(handle)
    assert isinstance(failed.error, RequestTimeout)


def test_block_wise_both_ways_over_a_connection() -> None:
    site, _ = make_site()
    pair = StreamPair(site)
    pair.connect()
    [download] = pair.results(pair.request(get("big")))
    assert download.response.payload == bytes(range(256)) * 20
    put = Message(code=Code.PUT, options=Options.build(uri_path=["upload"]), payload=bytes(4000))
    [upload] = pair.results(pair.request(put))
    assert upload.response.code == Code.CHANGED and upload.response.payload == b"4000"


def test_observe_over_a_connection_ends_with_it() -> None:
    site, clock = make_site()
    pair = StreamPair(site)
    pair.connect()
    handle = pair.request(get("clock", observe=0), keep_open=True)
    for value in (1, 2, 3):
        clock.value = value
        sequence, observers = pair.server.observe.updated(clock)
        for observer in observers:
            notification = Message(code=Code.CONTENT, payload=str(value).encode())
            pair.take(
                "server", pair.server.notify(observer, notification, pair.now, sequence=sequence)
            )
    payloads = [e.response.payload for e in pair.results(handle) if isinstance(e, ResponseEvent)]
    assert payloads == [b"0", b"1", b"2", b"3"]
    assert pair.server.observe.registry.count_for(CLIENT) == 1
    pair.disconnect("gone")
    assert pair.server.observe.registry.count_for(CLIENT) == 0  # RFC 8323 §7.3
    assert isinstance(pair.results(handle)[-1], RequestFailed)


def test_an_idle_connection_is_released_unless_an_observation_uses_it() -> None:
    site, _ = make_site()
    config = StreamConfig(keepalive=None, idle_timeout=60.0)
    pair = StreamPair(site, client_config=config, server_config=config)
    pair.connect()
    pair.request(get("clock", observe=0), keep_open=True)
    pair.advance(200)
    assert pair.connected  # the observation keeps it (both sides)
    pair = StreamPair(site, client_config=config, server_config=config)
    pair.connect()
    pair.request(get("hello"))
    pair.advance(61)
    assert not pair.connected
    reasons = sorted((e.reason, e.aborted) for _, e in pair.closed)
    assert reasons == [("idle", False), ("released by the peer: idle", False)]
    assert decode_frame(pair.wire[-1][2]).code == signals.RELEASE


def test_keepalive_between_two_endpoints_keeps_a_quiet_connection() -> None:
    config = StreamConfig(keepalive=30.0, ping_timeout=10.0, idle_timeout=None)
    pair = StreamPair(make_site()[0], client_config=config, server_config=config)
    pair.connect()
    pair.advance(300)
    assert pair.connected
    pings = [d for _, _, d in pair.wire if decode_frame(d).code == signals.PING]
    pongs = [d for _, _, d in pair.wire if decode_frame(d).code == signals.PONG]
    assert len(pings) >= 9 and len(pongs) == len(pings)


def test_a_stalled_peer_is_aborted_after_the_ping_timeout() -> None:
    config = StreamConfig(keepalive=30.0, ping_timeout=10.0, idle_timeout=None)
    pair = StreamPair(make_site()[0], client_config=config, server_config=config)
    pair.connect()
    pair.hold = True
    pair.advance(45)
    assert not pair.connected
    assert all(e.aborted and "no Pong within 10 s" in e.reason for _, e in pair.closed)


def test_notifications_count_in_arrival_order_whatever_their_observe_value() -> None:
    """RFC 8323 §7.1: over a connection the Observe value of a notification may be empty;
    they arrive in the order sent, and each one is news (over UDP an unchanged value
    would be taken for the same state, and dropped)."""
    site, _ = make_site()
    pair = StreamPair(site)
    pair.connect()
    handle = pair.request(get("clock", observe=0), keep_open=True)
    [registration] = [e for e in pair.events["server"] if isinstance(e, IncomingRequest)]
    token = registration.request.token
    for text in (b"a", b"b", b"c"):
        notification = Message(
            code=Code.CONTENT, token=token, options=Options.build(observe=0), payload=text
        )
        _, output = pair.server.send_separate(CLIENT, notification, pair.now)
        pair.take("server", output)
    payloads = [e.response.payload for e in pair.results(handle) if isinstance(e, ResponseEvent)]
    assert payloads == [b"0", b"a", b"b", b"c"]
