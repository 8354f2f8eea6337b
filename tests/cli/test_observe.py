"""``coapkit get --observe`` against ``coapkit server`` (demo ``/time``, plugtest ``/obs*``).

The servers run with ``--obs-period 0.2``: their observable resources change
five times a second, so a test waits a fraction of a second for each
notification (waiting on the client's output, with a timeout; nothing here
sleeps for protocol timing).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.cli.helpers import ServerProcess, cli_env, one_error_line, run

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def fast_plugtest() -> Iterator[ServerProcess]:
    server = ServerProcess("server", "--plugtest", "--obs-period", "0.2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fast_demo() -> Iterator[ServerProcess]:
    server = ServerProcess("server", "--obs-period", "0.2")
    yield server
    server.stop()


class Observer:
    """``coapkit get URI --observe ...`` in the background, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coapkit", "get", *args, "--observe"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        self.lines: list[str] = []
        self._condition = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for raw in self.process.stdout:
                with self._condition:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._condition.notify_all()
        except (OSError, ValueError):  # the test closed our end of the pipe
            pass
        with self._condition:
            self._condition.notify_all()

    def wait_for_lines(self, count: int, timeout: float = 10) -> list[str]:
        """The first ``count`` lines (waiting for them at most ``timeout`` seconds)."""
        with self._condition:
            ok = self._condition.wait_for(
                lambda: len(self.lines) >= count or not self._reader.is_alive(), timeout
            )
            assert ok and len(self.lines) >= count, (self.lines, self.process.poll())
            return self.lines[:count]

    def wait_for(self, predicate, timeout: float = 10) -> list[str]:  # type: ignore[no-untyped-def]
        with self._condition:
            ok = self._condition.wait_for(
                lambda: predicate(self.lines) or not self._reader.is_alive(), timeout
            )
            assert ok and predicate(self.lines), (self.lines, self.process.poll())
            return list(self.lines)

    def finish(self, sig: int | None = None, timeout: float = 10) -> tuple[int, str, str]:
        """Signal it (if ``sig``), wait for it to end: (status, stdout, stderr)."""
        if sig is not None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self._reader.join(5)
        assert self.process.stderr is not None
        err = self.process.stderr.read().decode("utf-8", "replace")
        self.process.stderr.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode, "\n".join(self.lines), err


# -- --count, --json ---------------------------------------------------------------------------


def test_count_prints_that_many_responses_and_deregisters(fast_demo):
    result = run("get", f"{fast_demo.url}/time", "--observe", "--count", "3", "-v")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(TIME.fullmatch(line) for line in lines)
    trace = result.stderr
    registration, *_ = re.findall(r">   Observe: (\d+)", trace)
    assert registration == "0"
    assert trace.count("<   Observe: ") >= 3
    # the last request is the deregistration: a GET with Observe=1 and the same token
    token = re.search(r"> CON GET .*token ([0-9a-f]+)", trace).group(1)
    last = trace[trace.rindex("> CON GET") :]
    assert f"token {token}" in last.splitlines()[0]
    assert ">   Observe: 1" in last


def test_json_prints_one_object_per_line(fast_plugtest):
    result = run("get", f"{fast_plugtest.url}/obs", "--observe", "--count", "3", "--json")
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 3
    sequences = [document["options"]["Observe"] for document in documents]
    assert sequences == sorted(set(sequences))
    for document in documents:
        assert (document["code"], document["content_format"]) == ("2.05", 0)
        assert document["options"]["Max-Age"] == 1  # ceil(0.2 s); 5 at the default period
        assert TIME.fullmatch(document["payload"])


def test_fetch_observes_too(fast_plugtest):
    # FETCH can observe (RFC 8132 §2.4); /obs has no FETCH handler: 4.05 ends it at once
    result = run("fetch", f"{fast_plugtest.url}/obs", "--observe", "--payload", "x")
    assert result.returncode == 4
    assert result.stderr.startswith("4.05 Method Not Allowed")


def test_observe_is_for_get_and_fetch_only():
    result = run("put", "coap://127.0.0.1/x", "--observe")
    assert result.returncode == 2
    assert "unrecognized arguments: --observe" in one_error_line(result)
    both = run("get", "coap://127.0.0.1/x", "--observe", "-o", "out.txt")
    assert both.returncode == 2
    assert "-o/--output cannot be combined with --observe" in one_error_line(both)


# -- the ways it ends ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_cleanly_after_deregistering(fast_plugtest, sig):
    observer = Observer(f"{fast_plugtest.url}/obs-non", "-v")
    observer.wait_for_lines(3)  # each line is printed (and flushed) as it arrives
    status, out, err = observer.finish(sig)
    assert status == 0, err
    assert all(TIME.fullmatch(line) for line in out.splitlines())
    after = err[err.index("* interrupted: deregistering") :]
    assert "> CON GET" in after and ">   Observe: 1" in after  # the deregistration went out
    assert "Traceback" not in err


def test_notifications_are_con_for_obs_and_non_for_obs_non(fast_plugtest):
    con = run("get", f"{fast_plugtest.url}/obs", "--observe", "--count", "3", "-v")
    assert re.search(r"^< CON 2\.05 Content", con.stderr, re.MULTILINE)
    assert re.search(r"^> ACK Empty", con.stderr, re.MULTILINE)  # we acknowledge them
    non = run("get", f"{fast_plugtest.url}/obs-non", "--observe", "--count", "3", "-v")
    assert re.search(r"^< NON 2\.05 Content", non.stderr, re.MULTILINE)
    assert not re.search(r"^< CON", non.stderr, re.MULTILINE)


def test_plain_get_and_observe_1_do_not_cancel_an_observation(fast_plugtest):
    url = f"{fast_plugtest.url}/obs"
    observer = Observer(url)
    try:
        observer.wait_for_lines(2)
        plain = run("get", url, "-v")
        assert plain.returncode == 0 and "<   Observe" not in plain.stderr  # no Observe back
        other = run("get", url, "--option", "Observe=1", "-v")
        assert other.returncode == 0 and "<   Observe" not in other.stderr
        seen = len(observer.lines)
        observer.wait_for_lines(seen + 2)  # the observation goes on
    finally:
        status, _, err = observer.finish(signal.SIGINT)
    assert status == 0, err


def test_put_notifies_and_a_new_content_format_ends_with_406(fast_plugtest):
    url = f"{fast_plugtest.url}/obs"
    observer = Observer(url)
    try:
        observer.wait_for_lines(1)
        put = run("put", url, "--payload", "hello observers")
        assert (put.returncode, put.stderr) == (0, "2.04 Changed\n")
        observer.wait_for(lambda lines: "hello observers" in lines)
        xml = run("put", url, "--payload", "<v>2</v>", "--content-format", "xml")
        assert xml.returncode == 0
        status, out, err = observer.finish()
    finally:
        run("delete", url)  # back to the clock for the other tests
    assert status == 4
    assert err == "4.06 Not Acceptable\n"
    assert out.splitlines()[-1] == "hello observers"  # the 4.06 has no payload to print
    unformatted = run("put", url, "--payload", "-", input=b"x")  # stdin: no Content-Format
    assert (unformatted.returncode, unformatted.stderr) == (
        4,
        "4.00 Bad Request: a PUT needs a Content-Format\n",
    )


def test_delete_ends_observations_with_404(fast_plugtest):
    url = f"{fast_plugtest.url}/obs-non"
    observer = Observer(url)
    observer.wait_for_lines(1)
    deleted = run("delete", url)
    assert (deleted.returncode, deleted.stderr) == (0, "2.02 Deleted\n")
    status, _, err = observer.finish()
    assert (status, err) == (4, "4.04 Not Found\n")
    # and the resource is back to its clock
    assert TIME.fullmatch(run("get", url).stdout.strip())


def test_large_notifications_come_whole(fast_plugtest):
    # 160-byte states: in 32-byte blocks (Block2 szx 1 asked for in the registration) each
    # notification's first block is completed with Block2 requests (RFC 7959 §2.6)
    result = run(
        "get", f"{fast_plugtest.url}/obs-large", "--observe", "--count", "3",
        "--option", "Block2=1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payloads = [json.loads(line)["payload"] for line in result.stdout.splitlines()]
    assert len(payloads) == 3
    for payload in payloads:
        lines = payload.splitlines()
        assert len(payload) == 160 and len(lines) == 4
        assert re.fullmatch(r"obs-large state at " + TIME.pattern, lines[0])


def test_timeout_reset_and_network_errors_as_for_a_request(silent_port, reset_peer):
    timeout = run("get", f"coap://127.0.0.1:{silent_port}/x", "--observe", "--timeout", "0.3")
    assert timeout.returncode == 8
    assert one_error_line(timeout).startswith(f"coapkit: no response from 127.0.0.1:{silent_port}")
    reset = run("get", f"coap://127.0.0.1:{reset_peer.port}/x", "--observe")
    assert reset.returncode == 9 and "answered with RST" in one_error_line(reset)


def test_a_closed_stdout_ends_it_quietly_with_status_10_after_deregistering(fast_plugtest):
    # coapkit get ... --observe | head -2: once head is done, the output cannot be delivered
    observer = Observer(f"{fast_plugtest.url}/obs-non", "-v")
    observer.wait_for_lines(2)
    assert observer.process.stdout is not None
    observer.process.stdout.close()  # the reader goes away
    observer.process.wait(10)
    observer._reader.join(5)
    assert observer.process.stderr is not None
    err = observer.process.stderr.read().decode()
    observer.process.stderr.close()
    assert observer.process.returncode == 10, err
    assert "Traceback" not in err and "coapkit:" not in err
    assert ">   Observe: 1" in err  # deregistered on the way out
