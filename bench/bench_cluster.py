"""The cost of a cluster, in one run: ``coapkit server`` processes behind nginx's UDP stream
proxy vs one process alone, and the inputs of docs/deployment.md's sizing table.

Throughput: coapfan (bench/tools/coapfan.c, compiled into bench/build/) keeps ``--window``
CON ``GET /hello`` requests in flight from each of ``--sources`` loopback addresses (as many
devices: nginx hashes on the address), for ``--duration`` seconds after a warm-up run, to

* one ``coapkit server`` process, directly (no nginx);
* 1, 2 and 3 ``coapkit server`` processes behind nginx (examples/cluster/nginx-coap.conf with
  its ports changed, one nginx worker).

Each is measured ``--repeat`` times and the median kept: requests per second, and the CPU
time (user + system, from /proc) that the coapkit processes, nginx and the load generator
spent per request.  Every party shares the machine's cores, so on a 2-core machine more
processes cannot mean more requests per second: what this shows is the proxy's cost, as the
ratio to the direct run and as nginx's CPU time per request.  The servers log one line per
request (``coapkit server`` does), to /dev/null.

Sizing inputs, in-process (tracemalloc, the sans-I/O endpoint, as bench_messaging.py counts
its entries; ``--devices`` of them):

* a deduplication entry: one more distinct CON request remembered (16 busy peers);
* an observing device right after its registration: observer, peer entry, dedup entry;
* an observer alone, once its request's state expired (after EXCHANGE_LIFETIME);
* an observer whose peer entry lives: a CON notification acknowledged within
  EXCHANGE_LIFETIME (the default sends one every 30 s);

and nginx's resident memory per UDP session (``--sessions`` sources, one session each).
Then the sizing table for 10**6 devices.  Nothing is asserted: numbers only.

    .venv/bin/python bench/bench_cluster.py [--duration 5] [--repeat 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from bench_server import machine, parse_flood, print_table  # noqa: E402

BUILD = HERE / "build"
TOOL = HERE / "tools" / "coapfan.c"
EXAMPLE = ROOT / "examples" / "cluster" / "nginx-coap.conf"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
TICKS = os.sysconf("SC_CLK_TCK")


def build_coapfan() -> Path:
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "coapfan"
    if not binary.exists() or binary.stat().st_mtime < TOOL.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(TOOL)], check=True)
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def wait_answering(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.1)
        while time.monotonic() < deadline:
            probe.sendto(bytes((0x40, 0x01, 0x12, 0x34)) + b"\xb5hello", ("127.0.0.1", port))
            try:
                probe.recv(256)
                return
            except (TimeoutError, ConnectionRefusedError):
                pass
    raise RuntimeError(f"nothing answers on port {port}")


class Backends:
    """``count`` ``coapkit server`` processes on free ports."""

    def __init__(self, count: int, loop: str) -> None:
        self.ports = [free_port() for _ in range(count)]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.processes = [self._start(port, loop, env) for port in self.ports]
        for port in self.ports:
            wait_answering(port)

    @staticmethod
    def _start(port: int, loop: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "coapkit", "server", "--bind", "127.0.0.1",
             "--port", str(port), "--no-amplification-limit", "--loop", loop],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def cpu(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(20)


class Nginx:
    """nginx running the example's stream block in front of ``backends``."""

    def __init__(self, directory: Path, backends: list[int]) -> None:
        self.port = free_port()
        stream = EXAMPLE.read_text().replace("listen 5683 udp", f"listen 127.0.0.1:{self.port} udp")
        example = re.compile(r"^ *server 127\.0\.0\.1:57\d\d .*;\n", re.MULTILINE)
        first = example.search(stream)
        assert first is not None
        lines = "".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;\n" for port in backends
        )
        stream = example.sub("", stream)
        stream = stream[: first.start()] + lines + stream[first.start() :]
        config = directory / "nginx.conf"
        config.write_text(
            f"load_module {STREAM_MODULE};\nworker_processes 1;\nworker_rlimit_nofile 20000;\n"
            f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
            "daemon off;\nevents { worker_connections 20000; }\n" + stream
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(directory), "-e", str(directory / "start.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_answering(self.port)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) + sum(
            cpu_seconds(child) for child in children(self.process.pid)
        )

    def worker_rss(self) -> int:
        return sum(rss_bytes(child) for child in children(self.process.pid))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def flood(coapfan: Path, port: int, args: argparse.Namespace, duration: float) -> dict[str, float]:
    run = subprocess.run(
        [str(coapfan), "-s", str(args.sources), "-w", str(args.window), "-d", str(duration),
         "-u", "0", "127.0.0.1", str(port), "hello"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return parse_flood(run.stdout)


def measure(
    coapfan: Path, processes: int, proxied: bool, args: argparse.Namespace, directory: Path
) -> dict[str, float]:
    backends = Backends(processes, args.loop)
    nginx = Nginx(directory, backends.ports) if proxied else None
    try:
        port = nginx.port if nginx is not None else backends.ports[0]
        flood(coapfan, port, args, args.warmup)  # sessions opened, caches warm
        before = (backends.cpu(), nginx.cpu() if nginx else 0.0)
        load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = flood(coapfan, port, args, args.duration)
        load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        after = (backends.cpu(), nginx.cpu() if nginx else 0.0)
        ok = max(result["ok"], 1.0)
        load_cpu = (load_after.ru_utime + load_after.ru_stime) - (
            load_before.ru_utime + load_before.ru_stime
        )
        return {
            "rps": result["rps"],
            "p50_us": result["p50_us"],
            "lost": result["lost"],
            "coapkit_us": (after[0] - before[0]) / ok * 1e6,
            "nginx_us": (after[1] - before[1]) / ok * 1e6,
            "load_us": load_cpu / ok * 1e6,
        }
    finally:
        if nginx is not None:
            nginx.stop()
        backends.stop()


def nginx_session_bytes(coapfan: Path, args: argparse.Namespace, directory: Path) -> float:
    """nginx's RSS growth per UDP session: ``--sessions`` sources, one request each."""
    backends = Backends(1, args.loop)
    nginx = Nginx(directory, backends.ports)
    try:
        time.sleep(0.5)
        before = nginx.worker_rss()
        run = subprocess.run(
            [str(coapfan), "-s", str(args.sessions), "-w", "1", "-d", "1", "-u", "0",
             "127.0.0.1", str(nginx.port), "hello"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert parse_flood(run.stdout)["ok"] >= args.sessions, run.stdout
        after = nginx.worker_rss()
        return (after - before) / args.sessions
    finally:
        nginx.stop()
        backends.stop()


# -- in-process: what one device costs a coapkit process ------------------------------------


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def sizing_inputs(devices: int) -> dict[str, float]:
    from coapkit.codec.codes import Code
    from coapkit.codec.message import Message
    from coapkit.codec.options import Options
    from coapkit.codec.types import MessageType
    from coapkit.endpoint import Endpoint
    from coapkit.messaging.layer import MessagingConfig
    from coapkit.observe.registry import ObserveConfig, ObserveRegistry

    found: dict[str, float] = {}
    big = MessagingConfig(max_peers=4 * devices, dedup_cap_total=8 * devices)

    # A deduplication entry: distinct CON requests from 16 busy peers, answered piggybacked.
    endpoint = Endpoint(rng=random.Random(1), messaging=big)
    peers = [(f"10.0.0.{n}", 5683) for n in range(16)]
    get = Options.build(uri_path=["hello"])
    datagrams = [
        (Message(MessageType.CON, Code.GET, n & 0xFFFF, n.to_bytes(8, "big"), get).encode(), n)
        for n in range(4 * devices)
    ]
    answer = Message(code=Code.CONTENT, payload=b"Hello, CoAP!")
    tracemalloc.start()
    now = 0.0

    def serve(data: bytes, remote: tuple[str, int]) -> None:
        event = endpoint.datagram_received(data, remote, now).events[0]
        endpoint.respond(event.handle, answer.replace(token=event.request.token), now)

    for data, n in datagrams[: devices // 4]:  # warm: every peer, runs and tables exist
        serve(data, peers[(n >> 16) % 16] if n < 65536 * 16 else peers[0])
    base = traced()
    for data, n in datagrams[devices // 4 : devices // 4 + devices]:
        serve(data, (peers[n % 16][0], 5683 + (n >> 16)))
    found["dedup_entry"] = (traced() - base) / devices
    del endpoint, datagrams
    tracemalloc.stop()

    # Observing devices: one registration each, from its own address.
    observers = ObserveRegistry(ObserveConfig(max_observers=2 * devices, clock_sequence=True))
    endpoint = Endpoint(rng=random.Random(2), messaging=big, observers=observers)
    key = object()  # the observed resource
    register = Options.build(observe=0, uri_path=["temperature"])
    remotes = [(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 5683) for n in range(devices)]
    messages = [
        Message(MessageType.CON, Code.GET, n & 0xFFFF, n.to_bytes(8, "big"), register).encode()
        for n in range(devices)
    ]
    reading = Message(code=Code.CONTENT, payload=b"21.5", options=Options.build(max_age=60))
    tracemalloc.start()
    base = traced()
    now = 0.0
    for data, remote in zip(messages, remotes, strict=True):
        event = endpoint.datagram_received(data, remote, now).events[0]
        response = endpoint.observe.on_response(
            key, event.request, remote, reading.replace(token=event.request.token), now
        )
        endpoint.respond(event.handle, response, now)
    del messages
    found["registered_device"] = (traced() - base) / devices
    lifetime = big.dedup_cap_total and 300.0  # past EXCHANGE_LIFETIME (247 s) and a slice
    now = lifetime
    while (deadline := endpoint.next_deadline()) is not None and deadline <= now:
        endpoint.handle_timeout(now)
    assert endpoint.messaging.dedup_entries == 0 and endpoint.messaging.peer_count == 0
    found["observer"] = (traced() - base) / devices
    # A CON notification each, acknowledged: the peer entry holds its message ID for
    # EXCHANGE_LIFETIME (a default observer gets a CON every 30 s, so it always has one).
    sequence, observing = endpoint.observe.updated(key, now)
    for observer in observing:
        output = endpoint.notify(observer, reading, now, sequence=sequence, mtype=MessageType.CON)
        for data, remote in output.datagrams:
            mid = int.from_bytes(data[2:4], "big")
            endpoint.datagram_received(bytes((0x60, 0, mid >> 8, mid & 0xFF)), remote, now)
    found["observer_with_peer"] = (traced() - base) / devices
    tracemalloc.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sources", type=int, default=60, help="client addresses (coapfan -s)")
    parser.add_argument("--window", type=int, default=2, help="requests in flight per source")
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))
    parser.add_argument("--devices", type=int, default=50_000, help="in-process sizing")
    parser.add_argument("--sessions", type=int, default=3000, help="nginx sessions to weigh")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()

    import tempfile

    coapfan = build_coapfan()
    setups = [("1 process, no nginx", 1, False)] + [
        (f"{count} process{'es' if count > 1 else ''} behind nginx", count, True)
        for count in (1, 2, 3)
    ]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        directory = Path(scratch)
        for name, count, proxied in setups:
            runs = [measure(coapfan, count, proxied, args, directory) for _ in range(args.repeat)]
            results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            result = results[name]
            print(
                f"{name:28} rps={result['rps']:8.0f} p50={result['p50_us']:6.0f}us "
                f"coapkit={result['coapkit_us']:5.1f}us nginx={result['nginx_us']:5.1f}us "
                f"load={result['load_us']:5.1f}us per request, lost={result['lost']:.0f}",
                flush=True,
            )
        session = nginx_session_bytes(coapfan, args, directory)
    print(f"nginx: {session:.0f} bytes of RSS per UDP session", flush=True)
    inputs = sizing_inputs(args.devices)
    for key, value in inputs.items():
        print(f"{key}: {value:.0f} bytes", flush=True)

    direct = results["1 process, no nginx"]
    lines = [
        f"Machine: {machine()}",
        f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        f"Load: coapfan, {args.sources} source addresses x {args.window} CON GET /hello in "
        f"flight, {args.duration:g} s after {args.warmup:g} s of warm-up; {args.loop}; median "
        f"of {args.repeat}",
        "",
        "| setup | requests/s | vs direct | p50 us | coapkit CPU us/req | nginx CPU us/req "
        "| load CPU us/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        lines.append(
            f"| {name} | {result['rps']:.0f} | {result['rps'] / direct['rps']:.2f} "
            f"| {result['p50_us']:.0f} | {result['coapkit_us']:.1f} | {result['nginx_us']:.1f} "
            f"| {result['load_us']:.1f} |"
        )
    per_core = 1e6 / direct["coapkit_us"]
    through = results["1 process behind nginx"]
    lines += [
        "",
        f"- Requests per core (one coapkit process, CPU time per request): {per_core:.0f}/s",
        f"- nginx per request: {through['nginx_us']:.1f} us of CPU "
        f"({through['nginx_us'] / through['coapkit_us']:.2f} x the coapkit process's)",
        f"- nginx per UDP session: {session:.0f} bytes of RSS",
        "",
        "| in one coapkit process (tracemalloc) | bytes |",
        "|---|---:|",
        f"| a deduplication entry (16 busy peers) | {inputs['dedup_entry']:.0f} |",
        f"| an observing device just registered (observer, peer, dedup entry) "
        f"| {inputs['registered_device']:.0f} |",
        f"| an observer alone (its request's state expired) | {inputs['observer']:.0f} |",
        f"| an observer with its peer entry (a CON notification in the last 247 s) "
        f"| {inputs['observer_with_peer']:.0f} |",
        "",
        f"Observers per GiB: {2**30 / inputs['observer']:,.0f} alone, "
        f"{2**30 / inputs['observer_with_peer']:,.0f} with their peer entries",
    ]
    print_table(lines, args.markdown)


if __name__ == "__main__":
    main()
