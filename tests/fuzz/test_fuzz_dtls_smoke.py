"""The DTLS endpoint fuzz harness (fuzz/fuzz_dtls.py), run quickly without atheris: the
seed scripts, a few hundred random and mutated ones, and proof that it notices a broken
endpoint (plaintext out, state before the cookie, sessions left, a deadline that spins)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coapkit.dtls import DtlsLayer
from coapkit.endpoint import Endpoint
from tests.dtls.conftest import require_pyopenssl

from .harnesses import SEEDS, load

require_pyopenssl()
harness = load("fuzz_dtls")
fuzzlib = load("fuzzlib")
SCRIPTS = harness.seed_scripts()


def test_seed_scripts_are_current() -> None:
    on_disk = {p.name: p.read_bytes() for p in (SEEDS / "dtls").iterdir()}
    assert on_disk == SCRIPTS


def test_the_seeds_do_what_they_say() -> None:
    runs = {name: harness.run_script(script) for name, script in SCRIPTS.items()}
    for name, run in runs.items():
        if name != "garbage-records.bin":
            assert run.emitted > 0, name
    stats = {name: run.security.stats for name, run in runs.items()}
    assert stats["get-small.bin"].established == 1
    assert sum(c.plaintexts for c in runs["get-small.bin"].clients.values()) == 1
    assert sum(c.plaintexts for c in runs["observe-notify.bin"].clients.values()) == 2
    assert stats["truncated-hellos.bin"].dropped >= 1  # the cut ClientHello
    assert stats["truncated-hellos.bin"].established == 1  # then the whole one
    assert stats["garbage-records.bin"].dropped == 4 and runs["garbage-records.bin"].emitted == 0
    assert stats["replayed-sessions.bin"].dropped >= 2  # records of another session
    assert stats["restart-and-close.bin"].established == 2
    assert stats["many-clients.bin"].established == 3  # four clients, room for three


def test_random_and_mutated_scripts() -> None:
    runs, accepted = fuzzlib.fuzz_without_atheris(
        harness.check,
        list(SCRIPTS.values()),
        300,
        seed=6347,
        max_len=2048,
        generate=harness.generate,
    )
    assert runs == 300 and accepted > 100
    established = 0
    rng = random.Random(9147)
    for _ in range(100):
        established += harness.run_script(harness.generate(rng)).security.stats.established
    assert established > 20  # the random scripts reach past the handshake


def test_main_without_atheris(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert harness.main(["--no-atheris", "-runs=30", "-seed=3", str(SEEDS / "dtls")]) == 0
    assert "Done 30 runs" in capsys.readouterr().out
    assert harness.main(["--write-seeds", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == set(SCRIPTS)


# The harness must notice a broken endpoint: each of these breaks one invariant.


def servers_layer_patched(monkeypatch: pytest.MonkeyPatch, name: str, function: object) -> None:
    """Break the server's DTLS layer only (the clients are DTLS layers too)."""
    original = harness.DtlsHarness.__init__

    def init(self: object) -> None:
        original(self)
        layer = self.endpoint.security  # type: ignore[attr-defined]
        setattr(layer, name, function.__get__(layer))  # type: ignore[attr-defined]

    monkeypatch.setattr(harness.DtlsHarness, "__init__", init)


def test_catches_plaintext_going_out(monkeypatch: pytest.MonkeyPatch) -> None:
    servers_layer_patched(monkeypatch, "seal", lambda self, datagrams, now: datagrams)
    with pytest.raises(AssertionError, match="not DTLS records"):
        harness.run_script(SCRIPTS["observe-notify.bin"])


def test_catches_state_before_the_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer that keeps a session for a source at its first ClientHello."""
    from coapkit.dtls.layer import DtlsSession

    original = DtlsLayer._client_hello

    def eager(
        self: DtlsLayer, datagram: bytes, records: object, remote: object, *rest: object
    ) -> None:
        original(self, datagram, records, remote, *rest)  # type: ignore[arg-type]
        if self.session(remote) is None:
            self._add(DtlsSession(remote, object(), False, 0.0))  # type: ignore[arg-type]

    servers_layer_patched(monkeypatch, "_client_hello", eager)
    with pytest.raises(AssertionError, match="never returned a cookie"):
        harness.run_script(SCRIPTS["get-small.bin"])


def test_catches_sessions_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "DTLS", harness.DTLS.__class__(idle_timeout=1e6))
    with pytest.raises(AssertionError, match="DTLS sessions are left"):
        harness.run_script(SCRIPTS["get-small.bin"])


def test_catches_a_deadline_that_does_not_move(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DtlsLayer, "handle_timeout", lambda self, now: harness_opened())
    with pytest.raises(AssertionError, match="spin"):
        harness.run_script(SCRIPTS["get-small.bin"] + bytes((2, 10)))


def harness_opened() -> object:
    from coapkit.dtls.layer import Opened

    return Opened()


def test_catches_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Endpoint, *args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(Endpoint, "datagram_received", broken)
    with pytest.raises(KeyError):
        harness.run_script(SCRIPTS["get-small.bin"])
