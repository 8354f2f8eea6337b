"""Exactly once under loss, duplication and reordering, on the simulated network.

The matrix: loss {0, 10, 30 %} x duplication {0, 10 %} x jitter {0, 50 ms} (with
5 ms latency, 50 ms of jitter reorders freely), 100 clients x 100 non-idempotent
POSTs per cell, NSTART=1 and the default transmission parameters.  See
:mod:`tests.robustness.exactly_once` for what each cell checks.

The failure rate has a model: an exchange fails when all five transmissions lose
the CON or its ACK, (1 - (1 - p)^2)^5: 3.45 % at 30 % loss, 0.025 % at 10 %
(duplication makes it a little lower).  Note that the server's counter cannot
equal the number of successes under loss: a request whose every *answer* was
lost ran once on the server and failed at the client (about 93 % of the failures
at 30 % loss); the check is that the handler ran exactly once for every success,
at most once for every failure, and never for a failure none of whose copies
arrived.

CI runs every cell with 40 clients x 50 POSTs and one seed, and the two 30 %
cells at full size (about 25 s in all); ``-m slow`` runs the full matrix with
five seeds (10,000 requests x 5 seeds per cell).
"""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import IncomingRequest, RequestFailed, ResponseEvent
from coapkit.resources import Request, Response, Site
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

from .exactly_once import CellResult, model_failure_rate, run_cell

LOSSES = (0.0, 0.1, 0.3)
DUPLICATES = (0.0, 0.1)
JITTERS = (0.0, 0.05)
CELLS = list(itertools.product(LOSSES, DUPLICATES, JITTERS))
SLOW_SEEDS = (1, 2, 3, 4, 5)


def cell_id(cell: tuple[float, float, float]) -> str:
    loss, duplicate, jitter = cell
    return f"loss{loss:.0%}-dup{duplicate:.0%}-jitter{jitter * 1000:.0f}ms"


def check_structure(result: CellResult) -> None:
    assert result.problems == []
    assert result.succeeded + result.failed == result.requests
    if result.loss == 0:
        assert result.failed == 0
        assert result.handler_runs == result.requests
    if result.loss or result.duplicate:
        assert result.replays > 0  # the duplicates were there, and answered from the cache


@pytest.mark.parametrize("cell", CELLS, ids=[cell_id(c) for c in CELLS])
def test_exactly_once_small(cell: tuple[float, float, float]) -> None:
    result = run_cell(*cell, seed=7, clients=40, posts=50)
    check_structure(result)
    if result.loss == 0.1:
        assert result.failed <= 2  # the model: 0.5 expected in 2,000


@pytest.mark.parametrize("duplicate", DUPLICATES)
def test_failure_rate_at_30_percent_loss(duplicate: float) -> None:
    result = run_cell(0.3, duplicate, 0.05, seed=11)
    check_structure(result)
    assert 0.02 <= result.failure_rate <= 0.05
    # Most failures are lost answers: the request ran once, the client never heard.
    assert result.failed_but_executed > result.failed / 2


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=[cell_id(c) for c in CELLS])
def test_exactly_once_matrix(cell: tuple[float, float, float]) -> None:
    results = [run_cell(*cell, seed=seed) for seed in SLOW_SEEDS]
    for result in results:
        check_structure(result)
    loss = cell[0]
    failed = sum(r.failed for r in results)
    requests = sum(r.requests for r in results)
    rate = failed / requests
    rates = ", ".join(f"{r.failure_rate:.3%}" for r in results)
    print(
        f"\n{cell_id(cell)}: {failed}/{requests} failed = {rate:.3%} (model "
        f"{model_failure_rate(loss):.3%}; per seed {rates}; "
        f"mean virtual time {statistics.mean(r.end_time for r in results):.0f} s); "
        f"handler runs {sum(r.handler_runs for r in results)}, of which for failed requests "
        f"{sum(r.failed_but_executed for r in results)}; "
        f"copies received {sum(r.server_copies for r in results)}, "
        f"byte-identical replays {sum(r.replays for r in results)}"
    )
    if loss == 0:
        assert failed == 0
    elif loss == 0.1:
        assert rate <= 0.001
    else:
        assert 0.02 <= rate <= 0.05
        for result in results:
            assert 0.02 <= result.failure_rate <= 0.05


# -- block-wise transfers that lose datagrams 5, 6, 8, 9 and 15 ----------------------------

CLIENT = ("10.0.1.1", 5683)
SERVER = ("10.0.0.1", 5683)
BODY = bytes(random.Random(7959).randbytes(20 * 1024 + 300))  # 21 blocks of 1024
DROP = LinkConditions(drop=frozenset({5, 6, 8, 9, 15}))


def block_network(direction: str) -> tuple[SimulatedNetwork, EndpointNode, EndpointNode, list]:
    site = Site()
    runs: list[tuple[int, bytes]] = []

    @site.route("/large")
    def large(request: Request) -> Response:
        runs.append((request.method, b""))
        return Response(payload=BODY)

    @site.route("/upload", methods=("POST",))
    def upload(request: Request) -> Response:
        runs.append((request.method, request.payload))
        return Response(Code.CHANGED, b"got %d" % len(request.payload))

    def app(node: EndpointNode, event: IncomingRequest, now: float) -> Message:
        response = site.dispatch(Request(event.request, event.remote, event.handle))
        assert isinstance(response, Response)
        return response.to_message()

    net = SimulatedNetwork(seed=5)
    server = EndpointNode(Endpoint(rng=random.Random(1)), app)
    client = EndpointNode(Endpoint(rng=random.Random(2)))
    net.attach(SERVER, server)
    net.attach(CLIENT, client)
    if direction in ("to-server", "both"):
        net.set_link(CLIENT, SERVER, DROP)
    if direction in ("to-client", "both"):
        net.set_link(SERVER, CLIENT, DROP)
    return net, client, server, runs


def lost_datagrams(net: SimulatedNetwork) -> int:
    return sum(1 for entry in net.trace if entry.event == "lost")


@pytest.mark.parametrize("direction", ["to-server", "to-client", "both"])
def test_block2_download_survives_dropped_datagrams(direction: str) -> None:
    net, client, _, runs = block_network(direction)
    request = Message(code=Code.GET, options=Message().options.replace(uri_path=["large"]))
    handle, datagrams = client.request(request, SERVER, 0.0)
    net.transmit(CLIENT, datagrams)
    net.rearm(CLIENT)
    net.run_until_quiet(1000.0)
    [final] = [e for e in client.events_of(ResponseEvent) if e.final]
    assert final.handle is handle
    assert final.response.code == Code.CONTENT
    assert final.response.payload == BODY
    assert client.events_of(RequestFailed) == []
    assert lost_datagrams(net) == (10 if direction == "both" else 5)
    assert runs == [(Code.GET, b"")]  # the handler ran once; the other blocks came from the cache


@pytest.mark.parametrize("direction", ["to-server", "to-client", "both"])
def test_block1_upload_survives_dropped_datagrams(direction: str) -> None:
    net, client, _, runs = block_network(direction)
    options = Message().options.replace(uri_path=["upload"])
    handle, datagrams = client.request(
        Message(code=Code.POST, options=options, payload=BODY), SERVER, 0.0
    )
    net.transmit(CLIENT, datagrams)
    net.rearm(CLIENT)
    net.run_until_quiet(1000.0)
    [final] = [e for e in client.events_of(ResponseEvent) if e.final]
    assert final.handle is handle
    assert final.response.code == Code.CHANGED
    assert final.response.payload == b"got %d" % len(BODY)
    assert client.events_of(RequestFailed) == []
    assert lost_datagrams(net) == (10 if direction == "both" else 5)
    assert runs == [(Code.POST, BODY)]  # reassembled intact, handed up once
