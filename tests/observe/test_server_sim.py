"""The server side of Observe (RFC 7641 §3-§4) on the simulated network, in virtual time."""

from __future__ import annotations

import errno
from itertools import pairwise

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import decode
from coapkit.errors import NetworkError
from coapkit.observe.ordering import follows
from coapkit.observe.registry import ObserveConfig, ObserveRegistry
from coapkit.observe.server import ObserverRemoved
from coapkit.resources import Site
from coapkit.testing import LinkConditions, SimulatedNetwork
from tests.observe.helpers import (
    CON,
    NON,
    RST,
    SERVER,
    SimClient,
    SimServer,
    State,
    client_address,
    notifications,
    sent,
)

HOUR = 3600.0


def make(
    *,
    seed: int = 1,
    conditions: LinkConditions | None = None,
    config: ObserveConfig | None = None,
    **attrs: object,
) -> tuple[SimulatedNetwork, State, SimServer]:
    network = SimulatedNetwork(seed=seed, conditions=conditions, keep_trace=True)
    site = Site()
    state = State(**attrs)
    site.add("/state", state)
    server = SimServer(network, site, observers=ObserveRegistry(config))
    return network, state, server


def assert_freed(server: SimServer, client: SimClient, state: State) -> None:
    """No observer, no per-remote count, nothing in flight towards the client."""
    registry = server.registry
    assert len(registry) == 0
    assert registry.count_for(client.address) == 0
    assert registry.observers(state) == []
    assert registry._by_key == {} and registry._by_client == {} and registry._by_remote == {}
    assert server.endpoint.messaging.outstanding(client.address) == 0
    assert server.endpoint.messaging.backlog(client.address) == 0


# -- registration and notifications ---------------------------------------------------------


def test_registration_and_notifications_share_the_token_and_count_up() -> None:
    network, state, server = make()
    client = SimClient(network, client_address(0))
    observation = client.observe()
    for t in (1, 2, 3):
        server.update(state, t)
    network.run_until(10)
    assert observation.payloads == [b"0", b"1", b"2", b"3"]
    assert observation.sequences == [2, 3, 4, 5]
    assert not observation.ended
    assert len(server.registry) == 1
    [observer] = server.registry.observers(state)
    assert observation.transfer is not None
    sent_notifications = notifications(network, SERVER, client.address)
    assert [m.mtype for _, m in sent_notifications] == [NON, NON, NON]
    assert {m.token for _, m in sent_notifications} == {observer.token}
    assert observer.token == observation.transfer.token


def test_fetch_registers_too() -> None:
    network, state, server = make()
    client = SimClient(network, client_address(0))
    observation = client.observe(method=Code.FETCH, payload=b"{}", content_format=50)
    server.update(state, 1)
    network.run_until(5)
    assert observation.payloads == [b"0", b"1"]
    assert server.registry.observers(state)[0].request.code == Code.FETCH


@pytest.mark.parametrize(
    ("path", "method", "code"),
    [
        ("nowhere", Code.GET, Code.NOT_FOUND),  # an error response does not register
        ("plain", Code.GET, Code.CONTENT),  # a resource that is not observable
        ("state", Code.POST, Code.METHOD_NOT_ALLOWED),  # Observe means nothing on POST
    ],
)
def test_no_registration_means_a_plain_final_response(path: str, method: int, code: int) -> None:
    network, _, server = make()
    server.site.route("/plain")(lambda request: "plain")
    client = SimClient(network, client_address(0))
    observation = client.observe(path, method=method)
    network.run_until(5)
    [response] = observation.responses
    assert response.code == code
    assert response.options.observe is None
    assert observation.ended
    assert len(server.registry) == 0


def test_many_observers_under_loss_duplication_and_reordering() -> None:
    """50 observers, 20 % loss and 10 % duplication each way, jitter 8x the update interval."""
    conditions = LinkConditions(latency=0.05, jitter=0.4, loss=0.2, duplicate=0.1)
    network, state, server = make(seed=7, conditions=conditions, con_every=4)
    state.max_age = 3600  # no re-registration brings a removed observer back
    clients = [SimClient(network, client_address(i), seed=i + 1) for i in range(50)]
    observations = [c.observe(at=0.01 * i) for i, c in enumerate(clients)]
    for k in range(100):
        server.update(state, 5 + 0.05 * k)
    # The last state goes as CON: every observer still registered must end up with it.

    def last_state_as_con(now: float) -> object:
        state.notification_type = CON
        state.value += 1
        return server.notify_now(state, now)

    network.call_at(15.0, SERVER, last_state_as_con)
    network.run_until(400)

    final = str(state.value).encode()
    removed = {e.observer.remote for e in server.events_of(ObserverRemoved)}
    assert len(server.registry) + len(removed) == 50
    assert len(server.registry) >= 40
    reordered = 0
    for client, observation in zip(clients, observations, strict=True):
        sequences = observation.sequences
        assert all(s is not None for s in sequences)
        # in order and never twice: each yielded number follows the one before
        assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]
        # the payload is the state of that number
        assert [int(p) for p in observation.payloads] == [s - 2 for s in sequences]  # type: ignore[operator]
        assert not observation.failures
        if client.address not in removed:
            assert observation.payloads[-1] == final
        delivered = [
            decode(e.data).options.observe
            for e in network.trace
            if e.event == "delivered" and e.src == SERVER and e.dst == client.address
        ]
        delivered = [s for s in delivered if s is not None]
        reordered += sum(1 for a, b in pairwise(delivered) if b < a)
    assert reordered > 0  # the jitter did reorder notifications, and they were dropped
    assert network.lost > 0


def test_sequence_numbers_wrap_at_2_24() -> None:
    network, state, server = make()
    server.registry.set_sequence(state, 2**24 - 3)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    for t in range(1, 6):
        server.update(state, t)
    network.run_until(10)
    assert observation.sequences == [2**24 - 3, 2**24 - 2, 2**24 - 1, 0, 1, 2]
    assert observation.payloads == [b"0", b"1", b"2", b"3", b"4", b"5"]


def test_wrap_under_reordering_never_goes_back() -> None:
    conditions = LinkConditions(latency=0.01, jitter=1.0)
    network, state, server = make(seed=3, conditions=conditions)
    server.registry.set_sequence(state, 2**24 - 10)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    for k in range(20):
        server.update(state, 2 + 0.1 * k)
    network.run_until(20)
    sequences = observation.sequences
    assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]
    assert len(sequences) < 21  # some arrived late and were dropped
    assert sequences[-1] == (2**24 - 10 + 20) % 2**24


# -- every way an observation ends frees the server's state ----------------------------------


def test_deregistration_with_observe_1() -> None:
    network, state, server = make()
    client = SimClient(network, client_address(0))
    observation = client.observe()
    server.update(state, 1)
    client.cancel(observation, 2)
    server.update(state, 3)
    network.run_until(10)
    assert_freed(server, client, state)
    assert observation.payloads == [b"0", b"1"]
    deregistration = [m for _, m in sent(network, client.address, SERVER) if m.code == Code.GET]
    assert [m.options.observe for m in deregistration] == [0, 1]
    assert observation.transfer is not None
    assert deregistration[1].token == deregistration[0].token
    # nothing is sent to the client after the deregistration
    assert [t for t, _ in notifications(network, SERVER, client.address)] == [1]


@pytest.mark.parametrize("mtype", [NON, CON])
def test_rst_to_a_notification_removes_the_observer(mtype: object) -> None:
    """The client forgot the observation (here: restarted); its RST ends it (§3.6)."""
    network, state, server = make(notification_type=mtype)
    client = SimClient(network, client_address(0))
    client.observe()
    network.run_until(1)
    assert len(server.registry) == 1
    network.detach(client.address)
    restarted = SimClient(network, client.address, seed=99)
    server.update(state, 2)
    network.run_until(10)
    assert [m.mtype for t, m in sent(network, restarted.address, SERVER) if t > 1] == [RST]
    assert_freed(server, restarted, state)
    [removed] = server.events_of(ObserverRemoved)
    assert removed.reason == "reset by the client"


def test_con_notification_timeout_removes_the_observer() -> None:
    network, state, server = make(notification_type=CON)
    client = SimClient(network, client_address(0))
    client.observe()
    network.run_until(1)
    network.detach(client.address)  # gone without a word
    server.update(state, 10)
    network.run_until(200)
    assert_freed(server, client, state)
    [(when, removed)] = [(t, e) for t, e in server.node.events if isinstance(e, ObserverRemoved)]
    assert "not acknowledged" in removed.reason
    # ACK_TIMEOUT 2 s, random factor 1.5, MAX_RETRANSMIT 4: gives up 62 to 93 s after sending
    assert 10 + 62 <= when <= 10 + 93
    assert len(notifications(network, SERVER, client.address)) == 5  # 1 + 4 retransmissions


@pytest.mark.parametrize("restart", [False, True])
def test_a_separate_registration_response_is_a_notification_too(restart: bool) -> None:
    """A slow handler: empty ACK, then the response as a CON (§3.2: the first notification).
    The client is gone (or restarted) by then: no ACK (or an RST) removes the observer."""
    network = SimulatedNetwork(seed=1)
    site = Site()
    state = State()
    site.add("/state", state)
    server = SimServer(network, site, response_delay=1.0)
    client = SimClient(network, client_address(0))
    client.observe()
    network.run_until(0.5)
    network.detach(client.address)
    if restart:
        SimClient(network, client.address, seed=99)
    network.run_until(1.007)  # rendered, registered and sent at 1.005
    assert len(server.registry) == 1
    network.run_until(200)
    (_, response), *_ = notifications(network, SERVER, client.address)
    assert (response.mtype, response.options.observe) == (CON, 2)
    assert_freed(server, client, state)
    [removed] = server.events_of(ObserverRemoved)
    assert removed.reason.startswith("reset" if restart else "notification not acknowledged")


def test_notifications_wait_for_the_separate_registration_response() -> None:
    network = SimulatedNetwork(seed=1, conditions=LinkConditions(latency=0.3))
    site = Site()
    state = State()
    site.add("/state", state)
    server = SimServer(network, site, response_delay=1.0)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    server.update(state, 1.5)  # while the registration response is on its way
    network.run_until(10)
    assert observation.payloads == [b"0", b"1"]
    times = [t for t, _ in notifications(network, SERVER, client.address)]
    assert times[1] >= times[0] + 0.6  # after the ACK of the first came back


def test_vanished_observer_of_non_notifications_goes_at_the_next_con() -> None:
    network, state, server = make(config=ObserveConfig(con_every=3))
    client = SimClient(network, client_address(0))
    client.observe()
    network.run_until(1)
    network.detach(client.address)
    for t in (2, 3, 4):
        server.update(state, t)
    network.run_until(3.5)
    assert len(server.registry) == 1  # NONs go unanswered; nothing is known yet
    network.run_until(200)
    assert_freed(server, client, state)
    assert [m.mtype for _, m in notifications(network, SERVER, client.address)] == [
        NON,
        NON,
        CON,
        CON,
        CON,
        CON,
        CON,
    ]


def test_an_unreachable_client_loses_every_observation_at_once() -> None:
    """An ICMP error (port unreachable) for a client ends all its observations (§4.5),
    whichever notification drew it, and nobody else's."""
    network, state, server = make()
    gone = SimClient(network, client_address(0))
    stays = SimClient(network, client_address(1))
    gone.observe()
    gone.observe(at=0.1)  # a second observation (another token) of the same client
    kept = stays.observe()
    network.run_until(1)
    assert server.registry.count_for(gone.address) == 2
    error = NetworkError("port unreachable", errno=errno.ECONNREFUSED)
    output = server.endpoint.network_error(gone.address, error, network.now)
    removed = [e for e in output.events if isinstance(e, ObserverRemoved)]
    assert len(removed) == 2 and {e.observer.remote for e in removed} == {gone.address}
    assert all("unreachable" in e.reason for e in removed)
    assert server.registry.count_for(gone.address) == 0
    server.update(state, 2)
    network.run_until(3)
    assert notifications(network, SERVER, gone.address) == []
    assert len(kept.payloads) == 2 and len(server.registry) == 1


def test_a_silently_vanished_observer_goes_within_the_documented_bound() -> None:
    """No ICMP error, no RST (a host unplugged): at one notification a second, the next
    CON notification (con_interval, 30 s) times out after MAX_TRANSMIT_WAIT (93 s at
    most) and the observer is removed: no notifications to it after 10 + 30 + 93 s."""
    network, state, server = make()
    gone = SimClient(network, client_address(0))
    stays = SimClient(network, client_address(1))
    gone.observe()
    kept = stays.observe()
    for second in range(1, 301):
        server.update(state, float(second))
    network.call_at(10.0, gone.address, lambda now: network.detach(gone.address) or [])
    network.run_until(10 + 30 + 93 + 1)
    assert server.registry.count_for(gone.address) == 0
    last = max(t for t, _ in notifications(network, SERVER, gone.address))
    network.run_until(301)
    assert max(t for t, _ in notifications(network, SERVER, gone.address)) == last
    assert len(kept.payloads) == 301  # the live observer got every state, CONs included
    assert server.registry.count_for(stays.address) == 1


@pytest.mark.parametrize("code", [Code.SERVICE_UNAVAILABLE, Code.NOT_FOUND, Code.FORBIDDEN])
def test_error_response_ends_the_observation(code: int) -> None:
    network, state, server = make()
    client = SimClient(network, client_address(0))
    observation = client.observe()
    server.update(state, 1)

    def fail(now: float) -> object:
        state.code = code
        return server.notify_now(state, now)

    network.call_at(2, SERVER, fail)
    network.run_until(10)
    assert_freed(server, client, state)
    ending = observation.responses[-1]
    assert ending.code == code and ending.options.observe is None
    assert observation.ended and observation.transfer is not None
    assert not observation.transfer.open
    [(_, last)] = notifications(network, SERVER, client.address)[-1:]
    assert last.mtype is CON  # the end of an observation is confirmed


def test_deleted_resource_sends_4_04_to_every_observer() -> None:
    """What the Server does when a handler removes the resource and calls updated()."""
    network, state, server = make()
    clients = [SimClient(network, client_address(i), seed=i + 1) for i in range(3)]
    observations = [c.observe() for c in clients]
    network.run_until(1)
    assert len(server.registry) == 3

    def delete(now: float) -> object:
        server.site.remove("/state")
        return server.notify_now(state, now)

    network.call_at(2, SERVER, delete)
    network.run_until(10)
    for client, observation in zip(clients, observations, strict=True):
        assert observation.responses[-1].code == Code.NOT_FOUND
        assert observation.ended
        assert server.registry.count_for(client.address) == 0
    assert len(server.registry) == 0 and server.registry._by_key == {}


def test_reregistration_with_the_same_token_replaces_the_entry() -> None:
    """Max-Age 5 and no news: the client registers again (same token) every ~10 s."""
    network, state, server = make()
    state.max_age = 5
    client = SimClient(network, client_address(0))
    observation = client.observe()
    counts: list[int] = []
    for k in range(60):
        network.call_at(0.5 * k + 0.25, SERVER, lambda now: counts.append(len(server.registry)))
    network.run_until(31)
    registrations = [m for _, m in sent(network, client.address, SERVER) if m.code == Code.GET]
    assert len(registrations) >= 3
    assert {m.token for m in registrations} == {registrations[0].token}
    assert {m.options.observe for m in registrations} == {0}
    assert set(counts[1:]) == {1}
    assert observation.payloads == [b"0"]  # the same state is not yielded again


# -- caps --------------------------------------------------------------------------------------


def test_caps_answer_without_observe() -> None:
    network, state, server = make(config=ObserveConfig(max_observers=3, max_per_remote=2))
    a = SimClient(network, client_address(0), seed=1)
    b = SimClient(network, client_address(1), seed=2)
    c = SimClient(network, client_address(2), seed=3)
    a1, a2, a3 = a.observe(at=0.0), a.observe(at=0.1), a.observe(at=0.2)
    b1 = b.observe(at=0.3)
    c1 = c.observe(at=0.4)
    network.run_until(1)
    assert [o.sequences for o in (a1, a2, a3, b1, c1)] == [[2], [2], [None], [2], [None]]
    assert a3.ended and c1.ended and not a1.ended
    assert a3.responses[0].code == Code.CONTENT and a3.payloads == [b"0"]
    assert len(server.registry) == 3
    assert server.registry.count_for(a.address) == 2
    # one leaves, another fits
    a.cancel(a1, 2)
    c2 = c.observe(at=3)
    server.update(state, 4)
    network.run_until(5)
    assert c2.sequences == [2, 3] and c2.payloads == [b"0", b"1"]
    assert len(server.registry) == 3


# -- CON or NON -----------------------------------------------------------------------------


def types_of(network: SimulatedNetwork, client: SimClient) -> list[object]:
    return [m.mtype for _, m in notifications(network, SERVER, client.address)]


@pytest.mark.parametrize(
    ("config", "attrs", "expected"),
    [
        (ObserveConfig(), {}, "NNNNNNNNN"),
        (ObserveConfig(con_every=3), {}, "NNCNNCNNC"),
        (ObserveConfig(con_every=3), {"con_every": 2}, "NCNCNCNCN"),
        (ObserveConfig(con_every=3), {"notification_type": NON}, "NNCNNCNNC"),
        (ObserveConfig(), {"notification_type": CON}, "CCCCCCCCC"),
        (ObserveConfig(con_every=1), {}, "CCCCCCCCC"),
    ],
)
def test_con_every_nth(config: ObserveConfig, attrs: dict[str, object], expected: str) -> None:
    network, state, server = make(config=config, **attrs)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    for k in range(9):
        server.update(state, 1 + k)
    network.run_until(20)
    assert "".join("C" if t is CON else "N" for t in types_of(network, client)) == expected
    assert len(observation.payloads) == 10
    # every CON notification was acknowledged by the client
    acks = [m for _, m in sent(network, client.address, SERVER) if m.mtype.name == "ACK"]
    assert len(acks) == expected.count("C")


def test_a_con_at_least_every_24_hours() -> None:
    network, state, server = make(config=ObserveConfig(con_interval=24 * HOUR))
    state.max_age = 2 * 3600  # no re-registrations in between
    client = SimClient(network, client_address(0))
    observation = client.observe()
    for hour in range(1, 74):
        server.update(state, hour * HOUR)
    network.run_until(75 * HOUR)
    sent_notifications = notifications(network, SERVER, client.address)
    last_con = observation.times[0]  # the registration
    for t, m in sent_notifications:
        assert t - last_con <= 24 * HOUR or m.mtype is CON  # never NONs only for over 24 h
        if m.mtype is CON:
            assert t - last_con >= 24 * HOUR  # and no CON sooner than needed
            last_con = t
    # registered at 5 ms: the NON at 24 h is still within 24 h of it, the one at 25 h is not
    assert [t for t, m in sent_notifications if m.mtype is CON] == [25 * HOUR, 49 * HOUR, 73 * HOUR]
    assert len(observation.payloads) == 74


# -- congestion: the newest state replaces the one waiting (§4.5.2) --------------------------


def test_newest_state_replaces_the_pending_one_on_a_slow_link() -> None:
    network, state, server = make(conditions=LinkConditions(latency=1.0), notification_type=CON)
    client = SimClient(network, client_address(0))
    observation = client.observe()
    samples: list[tuple[int, int, bool]] = []

    def probe(now: float) -> None:
        messaging = server.endpoint.messaging
        observers = server.registry.observers(state)
        samples.append(
            (
                messaging.outstanding(client.address),
                messaging.backlog(client.address),
                all(o.pending is None or o.pending.options.observe is not None for o in observers),
            )
        )

    for k in range(200):
        server.update(state, 3 + 0.05 * k)
        network.call_at(3.025 + 0.05 * k, SERVER, probe)
    network.run_until(40)
    assert max(s[0] for s in samples) <= 1 and max(s[1] for s in samples) == 0
    assert all(s[2] for s in samples)
    sent_count = len(notifications(network, SERVER, client.address))
    assert sent_count <= 10  # one per round trip (2 s) over 10 s, not 200
    assert observation.payloads[-1] == b"200"
    sequences = observation.sequences
    assert all(follows(a, b) for a, b in pairwise(sequences))  # type: ignore[arg-type]


def test_several_observations_of_one_client_never_queue_up() -> None:
    """NSTART=1 towards one client: each observation still has at most one message waiting."""
    network = SimulatedNetwork(seed=5, conditions=LinkConditions(latency=1.0))
    site = Site()
    resources = [State(notification_type=CON if i == 0 else None) for i in range(3)]
    for i, resource in enumerate(resources):
        site.add(f"/r{i}", resource)
    server = SimServer(network, site)
    client = SimClient(network, client_address(0))
    observations = [client.observe(f"r{i}", at=0.1 * i) for i in range(3)]
    backlog: list[int] = []
    for k in range(100):
        for resource in resources:
            server.update(resource, 5 + 0.05 * k)
        network.call_at(
            5.01 + 0.05 * k,
            SERVER,
            lambda now: backlog.append(server.endpoint.messaging.backlog(client.address)),
        )
    network.run_until(60)
    assert max(backlog) <= len(resources)
    for observation in observations:
        assert observation.payloads[-1] == b"100"


# -- block-wise notifications (RFC 7959 §2.6) ----------------------------------------------


def test_large_notifications_go_as_first_block_and_the_client_completes_them() -> None:
    network, state, server = make()
    bodies = {v: bytes((v + i) % 251 for i in range(2500)) for v in range(4)}
    state.body = bodies[0]

    def change(value: int):
        def action(now: float) -> object:
            state.value = value
            state.body = bodies[value]
            return server.notify_now(state, now)

        return action

    client = SimClient(network, client_address(0))
    observation = client.observe()
    for v in (1, 2, 3):
        network.call_at(float(v), SERVER, change(v))
    network.run_until(10)
    assert observation.payloads == [bodies[v] for v in range(4)]
    assert all(
        m.options.block2 is None and m.options.observe is not None for m in observation.responses
    )
    from_server = [m for _, m in sent(network, SERVER, client.address) if m.code == Code.CONTENT]
    firsts = [m for m in from_server if m.options.block2.num == 0]
    laters = [m for m in from_server if m.options.block2.num > 0]
    assert len(firsts) == 4 and len(laters) == 8
    assert all(m.options.observe is not None for m in firsts)
    # later blocks answer plain GETs: they carry no Observe (RFC 7959 §2.6)
    assert all(m.options.observe is None for m in laters)
    assert len(server.registry) == 1


@pytest.mark.parametrize("seed", range(20))
def test_invariants_under_30_percent_loss(seed: int) -> None:
    """Mixed CON/NON registrations, several observations per client, cancels, short
    Max-Age, 30 % loss, 20 % duplication and heavy reordering; then a last CON state."""
    conditions = LinkConditions(latency=0.05, jitter=0.6, loss=0.3, duplicate=0.2)
    network, state, server = make(
        seed=seed, conditions=conditions, config=ObserveConfig(max_per_remote=3), con_every=3
    )
    state.max_age = 3 + seed % 5
    clients = [SimClient(network, client_address(i), seed=seed * 100 + i) for i in range(10)]
    observations = [
        c.observe(at=0.01 * i, mtype=NON if (i + seed) % 3 == 0 else CON)
        for i, c in enumerate(clients)
    ]
    extra = [clients[0].observe(at=0.5 + 0.1 * k) for k in range(3)]  # one over the cap
    for k in range(150):
        server.update(state, 2 + 0.07 * k)
    for i in (1, 2):
        clients[i].cancel(observations[i], 5 + i)

    def last_state_as_con(now: float) -> object:
        state.notification_type = CON
        state.value += 1
        return server.notify_now(state, now)

    network.call_at(20, SERVER, last_state_as_con)
    network.run_until(400)

    registry = server.registry
    assert sum(len(v) for v in registry._by_key.values()) == len(registry)
    assert sum(len(v) for v in registry._by_remote.values()) == len(registry)
    assert registry.count_for(clients[0].address) <= 3
    assert all(o.pending is None for o in registry.observers(state))
    for i in (1, 2):
        assert registry.count_for(clients[i].address) == 0  # cancelled: freed
    final = str(state.value).encode()
    owners = [*clients, clients[0], clients[0], clients[0]]
    for owner, observation in zip(owners, [*observations, *extra], strict=True):
        sequences = [s for s in observation.sequences if s is not None]
        assert all(follows(a, b) for a, b in pairwise(sequences))  # in order, never twice
        transfer = observation.transfer
        assert transfer is not None
        if transfer.open and registry.find(owner.address, transfer.token) is not None:
            assert observation.payloads[-1] == final
