"""The link-format fuzz harness (fuzz/fuzz_link_format.py), run quickly without atheris."""

from __future__ import annotations

import pytest

from coapkit.codec.link_format import Link

from .harnesses import SEEDS, load

harness = load("fuzz_link_format")
fuzzlib = load("fuzzlib")


def test_seed_corpus() -> None:
    files = sorted((SEEDS / "link_format").iterdir())
    assert len(files) >= 8
    for path in files:
        assert harness.check(path.read_bytes()) == (not path.name.startswith("bad-")), path.name


def test_random_and_mutated_inputs() -> None:
    seeds = fuzzlib.read_inputs([str(SEEDS / "link_format")])
    runs, accepted = fuzzlib.fuzz_without_atheris(
        harness.check, seeds, 5000, seed=6690, generate=harness.generate
    )
    assert runs == 5000
    assert 500 < accepted < 4500


def test_main_without_atheris(capsys: pytest.CaptureFixture[str]) -> None:
    seeds = str(SEEDS / "link_format")
    assert harness.main(["--no-atheris", "-runs=200", "-seed=3", seeds]) == 0
    assert "Done 200 runs" in capsys.readouterr().out


def test_the_harness_catches_a_lossy_serialiser(monkeypatch: pytest.MonkeyPatch) -> None:
    def drops_attributes(links: list[Link]) -> str:
        return ",".join(f"<{link.target}>" for link in links)

    monkeypatch.setattr(harness, "serialize_link_format", drops_attributes)
    assert harness.check(b"</a>")  # nothing to lose
    with pytest.raises(AssertionError, match="parse\\(serialize"):
        harness.check(b'</a>;rt="x"')


def test_the_harness_catches_a_filter_that_invents_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "filter_links", lambda links, queries: [Link("/new")])
    with pytest.raises(AssertionError, match="subsequence"):
        harness.check(b"</a>")


def test_the_harness_catches_other_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> list[Link]:
        raise IndexError(text)

    monkeypatch.setattr(harness, "parse_link_format", broken)
    with pytest.raises(IndexError):
        harness.check(b"</a>")
