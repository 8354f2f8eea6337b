"""The server commands: ``coapkit server`` (demo or plugtest resources) and ``coapkit fileserver``.

Both log one line per request to stderr (``Server(log_requests=True)``; with
``-v`` everything at DEBUG, including every datagram on ``coapkit.trace``, in
the format of the client commands' ``-v``) and stop
cleanly, with exit status 0, on Ctrl-C (SIGINT) or SIGTERM.

* Listeners (:func:`listen_uris`): each ``--listen URI`` (``coap://``,
  ``coaps://``, ``coap+tcp://``, ``coaps+tcp://``, ``coap+ws://``,
  ``coaps+ws://``), all serving the same site; without any,
  ``--bind``/``--port`` mean ``--listen coap://BIND:PORT``.  They are
  checked before anything is bound (a URI that cannot be served, or whose
  extra is missing: status 6; TLS listeners without a certificate, DTLS
  listeners without a pre-shared key or certificate,
  :mod:`coapkit.cli.security`: status 2), and a port that cannot be bound is
  named by its URI (status 7).  A DTLS client that fails its handshake is
  logged once per client host and cause, as one line (the library's
  :class:`~coapkit.runtime.dtls.DtlsLog`), never as a stack trace.
* The amplification defence (RFC 7252 §11.3, RFC 9175 §2.4) is on: a
  response more than three times the size of its request (and over 136
  bytes) goes to a source that has not proved its address only after an
  Echo round trip (4.01 with Echo; coapkit's and libcoap's clients answer
  it by themselves).  ``--no-amplification-limit`` turns it off, for
  clients that cannot answer Echo.
* Resources that change by themselves (the demo's ``/time``, the plugtest
  ``/obs*``) get their clocks started once the server listens and stopped
  before it closes (:mod:`coapkit.cli.ticking`).
* ``coapkit server --workers N`` runs N worker processes that share the port
  of every listener (SO_REUSEPORT, for TCP and WebSocket listeners too: the
  kernel spreads clients over them, one client, or one connection, always
  reaching the same worker, so block-wise transfers and observations stay with
  one process; a ``coaps://`` listener is UDP, spread by the 4-tuple of source
  and destination address and port, so a DTLS session, its cookie exchange
  included, stays with the worker that holds its keys).  SO_REUSEPORT lets any
  process of the same user join a group, so before starting the workers the
  parent claims the port of each listener (:func:`claim_port`): a bind without
  SO_REUSEPORT fails if anything holds the port, a second group included,
  exactly as a plain server fails there ("address already in use", status 7);
  it also picks the port for port 0 (a SO_REUSEPORT bind to port 0 may be
  given a port another group holds).  Between that bind and the workers' own,
  and for as long as the group runs, the parent holds a lock named after the
  transport and port (Linux: an abstract Unix socket, gone with the process),
  which a second coapkit group finds taken.  Every worker binds the claimed
  URIs.  The parent only supervises: it starts them, stops them all with
  SIGTERM on SIGINT or SIGTERM (exit 0), and stops the others if one ends by
  itself (exiting with that one's status).  The state of the resources (a
  counter, a stored value) is per worker.
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
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.cli import loops
from coapkit.cli.console import DiagnosticHandler, diagnostics, settle
from coapkit.cli.exits import EXIT_INTERNAL, EXIT_OK, LocalFileError, UsageError, exit_status
from coapkit.cli.oscore import server_oscore, uses_oscore
from coapkit.cli.rd import start_registering, stop_registering
from coapkit.cli.requestlog import RequestLog
from coapkit.cli.security import server_security
from coapkit.cli.ticking import start_ticking, stop_ticking
from coapkit.codec.uri import CoapUri, parse_uri
from coapkit.errors import NetworkError, UriError
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.messaging.congestion import CONGESTION_CONTROLS
from coapkit.messaging.layer import MessagingConfig
from coapkit.observe.registry import ObserveConfig
from coapkit.resources.site import Site
from coapkit.security.dtls import DtlsServerCredentials
from coapkit.server import DEFAULT_PORT, Server
from coapkit.transports import MissingExtra, require_dtls, require_websockets

if TYPE_CHECKING:
    from coapkit.oscore.server import OscoreServer

logger = logging.getLogger("coapkit.server")

#: The largest file ``fileserver --write`` takes in one PUT (in Block1 blocks).
FILESERVER_MAX_BODY = 16 * 1024 * 1024

#: How long the supervisor waits for its workers to start, and to stop after SIGTERM.
WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 10.0


def configure_logging(verbose: bool, prefix: str = "") -> DiagnosticHandler:
    """Log lines to stderr: INFO and above, everything with ``-v``; each line starts with
    the time and ``prefix`` (a worker's ``[worker PID]``).  A closed stderr switches the
    log off (:class:`~coapkit.cli.console.DiagnosticHandler`, returned).  The request
    lines are not log records: :class:`~coapkit.cli.requestlog.RequestLog` writes them."""
    handler = DiagnosticHandler()
    layout = "%(asctime)s " + prefix.replace("%", "%%") + "%(message)s"
    handler.setFormatter(logging.Formatter(layout, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("coapkit")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    return handler


def listen_uris(args: argparse.Namespace) -> list[CoapUri]:
    """The URIs to serve on: each ``--listen``, or ``coap://BIND:PORT`` (``--bind`` and
    ``--port``, by default ``[::]:5683``).  UriError (status 6) for one that cannot be
    served: a path or query, ``coaps://`` without the ``dtls`` extra, a WebSocket scheme
    without the ``ws`` extra."""
    if not args.listen:
        host = "::" if args.bind is None else args.bind
        port = DEFAULT_PORT if args.port is None else args.port
        return [CoapUri("coap", host, port)]
    if args.bind is not None or args.port is not None:
        raise UsageError(
            "--listen replaces --bind and --port: give the address and port in the URI "
            "(--listen coap://ADDR:PORT)"
        )
    return [listener_uri(text) for text in args.listen]


def listener_uri(text: str) -> CoapUri:
    """One ``--listen URI``, checked: UriError (status 6) for a path or query, or for a
    scheme whose extra is missing (``coaps://``: ``dtls``; WebSockets: ``ws``), the line
    naming the extra."""
    uri = parse_uri(text)
    if uri.path or uri.query:
        raise UriError(f"--listen {text}: a listener takes no path nor query")
    try:
        if uri.scheme == "coaps":
            require_dtls()
        if uri.transport == "ws":
            require_websockets()
    except MissingExtra as exc:
        raise UriError(f"--listen {text}: {exc}") from None
    return uri


def _where(args: argparse.Namespace, uris: Sequence[CoapUri]) -> list[str]:
    """How the listeners are named in messages: host:port for --bind/--port (as before
    --listen), the URI for each --listen."""
    scheme = "{}://" if args.listen else ""
    return [f"{scheme.format(uri.scheme)}{uri.host_string}:{uri.port}" for uri in uris]


def _cannot_listen(args: argparse.Namespace, uris: Sequence[CoapUri], exc: OSError) -> NetworkError:
    """The error for a server that could not bind: the listener that failed (found by
    binding each address again, as its transport would) and the reason."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    names = _where(args, uris)
    culprit = ", ".join(names)
    for uri, name in zip(uris, names, strict=True):
        kind = socket.SOCK_DGRAM if uri.transport == "udp" else socket.SOCK_STREAM
        try:
            infos = socket.getaddrinfo(uri.host, uri.port, type=kind, flags=socket.AI_PASSIVE)
            with socket.socket(infos[0][0], kind) as probe:
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(infos[0][4])
        except OSError:
            culprit = name
            break
    return NetworkError(f"cannot listen on {culprit}: {reason}")


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
    """Serve ``site`` on its listeners (:func:`listen_uris`) until one of ``stop_signals``;
    0 when stopped so.

    ``ready`` (a worker's connection to its supervisor) is sent the bound
    URIs once the server listens; while serving, the connection closing (the
    supervisor is gone) stops the server too.  ``echo_key``: the Echo key (else
    ``--echo-key-file``'s).
    """
    loop_name = loops.choose_loop(getattr(args, "loop", None))
    uris = listen_uris(args)
    ssl_context, dtls = server_security(args, uris)
    handler = configure_logging(args.verbose, log_prefix)  # -v: the trace is on coapkit.trace
    if echo_key is None:
        echo_key = read_echo_key(args)
    amplification = None if args.no_amplification_limit else AmplificationConfig(secret=echo_key)

    with server_oscore(args, site) as oscore:
        return _serve(
            site,
            args,
            description,
            loop_name,
            amplification,
            blockwise,
            ready,
            stop_signals,
            reuse_port,
            oscore,
            uris=uris,
            ssl_context=ssl_context,
            dtls=dtls,
            handler=handler,
            log_prefix=log_prefix,
        )


def _serve(
    site: Site,
    args: argparse.Namespace,
    description: str,
    loop_name: str,
    amplification: AmplificationConfig | None,
    blockwise: BlockwiseConfig | None,
    ready: Any,
    stop_signals: Sequence[int],
    reuse_port: bool,
    oscore: OscoreServer | None,
    *,
    uris: list[CoapUri],
    ssl_context: ssl.SSLContext | None,
    dtls: DtlsServerCredentials | None,
    handler: DiagnosticHandler,
    log_prefix: str,
) -> int:
    congestion = CONGESTION_CONTROLS[getattr(args, "congestion", "fixed")]

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def log_off() -> None:  # stderr is gone: no more lines made for no one
            server.log_requests = False

        request_log = RequestLog(loop, prefix=log_prefix, off=log_off)
        server = Server(
            site,
            listen=[str(uri) for uri in uris],
            log_requests=not getattr(args, "quiet", False),
            request_log=request_log.add,
            amplification=amplification,
            blockwise=blockwise,
            reuse_port=reuse_port,
            ssl_context=ssl_context,
            dtls=dtls,
            oscore=oscore,
            messaging=MessagingConfig(congestion=congestion),
            observe=ObserveConfig(clock_sequence=True),
        )
        handler.before = request_log.flush
        stop = asyncio.Event()
        for number in stop_signals:  # before "serving CoAP on ...": a signal always stops cleanly
            loop.add_signal_handler(number, stop.set)
        ticking = []
        registrant = None
        watching = False
        try:
            try:
                await server.start()
            except OSError as exc:
                raise _cannot_listen(args, uris, exc) from None
            ticking = start_ticking(site, loop)
            registrant = await start_registering(server, args)  # --register (cli/rd.py)
            if ready is not None:
                ready.send([listener.uri for listener in server.listeners])
                loop.add_reader(ready.fileno(), stop.set)  # EOF: the supervisor is gone
                watching = True
            limit = "" if amplification else "; no amplification limit"
            if dtls is not None:
                limit += "; DTLS with " + _dtls_modes(dtls)
            if oscore is not None:
                limit += f"; OSCORE with {len(oscore.contexts)} client context(s)"
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
            await stop_registering(registrant)
            await server.close()
            request_log.flush()
            handler.before = None
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


def _dtls_modes(dtls: DtlsServerCredentials) -> str:
    """What a coaps:// listener accepts, for the start-up line (never the keys)."""
    modes = []
    if dtls.psk:
        count = len(dtls.psk)
        modes.append(f"{count} PSK identit{'y' if count == 1 else 'ies'}")
    if dtls.cert is not None:
        modes.append(
            "a certificate (client certificates required)"
            if dtls.require_client_cert
            else "a certificate"
        )
    return " and ".join(modes)


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
        server_security(args, listen_uris(args))  # the same: mistakes, warnings, said once
        if uses_oscore(args):
            raise UsageError(
                "--credentials with OSCORE contexts and --workers: a security context may be "
                "used by one process only (its sequence numbers must never repeat); run one worker"
            )
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
    site = fileserver_site(root, writable=args.write, dotfiles=args.dotfiles)
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
    bound: list[str],
    connection: multiprocessing.connection.Connection,
    echo_key: bytes | None = None,
) -> None:
    """One worker process: ``coapkit server`` on the shared ports (``bound``: the
    listeners the supervisor claimed, their ports resolved), reporting to
    ``connection``; ``echo_key``: the one every worker uses."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    from coapkit.cli.main import build_parser

    args = build_parser().parse_args(argv)
    args.warned = True  # by the supervisor, about security options without effect
    args.listen, args.bind, args.port = bound, None, None
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


def claim_port(
    host: str, port: int, transport: str = "udp", *, name: str | None = None
) -> tuple[int, socket.socket | None]:
    """The port ``--workers`` may share on ``host`` for ``transport`` (``udp``, or ``tcp``
    for the TCP, TLS and WebSocket listeners), and the lock that keeps it theirs.

    Binds ``host``:``port`` without SO_REUSEPORT, as the transport would
    bind it otherwise (dual-stack for ``::``; SO_REUSEADDR for TCP, as the
    listener sets it): that fails (NetworkError, status 7, naming ``name``
    or ``host:port``) when any socket holds the port, whether or not with
    SO_REUSEPORT, and for port 0 gives a port nobody holds.  Then, while that
    socket still holds it, takes the lock of the port, an abstract Unix
    socket ``coapkit-TRANSPORT-PORT`` (Linux; None elsewhere), which another
    group starting meanwhile finds taken.  The probe is closed on return, so
    that the workers can bind; the caller keeps the lock open while they serve.
    """
    literal = f"[{host}]" if ":" in host else host
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        family, address = _bind_address(host, port)
        with socket.socket(family, kind) as probe:
            if family == socket.AF_INET6 and address[0] == "::":
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            port = probe.getsockname()[1]
            lock = _port_lock(transport, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = name if name is not None else f"{literal}:{port}"
        raise NetworkError(f"cannot listen on {where}: {reason}") from None
    return port, lock


def _bind_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The family and socket address to bind ``host`` to, as the UDP transport binds it
    (``::`` dual-stack; a host name's first address, IPv4 first)."""
    if host in ("", "::") and socket.has_ipv6:
        return socket.AF_INET6, ("::", port, 0, 0)
    if host in ("", "::"):
        return socket.AF_INET, ("0.0.0.0", port)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, address = infos[0]
    return family, address


def _port_lock(transport: str, port: int) -> socket.socket | None:
    """The lock of ``transport`` ``port``: a bound abstract Unix socket (None where there are none:
    not Linux); OSError EADDRINUSE, saying why, if another process holds it."""
    if not sys.platform.startswith("linux"):
        return None
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        lock.bind(f"\0coapkit-{transport}-{port}")
    except OSError as exc:
        lock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise OSError(
            errno.EADDRINUSE,
            "Address already in use (another coapkit server --workers group is starting there)",
        ) from None
    return lock


def supervise(args: argparse.Namespace) -> int:
    """``--workers N``: start N workers on one port, wait, stop them all (see the module doc)."""
    configure_logging(args.verbose)
    locks: list[socket.socket] = []
    bound: list[str] = []
    try:
        for uri in listen_uris(args):  # before any worker: a refusal is status 7
            kind = "udp" if uri.transport == "udp" else "tcp"
            name = _where(args, [uri])[0]
            port, lock = claim_port(uri.host, uri.port, kind, name=name)
            if lock is not None:
                locks.append(lock)
            bound.append(str(CoapUri(uri.scheme, uri.host, port)))
        return _supervise(args, bound)
    finally:
        for lock in locks:
            lock.close()


def _supervise(args: argparse.Namespace, bound: list[str]) -> int:
    context = multiprocessing.get_context("spawn")
    argv = list(args.argv)
    # One Echo key for every worker: a client may answer a challenge to another one.
    echo_key = read_echo_key(args) or secrets.token_bytes(32)
    workers: list[tuple[Any, multiprocessing.connection.Connection]] = []

    def start(bound: list[str]) -> None:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(argv, bound, theirs, echo_key), daemon=True)
        process.start()
        theirs.close()
        workers.append((process, mine))

    def await_ready(
        pending: list[tuple[Any, multiprocessing.connection.Connection]],
    ) -> list[str]:
        """The URIs the workers report; raises _Failed when one of them ends instead."""
        bound: list[str] = []
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
                    bound = [str(uri) for uri in item.recv()]
                except EOFError:
                    process.join()
                    raise _Failed(_exit_code(process.exitcode) or EXIT_INTERNAL, None) from None
        return bound

    previous = {
        number: signal.signal(number, _raise_stop) for number in (signal.SIGINT, signal.SIGTERM)
    }
    status = EXIT_OK
    try:
        start(bound)
        await_ready(workers)
        for _ in range(args.workers - 1):
            start(bound)
        await_ready(workers[1:])
        where = _where(args, [parse_uri(uri) for uri in bound])
        logger.info("%d workers serving on %s; Ctrl-C stops", len(workers), ", ".join(where))
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
