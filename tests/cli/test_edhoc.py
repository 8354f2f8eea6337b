"""``coapkit server`` and ``coapkit get`` with ``edhoc-oscore`` credentials (JSON): the
client runs EDHOC (RFC 9528) with the server, then speaks OSCORE; the server serves
``/.well-known/edhoc`` even under ``--require-oscore /``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from coapkit.edhoc.crypto import public_of
from tests.cli.helpers import ServerProcess, run


def key_pair(seed: int, kid: str) -> tuple[dict, dict]:
    private = bytes([seed]) * 32
    public = public_of("p256", private, full=True)
    key = {"1": 2, "-1": 1, "-4": {"hex": private.hex()}}
    cose = {"1": 2, "2": {"hex": kid}, "-1": 1, "-2": {"hex": public[:32].hex()}}
    cose["-3"] = {"hex": public[32:].hex()}
    return key, {"14": {"2": "", "8": {"1": cose}}}


def test_edhoc_then_oscore_from_the_command_line(tmp_path: Path) -> None:
    client_key, client_cred = key_pair(41, "01")
    server_key, server_cred = key_pair(42, "0a")
    base = {"suite": 2, "method": 3}
    key_file = tmp_path / "client.cosekey"
    key_file.write_text(json.dumps(client_key))
    key_file.chmod(0o600)
    own = {"own_cred_style": "by-key-id", "own_cred": client_cred}
    client = {
        "coap://127.0.0.1:*": {
            "edhoc-oscore": base
            | own
            | {"private_key_file": str(key_file), "peer_cred": server_cred}
        }
    }
    server = {
        "coap://127.0.0.1:*": {
            "edhoc-oscore": base
            | {"own_cred_style": "by-value", "own_cred": server_cred, "private_key": server_key}
        },
        ":alice": {"edhoc-oscore": base | {"peer_cred": client_cred}},
    }
    client_file = tmp_path / "client.json"
    server_file = tmp_path / "server.json"
    client_file.write_text(json.dumps(client))
    server_file.write_text(json.dumps(server))
    process = ServerProcess("server", "--credentials", str(server_file), "--require-oscore", "/")
    try:
        hello = run("get", f"{process.url}/hello", "--credentials", str(client_file))
        assert (hello.returncode, hello.stdout) == (0, "Hello, CoAP!\n"), hello.stderr
        refused = run("get", f"{process.url}/hello")
        assert refused.returncode == 4 and "OSCORE required" in refused.stderr
    finally:
        assert process.stop() == 0
    log = process.log()
    assert "POST /.well-known/edhoc -> 2.04 Changed" in log
    assert "GET /hello (OSCORE :alice) -> 2.05 Content" in log
