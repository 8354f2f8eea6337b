"""Proxied requests per second: a cache hit, a cache miss and a direct request, in one run.

Three coapkit processes on loopback: an origin server, a reverse proxy in front of it
(``ProxySite(reverse={"/up": origin})``, bench/servers/coapkit_proxy_bench.py) and the C
load generator ../shared/tools/coapflood.c (as bench_server.py finds and builds it).  The
load generator sends CON GETs, one at a time (window 1: latency) and 64 at a time (window
64: throughput), for ``--duration`` seconds each:

* **direct**: ``GET /hello`` to the origin;
* **hit**: ``GET /up/hello`` to the proxy, answered from its cache (Max-Age 60);
* **miss**: ``GET /up/fresh`` to the proxy, whose response has Max-Age 0, so that every
  request goes to the origin (``ProxyConfig(coalesce=False)``);
* **coalesced**: the same with the proxy's default, concurrent identical misses sharing
  one upstream request (at window 64 most requests wait for one already on its way).

The same three again through a coapkit :class:`~coapkit.Client` in a process of its own
(bench/servers/coapkit_client_probe.py), one request at a time: what an application sees,
its own CPU counted too.

The server under load (the origin for direct, the proxy otherwise) is pinned to CPU 0,
the load generator and the origin behind a proxy to CPU 1.  Besides requests per second
and latency, the CPU time the coapkit processes spent per answered request is read from
``/proc/PID/stat`` around each run: for a miss, the proxy's and the origin's together.
Each figure is the median of ``--repeat`` runs.  The issue's targets: a hit costs no more
than a direct request, a miss at most 2.5 times as much.  Nothing is asserted: numbers
only (a 2-core shared machine: run it when the load is low).

    .venv/bin/python bench/bench_proxy.py [--duration 5] [--repeat 3] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_server import build_coapflood, free_port, machine, parse_flood, pin, wait_ready

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER = HERE / "servers" / "coapkit_proxy_bench.py"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@contextmanager
def server(cpu: int, loop: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    command = [*pin(cpu), sys.executable, str(SERVER), "--port", str(port), "--loop", loop]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(HERE / "servers")]))
    process = subprocess.Popen(
        [*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_ready(port)
        yield process, port
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def flood(binary: Path, port: int, path: str, window: int, duration: float) -> dict[str, float]:
    run = subprocess.run(
        [*pin(1), str(binary), "-t", "con", "-w", str(window), "-d", str(duration), "-T", "5000",
         f"coap://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return parse_flood(run.stdout)


def measure(binary: Path, case: str, window: int, args: argparse.Namespace) -> dict[str, float]:
    with server(0 if case == "direct" else 1, args.loop, "--role", "origin") as (origin, o_port):
        if case == "direct":
            processes, port, path = [origin], o_port, "/hello"
            flood(binary, port, path, 1, 0.5)  # warm up
            return run_case(binary, processes, port, path, window, args)
        upstream = f"coap://127.0.0.1:{o_port}"
        coalesce = [] if case == "coalesced" else ["--no-coalesce"]
        with server(0, args.loop, "--role", "proxy", "--upstream", upstream, *coalesce) as (
            proxy,
            p_port,
        ):
            path = "/up/hello" if case == "hit" else "/up/fresh"
            flood(binary, p_port, path, 1, 0.5)  # warm up (and, for a hit, fill the cache)
            return run_case(binary, [proxy, origin], p_port, path, window, args)


def probe(port: int, path: str, args: argparse.Namespace) -> dict[str, float]:
    """A coapkit Client in a process of its own (pinned to CPU 1), one request at a time."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    run = subprocess.run(
        [*pin(1), sys.executable, str(HERE / "servers" / "coapkit_client_probe.py"),
         f"coap://127.0.0.1:{port}{path}", "--duration", str(args.duration), "--loop", args.loop],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )  # fmt: skip
    return parse_flood(run.stdout)


def run_case(
    binary: Path,
    processes: list[subprocess.Popen[bytes]],
    port: int,
    path: str,
    window: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    before = sum(cpu_seconds(process.pid) for process in processes)
    if window == 0:  # the Python client
        result = probe(port, path, args)
        requests = result["rps"] * args.duration
        result["client_cpu_us"] = result.pop("cpu_us")
    else:
        result = flood(binary, port, path, window, args.duration)
        requests = result["ok"]
    after = sum(cpu_seconds(process.pid) for process in processes)
    result["cpu_us"] = (after - before) / max(requests, 1) * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--markdown", type=Path, help="also write the summary table here")
    args = parser.parse_args()
    binary = build_coapflood()
    cases = ("direct", "hit", "miss", "coalesced")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for window in (1, 64, 0):
        for case in cases:
            runs = [measure(binary, case, window, args) for _ in range(args.repeat)]
            median = {
                key: statistics.median(run.get(key, 0.0) for run in runs)
                for key in ("rps", "p50_us", "p99_us", "cpu_us", "err", "lost", "client_cpu_us")
            }
            median["total_us"] = median["cpu_us"] + median["client_cpu_us"]
            results[case, window] = median
            print(
                f"{case:6} w{window:<3} rps={median['rps']:9.0f} p50={median['p50_us']:7.0f} us "
                f"p99={median['p99_us']:7.0f} us cpu={median['cpu_us']:6.1f} us/request "
                f"err={median['err']:.0f} lost={median['lost']:.0f}",
                flush=True,
            )
    lines = [
        f"Machine: {machine()}; Python {sys.version.split()[0]}; loop {args.loop}; "
        f"{args.duration:g} s per run, median of {args.repeat}",
        "",
        "| CON GET                                 | direct | proxy, cache hit | proxy, cache miss "
        "| misses coalesced |",
        "|-----------------------------------------|-------:|-----------------:|------------------:"
        "|-----------------:|",
    ]

    def row(label: str, key: str, window: int, fmt: str) -> str:
        values = [format(results[case, window][key], fmt) for case in cases]
        return f"| {label:<39} | " + " | ".join(values) + " |"

    lines.append(row("requests/s, window 64", "rps", 64, ",.0f"))
    lines.append(row("requests/s, window 1", "rps", 1, ",.0f"))
    lines.append(row("latency p50 us, window 1", "p50_us", 1, ".0f"))
    lines.append(row("latency p99 us, window 1", "p99_us", 1, ".0f"))
    lines.append(row("CPU us per request, window 64", "cpu_us", 64, ".1f"))
    lines.append(row("CPU us per request, window 1", "cpu_us", 1, ".1f"))
    lines.append(row("coapkit Client: requests/s", "rps", 0, ",.0f"))
    lines.append(row("coapkit Client: latency p50 us", "p50_us", 0, ".0f"))
    lines.append(row("coapkit Client: client + servers CPU us", "total_us", 0, ".1f"))
    for case in ("hit", "miss", "coalesced"):
        ratios = {
            (key, window): results[case, window][key] / results["direct", window][key]
            for key, window in (("cpu_us", 64), ("p50_us", 1), ("total_us", 0), ("p50_us", 0))
        }
        time64 = results["direct", 64]["rps"] / results[case, 64]["rps"]
        lines.append(
            f"\n{case} / direct: servers' CPU {ratios['cpu_us', 64]:.2f}x and time "
            f"{time64:.2f}x at window 64, latency {ratios['p50_us', 1]:.2f}x at window 1; "
            f"through a coapkit Client: latency {ratios['p50_us', 0]:.2f}x, CPU of client and "
            f"servers {ratios['total_us', 0]:.2f}x"
        )
    text = "\n".join(lines)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
