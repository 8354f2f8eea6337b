"""One coapkit Client asking one URI again and again, one request at a time, for
bench/bench_proxy.py: prints ``rps=... p50_us=... p99_us=... cpu_us=...`` (cpu_us: this
process's CPU time per request)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from coapkit import Client


async def main(args: argparse.Namespace) -> None:
    async with Client() as client:
        for _ in range(200):  # warm up (and fill a proxy's cache)
            await client.get(args.uri)
        latencies: list[float] = []
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + args.duration
        while (now := time.perf_counter()) < deadline:
            await client.get(args.uri)
            latencies.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    latencies.sort()
    print(
        f"rps={len(latencies) / elapsed:.1f} "
        f"p50_us={statistics.median(latencies) * 1e6:.0f} "
        f"p99_us={latencies[int(len(latencies) * 0.99)] * 1e6:.0f} "
        f"cpu_us={cpu / len(latencies) * 1e6:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
