"""Server memory under distinct requests, side by side: coapkit vs aiocoap.

Each server (bench/servers/, pinned to CPU 0) gets N distinct CON ``GET /hello``
requests from coapflood (CPU 1, window 64; a fresh message ID and token per
request and a new source port every 65,536 requests, so every request is a new
deduplication entry).  The server's resident set size (VmRSS) is read before
and after; the growth divided by N is what each remembered request costs.

Runs:

* ``coapkit``: the default deduplication caps (100,000 in total, 1,024 per
  remote): memory stops growing once the caps are reached;
* ``coapkit-uncapped``: caps large enough to keep every entry for its
  EXCHANGE_LIFETIME, the cost of an entry;
* ``aiocoap``: aiocoap 0.4.17, which keeps every exchange for EXCHANGE_LIFETIME.

bench_flood.py samples coapkit's memory during the flood and probes it with
other clients; this script is the side-by-side comparison.  Nothing is asserted.

    .venv/bin/python bench/bench_memory.py [--requests 1000000] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_server import (  # noqa: E402
    SERVERS,
    build_coapflood,
    free_port,
    machine,
    parse_flood,
    pin,
    print_table,
    wait_ready,
)

RUNS: dict[str, tuple[str, list[str]]] = {
    "coapkit": ("coapkit", []),
    "coapkit-uncapped": (
        "coapkit",
        ["--dedup-cap-total", "10000000", "--dedup-cap-per-peer", "1000000"],
    ),
    "aiocoap": ("aiocoap", []),
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def measure(flood: Path, run: str, requests: int, loop: str) -> dict[str, float]:
    server, extra = RUNS[run]
    port = free_port()
    command = [sys.executable, str(SERVERS[server]), "--port", str(port), "--loop", loop, *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(HERE / "servers"))
    # taskset in front of python would make the PID taskset's until it execs: pin by PID.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        if pin(0):
            subprocess.run(
                ["taskset", "-p", "-c", "0", str(process.pid)], check=True, capture_output=True
            )
        wait_ready(port)
        time.sleep(0.5)
        before = rss_bytes(process.pid)
        flood_run = subprocess.run(
            [
                *pin(1),
                str(flood),
                "-t",
                "con",
                "-w",
                "64",
                "-n",
                str(requests),
                "-T",
                "5000",
                f"coap://127.0.0.1:{port}/hello",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        time.sleep(0.5)
        after = rss_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    result = parse_flood(flood_run.stdout)
    result.update(before=before, after=after, per_request=(after - before) / requests)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()

    flood = build_coapflood()
    mib = 1024 * 1024
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
        "| server | requests | requests/s | lost | RSS before | RSS after | growth per request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    results = {}
    for run in args.runs.split(","):
        result = measure(flood, run, args.requests, args.loop)
        results[run] = result
        line = (
            f"| {run} | {args.requests:,} | {result['rps']:,.0f} | {result['lost']:.0f} "
            f"| {result['before'] / mib:.1f} MiB | {result['after'] / mib:.1f} MiB "
            f"| {result['per_request']:.0f} B |"
        )
        print(line, flush=True)
        lines.append(line)
    if "coapkit" in results and "aiocoap" in results:
        mine, theirs = results["coapkit"], results["aiocoap"]
        lines += [
            "",
            f"aiocoap grew {(theirs['after'] - theirs['before']) / mib:.0f} MiB, coapkit "
            f"(default caps) {(mine['after'] - mine['before']) / mib:.1f} MiB.",
        ]
    if "coapkit-uncapped" in results and "aiocoap" in results:
        ratio = results["aiocoap"]["per_request"] / results["coapkit-uncapped"]["per_request"]
        lines.append(f"Per remembered request, aiocoap / coapkit uncapped: x{ratio:.1f}.")
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
