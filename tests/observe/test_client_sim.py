"""The client side of Observe (RFC 7641 §3) on the simulated network, in virtual time."""

from __future__ import annotations

from itertools import pairwise

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.errors import (
    BacklogFull,
    NetworkError,
    RequestTimeout,
    ResetByPeer,
    RetransmissionsExceeded,
)
from coapkit.messaging.layer import MessagingConfig
from coapkit.observe.ordering import MAX_SEQUENCE, follows
from coapkit.resources import Site
from coapkit.testing import LinkConditions, SimulatedNetwork
from tests.observe.helpers import (
    ACK,
    CON,
    NON,
    RST,
    SERVER,
    ScriptedServer,
    SimClient,
    SimServer,
    State,
    client_address,
    sent,
)


def setup(
    *, seed: int = 1, conditions: LinkConditions | None = None, **server: object
) -> tuple[SimulatedNetwork, ScriptedServer, SimClient]:
    network = SimulatedNetwork(seed=seed, conditions=conditions)
    return (
        network,
        ScriptedServer(network, **server),  # type: ignore[arg-type]
        SimClient(network, client_address(0)),
    )


def registrations(network: SimulatedNetwork, client: SimClient) -> list[tuple[float, Message]]:
    """The requests the client sent (first transmissions only)."""
    seen: set[int] = set()
    result = []
    for t, m in sent(network, client.address, SERVER):
        if m.code == Code.GET and m.mid not in seen:
            seen.add(m.mid)
            result.append((t, m))
    return result


# -- freshness (§3.4) ---------------------------------------------------------------------------


def test_stale_notifications_are_dropped() -> None:
    network, server, client = setup()
    observation = client.observe()
    for at, sequence in [(1, 12), (2, 11), (3, 13), (4, 13), (5, 5), (6, 14)]:
        server.send(at, sequence, str(sequence).encode())
    network.run_until(10)
    assert observation.sequences == [10, 12, 13, 14]
    assert observation.times == [0.01, 1.005, 3.005, 6.005]
    assert not observation.ended


def test_the_128_second_window() -> None:
    network, server, client = setup(max_age=1000)  # no re-registration meanwhile
    observation = client.observe()  # 10 kept at 0.01
    server.send(100.0, 5, b"old")  # 5 is behind 10, and 128 s have not passed
    server.send(128.0, 6, b"old")  # delivered at 128.005 = 0.01 + 127.995: still not
    server.send(128.01, 7, b"new")  # delivered at 128.015: more than 128 s after 0.01
    server.send(129.0, 6, b"stale again")  # 7 was kept at 128.015
    network.run_until(150)  # (before a re-registration at 193)
    assert observation.sequences == [10, 7]
    assert observation.times == [0.01, 128.015]


def test_the_same_state_is_not_yielded_again_after_128_seconds() -> None:
    """Re-registrations every 65 s are answered with the state the client has (10): never
    yielded again (the 128 s rule of §3.4 would call the one at 130 s newer), but each
    confirms it, so the 128 s count starts again from there."""
    network, server, client = setup()
    observation = client.observe()
    # A restarted server: it sends 9, and from then on answers re-registrations with 9.
    server.send(300.0, 9, b"restarted")
    server.send(500.0, 11, b"news")
    network.run_until(520)
    times = [round(t, 2) for t, _ in registrations(network, client)]
    # (a stale answer does not restart Max-Age: 325.05 + 65, then 390.06 + 65)
    assert times == [0.0, 65.01, 130.02, 195.03, 260.04, 325.05, 390.05, 455.06]
    # 9 at 300 is within 128 s of 10's confirmation at 260.05, so is 9 at 325.06; the
    # answer at 390.06 is not: 9 is taken (§3.4), then 11.
    assert observation.sequences == [10, 9, 11]
    assert observation.times == pytest.approx([0.01, 390.06, 500.005], abs=0.003)


def test_sequence_numbers_wrap_on_the_client() -> None:
    network, server, client = setup(sequence=MAX_SEQUENCE - 2)
    observation = client.observe()
    for at, sequence in enumerate(
        [MAX_SEQUENCE - 1, 0, MAX_SEQUENCE - 1, 1, 2**23 + 1, 2**23 + 2, 2**23]
    ):
        server.send(1 + at, sequence)
    network.run_until(10)
    # from 1, 2**23 + 1 is exactly half way round (not newer), 2**23 + 2 is behind, and
    # 2**23 is 2**23 - 1 ahead: newer
    assert observation.sequences == [MAX_SEQUENCE - 2, MAX_SEQUENCE - 1, 0, 1, 2**23]


def test_never_yielded_twice_under_duplication_and_reordering() -> None:
    """Every datagram duplicated, jitter reorders, and the server sends each state twice."""
    conditions = LinkConditions(latency=0.01, jitter=0.3, duplicate=1.0)
    network, server, client = setup(seed=11, conditions=conditions)
    observation = client.observe()
    for k in range(60):
        server.send(1 + 0.05 * k, 11 + k, b"%d" % k, mtype=CON if k % 3 == 0 else NON, copies=2)
    network.run_until(100)
    sequences = observation.sequences
    assert len(sequences) == len(set(sequences))
    assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]
    assert sequences[-1] == 70
    assert 10 < len(sequences) < 61  # reordering made some stale
    # every CON notification was acknowledged (two per state: the server sent two messages)
    acks = [m for _, m in sent(network, client.address, SERVER) if m.mtype is ACK]
    assert len({m.mid for m in acks}) == 2 * 20


def test_stale_con_notifications_are_still_acknowledged() -> None:
    network, server, client = setup()
    observation = client.observe()
    server.send(1, 12, mtype=CON)
    server.send(2, 11, mtype=CON)
    network.run_until(100)
    assert observation.sequences == [10, 12]
    acks = [(t, m) for t, m in sent(network, client.address, SERVER) if m.mtype is ACK]
    assert [t for t, _ in acks] == [1.005, 2.005]
    # no retransmission: the server's stale CON was acknowledged, not ignored
    assert len([m for _, m in sent(network, SERVER, client.address) if m.mtype is CON]) == 2


# -- re-registration when Max-Age runs out (§3.3.1) ----------------------------------------------


def test_reregistration_after_max_age() -> None:
    network, server, client = setup(max_age=10)
    observation = client.observe()
    server.send(20.0, 11, max_age=10)  # news push the next re-registration back
    network.run_until(60)
    times = [round(t, 3) for t, _ in registrations(network, client)]
    # answer at 0.01 + Max-Age 10 + margin 5; answered again at 15.02 (the same state, 10);
    # the notification at 20.005 moves it to 35.005, answered at 35.015, then 50.015.
    assert times == [0.0, 15.01, 35.005, 50.015]
    requests = [m for _, m in registrations(network, client)]
    assert {m.token for m in requests} == {requests[0].token}
    assert {m.options.observe for m in requests} == {0}
    assert observation.sequences == [10, 11]
    assert not observation.ended


def test_reregistration_uses_the_default_max_age_of_60() -> None:
    network, _, client = setup()
    client.observe()
    network.run_until(140)
    assert [round(t, 3) for t, _ in registrations(network, client)] == [0.0, 65.01, 130.02]


def test_no_reregistration_when_disabled() -> None:
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network, max_age=1)
    client = SimClient(network, client_address(0), observe_reregister=False)
    observation = client.observe()
    network.run_until(300)
    assert [t for t, _ in registrations(network, client)] == [0.0]
    assert not observation.ended


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_vanished_server_ends_the_observation(seed: int) -> None:
    """The re-registration at 15.01 goes unanswered: its retransmissions run their course
    (62 to 93 s) and the observation fails; it is not re-sent meanwhile."""
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network, max_age=10)
    client = SimClient(network, client_address(0), seed=seed)
    observation = client.observe()
    network.run_until(1)
    network.detach(SERVER)
    network.run_until(1000)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert isinstance(failure.error, RetransmissionsExceeded)
    assert 15.01 + 62 <= when <= 15.01 + 93
    assert str(failure.error).startswith(
        f"192.0.2.100:5683 stopped answering the observation: no notification for "
        f"{when - 0.01:.0f} s, and the re-registration sent {when - 15.01:.0f} s ago got no "
        "answer (no acknowledgement from 192.0.2.100:5683 after 5 transmissions)"
    )
    assert [round(t, 2) for t, _ in registrations(network, client)] == [0.0, 15.01]
    assert client.endpoint.client.open_count == 0
    assert client.endpoint.transfers.next_deadline() is None


def test_a_vanished_server_ends_a_non_observation() -> None:
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network, max_age=10)
    client = SimClient(network, client_address(0))
    observation = client.observe(mtype=NON)
    network.run_until(1)
    network.detach(SERVER)
    network.run_until(1000)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert isinstance(failure.error, RequestTimeout)
    assert when == pytest.approx(15.01 + 145)  # NON_LIFETIME after the re-registration
    assert "stopped answering the observation: no notification for 160 s" in str(failure.error)
    assert [round(t, 2) for t, _ in registrations(network, client)] == [0.0, 15.01, 80.01, 145.01]
    assert client.endpoint.client.open_count == 0


# -- a server that stops answering (§3.3.1): the observation fails, within a bound ---------------


@pytest.mark.parametrize("mtype", [CON, NON])
def test_the_timeout_bounds_each_re_registration(mtype: object) -> None:
    """``timeout`` bounds the re-registration like the registration: unanswered for 2 s
    (before a CON's retransmissions give up, 45 s at the earliest), the observation
    fails with a RequestTimeout that says what happened, and leaves nothing behind."""
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network, max_age=10)
    client = SimClient(network, client_address(0))
    observation = client.observe(mtype=mtype, timeout=2.0)  # type: ignore[arg-type]
    network.run_until(1)
    network.detach(SERVER)
    network.run_until(1000)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert when == pytest.approx(15.01 + 2)
    assert type(failure.error) is RequestTimeout
    assert str(failure.error) == (
        "192.0.2.100:5683 stopped answering the observation: no notification for 17 s, and "
        "the re-registration sent 2.0 s ago got no answer "
        "(no response from 192.0.2.100:5683 in time)"
    )
    assert isinstance(failure.error.__cause__, RequestTimeout)
    assert [round(t, 2) for t, _ in registrations(network, client)] == [0.0, 15.01]
    assert max(t for t, _ in sent(network, client.address, SERVER)) < 17.01  # no more
    assert client.endpoint.client.open_count == 0
    assert client.endpoint.client.next_deadline() is None
    assert client.endpoint.transfers.next_deadline() is None
    assert observation.payloads == [b"registered"]


@pytest.mark.parametrize(("mtype", "earliest", "latest"), [(CON, 62, 93), (NON, 145, 145)])
def test_without_max_age_a_vanished_server_is_noticed_after_65_s_and_the_bound(
    mtype: object, earliest: float, latest: float
) -> None:
    """No Max-Age: fresh for 60 s (RFC 7252 §5.10.5), so the re-registration goes at 65.01;
    then a CON fails when its retransmissions give up, a NON after NON_LIFETIME (re-sent
    at 130.01 and 195.01 meanwhile, in case one was lost)."""
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network)
    client = SimClient(network, client_address(0))
    observation = client.observe(mtype=mtype)  # type: ignore[arg-type]
    network.run_until(1)
    network.detach(SERVER)
    network.run_until(2000)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert 65.01 + earliest <= when <= 65.01 + latest + 1e-9
    assert isinstance(failure.error, RequestTimeout)
    assert f"no notification for {when - 0.01:.0f} s" in str(failure.error)
    times = [round(t, 2) for t, _ in registrations(network, client)]
    assert times == ([0.0, 65.01] if mtype is CON else [0.0, 65.01, 130.01, 195.01])
    assert client.endpoint.client.open_count == 0


@pytest.mark.parametrize("mtype", [CON, NON])
def test_a_silent_server_that_still_answers_keeps_the_observation(mtype: object) -> None:
    """No notification for 10 minutes, but every re-registration is answered (with the
    state the client has): the observation goes on, and nothing is yielded again."""
    network, server, client = setup(max_age=10)
    observation = client.observe(mtype=mtype, timeout=2.0)  # type: ignore[arg-type]
    network.run_until(600)
    assert not observation.ended and not observation.failures
    assert observation.sequences == [10]
    times = [t for t, _ in registrations(network, client)]
    assert len(times) == 40 and times[-1] == pytest.approx(39 * 15.01)  # every 15.01 s
    server.send(600.0, 11, b"news")
    network.run_until(601)
    assert observation.payloads == [b"registered", b"news"]


def test_a_lost_non_re_registration_is_sent_again_within_the_bound() -> None:
    """The first NON re-registration (datagram 2 on the link) is lost; the one sent a
    default Max-Age later is answered, within NON_LIFETIME: the observation goes on."""
    network, _, client = setup(max_age=10)
    network.set_link(client.address, SERVER, LinkConditions(drop=frozenset({2})))
    observation = client.observe(mtype=NON)
    network.run_until(200)
    assert not observation.ended and not observation.failures
    times = [round(t, 2) for t, _ in registrations(network, client)]
    assert times[:4] == [0.0, 15.01, 80.01, 95.02]  # (answered at 80.02: Max-Age again)


def test_a_re_registration_answered_without_observe_ends_the_observation_cleanly() -> None:
    """The server restarted and the resource is no longer observable (§3.3.1, §3.6)."""
    network, server, client = setup(max_age=10)
    observation = client.observe()

    def forget(now: float) -> list[tuple[bytes, tuple[str, int]]]:
        server.sequence = None
        return []

    network.call_at(5, SERVER, forget)
    network.run_until(100)
    assert observation.ended and not observation.failures
    assert [(m.options.observe, m.payload) for m in observation.responses] == [
        (10, b"registered"),
        (None, b"registered"),
    ]
    assert [round(t, 2) for t, _ in registrations(network, client)] == [0.0, 15.01]
    assert client.endpoint.client.open_count == 0
    assert client.endpoint.transfers.next_deadline() is None


def test_a_reset_re_registration_fails_the_observation() -> None:
    network, server, client = setup(max_age=10)
    observation = client.observe()

    def refuse(now: float) -> list[tuple[bytes, tuple[str, int]]]:
        server.reject = True
        return []

    network.call_at(5, SERVER, refuse)
    network.run_until(100)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert isinstance(failure.error, ResetByPeer)
    assert when == pytest.approx(15.02)
    assert client.endpoint.client.open_count == 0


@pytest.mark.parametrize("at", [5.0, 15.5])
def test_a_network_error_fails_the_observation_at_once(at: float) -> None:
    """ICMP port unreachable (the transport reports it as a network error), while the
    observation is quiet or while its re-registration (15.01) waits for an answer."""
    network, _, client = setup(max_age=10)
    observation = client.observe()
    network.run_until(1)
    network.detach(SERVER)

    def unreachable(now: float) -> list[tuple[bytes, tuple[str, int]]]:
        error = NetworkError("192.0.2.100:5683: port unreachable")
        return client.node._consume(client.endpoint.network_error(SERVER, error, now), now)

    network.call_at(at, client.address, unreachable)
    network.run_until(1000)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert isinstance(failure.error, NetworkError)
    assert when == at
    assert client.endpoint.client.open_count == 0
    assert client.endpoint.transfers.next_deadline() is None


def test_a_re_registration_that_cannot_be_sent_fails_the_observation() -> None:
    """The backlog towards the server is full when Max-Age passes: the observation fails
    with BacklogFull as an event; nothing raises out of handle_timeout."""
    network = SimulatedNetwork(seed=1)
    ScriptedServer(network, max_age=10)
    client = SimClient(network, client_address(0), messaging=MessagingConfig(backlog_limit=0))
    observation = client.observe()
    network.run_until(1)
    network.detach(SERVER)  # so that the next request stays outstanding (NSTART 1)

    def busy(now: float) -> list[tuple[bytes, tuple[str, int]]]:
        request = Message(CON, Code.GET, options=Options.build(uri_path=["other"]))
        return client.node.request(request, SERVER, now)[1]  # type: ignore[no-any-return]

    network.call_at(10, client.address, busy)
    network.run_until(16)
    [(when, failure)] = [(t, e) for t, e in observation.events if e in observation.failures]
    assert isinstance(failure.error, BacklogFull)
    assert when == pytest.approx(15.01)
    assert client.endpoint.client.open_count == 1  # only the other request
    assert client.endpoint.transfers.next_deadline() is None


@pytest.mark.parametrize(("delay", "mtype"), [(1.0, CON), (0.0, NON)])
def test_an_observation_outlives_its_first_exchange(delay: float, mtype: object) -> None:
    """After an empty ACK (a slow handler) or for a NON registration, the exchange's
    timeout (EXCHANGE_LIFETIME 247 s, NON_LIFETIME 145 s) ends with the first response."""
    network = SimulatedNetwork(seed=1)
    site = Site()
    state = State()
    state.max_age = 100
    site.add("/state", state)
    server = SimServer(network, site, response_delay=delay)
    client = SimClient(network, client_address(0))
    observation = client.observe(mtype=mtype)  # type: ignore[arg-type]
    for k in range(1, 60):
        server.update(state, 10.0 * k)
    network.run_until(600)
    assert not observation.failures and not observation.ended
    assert len(observation.payloads) == 60


# -- the end of an observation ---------------------------------------------------------------


def test_a_notification_without_observe_ends_it() -> None:
    network, server, client = setup()
    observation = client.observe()
    server.send(1, 11, b"one")
    server.send(2, None, b"no longer observable")
    server.send(3, 12, b"too late")
    server.send(4, None, b"a NON response, not a notification")
    network.run_until(10)
    assert observation.payloads == [b"registered", b"one", b"no longer observable"]
    assert observation.ended and not observation.failures
    assert client.endpoint.client.open_count == 0
    # the notification after the end is unknown: the client answers with an RST; an
    # unknown NON response that is not a notification is only dropped
    assert [(t, m.mtype) for t, m in sent(network, client.address, SERVER) if t > 2.5] == [
        (3.005, RST)
    ]


@pytest.mark.parametrize("mtype", [CON, NON])
def test_an_error_notification_ends_it(mtype: object) -> None:
    network, server, client = setup()
    observation = client.observe()
    server.send(1, None, b"gone", code=Code.NOT_FOUND, mtype=mtype)  # type: ignore[arg-type]
    network.run_until(10)
    assert observation.responses[-1].code == Code.NOT_FOUND
    assert observation.ended and client.endpoint.client.open_count == 0


def test_a_first_response_without_observe_is_the_only_one() -> None:
    network, _, client = setup(sequence=None)
    observation = client.observe()
    network.run_until(100)
    assert observation.payloads == [b"registered"]
    assert observation.ended
    assert [t for t, _ in registrations(network, client)] == [0.0]  # no re-registration


def test_a_reset_registration_fails() -> None:
    network, _, client = setup(reject=True)
    observation = client.observe()
    network.run_until(10)
    [failure] = observation.failures
    assert isinstance(failure.error, ResetByPeer)
    assert observation.responses == []


# -- cancelling --------------------------------------------------------------------------------


def test_cancel_sends_observe_1_with_the_same_token_and_frees_it() -> None:
    network = SimulatedNetwork(seed=1)
    site = Site()
    state = State()
    site.add("/state", state)
    server = SimServer(network, site)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    network.run_until(1)
    assert observation.transfer is not None
    token = observation.transfer.token
    client.cancel(observation, 2)
    network.run_until(2.002)
    assert client.endpoint.client.open_count == 1  # the deregistration, same token
    network.run_until(3)
    [first, last] = registrations(network, client)
    assert (first[1].options.observe, last[1].options.observe) == (0, 1)
    assert first[1].token == last[1].token == token
    assert last[0] == 2
    assert len(server.registry) == 0
    assert client.endpoint.client.open_count == 0
    assert client.endpoint.transfers.next_deadline() is None  # no re-registration timer
    # the token is free again
    again = Message(CON, Code.GET, options=Options.build(uri_path=["state"]))
    transfer, _ = client.endpoint.request(again, SERVER, 3.0, token=token)
    assert transfer.token == token
    # a second cancel does nothing
    assert client.endpoint.cancel(observation.transfer, 3.0).datagrams == []


@pytest.mark.parametrize("mtype", [NON, CON])
def test_a_notification_crossing_the_deregistration_is_reset(mtype: object) -> None:
    """The deregistration (NON here) is lost, or (CON) still on its way: the next
    notification must not be taken as its answer and acknowledged, but reset."""
    network = SimulatedNetwork(seed=1)
    site = Site()
    state = State(notification_type=CON)
    site.add("/state", state)
    server = SimServer(network, site)
    client = SimClient(network, client_address(0))
    if mtype is NON:
        network.set_link(client.address, SERVER, LinkConditions(drop=frozenset({2})))
    else:
        network.set_link(client.address, SERVER, LinkConditions(latency=0.5))
    observation = client.observe(mtype=mtype)  # type: ignore[arg-type]
    client.cancel(observation, 2)
    server.update(state, 2.1)
    network.run_until(10)
    assert len(server.registry) == 0  # (for NON: only the RST told the server)
    replies = [m.mtype for t, m in sent(network, client.address, SERVER) if t > 2 and m.code == 0]
    assert replies == [RST]
    assert client.endpoint.client.open_count == (1 if mtype is NON else 0)
    network.run_until(200)
    assert client.endpoint.client.open_count == 0  # the lost NON deregistration times out


def test_cancel_before_the_first_response_resets_the_first_notification() -> None:
    network = SimulatedNetwork(seed=1)
    site = Site()
    state = State()
    site.add("/state", state)
    server = SimServer(network, site, response_delay=1.0)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    client.cancel(observation, 0.5)  # nothing registered yet: no deregistration to send
    network.run_until(10)
    assert [m.options.observe for _, m in registrations(network, client)] == [0]
    assert [m.mtype for _, m in sent(network, client.address, SERVER)][-1] is RST
    assert len(server.registry) == 0
    assert observation.responses == []


# -- block-wise notifications (RFC 7959 §2.6) ----------------------------------------------------


def test_a_newer_notification_replaces_one_being_completed() -> None:
    """The body of 11 is still being fetched (slow link) when 12 arrives: 12 wins."""
    network = SimulatedNetwork(seed=1, conditions=LinkConditions(latency=0.5))
    site = Site()
    state = State()
    bodies = {v: bytes((v * 7 + i) % 256 for i in range(3000)) for v in range(3)}
    state.body = bodies[0]
    site.add("/state", state)
    server = SimServer(network, site)
    client = SimClient(network, client_address(0))
    observation = client.observe()

    def change(value: int):  # type: ignore[no-untyped-def]
        def action(now: float) -> object:
            state.value = value
            state.body = bodies[value]
            return server.notify_now(state, now)

        return action

    network.call_at(10.0, SERVER, change(1))
    network.call_at(11.2, SERVER, change(2))  # while block 1 of state 1 is on its way
    network.run_until(30)
    assert observation.payloads == [bodies[0], bodies[2]]
    assert observation.sequences == [2, 4]
    assert not observation.ended and len(server.registry) == 1
