"""Soak: many clients, mixed traffic, 30 % loss, hours of virtual time; then nothing is left.

See :mod:`tests.robustness.soak` for the traffic.  CI runs 200 clients for two
virtual hours (a few seconds); ``-m slow`` runs 1,000 clients for ten virtual
hours (about two minutes).  Either way, once the traffic has stopped and
EXCHANGE_LIFETIME plus the block-wise transfer timeout have passed, every table
of every endpoint is empty: deduplication entries, peers, open requests,
block-wise bodies and caches, client uploads, observers, and no deadline is
left to arm.
"""

from __future__ import annotations

import time

import pytest

from .soak import SoakResult, run_soak

EMPTY_SERVER = {
    "dedup": 0,
    "peers": 0,
    "open requests": 0,
    "bodies": 0,
    "cached": 0,
    "finished bodies": 0,
    "buffered bytes": 0,
    "observers": 0,
    "deadline set": 0,
}
EMPTY_CLIENTS = {
    "dedup": 0,
    "peers": 0,
    "open requests": 0,
    "uploads": 0,
    "bodies": 0,
    "cached": 0,
    "deadline set": 0,
}


def check(result: SoakResult) -> None:
    tally = result.tally
    assert tally.problems == []
    assert result.server_problems == []
    for kind, started in tally.started.items():
        # An upload whose last block's answers were all lost is retried and gets the
        # stored answer: it succeeds, it is not a failure nor a 4.08.
        ended = tally.succeeded.get(kind, 0) + tally.failed.get(kind, 0)
        if kind == "observe":
            # An observation ends when the client cancels it or when it fails (its
            # registration, or a re-registration, never acknowledged).
            assert tally.observations_cancelled + tally.failed.get(kind, 0) == started
        else:
            assert ended == started, kind
            assert tally.failed.get(kind, 0) <= 0.1 * started, kind
    assert tally.notifications > tally.started["observe"]
    assert result.lost > 0.25 * result.datagrams
    # The tables stayed small while the traffic ran, and are empty after it.
    for sample in result.samples:
        assert sample["dedup"] <= 100_000 and sample["observers"] <= 10_000
    assert result.left_server == EMPTY_SERVER
    assert result.left_clients == EMPTY_CLIENTS


def report(result: SoakResult, seconds: float) -> str:
    tally = result.tally
    return (
        f"\n{result.clients} clients, {result.hours} h virtual, {result.loss:.0%} loss: "
        f"{seconds:.1f} s real; {result.datagrams} datagrams ({result.lost} lost); "
        f"started {tally.started}; succeeded {tally.succeeded}; failed {tally.failed}; "
        f"{tally.notifications} notifications received of {result.notifications_sent} sent; "
        f"{result.observers_removed} observers removed by the server, "
        f"{result.deregistrations} deregistered by their clients; samples {result.samples}; "
        f"left {result.left_server} {result.left_clients}"
    )


def test_soak_short() -> None:
    start = time.monotonic()
    result = run_soak(clients=200, hours=2.0, seed=3)
    print(report(result, time.monotonic() - start))
    check(result)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_soak_ten_hours() -> None:
    start = time.monotonic()
    result = run_soak(clients=1000, hours=10.0, seed=1)
    print(report(result, time.monotonic() - start))
    check(result)
