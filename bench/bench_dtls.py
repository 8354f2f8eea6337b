"""CoAP over DTLS (coaps://, PSK), side by side: coapkit vs libcoap's coap-server-openssl, and
coapkit over DTLS vs coapkit over plain UDP, in one run.

bench/tools/coapdtlsflood.c (compiled here into bench/build/, against the system's
OpenSSL) drives each server in turn, pinned as bench_server.py pins (server on CPU 0,
load on CPU 1):

* **handshakes**: 8 sockets, each making whole PSK handshakes (the cookie exchange
  included, never resumed, TLS_PSK_WITH_AES_128_GCM_SHA256) one after the other, each
  ended with a close_notify: full handshakes per second;
* **requests**: one session, then CON GET requests over it, 1 in flight (latency) and 64
  in flight (throughput), each answered piggybacked;
* the same requests over plain UDP to the same coapkit server script (``--plain``),
  from the same tool, for the ratio of the DTLS path to the UDP path.

coapkit serves ``/hello`` ("Hello, CoAP!", bench/servers/coapkit_dtls_server.py);
libcoap's example server has no such resource and serves ``/time`` (a short text too),
with ``-k benchkey`` (any identity; DTLS on the port after ``-p``).  Each number is the
median of ``--repeat`` runs of ``--duration`` seconds after 1 s of warm-up.  Nothing is
asserted: numbers and ratios only.  The targets of issue 18: requests over DTLS at
least 0.5x coapkit's plain UDP rate; handshakes at least 0.3x libcoap's.

    .venv/bin/python bench/bench_dtls.py [--duration 5] [--repeat 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_server import machine, pin, print_table  # noqa: E402

BUILD = HERE / "build"
TOOL = HERE / "tools" / "coapdtlsflood.c"
#: (label, tool mode, sessions, window)
LOADS = [
    ("handshakes, 8 at once", "handshakes", 8, 1),
    ("requests, 1 in flight", "requests", 1, 1),
    ("requests, 64 in flight", "requests", 1, 64),
]


def build_tool() -> Path:
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "coapdtlsflood"
    if not binary.exists() or binary.stat().st_mtime < TOOL.stat().st_mtime:
        subprocess.run(
            ["gcc", "-O2", "-o", str(binary), str(TOOL), "-lssl", "-lcrypto"], check=True
        )
    return binary


def free_port_pair() -> int:
    """A port P with P and P+1 free for UDP on 127.0.0.1 (libcoap serves DTLS on P+1)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            for candidate in (port, port + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no two adjacent free ports")


def bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def start(server: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """A server process; the port to load and the path."""
    port = free_port_pair()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(HERE / "servers")]))
    if server == "libcoap":
        command = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port), "-k", "benchkey"]
        target, path = port + 1, "time"
    else:
        script = HERE / "servers" / "coapkit_dtls_server.py"
        command = [sys.executable, str(script), "--port", str(port)]
        if server == "coapkit-udp":
            command.append("--plain")
        target, path = port, "hello"
    process = subprocess.Popen(
        [*pin(0), *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while not bound(target):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{server} did not start")
        time.sleep(0.05)
    time.sleep(0.3)
    return process, target, path


def parse(line: str) -> dict[str, float]:
    values = {}
    for item in line.split():
        name, _, value = item.partition("=")
        with contextlib.suppress(ValueError):
            values[name] = float(value)
    return values


def measure(
    tool: Path, server: str, mode: str, sessions: int, window: int, args: argparse.Namespace
) -> dict[str, float]:
    process, port, path = start(server)
    if server == "coapkit-udp":
        mode = "plain"
    try:
        run = subprocess.run(
            [
                *pin(1),
                str(tool),
                "-m",
                mode,
                "-c",
                str(sessions),
                "-w",
                str(window),
                "-d",
                str(args.duration),
                "-u",
                "1",
                "127.0.0.1",
                str(port),
                path,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=args.duration + 60,
        )
    finally:
        process.terminate()
        process.wait(10)
    return parse(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the summary to this file")
    args = parser.parse_args()
    tool = build_tool()
    servers = ["coapkit", "libcoap", "coapkit-udp"]
    if shutil.which("coap-server-openssl") is None:
        print("coap-server-openssl not installed: libcoap left out", file=sys.stderr)
        servers.remove("libcoap")
    load = os.getloadavg()[0]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for label, mode, sessions, window in LOADS:
        for server in servers:
            if server == "coapkit-udp" and mode == "handshakes":
                continue
            runs = [measure(tool, server, mode, sessions, window, args) for _ in range(args.repeat)]
            results[(label, server)] = runs
            rate = statistics.median(run["rate"] for run in runs)
            print(f"{label:24} {server:12} {rate:10.0f}/s", flush=True)

    def median(label: str, server: str, name: str) -> float:
        runs = results.get((label, server), [])
        return statistics.median(run[name] for run in runs) if runs else float("nan")

    lines = [
        f"Machine: {machine()}; load average before the run {load:.2f}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        f"Each: median of {args.repeat} runs of {args.duration:g} s, server on CPU 0, "
        "coapdtlsflood on CPU 1",
        "",
        "| load | server | per second | p50 us | p99 us |",
        "|---|---|---:|---:|---:|",
    ]
    for label, server in results:
        lines.append(
            f"| {label} | {server} | {median(label, server, 'rate'):,.0f} | "
            f"{median(label, server, 'p50_us'):,.0f} | {median(label, server, 'p99_us'):,.0f} |"
        )
    shakes = "handshakes, 8 at once"
    lines += [
        "",
        "| ratio | measured | target |",
        "|---|---:|---:|",
        f"| coapkit / libcoap, full PSK handshakes per second | "
        f"{median(shakes, 'coapkit', 'rate') / median(shakes, 'libcoap', 'rate'):.2f}x | "
        ">= 0.3x |",
    ]
    for label in ("requests, 1 in flight", "requests, 64 in flight"):
        lines.append(
            f"| coapkit DTLS / coapkit UDP, {label} | "
            f"{median(label, 'coapkit', 'rate') / median(label, 'coapkit-udp', 'rate'):.2f}x | "
            ">= 0.5x |"
        )
        lines.append(
            f"| coapkit / libcoap over DTLS, {label} | "
            f"{median(label, 'coapkit', 'rate') / median(label, 'libcoap', 'rate'):.2f}x | |"
        )
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
