"""The largest message accepted and sent (RFC 7252 §4.6): 1152 bytes unless configured."""

from __future__ import annotations

import random

import pytest

from coapkit import CON, Code, Message, Options
from coapkit.codec.message import decode
from coapkit.endpoint import Endpoint
from coapkit.errors import EncodeError
from coapkit.exchanges.events import IncomingRequest
from coapkit.messaging.layer import MessagingConfig

CLIENT = ("192.0.2.1", 40000)
SERVER = ("192.0.2.2", 5683)


def test_oversized_con_request_gets_413_with_block1_and_is_not_handed_up():
    server = Endpoint(rng=random.Random(1))
    big = Message(CON, Code.PUT, 0x1111, b"tk", Options.build(uri_path=["x"]), b"a" * 1200)
    out = server.datagram_received(big.encode(), CLIENT, 0.0)
    assert not any(isinstance(event, IncomingRequest) for event in out.events)
    [(data, remote)] = out.datagrams
    answer = decode(data)
    assert remote == CLIENT
    assert (answer.code, answer.mid, answer.token) == (Code.REQUEST_ENTITY_TOO_LARGE, 0x1111, b"tk")
    assert answer.options.block1 is not None and answer.options.block1.size == 1024
    assert server.stats.oversized == 1
    # a retransmission gets the same answer, byte for byte
    again = server.datagram_received(big.encode(), CLIENT, 1.0)
    assert again.datagrams == out.datagrams


def test_the_limit_is_configurable():
    server = Endpoint(rng=random.Random(2), messaging=MessagingConfig(max_message_size=4000))
    big = Message(CON, Code.PUT, 0x2222, b"", Options.build(uri_path=["x"]), b"a" * 1200)
    out = server.datagram_received(big.encode(), CLIENT, 0.0)
    assert [type(event) for event in out.events] == [IncomingRequest]


def test_sending_an_oversized_message_raises():
    client = Endpoint(rng=random.Random(3))
    huge_options = Options.build(uri_path=["p" * 250] * 5)
    with pytest.raises(EncodeError, match="max_message_size"):
        client.request(Message(code=Code.GET, options=huge_options), SERVER, 0.0)
    assert client.messaging.peer_count == 0


def test_an_oversized_response_becomes_500():
    server = Endpoint(rng=random.Random(4))
    request = Message(CON, Code.POST, 0x3333, b"t", Options.build(uri_path=["x"]), b"")
    [event] = server.datagram_received(request.encode(), CLIENT, 0.0).events
    assert isinstance(event, IncomingRequest)
    response = Message(code=Code.CREATED, options=Options.build(location_path=["l" * 250] * 5))
    [(data, _)] = server.respond(event.handle, response, 0.0).datagrams
    answer = decode(data)
    assert answer.code == Code.INTERNAL_SERVER_ERROR
    assert b"max_message_size" in answer.payload
