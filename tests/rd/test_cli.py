"""``coapkit rd`` and ``coapkit server --register`` as processes: the store surviving
restarts, two directories sharing Redis, and a kill -9 during a stream of registrations."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from coapkit import Client, Code
from coapkit.rd import Lookup, SQLiteStore
from tests.cli.helpers import ServerProcess, one_error_line, run
from tests.rd.processes import RDProcess
from tests.rd.redis_server import free_port

pytestmark = pytest.mark.real_loop

LINKS = b'</sensors/temp>;rt="temperature";if="sensor",</sensors/light>;rt="light-lux"'


async def eps(client: Client, rd: RDProcess, query: str = "") -> list[str]:
    response = await client.get(f"{rd.url}/rd-lookup/ep{query}", timeout=10)
    assert response.code == Code.CONTENT, response
    return [str(link.get("ep")) for link in response.links()]


async def test_server_registers_and_deregisters(tmp_path: Path) -> None:
    rd = RDProcess(str(tmp_path / "rd.sqlite"))
    try:
        server = ServerProcess("server", "--register", rd.url, "--ep", "demo", "--lt", "60")
        async with Client() as client:
            for _ in range(200):
                if await eps(client, rd) == ["demo"]:
                    break
                await asyncio.sleep(0.05)
            response = await client.get(f"{rd.url}/rd-lookup/res?ep=demo&rt=greeting")
            assert [link.target for link in response.links()] == [
                f"coap://127.0.0.1:{server.port}/hello"
            ]
            assert server.stop() == 0
            assert await eps(client, rd) == []
        assert "removed the registration" in server.log()
    finally:
        assert rd.stop() == 0


def test_store_errors_are_one_line(tmp_path: Path) -> None:
    unwritable = run("rd", "--listen", "coap://127.0.0.1:0", "--store", "/nonexistent/x/rd.db")
    assert unwritable.returncode == 10
    assert "cannot open the store" in one_error_line(unwritable)
    port = free_port()
    unreachable = run(
        "rd", "--listen", "coap://127.0.0.1:0", "--store", f"redis://127.0.0.1:{port}/0"
    )
    assert unreachable.returncode == 7
    assert "cannot reach the Redis store" in one_error_line(unreachable)
    # without the redis package: one line naming the extra
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "redis.py").write_text("raise ImportError('no redis here')\n")
    missing = run(
        "rd",
        "--listen",
        "coap://127.0.0.1:0",
        "--store",
        "redis://127.0.0.1:1/0",
        extra_path=str(blocker),
    )
    assert missing.returncode == 6
    assert "pip install 'coapkit[redis]'" in one_error_line(missing)


async def test_two_directories_share_redis_and_survive_restarts(redis_url: str) -> None:
    store = redis_url.rsplit("/", 1)[0] + "/3"
    first, second = RDProcess(store), RDProcess(store)
    try:
        async with Client() as client:
            created = await client.post(f"{first.url}/rd?ep=node1&lt=300", LINKS, timeout=10)
            assert created.code == Code.CREATED
            location = "/" + "/".join(created.location_path)
            assert await eps(client, second) == ["node1"]
            for number in range(2, 21):
                target = first if number % 2 else second
                response = await client.post(f"{target.url}/rd?ep=node{number}", LINKS)
                assert response.code == Code.CREATED
            assert (await client.post(f"{second.url}{location}?lt=600")).code == Code.CHANGED
            found = await client.get(f"{first.url}/rd-lookup/ep?ep=node1")
            assert found.links()[0].get("lt") == "600"
            # the same name through the other process: the same registration
            again = await client.post(f"{second.url}/rd?ep=node1&lt=600", LINKS)
            assert "/" + "/".join(again.location_path) == location
            # a restart of either keeps every registration
            first.stop()
            assert len(await eps(client, second)) == 20
            first = RDProcess(store)
            second.stop()
            second = RDProcess(store)
            assert len(await eps(client, first)) == 20
            assert len(await eps(client, second)) == 20
            res = await client.get(f"{second.url}/rd-lookup/res?rt=temperature&count=5")
            assert len(res.links()) == 5
            assert (await client.delete(f"{first.url}{location}")).code == Code.DELETED
            assert "node1" not in await eps(client, second)
            # expiry by the keys' TTL, seen by both
            short = await client.post(f"{first.url}/rd?ep=short&lt=1", LINKS)
            assert short.code == Code.CREATED
            assert "short" in await eps(client, second)
            await asyncio.sleep(1.3)
            assert "short" not in await eps(client, second)
            assert "short" not in await eps(client, first)
    finally:
        first.stop()
        second.stop()


async def _stream_until_killed(rd: RDProcess, seed: int) -> list[str]:
    """Register endpoints, 8 at a time, until the directory is killed (-9) at a random
    moment; the names whose 2.01 came back."""
    acknowledged: list[str] = []
    rng = random.Random(seed)
    kill_after = rng.uniform(0.4, 1.2)
    counter = iter(range(1_000_000))

    async def worker(client: Client) -> None:
        while rd.process.poll() is None:
            name = f"ep{next(counter)}"
            try:
                response = await client.post(f"{rd.url}/rd?ep={name}", LINKS, timeout=1.0)
            except Exception:
                return
            if response.code == Code.CREATED:
                acknowledged.append(name)

    async with Client() as client:
        tasks = [asyncio.create_task(worker(client)) for _ in range(8)]
        await asyncio.sleep(kill_after)
        rd.process.send_signal(signal.SIGKILL)
        await asyncio.gather(*tasks)
    rd.process.wait()
    return acknowledged


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_kill_9_keeps_every_acknowledged_registration(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        spec = str(tmp_path / "crash.sqlite")
    else:
        spec = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/5"
    for round_number in range(3):
        rd = RDProcess(spec, "--max-per-source", "1000000")
        acknowledged = await _stream_until_killed(rd, seed=round_number)
        assert rd.process.returncode == -signal.SIGKILL
        assert len(acknowledged) > 20, rd.log()
        if backend == "sqlite":
            with sqlite3.connect(spec) as check:
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            store = SQLiteStore(spec)
        else:
            from coapkit.rd.redis_store import RedisStore

            store = RedisStore(spec)
        await store.open()
        try:
            now = time.time()
            stored = {item.ep for item in await store.endpoints(Lookup(), now)}
            missing = [name for name in acknowledged if name not in stored]
            assert not missing, f"acknowledged but lost: {missing[:10]}"
            for name in acknowledged[:5]:
                found = await store.find("", name, now)
                assert found is not None and len(found.links) == 2
            print(f"round {round_number}: {len(acknowledged)} acknowledged, {len(stored)} stored")
        finally:
            await store.close()
        # and the directory starts again on that store
        again = RDProcess(spec)
        again.stop()
