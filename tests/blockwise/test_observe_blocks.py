"""Block-wise with Observe (RFC 7959 §2.6): a notification carrying the first block of a
larger representation is completed with Block2 requests before the application sees it.

The server side is the sans-I/O endpoint: the app answers the registration (GET with
Observe=0) and later notifications go out with :meth:`Endpoint.notify`; the client holds
an observing :meth:`Endpoint.request` (``keep_open=True``).  The client's Observe
bookkeeping around it (freshness, re-registration, deregistration) lives in the same
module, :mod:`coapkit.blockwise.client`, and is covered here where blocks meet it.
"""

from __future__ import annotations

import random

import pytest

from coapkit import BlockValue, Code, Message, MessageType, Options
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import EndpointNode, LinkConditions
from tests.blockwise.helpers import (
    CLIENT,
    SERVER,
    Pair,
    body_of,
    get,
    with_body,
)

CON = MessageType.CON
NON = MessageType.NON


class Observed:
    """A resource served with Observe by the app; :meth:`notify` sends a new state."""

    def __init__(self, body: bytes, *, max_age: int | None = None) -> None:
        self.body = body
        self.sequence = 2
        self.max_age = max_age
        self.registration: Message | None = None
        self.runs = 0
        self.pair: Pair | None = None

    def __call__(self, node, event, now):
        self.runs += 1
        request = event.request
        options = {}
        if request.options.observe == 0:
            if self.registration is not None:
                self.sequence += 1  # a re-registration's answer is a fresh notification
            self.registration = request
            options["observe"] = self.sequence
        if self.max_age is not None:
            options["max_age"] = self.max_age
        return Message(code=Code.CONTENT, options=Options.build(**options), payload=self.body)

    def notify(
        self,
        body: bytes,
        *,
        at: float | None = None,
        mtype: MessageType = CON,
        code: int = Code.CONTENT,
        sequence: int | None = None,
        **options,
    ) -> None:
        pair = self.pair
        assert pair is not None

        def send(now):
            assert self.registration is not None
            if code < 128:
                self.body = body
                self.sequence += 1
                options.setdefault("observe", self.sequence if sequence is None else sequence)
            if self.max_age is not None:
                options.setdefault("max_age", self.max_age)
            note = Message(
                code=code,
                token=self.registration.token,
                options=Options.build(**options),
                payload=body,
            )
            _, output = pair.server.endpoint.send_notification(
                CLIENT, self.registration, note, now, mtype=mtype
            )
            return output.datagrams

        pair.network.call_at(pair.network.now if at is None else at, SERVER, send)


def observe(resource: Observed, **pair_args) -> tuple[Pair, object]:
    pair = Pair(resource, **pair_args)
    resource.pair = pair
    box = pair.start(get("obs", observe=0), keep_open=True)
    pair.network.step()
    return pair, box[0]


def notifications(pair: Pair, handle) -> list[Message]:
    return [
        event.response
        for event in pair.events(handle)
        if isinstance(event, ResponseEvent) and not event.final
    ]


def run_until(pair: Pair, predicate, limit: float = 1000.0) -> None:
    deadline = pair.network.now + limit
    while not predicate():
        assert pair.network.next_event_time() is not None
        assert pair.network.next_event_time() <= deadline, "gave up waiting"
        pair.network.step()


def test_large_registration_response_and_notifications_are_completed():
    versions = [body_of(3000, seed=i) for i in range(3)]
    resource = Observed(versions[0])
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(versions[1])
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    resource.notify(versions[2])
    run_until(pair, lambda: len(notifications(pair, handle)) == 3)
    got = notifications(pair, handle)
    assert [n.payload for n in got] == versions
    assert [n.options.observe for n in got] == [2, 3, 4]
    for n in got:
        assert N.BLOCK2 not in n.options and N.SIZE2 not in n.options
    # The handler ran for the registration only: each rest came from the cache.
    assert resource.runs == 1
    assert pair.blockwise.stats.blocks_served_from_cache == 3 * 2
    # The first block of each notification went out with Observe and Block2.
    firsts = [m for m in pair.sent(SERVER, CLIENT) if N.OBSERVE in m.options]
    assert [m.options.block2 for m in firsts] == [BlockValue(0, True, 6)] * 3
    # The requests for the rest carry no Observe (RFC 7959 §2.6).
    rest = [m for m in pair.client_requests() if N.BLOCK2 in m.options]
    assert all(N.OBSERVE not in m.options for m in rest)
    assert [m.options.block2.num for m in rest] == [1, 2] * 3
    assert handle.open
    # progress is reported on the observation's handle
    assert [(p.done, p.total) for p in pair.progress(handle)] == [(2048, 3000)] * 3


def test_large_notifications_under_loss():
    versions = [body_of(5000, seed=i) for i in range(6)]
    resource = Observed(versions[0])
    pair, handle = observe(resource, seed=31, loss=0.2)
    for i, version in enumerate(versions[1:], start=1):
        resource.notify(version, at=100.0 * i)
    pair.network.run_until(1000.0)
    got = [n.payload for n in notifications(pair, handle)]
    assert got[-1] == versions[-1]
    # every notification the application saw is a whole version, in order (a version
    # can come twice: the answer to a re-registration after Max-Age repeats it)
    indexes = [versions.index(payload) for payload in got]
    assert indexes == sorted(indexes)
    assert pair.network.lost > 0


def test_a_newer_notification_while_fetching_the_rest_wins():
    versions = [body_of(5000, seed=i) for i in range(3)]
    resource = Observed(versions[0])
    pair, handle = observe(resource, conditions=LinkConditions(latency=0.5))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    start = pair.network.now
    resource.notify(versions[1], at=start + 1.0)
    resource.notify(versions[2], at=start + 2.2)  # while the rest of versions[1] is fetched
    pair.network.run_until(start + 30.0)
    assert [n.payload for n in notifications(pair, handle)] == [versions[0], versions[2]]
    assert handle.fetch is None


def test_a_small_notification_while_fetching_the_rest_wins():
    resource = Observed(body_of(5000))
    pair, handle = observe(resource, conditions=LinkConditions(latency=0.5))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    start = pair.network.now
    resource.notify(body_of(5000, seed=1), at=start + 1.0)
    resource.notify(b"small now", at=start + 2.2)
    pair.network.run_until(start + 30.0)
    assert [n.payload for n in notifications(pair, handle)][1:] == [b"small now"]


def test_an_error_notification_while_fetching_ends_the_observation():
    resource = Observed(body_of(5000))
    pair, handle = observe(resource, conditions=LinkConditions(latency=0.5))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    start = pair.network.now
    resource.notify(body_of(5000, seed=1), at=start + 1.0)
    resource.notify(b"gone", at=start + 2.2, code=Code.NOT_FOUND)
    pair.network.run_until(start + 30.0)
    final = pair.final(handle)
    assert final.response.code == Code.NOT_FOUND
    assert not handle.open
    assert handle.fetch is None
    assert len(notifications(pair, handle)) == 1


def test_a_single_block_notification_with_block2_is_delivered_without_it():
    resource = Observed(b"short")
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(b"also short", block2=BlockValue(0, False, 6), size2=10)
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    last = notifications(pair, handle)[-1]
    assert last.payload == b"also short"
    assert N.BLOCK2 not in last.options and N.SIZE2 not in last.options


def test_rest_of_a_notification_that_cannot_be_fetched_is_skipped():
    """All answers to the request for block 1 are lost: that notification is dropped, the
    observation goes on, and the next one is delivered."""
    versions = [body_of(3000, seed=i) for i in range(3)]
    resource = Observed(versions[0], max_age=1000)
    pair, handle = observe(resource, client_config=BlockwiseConfig(block_retries=0))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    sent_so_far = len(pair.network.sent_between(SERVER, CLIENT))
    # the notification itself (1) goes through, the 5 answers to block 1 are lost
    drop = frozenset(range(sent_so_far + 2, sent_so_far + 7))
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=drop))
    resource.notify(versions[1])
    pair.network.run_for(300.0)
    assert len(notifications(pair, handle)) == 1
    assert handle.open and handle.fetch is None
    resource.notify(versions[2])
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    assert notifications(pair, handle)[-1].payload == versions[2]


def test_an_error_answer_while_fetching_the_rest_is_not_a_notification():
    """The server no longer has the representation and its handler fails the block request:
    that notification's rest cannot be had, and a 5.00 is no notification."""
    resource = Observed(body_of(3000))
    pair, handle = observe(resource, server_config=BlockwiseConfig(cache_entries=0))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)

    def broken(node, event, now):
        return Message(code=Code.INTERNAL_SERVER_ERROR)

    pair._app = broken
    resource.notify(body_of(3000, seed=1))
    pair.network.run_for(60.0)
    assert len(notifications(pair, handle)) == 1
    assert handle.open and handle.fetch is None


def test_representation_changing_while_fetching_the_rest_restarts_the_fetch():
    versions = [body_of(3000, seed=i) for i in range(3)]
    resource = Observed(versions[0], max_age=1000)
    # no cache: block requests run the handler, which already has the next version
    pair, handle = observe(resource, server_config=BlockwiseConfig(cache_entries=0))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    start = pair.network.now
    resource.notify(versions[1], at=start + 1.0)

    def change(now):
        resource.body = versions[2]  # changes again before the rest of versions[1] is asked for

    pair.network.call_at(start + 1.001, SERVER, change)
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    assert notifications(pair, handle)[1].payload == versions[2]
    nums = [m.options.block2.num for m in pair.client_requests() if N.BLOCK2 in m.options]
    assert nums == [1, 2, 1, 0, 1, 2]  # versions[0]; versions[1] block 1 changed: from 0 again


def test_cancel_while_fetching_deregisters_and_stops_the_fetch():
    resource = Observed(body_of(5000))
    pair, handle = observe(resource, conditions=LinkConditions(latency=0.5))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    start = pair.network.now
    resource.notify(body_of(5000, seed=1), at=start + 1.0)
    pair.network.run_until(start + 2.0)
    child = handle.fetch
    assert child is not None and child.open

    def cancel(now):
        return pair.client.endpoint.cancel(handle, now).datagrams

    pair.network.call_at(pair.network.now, CLIENT, cancel)
    pair.network.run_for(30.0)
    assert not handle.open and not child.open and handle.fetch is None
    deregistration = [m for m in pair.client_requests() if m.options.observe == 1]
    assert len(deregistration) == 1
    assert deregistration[0].token == handle.token
    assert len(notifications(pair, handle)) == 1


# -- Observe bookkeeping around the blocks ----------------------------------------------------


def test_stale_notifications_are_dropped():
    resource = Observed(b"v0")
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(b"v1", sequence=10)
    resource.notify(b"old", sequence=9, at=pair.network.now + 1.0)
    resource.notify(b"v2", sequence=11, at=pair.network.now + 2.0)
    pair.network.run_for(10.0)
    assert [n.payload for n in notifications(pair, handle)] == [b"v0", b"v1", b"v2"]


def test_reregistration_after_max_age_fetches_a_large_answer_again():
    resource = Observed(body_of(3000), max_age=20)
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    registered_at = pair.network.now
    token = handle.token
    pair.network.run_until(registered_at + 24.0)
    assert len([m for m in pair.client_requests() if m.options.observe == 0]) == 1
    pair.network.run_until(registered_at + 26.0)
    registrations = [m for m in pair.client_requests() if m.options.observe == 0]
    assert len(registrations) == 2
    assert registrations[1].token == token  # the same token (RFC 7641 §3.3.1)
    assert len(notifications(pair, handle)) == 2
    assert notifications(pair, handle)[1].payload == body_of(3000)
    assert resource.runs == 2


def test_reregistration_is_repeated_when_nothing_answers():
    resource = Observed(b"v0", max_age=10)
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    registered_at = pair.network.now
    # from now on the server hears nothing (the re-registrations time out quietly)
    pair.network.set_link(CLIENT, SERVER, LinkConditions(loss=1.0))
    pair.network.run_until(registered_at + 16.0)
    assert handle.reregister_at == pytest.approx(registered_at + 15.0 + 65.0)
    assert pair.client.endpoint.next_deadline() <= handle.reregister_at


def test_a_notification_pushes_the_reregistration_back():
    resource = Observed(b"v0", max_age=10)
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    registered_at = pair.network.now
    resource.notify(b"v1", at=registered_at + 12.0)
    pair.network.run_until(registered_at + 20.0)
    # the first deadline (registered_at + 15) was superseded by the notification's
    assert len([m for m in pair.client_requests() if m.options.observe == 0]) == 1
    pair.network.run_until(registered_at + 28.0)
    assert len([m for m in pair.client_requests() if m.options.observe == 0]) == 2


def test_no_reregistration_when_turned_off():
    resource = Observed(b"v0", max_age=10)
    pair = Pair(resource)
    resource.pair = pair
    client = EndpointNode(Endpoint(rng=random.Random(5), observe_reregister=False))
    pair.client = client
    pair.network.attach(CLIENT, client)
    box = pair.start(get("obs", observe=0), keep_open=True)
    pair.network.run_for(100.0)
    assert [m.options.observe for m in pair.client_requests()] == [0]
    assert box[0].reregister_at is None
    assert client.endpoint.transfers.next_deadline() is None


def test_a_response_without_observe_ends_the_observation():
    def plain(node, event, now):
        return Message(code=Code.CONTENT, payload=b"not observable")

    pair = Pair(plain)
    box = pair.start(get("obs", observe=0), keep_open=True)
    pair.network.step()
    final = pair.wait(box[0])
    assert final.response.payload == b"not observable"
    assert not box[0].open


def test_a_large_response_without_observe_ends_the_observation_after_its_blocks():
    body = body_of(3000)

    def plain(node, event, now):
        return Message(code=Code.CONTENT, payload=body)

    pair = Pair(plain)
    box = pair.start(get("obs", observe=0), keep_open=True)
    pair.network.step()
    final = pair.wait(box[0])
    # block 0 has no Observe: the observation ends there, with what came
    assert final.response.code == Code.CONTENT
    assert not box[0].open


@pytest.mark.parametrize("raw", [b"\x01\x02\x03\x04"], ids=["observe-too-long"])
def test_malformed_observe_ends_the_observation(raw):
    resource = Observed(b"v0")
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)

    def send(now):
        note = Message(
            code=Code.CONTENT,
            token=resource.registration.token,
            options=Options([(N.OBSERVE, raw)]),
            payload=b"odd",
        )
        _, output = pair.server.endpoint.send_separate(CLIENT, note, now, mtype=CON)
        return output.datagrams

    pair.network.call_at(pair.network.now, SERVER, send)
    pair.network.run_for(10.0)
    assert pair.final(handle).response.payload == b"odd"


def test_malformed_max_age_means_the_default():
    resource = Observed(b"v0")
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)

    def send(now):
        note = Message(
            code=Code.CONTENT,
            token=resource.registration.token,
            options=Options([(N.OBSERVE, b"\x09"), (N.MAX_AGE, b"\x01" * 5)]),
            payload=b"v1",
        )
        _, output = pair.server.endpoint.send_separate(CLIENT, note, now, mtype=CON)
        return output.datagrams

    pair.network.call_at(pair.network.now, SERVER, send)
    pair.network.run_for(1.0)
    assert notifications(pair, handle)[-1].payload == b"v1"
    assert handle.reregister_at == pytest.approx(pair.network.now - 1.0 + 0.005 + 65.0, abs=0.1)


def test_shutdown_while_fetching_fails_the_observation_once():
    resource = Observed(body_of(5000))
    pair, handle = observe(resource, conditions=LinkConditions(latency=0.5))
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(body_of(5000, seed=1), at=pair.network.now + 1.0)
    pair.network.run_for(2.0)
    assert handle.fetch is not None
    output = pair.client.endpoint.shutdown(pair.network.now)
    failures = [e for e in output.events if isinstance(e, RequestFailed)]
    assert [f.handle for f in failures] == [handle]
    assert not handle.open and handle.fetch is None


def test_notifications_sent_as_non():
    versions = [body_of(3000, seed=i) for i in range(2)]
    resource = Observed(versions[0])
    pair, handle = observe(resource)
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    resource.notify(versions[1], mtype=NON)
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    assert notifications(pair, handle)[1].payload == versions[1]


def test_observe_fetch_with_a_body_larger_than_a_block():
    """The registration's body goes in Block1 blocks; the answer to the last block is the
    first notification, and only that exchange stays open for the ones to come."""
    query = body_of(3000, seed=9)
    resource = Observed(b"state-0", max_age=1000)
    pair = Pair(resource)
    resource.pair = pair
    box = pair.start(with_body(Code.FETCH, query, "obs", observe=0), keep_open=True)
    pair.network.step()
    handle = box[0]
    run_until(pair, lambda: len(notifications(pair, handle)) == 1)
    assert resource.registration.payload == query
    assert handle.open
    assert pair.client.endpoint.client.open_count == 1  # the blocks' exchanges are closed
    assert [p.done for p in pair.progress(handle)] == [1024, 2048]
    later = body_of(5000, seed=3)
    resource.notify(later)
    run_until(pair, lambda: len(notifications(pair, handle)) == 2)
    assert notifications(pair, handle)[1].payload == later
    assert pair.client.endpoint.client.open_count == 1
    assert resource.runs == 1  # the rest of the notification came from the cache
