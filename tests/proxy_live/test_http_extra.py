"""Without the ``http`` extra the CoAP proxy works, and its HTTP sides say what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import coapkit
from coapkit.proxy.extra import HTTP_EXTRA, require_aiohttp
from coapkit.transports import MissingExtra

SRC = Path(coapkit.__file__).parents[1]

#: run first in a child interpreter: makes ``import aiohttp`` fail as if not installed
BLOCK_AIOHTTP = "import sys; sys.modules['aiohttp'] = None; "


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_AIOHTTP + code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=60,
        check=False,
    )


def test_the_cross_proxy_without_aiohttp_names_the_extra() -> None:
    result = run(
        "from coapkit.proxy import ProxySite\n"
        "from coapkit.proxy.http import HttpCrossProxy\n"
        "HttpCrossProxy(ProxySite())\n"
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"coapkit.transports.MissingExtra: {HTTP_EXTRA}"
    )
    assert HTTP_EXTRA == "HTTP proxying needs the http extra: pip install 'coapkit[http]'"
    assert "During handling" not in result.stderr


def test_an_http_target_without_aiohttp_is_5_05_naming_the_extra() -> None:
    code = (
        "import asyncio\n"
        "from coapkit import Code, Message, Options, Request\n"
        "from coapkit.proxy import ProxySite\n"
        "async def main():\n"
        "    site = ProxySite(forward=True)\n"
        "    options = Options.build(proxy_uri='http://127.0.0.1:1/x')\n"
        "    result = site.dispatch(Request(Message(code=Code.GET, options=options), ('h', 1)))\n"
        "    response = await result\n"
        "    print(response.code, response.text)\n"
        "    await site.close()\n"
        "asyncio.run(main())\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == f"5.05 Proxying Not Supported http://127.0.0.1:1/x: {HTTP_EXTRA}"
    )


def test_an_old_aiohttp_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    monkeypatch.setattr(aiohttp, "__version__", "3.8.6")
    with pytest.raises(MissingExtra, match=r"needs the http extra.*aiohttp 3\.8\.6 is too old"):
        require_aiohttp()
    monkeypatch.setattr(aiohttp, "__version__", "3.9.0")
    require_aiohttp()
