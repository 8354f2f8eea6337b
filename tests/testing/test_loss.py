"""30 % loss: the real client's retransmissions and the server's deduplication, in virtual time."""

from __future__ import annotations

import time

from coapkit import Code
from coapkit.testing import LinkConditions, VirtualNetwork
from tests.testing.helpers import App, retransmissions


async def test_every_post_is_answered_and_handled_once_over_a_lossy_link() -> None:
    app = App()
    net = VirtualNetwork(seed=7, loss=0.3, duplicate=0.1, jitter=0.02)
    started = time.perf_counter()
    async with net.server(app.site) as server, net.client() as client:
        answers = [await client.post("coap://server/log", f"entry {n}") for n in range(20)]
    real = time.perf_counter() - started

    assert [a.code for a in answers] == [Code.CREATED] * 20
    assert [a.text for a in answers] == [str(n) for n in range(1, 21)]
    # Each handler ran once although requests were retransmitted and duplicated.
    assert app.posts == [f"entry {n}".encode() for n in range(20)]
    client_address = next(e.src for e in net.trace if e.dst == server.address)
    assert retransmissions(net, client_address, server.address) >= 5
    assert net.simulated.lost >= 10
    # Retransmission timeouts of 2 to 3 s, doubling, took a minute of virtual time and
    # a fraction of a second of real time.
    assert net.now > 30.0
    assert real < 2.0


async def test_a_request_the_link_keeps_losing_fails_after_max_transmit_wait() -> None:
    app = App()
    net = VirtualNetwork(seed=1)
    async with net.server(app.site) as server, net.client(address="client") as client:
        # The first four transmissions are lost, the fifth gets through.
        net.simulated.set_link(
            (net.lookup("client"), 49152),
            server.address,
            LinkConditions(drop=frozenset({1, 2, 3, 4})),
        )
        answer = await client.get("coap://server/hello")
        assert answer.code == Code.CONTENT
        # 2 to 3 s, then 4 to 6, 8 to 12, 16 to 24: 30 to 45 s before the fifth try.
        assert 30.0 <= net.now <= 45.1
        net.simulated.set_link(
            (net.lookup("client"), 49152),
            server.address,
            LinkConditions(loss=1.0),
        )
        started = net.now
        try:
            await client.get("coap://server/hello")
        except TimeoutError as error:
            failed = error
        # MAX_TRANSMIT_WAIT: at most 93 s (RFC 7252 §4.8.2).
        assert 62.0 <= net.now - started <= 93.0
        assert "after 5 transmissions" in str(failed)
