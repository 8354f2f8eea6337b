"""aiocoap 0.4.17 with EDHOC (through lakers-python), for tests/interop/test_aiocoap_edhoc.py.

Run with the Python of the virtual environment that has ``aiocoap[oscore]`` (which
brings ``lakers-python``):

    python aiocoap_edhoc_peer.py serve PORT CREDENTIALS.cbor
    python aiocoap_edhoc_peer.py get CREDENTIALS.cbor URI...

The credentials are a CBOR file: aiocoap's EDHOC entries need integer keys and byte
strings, which its JSON loader cannot give (its own examples use EDN, which needs
``cbor-diag``); the test writes them with ``cbor2``.

``serve``: as ``aiocoap_oscore_peer.py serve`` (the same resources: ``/hello``,
``/echo``, ``/whoami``), with the server credentials of the file, ``/.well-known/edhoc``
being aiocoap's.  ``get``: one aiocoap client context with the client credentials of
the file GETs each URI in turn and prints ``CODE PAYLOAD`` for each on a line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import aiocoap
import aiocoap.resource
import cbor2
from aiocoap.credentials import CredentialsMap
from aiocoap.numbers.codes import Code
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper
from aiocoap_oscore_peer import Echo, Hello, WhoAmI


async def serve(port: int, credentials: str) -> None:
    site = aiocoap.resource.Site()
    site.add_resource(["hello"], Hello())
    site.add_resource(["echo"], Echo())
    site.add_resource(["whoami"], WhoAmI())
    server_credentials = CredentialsMap()
    with open(credentials, "rb") as file:
        server_credentials.load_from_dict(cbor2.load(file))
    wrapped = OscoreSiteWrapper(site, server_credentials)
    context = await aiocoap.Context.create_server_context(
        wrapped,
        bind=("127.0.0.1", port),
        transports=["udp6"],
        server_credentials=server_credentials,
    )
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print(f"ready {port}", flush=True)
    try:
        await stop
    finally:
        await context.shutdown()


async def get(credentials: str, uris: list[str]) -> None:
    context = await aiocoap.Context.create_client_context(transports=["oscore", "udp6"])
    with open(credentials, "rb") as file:
        context.client_credentials.load_from_dict(cbor2.load(file))
    try:
        for uri in uris:
            try:
                response = await context.request(aiocoap.Message(code=Code.GET, uri=uri)).response
            except Exception as exc:
                print(f"error {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"{response.code.dotted} {response.payload.decode()}", flush=True)
    finally:
        await context.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        asyncio.run(get(sys.argv[2], sys.argv[3:]))
