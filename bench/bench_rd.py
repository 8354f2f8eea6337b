"""Resource directory: registrations per second and lookup latency at 10,000 endpoints.

In one run, each directory in a process of its own on loopback: ``coapkit rd`` on
SQLite, ``coapkit rd`` on Redis (a redis-server started here on a free port) and
``aiocoap-rd`` (aiocoap 0.4.17, in memory).  For each:

1. register ``--endpoints`` endpoints (10,000) of 10 links each, 32 requests in flight
   (coapkit's Client), and report registrations per second; the directory's RSS
   (``/proc/PID/status``) is sampled after every tenth of them;
2. time ``--lookups`` lookups one after the other (p50 and p99): a resource lookup
   by a resource type that one endpoint in 100 has (100 endpoints, 100 links), and
   an endpoint lookup by name (one endpoint).

The ratios coapkit/aiocoap-rd are printed last.  Numbers only: nothing is asserted.
The machine is small and shared: run it when it is quiet.

    .venv/bin/python bench/bench_rd.py [--endpoints 10000] [--lookups 200] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from coapkit import Client, Code  # noqa: E402


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def process(
    command: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def redis_server(directory: str) -> Iterator[str]:
    port = free_port(socket.SOCK_STREAM)
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
               "--save", "", "--appendonly", "yes"]  # fmt: skip
    with process(command):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def links_of(number: int) -> bytes:
    kind = f"type-{number % 100}"
    return ",".join(
        f'</sensors/s{index}>;rt="{kind if index == 0 else f"sensor-{index}"}";if="sensor";ct=0'
        for index in range(10)
    ).encode()


async def wait_up(client: Client, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.get(f"{url}/.well-known/core", timeout=0.5)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def measure(
    name: str, url: str, pid: int, paths: dict[str, str], endpoints: int, lookups: int
) -> dict[str, float]:
    async with Client(timeout=30) as client:
        await wait_up(client, url)
        samples = [rss_mib(pid)]
        counter = iter(range(endpoints))
        started = time.perf_counter()
        tenth = max(endpoints // 10, 1)

        async def worker() -> None:
            for number in counter:
                response = await client.post(
                    f"{url}{paths['rd']}?ep=node{number}&lt=86400",
                    links_of(number),
                    content_format=40,
                )
                if response.code != Code.CREATED:
                    raise RuntimeError(f"{name}: {response.code} {response.text}")
                if (number + 1) % tenth == 0:
                    samples.append(rss_mib(pid))

        await asyncio.gather(*(worker() for _ in range(32)))
        elapsed = time.perf_counter() - started
        result = {"reg_per_s": endpoints / elapsed}
        for label, query in (
            ("res", f"{paths['res']}?rt=type-42"),
            ("ep", f"{paths['ep']}?ep=node{endpoints // 2 + 42}"),
        ):
            times = []
            for _ in range(lookups):
                begin = time.perf_counter()
                response = await client.get(f"{url}{query}")
                times.append(time.perf_counter() - begin)
                assert response.code == Code.CONTENT and response.payload, (name, response)
            times.sort()
            result[f"{label}_p50_ms"] = statistics.median(times) * 1000
            result[f"{label}_p99_ms"] = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        result["rss_start_mib"] = samples[0]
        result["rss_end_mib"] = samples[-1]
        result["rss_tenths"] = samples  # type: ignore[assignment]
    return result


COAPKIT_PATHS = {"rd": "/rd", "ep": "/rd-lookup/ep", "res": "/rd-lookup/res"}
AIOCOAP_PATHS = {"rd": "/resourcedirectory/", "ep": "/endpoint-lookup/", "res": "/resource-lookup/"}


def coapkit_rd(store: str, port: int) -> list[str]:
    return [sys.executable, "-m", "coapkit", "rd", "--listen", f"coap://127.0.0.1:{port}",
            "--store", store, "--max-per-source", "1000000", "--loop", "asyncio"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--aiocoap-lookups", type=int, default=30)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        with process(coapkit_rd(f"{scratch}/rd.sqlite", port), env) as proc:
            results["coapkit rd, SQLite"] = asyncio.run(
                measure(
                    "sqlite",
                    f"coap://127.0.0.1:{port}",
                    proc.pid,
                    COAPKIT_PATHS,
                    args.endpoints,
                    args.lookups,
                )
            )
        with redis_server(scratch) as url:
            port = free_port()
            with process(coapkit_rd(url, port), env) as proc:
                results["coapkit rd, Redis"] = asyncio.run(
                    measure(
                        "redis",
                        f"coap://127.0.0.1:{port}",
                        proc.pid,
                        COAPKIT_PATHS,
                        args.endpoints,
                        args.lookups,
                    )
                )
        port = free_port()
        script = Path(sys.executable).with_name("aiocoap-rd")
        with process([str(script), "--bind", f"127.0.0.1:{port}"]) as proc:
            results["aiocoap-rd 0.4.17"] = asyncio.run(
                measure(
                    "aiocoap",
                    f"coap://127.0.0.1:{port}",
                    proc.pid,
                    AIOCOAP_PATHS,
                    args.endpoints,
                    args.aiocoap_lookups,
                )
            )
    lines = [
        f"{args.endpoints} endpoints x 10 links, 32 registrations in flight; "
        f"load average {os.getloadavg()[0]:.2f} at the end",
        "",
        "| directory | registrations/s | resource lookup p50 / p99 | endpoint lookup p50 / p99 "
        "| RSS start -> end |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['reg_per_s']:.0f} | {r['res_p50_ms']:.1f} / {r['res_p99_ms']:.1f} ms "
            f"| {r['ep_p50_ms']:.1f} / {r['ep_p99_ms']:.1f} ms "
            f"| {r['rss_start_mib']:.1f} -> {r['rss_end_mib']:.1f} MiB |"
        )
    aio = results["aiocoap-rd 0.4.17"]
    lines.append("")
    for name in ("coapkit rd, SQLite", "coapkit rd, Redis"):
        r = results[name]
        lines.append(
            f"{name} vs aiocoap-rd: resource lookup p50 {aio['res_p50_ms'] / r['res_p50_ms']:.1f}x "
            f"faster, endpoint lookup p50 {aio['ep_p50_ms'] / r['ep_p50_ms']:.1f}x faster, "
            f"registrations {r['reg_per_s'] / aio['reg_per_s']:.2f}x"
        )
    for name, r in results.items():
        tenths = ", ".join(f"{value:.1f}" for value in r["rss_tenths"])  # type: ignore[attr-defined]
        lines.append(f"RSS of {name} at each tenth (MiB): {tenths}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
