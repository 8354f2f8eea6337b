#!/usr/bin/env python3
"""Coverage-guided fuzzing of the CoRE Link Format code (coapkit.codec.link_format).

An input is read as UTF-8 (undecodable bytes become lone surrogates); up to the
first NUL it is a link-format document, after it NUL-separated query filters
such as ``rt=temp*``.  For every input:

1. ``parse_link_format`` returns links or raises
   :class:`~coapkit.errors.LinkFormatError`, nothing else;
2. what it returned can be written: ``serialize_link_format`` raises nothing, and
   ``parse(serialize(parse(x))) == parse(x)``, with the text stable from then on;
3. every attribute accessor of every link (``rt``, ``if_``, ``ct``, ``sz``,
   ``obs``, ``title``, ``anchor``, ``rel``) raises nothing, and
   ``filter_links`` with the queries returns a subsequence of the links.

    python fuzz/fuzz_link_format.py -atheris_runs=1000000 fuzz/corpus-lf fuzz/seeds/link_format
    python fuzz/fuzz_link_format.py --no-atheris -runs=100000 fuzz/seeds/link_format
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.codec.link_format  # noqa: F401

from coapkit.codec.link_format import (  # noqa: E402
    Link,
    filter_links,
    parse_link_format,
    serialize_link_format,
)
from coapkit.errors import LinkFormatError  # noqa: E402


class InvariantError(AssertionError):
    """The link-format code broke one of the invariants in the module docstring."""


def _read_everything(link: Link) -> None:
    link.rt, link.if_, link.ct, link.sz, link.obs  # noqa: B018
    link.title, link.anchor, link.rel  # noqa: B018
    for name, _ in link.attributes:
        link.has(name), link.get(name), link.get_all(name)
    repr(link)


def check(data: bytes) -> bool:
    """Check the invariants for one input; True if the document parsed."""
    text = data.decode("utf-8", "surrogateescape")
    document, _, rest = text.partition("\x00")
    queries = rest.split("\x00") if rest else []
    try:
        links = parse_link_format(document)
    except LinkFormatError:
        return False
    written = serialize_link_format(links)
    again = parse_link_format(written)
    if again != links:
        raise InvariantError(
            f"parse(serialize(parse(x))) != parse(x): {document!r} -> {written!r} -> {again!r}"
        )
    if serialize_link_format(again) != written:
        raise InvariantError(f"serialisation is not stable: {written!r}")
    for link in links:
        _read_everything(link)
    kept = filter_links(links, queries)
    remaining = iter(links)
    if not all(any(link is other for other in remaining) for link in kept):
        raise InvariantError("filter_links returned links that are not a subsequence")
    return True


def TestOneInput(data: bytes) -> None:
    check(data)


# -- the pure-Python mode ---------------------------------------------------------------------

_TARGETS = ("/sensors/temp", "", "coap://h/x", "/a b", "/ä", "/a,b", '/"q"', "/a;b")
_NAMES = ("rt", "if", "ct", "sz", "obs", "title", "anchor", "rel", "RT", "x-y", "a.b", "tit le")
_VALUES = (
    None,
    "",
    "temperature-c",
    '"sensor"',
    '"a b  c"',
    "41",
    "41 50 60",
    "99999999999999999999999",
    '"esc \\" \\\\ end"',
    '"unterminated',
    "bare<value>",
    '"\t\r\n"',
    "*",
    '"é"',
    "x,y",
)
_QUERIES = ("rt=temp*", "ct=41", "href=/sensors*", "obs", "if=", "title=*", "sz=1", "RT=a", "")


def generate(rng: random.Random) -> bytes:
    links = []
    for _ in range(rng.randrange(5)):
        pieces = [f"<{rng.choice(_TARGETS)}>"]
        for _ in range(rng.randrange(5)):
            name = rng.choice(_NAMES)
            value = rng.choice(_VALUES)
            spaces = rng.choice(("", " ", "\n\t"))
            pieces.append(name if value is None else f"{name}{spaces}={spaces}{value}")
        links.append(rng.choice((";", " ; ", ";\r\n")).join(pieces))
    document = rng.choice((",", ", ", ",\n", ",,")).join(links)
    if rng.random() < 0.2:
        document = rng.choice((" ", ",", "\n")) + document + rng.choice(("", ",", " ", ";"))
    queries = [rng.choice(_QUERIES) for _ in range(rng.randrange(3))]
    return "\x00".join([document, *queries]).encode("utf-8", "surrogateescape")


def main(argv: list[str]) -> int:
    return fuzzlib.main(
        argv,
        name="fuzz_link_format",
        test_one_input=TestOneInput,
        check=check,
        generate=generate,
        coverage_guided=COVERAGE_GUIDED,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
