"""A seed fixes the whole run: the same program on the same seed gives the same trace."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from coapkit.testing import TraceEntry, VirtualNetwork, run
from tests.testing.helpers import App


async def scenario(seed: int) -> list[TraceEntry]:
    app = App()
    net = VirtualNetwork(seed=seed, loss=0.2, duplicate=0.1, jitter=0.03)
    async with net.server(app.site), net.client() as one, net.client() as two:
        changes = asyncio.create_task(change(app))
        async with one.observe("coap://server/temperature") as observation:
            await asyncio.gather(
                one.post("coap://server/log", "a"),
                two.get("coap://server/slow?s=1"),
                two.get("coap://server/big"),
            )
            async for response in observation:
                if response.text == "25":
                    break
        await changes
    return net.trace


async def change(app: App) -> None:
    for value in range(21, 26):
        await asyncio.sleep(3)
        app.thermometer.set(value)


def test_the_same_seed_gives_the_same_trace() -> None:
    first = run(scenario(seed=42))
    second = run(scenario(seed=42))
    assert len(first) > 50
    assert first == second  # times, addresses and every byte (tokens, message IDs)


def test_another_seed_gives_another_trace() -> None:
    assert run(scenario(seed=1)) != run(scenario(seed=2))


def digest(trace: list[TraceEntry]) -> str:
    return hashlib.sha256(repr(trace).encode()).hexdigest()


def test_the_same_trace_in_another_process_with_other_hash_seeds() -> None:
    """Nothing depends on set or dict order of hashed strings, nor on the machine's speed."""
    here = digest(run(scenario(seed=42)))
    root = Path(__file__).resolve().parents[2]
    code = (
        "from coapkit.testing import run\n"
        "from tests.testing.test_determinism import digest, scenario\n"
        "print(digest(run(scenario(seed=42))))\n"
    )
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=True,
            timeout=60,
        )
        assert result.stdout.strip() == here
