"""A second host for socket tests: a network namespace joined to this one by a veth pair.

Loopback cannot fill a send buffer (it delivers at once and has no queue) nor
lose a neighbour, so the tests of full send buffers (``EAGAIN``), full device
queues (``ENOBUFS``) and unreachable hosts (``EHOSTUNREACH``) put a peer in a
namespace of their own, behind a veth link whose queue discipline they choose
(``tbf``: a rate and a queue limit).  Needs root and iproute2; the tests skip
without them, except in CI, which runs as root and must not skip.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_counter = 0


def require_netns() -> None:
    """Skip (fail in CI) where namespaces cannot be made here."""
    missing = None
    if os.geteuid() != 0:
        missing = "root"
    elif shutil.which("ip") is None or shutil.which("tc") is None:
        missing = "iproute2 (ip, tc)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"CI must run the namespace tests; missing: {missing}")
        pytest.skip(f"needs {missing} for a network namespace")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Link:
    namespace: str
    device: str  #: the veth end on this side
    local: str  #: this side's address
    peer: str  #: the namespace's address
    absent: str  #: an address on the link that nobody has

    def exec(self, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start a command inside the namespace."""
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            ["ip", "netns", "exec", self.namespace, *argv], text=True, **kwargs
        )

    def set_qdisc(self, spec: str) -> None:
        subprocess.run(
            ["tc", "qdisc", "replace", "dev", self.device, "root", *spec.split()],
            check=True,
            capture_output=True,
        )


@contextmanager
def veth_link() -> Iterator[Link]:
    """A namespace with address .2 on a /24, this side .1; removed afterwards."""
    require_netns()
    global _counter
    _counter += 1
    tag = f"{os.getpid() % 100000}x{_counter}"
    namespace, device, inside = f"ck{tag}", f"cka{tag}", f"ckb{tag}"
    subnet = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", device, "type", "veth", "peer", "name", inside, "netns", namespace)
        _ip("addr", "add", f"{subnet}.1/24", "dev", device)
        _ip("link", "set", device, "up")
        _ip("-n", namespace, "addr", "add", f"{subnet}.2/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        # An absent neighbour is given up after one ARP probe of 100 ms (not 3 s).
        neigh = Path(f"/proc/sys/net/ipv4/neigh/{device}")
        (neigh / "mcast_solicit").write_text("1")
        (neigh / "retrans_time_ms").write_text("100")
        yield Link(namespace, device, f"{subnet}.1", f"{subnet}.2", f"{subnet}.3")
    finally:
        subprocess.run(["ip", "link", "del", device], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


_RECEIVER = r"""
import json, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 0))
sock.settimeout(float(sys.argv[3]))
print(sock.getsockname()[1], flush=True)
expected = int(sys.argv[2])
got = []
while len(got) < expected:
    try:
        data, source = sock.recvfrom(65536)
    except socket.timeout:
        break
    got.append(data[:8].decode("ascii", "replace"))
    if len(got) == 1:
        sock.sendto(b"hello from the namespace", source)
print(json.dumps(got), flush=True)
"""


class Receiver:
    """A UDP socket inside the namespace that records the first bytes of what arrives and
    answers the first datagram (so the sender can show it still receives)."""

    def __init__(self, link: Link, expected: int, idle: float = 3.0) -> None:
        self.process = link.exec(
            sys.executable,
            "-c",
            _RECEIVER,
            link.peer,
            str(expected),
            str(idle),
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.address = (link.peer, int(self.process.stdout.readline()))

    def result(self, timeout: float = 30.0) -> list[str]:
        assert self.process.stdout is not None
        out, _ = self.process.communicate(timeout=timeout)
        return list(json.loads(out))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
