"""The connection layer on its own (RFC 8323 §3-§5), frame by frame, in virtual time."""

from __future__ import annotations

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.stream import decode_frame, decode_ws, encode_frame, encode_ws
from coapkit.connections import (
    CloseConnection,
    ConnectionLayer,
    ConnectionReady,
    IdleConnection,
    StreamConfig,
    signals,
)
from coapkit.errors import EncodeError, NetworkError
from coapkit.messaging.events import (
    PeerFailed,
    RequestReceived,
    ResetReceived,
    ResponseReceived,
)

PEER = ("192.0.2.7", 41000)


def frame(
    code: int, token: bytes = b"", options: Options | None = None, payload: bytes = b""
) -> bytes:
    return encode_frame(code, token, options or Options(), payload)


def peer_csm(size: int = 1152, block_wise: bool = False) -> bytes:
    message = signals.csm(size, block_wise)
    return frame(message.code, b"", message.options)


def opened(
    config: StreamConfig | None = None, *, websocket: bool = False
) -> tuple[ConnectionLayer, list[tuple[bytes, object]]]:
    layer = ConnectionLayer(config=config)
    out: list[tuple[bytes, object]] = []
    layer.connection_made(PEER, 0.0, out, websocket=websocket)
    return layer, out


def sent(out: list[tuple[bytes, object]]) -> list[Message]:
    return [decode_frame(data) for data, _ in out]


GET = frame(Code.GET, b"\x01", Options.build(uri_path=["x"]))


def test_our_csm_goes_first_and_announces_what_we_take() -> None:
    _layer, out = opened(StreamConfig(max_message_size=4096, block_wise=True))
    [csm] = sent(out)
    assert csm.code == signals.CSM
    assert csm.options.get(signals.MAX_MESSAGE_SIZE) == (4096).to_bytes(2, "big")
    assert csm.options.get(signals.BLOCK_WISE_TRANSFER) == b""


def test_nothing_but_a_csm_is_taken_before_the_peers_csm() -> None:
    layer, out = opened()
    out.clear()
    events = layer.receive(GET, PEER, 0.1, out)
    [abort] = sent(out)
    assert abort.code == signals.ABORT and b"before the peer's CSM" in abort.payload
    assert events == [
        CloseConnection(PEER, "GET received before the peer's CSM (RFC 8323 §5.3)", True)
    ]
    assert layer.receive(peer_csm(), PEER, 0.2, out)[0].reason.startswith("data on a connection")


def test_a_peer_that_never_sends_its_csm_is_aborted_at_the_timeout() -> None:
    layer, out = opened(StreamConfig(csm_timeout=5.0))
    out.clear()
    assert layer.next_deadline() == 5.0
    assert layer.handle_timeout(4.9, out) == [] and out == []
    [event] = layer.handle_timeout(5.0, out)
    assert (
        isinstance(event, CloseConnection) and event.aborted and "no CSM within 5 s" in event.reason
    )
    assert sent(out)[0].code == signals.ABORT
    assert layer.next_deadline() is None


def test_after_the_csm_requests_and_responses_go_up() -> None:
    layer, out = opened()
    [ready] = layer.receive(peer_csm(2000, True), PEER, 0.1, out)
    assert ready == ConnectionReady(PEER, 2000, True)
    [request] = layer.receive(GET, PEER, 0.2, out)
    assert isinstance(request, RequestReceived) and request.message.options.uri_path == ("x",)
    [response] = layer.receive(frame(Code.CONTENT, b"\x02", payload=b"hi"), PEER, 0.3, out)
    assert isinstance(response, ResponseReceived) and response.message.payload == b"hi"
    assert response.inbound is not None and response.acknowledged is None
    assert layer.receive(frame(0), PEER, 0.4, out) == []  # an empty message is ignored (§3.4)


def test_a_later_csm_is_reported_only_when_it_changes_what_the_peer_takes() -> None:
    """A peer may send more CSMs (RFC 8323 §5.3); one that lowers Max-Message-Size to 1152
    withdraws BERT (§5.3.2), so the endpoint must hear of it; an option left out keeps
    its value."""
    layer, out = opened()
    [first] = layer.receive(peer_csm(4096, True), PEER, 0.1, out)
    assert first == ConnectionReady(PEER, 4096, True)
    assert layer.receive(peer_csm(4096, True), PEER, 0.2, out) == []
    [lowered] = layer.receive(peer_csm(1152, False), PEER, 0.3, out)
    assert lowered == ConnectionReady(PEER, 1152, True)  # Block-Wise-Transfer is kept
    connection = layer.connection(PEER)
    assert connection is not None and connection.peer_max_size == 1152


def test_two_messages_in_one_read_and_one_message_in_many() -> None:
    layer, out = opened()
    data = peer_csm() + GET + frame(Code.CONTENT, b"\x02", payload=b"y" * 500)
    events = []
    for i in range(0, len(data), 7):
        events += layer.receive(data[i : i + 7], PEER, 0.1, out)
    assert [type(e).__name__ for e in events] == [
        "ConnectionReady",
        "RequestReceived",
        "ResponseReceived",
    ]


def test_ping_is_answered_with_a_pong_with_its_token_and_custody() -> None:
    layer, out = opened()
    layer.receive(peer_csm(), PEER, 0.1, out)
    out.clear()
    ping = frame(signals.PING, b"pt", Options(((signals.CUSTODY, b""),)))
    assert layer.receive(ping, PEER, 0.2, out) == []
    [pong] = sent(out)
    assert pong.code == signals.PONG and pong.token == b"pt"
    assert pong.options.get(signals.CUSTODY) == b""


def test_keepalive_pings_an_idle_peer_and_aborts_one_that_does_not_answer() -> None:
    layer, out = opened(StreamConfig(keepalive=30.0, ping_timeout=10.0, idle_timeout=None))
    layer.receive(peer_csm(), PEER, 0.0, out)
    out.clear()
    layer.handle_timeout(10.0, out)  # the CSM deadline's check: nothing due yet
    assert out == [] and layer.next_deadline() == 30.0
    layer.handle_timeout(30.0, out)
    [ping] = sent(out)
    assert ping.code == signals.PING
    assert layer.next_deadline() == 40.0
    out.clear()
    # A Pong: the connection is alive; the next ping comes 30 s after the last reception.
    layer.receive(frame(signals.PONG), PEER, 31.0, out)
    layer.handle_timeout(40.0, out)
    assert out == [] and layer.next_deadline() == 61.0
    layer.handle_timeout(61.0, out)
    assert sent(out)[0].code == signals.PING
    out.clear()
    [event] = layer.handle_timeout(71.0, out)  # no Pong this time
    assert (
        isinstance(event, CloseConnection)
        and event.aborted
        and "no Pong within 10 s" in event.reason
    )
    assert sent(out)[0].code == signals.ABORT


def test_an_idle_connection_is_reported_and_touch_keeps_it() -> None:
    layer, out = opened(StreamConfig(keepalive=None, idle_timeout=100.0))
    layer.receive(peer_csm(), PEER, 0.0, out)
    layer.receive(GET, PEER, 5.0, out)
    layer.handle_timeout(10.0, out)
    assert layer.next_deadline() == 105.0
    assert layer.handle_timeout(105.0, out) == [IdleConnection(PEER)]
    layer.touch(PEER, 105.0)
    assert layer.next_deadline() == 205.0
    out.clear()
    assert layer.release(PEER, "idle", 205.0, out) == [CloseConnection(PEER, "idle", False)]
    [release] = sent(out)
    assert release.code == signals.RELEASE and release.payload == b"idle"


def test_keepalive_and_idle_shorter_than_the_csm_timeout_are_not_late() -> None:
    layer, out = opened(StreamConfig(csm_timeout=10.0, keepalive=2.0, idle_timeout=1.0))
    layer.receive(peer_csm(), PEER, 0.5, out)
    out.clear()
    assert layer.next_deadline() == 0.5  # not the CSM deadline (10.0)
    assert layer.handle_timeout(0.5, out) == [] and layer.next_deadline() == 1.0
    assert layer.handle_timeout(1.0, out) == [IdleConnection(PEER)]  # 1 s after connecting
    layer.touch(PEER, 1.0)
    assert layer.next_deadline() == 2.0
    layer.handle_timeout(2.5, out)  # 2 s after the CSM, the last thing received
    assert [m.code for m in sent(out)] == [signals.PING]


@pytest.mark.parametrize(
    ("signal", "aborted", "reason"),
    [
        (signals.release("going away"), False, "released by the peer: going away"),
        (signals.abort("bad thing"), True, "aborted by the peer: bad thing"),
        (Message(code=signals.RELEASE), False, "released by the peer: no reason given"),
    ],
)
def test_release_and_abort_from_the_peer_close(signal: Message, aborted: bool, reason: str) -> None:
    layer, out = opened()
    layer.receive(peer_csm(), PEER, 0.0, out)
    events = layer.receive(frame(signal.code, b"", signal.options, signal.payload), PEER, 1.0, out)
    assert events == [CloseConnection(PEER, reason, aborted)]
    with pytest.raises(NetworkError, match="no open connection"):
        layer.send(Message(code=Code.GET), PEER, 1.1, out)


def test_an_unknown_critical_csm_option_is_answered_with_bad_csm_option() -> None:
    layer, out = opened()
    out.clear()
    bad = frame(signals.CSM, b"", Options(((9, b"\x01"),)))
    [event] = layer.receive(bad, PEER, 0.1, out)
    assert event.aborted and "unknown critical option 9 in CSM" in event.reason
    [abort] = sent(out)
    assert abort.options.get(signals.BAD_CSM_OPTION) == b"\x09"


def test_an_unknown_elective_signal_option_is_ignored() -> None:
    layer, out = opened()
    [ready] = layer.receive(frame(signals.CSM, b"", Options(((8, b"x"),))), PEER, 0.1, out)
    assert isinstance(ready, ConnectionReady) and ready.max_message_size == 1152


def test_the_peers_max_message_size_bounds_what_we_send() -> None:
    layer, out = opened()
    layer.receive(peer_csm(2000), PEER, 0.0, out)
    layer.send(Message(code=Code.POST, token=b"a", payload=bytes(1900)), PEER, 0.1, out)
    with pytest.raises(EncodeError, match=r"larger than the 2000 .* accepts"):
        layer.send(Message(code=Code.POST, token=b"a", payload=bytes(2100)), PEER, 0.1, out)


def test_our_max_message_size_bounds_what_we_read() -> None:
    layer, out = opened(StreamConfig(max_message_size=2000))
    layer.receive(peer_csm(), PEER, 0.0, out)
    out.clear()
    big = frame(Code.POST, b"a", payload=bytes(3000))
    [event] = layer.receive(big[:6], PEER, 0.1, out)  # refused from the header alone
    assert event.aborted and "larger than the 2000 announced" in event.reason


def test_a_malformed_frame_aborts_the_connection() -> None:
    layer, out = opened()
    layer.receive(peer_csm(), PEER, 0.0, out)
    out.clear()
    [event] = layer.receive(bytes.fromhex("09"), PEER, 0.1, out)
    assert event.aborted and "malformed message: token length 9" in event.reason
    assert layer.stats.malformed == 1


def test_websocket_connections_frame_each_message_alone() -> None:
    layer, out = opened(websocket=True)
    [(csm_data, _)] = out
    assert decode_ws(csm_data).code == signals.CSM
    message = signals.csm(1152, False)
    layer.receive(encode_ws(message.code, b"", message.options, b""), PEER, 0.1, out)
    [event] = layer.receive(encode_ws(Code.GET, b"\x01", Options(), b""), PEER, 0.2, out)
    assert isinstance(event, RequestReceived)
    out.clear()
    layer.send(Message(code=Code.GET, token=b"\x03"), PEER, 0.3, out)
    assert decode_ws(out[0][0]).token == b"\x03"


def test_a_lost_connection_fails_its_peer() -> None:
    layer, _out = opened()
    error = NetworkError("connection reset")
    assert layer.connection_lost(PEER, error, 1.0) == [PeerFailed(PEER, error)]
    assert layer.connection_lost(PEER, error, 1.0) == []
    assert not layer.is_connected(PEER)


def test_a_ping_is_answered_by_its_pong_and_an_empty_token_pong_only_when_unambiguous() -> None:
    layer, out = opened()
    layer.receive(peer_csm(), PEER, 0.0, out)
    out.clear()
    first = layer.send(Message(code=0), PEER, 0.1, out)  # a CoAP ping: a Ping signal
    [ping] = sent(out)
    assert ping.code == signals.PING and ping.token
    [answer] = layer.receive(frame(signals.PONG, ping.token), PEER, 0.2, out)
    assert isinstance(answer, ResetReceived) and answer.outgoing is first
    # PEER DEVIATION (libcoap 4.3.1): a Pong without the Ping's token; taken when one
    # ping waits, ignored when two do (which one would it answer?)
    one = layer.send(Message(code=0), PEER, 0.3, out)
    [answer] = layer.receive(frame(signals.PONG), PEER, 0.4, out)
    assert isinstance(answer, ResetReceived) and answer.outgoing is one
    layer.send(Message(code=0), PEER, 0.5, out)
    layer.send(Message(code=0), PEER, 0.5, out)
    assert layer.receive(frame(signals.PONG), PEER, 0.6, out) == []


# -- the fast path (ConnectionLayer.accept_request, FrameReader.one_request) ---------------

PLAIN = {11: (0, 255, True), 12: (0, 2, False)}  # Uri-Path, Content-Format


def test_a_whole_request_in_one_read_is_taken_as_receive_would() -> None:
    fast, _ = opened()
    slow, _ = opened()
    for layer in (fast, slow):
        layer.receive(peer_csm(), PEER, 0.1, [])
    inbound = fast.accept_request(GET, PEER, 0.5, PLAIN)
    [event] = slow.receive(GET, PEER, 0.5, [])
    assert isinstance(event, RequestReceived) and inbound is not None
    assert inbound.message == event.message
    assert (inbound.size, inbound.remote, inbound.received_at, inbound.mtype) == (
        event.inbound.size,
        event.inbound.remote,
        event.inbound.received_at,
        event.inbound.mtype,
    )
    assert fast.stats.received == slow.stats.received == 1
    mine, theirs = fast._connections[PEER], slow._connections[PEER]
    assert (mine.last_received, mine.last_activity) == (theirs.last_received, 0.5)
    assert mine.reader is not None and mine.reader.buffered == 0


LONG = frame(Code.POST, b"\x01\x02", Options.build(uri_path=["x"]), b"p" * 300)


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("a signal", frame(signals.PING, b"\x01")),
        ("a response", frame(Code.CONTENT, b"\x01")),
        ("half a frame", GET[:-1]),
        ("two frames", GET + GET),
        ("an option not plain", frame(Code.GET, b"\x01", Options.build(observe=0))),
        ("a reserved token length", b"\x09\x01" + b"\x00" * 9),
        ("a malformed option", b"\x21\x01\x01\xf1\x61"),
        ("larger than Max-Message-Size", frame(Code.PUT, b"", None, b"x" * 70_000)),
    ],
)
def test_anything_else_is_left_to_receive_and_changes_nothing(why: str, data: bytes) -> None:
    layer, _ = opened()
    layer.receive(peer_csm(), PEER, 0.1, [])
    before = layer.stats.received
    assert layer.accept_request(data, PEER, 0.5, PLAIN) is None, why
    connection = layer._connections[PEER]
    assert connection.last_received == 0.1 and layer.stats.received == before
    assert connection.reader is not None and connection.reader.buffered == 0


def test_an_extended_length_request_is_taken() -> None:
    layer, _ = opened(StreamConfig(max_message_size=4096))
    layer.receive(peer_csm(), PEER, 0.1, [])
    inbound = layer.accept_request(LONG, PEER, 0.5, PLAIN)
    assert inbound is not None and inbound.message.payload == b"p" * 300


def test_nothing_fast_before_the_csm_nor_with_bytes_buffered() -> None:
    layer = opened()[0]
    assert layer.accept_request(GET, PEER, 0.1, PLAIN) is None  # receive aborts it
    layer = opened()[0]
    layer.receive(peer_csm() + GET[:2], PEER, 0.1, [])
    assert layer.accept_request(GET, PEER, 0.2, PLAIN) is None  # would misread the stream
    websocket = opened(websocket=True)[0]
    websocket.receive(encode_ws(signals.CSM, b"", Options(), b""), PEER, 0.1, [])
    assert websocket.accept_request(GET, PEER, 0.2, PLAIN) is None
