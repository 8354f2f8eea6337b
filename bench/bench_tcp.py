"""CoAP over TCP (RFC 8323), side by side: coapkit vs aiocoap's TCP server vs libcoap's.

bench/tools/coaptcpflood.c (compiled here into bench/build/) drives each
server in turn, pinned as bench_server.py pins (server on CPU 0, load on CPU
1): one connection with 64 requests in flight, and 100 connections with one
each.  coapkit and aiocoap serve ``/hello`` ("Hello, CoAP!"); libcoap's
example server has no such resource and serves ``/time`` (a short text too).
Then the same coapkit server over UDP under coapflood (CON, window 64), for
the ratio of the TCP path to the UDP path per request, and the memory of an
idle connection (2,000 connections that sent their CSM, RSS before and after,
in the server process).  Nothing is asserted: numbers and ratios only.

    .venv/bin/python bench/bench_tcp.py [--duration 5] [--repeat 3] [--loops uvloop,asyncio]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_server import build_coapflood, measure, parse_flood, pin, print_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
TOOL = HERE / "tools" / "coaptcpflood.c"
MODES = [("1 conn x 64", 1, 64), ("100 conn x 1", 100, 1)]


def build_tcpflood() -> Path:
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "coaptcpflood"
    if not binary.exists() or binary.stat().st_mtime < TOOL.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(TOOL)], check=True)
    return binary


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start(server: str, loop: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """A server process on ``port``; the path to load."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(HERE / "servers")]))
    if server == "libcoap":
        command = ["coap-server-notls", "-A", "127.0.0.1", "-p", str(port)]
        path = "time"
    else:
        script = HERE / "servers" / f"{server}_tcp_server.py"
        command = [sys.executable, str(script), "--port", str(port), "--loop", loop]
        path = "hello"
    process = subprocess.Popen(
        [*pin(0), *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_listening(port)
    return process, path


def measure_tcp(
    flood: Path, server: str, loop: str, connections: int, window: int, args: argparse.Namespace
) -> dict[str, float]:
    port = free_tcp_port()
    process, path = start(server, loop, port)
    try:
        run = subprocess.run(
            [
                *pin(1),
                str(flood),
                "-c",
                str(connections),
                "-w",
                str(window),
                "-d",
                str(args.duration),
                "-u",
                str(args.warmup),
                "127.0.0.1",
                str(port),
                path,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        process.terminate()
        process.wait(10)
    return parse_flood(run.stdout)


def idle_bytes(loop: str, count: int = 2000) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    probe = HERE / "servers" / "coapkit_idle_probe.py"
    run = subprocess.run(
        [sys.executable, str(probe), "--loop", loop, "--count", str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument("--servers", default="coapkit,aiocoap,libcoap")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    tcpflood = build_tcpflood()
    udpflood = build_coapflood()
    servers = [
        s for s in args.servers.split(",") if s != "libcoap" or shutil.which("coap-server-notls")
    ]
    rows: list[list[str]] = []
    ratios: list[list[str]] = []
    for loop in args.loops.split(","):
        found: dict[tuple[str, str], float] = {}
        for name, connections, window in MODES:
            for server in servers:
                if server == "libcoap" and loop != args.loops.split(",")[0]:
                    continue  # libcoap has no Python loop: measured once
                runs = [
                    measure_tcp(tcpflood, server, loop, connections, window, args)
                    for _ in range(args.repeat)
                ]
                rps = statistics.median(run["rps"] for run in runs)
                p50 = statistics.median(run["p50_us"] for run in runs)
                found[(name, server)] = rps
                rows.append([loop, name, server, f"{rps:.0f}", f"{p50:.0f}"])
                print(f"{loop:8} {name:13} {server:8} rps={rps:8.0f} p50={p50:6.0f}us", flush=True)
        udp = statistics.median(
            measure(udpflood, "coapkit", loop, "con", 64, args)["rps"] for _ in range(args.repeat)
        )
        rows.append([loop, "UDP CON w64", "coapkit", f"{udp:.0f}", ""])
        for name, _, _ in MODES:
            mine = found[(name, "coapkit")]
            line = [loop, name]
            aio = found.get((name, "aiocoap"))
            line.append(f"{mine / aio:.1f}x" if aio else "-")
            lib = found.get((name, "libcoap"))
            line.append(f"{mine / lib:.2f}x" if lib else "-")
            line.append(f"{mine / udp:.2f}" if name.startswith("1 conn") else "-")
            ratios.append(line)
        memory = idle_bytes(loop)
        ratios.append([loop, "idle connection", f"{memory / 1024:.1f} KiB", "", ""])
    lines = _markdown(["loop", "mode", "server", "req/s", "p50 us"], rows)
    lines += [
        "",
        *_markdown(["loop", "mode", "coapkit/aiocoap", "coapkit/libcoap", "TCP/UDP"], ratios),
    ]
    print_table(lines, args.markdown)


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


if __name__ == "__main__":
    main()
