"""Server throughput and latency, side by side: coapkit vs aiocoap vs the bare-asyncio floor.

The C load generator ../shared/tools/coapflood.c (compiled here into
bench/build/) drives each server in turn, under the same conditions, in one
run: the server pinned to CPU 0 and coapflood to CPU 1 (``taskset``), each
serving the same small resource (``GET /hello`` → 2.05 "Hello, CoAP!").

Modes: CON window 1 (latency p50/p99), CON window 64 (throughput), NON
window 64; with the default asyncio loop and with uvloop.  Each measurement
is repeated (``--repeat``; the servers take turns, one run each per round) and
the median taken.  The ratios coapkit/aiocoap and coapkit/floor are printed
last.  Nothing is asserted: numbers only.

``coapkit-cli`` is the command-line server itself, ``python -m coapkit server
--bind 127.0.0.1 --port P --loop L``, as deployed: the demo site (its /hello
answers the same "Hello, CoAP!", with Content-Format text/plain), the
amplification defence and the request log on, one line per request written
to a file; its ratio to the library server (``coapkit``) is printed too.

    .venv/bin/python bench/bench_server.py [--duration 5] [--repeat 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
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


def find_coapflood_source() -> Path | None:
    """The load generator's source: $COAPFLOOD_SRC, else ../shared/tools/coapflood.c next to
    the checkout (a checkout elsewhere, e.g. CI's, may have none: the flood test skips)."""
    candidates = [os.environ.get("COAPFLOOD_SRC", ""), ROOT.parent / "shared/tools/coapflood.c"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


SHARED_TOOL = find_coapflood_source()
BUILD = HERE / "build"

SERVERS = {
    "floor": HERE / "servers" / "floor.py",
    "coapkit": HERE / "servers" / "coapkit_server.py",
    "aiocoap": HERE / "servers" / "aiocoap_server.py",
}
#: ``coapkit server`` itself (the command-line tool, demo site, request log on): no script
CLI = "coapkit-cli"
MODES = [("CON w1", "con", 1), ("CON w64", "con", 64), ("NON w64", "non", 64)]


def build_coapflood() -> Path:
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "coapflood"
    source = SHARED_TOOL
    if source is None:
        sys.exit("cannot find coapflood.c: set COAPFLOOD_SRC or put it at ../shared/tools/")
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def wait_ready(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        mid = 1
        while time.monotonic() < deadline:
            # A GET /hello; any answer means the server is up.
            sock.sendto(bytes((0x40, 0x01, 0xAB, mid)) + b"\xb5hello", ("127.0.0.1", port))
            try:
                sock.recv(256)
                return
            except (TimeoutError, ConnectionRefusedError):
                mid = (mid + 1) & 0xFF
    raise RuntimeError("server did not come up")


def parse_flood(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


#: a coapkit server's name with this suffix runs on the compiled build (scripts/compiled)
COMPILED = "-mypyc"
_compiled_build: list[Path | None] = []


def compiled_build() -> Path | None:
    """The compiled package's directory (built by scripts/compiled if need be), or None."""
    if not _compiled_build:
        command = [str(ROOT / "scripts" / "compiled")]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            print(f"no compiled build: {run.stderr.strip()}", file=sys.stderr)
        _compiled_build.append(Path(run.stdout.strip()) if run.returncode == 0 else None)
    return _compiled_build[0]


def available(servers: list[str]) -> list[str]:
    """``servers`` without the compiled variants when there is no compiled build."""
    if any(name.endswith(COMPILED) for name in servers) and compiled_build() is None:
        return [name for name in servers if not name.endswith(COMPILED)]
    return servers


def pythonpath(server: str) -> str:
    """PYTHONPATH for a server of bench/servers: the compiled package first for ``-mypyc``."""
    paths = [ROOT / "src", HERE / "servers"]
    if server.endswith(COMPILED):
        build = compiled_build()
        assert build is not None, "no compiled build (see scripts/compiled)"
        paths.insert(0, build)
    return os.pathsep.join(str(path) for path in paths)


@contextmanager
def serving(
    script: Path | None, loop: str, server: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A server of bench/servers on a free port, pinned to CPU 0, answering; stopped after.
    ``server`` is its name in the tables (a ``-mypyc`` name runs the compiled build).
    ``script`` None: ``coapkit server`` (:data:`CLI`), its request log going to a file,
    as a deployed server's would (a pipe nobody reads would stop it once full)."""
    port = free_port()
    if script is None:
        command = [*pin(0), sys.executable, "-m", "coapkit", "server", "--bind", "127.0.0.1"]
        command += ["--port", str(port), "--loop", loop]
    else:
        command = [*pin(0), sys.executable, str(script), "--port", str(port), "--loop", loop]
    env = dict(os.environ, PYTHONPATH=pythonpath(server))
    with tempfile.TemporaryFile() as log:
        stderr = log if script is None else subprocess.PIPE
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_ready(port)
            yield process, port
        finally:
            process.terminate()
            process.wait(10)
            if process.stderr is not None:
                process.stderr.close()


def measure(
    flood: Path, server: str, loop: str, mode: str, window: int, args: argparse.Namespace
) -> dict[str, float]:
    script = None if server == CLI else SERVERS[server.removesuffix(COMPILED)]
    with serving(script, loop, server) as (_, port):
        run = subprocess.run(
            [
                *pin(1),
                str(flood),
                "-t",
                mode,
                "-w",
                str(window),
                "-d",
                str(args.duration),
                "-u",
                str(args.warmup),
                f"coap://127.0.0.1:{port}/hello",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return parse_flood(run.stdout)


def measure_workers(flood: Path, workers: int, loop: str, args: argparse.Namespace) -> float:
    """Requests/s of ``coapkit server --workers N`` (the CLI's demo /hello) under CON load
    from eight coapflood processes (window 8 each, eight source ports, so that SO_REUSEPORT
    can spread them over the workers); nothing pinned: workers and load share both cores.
    The CLI logs one line per request (stderr, discarded here), as a deployed server would."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "coapkit",
        "server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        loop,
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        time.sleep(1.0)  # every worker up
        floods = [
            subprocess.Popen(
                [
                    str(flood),
                    "-t",
                    "con",
                    "-w",
                    "8",
                    "-d",
                    str(args.duration),
                    "-u",
                    str(args.warmup),
                    f"coap://127.0.0.1:{port}/hello",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        total = 0.0
        for run in floods:
            out, _ = run.communicate()
            total += parse_flood(out)["rps"]
        return total
    finally:
        process.terminate()
        process.wait(20)


def print_table(lines: list[str], markdown: Path | None) -> None:
    """Print the summary last, and also write it to ``markdown`` when given (--markdown)."""
    text = "\n".join(lines)
    print()
    print(text)
    if markdown:
        markdown.write_text(text + "\n")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument(
        "--servers",
        default=f"floor,coapkit,coapkit{COMPILED},{CLI},aiocoap",
        help=f"a coapkit name ending in {COMPILED} runs the compiled build (scripts/compiled); "
        f"{CLI} is `coapkit server` itself",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="also compare `coapkit server --workers N` for these N ('' to skip)",
    )
    args = parser.parse_args()

    flood = build_coapflood()
    loops = args.loops.split(",")
    servers = available([name for name in args.servers.split(",") if name])
    results: dict[tuple[str, str, str], dict[str, float]] = {}
    paired: dict[tuple[str, str], float] = {}  #: coapkit-cli / coapkit, median over rounds
    for loop in loops:
        for name, mode, window in MODES:
            # The servers take turns, one run each per round: on a machine whose load
            # changes (a shared one), each round measures them all under the same load.
            rounds: dict[str, list[dict[str, float]]] = {server: [] for server in servers}
            for _ in range(args.repeat):
                for server in servers:
                    rounds[server].append(measure(flood, server, loop, mode, window, args))
            if CLI in rounds and "coapkit" in rounds:  # each round's ratio, the load alike
                pairs = zip(rounds[CLI], rounds["coapkit"], strict=True)
                paired[(loop, name)] = statistics.median(a["rps"] / b["rps"] for a, b in pairs)
            for server in servers:
                runs = rounds[server]
                result = {
                    key: statistics.median(run[key] for run in runs)
                    for key in ("rps", "p50_us", "p99_us", "lost")
                }
                results[(loop, name, server)] = result
                print(
                    f"{loop:8} {name:8} {server:8} rps={result['rps']:9.0f} "
                    f"p50={result['p50_us']:7.0f}us p99={result['p99_us']:7.0f}us "
                    f"lost={result['lost']:.0f}",
                    flush=True,
                )

    worker_counts = [int(n) for n in args.workers.split(",") if n]
    workers: dict[tuple[str, int], float] = {}
    for loop in loops:
        for count in worker_counts:
            runs = [measure_workers(flood, count, loop, args) for _ in range(args.repeat)]
            workers[(loop, count)] = statistics.median(runs)
            print(f"{loop:8} coapkit server --workers {count}: rps={workers[(loop, count)]:9.0f}")

    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
        "| loop | mode | server | requests/s | p50 us | p99 us |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (loop, name, server), result in results.items():
        lines.append(
            f"| {loop} | {name} | {server} | {result['rps']:.0f} | {result['p50_us']:.0f} "
            f"| {result['p99_us']:.0f} |"
        )
    lines += ["", "Ratios (coapkit / other; throughput higher is better, latency lower):", ""]
    for loop in loops:
        for name, _, _ in MODES:
            for coapkit in ("coapkit", f"coapkit{COMPILED}"):
                mine = results.get((loop, name, coapkit))
                if mine is None:
                    continue
                parts = []
                for other in ("aiocoap", "floor"):
                    theirs = results.get((loop, name, other))
                    if theirs is None:
                        continue
                    parts.append(f"rps x{mine['rps'] / theirs['rps']:.2f} vs {other}")
                    if name == "CON w1":
                        parts.append(
                            f"p50 x{mine['p50_us'] / theirs['p50_us']:.2f}, "
                            f"p99 x{mine['p99_us'] / theirs['p99_us']:.2f} vs {other}"
                        )
                if parts:
                    lines.append(f"- {loop} {name} {coapkit}: " + "; ".join(parts))
            cli = results.get((loop, name, CLI))
            if cli is not None:
                parts = [
                    f"rps x{cli['rps'] / theirs['rps']:.2f} vs {other}"
                    for other in ("coapkit", "floor")
                    if (theirs := results.get((loop, name, other))) is not None
                ]
                if (loop, name) in paired:
                    parts.append(f"x{paired[(loop, name)]:.2f} vs coapkit round by round")
                lines.append(f"- {loop} {name} {CLI} (request log on): " + "; ".join(parts))
    if workers:
        lines += [
            "",
            "`coapkit server --workers N` (CLI, demo /hello, per-request logging on), CON load",
            "from eight coapflood processes (window 8 each), nothing pinned:",
            "",
            "| loop | workers | requests/s | vs 1 worker |",
            "|---|---:|---:|---:|",
        ]
        for (loop, count), rps in workers.items():
            one = workers.get((loop, 1))
            versus = f"x{rps / one:.2f}" if one else ""
            lines.append(f"| {loop} | {count} | {rps:.0f} | {versus} |")
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
