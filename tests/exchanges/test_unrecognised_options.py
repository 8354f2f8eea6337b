"""Unrecognised critical options in responses and requests (RFC 7252 §5.4.1), sans I/O.

Found by the interoperability tests: libcoap echoes a request's unknown critical
option in its 4.02.  Q-Block1 (RFC 9177) stands for a registered critical option
that coapkit does not implement.
"""

from __future__ import annotations

import random

from coapkit import Code, Message, MessageType, Options
from coapkit.codec.message import decode, encode
from coapkit.endpoint import Endpoint
from coapkit.errors import BadResponse
from coapkit.exchanges.events import (
    Diagnostic,
    RequestFailed,
    RequestRefused,
    ResponseEvent,
)

SERVER = ("192.0.2.2", 5683)
GROUP = ("224.0.1.187", 5683)
Q_BLOCK2 = 31  # registered and critical, but not implemented by coapkit
ELECTIVE = 65000  # unassigned, even: elective
CRITICAL = 65001  # unassigned, odd: critical


def get(**options) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=["x"], **options))


def send(client: Endpoint, mtype: MessageType = MessageType.CON, remote=SERVER):
    handle, out = client.request(get(), remote, now=0.0, mtype=mtype)
    [(data, _)] = out.datagrams
    return handle, decode(data)


def reply(request: Message, mtype: MessageType, mid: int, *items: tuple[int, bytes]) -> bytes:
    return encode(Message(mtype, Code.CONTENT, mid, request.token, Options(items), b"payload"))


def test_piggybacked_response_with_unrecognised_critical_option_fails_the_request():
    client = Endpoint(rng=random.Random(1))
    handle, request = send(client)
    out = client.datagram_received(
        reply(request, MessageType.ACK, request.mid, (CRITICAL, b"x")), SERVER, now=0.1
    )
    assert out.datagrams == []  # rejecting an ACK is ignoring it (§4.2)
    [event] = out.events
    assert isinstance(event, RequestFailed) and event.handle is handle
    assert isinstance(event.error, BadResponse)
    assert str(event.error) == "response rejected: unrecognised critical option: Option 65001"
    assert client.client.open_count == 0


def test_unrecognised_elective_option_is_ignored():
    client = Endpoint(rng=random.Random(2))
    _, request = send(client)
    out = client.datagram_received(
        reply(request, MessageType.ACK, request.mid, (12, b"\x00"), (ELECTIVE, b"x")),
        SERVER,
        now=0.1,
    )
    [event] = out.events
    assert isinstance(event, ResponseEvent)
    assert event.response.options.items == ((12, b"\x00"), (ELECTIVE, b"x"))


def test_separate_response_with_unimplemented_option_gets_an_rst_and_fails_the_request():
    client = Endpoint(rng=random.Random(3))
    handle, request = send(client)
    client.datagram_received(encode(Message(MessageType.ACK, 0, request.mid)), SERVER, 0.1)
    out = client.datagram_received(
        reply(request, MessageType.CON, 0x1234, (Q_BLOCK2, b"\x0e")), SERVER, now=0.2
    )
    assert out.datagrams == [(encode(Message(MessageType.RST, 0, 0x1234)), SERVER)]
    [event] = out.events
    assert isinstance(event, RequestFailed) and event.handle is handle
    assert "unrecognised critical option: Q-Block2" in str(event.error)


def test_non_response_with_unrecognised_critical_option():
    client = Endpoint(rng=random.Random(4))
    handle, request = send(client, MessageType.NON)
    out = client.datagram_received(
        reply(request, MessageType.NON, 0x4321, (CRITICAL, b"")), SERVER, now=0.1
    )
    assert out.datagrams == [(encode(Message(MessageType.RST, 0, 0x4321)), SERVER)]
    [event] = out.events
    assert isinstance(event, RequestFailed) and event.handle is handle
    # the NON request is no longer tracked: an RST for it now matches nothing
    late = client.datagram_received(encode(Message(MessageType.RST, 0, request.mid)), SERVER, 0.2)
    assert [type(e) for e in late.events] == [Diagnostic]


def test_multicast_request_stays_open_for_other_responders():
    client = Endpoint(rng=random.Random(5))
    handle, request = send(client, MessageType.NON, remote=GROUP)
    other = ("192.0.2.3", 5683)
    bad = client.datagram_received(
        reply(request, MessageType.NON, 7, (CRITICAL, b"x")), SERVER, now=0.1
    )
    assert [type(e) for e in bad.events] == [Diagnostic]
    good = client.datagram_received(reply(request, MessageType.NON, 8), other, now=0.2)
    [event] = good.events
    assert isinstance(event, ResponseEvent) and event.handle is handle
    assert event.remote == other


def test_server_answers_unimplemented_critical_option_with_bad_option():
    server = Endpoint(rng=random.Random(6))
    client = ("192.0.2.1", 40000)
    block1 = Message(
        MessageType.CON,
        Code.PUT,
        0x0101,
        b"t",
        Options([(11, b"x"), (19, b"\x08")]),  # Q-Block1 0/M/16 (RFC 9177)
        b"0123456789abcdef",
    )
    out = server.datagram_received(encode(block1), client, now=0.0)
    [(data, _)] = out.datagrams
    answer = decode(data)
    assert (answer.mtype, answer.code, answer.mid) == (MessageType.ACK, Code.BAD_OPTION, 0x0101)
    assert answer.payload == b"unrecognised critical option: Q-Block1"
    refused, diagnostic = out.events  # the refusal, for the server's request log
    assert isinstance(refused, RequestRefused) and isinstance(diagnostic, Diagnostic)
    assert refused.response.code == Code.BAD_OPTION
    assert refused.handle.message.options.uri_path == ("x",)
