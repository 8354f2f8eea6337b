"""The edges of :class:`~coapkit.blockwise.client.ClientTransfers`: pings, separate
responses, multicast, cancellation, malformed Block options in responses, and events that
are not its business.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coapkit import BlockValue, Code, Message, MessageType, Options
from coapkit.blockwise.client import ClientTransfers, Transfer, TransferState
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.endpoint import Endpoint
from coapkit.errors import RequestTimeout, TransferError
from coapkit.exchanges.client import ClientRequest
from coapkit.exchanges.events import (
    Diagnostic,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    ResponseEvent,
)
from coapkit.testing import EndpointNode, LinkConditions
from tests.blockwise.helpers import CLIENT, SERVER, Pair, body_of, get, response, scripted
from tests.blockwise.test_observe_blocks import Observed, notifications, observe, run_until

GROUP = ("224.0.1.187", 5683)


def test_transfer_repr_and_token():
    transfer = Transfer(
        get("x"),
        SERVER,
        0.0,
        mtype=MessageType.CON,
        transmission=None,
        timeout=None,
        multicast=False,
        observe=False,
    )
    assert transfer.token == b""
    assert repr(transfer) == "<Transfer code=1 to ('192.0.2.2', 5683) OPEN>"


def test_ping():
    pair = Pair()
    box = []

    def ping(now):
        handle, output = pair.client.endpoint.ping(SERVER, now)
        box.append(handle)
        return output.datagrams

    pair.network.call_at(0.0, CLIENT, ping)
    pair.network.run_for(1.0)
    [pong] = pair.client.events_of(PongReceived)
    assert pong.handle is box[0]
    assert not box[0].open


def test_a_separate_response_is_acknowledged_first():
    body = body_of(3000)
    pending = []

    def later(node, event, now):
        pending.append(event.handle)

    pair = Pair(later)
    box = pair.start(get("slow"))

    def answer(now):
        return pair.server.respond(pending.pop(), Message(code=Code.CONTENT, payload=body), now)

    pair.network.call_at(1.0, SERVER, answer)
    pair.network.step()
    final = pair.wait(box[0])
    assert final.response.payload == body
    acks = [e for e in pair.events(box[0]) if isinstance(e, RequestAcknowledged)]
    assert len(acks) == 1  # the first request's empty ACK; blocks 1 and 2 came from the cache


def test_an_empty_ack_to_a_notifications_block_request_is_not_reported():
    resource = Observed(body_of(3000), max_age=1000)
    pair, handle = observe(resource, server_config=BlockwiseConfig(cache_entries=0))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    later_body = body_of(3000, seed=1)
    deferred = []

    def later(node, event, now):
        # every block request is answered separately, a second later
        deferred.append(event.handle)

        def answer(at):
            return pair.server.respond(
                event.handle, Message(code=Code.CONTENT, payload=later_body), at
            )

        pair.network.call_at(now + 1.0, SERVER, answer)

    pair._app = later
    resource.notify(later_body)
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    assert notifications(pair, handle)[-1].payload == later_body
    assert len(deferred) == 2  # blocks 1 and 2, each acknowledged empty first
    assert not [e for e in pair.client.events if isinstance(e, RequestAcknowledged)]


def test_multicast_responses_are_delivered_as_they_come():
    body = body_of(3000)
    pair = Pair(lambda node, event, now: Message(code=Code.CONTENT, payload=body))
    pair.network.join(SERVER, GROUP)
    box = []

    def send(now):
        handle, datagrams = pair.client.request(get("large"), GROUP, now, multicast=True)
        box.append(handle)
        return datagrams

    pair.network.call_at(0.0, CLIENT, send)
    pair.network.run_for(10.0)
    [event] = [e for e in pair.events(box[0]) if isinstance(e, ResponseEvent)]
    assert not event.final
    assert event.response.options.block2 == BlockValue(0, True, 6)  # no follow-up requests
    assert len(pair.client_requests()) == 1


def test_cancel_twice_and_cancel_after_the_end():
    pair = Pair(lambda node, event, now: Message(code=Code.CONTENT, payload=b"x"))
    final = pair.request(get("x"))
    assert pair.client.endpoint.cancel(final.handle, pair.network.now).datagrams == []
    box = pair.start(get("x"))
    pair.network.step()
    endpoint = pair.client.endpoint
    endpoint.cancel(box[0], pair.network.now)
    assert endpoint.cancel(box[0], pair.network.now).datagrams == []
    assert box[0].state is TransferState.DONE


def test_cancel_during_an_upload_frees_the_resource_for_untagged_uploads():
    pair = Pair(lambda node, event, now: Message(code=Code.CHANGED))
    box = pair.start(
        Message(code=Code.PUT, options=Options.build(uri_path=["u"]), payload=b"u" * 3000)
    )
    pair.network.step()
    pair.client.endpoint.cancel(box[0], pair.network.now)
    final = pair.request(
        Message(code=Code.PUT, options=Options.build(uri_path=["u"]), payload=b"v" * 3000)
    )
    assert final.response.code == Code.CHANGED
    sent = [m for m in pair.client_requests() if N.BLOCK1 in m.options]
    assert {m.options.get(N.REQUEST_TAG) for m in sent} == {None}


def test_malformed_block2_in_a_response_is_taken_as_a_whole_response():
    def script(request):
        return Message(
            code=Code.CONTENT, options=Options([(N.BLOCK2, b"\x00\x00\x00\x0e")]), payload=b"odd"
        )

    pair, peer = scripted(script)
    final = pair.request(get("x"))
    assert final.response.payload == b"odd"
    assert len(peer.requests) == 1


def test_malformed_block1_in_a_2_31_fails_the_upload():
    def script(request):
        return Message(code=Code.CONTINUE, options=Options([(N.BLOCK1, b"\x00\x00\x00\x0e")]))

    pair, _ = scripted(script)
    final = pair.request(
        Message(code=Code.PUT, options=Options.build(uri_path=["u"]), payload=b"u" * 3000)
    )
    assert isinstance(final.error, TransferError)


def test_a_timeout_bounds_the_first_response_not_the_observation():
    """``timeout`` bounds the wait for the registration's answer; once the observation
    is established it outlives it, and a notification fetched block-wise meanwhile
    still arrives whole."""
    resource = Observed(body_of(5000), max_age=1000)
    pair = Pair(resource, conditions=LinkConditions(latency=0.5))
    resource.pair = pair
    box = pair.start(get("obs", observe=0), keep_open=True, timeout=8.0)
    pair.network.step()
    handle = box[0]
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(body_of(5000, seed=1), at=pair.network.now + 0.5)
    pair.network.run_until(7.9)
    child = handle.fetch
    assert child is not None
    pair.network.run_for(20.0)
    assert handle.open and handle.fetch is None and not child.open
    assert notifications(pair, handle)[-1].payload == body_of(5000, seed=1)


# -- what is not the transfers' business -------------------------------------------------------


def transfers() -> ClientTransfers:
    return Endpoint(rng=random.Random(1)).transfers


def test_events_without_a_request_handle_pass_through():
    event = Diagnostic(SERVER, "something")
    assert transfers().on_event(event, 0.0, []) == [event]


def test_events_of_exchanges_started_below_the_transfers_are_dropped():
    request = ClientRequest(
        get("x"), SERVER, 0.0, multicast=False, keep_open=False, ping=False, separate_timeout=1.0
    )
    event = ResponseEvent(request, response(Code.CONTENT), SERVER, True)
    assert transfers().on_event(event, 0.0, []) == []


def test_failure_of_an_exchange_the_transfer_no_longer_uses_is_dropped():
    endpoint = Endpoint(rng=random.Random(1))
    handle, _ = endpoint.request(get("x"), SERVER, 0.0)
    old = handle.exchange
    stale = ClientRequest(
        get("x"), SERVER, 0.0, multicast=False, keep_open=False, ping=False, separate_timeout=1.0
    )
    stale.owner = handle
    assert endpoint.transfers.on_event(RequestFailed(stale, RequestTimeout("t")), 0.0, []) == []
    assert handle.open and handle.exchange is old


def test_a_reregistration_timer_of_a_finished_observation_is_skipped():
    resource = Observed(b"v0", max_age=10)
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    transfers = pair.client.endpoint.transfers
    deadline = handle.reregister_at
    pair.client.endpoint.cancel(handle, pair.network.now)
    # straight to handle_timeout, without next_deadline() sweeping the stale timer first
    assert transfers.handle_timeout(deadline + 1.0, []) == []
    assert transfers.next_deadline() is None


def test_a_reregistration_timer_whose_exchange_is_gone_is_skipped():
    resource = Observed(b"v0", max_age=10)
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    endpoint = pair.client.endpoint
    deadline = handle.reregister_at
    endpoint.client.cancel(handle.exchange, pair.network.now, [])  # underneath the transfer
    out: list = []
    assert endpoint.transfers.handle_timeout(deadline + 1.0, out) == []
    assert out == []


def test_transfers_node_wrapper_is_usable_for_a_second_client():
    """Two clients download the same representation: each gets its own cache entry."""
    body = body_of(3000)
    pair = Pair(lambda node, event, now: Message(code=Code.CONTENT, payload=body))
    other = EndpointNode(Endpoint(rng=random.Random(11)))
    other_address = ("192.0.2.9", 5683)
    pair.network.attach(other_address, other)
    box = []

    def send(now):
        handle, datagrams = other.request(get("large"), SERVER, now)
        box.append(handle)
        return datagrams

    pair.network.call_at(0.0, other_address, send)
    first = pair.start(get("large"))
    pair.network.run_for(5.0)
    assert pair.final(first[0]).response.payload == body
    [done] = [e for _, e in other.events if isinstance(e, ResponseEvent)]
    assert done.response.payload == body
    assert pair.blockwise.cached_representations == 2


def test_other_events_about_a_transfer_are_dropped():
    @dataclass(frozen=True)
    class Unheard:
        handle: ClientRequest

    endpoint = Endpoint(rng=random.Random(1))
    handle, _ = endpoint.request(get("x"), SERVER, 0.0)
    assert endpoint.transfers.on_event(Unheard(handle.exchange), 0.0, []) == []
    assert handle.open
