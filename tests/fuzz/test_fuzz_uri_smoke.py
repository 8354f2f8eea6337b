"""The URI fuzz harness (fuzz/fuzz_uri.py), run quickly without atheris."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from coapkit.codec.uri import CoapUri, parse_uri

from .harnesses import SEEDS, load

harness = load("fuzz_uri")
fuzzlib = load("fuzzlib")


def test_seed_corpus() -> None:
    files = sorted((SEEDS / "uri").iterdir())
    assert len(files) >= 10
    parsed = [harness.check(path.read_bytes()) for path in files]
    assert any(parsed) and not all(parsed)  # the bad- seeds are refused


def test_random_and_mutated_inputs() -> None:
    seeds = fuzzlib.read_inputs([str(SEEDS / "uri")])
    runs, accepted = fuzzlib.fuzz_without_atheris(
        harness.check, seeds, 4000, seed=7252, generate=harness.generate
    )
    assert runs == 4000
    assert 400 < accepted < 3600  # both outcomes are exercised


def test_every_mode_is_reached() -> None:
    assert harness.check(b"0coap://h/a?b")
    assert harness.check(b"1" + bytes((0, 0, 1)) + b"h" + bytes((2, 1)) + b"a")
    assert harness.check(b"2" + bytes((8,)) + b"coap://h" + b"../x")


def test_main_without_atheris(capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.main(["--no-atheris", "-runs=200", "-seed=3", str(SEEDS / "uri")]) == 0
    assert "Done 200 runs" in capsys.readouterr().out


# The harness must notice a broken URI implementation.


@pytest.mark.parametrize(
    ("attribute", "broken", "data"),
    [
        ("parse_uri", lambda text: (_ for _ in ()).throw(IndexError("boom")), b"0coap://h/"),
        (
            "parse_uri",
            lambda text: dataclasses.replace(parse_uri(text), path=parse_uri(text).path[1:]),
            b"0coap://h/a/b",
        ),
        (
            "uri_from_options",
            lambda options, **kw: CoapUri("coap", "elsewhere"),
            b"0coap://h/a",
        ),
    ],
    ids=["other-exception", "parse-not-stable", "options-round-trip"],
)
def test_the_harness_catches_a_broken_parser(
    attribute: str,
    broken: object,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(harness, attribute, broken)
    with pytest.raises((AssertionError, IndexError)):
        harness.check(data)
    monkeypatch.chdir(tmp_path)
    with pytest.raises((AssertionError, IndexError)):
        fuzzlib.fuzz_without_atheris(harness.check, [data], 1)
    assert [p.read_bytes() for p in tmp_path.glob("crash-*")] == [data]
