"""Helpers for the command-line tests: run the real ``coapkit`` tool, start its servers, fake peers.

Every test runs ``python -m coapkit`` as a subprocess with ``PYTHONPATH``
pointing at this checkout's ``src``, so the tests exercise the console
script end to end (argument parsing, exit status, stdout and stderr) and
keep working wherever the tree is checked out.  Traffic stays on loopback.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# The tests start a couple of hundred short-lived ``coapkit`` processes.  They
# share one bytecode cache in a temporary directory, so that none of them
# compiles coapkit from source again, even where PYTHONDONTWRITEBYTECODE is
# set, and nothing is written into the source tree.
_PYCACHE = tempfile.mkdtemp(prefix="coapkit-cli-tests-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, ignore_errors=True)


def cli_env(extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(SRC)]
    if extra_path is not None:
        paths.insert(0, extra_path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONWARNINGS", None)
    return env


def run(
    *args: str,
    input: bytes | None = None,
    timeout: float = 30,
    cwd: str | Path | None = None,
    extra_path: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``coapkit ARGS`` to completion; stdout and stderr as text."""
    result = subprocess.run(
        [sys.executable, "-m", "coapkit", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        env=cli_env(extra_path),
        cwd=cwd,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def run_bytes(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coapkit", *args],
        capture_output=True,
        timeout=timeout,
        env=cli_env(),
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command printed on stderr (asserting there is exactly one)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


_SERVING = re.compile(r"serving CoAP on (\S+):(\d+)")


class ServerProcess:
    """``coapkit server ...`` or ``coapkit fileserver ...`` in a subprocess, on a free port.

    The server binds port 0 and reports the port it got in its first log line,
    so there is no race for a port.  Its stderr goes to a file (never a pipe
    that could fill up).
    """

    def __init__(self, *args: str, host: str = "127.0.0.1") -> None:
        self.log_file = tempfile.NamedTemporaryFile(prefix="coapkit-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coapkit", *args, "--bind", host, "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            env=cli_env(),
        )
        self.host = host
        self._final_log: str | None = None
        deadline = time.monotonic() + 15
        while True:
            match = _SERVING.search(self.log())
            if match:
                self.port = int(match.group(2))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.log()}")
            time.sleep(0.02)
        literal = f"[{host}]" if ":" in host else host
        self.url = f"coap://{literal}:{self.port}"

    def log(self) -> str:
        if self._final_log is not None:
            return self._final_log
        return Path(self.log_file.name).read_text("utf-8", "replace")

    def wait_for_log(self, text: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the server log:\n{self.log()}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._final_log is None:
            self._final_log = self.log()
            self.log_file.close()
        return self.process.returncode


_LISTENING = re.compile(r"serving CoAP on (.+)$", re.MULTILINE)


class Listening(ServerProcess):
    """``coapkit server|fileserver ARGS`` with ``--listen`` URIs (port 0 each): ``uri[scheme]``
    is where each listener is bound, as the start-up line names it."""

    def __init__(self, *args: str | Path, extra_path: str | None = None) -> None:
        self.log_file = tempfile.NamedTemporaryFile(prefix="coapkit-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coapkit", *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            env=cli_env(extra_path),
        )
        self._final_log: str | None = None
        deadline = time.monotonic() + 15
        while True:
            match = _LISTENING.search(self.log())
            if match:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.log()}")
            time.sleep(0.02)
        bound = [uri.strip().removesuffix(";") for uri in match.group(1).split(",")]
        self.bound = bound
        self.uri = {uri.partition("://")[0]: uri for uri in bound}


# -- fake peers -----------------------------------------------------------------------------


class FakePeer:
    """A UDP socket on 127.0.0.1 answering each datagram with ``reply(data)`` (None: silence)."""

    def __init__(self, reply: Callable[[bytes, int], bytes | None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._reply = reply
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                data, address = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            self.received.append(data)
            answer = self._reply(data, len(self.received))
            if answer is not None:
                self.sock.sendto(answer, address)

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self.sock.close()


def rst_for(data: bytes, count: int) -> bytes | None:
    """A Reset for every CON (RFC 7252 §4.2): type 3, code 0.00, the same MID."""
    if len(data) >= 4 and (data[0] >> 4) & 3 == 0:
        return bytes((0x70, 0, data[2], data[3]))
    return None


def ack_on_retransmission(data: bytes, count: int) -> bytes | None:
    """Ignore the first datagram; answer the (identical) retransmission with ACK 2.05 "late"."""
    if count < 2:
        return None
    tkl = data[0] & 0x0F
    token = data[4 : 4 + tkl]
    return bytes((0x60 | tkl, 0x45, data[2], data[3])) + token + b"\xfflate"


def run_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``coapkit ARGS`` through :func:`coapkit.cli.main.main` in this process (no network).

    For the many argument-parsing cases, where a subprocess each would only
    cost time; the end-to-end tests use :func:`run`.
    """
    import contextlib
    import io

    from coapkit.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())
