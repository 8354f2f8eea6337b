"""The DTLS session layer over a simulated network, on the pyOpenSSL engine: the cookie
exchange keeps nothing for unproven sources, retransmissions run on the endpoint's clock
at exact deadlines (RFC 6347 §4.2.4), sessions end as §4.2.8 and the limits say."""

from __future__ import annotations

import pytest

from coapkit import Code, Message, Options
from coapkit.dtls import (
    DatagramDropped,
    DtlsConfig,
    SessionEnded,
    SessionEstablished,
    SessionRefused,
)
from coapkit.dtls.records import HANDSHAKE, HELLO_VERIFY_REQUEST, split_records
from coapkit.errors import DtlsError
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import EndpointNode, LinkConditions
from tests.dtls.conftest import require_pyopenssl
from tests.dtls.helpers import (
    CLIENT,
    SERVER,
    Pair,
    client_endpoint,
    psk_client_credentials,
    server_endpoint,
)

pytestmark = pytest.mark.usefixtures("dtls_available")


@pytest.fixture
def dtls_available() -> None:
    require_pyopenssl()


def first_client_hello() -> bytes:
    """A ClientHello as an OpenSSL client sends it first (no cookie)."""
    endpoint = client_endpoint()
    _, output = endpoint.request(Message(code=Code.GET), SERVER, 0.0)
    [(data, remote)] = output.datagrams
    assert remote == SERVER
    return data


def test_a_request_over_a_psk_session() -> None:
    pair = Pair()
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    assert event.response.payload == b"hello dev1"
    [(_, made)] = [item for item in pair.server.events if isinstance(item[1], SessionEstablished)]
    assert made.identity.psk_identity == b"dev1" and not made.client
    assert made.identity.version == "DTLSv1.2"
    client_identity = pair.client.endpoint.security.identity(SERVER)
    assert (
        client_identity.psk_identity == b"dev1" and client_identity.cipher == made.identity.cipher
    )
    # the handshake: ClientHello, HelloVerifyRequest, ClientHello with the cookie, the
    # server's flight, the client's, the server's last; then the request and response
    assert len(pair.sent(CLIENT, SERVER)) == 4 and len(pair.sent(SERVER, CLIENT)) == 4


def test_a_client_hello_without_cookie_leaves_no_state() -> None:
    server = server_endpoint()
    hello = first_client_hello()
    for port in range(1000, 1100):
        output = server.datagram_received(hello, ("192.0.2.9", port), 0.5)
        [(reply, remote)] = output.datagrams
        assert remote == ("192.0.2.9", port)
        [record] = split_records(reply)
        assert record.content_type == HANDSHAKE and reply[13] == HELLO_VERIFY_REQUEST
        assert record.sequence == split_records(hello)[0].sequence
    layer = server.security
    assert len(layer) == 0 and layer.handshakes == 0
    assert layer.stats.hello_verify_requests == 100
    assert server.next_deadline() is None  # no timer either


def test_a_cookie_is_bound_to_its_source() -> None:
    """A ClientHello returning a cookie made for another address is answered afresh."""
    pair = Pair()
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset({1})))
    hello = first_client_hello()
    server = pair.server.endpoint
    [(reply, _)] = server.datagram_received(hello, ("192.0.2.9", 1), 0.0).datagrams
    cookie = reply[13 + 12 + 3 :]
    assert len(cookie) == 17
    # the same hello with that cookie, from another port: a new HelloVerifyRequest
    [_record] = split_records(hello)
    body = bytearray(hello[13 + 12 :])
    session_length = body[34]
    at = 35 + session_length
    assert body[at] == 0
    forged_body = bytes(body[:at]) + bytes([len(cookie)]) + cookie + bytes(body[at + 1 :])
    length = len(forged_body).to_bytes(3, "big")
    message = hello[13:14] + length + hello[17:19] + b"\0\0\0" + length + forged_body
    forged = hello[:11] + len(message).to_bytes(2, "big") + message
    output = server.datagram_received(forged, ("192.0.2.9", 2), 0.1)
    [(reply, _)] = output.datagrams
    assert reply[13] == HELLO_VERIFY_REQUEST and len(server.security) == 0
    # and from the address it was made for, the engine takes it
    output = server.datagram_received(forged, ("192.0.2.9", 1), 0.2)
    assert len(server.security) == 1 and server.security.handshakes == 1


def test_garbage_and_records_for_no_session_are_dropped() -> None:
    server = server_endpoint()
    record = bytes([23, 0xFE, 0xFD, 0, 1]) + bytes(6) + (4).to_bytes(2, "big") + b"abcd"
    for data, reason in (
        (b"", "not DTLS records"),
        (b"\x40\x01\x00\x01", "not DTLS records"),  # plain CoAP
        (record[:-1], "not DTLS records"),  # truncated
        (record, "a record for no session"),
        (bytes([25]) + record[1:], "connection-ID"),
    ):
        output = server.datagram_received(data, CLIENT, 1.0)
        assert output.datagrams == []
        [event] = output.events
        assert isinstance(event, DatagramDropped) and reason in event.reason
    assert len(server.security) == 0


def test_client_hello_retransmitted_at_one_then_two_seconds() -> None:
    """RFC 6347 §4.2.4.1: 1 s, then doubling; on the endpoint's clock, exactly."""
    pair = Pair(conditions=LinkConditions(latency=0.01))
    pair.network.set_link(CLIENT, SERVER, LinkConditions(latency=0.01, drop=frozenset({1, 2})))
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    times = [round(entry.time, 6) for entry in pair.sent(CLIENT, SERVER)]
    assert times[:3] == [0.0, 1.0, 3.0]
    assert pair.client.endpoint.security.stats.retransmissions == 2


def test_a_lost_server_flight_is_retransmitted_by_the_server_timer() -> None:
    pair = Pair(conditions=LinkConditions(latency=0.01))
    # server -> client: 1 HelloVerifyRequest, 2 the server's flight (lost), ...
    pair.network.set_link(SERVER, CLIENT, LinkConditions(latency=0.01, drop=frozenset({2})))
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    sent = [round(entry.time, 6) for entry in pair.sent(SERVER, CLIENT)]
    # the flight went at 0.03 (the second ClientHello arrived), again 1 s later: by the
    # server's timer, or at the client's own retransmission of its ClientHello (also at
    # 1.02), whichever comes first; not twice for one loss
    assert sent[1] == 0.03 and sent[2] == pytest.approx(1.03, abs=0.011)
    assert len(sent) == 5


def test_a_lost_last_flight_is_resent_when_the_client_repeats_its_own() -> None:
    """The server's last flight has no timer: it goes again when the client's flight
    comes again (its records of epoch 0 after the session is made)."""
    pair = Pair(conditions=LinkConditions(latency=0.01))
    pair.network.set_link(SERVER, CLIENT, LinkConditions(latency=0.01, drop=frozenset({3})))
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    client_sent = [round(entry.time, 6) for entry in pair.sent(CLIENT, SERVER)]
    server_sent = [round(entry.time, 6) for entry in pair.sent(SERVER, CLIENT)]
    assert client_sent[2] == 0.04 and client_sent[3] == 1.04  # the client's flight, again
    assert server_sent[3] == 1.05  # the server's last flight, again, as the copy arrived
    assert pair.server.endpoint.security.stats.retransmissions == 1


def test_the_handshake_times_out_at_handshake_timeout() -> None:
    config = DtlsConfig(handshake_timeout=20.0)
    pair = Pair(client=client_endpoint(config=config))
    pair.network.set_link(CLIENT, SERVER, LinkConditions(loss=1.0))
    event = pair.outcome(pair.get())
    assert isinstance(event, RequestFailed) and isinstance(event.error, DtlsError)
    assert event.error.cause == "timeout"
    assert str(event.error) == "DTLS handshake timed out: no answer from 192.0.2.2:5684 in 20 s"
    assert pair.network.now == pytest.approx(20.0)
    times = [round(entry.time, 6) for entry in pair.sent(CLIENT, SERVER)]
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert len(pair.client.endpoint.security) == 0


def test_an_unknown_psk_identity_is_named_on_both_sides() -> None:
    pair = Pair(client=client_endpoint(psk_client_credentials(b"mallory", b"secretkey")))
    event = pair.outcome(pair.get())
    assert isinstance(event, RequestFailed) and isinstance(event.error, DtlsError)
    assert event.error.cause == "unknown_psk_identity"
    assert str(event.error) == "DTLS handshake failed: the server rejected PSK identity 'mallory'"
    [ended] = [e for _, e in pair.server.events if isinstance(e, SessionEnded)]
    assert ended.failed and not ended.established
    assert str(ended.error) == (
        "DTLS handshake failed: the client's PSK identity 'mallory' is not known here"
    )
    assert len(pair.server.endpoint.security) == 0


def test_several_identities_each_with_its_key() -> None:
    pair = Pair(client=client_endpoint(psk_client_credentials(b"dev2", b"0123456789abcdef")))
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello dev2"


def test_a_valid_hello_beyond_max_handshakes_is_refused() -> None:
    pair = Pair(server=server_endpoint(config=DtlsConfig(max_handshakes=1)))
    other = ("192.0.2.3", 49152)
    second = EndpointNode(client_endpoint(seed=5))
    pair.network.attach(other, second)
    # the first client's flight is lost once: its handshake stays open for a second
    pair.network.set_link(CLIENT, SERVER, LinkConditions(drop=frozenset({3})))
    first = pair.get()
    message = Message(code=Code.GET, options=Options.build(uri_path=["hello"]))
    pair.network.run_until(0.015)
    _handle, datagrams = second.request(message, SERVER, pair.network.now)
    pair.network.transmit(other, datagrams)
    assert isinstance(pair.outcome(first), ResponseEvent)
    refused = [e for _, e in pair.server.events if isinstance(e, SessionRefused)]
    assert refused and refused[0].remote == other
    assert "DtlsConfig.max_handshakes" in refused[0].reason
    # the second client tried again (its ClientHello timer) and got in later
    pair.network.run_until(30.0)
    assert [e for _, e in second.events if isinstance(e, ResponseEvent)]


def test_idle_sessions_close_with_close_notify_and_come_back() -> None:
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    made = pair.network.now
    pair.network.run_until(made + 299.0)
    assert len(pair.server.endpoint.security) == 1
    pair.network.run_until(made + 302.0)
    ended = [e for _, e in pair.server.events if isinstance(e, SessionEnded)]
    assert [e.error.cause for e in ended] == ["idle"] and not ended[0].failed
    # both sides closed the session (either side's idle timer, or the close_notify)
    assert len(pair.server.endpoint.security) == 0 and len(pair.client.endpoint.security) == 0
    # the next request makes a new one (resuming the last)
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    assert pair.client.endpoint.security.identity(SERVER).resumed


def test_a_resumed_psk_session_keeps_its_identity_on_the_server() -> None:
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    closing = pair.client.endpoint.security.close(SERVER, pair.network.now)
    pair.network.transmit(CLIENT, closing.datagrams)
    pair.network.run_for(1.0)
    assert len(pair.server.endpoint.security) == 0
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello dev1"
    identity = pair.server.endpoint.security.identity(CLIENT)
    assert identity.resumed and identity.psk_identity == b"dev1"


def test_a_new_client_hello_from_a_known_address_replaces_the_session_after_the_cookie() -> None:
    """RFC 6347 §4.2.8: the old session is kept until the cookie round trip is done."""
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    old = pair.server.endpoint.security.session(CLIENT)
    restarted = EndpointNode(client_endpoint(seed=9))  # the client restarts: same address
    pair.network.detach(CLIENT)
    pair.network.attach(CLIENT, restarted)
    pair.client = restarted
    hello = first_client_hello()
    output = pair.server.endpoint.datagram_received(hello, CLIENT, pair.network.now)
    assert output.datagrams[0][0][13] == HELLO_VERIFY_REQUEST
    assert pair.server.endpoint.security.session(CLIENT) is old  # still there
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    assert pair.server.endpoint.security.session(CLIENT) is not old
    replaced = [e for _, e in pair.server.events if isinstance(e, SessionEnded)]
    assert [e.error.cause for e in replaced] == ["replaced"]


def test_nothing_goes_out_in_the_clear() -> None:
    """A server has no session to a remote it never met: a message to it is dropped."""
    server = server_endpoint()
    _, output = server.send_separate(CLIENT, Message(code=Code.CONTENT, payload=b"x"), 0.0)
    assert output.datagrams == []
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    for entry in pair.network.trace:
        assert split_records(entry.data) is not None  # every datagram: DTLS records
        assert b"hello dev1" not in entry.data


def test_multicast_is_not_served_over_dtls() -> None:
    server = server_endpoint()
    output = server.datagram_received(first_client_hello(), CLIENT, 0.0, multicast=True)
    assert output.datagrams == [] and isinstance(output.events[0], DatagramDropped)


def test_requests_wait_for_the_handshake_once_each() -> None:
    """The message layer's retransmissions of a request waiting for the handshake are the
    same bytes: they wait once, and the request goes out once when the session is made."""
    pair = Pair(conditions=LinkConditions(latency=0.01))
    pair.network.set_link(CLIENT, SERVER, LinkConditions(latency=0.01, drop=frozenset({1, 2, 3})))
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent)
    session = pair.client.endpoint.security.session(SERVER)
    assert session.waiting == []
    application = [e for e in pair.sent(CLIENT, SERVER) if e.data[0] == 23]
    assert len(application) == 1


def test_a_wrong_key_fails_both_sides_in_a_second() -> None:
    """OpenSSL drops a Finished that does not verify silently; the server engine sees the
    client's second copy rejected, ends the handshake and sends decrypt_error."""
    pair = Pair(client=client_endpoint(psk_client_credentials(b"dev1", b"not the key")))
    event = pair.outcome(pair.get())
    assert isinstance(event, RequestFailed) and isinstance(event.error, DtlsError)
    assert event.error.cause == "psk_mismatch"
    assert str(event.error) == (
        "DTLS handshake failed: the server could not verify our Finished: it holds another "
        "key for PSK identity 'dev1'"
    )
    assert pair.network.now < 1.1  # the client's flight once, again at 1 s: then the alert
    [ended] = [e for _, e in pair.server.events if isinstance(e, SessionEnded)]
    assert str(ended.error) == (
        "DTLS handshake failed: the client's Finished does not verify: it holds another key "
        "for PSK identity 'dev1'"
    )
    assert len(pair.server.endpoint.security) == 0 and len(pair.client.endpoint.security) == 0


def test_a_client_renews_a_session_its_server_lost() -> None:
    """A server that restarted drops the records of a session it no longer has; once a
    request got no answer at all, the client forgets the session and the next request
    makes a new one."""
    pair = Pair()
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    restarted = EndpointNode(server_endpoint(seed=7), pair.server.app)
    pair.network.detach(SERVER)
    pair.network.attach(SERVER, restarted)
    pair.server = restarted
    lost = pair.outcome(pair.get())
    assert isinstance(lost, RequestFailed)
    assert "no acknowledgement" in str(lost.error)
    assert pair.client.endpoint.security.session(SERVER) is None
    event = pair.outcome(pair.get())
    assert isinstance(event, ResponseEvent) and event.response.payload == b"hello dev1"


def test_a_renegotiation_is_refused_and_the_session_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 6347 §4.2.8 lets a renegotiation happen in the session; coapkit refuses it
    (no_renegotiation, a warning alert) and the session is kept."""
    from OpenSSL import SSL

    pair = Pair()  # the server's context refuses renegotiation
    monkeypatch.setattr(SSL, "OP_NO_RENEGOTIATION", 0)  # the client's (made next) asks
    assert isinstance(pair.outcome(pair.get()), ResponseEvent)
    client_session = pair.client.endpoint.security.session(SERVER)
    connection = client_session.engine._connection
    connection.renegotiate()
    with pytest.raises(SSL.WantReadError):
        connection.do_handshake()
    [hello] = client_session.engine._drain()
    assert split_records(hello)[0].epoch == 1  # a ClientHello inside the session
    output = pair.server.endpoint.datagram_received(hello, CLIENT, pair.network.now)
    [(alert, _)] = output.datagrams
    assert split_records(alert)[0].content_type == 21  # the alert, encrypted
    assert pair.server.endpoint.security.established(CLIENT)
    assert not [e for _, e in output.events if isinstance(e, SessionEnded)]
