"""``coapkit rd`` in a subprocess, on a free port of loopback."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cli.helpers import cli_env

_LISTENING = re.compile(r"resource directory on coap://127\.0\.0\.1:(\d+)")


class RDProcess:
    """``coapkit rd --listen coap://127.0.0.1:PORT --store STORE ...`` (port 0 by default:
    the port is read from its start-up line); stderr goes to a file."""

    def __init__(self, store: str, *args: str, port: int = 0) -> None:
        self.store = store
        self.log_file = tempfile.NamedTemporaryFile(prefix="coapkit-rd-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coapkit",
                "rd",
                "--listen",
                f"coap://127.0.0.1:{port}",
                "--store",
                store,
                "--loop",
                "asyncio",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            env=cli_env(),
        )
        deadline = time.monotonic() + 20
        while True:
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"coapkit rd did not start:\n{self.log()}")
            time.sleep(0.02)
        self.url = f"coap://127.0.0.1:{self.port}"

    def log(self) -> str:
        return Path(self.log_file.name).read_text("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
