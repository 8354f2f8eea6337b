"""``edhoc-oscore`` entries of a credentials map (aiocoap's shape), loaded by
:func:`load_credentials`; ``Client(oscore=credentials)`` sets OSCORE up with EDHOC on the
first request to a matching URI, and a server accepts the peers its entries list."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from coapkit.edhoc.coap import EdhocResource
from coapkit.edhoc.config import normalise, server_setup
from coapkit.edhoc.crypto import public_of
from coapkit.oscore.errors import OscoreConfigError
from coapkit.oscore.server import OscoreIdentity, OscoreServer
from coapkit.runtime.oscore_files import load_credentials
from coapkit.testing import VirtualNetwork
from tests.oscore.helpers import App


def key_and_cred(seed: int, kid: str) -> tuple[dict, dict]:
    """A private COSE_Key and its kccs, written as JSON allows (digit keys, hex objects)."""
    private = bytes([seed]) * 32
    public = public_of("p256", private, full=True)
    key = {"1": 2, "-1": 1, "-4": {"hex": private.hex()}}
    cose = {"1": 2, "2": {"hex": kid}, "-1": 1}
    cose |= {"-2": {"hex": public[:32].hex()}, "-3": {"hex": public[32:].hex()}}
    return key, {"14": {"2": "", "8": {"1": cose}}}


def files(tmp_path: Path) -> tuple[dict, dict]:
    client_key, client_cred = key_and_cred(3, "01")
    server_key, server_cred = key_and_cred(4, "0a")
    key_file = tmp_path / "client.cosekey"
    key_file.write_text(json.dumps(client_key))
    key_file.chmod(0o600)
    client = {
        "coap://server/*": {
            "edhoc-oscore": {
                "suite": 2,
                "method": 3,
                "own_cred_style": "by-key-id",
                "own_cred": client_cred,
                "private_key_file": str(key_file),
                "peer_cred": server_cred,
            }
        }
    }
    server = {
        "coap://server/*": {
            "edhoc-oscore": {
                "suite": 2,
                "method": 3,
                "own_cred_style": "by-value",
                "own_cred": server_cred,
                "private_key": server_key,
            }
        },
        ":client1": {"edhoc-oscore": {"suite": 2, "method": 3, "peer_cred": client_cred}},
    }
    return client, server


def test_normalise_json_shapes() -> None:
    assert normalise({"14": {"-2": {"hex": "01-02"}}, "x": {"ascii": "hi"}}) == {
        14: {-2: b"\x01\x02"},
        "x": b"hi",
    }


def test_bad_entries_say_why(tmp_path: Path) -> None:
    client, _ = files(tmp_path)
    body = client["coap://server/*"]["edhoc-oscore"]
    for change, message in [
        ({"suite": 7}, "suite 7"),
        ({"method": 9}, "method 9"),
        ({"own_cred_style": None}, "own_cred_style"),
        ({"colour": 1}, "no item 'colour'"),
        ({"peer_cred": {"8": 1}}, "kccs"),
    ]:
        broken = {k: v for k, v in (body | change).items() if v is not None}
        with pytest.raises(OscoreConfigError, match=message):
            load_credentials({"coap://server/*": {"edhoc-oscore": broken}})
    (tmp_path / "client.cosekey").chmod(0o644)
    with pytest.raises(OscoreConfigError, match="chmod 600"):
        load_credentials(client)


async def test_client_sets_oscore_up_with_edhoc_from_credentials(tmp_path: Path) -> None:
    client_data, server_data = files(tmp_path)
    client_credentials = load_credentials(client_data)
    server_credentials = load_credentials(server_data)
    setup = server_setup(server_credentials.edhoc)
    assert setup is not None
    identity, peers = setup
    app = App()
    oscore = OscoreServer([], require=["/secret"])
    resource = EdhocResource(
        identity, peers, oscore, clock=lambda: asyncio.get_running_loop().time()
    )
    app.site.add("/.well-known/edhoc", resource)
    net = VirtualNetwork(seed=7)
    async with (
        net.server(app.site, oscore=oscore),
        net.client(oscore=client_credentials) as client,
    ):
        first = await client.get("coap://server/secret/door")
        second = await client.get("coap://server/secret/door")
        assert first.payload == second.payload == b"open"
        assert resource.counts["completed"] == 1  # once per origin
    identity_seen = app.calls[-1][1]
    assert isinstance(identity_seen, OscoreIdentity) and identity_seen.label == ":client1"
