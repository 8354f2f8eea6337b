"""Errors reported by the network for one remote, and shutting the layer down."""

from __future__ import annotations

import errno

import pytest

from coapkit.codec.types import MessageType
from coapkit.errors import EndpointClosed, NetworkError, RequestCancelled
from coapkit.messaging import (
    DeliveryFailed,
    MessageIgnored,
    MessageLayer,
    OutgoingState,
    PeerFailed,
)
from coapkit.testing import LinkConditions, MessageLayerNode, SimulatedNetwork

from .helpers import (
    CON,
    GET,
    GROUP4,
    NON,
    SERVER,
    A,
    B,
    Driver,
    ScriptedRandom,
    h,
    make_layer,
    request,
    response,
    wire,
)


def test_a_network_error_fails_everything_towards_that_remote_only() -> None:
    d = Driver(make_layer())
    to_a = [d.send(request(CON, token=bytes((i,))), A) for i in range(3)]  # 1 out, 2 waiting
    to_b = d.send(request(CON), B)
    d.take()
    error = NetworkError("port unreachable", errno=111)
    out: list[tuple[bytes, object]] = []
    events = d.layer.network_error(A, error, 1.0, out)
    assert out == []
    assert events == [
        DeliveryFailed(to_a[0], error),
        DeliveryFailed(to_a[1], error),
        DeliveryFailed(to_a[2], error),
        PeerFailed(A, error),
    ]
    assert all(o.state is OutgoingState.FAILED for o in to_a)
    assert (d.layer.outstanding(A), d.layer.backlog(A)) == (0, 0)
    assert str(error) == "port unreachable" and error.errno == 111
    # B goes on as before; nothing more goes to A.
    d.advance(2.5)
    assert d.take() == [(2.5, h("4001 1001"), B)]  # B was met after A got MID 0x1000
    assert to_b.state is OutgoingState.AWAITING_ACK
    d.advance(100.0)
    assert [r for _, _, r in d.take()] == [B, B, B]
    assert not [e for _, e in d.events if isinstance(e, DeliveryFailed) and e.outgoing in to_a]
    # A can be used again; the two that waited never got a message ID.
    d.send(request(CON), A)
    assert d.take() == [(100.0, h("4001 1001"), A)]


def test_a_network_error_for_an_unknown_remote_only_reports_the_peer() -> None:
    layer = make_layer()
    error = NetworkError("host unreachable")
    assert layer.network_error(A, error, 0.0, []) == [PeerFailed(A, error)]
    assert layer.peer_count == 0


def test_a_network_error_leaves_received_requests_alone() -> None:
    d = Driver(make_layer())
    (event,) = d.receive(wire(CON, GET, 0x0042, b"\x0a"), A)
    d.layer.network_error(A, NetworkError("x"), 0.0, [])
    d.respond(event.inbound, response(token=b"\x0a"))  # type: ignore[union-attr]
    assert d.take() == [(0.0, h("6145 0042 0a"), A)]


def test_a_message_too_large_for_the_path_fails_alone() -> None:
    """EMSGSIZE names one datagram (by the message ID it quotes), not the peer."""
    d = Driver(make_layer())
    first = d.send(request(CON, token=b"\x01"), A)
    d.take()
    error = NetworkError("message too long", errno=errno.EMSGSIZE)
    out: list[tuple[bytes, object]] = []
    assert d.layer.message_failed(A, first.mid, error, 1.0, out) == [DeliveryFailed(first, error)]
    assert first.state is OutgoingState.FAILED
    second = d.send(request(CON, token=b"\x02"), A)  # the peer itself is fine
    assert second.state is OutgoingState.AWAITING_ACK
    # A message ID nothing waits on (an ACK already sent, say) is only reported.
    [ignored] = d.layer.message_failed(A, 0x7777, error, 1.0, out)
    assert isinstance(ignored, MessageIgnored) and "message too long" in ignored.reason


def test_an_oversized_ack_is_dropped_and_its_con_stays_outstanding() -> None:
    """SECURITY.md: messages above max_message_size other than CON requests are dropped;
    a piggybacked response is no exception (the client accepted a 65 kB ACK before)."""
    d = Driver(make_layer())
    sent = d.send(request(CON, token=b"\x01"), A)
    d.take()
    big = response(token=b"\x01", payload=bytes(2000)).replace(mtype=MessageType.ACK, mid=sent.mid)
    [ignored] = d.receive(big.encode(), A)
    assert isinstance(ignored, MessageIgnored) and "exceeds 1152" in ignored.reason
    assert sent.state is OutgoingState.AWAITING_ACK and d.layer.stats.oversized == 1
    fits = response(token=b"\x01", payload=bytes(100)).replace(mtype=MessageType.ACK, mid=sent.mid)
    [answer] = d.receive(fits.encode(), A)
    assert answer.__class__.__name__ == "ResponseReceived"


def test_shutdown_cancels_every_exchange() -> None:
    d = Driver(make_layer())
    to_a = [d.send(request(CON, token=bytes((i,))), A) for i in range(2)]
    to_b = d.send(request(CON), B)
    non = d.send(request(NON), B)  # waits behind the CON to B
    (event,) = d.receive(wire(CON, GET, 0x0042, b"\x0a"), SERVER)  # its empty ACK is due at 0.1
    (group_request,) = d.receive(wire(NON, GET, 0x0043, b"\x0b"), SERVER, multicast=True)
    d.respond(group_request.inbound, response(token=b"\x0b"))  # type: ignore[union-attr]
    d.take()
    events = d.layer.shutdown(0.05)
    assert [(type(e), e.outgoing) for e in events] == [  # type: ignore[union-attr]
        (DeliveryFailed, to_a[0]),
        (DeliveryFailed, to_a[1]),
        (DeliveryFailed, to_b),
        (DeliveryFailed, non),
    ]
    for e in events:
        assert isinstance(e, DeliveryFailed) and isinstance(e.error, RequestCancelled)
        assert str(e.error) == "endpoint shut down"
        assert e.outgoing.state is OutgoingState.FAILED
    assert d.layer.closed
    # Time passes: nothing is sent, handle_timeout does nothing, and no deadline is left.
    assert d.layer.next_deadline() is None
    out: list[tuple[bytes, object]] = []
    for now in (0.1, 2.5, 10.0, 100.0, 1000.0):
        assert d.layer.handle_timeout(now, out) == []
    assert out == []
    assert d.layer.shutdown(1000.0) == []  # a second shutdown reports nothing
    assert event is not None


def test_after_shutdown_send_raises_and_receive_does_nothing() -> None:
    layer = make_layer()
    layer.shutdown(0.0)
    with pytest.raises(EndpointClosed, match="shut down"):
        layer.send(request(CON), A, 1.0, [])
    with pytest.raises(EndpointClosed):
        layer.send(request(NON), GROUP4, 1.0, [])
    out: list[tuple[bytes, object]] = []
    for data in (wire(CON, GET, 1), h("4000 0001"), h("49010001"), h("6000 1000")):
        assert layer.receive(data, A, 1.0, out) == []
    assert out == []
    assert layer.stats.received == 0
    assert layer.peer_count == 0


def test_a_shut_down_node_leaves_the_simulated_network_quiet() -> None:
    net = SimulatedNetwork(seed=5, conditions=LinkConditions(latency=0.25))
    client = MessageLayerNode(MessageLayer(rng=ScriptedRandom()))
    server = MessageLayerNode(MessageLayer(rng=ScriptedRandom(0x2000)))
    net.attach(A, client)
    net.attach(SERVER, server)
    net.set_link(SERVER, A, LinkConditions(latency=0.25, loss=1.0))  # no ACK ever comes back

    def ask(now: float) -> list[tuple[bytes, object]]:
        out: list[tuple[bytes, object]] = []
        client.layer.send(request(CON), SERVER, now, out)
        return out

    def stop(now: float) -> None:
        client.events.extend((now, e) for e in client.layer.shutdown(now))

    net.call_at(0.0, A, ask)
    net.call_at(3.0, A, stop)
    steps = 0
    while net.step():  # must end: a closed layer announces no deadline
        steps += 1
        assert steps < 1000
    sent_by_client = [(e.time, e.data) for e in net.sent_between(A, SERVER)]
    assert sent_by_client == [(0.0, h("4001 1000")), (2.5, h("4001 1000"))]
    assert [type(e).__name__ for _, e in client.events] == ["DeliveryFailed"]
