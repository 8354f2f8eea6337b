"""``coapkit server`` and ``fileserver`` as processes: logging, Ctrl-C, SIGTERM, ping."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time

import pytest

from tests.cli.helpers import ServerProcess, one_error_line, run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_server_cleanly(sig):
    server = ServerProcess("server")
    assert run("get", f"{server.url}/hello").returncode == 0
    status = server.stop(sig)
    log = server.log()
    assert status == 0, log
    assert "Traceback" not in log
    assert log.rstrip().endswith("stopped")


def test_sigint_stops_the_fileserver(tmp_path):
    server = ServerProcess("fileserver", str(tmp_path))
    assert run("get", server.url).returncode == 0
    assert server.stop(signal.SIGINT) == 0


def test_one_log_line_per_request():
    server = ServerProcess("server", "--plugtest")
    try:
        run("get", f"{server.url}/test")
        run("post", f"{server.url}/nowhere")
        server.wait_for_log("POST /nowhere")
    finally:
        server.stop()
    lines = server.log().splitlines()
    assert re.search(r"serving CoAP on coap://127\.0\.0\.1:\d+$", lines[0])
    assert "serving the ETSI plugtest resources" in lines[1]
    requests = [line for line in lines if "->" in line]
    assert len(requests) == 2
    assert re.search(r" 127\.0\.0\.1:\d+ GET /test -> 2\.05 Content$", requests[0])
    assert re.search(r" 127\.0\.0\.1:\d+ POST /nowhere -> 4\.04 Not Found$", requests[1])


def test_requests_refused_before_a_resource_have_their_line(tmp_path):
    """4.02 (an unrecognised critical option) and 4.13 (a body over the limit, Size1) are
    answered by the stack, not by a resource; the request log shows them all the same."""
    body = tmp_path / "big.bin"
    body.write_bytes(bytes(70000))
    server = ServerProcess("server")
    try:
        assert run("get", f"{server.url}/hello", "--option", "OSCORE=0x00").returncode == 4
        assert run("put", f"{server.url}/echo", "--payload", f"@{body}").returncode == 4
        server.wait_for_log("PUT /echo")
    finally:
        server.stop()
    requests = [line for line in server.log().splitlines() if "->" in line]
    assert len(requests) == 2, server.log()
    assert re.search(r" 127\.0\.0\.1:\d+ GET /hello -> 4\.02 Bad Option$", requests[0])
    assert re.search(r" 127\.0\.0\.1:\d+ PUT /echo -> 4\.13 Request Entity Too Large$", requests[1])


def test_quiet_logs_no_request_lines():
    server = ServerProcess("server", "--quiet")
    try:
        for _ in range(3):
            assert run("get", f"{server.url}/hello").returncode == 0
        assert run("get", f"{server.url}/nowhere").returncode == 4
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "->" not in log
    assert "serving the demo resources" in log and log.rstrip().endswith("stopped")


def test_the_request_lines_keep_their_place_among_the_other_log_lines():
    """The request lines are gathered per loop turn and written apart from the logging
    records; with -v each one still comes after the datagrams of its own exchange and
    before those of the next request."""
    server = ServerProcess("server", "-v")
    try:
        for path in ("hello", "counter", "nowhere"):
            run("get", f"{server.url}/{path}")
        server.wait_for_log("GET /nowhere -> 4.04")
    finally:
        server.stop()
    lines = server.log().splitlines()
    for path, code in (("hello", "2.05"), ("counter", "2.05"), ("nowhere", "4.04")):
        [request] = [i for i, line in enumerate(lines) if f"GET /{path} -> {code}" in line]
        received = max(i for i, line in enumerate(lines[:request]) if "< CON GET" in line)
        assert any(f"> ACK {code}" in line for line in lines[received:request]), lines
        assert f"Uri-Path: '{path}'" in "\n".join(lines[received:request])
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 127\.0\.0\.1:\d+ GET /hello -> .*",
        lines[next(i for i, line in enumerate(lines) if "GET /hello ->" in line)],
    )


def test_dual_stack_server_logs_ipv4_peers_as_ipv4():
    server = ServerProcess("server", host="::")
    try:
        assert run("get", f"coap://127.0.0.1:{server.port}/hello").returncode == 0
        assert run("get", f"coap://[::1]:{server.port}/hello").returncode == 0
        server.wait_for_log("[::1]:")
    finally:
        server.stop()
    requests = [line for line in server.log().splitlines() if "->" in line]
    assert re.search(r" 127\.0\.0\.1:\d+ GET /hello", requests[0])
    assert re.search(r" \[::1\]:\d+ GET /hello", requests[1])


def test_verbose_server_traces_datagrams():
    server = ServerProcess("server", "-v")
    try:
        run("get", f"{server.url}/hello")
        server.wait_for_log("> ACK 2.05")
    finally:
        server.stop()
    log = server.log()
    assert "< CON GET" in log  # received
    assert ">   Content-Format: 0 (text/plain; charset=utf-8)" in log  # sent


def test_ping(demo_server):
    result = run("ping", demo_server.url)
    assert result.returncode == 0
    assert re.fullmatch(
        rf"RST from 127\.0\.0\.1:{demo_server.port}: round trip \d+\.\d\d ms\n", result.stdout
    )
    trace = run("ping", demo_server.url, "-v").stderr
    assert "> CON Empty" in trace and "< RST Empty" in trace


def test_ping_a_fake_peer_that_resets(reset_peer):
    assert run("ping", f"coap://127.0.0.1:{reset_peer.port}").returncode == 0


def test_ping_timeout(silent_port):
    result = run("ping", f"coap://127.0.0.1:{silent_port}", "--timeout", "0.3")
    assert result.returncode == 8
    assert one_error_line(result).startswith(
        f"coapkit: no RST from 127.0.0.1:{silent_port} within 0.3 s"
    )


def test_signal_right_after_start():
    # the handlers are in place before the server reports its address
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = ServerProcess("server", "--plugtest")
        assert server.stop(sig) == 0, server.log()


# -- the amplification defence (RFC 9175 §2.4), on by default -----------------------------------


def test_amplification_defence_is_on_by_default(plugtest_server):
    def large_lines() -> list[str]:
        return [line for line in plugtest_server.log().splitlines() if "GET /large ->" in line]

    before = len(large_lines())
    result = run("get", f"{plugtest_server.url}/large", "-v")
    assert result.returncode == 0
    trace = result.stderr
    # 1024 bytes to a source that has not proved its address: an Echo challenge first
    assert re.search(r"^< ACK 4\.01 Unauthorized", trace, re.MULTILINE)
    challenge = re.search(r"<   Echo: (0x[0-9a-f]+)", trace).group(1)
    assert f">   Echo: {challenge}" in trace  # answered by the client, then served
    assert "amplification" not in plugtest_server.log()
    # the request log says what went back: first the challenge, then the first block
    deadline = time.monotonic() + 10
    while len(large_lines()) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    challenged, served = large_lines()[before : before + 2]
    assert challenged.endswith(
        "GET /large -> 4.01 Unauthorized with Echo "
        "(2.05 Content held back until the source proves its address)"
    )
    assert served.endswith("GET /large -> 2.05 Content")


def test_no_amplification_limit():
    server = ServerProcess("server", "--plugtest", "--no-amplification-limit")
    try:
        result = run("get", f"{server.url}/large", "-v")
    finally:
        server.stop()
    assert result.returncode == 0
    assert "4.01" not in result.stderr and "Echo" not in result.stderr
    assert "(uvloop; no amplification limit); Ctrl-C stops" in server.log() or (
        "(asyncio; no amplification limit); Ctrl-C stops" in server.log()
    )


def test_fileserver_has_the_defence_and_the_flag(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 2000)
    for extra, challenged in (((), True), (("--no-amplification-limit",), False)):
        server = ServerProcess("fileserver", str(tmp_path), *extra)
        try:
            result = run("get", f"{server.url}/big.txt", "-v")
        finally:
            server.stop()
        assert result.returncode == 0 and result.stdout == "x" * 2000 + "\n"
        assert ("< ACK 4.01 Unauthorized" in result.stderr) is challenged


# -- --workers N: processes sharing the port ------------------------------------------------------


def worker_pids(log: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"\[worker (\d+)\]", log)}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_workers_start_serve_and_stop(sig):
    server = ServerProcess("server", "--workers", "3")
    try:
        server.wait_for_log(f"3 workers serving on 127.0.0.1:{server.port}")
        for _ in range(6):
            assert run("get", f"{server.url}/hello").stdout == "Hello, CoAP!\n"
        observed = run("get", f"{server.url}/time", "--observe", "--count", "2")
        assert observed.returncode == 0 and len(observed.stdout.splitlines()) == 2
    finally:
        status = server.stop(sig)
    log = server.log()
    assert status == 0, log
    assert "Traceback" not in log
    pids = worker_pids(log)
    assert len(pids) == 3
    assert log.count("stopped") == 4  # each worker, then the supervisor
    assert log.rstrip().endswith("stopped")
    for pid in pids:  # every worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_dying_worker_stops_the_others():
    server = ServerProcess("server", "--workers", "2")
    server.wait_for_log("2 workers serving on")
    victim, survivor = sorted(worker_pids(server.log()))
    os.kill(victim, signal.SIGKILL)
    server.process.wait(15)  # the supervisor ends by itself
    assert server.stop() == 128 + signal.SIGKILL
    assert f"worker {victim} ended by itself (status 137); stopping the others" in server.log()
    with pytest.raises(ProcessLookupError):
        os.kill(survivor, 0)


def test_workers_cannot_listen():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))  # without SO_REUSEPORT: nobody may share it
        port = taken.getsockname()[1]
        result = run("server", "--workers", "2", "--bind", "127.0.0.1", "--port", str(port))
    assert result.returncode == 7
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def plain_server_refusal(port: int) -> str:
    """What a plain ``coapkit server`` says on ``port`` taken: the line a group must say too."""
    result = run("server", "--bind", "127.0.0.1", "--port", str(port))
    assert result.returncode == 7
    return one_error_line(result)


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::"])
def test_a_second_worker_group_on_the_port_fails_like_a_plain_server(bind):
    """SO_REUSEPORT would let a second group join the first and take half its clients:
    it must fail as a plain server does (exit 7, address already in use)."""
    first = ServerProcess("server", "--workers", "2")
    try:
        first.wait_for_log("2 workers serving on")
        port = first.port
        second = run("server", "--workers", "2", "--bind", bind, "--port", str(port))
        assert second.returncode == 7, second.stderr
        literal = f"[{bind}]" if ":" in bind else bind
        assert one_error_line(second) == (
            f"coapkit: cannot listen on {literal}:{port}: Address already in use"
        )
        if bind == "127.0.0.1":
            assert one_error_line(second) == plain_server_refusal(port)
        for _ in range(4):  # the first group still has every client
            assert run("get", f"{first.url}/hello").stdout == "Hello, CoAP!\n"
    finally:
        assert first.stop() == 0
    assert len(worker_pids(first.log())) == 2


def test_a_group_starting_on_the_port_holds_it_against_another():
    """Between the parent's check and its workers' binds, the port's lock (an abstract Unix
    socket named after it) keeps a second group out."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the port lock is an abstract Unix socket (Linux)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as lock:
        lock.bind(f"\0coapkit-udp-{port}")  # as a group that is starting holds it
        result = run("server", "--workers", "2", "--bind", "127.0.0.1", "--port", str(port))
    assert result.returncode == 7
    assert one_error_line(result) == (
        f"coapkit: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another coapkit server --workers group is starting there)"
    )


def test_claim_port_refuses_a_port_a_reuse_port_group_holds_and_locks_the_one_it_gives():
    """claim_port binds without SO_REUSEPORT: a port held by any SO_REUSEPORT socket (which
    a worker's bind would join) is refused; port 0 gets a port bound that way, so nobody's,
    and its lock is held until closed."""
    from coapkit.cli.serve import claim_port
    from coapkit.errors import NetworkError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as group:
        group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        group.bind(("127.0.0.1", 0))
        held = group.getsockname()[1]
        with pytest.raises(NetworkError, match=f"cannot listen on 127.0.0.1:{held}: Address"):
            claim_port("127.0.0.1", held)
    port, lock = claim_port("127.0.0.1", 0)
    try:
        assert port != 0
        if lock is not None:
            with pytest.raises(NetworkError, match="another coapkit server --workers group"):
                claim_port("127.0.0.1", port)
    finally:
        if lock is not None:
            lock.close()
    released = claim_port("127.0.0.1", port)[1]  # the lock was released
    if released is not None:
        released.close()


def test_workers_refuse_a_tcp_listener_port_a_listening_group_holds():
    """--workers with a coap+tcp listener claims its TCP port as it claims a UDP one: a
    port where a SO_REUSEPORT listener is listening is refused (status 7) before any
    worker starts, naming the listener; the UDP claim of the same number is unaffected."""
    from coapkit.cli.serve import claim_port
    from coapkit.errors import NetworkError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as group:
        group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        group.bind(("127.0.0.1", 0))
        group.listen()
        held = group.getsockname()[1]
        with pytest.raises(NetworkError, match="cannot listen on coap\\+tcp://x: Address"):
            claim_port("127.0.0.1", held, "tcp", name="coap+tcp://x")
        result = run(
            "server", "--workers", "2", "--listen", f"coap+tcp://127.0.0.1:{held}", timeout=30
        )
    assert result.returncode == 7
    assert one_error_line(result) == (
        f"coapkit: cannot listen on coap+tcp://127.0.0.1:{held}: Address already in use"
    )


# -- --loop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_server_and_client_on_either_loop(loop):
    pytest.importorskip("uvloop")
    server = ServerProcess("server", "--loop", loop)
    try:
        assert f"serving the demo resources /hello /counter /time /echo ({loop}); " in server.log()
        for client_loop in ("asyncio", "uvloop", "auto"):
            result = run("get", f"{server.url}/hello", "--loop", client_loop)
            assert (result.returncode, result.stdout) == (0, "Hello, CoAP!\n")
        observed = run("get", f"{server.url}/time", "--observe", "--count", "2", "--loop", loop)
        assert observed.returncode == 0
        assert run("ping", server.url, "--loop", loop).returncode == 0
        assert run("discover", server.url, "--loop", loop).returncode == 0
    finally:
        assert server.stop() == 0


def test_auto_takes_uvloop_when_installed():
    pytest.importorskip("uvloop")
    server = ServerProcess("server")
    try:
        assert "(uvloop); Ctrl-C stops" in server.log()
    finally:
        server.stop()


def test_without_uvloop(tmp_path):
    blocker = tmp_path / "block"
    (blocker / "uvloop").mkdir(parents=True)
    (blocker / "uvloop" / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    forced = run("get", "coap://127.0.0.1/x", "--loop", "uvloop", extra_path=str(blocker))
    assert forced.returncode == 2
    assert one_error_line(forced) == (
        "coapkit: --loop uvloop: uvloop is not installed (pip install uvloop)"
    )
    server = run("server", "--loop", "uvloop", "--port", "0", extra_path=str(blocker))
    assert server.returncode == 2 and "uvloop is not installed" in server.stderr
    # auto falls back to asyncio's own loop
    auto = run("ping", "coap://127.0.0.1:9", "--timeout", "0.2", extra_path=str(blocker))
    assert auto.returncode in (7, 8) and "uvloop" not in auto.stderr


def test_loop_selection_in_process(monkeypatch):
    from coapkit.cli import loops

    monkeypatch.setattr(loops, "_uvloop_available", lambda: True)
    assert [loops.choose_loop(name) for name in (None, "auto", "asyncio", "uvloop")] == [
        "uvloop", "uvloop", "asyncio", "uvloop",
    ]  # fmt: skip
    monkeypatch.setattr(loops, "_uvloop_available", lambda: False)
    assert [loops.choose_loop(name) for name in (None, "auto", "asyncio")] == ["asyncio"] * 3


# -- ticking resources leave nothing behind ---------------------------------------------------


async def test_ticking_resources_notify_and_leave_no_task_or_timer():
    from coapkit.cli.demo import Time, demo_site
    from coapkit.cli.ticking import start_ticking, stop_ticking
    from coapkit.client import Client
    from coapkit.server import Server

    site = demo_site(time_period=0.05)
    async with Server(site, bind=("127.0.0.1", 0)) as server:
        ticking = start_ticking(site, asyncio.get_running_loop())
        assert [type(resource) for resource in ticking] == [Time]
        async with Client() as client:
            observation = client.observe(f"coap://127.0.0.1:{server.port}/time")
            async with observation, asyncio.timeout(10):
                count = 0
                async for _ in observation:
                    count += 1
                    if count == 3:
                        break
        stop_ticking(ticking)
        assert not ticking[0].running
    assert asyncio.all_tasks() == {asyncio.current_task()}
