"""Where a served request's CPU goes: user and kernel time per request, per server and loop.

Each server (bench/servers: the bare-asyncio floor, coapkit's ``Server`` with a
``Site``, coapkit's sans-I/O ``Endpoint`` and driver without the resource layer,
aiocoap; ``coapkit-cli``: the command-line server itself, see bench/bench_server.py)
runs pinned to CPU 0; coapflood (CON, window 64) on CPU 1 sends a warm-up
of ``--warmup`` requests, then ``--requests`` more, and the server process's utime
and stime (``/proc/PID/stat``) are read before and after those.  The figures are
CPU microseconds per request: what the pinned throughput table of
bench/bench_server.py is made of.  Nothing is asserted: numbers only.

    .venv/bin/python bench/bench_cpu.py [--requests 300000] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_server import (
    CLI,
    COMPILED,
    HERE,
    available,
    build_coapflood,
    machine,
    parse_flood,
    pin,
    print_table,
    serving,
)

SERVERS = {
    "floor": HERE / "servers" / "floor.py",
    "coapkit": HERE / "servers" / "coapkit_server.py",
    "coapkit-endpoint": HERE / "servers" / "coapkit_endpoint_server.py",
    "aiocoap": HERE / "servers" / "aiocoap_server.py",
}
LABELS = {
    "floor": "floor",
    "coapkit": "coapkit `Server` + `Site`",
    "coapkit-endpoint": "coapkit `Endpoint` + driver only",
    "aiocoap": "aiocoap",
    CLI: "`coapkit server` (the CLI, request log on)",
}


def label(server: str) -> str:
    if server.endswith(COMPILED):
        return LABELS[server.removesuffix(COMPILED)] + ", compiled (mypyc)"
    return LABELS[server]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks  # utime, stime


def flood(binary: Path, port: int, count: int) -> dict[str, float]:
    url = f"coap://127.0.0.1:{port}/hello"
    command = [*pin(1), str(binary), "-t", "con", "-w", "64", "-n", str(count), url]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_flood(run.stdout)


def measure(binary: Path, server: str, loop: str, args: argparse.Namespace) -> dict[str, float]:
    script = None if server == CLI else SERVERS[server.removesuffix(COMPILED)]
    with serving(script, loop, server) as (process, port):
        flood(binary, port, args.warmup)
        user0, kernel0 = cpu_seconds(process.pid)
        result = flood(binary, port, args.requests)
        user1, kernel1 = cpu_seconds(process.pid)
    return {
        "rps": result["rps"],
        "user": (user1 - user0) / args.requests * 1e6,
        "kernel": (kernel1 - kernel0) / args.requests * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--warmup", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument(
        "--servers",
        default=f"floor,coapkit,coapkit-endpoint,coapkit{COMPILED},coapkit-endpoint{COMPILED}",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()

    binary = build_coapflood()
    rows = []
    for loop in args.loops.split(","):
        for server in available(args.servers.split(",")):
            runs = [measure(binary, server, loop, args) for _ in range(args.repeat)]
            row = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append((server, loop, row))
            print(
                f"{server:16} {loop:8} rps={row['rps']:9.0f} user={row['user']:6.2f}us "
                f"kernel={row['kernel']:6.2f}us",
                flush=True,
            )
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
        "| server | loop | requests/s | user us/request | kernel us/request |",
        "|---|---|---:|---:|---:|",
    ]
    for server, loop, row in rows:
        lines.append(
            f"| {label(server)} | {loop} | {row['rps']:,.0f} | {row['user']:.2f} "
            f"| {row['kernel']:.2f} |"
        )
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
