"""Start real CoAP peers that nobody here wrote (libcoap's command-line tools, aiocoap), on
loopback.

In CI (``CI`` set in the environment) a missing libcoap is a failure, never a
skip: the interoperability tests are the proof that coapkit speaks CoAP.  The
same goes for :func:`aiocoap_venv`, aiocoap with an extra whose dependencies
clash with coapkit's test environment, installed into a virtual environment
of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

COAP_CLIENT = "coap-client-notls"
COAP_SERVER = "coap-server-notls"


def require_libcoap() -> None:
    missing = [tool for tool in (COAP_CLIENT, COAP_SERVER) if shutil.which(tool) is None]
    if missing:
        message = (
            f"libcoap tools not installed: {', '.join(missing)} (apt-get install libcoap3-bin)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def require_aiocoap() -> None:
    """aiocoap is a test dependency (``pip install coapkit[test]``); missing in CI is a failure."""
    try:
        import aiocoap  # noqa: F401
    except ImportError:
        message = "aiocoap not installed (pip install aiocoap==0.4.17)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def aiocoap_venv(extra: str, version: str) -> Path:
    """The ``bin`` directory of a virtual environment holding ``aiocoap[extra]==version``
    (aiocoap's ``ws`` extra wants a ``websockets`` older than coapkit's tests use).

    Made once in the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``,
    ``coapkit-tests/aiocoap-EXTRA-VERSION-pyXY``) and reused while its ``ready`` file,
    written last, is there.  Skips saying why when it cannot be made (no package
    index), fails instead in CI.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = Path(base) / "coapkit-tests" / f"aiocoap-{extra}-{version}-{python}"
    ready = venv / "ready"
    requirement = f"aiocoap[{extra}]=={version}"
    if ready.exists():
        return venv / "bin"
    # (made where it stays: its scripts name their interpreter by absolute path)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        _unavailable(f"could not make a virtual environment for aiocoap: {made.stderr.strip()}")
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    command += ["--disable-pip-version-check", requirement]
    try:
        installed = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"installing {requirement} took more than 10 minutes (package index slow?)")
    if installed.returncode != 0:
        last = (installed.stderr.strip().splitlines() or ["no output"])[-1]
        _unavailable(
            f"could not install {requirement} into a virtual environment of its own "
            f"(is the package index reachable?): {last}"
        )
    ready.write_text(requirement + "\n")
    return venv / "bin"


def free_tcp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_for_coap(host: str, port: int, deadline: float) -> None:
    """Ping until the server answers (an empty CON gets an RST) or the deadline passes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        mid = 1
        while time.monotonic() < deadline:
            sock.sendto(bytes((0x40, 0, 0, mid)), (host, port))
            try:
                data = sock.recv(64)
            except (TimeoutError, ConnectionRefusedError):
                mid += 1
                continue
            if data[:1] == b"\x70":
                return
        raise RuntimeError(f"no CoAP server answered on {host}:{port}")


@contextmanager
def libcoap_server(*args: str, host: str = "127.0.0.1") -> Iterator[int]:
    """Run ``coap-server-notls`` on a free port; yields the port."""
    require_libcoap()
    port = free_udp_port(host)
    process = subprocess.Popen(
        [COAP_SERVER, "-A", host, "-p", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_coap(host, port, time.monotonic() + 10)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def coap_client(
    *args: str, timeout: float = 30, input_data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``coap-client-notls`` with ``args``; returns the completed process."""
    require_libcoap()
    return subprocess.run(
        [COAP_CLIENT, *args],
        capture_output=True,
        timeout=timeout,
        input=input_data,
        check=False,
    )


async def run_coap_client(
    *args: str, timeout: float = 15, input_data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``coap-client-notls`` without blocking the event loop (a coapkit server may be
    serving in it); ``-B`` bounds coap-client's own wait, ``timeout`` ours."""
    require_libcoap()
    command = [COAP_CLIENT, "-B", str(max(1, int(timeout) - 2)), *args]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.DEVNULL if input_data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(input_data), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@dataclass(frozen=True)
class Dumped:
    """One message as libcoap prints it with ``-v 6`` or more:
    ``v:1 t:ACK c:2.01 i:af08 {01} [ Location-Path:items, Location-Path:1 ] :: 'payload'``."""

    mtype: str  #: CON, NON, ACK or RST
    code: str  #: "GET", "2.05", "0.00"...
    mid: int
    token: str  #: hex
    options: tuple[tuple[str, str], ...]  #: (name, value) as libcoap renders them
    payload: str | None  #: as libcoap renders it (non-printable bytes escaped), None if absent

    def option(self, name: str) -> list[str]:
        return [value for key, value in self.options if key == name]


_DUMP = re.compile(
    r"^v:1 t:(?P<t>\w+) c:(?P<c>\S+) i:(?P<i>[0-9a-f]{4}) \{(?P<tok>[0-9a-f]*)\} "
    r"\[ ?(?P<opts>.*?) ?\](?: :: '(?P<payload>.*)')?$"
)


def parse_dump(output: bytes) -> list[Dumped]:
    """The messages in coap-client's verbose output, in the order it printed them."""
    messages = []
    for line in output.decode("utf-8", "replace").splitlines():
        start = line.find("v:1 t:")
        if start < 0:
            continue
        match = _DUMP.match(line[start:])
        assert match is not None, f"unexpected libcoap dump line: {line!r}"
        options = []
        if match["opts"]:
            for item in match["opts"].split(", "):
                name, _, value = item.partition(":")
                options.append((name, value))
        messages.append(
            Dumped(
                match["t"],
                match["c"],
                int(match["i"], 16),
                match["tok"],
                tuple(options),
                match["payload"],
            )
        )
    return messages
