"""The sans-I/O pieces of Observe one by one: ordering, the registry, ObserveServer."""

from __future__ import annotations

import random

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, decode
from coapkit.codec.options import Options
from coapkit.errors import RetransmissionsExceeded
from coapkit.exchanges.events import (
    ResponseAcknowledged,
    ResponseDeliveryFailed,
    ResponseRejected,
)
from coapkit.messaging.layer import MessageLayer, MessagingConfig
from coapkit.messaging.records import OutgoingState
from coapkit.observe.ordering import (
    FRESHNESS_WINDOW,
    HALF,
    MAX_SEQUENCE,
    follows,
    is_newer,
    next_sequence,
)
from coapkit.observe.registry import ObserveConfig, ObserveRegistry
from coapkit.observe.server import ObserverRemoved, ObserveServer
from tests.observe.helpers import CON, NON

A = ("192.0.2.1", 5683)
B = ("192.0.2.2", 5683)
KEY = "resource"
OTHER = "other resource"


def get(observe: int | None = 0, token: bytes = b"t1", code: int = Code.GET) -> Message:
    options = Options.build(uri_path=["r"]) if observe is None else Options.build(observe=observe)
    return Message(CON, code, mid=1, token=token, options=options)


CONTENT = Message(code=Code.CONTENT, payload=b"state")


# -- ordering (§3.4, §4.4) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "sequence", "expected"),
    [
        (5, 6, True),
        (5, 5, False),
        (6, 5, False),
        (0, HALF - 1, True),
        (0, HALF, False),  # exactly half way: not newer
        (HALF, 0, False),
        (MAX_SEQUENCE - 1, 0, True),  # across the wrap
        (MAX_SEQUENCE - 1, HALF - 2, True),
        (MAX_SEQUENCE - 1, HALF - 1, False),
        (0, MAX_SEQUENCE - 1, False),
    ],
)
def test_follows(previous: int, sequence: int, expected: bool) -> None:
    assert follows(previous, sequence) is expected
    assert is_newer(previous, 100.0, sequence, 100.0 + FRESHNESS_WINDOW) is expected


def test_after_128_seconds_anything_is_newer() -> None:
    assert not is_newer(10, 0.0, 9, FRESHNESS_WINDOW)
    assert is_newer(10, 0.0, 9, FRESHNESS_WINDOW + 0.001)
    assert is_newer(10, 0.0, 10, 200.0)


def test_next_sequence_wraps() -> None:
    assert next_sequence(7) == 8
    assert next_sequence(MAX_SEQUENCE - 1) == 0


# -- the registry -------------------------------------------------------------------------------


def test_registry_indexes_and_counts() -> None:
    registry = ObserveRegistry()
    first = registry.register(KEY, A, b"1", get(), 0.0)
    second = registry.register(KEY, A, b"2", get(), 0.0)
    third = registry.register(OTHER, B, b"1", get(), 0.0)
    assert first and second and third
    assert len(registry) == 3
    assert registry.count_for(A) == 2 and registry.count_for(B) == 1
    assert registry.observers(KEY) == [first, second]
    assert registry.find(A, b"2") is second and registry.find(B, b"2") is None
    assert repr(first) == f"<Observer 31 from {A!r}>"
    assert registry.remove(first) and not registry.remove(first)
    assert registry.count_for(A) == 1
    assert registry.remove_client(A, b"2") is second
    assert registry.remove_client(A, b"2") is None
    assert registry.count_for(A) == 0 and registry.observers(KEY) == []
    assert registry.remove_key(OTHER) == [third]
    assert len(registry) == 0 and registry._by_remote == {} and registry._by_key == {}


def test_registering_again_with_the_same_token_replaces() -> None:
    registry = ObserveRegistry(ObserveConfig(max_observers=1, max_per_remote=1))
    old = registry.register(KEY, A, b"1", get(), 0.0)
    new = registry.register(KEY, A, b"1", get(), 5.0)  # full, but a renewal fits
    assert old is not None and new is not None
    assert registry.observers(KEY) == [new] and len(registry) == 1
    assert not registry.is_registered(old) and registry.is_registered(new)
    assert registry.register(KEY, A, b"2", get(), 0.0) is None  # per remote
    assert registry.register(KEY, B, b"1", get(), 0.0) is None  # in total


def test_remove_tolerates_an_index_already_gone() -> None:
    registry = ObserveRegistry()
    observer = registry.register(KEY, A, b"1", get(), 0.0)
    assert observer is not None
    del registry._by_key[KEY]
    del registry._by_remote[A]
    assert registry.remove(observer)
    assert len(registry) == 0 and registry._by_remote == {}


def test_sequences_per_key() -> None:
    registry = ObserveRegistry()
    assert registry.current_sequence(KEY) == 2  # 0 and 1 would look like (de)registration
    assert registry.advance(KEY) == 3 and registry.current_sequence(KEY) == 3
    assert registry.current_sequence(OTHER) == 2
    registry.set_sequence(KEY, MAX_SEQUENCE + 5)
    assert registry.current_sequence(KEY) == 5
    registry.set_sequence(KEY, MAX_SEQUENCE - 1)
    assert registry.advance(KEY) == 0
    registry.remove_key(KEY)
    assert registry.current_sequence(KEY) == 2


def test_wants_con() -> None:
    registry = ObserveRegistry(ObserveConfig(con_every=3, con_interval=100.0))
    observer = registry.register(KEY, A, b"1", get(), 0.0)
    assert observer is not None
    assert registry.wants_con(observer, 1.0, True, None)
    assert not registry.wants_con(observer, 1.0, False, None)
    assert not registry.wants_con(observer, 1.0, None, None)
    observer.since_con = 2
    assert registry.wants_con(observer, 1.0, None, None)  # the 3rd
    assert not registry.wants_con(observer, 1.0, None, 5)  # the resource says every 5th
    assert registry.wants_con(observer, 100.0, None, 5)  # but 100 s have passed
    registry.note_sent(observer, False, 1.0)
    assert observer.since_con == 3
    registry.note_sent(observer, True, 2.0)
    assert (observer.since_con, observer.last_con_at) == (0, 2.0)
    plain = ObserveRegistry()
    other = plain.register(KEY, A, b"1", get(), 0.0)
    assert other is not None
    other.since_con = 1000
    assert not plain.wants_con(other, 1.0, None, None)
    assert plain.wants_con(other, 1.0, None, 1)


# -- ObserveServer -------------------------------------------------------------------------------


class Fixture:
    def __init__(self, config: ObserveConfig | None = None, **messaging: object) -> None:
        self.layer = MessageLayer(
            rng=random.Random(0),
            config=MessagingConfig(**messaging),  # type: ignore[arg-type]
        )
        self.observe = ObserveServer(self.layer, ObserveRegistry(config))
        self.out: list[tuple[bytes, object]] = []

    @property
    def registry(self) -> ObserveRegistry:
        return self.observe.registry

    def register(self, remote: object = A, token: bytes = b"t1", key: object = KEY) -> object:
        response = self.observe.on_response(key, get(0, token), remote, CONTENT, 0.0)
        assert response.options.observe is not None
        observer = self.registry.find(remote, token)
        assert observer is not None
        return observer

    def sent(self) -> list[Message]:
        messages = [decode(data) for data, _ in self.out]
        self.out.clear()
        return messages


def test_default_registry() -> None:
    layer = MessageLayer(rng=random.Random(0))
    assert len(ObserveServer(layer).registry) == 0


@pytest.mark.parametrize(
    ("request_", "key", "response"),
    [
        (get(None), KEY, CONTENT),  # no Observe option
        (get(0, code=Code.POST), KEY, CONTENT),  # not GET or FETCH
        (get(5), KEY, CONTENT),  # neither 0 nor 1
        (get(0), None, CONTENT),  # not observable
        (get(0), KEY, Message(code=Code.NOT_FOUND)),  # not a success
        (get(1), KEY, CONTENT),  # deregistration
    ],
)
def test_responses_that_do_not_register(request_: Message, key: object, response: Message) -> None:
    f = Fixture()
    answer = f.observe.on_response(key, request_, A, response, 0.0)
    assert answer is response
    assert len(f.registry) == 0


@pytest.mark.parametrize(
    ("request_", "key", "response"),
    [
        (get(1), KEY, CONTENT),
        (get(0), None, CONTENT),
        (get(0), KEY, Message(code=Code.INTERNAL_SERVER_ERROR)),
    ],
)
def test_responses_that_deregister(request_: Message, key: object, response: Message) -> None:
    f = Fixture()
    f.register()
    assert f.observe.on_response(key, request_, A, response, 1.0).options.observe is None
    assert len(f.registry) == 0


def test_a_full_registry_answers_without_observe() -> None:
    f = Fixture(ObserveConfig(max_observers=1))
    f.register()
    answer = f.observe.on_response(KEY, get(0, b"t2"), A, CONTENT, 0.0)
    assert answer is CONTENT and len(f.registry) == 1


def test_updated_without_observers_does_not_advance() -> None:
    f = Fixture()
    assert f.observe.updated(KEY) == (2, [])
    assert f.observe.updated(KEY) == (2, [])
    observer = f.register()
    assert f.observe.updated(KEY) == (3, [observer])


def test_notify_adds_token_observe_and_type() -> None:
    f = Fixture()
    observer = f.register(token=b"tok")
    f.observe.notify(observer, CONTENT, 3, 1.0, f.out)
    [message] = f.sent()
    assert (message.mtype, message.token, message.options.observe) == (NON, b"tok", 3)
    f.observe.notify(observer, CONTENT, 4, 2.0, f.out, mtype=CON)
    [message] = f.sent()
    assert message.mtype is CON


def test_notify_an_observer_no_longer_registered_sends_nothing() -> None:
    f = Fixture()
    observer = f.register()
    f.registry.remove(observer)
    assert f.observe.notify(observer, CONTENT, 3, 1.0, f.out) == []
    assert f.out == []


def test_an_error_ends_the_observation_even_with_a_con_in_flight() -> None:
    f = Fixture()
    observer = f.register()
    f.observe.notify(observer, CONTENT, 3, 1.0, f.out, mtype=CON)
    gone = Message(code=Code.NOT_FOUND, options=Options.build(observe=9), payload=b"gone")
    [event] = f.observe.notify(observer, gone, 4, 2.0, f.out)
    assert event == ObserverRemoved(observer, "ended with 4.xx")
    [first] = f.sent()
    assert f.layer.backlog(A) == 1  # NSTART: the ending waits for the first CON's ACK
    f.layer.receive(bytes((0x60, 0, first.mid >> 8, first.mid & 0xFF)), A, 2.5, f.out)
    [ending] = f.sent()
    assert (ending.mtype, ending.code, ending.options.observe) == (CON, Code.NOT_FOUND, None)
    assert len(f.registry) == 0
    # the ACK of the earlier CON changes nothing any more
    assert f.observe.on_event(ResponseAcknowledged(observer, A), 3.0, f.out) == []


def test_an_error_that_cannot_be_sent_still_ends_the_observation() -> None:
    f = Fixture(backlog_limit=0)
    observer = f.register()
    f.observe.notify(observer, CONTENT, 3, 1.0, f.out, mtype=CON)  # takes NSTART
    gone = Message(code=Code.SERVICE_UNAVAILABLE)
    assert f.observe.notify(observer, gone, 4, 2.0, f.out) == [
        ObserverRemoved(observer, "ended with 5.xx")
    ]
    assert len(f.registry) == 0


def test_a_notification_that_cannot_be_sent_removes_the_observer() -> None:
    f = Fixture(backlog_limit=0)
    first = f.register(token=b"1")
    second = f.register(token=b"2")
    f.observe.notify(first, CONTENT, 3, 1.0, f.out, mtype=CON)  # takes NSTART towards A
    [event] = f.observe.notify(second, CONTENT, 3, 1.0, f.out)
    assert isinstance(event, ObserverRemoved) and event.observer is second
    assert "notification not sent" in event.reason and "backlog is full" in event.reason
    assert f.registry.find(A, b"2") is None and f.registry.find(A, b"1") is first


def test_the_pending_state_goes_when_the_con_is_acknowledged() -> None:
    f = Fixture()
    observer = f.register()
    f.observe.notify(observer, CONTENT, 3, 1.0, f.out, mtype=CON)
    for sequence in (4, 5, 6):
        f.observe.notify(observer, CONTENT, sequence, 1.5, f.out, mtype=CON)
    [first] = f.sent()
    assert first.options.observe == 3
    assert observer.pending is not None and observer.pending.options.observe == 6
    # the ACK arrives (the message layer would report it; here by hand)
    f.layer.receive(bytes((0x60, 0, first.mid >> 8, first.mid & 0xFF)), A, 2.0, f.out)
    assert f.observe.on_event(ResponseAcknowledged(observer, A), 2.0, f.out) == []
    [second] = f.sent()
    assert second.options.observe == 6 and observer.pending is None
    assert f.observe.on_event(ResponseAcknowledged(observer, A), 3.0, f.out) == []
    assert f.out == []


def test_fate_events_of_an_observer_already_gone() -> None:
    f = Fixture()
    observer = f.register()
    f.registry.remove(observer)
    error = RetransmissionsExceeded("no ACK")
    assert f.observe.on_event(ResponseRejected(observer, A), 1.0, f.out) == []
    assert f.observe.on_event(ResponseDeliveryFailed(observer, A, error), 1.0, f.out) == []


def test_rejected_and_failed_remove() -> None:
    f = Fixture()
    first, second = f.register(token=b"1"), f.register(token=b"2")
    assert f.observe.on_event(ResponseRejected(first, A), 1.0, f.out) == [
        ObserverRemoved(first, "reset by the client")
    ]
    error = RetransmissionsExceeded("no ACK after 5")
    assert f.observe.on_event(ResponseDeliveryFailed(second, A, error), 1.0, f.out) == [
        ObserverRemoved(second, "notification not acknowledged: no ACK after 5")
    ]
    assert len(f.registry) == 0


def test_a_queued_non_is_replaced_not_queued_behind() -> None:
    f = Fixture()
    con_observer = f.register(token=b"c")
    non_observer = f.register(token=b"n")
    f.observe.notify(con_observer, CONTENT, 3, 1.0, f.out, mtype=CON)
    f.observe.notify(non_observer, CONTENT, 3, 1.0, f.out)
    queued = non_observer.in_flight
    assert queued.state is OutgoingState.QUEUED
    f.observe.notify(non_observer, CONTENT, 4, 1.1, f.out)
    assert queued.state is OutgoingState.FAILED
    assert f.layer.backlog(A) == 1 and non_observer.since_con == 1
    assert len(f.sent()) == 1  # only the CON went out


def test_an_older_state_rendered_late_never_replaces_a_newer_one() -> None:
    """Async handlers can finish out of order: state 4's rendering may come after state 5's."""
    f = Fixture()
    observer = f.register()
    state = {n: Message(code=Code.CONTENT, payload=str(n).encode()) for n in range(3, 6)}
    f.observe.notify(observer, state[3], 3, 1.0, f.out, mtype=CON)  # in flight
    f.observe.notify(observer, state[5], 5, 1.1, f.out)
    f.observe.notify(observer, state[4], 4, 1.2, f.out)  # late
    assert observer.pending is not None and observer.pending.payload == b"5"
    [first] = f.sent()
    f.layer.receive(bytes((0x60, 0, first.mid >> 8, first.mid & 0xFF)), A, 2.0, f.out)
    f.observe.on_event(ResponseAcknowledged(observer, A), 2.0, f.out)
    [second] = f.sent()
    assert second.payload == b"5"
    # once 5 has gone, a late 4 is not sent at all (the client would drop it anyway)
    f.observe.notify(observer, state[4], 4, 2.5, f.out)
    assert f.sent() == []


def test_a_state_older_than_the_registration_is_not_sent() -> None:
    f = Fixture()
    f.registry.set_sequence(KEY, 10)
    observer = f.register()  # answered with 10
    f.observe.notify(observer, CONTENT, 9, 1.0, f.out)  # rendering started before it
    assert f.sent() == []
    f.observe.notify(observer, CONTENT, 11, 1.0, f.out)
    assert [m.options.observe for m in f.sent()] == [11]
