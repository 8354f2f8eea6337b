"""Fixtures for the command-line tests (helpers in :mod:`tests.cli.helpers`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.cli.helpers import FakePeer, ServerProcess, ack_on_retransmission, rst_for


@pytest.fixture(scope="module")
def plugtest_server() -> Iterator[ServerProcess]:
    server = ServerProcess("server", "--plugtest")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    server = ServerProcess("server")
    yield server
    server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A bound UDP port on 127.0.0.1 that never answers (requests to it time out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def reset_peer() -> Iterator[FakePeer]:
    peer = FakePeer(rst_for)
    yield peer
    peer.close()


@pytest.fixture
def lossy_peer() -> Iterator[FakePeer]:
    peer = FakePeer(ack_on_retransmission)
    yield peer
    peer.close()
