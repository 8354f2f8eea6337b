"""A real browser (headless Chromium) opens an observable CoAP resource through the cross
proxy and shows its value changing live (Server-Sent Events).  Everything on loopback:
the browser talks to the proxy's HTTP port only, the proxy to the CoAP server."""

from __future__ import annotations

import asyncio
import time

from tests.proxy_live.browser import Chromium, chromium_path
from tests.proxy_live.helpers import live


async def test_a_browser_shows_an_observed_value_changing_live() -> None:
    chromium_path()  # skips (or fails in CI) before anything starts
    async with live() as s, Chromium() as browser:
        s.counter.start(period=0.3)
        page = await browser.open(s.hc("/counter"))
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while len(seen) < 4 and time.monotonic() < deadline:
            value = await page.evaluate("document.getElementById('value')?.textContent ?? ''")
            if value and (not seen or value != seen[-1]):
                seen.append(value)
            await asyncio.sleep(0.1)
        status = await page.evaluate("document.getElementById('status').textContent")
        # the page itself came from the proxy; the values from its event stream
        assert await page.evaluate("document.contentType") == "text/html"
    assert len(seen) >= 4, seen
    numbers = [int(text.removeprefix("value ")) for text in seen]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert status.startswith("live: ")
    assert s.proxy.observations.started == 1
