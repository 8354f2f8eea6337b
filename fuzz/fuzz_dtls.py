#!/usr/bin/env python3
"""The endpoint harness (fuzz_endpoint.py) over DTLS: a ``coaps://`` server endpoint, sans I/O.

The server is fuzz_endpoint's (the same site, caps and application) with a DTLS
layer (coapkit.dtls, the pyOpenSSL engine, pre-shared keys).  Each of the four
remotes has a real DTLS client (a client-side :class:`~coapkit.dtls.DtlsLayer`),
whose datagrams wait in a queue until the script delivers them, cut short or
patched if it says so, and which reads what the server sends it.  One input is
a script of records, each opening with ``kind | remote << 3 | flags << 5``:

====  ==================================================================================
kind  record
====  ==================================================================================
0     a raw datagram from the remote: length byte, bytes
1     one DTLS record from the remote: content type, epoch, sequence byte, then a
      length byte and that many bytes of fragment (garbage records; records for no
      session; a ClientHello's header over any body)
2     time passes: one byte picks 0 s .. 300 s (the clients' timers run too)
3     the remote's client sends fuzz_endpoint's template (template, MID, p, q bytes), in
      its session, starting a handshake if it has none (queued, not delivered)
4     deliver the remote's client's next queued datagram to the server (flag 1: cut to
      the length in the next byte: truncated handshakes; flag 2: patch the byte at
      the position in the next byte with the byte after)
5     deliver what the server sent the remote to its client (which may answer: queued)
6     a datagram the server received earlier, again, from this remote (byte: how far
      back): replays, and records of another session
7     the application: flag 0 answers the deferred requests, 1 notifies the observers,
      2 the remote's client closes (close_notify), 3 it restarts (RFC 6347 §4.2.8: a new
      ClientHello from a known address)
====  ==================================================================================

After every step, as fuzz_endpoint states them, adapted to DTLS:

1. nothing escapes the endpoint;
2. every datagram it emits is whole DTLS records, to a remote that sent it
   something; what a client decrypts from them decodes with coapkit's decoder;
3. every table is within its cap (fuzz_endpoint's, and the DTLS sessions and
   handshakes in progress), and the server holds a session only for a remote that
   returned, in a ClientHello, a cookie the server had sent it (no state for a
   source that has not done the cookie round trip);
4. after ``handle_timeout(t)`` the next deadline is later than ``t``.

At the end, once every lifetime has passed (the CoAP ones and the DTLS idle and
handshake timeouts), every table is empty, no session is left, and there is no
deadline.

    python fuzz/fuzz_dtls.py --no-atheris -runs=2000 fuzz/seeds/dtls
    python fuzz/fuzz_dtls.py -atheris_runs=100000 fuzz/corpus-dtls fuzz/seeds/dtls
    python fuzz/fuzz_dtls.py --write-seeds fuzz/seeds/dtls
"""

from __future__ import annotations

import random
import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.dtls
        import coapkit.endpoint  # noqa: F401

import fuzz_endpoint  # noqa: E402
from fuzz_endpoint import (  # noqa: E402
    BLOCKWISE,
    MESSAGING,
    OBSERVE,
    PARAMS,
    REMOTES,
    TEMPLATES,
    TIME_STEPS,
    InvariantError,
)

from coapkit.codec.message import decode  # noqa: E402
from coapkit.dtls import DtlsConfig, DtlsLayer  # noqa: E402
from coapkit.dtls.records import (  # noqa: E402
    HELLO_VERIFY_REQUEST,
    parse_client_hello,
    split_records,
)
from coapkit.endpoint import Endpoint, Output  # noqa: E402
from coapkit.errors import DecodeError  # noqa: E402
from coapkit.messaging.records import Remote  # noqa: E402
from coapkit.observe.registry import ObserveRegistry  # noqa: E402
from coapkit.security.dtls import DtlsCredentials, DtlsServerCredentials  # noqa: E402
from coapkit.security.openssl_dtls import OpenSslClientEngine, OpenSslServerEngine  # noqa: E402

SERVER: Remote = ("192.0.2.100", 5684)
KEYS = {b"fuzz": b"fuzzing key"}
DTLS = DtlsConfig(
    max_sessions=3,
    max_handshakes=2,
    handshake_timeout=20.0,
    idle_timeout=60.0,
    cookie_lifetime=30.0,
)
QUIET_AFTER = fuzz_endpoint.QUIET_AFTER + DTLS.idle_timeout + DTLS.handshake_timeout
CONTENT_TYPES = (20, 21, 22, 23, 25)

_SERVER_ENGINE: OpenSslServerEngine | None = None


def server_engine() -> OpenSslServerEngine:
    """One engine for every run (its context is the costly part; it keeps nothing per run
    but the PSK identities of resumed sessions)."""
    global _SERVER_ENGINE
    if _SERVER_ENGINE is None:
        _SERVER_ENGINE = OpenSslServerEngine(DtlsServerCredentials(psk=KEYS))
    return _SERVER_ENGINE


class Client:
    """One remote's DTLS client: its datagrams wait for the script to deliver them."""

    def __init__(self, seed: int) -> None:
        credentials = DtlsCredentials(psk_identity=b"fuzz", psk=KEYS[b"fuzz"])
        self.layer = DtlsLayer(
            rng=random.Random(seed), config=DTLS, client=OpenSslClientEngine(credentials)
        )
        self.outbox: deque[bytes] = deque()  #: to the server, not delivered yet
        self.inbox: deque[bytes] = deque()  #: from the server, not read yet
        self.plaintexts = 0

    def take(self, datagrams: list[tuple[bytes, Remote]]) -> None:
        for data, remote in datagrams:
            if remote != SERVER:
                raise InvariantError(f"a client sent to {remote!r}")
            self.outbox.append(data)
        while len(self.outbox) > 32:
            self.outbox.popleft()

    def read(self, now: float) -> None:
        while self.inbox:
            opened = self.layer.receive(self.inbox.popleft(), SERVER, now)
            for plaintext in opened.plaintexts:
                self.plaintexts += 1
                try:
                    decode(plaintext)
                except DecodeError as exc:
                    raise InvariantError(
                        f"the server sent a message that does not decode: {plaintext.hex()}"
                    ) from exc
            self.take(opened.datagrams)


class DtlsHarness(fuzz_endpoint.Harness):
    """fuzz_endpoint's harness with a DTLS layer under the endpoint, and real clients."""

    def __init__(self) -> None:
        super().__init__(fast=False)
        self.observers = ObserveRegistry(OBSERVE)
        self.endpoint = Endpoint(
            rng=random.Random(7252),
            transmission=PARAMS,
            messaging=MESSAGING,
            blockwise=BLOCKWISE,
            observers=self.observers,
            security=DtlsLayer(rng=random.Random(6347), config=DTLS, server=server_engine()),
        )
        self.clients = {remote: Client(index) for index, remote in enumerate(REMOTES)}
        self.restarts = 0
        #: the cookies the server sent each remote (in HelloVerifyRequests)
        self.cookies_to: dict[Remote, set[bytes]] = {}
        #: remotes that returned one of them in a ClientHello: the cookie round trip done
        self.proven: set[Remote] = set()
        self.records_out = 0

    @property
    def security(self) -> DtlsLayer:
        layer = self.endpoint.security
        assert layer is not None
        return layer

    # -- inputs --

    def deliver(self, data: bytes, remote: Remote, multicast: bool = False) -> None:
        self.run_timers(self.now)
        hello = parse_client_hello(data)
        if hello is not None and hello.cookie in self.cookies_to.get(remote, ()):
            self.proven.add(remote)
        self.received.append(data)
        if len(self.received) > 64:
            del self.received[:32]
        output = self.endpoint.datagram_received(data, remote, self.now, multicast=multicast)
        self.process(output, self.now)
        self.check_caps()
        self.snapshot()

    def run_timers(self, until: float) -> None:
        super().run_timers(until)
        for client in self.clients.values():
            layer = client.layer
            for _ in range(1000):
                deadline = layer.next_deadline()
                if deadline is None or deadline > until:
                    break
                client.take(layer.handle_timeout(deadline).datagrams)

    def client_sends(self, remote: Remote, message: bytes) -> None:
        self.run_timers(self.now)
        client = self.clients[remote]
        client.take(client.layer.seal([(message, SERVER)], self.now))

    def to_server(self, remote: Remote, cut: int | None, patch: tuple[int, int] | None) -> None:
        outbox = self.clients[remote].outbox
        if not outbox:
            return
        data = outbox.popleft()
        if cut is not None:
            data = data[:cut]
        if patch is not None and data:
            changed = bytearray(data)
            changed[patch[0] % len(changed)] = patch[1]
            data = bytes(changed)
        self.deliver(data, remote)

    def to_client(self, remote: Remote) -> None:
        self.run_timers(self.now)
        self.clients[remote].read(self.now)

    def client_closes(self, remote: Remote) -> None:
        client = self.clients[remote]
        client.take(client.layer.close(SERVER, self.now).datagrams)

    def client_restarts(self, remote: Remote) -> None:
        self.restarts += 1
        self.clients[remote] = Client(100 + self.restarts)

    # -- outputs --

    def process(self, output: Output, now: float) -> None:
        for data, remote in output.datagrams:
            self.emitted += 1
            self.transcript.append(("sent", now, data, remote))
            if remote not in self.clients:
                raise InvariantError(f"datagram sent to {remote!r}, which sent nothing")
            records = split_records(data)
            if records is None:
                raise InvariantError(f"emitted datagram is not DTLS records: {data.hex()}")
            self.records_out += len(records)
            if records[0].content_type == 22 and records[0].epoch == 0:
                if len(data) > 28 and data[13] == HELLO_VERIFY_REQUEST:
                    self.cookies_to.setdefault(remote, set()).add(data[28 : 28 + data[27]])
            inbox = self.clients[remote].inbox
            inbox.append(data)
            while len(inbox) > 32:
                inbox.popleft()
        for event in output.events:
            if event.__class__ is fuzz_endpoint.IncomingRequest:
                self.on_request(event, now)

    # -- the checks --

    def check_caps(self) -> None:
        super().check_caps()
        layer = self.security
        if len(layer) > DTLS.max_sessions:
            raise InvariantError(f"{len(layer)} DTLS sessions, max_sessions {DTLS.max_sessions}")
        if not 0 <= layer.handshakes <= DTLS.max_handshakes:
            raise InvariantError(f"{layer.handshakes} handshakes in progress")
        for remote in REMOTES:
            session = layer.session(remote)
            if session is not None and remote not in self.proven:
                raise InvariantError(
                    f"a session for {remote!r}, which never returned a cookie we sent it"
                )
        if sum(1 for r in REMOTES if (s := layer.session(r)) and not s.established) != (
            layer.handshakes
        ):
            raise InvariantError("the handshakes counted disagree with the sessions")

    def finish(self) -> None:
        self.answer_deferred(large=False)
        self.now += QUIET_AFTER
        self.run_timers(self.now)
        if len(self.security):
            raise InvariantError(
                f"{QUIET_AFTER} s after the last input, {len(self.security)} DTLS sessions are left"
            )
        super().finish()  # and the tables of fuzz_endpoint, and no deadline


def run_script(data: bytes) -> DtlsHarness:
    """Play one input against a fresh server endpoint, checking as it goes."""
    harness = DtlsHarness()
    pos, length = 0, len(data)
    while pos < length:
        op = data[pos]
        pos += 1
        kind, remote, flags = op & 7, REMOTES[(op >> 3) & 3], op >> 5
        if kind == 0:
            size = data[pos] if pos < length else 0
            pos += 1
            harness.deliver(data[pos : pos + size], remote)
            pos += size
        elif kind == 1:
            head = data[pos : pos + 4].ljust(4, b"\0")
            pos += 4
            content_type = CONTENT_TYPES[head[0] % len(CONTENT_TYPES)]
            fragment = data[pos : pos + head[3]]
            pos += head[3]
            record = (
                bytes((content_type, 0xFE, 0xFD, 0, head[1] & 3))
                + bytes(5)
                + bytes((head[2],))
                + len(fragment).to_bytes(2, "big")
                + fragment
            )
            harness.deliver(record, remote)
        elif kind == 2:
            step = data[pos] if pos < length else 0
            pos += 1
            harness.now += TIME_STEPS[step % len(TIME_STEPS)]
            harness.run_timers(harness.now)
            harness.check_caps()
            harness.snapshot()
        elif kind == 3:
            index, mid, p, q = data[pos : pos + 4].ljust(4, b"\0")
            pos += 4
            token = fuzz_endpoint._token(q)
            harness.client_sends(remote, TEMPLATES[index % len(TEMPLATES)](mid, token, p, q))
        elif kind == 4:
            cut = patch = None
            if flags & 1:
                cut = data[pos] if pos < length else 0
                pos += 1
            if flags & 2:
                at = data[pos : pos + 2].ljust(2, b"\0")
                pos += 2
                patch = (at[0], at[1])
            harness.to_server(remote, cut, patch)
        elif kind == 5:
            harness.to_client(remote)
        elif kind == 6:
            back = data[pos] if pos < length else 0
            pos += 1
            if harness.received:
                harness.deliver(harness.received[-1 - (back % len(harness.received))], remote)
        else:  # 7
            action = flags & 3
            if action == 0:
                harness.answer_deferred(large=bool(flags & 4))
            elif action == 1:
                harness.notify(confirmable=bool(flags & 4), large=False)
            elif action == 2:
                harness.client_closes(remote)
            else:
                harness.client_restarts(remote)
    harness.finish()
    return harness


def check(data: bytes) -> bool:
    """Check the invariants for one script; True if the endpoint sent anything."""
    return run_script(data).emitted > 0


def TestOneInput(data: bytes) -> None:
    run_script(data)


# -- scripts for the seeds and the pure-Python mode ------------------------------------------


def op(kind: int, remote: int = 0, flags: int = 0) -> int:
    return kind | (remote << 3) | (flags << 5)


def send(template: int, mid: int, remote: int = 0, p: int = 0, q: int = 0) -> bytes:
    return bytes((op(3, remote), template, mid, p, q))


def handshake(remote: int = 0, rounds: int = 4) -> bytes:
    """Deliver the client's datagrams and the server's answers, in turn, ``rounds`` times."""
    return bytes((op(4, remote), op(5, remote))) * rounds


def seed_scripts() -> dict[str, bytes]:
    wait = lambda step: bytes((op(2), step))  # noqa: E731
    return {
        "get-small.bin": send(0, 1) + handshake() + handshake(rounds=1),
        "get-large-block2.bin": send(2, 2) + handshake(rounds=6),
        "observe-notify.bin": send(6, 3)
        + handshake(rounds=5)
        + bytes((op(7, 0, 1),))
        + bytes((op(5),))
        + wait(13),
        "truncated-hellos.bin": send(0, 4, remote=1)
        + bytes((op(4, 1, 1), 20))
        + bytes((op(4, 1, 2), 30, 0xFF))
        + wait(7)
        + handshake(1, 5),
        "garbage-records.bin": bytes((op(1, 2), 2, 0, 1, 3))
        + b"abc"
        + bytes((op(1, 2), 3, 1, 9, 8))
        + bytes(8)
        + bytes((op(1, 3), 4, 0, 0, 0))
        + bytes((op(0, 3), 5))
        + b"\x16\xfe\xfd\x00\x00",
        "replayed-sessions.bin": send(0, 5)
        + handshake(0, 5)
        + send(1, 6, remote=1)
        + handshake(1, 5)
        + bytes((op(6, 1), 3, op(6, 2), 1, op(6, 3), 0)),
        "restart-and-close.bin": send(0, 7)
        + handshake(0, 5)
        + bytes((op(7, 0, 3),))
        + send(0, 8)
        + handshake(0, 5)
        + bytes((op(7, 0, 2), op(4)))
        + wait(16),
        "many-clients.bin": b"".join(send(1, 10 + n, remote=n) for n in range(4))
        + b"".join(handshake(n, 3) for n in range(4)),
    }


def generate(rng: random.Random) -> bytes:
    """A random script: mostly client requests and deliveries, with garbage and time."""
    out = bytearray()
    for _ in range(rng.randrange(1, 40)):
        kind = rng.choice((0, 1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 7))
        remote = rng.randrange(4) if rng.random() < 0.5 else 0
        if kind == 0:
            size = rng.randrange(40)
            out += bytes((op(0, remote), size)) + rng.randbytes(size)
        elif kind == 1:
            size = rng.randrange(60)
            head = bytes((rng.randrange(5), rng.randrange(4), rng.randrange(256), size))
            out += bytes((op(1, remote),)) + head + rng.randbytes(size)
        elif kind == 2:
            out += bytes((op(2), rng.randrange(len(TIME_STEPS))))
        elif kind == 3:
            out += send(
                rng.randrange(len(TEMPLATES)),
                rng.randrange(256),
                remote,
                rng.randrange(24),
                rng.randrange(256),
            )
        elif kind == 4 and rng.random() < 0.5:
            out += handshake(remote, rng.randrange(1, 6))  # a stretch of plain traffic
        elif kind == 4:
            flags = rng.choice((0, 0, 0, 0, 1, 2, 3))
            out += bytes((op(4, remote, flags),)) + rng.randbytes(
                (1 if flags & 1 else 0) + (2 if flags & 2 else 0)
            )
        elif kind == 6:
            out += bytes((op(6, remote), rng.randrange(8)))
        else:
            out += bytes((op(kind, remote, rng.randrange(8)),))
    return bytes(out)


def write_seeds(directory: str) -> None:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name, script in seed_scripts().items():
        (path / name).write_bytes(script)
        print(f"{path / name}: {len(script)} bytes")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-seeds"]:
        write_seeds(argv[1] if len(argv) > 1 else str(Path(__file__).parent / "seeds/dtls"))
        return 0
    return fuzzlib.main(
        argv,
        name="fuzz_dtls",
        test_one_input=TestOneInput,
        check=check,
        generate=generate,
        coverage_guided=COVERAGE_GUIDED,
        max_len=2048,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
