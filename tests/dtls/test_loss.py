"""DTLS handshakes under 30 % loss on the simulator, the retransmission timer on the virtual
clock: RFC 6347 §4.2.4.1's 1 s, doubling, at exact deadlines; a lost last flight is sent
again when the peer repeats its own."""

from __future__ import annotations

import itertools

import pytest

from coapkit import Response, Site
from coapkit.dtls import SessionEstablished
from coapkit.exchanges.events import ResponseEvent
from coapkit.testing import LinkConditions, VirtualNetwork, run
from tests.dtls.conftest import require_pyopenssl
from tests.dtls.helpers import CLIENT, PSK_TABLE, SERVER, Pair

SEEDS = 200
LOSSY = LinkConditions(latency=0.02, loss=0.3)


@pytest.fixture(autouse=True)
def dtls_available() -> None:
    require_pyopenssl()


def identical_runs(datagrams: list[tuple[float, bytes]]) -> list[list[float]]:
    """The send times of each run of one datagram sent again and again, in order."""
    runs: list[list[float]] = []
    previous = None
    for time, data in datagrams:
        if data == previous:
            runs[-1].append(time)
        else:
            runs.append([time])
        previous = data
    return runs


def test_handshakes_complete_under_30_percent_loss_at_exact_deadlines() -> None:
    established = answered = retransmissions = 0
    failures = []
    for seed in range(SEEDS):
        pair = Pair(seed=seed, conditions=LOSSY)
        event = pair.outcome(pair.get(), limit=400.0)
        made = [t for t, e in pair.client.events if isinstance(e, SessionEstablished)]
        if made:
            established += 1
        else:
            failures.append((seed, str(event.error)))
        if isinstance(event, ResponseEvent):
            answered += 1
            assert event.response.payload == b"hello dev1"
        # Every flight the client sent again went 1 s, 2 s, 4 s... after the copy before
        # it, exactly, on the network's (virtual) clock.
        sent = [(entry.time, entry.data) for entry in pair.sent(CLIENT, SERVER)]
        handshake = [(t, d) for t, d in sent if not made or t <= made[0]]
        for times in identical_runs(handshake):
            gaps = [round(b - a, 9) for a, b in itertools.pairwise(times)]
            assert gaps == [2.0**n for n in range(len(gaps))], (seed, gaps)
            retransmissions += len(gaps)
    # With 30 % loss each way a round trip succeeds half the time and a handshake needs
    # three (the cookie, then two flights each way); in 60 s a flight goes 6 times.
    assert established >= SEEDS * 0.97, failures
    assert retransmissions > SEEDS  # the loss was real: most handshakes needed resends
    # The request then has all of its CoAP transmissions (counted from the handshake's
    # end): over 30 % loss each way, 5 of them fail together 3.5 % of the time.
    assert answered >= established - SEEDS * 0.06


def test_the_real_client_and_server_over_dtls_at_30_percent_loss() -> None:
    from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials

    site = Site()

    @site.route("/who")
    def who(request: object) -> Response:
        security = request.security  # type: ignore[attr-defined]
        return Response(payload=f"{security.name} over {security.version}")

    results = []

    async def main() -> None:
        net = VirtualNetwork(seed=3, latency=0.02, loss=0.3)
        credentials = DtlsServerCredentials(psk=PSK_TABLE)
        async with (
            net.server(site, listen=["coaps://server"], dtls=credentials) as server,
            net.client(
                dtls=DtlsCredentials(psk_identity=b"dev2", psk=PSK_TABLE[b"dev2"])
            ) as client,
        ):
            for _ in range(3):
                response = await client.get("coaps://server/who")
                results.append((round(net.now, 3), response.text))
            assert server.listeners[0].uri == "coaps://192.0.2.2:5684" or server.listeners

    run(main())
    assert [text for _, text in results] == ["dev2 over DTLSv1.2"] * 3
