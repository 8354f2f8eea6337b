"""A headless Chromium driven over the DevTools protocol (its remote-debugging WebSocket,
with aiohttp's client): open a page, evaluate JavaScript in it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--remote-debugging-port=0",  # a free port, written to DevToolsActivePort
]


def chromium_path() -> str:
    """Debian's chromium; a failure in CI (which installs it), else a skip."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (.ci/run installs it)")
    pytest.skip("chromium is not installed")


class Chromium:
    """``async with Chromium() as browser: page = await browser.open(url)``."""

    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="coapkit-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Chromium:
        profile = Path(self._profile.name)
        self._process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        active = profile / "DevToolsActivePort"
        for _ in range(300):
            if active.exists() and len(active.read_text().split()) == 2:
                break
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("chromium did not open its DevTools port in 30 s")
        port, path = active.read_text().split()
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(
            f"ws://127.0.0.1:{port}{path}", max_msg_size=0
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._socket is not None and not self._socket.closed:
                with suppress(TimeoutError, ConnectionError, RuntimeError):
                    await asyncio.wait_for(self.send("Browser.close"), 5)
        finally:
            if self._reader is not None:
                self._reader.cancel()
            if self._socket is not None:
                await self._socket.close()
            if self._session is not None:
                await self._session.close()
            process = self._process
            if process is not None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            self._profile.cleanup()

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._replies.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the DevTools connection closed"))

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        """One DevTools command; its result (RuntimeError for an error reply)."""
        assert self._socket is not None
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[number] = future
        command: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        await self._socket.send_str(json.dumps(command))
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str) -> Page:
        target = await self.send("Target.createTarget", url=url)
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return Page(self, attached["sessionId"])


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.browser.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")
