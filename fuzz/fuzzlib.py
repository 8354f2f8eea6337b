"""What the fuzz harnesses share: the command line, the pure-Python mode, crash files.

A harness module defines ``TestOneInput(data: bytes)`` (raising on a broken
invariant) and calls :func:`main` with it.  With atheris installed (and
neither ``--no-atheris`` nor ``FUZZ_NO_ATHERIS=1``) libFuzzer drives it;
otherwise :func:`fuzz_without_atheris` feeds it the seeds, random inputs from
the harness's own generator, and random edits of both.  See fuzz/README.md.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

# Fuzz the coapkit of the tree this file sits in, not whichever one is installed.
SRC = Path(__file__).resolve().parent.parent / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

try:
    import atheris
except ImportError:
    atheris = None

Check = Callable[[bytes], object]
Generate = Callable[[random.Random], bytes]


def atheris_wanted(module_name: str) -> bool:
    """Whether this run is a coverage-guided one (the harness runs as a script)."""
    return (
        atheris is not None
        and module_name == "__main__"
        and "--no-atheris" not in sys.argv
        and "--write-seeds" not in sys.argv
        and not os.environ.get("FUZZ_NO_ATHERIS")
    )


_INTERESTING = (0x00, 0x01, 0x0C, 0x0D, 0x0E, 0x0F, 0x40, 0x7F, 0x80, 0xC0, 0xD0, 0xE0, 0xF0, 0xFF)


def mutate(
    data: bytes,
    pool: Sequence[bytes],
    rng: random.Random,
    max_len: int,
    *,
    interesting_share: float = 0.5,
    first_byte: bool = False,
) -> bytes:
    """One to four random edits of ``data``: bit flips, interesting bytes (a share
    ``interesting_share`` of the byte overwrites), truncations, insertions, deletions,
    splices with ``pool``, duplicated chunks; with ``first_byte`` also a new first byte
    (for CoAP, mostly a new token length)."""
    kinds = 8 if first_byte else 7
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(kinds)
        i = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:  # flip a bit
            j = min(i, len(buf) - 1)
            buf[j] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:  # an interesting byte, or a random one
            j = min(i, len(buf) - 1)
            interesting = rng.random() < interesting_share
            buf[j] = rng.choice(_INTERESTING) if interesting else rng.randrange(256)
        elif kind == 2:  # truncate
            del buf[i:]
        elif kind == 3:  # insert random bytes
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif kind == 4 and buf:  # delete a few bytes
            del buf[i : i + rng.randint(1, 8)]
        elif kind == 5 and pool:  # splice with another input
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            buf = buf[:i] + bytearray(other[j:])
        elif kind == 6 and first_byte:
            if buf:  # a new token length (or a new first byte)
                if rng.random() < 0.8:
                    buf[0] = (buf[0] & 0xF0) | rng.randrange(16)
                else:
                    buf[0] = rng.randrange(256)
        elif kind == kinds - 1:  # duplicate a chunk (repeats options)
            j = rng.randrange(len(buf) + 1)
            buf[i:i] = buf[j : j + rng.randint(1, 16)]
    return bytes(buf[:max_len])


Mutate = Callable[[bytes, Sequence[bytes], random.Random, int], bytes]


def fuzz_without_atheris(
    check: Check,
    seeds: Iterable[bytes],
    runs: int,
    *,
    seed: int = 0,
    max_len: int = 1024,
    generate: Generate | None = None,
    name: str = "fuzz",
    mutator: Mutate = mutate,
    random_share: float = 0.05,
    empty_pool: bytes = b"",
) -> tuple[int, int]:
    """Run ``runs`` inputs through ``check``: the seeds, then generated, random (a share
    ``random_share`` of the rest) and mutated ones (``mutator``).

    Returns ``(runs, accepted)`` where ``accepted`` counts inputs for which
    ``check`` returned a true value (the harness's "it parsed" or "it did
    something"); those become parents of later mutations.  A failing input is
    written to ``crash-<sha1>`` in the current directory before the exception
    propagates.
    """
    rng = random.Random(seed)
    pool = [s[:max_len] for s in seeds]
    first = len(pool)
    if not pool:
        pool = [empty_pool]
    accepted = 0
    for n in range(runs):
        if n < first:
            data = pool[n]
        elif generate is not None and rng.random() < 0.4:
            data = generate(rng)[:max_len]
        elif rng.random() < random_share:
            data = rng.randbytes(rng.randrange(min(max_len, 64) + 1))
        else:
            data = mutator(rng.choice(pool), pool, rng, max_len)
        try:
            result = check(data)
        except Exception:
            save_crash(data, name)
            raise
        if result:
            accepted += 1
            if len(pool) < 4096 and rng.random() < 0.05:
                pool.append(data)
    return runs, accepted


def save_crash(data: bytes, name: str = "fuzz") -> Path:
    path = Path(f"crash-{hashlib.sha1(data).hexdigest()}")
    path.write_bytes(data)
    print(
        f"{name}: failing input ({len(data)} bytes, hex {data[:200].hex()}) written to {path}",
        file=sys.stderr,
    )
    return path


def read_inputs(paths: Iterable[str]) -> list[bytes]:
    """The contents of the given files and of the files in the given directories, sorted."""
    out: list[bytes] = []
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        out.extend(p.read_bytes() for p in files)
    return out


def main(
    argv: list[str],
    *,
    name: str,
    test_one_input: Callable[[bytes], None],
    check: Check,
    generate: Generate | None,
    coverage_guided: bool,
    max_len: int = 1024,
    **pure_python: Any,
) -> int:
    """The command line of every harness (see fuzz/README.md)."""
    if coverage_guided:
        assert atheris is not None
        atheris.Setup([sys.argv[0], *argv], test_one_input)
        atheris.Fuzz()
        return 0
    if atheris is None and "--no-atheris" not in argv:
        print(f"{name}: atheris is not installed; using the pure-Python mode")
    runs, seed, paths = 100_000, 0, []
    for arg in argv:
        key, _, value = arg.partition("=")
        if arg == "--no-atheris":
            continue
        if key in ("-runs", "-atheris_runs"):
            runs = int(value)
        elif key == "-seed":
            seed = int(value)
        elif key == "-max_len":
            max_len = int(value)
        elif arg.startswith("-"):
            print(f"{name}: ignoring {arg} (not used without atheris)", file=sys.stderr)
        else:
            paths.append(arg)
    seeds = read_inputs(paths)
    print(f"pure-Python mode: {runs} inputs, seed {seed}, {len(seeds)} seed inputs")
    start = time.monotonic()
    done, accepted = fuzz_without_atheris(
        check,
        seeds,
        runs,
        seed=seed,
        max_len=max_len,
        generate=generate,
        name=name,
        **pure_python,
    )
    elapsed = time.monotonic() - start
    print(f"Done {done} runs in {elapsed:.1f} s ({accepted} accepted)")
    return 0
