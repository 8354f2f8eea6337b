"""Sequence numbers and replay windows across restarts and crashes (RFC 8613 §7.5, B.1).

* The sans-I/O rules: a number is stored ahead before it is used (B.1.1), the stored
  window turns "unknown" at the first request after loading, a clean close stores the
  exact state.
* 1,000 restarts of a server on the simulator, most of them crashes (the context is
  dropped without being closed): the server's own Partial IVs (its notifications and
  its Echo challenges) and the client's never repeat, and no replayed request is served.
* The file store in aiocoap's layout: ``sequence.json`` written atomically, read back,
  the directory locked against a second user.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from coapkit.codec.message import decode
from coapkit.oscore.context import (
    ContextParameters,
    MemoryStore,
    SecurityContext,
    SequencePolicy,
    SequenceState,
)
from coapkit.oscore.errors import OscoreConfigError
from coapkit.oscore.option import decode_option
from coapkit.runtime.oscore_files import FileStore, load_context, read_parameters, write_context
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import SALT, SECRET, App, client_credentials, oscore_server

PARAMETERS = ContextParameters(SECRET, b"\x02", b"\x01", master_salt=SALT)


# -- the rules -----------------------------------------------------------------------------------


def test_a_number_is_stored_ahead_before_it_is_used() -> None:
    store = MemoryStore(keep_history=True)
    context = SecurityContext(PARAMETERS, store=store, policy=SequencePolicy(10, 40))
    used = [context.take_sequence_number() for _ in range(100)]
    assert used == list(range(100))
    limits = [state.next_to_send for state in store.history]
    assert limits == [10, 30, 70, 110]  # steps of 10, 20, 40, then 40 (the limit)
    # every number was covered by a store that happened before it was handed out
    assert all(number < store.history[-1].next_to_send for number in used)


def test_a_crash_restarts_beyond_every_number_used() -> None:
    store = MemoryStore()
    first = SecurityContext(PARAMETERS, store=store)
    for _ in range(15):
        first.take_sequence_number()
    # no close(): the process died
    second = SecurityContext(PARAMETERS, store=store)
    assert second.take_sequence_number() >= 15
    second.close()
    third = SecurityContext(PARAMETERS, store=store)
    assert third.take_sequence_number() == second.sequence_number  # exact after a clean close


def test_the_window_is_unknown_after_a_crash_and_exact_after_a_clean_close() -> None:
    store = MemoryStore()
    context = SecurityContext(PARAMETERS, store=store, rng=random.Random(1))
    assert context.window_known
    context.accept(4)
    assert store.state == SequenceState(0, None)  # "unknown" while running
    crashed = SecurityContext(PARAMETERS, store=store, rng=random.Random(1))
    assert not crashed.window_known and not crashed.is_fresh(100)
    crashed.start_window(9)
    crashed.accept(10)
    crashed.close()
    assert store.state is not None and store.state.window == (9, 0b11)
    again = SecurityContext(PARAMETERS, store=store)
    assert again.window_known and not again.is_fresh(10) and again.is_fresh(11)


# -- 1,000 restarts on the simulator -----------------------------------------------------------


def partial_ivs(net: VirtualNetwork, src: tuple, since: int) -> list[int]:
    out = []
    for entry in net.trace[since:]:
        if entry.event != "sent" or entry.src != src:
            continue
        raw = decode(entry.data).options.oscore
        if raw:
            piv = decode_option(raw).partial_iv
            if piv is not None:
                out.append(int.from_bytes(piv, "big"))
    return out


async def test_a_thousand_restarts_never_reuse_a_sequence_number() -> None:
    rng = random.Random(20261219)
    server_store = MemoryStore()
    client_store = MemoryStore()
    app = App()
    net = VirtualNetwork(seed=5)
    server_pivs: list[int] = []
    client_pivs: list[int] = []
    served = 0
    crashes = 0
    for restart in range(1000):
        server_context = SecurityContext(
            PARAMETERS, store=server_store, rng=random.Random(restart), label=":client1"
        )
        client_context = SecurityContext(PARAMETERS.reversed(), store=client_store)
        since = len(net.trace)
        async with (
            net.server(app.site, oscore=oscore_server(server_context)) as server,
            net.client(oscore=client_credentials(client_context)) as client,
        ):
            requests = rng.randrange(1, 4)
            for _ in range(requests):
                response = await client.get("coap://server/hello")
                assert response.text == "Hello, OSCORE!"
                served += 1
            if rng.random() < 0.3:  # an observation: notifications use the server's numbers
                async with client.observe("coap://server/temperature") as observation:
                    await anext(observation)
                    for _ in range(rng.randrange(1, 3)):
                        app.thermometer.set(rng.randrange(100))
                        await anext(observation)
            server_pivs += partial_ivs(net, server.address, since)
            client_pivs += partial_ivs(net, client.local_address, since)
        if rng.random() < 0.8:
            crashes += 1  # killed: neither context is closed
        else:
            server_context.close()
            client_context.close()
        net.simulated.trace.clear()
    assert crashes > 700
    assert len(server_pivs) > 700  # Echo challenges after crashes, notifications
    assert len(set(server_pivs)) == len(server_pivs), "the server reused a sequence number"
    assert len(set(client_pivs)) == len(client_pivs), "the client reused a sequence number"
    assert len([kind for kind, _ in app.calls]) == served  # each request served once
    # the stores were written rarely: about once per process and a few more
    assert server_store.saves < 4 * 1000


# -- the file store --------------------------------------------------------------------------------


def test_the_file_store_reads_and_writes_aiocoaps_layout(tmp_path: Path) -> None:
    base = write_context(tmp_path / "ctx", PARAMETERS)
    assert json.loads((base / "settings.json").read_text()) == {
        "sender-id_hex": "02",
        "recipient-id_hex": "01",
        "algorithm": "AES-CCM-16-64-128",
    }
    assert oct((base / "secret.json").stat().st_mode & 0o777) == "0o600"
    parameters, _ = read_parameters(base)
    assert parameters == PARAMETERS
    # aiocoap's state of a context that was used and closed
    (base / "sequence.json").write_text(
        '{"next-to-send": 42, "received": {"index": 7, "bitfield": 5}}'
    )
    context = load_context(base, label=":c")
    assert context.sequence_number == 42
    assert context.window is not None and context.window.state() == (7, 5)
    assert context.take_sequence_number() == 42
    stored = json.loads((base / "sequence.json").read_text())
    assert stored["next-to-send"] > 42
    context.accept(20)
    assert json.loads((base / "sequence.json").read_text())["received"] == "unknown"
    context.close()
    assert json.loads((base / "sequence.json").read_text()) == {
        "next-to-send": 43,
        "received": {"index": 7, "bitfield": 5 | 1 << 13},
    }
    assert not (base / "lock").exists()
    assert not [p for p in base.iterdir() if p.name.startswith(".sequence-")]


def test_a_context_in_use_cannot_be_loaded_twice(tmp_path: Path) -> None:
    base = write_context(tmp_path / "ctx", PARAMETERS)
    first = load_context(base)
    with pytest.raises(OscoreConfigError, match="in use by another process"):
        load_context(base)
    first.close()
    load_context(base).close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no settings.json or secret.json"),
        ({"settings.json": "[1]"}, "holds a JSON object"),
        ({"settings.json": '{"sender-id_hex": "01"}'}, "has no recipient-id"),
        (
            {
                "settings.json": '{"sender-id_hex": "01", "recipient-id_hex": "02",'
                ' "secret_hex": "zz"}'
            },
            "secret_hex is not hex",
        ),
        (
            {
                "settings.json": '{"sender-id_hex": "01", "recipient-id_hex": "02"}',
                "secret.json": '{"secret_hex": "00", "sender-id_hex": "03"}',
            },
            "sender-id is given twice",
        ),
        (
            {
                "settings.json": '{"sender-id_hex": "0102030405060708", "recipient-id_hex": "02",'
                ' "secret_hex": "00"}'
            },
            "longer than AES-CCM-16-64-128 allows",
        ),
        (
            {
                "settings.json": '{"sender-id_hex": "01", "recipient-id_hex": "02", '
                '"secret_hex": "00", "algorithm": "ROT13"}'
            },
            "unknown AEAD algorithm",
        ),
    ],
)
def test_a_bad_context_directory_is_one_line(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    base = tmp_path / "ctx"
    base.mkdir()
    for name, text in files.items():
        (base / name).write_text(text)
    with pytest.raises(OscoreConfigError, match=message) as raised:
        load_context(base)
    assert "\n" not in str(raised.value)


def test_a_bad_state_file_is_refused(tmp_path: Path) -> None:
    base = write_context(tmp_path / "ctx", PARAMETERS)
    (base / "sequence.json").write_text('{"next-to-send": "x"}')
    with pytest.raises(OscoreConfigError, match="not understood"):
        load_context(base)
    assert FileStore(base, lock=False).path.name == "sequence.json"


def test_state_survives_a_real_asyncio_server(tmp_path: Path) -> None:
    """load_credentials + OscoreServer + CredentialsMap.close on the host's loop."""
    from coapkit import Client, Server
    from coapkit.oscore.server import OscoreServer
    from coapkit.runtime.oscore_files import load_credentials
    from tests.interop.peers import free_udp_port

    port = free_udp_port()
    client_dir = write_context(tmp_path / "c", PARAMETERS.reversed())
    server_dir = write_context(tmp_path / "s", PARAMETERS)
    client_file = {f"coap://127.0.0.1:{port}/*": {"oscore": {"basedir": str(client_dir)}}}
    server_file = {":client1": {"oscore": {"basedir": str(server_dir)}}}

    async def run() -> None:
        app = App()
        server_credentials = load_credentials(server_file)
        client_credentials_ = load_credentials(client_file)
        try:
            oscore = OscoreServer(server_credentials.server_contexts())
            async with (
                Server(app.site, bind=("127.0.0.1", port), oscore=oscore),
                Client(oscore=client_credentials_, timeout=5) as client,
            ):
                for _ in range(3):
                    response = await client.get(f"coap://127.0.0.1:{port}/hello")
                    assert response.text == "Hello, OSCORE!"
        finally:
            server_credentials.close()
            client_credentials_.close()
        assert [label for _, label in app.calls] and str(app.calls[0][1]) == ":client1"

    asyncio.run(run())
    assert json.loads((client_dir / "sequence.json").read_text())["next-to-send"] == 3
    server_state = json.loads((server_dir / "sequence.json").read_text())
    assert server_state["received"] == {"index": 0, "bitfield": 0b111}
