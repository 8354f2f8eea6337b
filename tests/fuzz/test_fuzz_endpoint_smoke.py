"""The endpoint fuzz harness (fuzz/fuzz_endpoint.py), run quickly without atheris.

CI runs the seed scripts and a few hundred random and mutated scripts; the long
coverage-guided runs are described in fuzz/README.md.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from coapkit.blockwise.server import BlockwiseServer
from coapkit.codec.message import decode
from coapkit.compiled import is_compiled
from coapkit.endpoint import Endpoint
from coapkit.messaging.dedup import DedupTable
from coapkit.messaging.layer import MessageLayer

from .harnesses import SEEDS, load

harness = load("fuzz_endpoint")
fuzzlib = load("fuzzlib")


def test_seed_scripts_are_current() -> None:
    """fuzz/seeds/endpoint holds what ``--write-seeds`` writes."""
    on_disk = {p.name: p.read_bytes() for p in (SEEDS / "endpoint").iterdir()}
    assert on_disk == harness.seed_scripts()


def test_seed_scripts() -> None:
    for name, script in harness.seed_scripts().items():
        run, _ = harness.run_both(script)
        assert run.emitted > 0, name


def test_the_fast_path_is_taken_and_changes_nothing() -> None:
    """run_both compares the general and the fast path step by step; here the fast path
    must also have taken a good share of the requests and responses."""
    rng = random.Random(8132)
    accepted = answered = 0
    for _ in range(200):
        general, fast = harness.run_both(harness.generate(rng))
        assert general.fast_taken == [0, 0]
        accepted += fast.fast_taken[0]
        answered += fast.fast_taken[1]
    assert accepted > 100
    assert answered > 200
    many = harness.run_both(harness.seed_scripts()["many-peers.bin"])[1]
    # 40 NON GETs from 4 remotes, room for 3 peers: all but each first one of the three
    # admitted; the fourth remote's are refused (a NON from a new remote never evicts).
    assert many.fast_taken[0] == 27
    assert many.endpoint.messaging.stats.peers_refused == 10


def test_with_the_amplification_defence_on_the_fast_path_changes_nothing_either() -> None:
    """``coapkit server`` keeps the defence on: its small answers go the fast way too,
    exactly as the general path (with its Echo challenges for large ones) would send them."""
    rng = random.Random(7959)
    answered = 0
    for _ in range(200):
        general, fast = harness.run_both(harness.generate(rng), amplification=True)
        assert general.fast_taken == [0, 0]
        answered += fast.fast_taken[1]
    assert answered > 200


def test_a_difference_between_the_paths_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def forgetful(self: Endpoint, handle: object, response: object, now: float) -> bytes | None:
        data = original(self, handle, response, now)
        if data is not None:
            self.messaging.stats.piggybacked -= 1
        return data

    original = Endpoint.respond_now
    monkeypatch.setattr(Endpoint, "respond_now", forgetful)
    with pytest.raises(harness.InvariantError, match="the fast path differs at step"):
        harness.run_both(harness.seed_scripts()["get-small.bin"])


def test_the_seeds_do_what_they_say() -> None:
    scripts = harness.seed_scripts()
    run = harness.run_script(scripts["get-large-block2.bin"])
    assert run.endpoint.blockwise.stats.blocks_served_from_cache == 4
    run = harness.run_script(scripts["upload-block1.bin"])
    assert run.endpoint.blockwise.stats.bodies_reassembled == 1
    run = harness.run_script(scripts["duplicates-and-replays.bin"])
    assert run.endpoint.stats.replays >= 1
    run = harness.run_script(scripts["many-uploads.bin"])
    assert run.endpoint.blockwise.stats.bodies_evicted == 5  # eight bodies, room for three
    assert run.endpoint.blockwise.stats.bodies_reassembled == 1
    assert run.endpoint.messaging.stats.peers_evicted >= 1  # four remotes, room for three


def test_random_and_mutated_scripts() -> None:
    seeds = list(harness.seed_scripts().values())
    runs, accepted = fuzzlib.fuzz_without_atheris(
        harness.check, seeds, 400, seed=7252, max_len=2048, generate=harness.generate
    )
    assert runs == 400
    assert accepted > 200


def test_main_without_atheris(capsys: pytest.CaptureFixture[str]) -> None:
    seeds = str(SEEDS / "endpoint")
    assert harness.main(["--no-atheris", "-runs=50", "-seed=3", seeds]) == 0
    assert "Done 50 runs" in capsys.readouterr().out


def test_write_seeds(tmp_path: Path) -> None:
    assert harness.main(["--write-seeds", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == set(harness.seed_scripts())


# The harness must notice a broken endpoint: each of these breaks one invariant.

GET_SMALL = harness.seed_scripts()["get-small.bin"]
MANY_PEERS = harness.seed_scripts()["many-peers.bin"]
MANY_UPLOADS = harness.seed_scripts()["many-uploads.bin"]


def test_catches_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Endpoint, *args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(Endpoint, "datagram_received", broken)
    with pytest.raises(KeyError):
        harness.run_script(GET_SMALL)


def test_catches_an_undecodable_datagram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "decode", lambda data: decode(data[:3]))
    with pytest.raises(AssertionError, match="does not decode"):
        harness.run_script(GET_SMALL)


@pytest.mark.skipif(
    is_compiled(), reason="DedupTable is compiled in this build: its callers ignore a patch"
)
def test_catches_a_table_over_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DedupTable, "_evict_oldest", lambda self: None)  # no total cap
    with pytest.raises(AssertionError, match=r"deduplication (entries|runs)"):
        harness.run_script(MANY_PEERS)


@pytest.mark.skipif(
    is_compiled(), reason="MessageLayer is compiled in this build: its callers ignore a patch"
)
def test_catches_a_peer_table_over_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MessageLayer, "_evict_one", lambda self: True)  # room without eviction
    with pytest.raises(AssertionError, match="peers, max_peers"):
        harness.run_script(MANY_UPLOADS)


def test_catches_too_many_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    def roomy_endpoint(**settings: Any) -> Endpoint:
        settings["blockwise"] = replace(settings["blockwise"], max_bodies=10)
        return Endpoint(**settings)

    monkeypatch.setattr(harness, "Endpoint", roomy_endpoint)  # the check still says 3
    with pytest.raises(AssertionError, match="bodies, max_bodies"):
        harness.run_script(MANY_UPLOADS)


def test_catches_an_index_of_bodies_out_of_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def forgetful_drop(self: BlockwiseServer, key: tuple[object, ...]) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self._body_bytes -= len(body.data)

    monkeypatch.setattr(BlockwiseServer, "_drop", forgetful_drop)
    with pytest.raises(AssertionError, match="index of bodies"):
        harness.run_script(MANY_UPLOADS)


def test_catches_state_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "QUIET_AFTER", 10.0)
    with pytest.raises(AssertionError, match="still"):
        harness.run_script(GET_SMALL)


def test_catches_a_deadline_that_does_not_move(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Endpoint, "handle_timeout", lambda self, now: harness.Output([], [], self))
    with pytest.raises(AssertionError, match="spin"):
        harness.run_script(GET_SMALL)
