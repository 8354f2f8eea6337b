#!/usr/bin/env python3
"""Coverage-guided fuzzing of the CoAP message decoder (coapkit.codec.message.decode).

For any byte string ``data`` the harness checks:

1. ``decode(data)`` returns a :class:`Message` or raises :class:`DecodeError`, nothing else;
2. a DecodeError carries the type and message ID exactly when the 4-byte header of version 1
   was readable, and they are the ones in the header (RFC 7252 §4.2 needs them for the RST);
3. a decoded message re-encodes to bytes that decode to an equal message; and, since the
   wire format has one encoding per message, those bytes are ``data`` itself;
4. reading the decoded options as a receiver would (``option_problems``, ``repr`` and every
   typed accessor such as ``options.uri_path``) raises nothing but OptionValueError.

Two modes (see fuzz/README.md):

* with atheris (libFuzzer):  python fuzz/fuzz_decode.py -atheris_runs=1000000 CORPUS_DIR SEEDS
* without it, pure Python:   python fuzz/fuzz_decode.py --no-atheris -runs=100000 SEEDS

The pure-Python mode is also used when atheris is not installed.  It feeds random byte
strings and mutations (bit flips, interesting bytes, truncations, insertions, deletions,
splices) of the seed inputs and of the valid messages it finds, with a fixed seed.  On a
failure both modes write the input to ``crash-<sha1>`` in the current directory.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib  # also puts this tree's src/ first on the path

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    # Import coapkit with coverage instrumentation; the imports below then reuse the modules.
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.codec.message
        import coapkit.codec.options  # noqa: F401

from coapkit.codec.message import Message, decode, encode  # noqa: E402
from coapkit.codec.option_registry import BY_ATTRIBUTE  # noqa: E402
from coapkit.codec.options import option_problems  # noqa: E402
from coapkit.codec.types import MessageType  # noqa: E402
from coapkit.errors import DecodeError, OptionValueError  # noqa: E402

_ACCESSORS = [*sorted(BY_ATTRIBUTE), "etags"]


class InvariantError(AssertionError):
    """The decoder broke one of the invariants in the module docstring."""


def _check_error(data: bytes, error: DecodeError) -> None:
    if not error.reason:
        raise InvariantError("DecodeError without a reason")
    if not 0 <= error.offset <= len(data):
        raise InvariantError(f"DecodeError offset {error.offset} is outside the input")
    if len(data) >= 4 and data[0] >> 6 == 1:
        mtype = MessageType((data[0] >> 4) & 3)
        mid = (data[2] << 8) | data[3]
        if error.mtype != mtype or error.mid != mid:
            raise InvariantError(
                f"DecodeError has type {error.mtype} MID {error.mid}; the header has {mtype} {mid}"
            )
    elif error.mtype is not None or error.mid is not None:
        raise InvariantError("DecodeError has a type or MID although the header is unreadable")


def check(data: bytes) -> Message | None:
    """Check the invariants for one input; return the decoded message, if any.

    Any exception other than :class:`DecodeError` from the decoder propagates as it is.
    """
    try:
        message = decode(data)
    except DecodeError as error:
        _check_error(data, error)
        return None
    wire = encode(message)
    again = decode(wire)
    if again != message:
        raise InvariantError(f"re-encoding changed the message: {message!r} -> {again!r}")
    if wire != data:
        raise InvariantError(f"re-encoding changed the bytes: {data.hex()} -> {wire.hex()}")
    options = message.options
    option_problems(options)
    repr(message)
    for name in _ACCESSORS:
        with contextlib.suppress(OptionValueError):
            getattr(options, name)
    return message


def TestOneInput(data: bytes) -> None:  # the name atheris and libFuzzer users expect
    check(data)


# -- the pure-Python mode (fuzzlib's loop, with edits and proportions for the decoder) -------

#: fuzzlib's edits, plus new first bytes (token lengths), interesting bytes more often
mutate = functools.partial(fuzzlib.mutate, interesting_share=0.7, first_byte=True)
read_inputs = fuzzlib.read_inputs
_PURE_PYTHON = {"mutator": mutate, "random_share": 0.2, "empty_pool": b"\x40\x01\x00\x00"}


def fuzz_without_atheris(
    seeds: Iterable[bytes], runs: int, seed: int = 0, max_len: int = 512
) -> tuple[int, int]:
    """Run ``runs`` inputs through :func:`check`; return (runs, inputs that decoded)."""
    return fuzzlib.fuzz_without_atheris(
        check, seeds, runs, seed=seed, max_len=max_len, name="fuzz_decode", **_PURE_PYTHON
    )


def main(argv: list[str]) -> int:
    return fuzzlib.main(
        argv,
        name="fuzz_decode",
        test_one_input=TestOneInput,
        check=check,
        generate=None,
        coverage_guided=COVERAGE_GUIDED,
        max_len=512,
        **_PURE_PYTHON,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
