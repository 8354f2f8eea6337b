"""The OSCORE fuzz harness (fuzz/fuzz_oscore.py), run quickly without atheris."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from coapkit.oscore.option import OscoreOption

from .harnesses import SEEDS, load

harness = load("fuzz_oscore")
fuzzlib = load("fuzzlib")


def test_seed_corpus() -> None:
    files = sorted((SEEDS / "oscore").iterdir())
    assert len(files) >= 10
    results = [harness.check(path.read_bytes()) for path in files]
    assert any(results) and not all(results)


def test_random_and_mutated_inputs() -> None:
    seeds = fuzzlib.read_inputs([str(SEEDS / "oscore")])
    runs, accepted = fuzzlib.fuzz_without_atheris(
        harness.check, seeds, 5000, seed=8613, generate=harness.generate
    )
    assert runs == 5000
    assert 100 < accepted < 4900  # both outcomes are exercised


def test_every_mode_is_reached() -> None:
    assert harness.check(b"\x00\x09\x05\x25")  # an option
    assert harness.check(b"\x03\x00")  # an untouched protected request is accepted
    assert not harness.check(b"\x03\x01\x05\x01")  # a changed ciphertext is refused
    assert not harness.check(b"\x01\x00\x03\x09\x05\x25" + bytes(20))  # unknown kid


def test_main_without_atheris(capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.main(["--no-atheris", "-runs=300", "-seed=3", str(SEEDS / "oscore")]) == 0
    assert "Done 300 runs" in capsys.readouterr().out


def test_the_harness_catches_a_broken_decoder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(harness, "decode_option", lambda data: OscoreOption(kid=b"x"))
    with pytest.raises(AssertionError):
        harness.check(b"\x00\x09\x05\x25")


def test_the_harness_catches_an_accepted_tampering(monkeypatch: pytest.MonkeyPatch) -> None:
    real = harness.unprotect_request

    def careless(message, lookup):  # type: ignore[no-untyped-def]
        original = harness.REQUESTS[1][1]
        return real(original, lookup)  # as if any request verified

    monkeypatch.setattr(harness, "unprotect_request", careless)
    with pytest.raises(AssertionError):
        harness.check(b"\x03\x01\x05\x01")
