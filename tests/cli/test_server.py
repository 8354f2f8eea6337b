"""``coapkit server`` and ``fileserver`` as processes: logging, Ctrl-C, SIGTERM, ping."""

from __future__ import annotations

import re
import signal

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
    assert re.search(r"serving CoAP on 127\.0\.0\.1:\d+$", lines[0])
    assert "serving the ETSI plugtest resources" in lines[1]
    requests = [line for line in lines if "->" in line]
    assert len(requests) == 2
    assert re.search(r" 127\.0\.0\.1:\d+ GET /test -> 2\.05 Content$", requests[0])
    assert re.search(r" 127\.0\.0\.1:\d+ POST /nowhere -> 4\.04 Not Found$", requests[1])


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
