#!/usr/bin/env python3
"""Coverage-guided fuzzing of the URI code (coapkit.codec.uri).

The first byte of an input picks what is fuzzed (its value modulo 3):

0. ``parse_uri(text)`` of the rest, read as UTF-8 (undecodable bytes become lone
   surrogates, which the parser must refuse politely);
1. ``uri_from_options`` and ``parse_proxy_uri`` of options built from the rest:
   ``scheme index, port index, host length, host`` then ``(option index, length,
   raw value)`` records, raw values unchecked (not UTF-8, too long, ...);
2. ``parse_uri(base).join(reference)``: ``base length, base, reference``.

For every input:

1. nothing but :class:`~coapkit.errors.UriError` escapes;
2. every URI obtained re-composes and re-parses equal: ``parse_uri(str(u)) == u``
   and the text is stable; its options (``to_options``, both ``to_proxy_options``
   forms) read back with ``uri_from_options`` / ``parse_proxy_uri`` give ``u``
   again (without an IPv6 zone ID, which is never sent); ``with_path`` with its own
   path and query gives ``u``.

    python fuzz/fuzz_uri.py -atheris_runs=1000000 fuzz/corpus-uri fuzz/seeds/uri
    python fuzz/fuzz_uri.py --no-atheris -runs=100000 fuzz/seeds/uri
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.codec.options
        import coapkit.codec.uri  # noqa: F401

from coapkit.codec.option_registry import OptionNumber  # noqa: E402
from coapkit.codec.options import Options  # noqa: E402
from coapkit.codec.uri import (  # noqa: E402
    DEFAULT_PORTS,
    CoapUri,
    parse_proxy_uri,
    parse_uri,
    uri_from_options,
)
from coapkit.errors import UriError  # noqa: E402

N = OptionNumber
SCHEMES = (*DEFAULT_PORTS, "COAP", "http", "")
PORTS = (5683, -1, 0, 1, 5684, 65535, 65536, 80)
OPTION_NUMBERS = (
    N.URI_HOST,
    N.URI_PORT,
    N.URI_PATH,
    N.URI_QUERY,
    N.PROXY_URI,
    N.PROXY_SCHEME,
    N.URI_PATH,
    N.URI_QUERY,
)


class InvariantError(AssertionError):
    """The URI code broke one of the invariants in the module docstring."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _without_zone(uri: CoapUri) -> CoapUri:
    if uri.is_ipv6 and "%" in uri.host:
        return dataclasses.replace(uri, host=uri.host.partition("%")[0])
    return uri


def _expect(got: CoapUri, want: CoapUri, how: str) -> None:
    if got != want:
        raise InvariantError(f"{how}: {want!r} came back as {got!r}")


def check_uri(uri: CoapUri) -> None:
    """The round trips every URI must survive."""
    text = str(uri)
    again = parse_uri(text)  # a UriError here is a failure too: the caller does not catch it
    _expect(again, uri, f"parse_uri(str(u)) of {text!r}")
    if str(again) != text:
        raise InvariantError(f"str() is not stable: {text!r} -> {str(again)!r}")
    _expect(uri.with_path(*uri.path, query=uri.query), uri, "with_path")
    plain = _without_zone(uri)
    try:
        options = uri.to_options(include_uri_host=True)
    except UriError:
        pass  # a component does not fit in an option (e.g. a segment over 255 bytes)
    else:
        composed = uri_from_options(options, scheme=uri.scheme, host="other.invalid", port=uri.port)
        _expect(composed, plain, "uri_from_options(to_options(include_uri_host=True))")
    try:
        options = uri.to_options()
    except UriError:
        pass
    else:
        composed = uri_from_options(options, scheme=uri.scheme, host=plain.host, port=uri.port)
        _expect(composed, plain, "uri_from_options(to_options())")
    for use_proxy_scheme in (False, True):
        try:
            options = uri.to_proxy_options(use_proxy_scheme)
        except UriError:
            continue
        _expect(parse_proxy_uri(options), plain, f"parse_proxy_uri({use_proxy_scheme=})")
    repr(uri)
    uri.host_string  # noqa: B018
    uri.host_is_ip_literal  # noqa: B018


def _options(data: bytes) -> tuple[str, int, str, Options]:
    scheme = SCHEMES[data[0] % len(SCHEMES)] if data else "coap"
    port = PORTS[data[1] % len(PORTS)] if len(data) > 1 else 5683
    host_length = data[2] if len(data) > 2 else 0
    host = _text(data[3 : 3 + host_length])
    pos = 3 + host_length
    items = []
    while pos + 1 < len(data):
        number = OPTION_NUMBERS[data[pos] % len(OPTION_NUMBERS)]
        length = data[pos + 1]
        items.append((int(number), data[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return scheme, port, host, Options(items)


def check(data: bytes) -> bool:
    """Check the invariants for one input; True if some URI came out of it."""
    if not data:
        return False
    mode, rest = data[0] % 3, data[1:]
    uris: list[CoapUri] = []
    if mode == 0:
        with contextlib.suppress(UriError):
            uris.append(parse_uri(_text(rest)))
    elif mode == 1:
        scheme, port, host, options = _options(rest)
        with contextlib.suppress(UriError):
            uris.append(uri_from_options(options, scheme=scheme, host=host, port=port))
        for proxy_host in (host, None):
            with contextlib.suppress(UriError):
                uris.append(parse_proxy_uri(options, host=proxy_host))
    else:
        length = rest[0] if rest else 0
        base_text, reference = _text(rest[1 : 1 + length]), _text(rest[1 + length :])
        try:
            base = parse_uri(base_text)
        except UriError:
            base = CoapUri("coap", "example.com", 5683, ("a", "b"), ("q",))
        uris.append(base)
        with contextlib.suppress(UriError):
            uris.append(base.join(reference))
    for uri in uris:
        check_uri(uri)
    return bool(uris)


def TestOneInput(data: bytes) -> None:
    check(data)


# -- the pure-Python mode: inputs built from URI-shaped pieces ------------------------------

_HOSTS = (
    "example.com",
    "EXAMPLE.COM",
    "h",
    "192.0.2.1",
    "[2001:db8::1]",
    "[2001:DB8::1%25eth0]",
    "[fe80::1%25%41]",
    "[::ffff:192.0.2.1]",
    "[::]",
    "%41%42",
    "xn--bcher-kva.example",
    "h%C3%A9",
    "bücher",
    "[v1.x]",
    "",
    "[::1",
    "a:b",
    "%zz",
)
_SEGMENTS = (
    "a",
    "",
    ".",
    "..",
    "%2E",
    "%2F",
    "a%20b",
    "%C3%A9",
    "é",
    "~x",
    "%",
    "%4",
    "a@b:c",
    "?",
)
_QUERIES = ("a=1", "", "b", "x=%26", "&", "y=/?", "%FF", "c=é")


def generate(rng: random.Random) -> bytes:
    mode = rng.randrange(3)
    if mode == 1:
        out = bytearray((ord("1"), rng.randrange(len(SCHEMES)), rng.randrange(len(PORTS))))
        host = rng.choice(_HOSTS).strip("[]").encode()
        out += bytes((len(host),)) + host
        for _ in range(rng.randrange(6)):
            value = rng.choice((*_SEGMENTS, *_HOSTS, "coap://h/x", "coaps", "\x00")).encode()
            if rng.random() < 0.1:
                value = rng.randbytes(rng.randrange(4))
            out += bytes((rng.randrange(len(OPTION_NUMBERS)), len(value))) + value
        return bytes(out)
    scheme = rng.choice(("coap", "coaps", "coap+tcp", "coaps+ws", "COAP", "http", ""))
    port = rng.choice(("", "", ":", ":5683", ":0", ":65535", ":65536", ":x", ":0005683"))
    path = "".join("/" + rng.choice(_SEGMENTS) for _ in range(rng.randrange(5)))
    query = "&".join(rng.choice(_QUERIES) for _ in range(rng.randrange(4)))
    uri = f"{scheme}://{rng.choice(_HOSTS)}{port}{path}" + (f"?{query}" if query else "")
    if rng.random() < 0.1:
        uri += rng.choice(("#f", " ", "\t", "\x7f", "\ud800"))
    data = uri.encode("utf-8", "surrogatepass")
    if mode == 0:
        return b"0" + data
    reference = rng.choice(("", "x", "../y", "./", "?q", "//other/z", "/abs", "coap://h2", "#f"))
    reference += "/" + rng.choice(_SEGMENTS)
    return b"2" + bytes((len(data) & 0xFF,)) + data[:255] + reference.encode()


def main(argv: list[str]) -> int:
    return fuzzlib.main(
        argv,
        name="fuzz_uri",
        test_one_input=TestOneInput,
        check=check,
        generate=generate,
        coverage_guided=COVERAGE_GUIDED,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
