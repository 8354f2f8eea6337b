"""SystemEntropy: the kernel's randomness, read in blocks, each byte handed out once."""

from __future__ import annotations

import os
import statistics
from unittest import mock

import pytest

from coapkit.runtime import entropy
from coapkit.runtime.entropy import SystemEntropy


def test_draws_come_from_one_urandom_call_per_block() -> None:
    source = SystemEntropy()
    with mock.patch.object(entropy.os, "urandom", wraps=os.urandom) as urandom:
        tokens = [source.randbytes(8) for _ in range(512)]  # 4,096 bytes: one block
        assert urandom.call_count == 1
        source.randbytes(8)
        assert urandom.call_count == 2
    assert all(len(token) == 8 for token in tokens)
    assert len(set(tokens)) == len(tokens)


def test_each_byte_is_handed_out_once() -> None:
    blocks = [bytes(range(256)) * 16, bytes(reversed(range(256))) * 16]
    source = SystemEntropy()
    with mock.patch.object(entropy.os, "urandom", side_effect=blocks):
        drawn = b"".join(source.randbytes(n) for n in (1, 7, 8, 4080, 8))
    # the first block to its last byte, then the second block from its start
    assert drawn == blocks[0] + blocks[1][:8]


def test_large_requests_go_to_the_kernel_directly() -> None:
    source = SystemEntropy()
    assert len(source.randbytes(10_000)) == 10_000
    assert source.randbytes(0) == b""
    with pytest.raises(ValueError):
        source.randbytes(-1)


def test_getrandbits_and_random_have_the_documented_ranges() -> None:
    source = SystemEntropy()
    assert source.getrandbits(0) == 0
    for k in (1, 7, 16, 53, 64):
        values = [source.getrandbits(k) for _ in range(2000)]
        assert all(0 <= v < 2**k for v in values)
        assert max(values).bit_length() == k  # the top bit is used
    with pytest.raises(ValueError):
        source.getrandbits(-1)
    floats = [source.random() for _ in range(20_000)]
    assert all(0.0 <= x < 1.0 for x in floats)
    assert 0.48 < statistics.fmean(floats) < 0.52
    assert min(floats) < 0.001 and max(floats) > 0.999


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_draws() -> None:
    source = SystemEntropy()
    source.randbytes(8)  # a block is in the pool now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what would the parent draw next?
        try:
            os.write(write, source.randbytes(16))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != source.randbytes(16)
