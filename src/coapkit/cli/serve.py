"""The server commands: ``coapkit server`` (demo or plugtest resources) and ``coapkit fileserver``.

Both log one line per request to stderr (``Server(log_requests=True)``; with
``-v`` everything at DEBUG, including every datagram on ``coapkit.trace``, in
the format of the client commands' ``-v``) and stop
cleanly, with exit status 0, on Ctrl-C (SIGINT) or SIGTERM.

* The amplification defence (RFC 7252 §11.3, RFC 9175 §2.4) is on: a
  response more than three times the size of its request (and over 136
  bytes) goes to a source that has not proved its address only after an
  Echo round trip (4.01 with Echo; coapkit's and libcoap's clients answer
  it by themselves).  ``--no-amplification-limit`` turns it off, for
  clients that cannot answer Echo.
* Resources that change by themselves (the demo's ``/time``, the plugtest
  ``/obs*``) get their clocks started once the server listens and stopped
  before it closes (:mod:`coapkit.cli.ticking`).
* ``coapkit server --workers N`` runs N worker processes that share the
  port (SO_REUSEPORT: the kernel spreads clients over them, one client
  always reaching the same worker, so block-wise transfers and observations
  stay with one process).  The parent only supervises: it starts them,
  stops them all with SIGTERM on SIGINT or SIGTERM (exit 0), and stops the
  others if one ends by itself (exiting with that one's status).  The state
  of the resources (a counter, a stored value) is per worker.
* Behind a load balancer (docs/deployment.md): Observe numbers come from the
  clock (``ObserveConfig(clock_sequence=True)``), so that a client moved to
  another process takes its notifications as newer; ``--echo-key-file``
  gives every process the same Echo key (``--workers`` draws one for all of
  its workers unless given).
* ``--congestion cocoa``: adaptive retransmission; with ``-v`` the peers'
  round-trip estimates are logged when the server stops.
* ``--loop``: uvloop when installed, unless told otherwise (:mod:`coapkit.cli.loops`).
* The log goes to stderr best effort (:mod:`coapkit.cli.console`): once
  stderr is closed, the server stops logging and goes on serving; an error
  line that cannot be written does not change the exit status (7 for a port
  it cannot listen on).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.cli import loops
from coapkit.cli.console import DiagnosticHandler, diagnostics, settle
from coapkit.cli.exits import EXIT_INTERNAL, EXIT_OK, LocalFileError, exit_status
from coapkit.cli.ticking import start_ticking, stop_ticking
from coapkit.errors import NetworkError
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.messaging.congestion import CONGESTION_CONTROLS
from coapkit.messaging.layer import MessagingConfig
from coapkit.observe.registry import ObserveConfig
from coapkit.resources.site import Site
from coapkit.server import Server

logger = logging.getLogger("coapkit.server")

#: The largest file ``fileserver --write`` takes in one PUT (in Block1 blocks).
FILESERVER_MAX_BODY = 16 * 1024 * 1024

#: How long the supervisor waits for its workers to start, and to stop after SIGTERM.
WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 10.0


def configure_logging(verbose: bool, prefix: str = "") -> None:
    """Log lines to stderr: one per request at INFO, everything with ``-v``; each line
    starts with the time and ``prefix`` (a worker's ``[worker PID]``).  A closed
    stderr switches the log off (:class:`~coapkit.cli.console.DiagnosticHandler`)."""
    handler = DiagnosticHandler()
    layout = "%(asctime)s " + prefix.replace("%", "%%") + "%(message)s"
    handler.setFormatter(logging.Formatter(layout, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("coapkit")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def serve(
    site: Site,
    args: argparse.Namespace,
    description: str,
    *,
    blockwise: BlockwiseConfig | None = None,
    ready: Any = None,
    stop_signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
    reuse_port: bool = False,
    log_prefix: str = "",
    echo_key: bytes | None = None,
) -> int:
    """Serve ``site`` on ``--bind``/``--port`` until one of ``stop_signals``; 0 when stopped so.

    ``ready`` (a worker's connection to its supervisor) is sent the port once
    the server listens; while serving, the connection closing (the supervisor
    is gone) stops the server too.  ``echo_key``: the Echo key (else ``--echo-key-file``'s).
    """
    loop_name = loops.choose_loop(getattr(args, "loop", None))
    configure_logging(args.verbose, log_prefix)  # -v: the datagram trace is on coapkit.trace
    if echo_key is None:
        echo_key = read_echo_key(args)
    amplification = None if args.no_amplification_limit else AmplificationConfig(secret=echo_key)
    congestion = CONGESTION_CONTROLS[getattr(args, "congestion", "fixed")]

    async def run() -> None:
        server = Server(
            site,
            bind=(args.bind, args.port),
            log_requests=True,
            amplification=amplification,
            blockwise=blockwise,
            reuse_port=reuse_port,
            messaging=MessagingConfig(congestion=congestion),
            observe=ObserveConfig(clock_sequence=True),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in stop_signals:  # before "serving CoAP on ...": a signal always stops cleanly
            loop.add_signal_handler(number, stop.set)
        ticking = []
        watching = False
        try:
            try:
                await server.start()
            except OSError as exc:
                host = f"[{args.bind}]" if ":" in args.bind else args.bind
                reason = exc.strerror or str(exc)
                raise NetworkError(f"cannot listen on {host}:{args.port}: {reason}") from None
            ticking = start_ticking(site, loop)
            if ready is not None:
                ready.send(server.port)
                loop.add_reader(ready.fileno(), stop.set)  # EOF: the supervisor is gone
                watching = True
            limit = "" if amplification else "; no amplification limit"
            logger.info("%s (%s%s); Ctrl-C stops", description, loop_name, limit)
            await stop.wait()
        finally:
            if watching:
                loop.remove_reader(ready.fileno())
            for number in stop_signals:
                loop.remove_signal_handler(number)
            stop_ticking(ticking)
            if args.verbose and server.listeners and congestion is not CONGESTION_CONTROLS["fixed"]:
                log_estimates(server)
            await server.close()
        logger.info("stopped")

    loops.run(run(), loop_name)
    return EXIT_OK


def read_echo_key(args: argparse.Namespace) -> bytes | None:
    """``--echo-key-file``'s key, or None."""
    name = getattr(args, "echo_key_file", None)
    if name is None:
        return None
    try:
        key = Path(name).read_bytes()
    except OSError as exc:
        raise LocalFileError(f"cannot read the Echo key from {name}: {exc.strerror}") from None
    if len(key) < 16:
        raise LocalFileError(f"{name} holds {len(key)} bytes; an Echo key needs 16 or more")
    return key


#: the most peers whose estimates ``-v`` logs when the server stops
LOGGED_PEERS = 20


def log_estimates(server: Server) -> None:
    """``-v``: the round-trip estimates of the peers the server knows (the first few)."""
    driver = server.driver
    known = driver.endpoint.every_peer_statistics(driver.loop.time())
    for statistics in known[:LOGGED_PEERS]:
        logger.debug("peer %s", statistics.describe())
    if len(known) > LOGGED_PEERS:
        logger.debug("... and %d peers more", len(known) - LOGGED_PEERS)


# -- the commands --------------------------------------------------------------------------


def server_site(args: argparse.Namespace) -> tuple[Site, str]:
    """The site ``coapkit server`` serves, and the line that says so."""
    from coapkit.cli.demo import demo_site
    from coapkit.cli.plugtest import plugtest_site

    period = getattr(args, "obs_period", None)
    if args.plugtest:
        site = plugtest_site() if period is None else plugtest_site(obs_period=period)
        return site, "serving the ETSI plugtest resources"
    site = demo_site() if period is None else demo_site(time_period=period)
    return site, "serving the demo resources /hello /counter /time /echo"


def cmd_server(args: argparse.Namespace) -> int:
    """``coapkit server``: the demo resources, or the plugtest set with ``--plugtest``."""
    loops.choose_loop(args.loop)  # a usage error before anything starts
    if args.workers > 1:
        return supervise(args)
    site, description = server_site(args)
    return serve(site, args, description)


def cmd_fileserver(args: argparse.Namespace) -> int:
    """``coapkit fileserver DIR``: a directory, read-only unless ``--write``."""
    from coapkit.cli.fileserver import fileserver_site

    root = Path(args.dir)
    if not root.is_dir():
        reason = "does not exist" if not root.exists() else "is not a directory"
        raise LocalFileError(f"{args.dir!r} {reason}")
    mode = "read-write (PUT and DELETE allowed)" if args.write else "read-only"
    site = fileserver_site(root, writable=args.write)
    blockwise = BlockwiseConfig(
        max_body=FILESERVER_MAX_BODY, max_body_total=4 * FILESERVER_MAX_BODY
    )
    return serve(site, args, f"serving {root.resolve()} {mode}", blockwise=blockwise)


# -- --workers N: a supervisor and N processes sharing the port ----------------------------------


class _Stop(Exception):
    """SIGINT or SIGTERM reached the supervisor."""


class _Failed(Exception):
    """A worker could not start; ``status`` is the supervisor's exit status."""

    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _worker(
    argv: list[str],
    port: int,
    connection: multiprocessing.connection.Connection,
    echo_key: bytes | None = None,
) -> None:
    """One worker process: ``coapkit server`` on the shared port, reporting to ``connection``;
    ``echo_key``: the one every worker uses."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    from coapkit.cli.main import build_parser

    args = build_parser().parse_args(argv)
    args.port = port
    site, description = server_site(args)
    try:
        status = serve(
            site,
            args,
            description,
            log_prefix=f"[worker {os.getpid()}] ",
            ready=connection,
            stop_signals=(signal.SIGTERM,),
            reuse_port=True,
            echo_key=echo_key,
        )
    except Exception as exc:
        status, message = exit_status(exc)
        diagnostics.line(f"coapkit: {message}")
    settle()  # nothing left for the interpreter to fail on at exit: the status stands
    sys.exit(status)


def supervise(args: argparse.Namespace) -> int:
    """``--workers N``: start N workers on one port, wait, stop them all (see the module doc)."""
    configure_logging(args.verbose)
    context = multiprocessing.get_context("spawn")
    argv = list(args.argv)
    # One Echo key for every worker: a client may answer a challenge to another one.
    echo_key = read_echo_key(args) or secrets.token_bytes(32)
    workers: list[tuple[Any, multiprocessing.connection.Connection]] = []

    def start(port: int) -> None:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(argv, port, theirs, echo_key), daemon=True)
        process.start()
        theirs.close()
        workers.append((process, mine))

    def await_ready(pending: list[tuple[Any, multiprocessing.connection.Connection]]) -> int:
        """The port the workers report; raises _Failed when one of them ends instead."""
        port = 0
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        waiting = {connection: process for process, connection in pending}
        while waiting:
            left = deadline - time.monotonic()
            ready = multiprocessing.connection.wait(list(waiting), timeout=max(0.0, left))
            if not ready:
                raise _Failed(EXIT_INTERNAL, "the workers did not start in time")
            for item in ready:
                assert isinstance(item, multiprocessing.connection.Connection)
                process = waiting.pop(item)
                try:
                    port = int(item.recv())
                except EOFError:
                    process.join()
                    raise _Failed(_exit_code(process.exitcode) or EXIT_INTERNAL, None) from None
        return port

    previous = {
        number: signal.signal(number, _raise_stop) for number in (signal.SIGINT, signal.SIGTERM)
    }
    status = EXIT_OK
    try:
        start(args.port)
        port = await_ready(workers)
        for _ in range(args.workers - 1):
            start(port)
        await_ready(workers[1:])
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        logger.info("%d workers serving on %s:%d; Ctrl-C stops", len(workers), host, port)
        sentinels = {process.sentinel: process for process, _ in workers}
        ended = multiprocessing.connection.wait(list(sentinels))
        process = sentinels[ended[0]]
        process.join()
        status = _exit_code(process.exitcode)
        logger.warning(
            "worker %d ended by itself (status %d); stopping the others", process.pid, status
        )
    except _Stop:
        status = EXIT_OK
    except _Failed as failure:
        status = failure.status
        if failure.message:
            diagnostics.line(f"coapkit: {failure.message}")
    finally:
        for number in previous:  # a second Ctrl-C must not cut the stopping short
            signal.signal(number, signal.SIG_IGN)
        _stop_workers([process for process, _ in workers])
        for _, connection in workers:
            connection.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    logger.info("stopped")
    return status


def _raise_stop(number: int, frame: FrameType | None) -> None:
    raise _Stop


def _exit_code(code: int | None) -> int:
    """A worker's exit status as ours: its own, 128+N when signal N ended it, 1 if unknown."""
    if code is None:
        return EXIT_INTERNAL
    return 128 - code if code < 0 else code


def _stop_workers(processes: list[Any]) -> None:
    """SIGTERM to each worker still running; SIGKILL to any still there after the timeout."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + WORKER_STOP_TIMEOUT
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            logger.warning("worker %d did not stop; killing it", process.pid)
            process.kill()
            process.join()
