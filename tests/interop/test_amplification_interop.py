"""Echo challenges (RFC 9175 §2.4) against peers: a coapkit server with the amplification limit.

libcoap's coap-client repeats a request with the Echo value of a 4.01 and gets
the resource; aiocoap 0.4.17's client does not (recorded below).
"""

from __future__ import annotations

import pytest

from coapkit.client import Client
from coapkit.exchanges.amplification import AmplificationConfig
from coapkit.resources import Response, Site
from coapkit.server import Server
from tests.interop.peers import require_aiocoap, require_libcoap, run_coap_client

pytestmark = pytest.mark.interop

BODY = "".join(f"line {n:04d} of a body that is larger than one block\n" for n in range(60))


@pytest.fixture
async def guarded_server():
    site = Site()

    @site.route("/big")
    def big(request):
        return Response(payload=BODY)

    async with Server(site, bind=("127.0.0.1", 0), amplification=AmplificationConfig()) as server:
        yield server


async def test_libcoap_client_answers_the_echo_challenge(guarded_server):
    require_libcoap()
    uri = f"coap://127.0.0.1:{guarded_server.port}/big"
    result = await run_coap_client(uri)
    assert result.returncode == 0
    assert result.stdout.decode() == BODY + "\n"
    # coap-client was challenged (a small 4.01 with Echo) and proved itself
    guard = guarded_server.endpoint.amplification
    assert (guard.stats.challenges, guard.stats.verified) == (1, 1)


async def test_coapkit_client_answers_the_echo_challenge(guarded_server):
    async with Client() as client:
        response = await client.get(f"coap://127.0.0.1:{guarded_server.port}/big")
    assert response.text == BODY


async def test_aiocoap_client_does_not_repeat_with_echo(guarded_server):
    require_aiocoap()
    import aiocoap

    context = await aiocoap.Context.create_client_context()
    try:
        request = aiocoap.Message(
            code=aiocoap.GET, uri=f"coap://127.0.0.1:{guarded_server.port}/big"
        )
        response = await context.request(request).response
    finally:
        await context.shutdown()
    # Peer deviation (RFC 9175 §2.3): aiocoap 0.4.17's client hands the 4.01 with Echo
    # to the application instead of repeating the request with the Echo value.
    assert response.code == aiocoap.UNAUTHORIZED
    assert response.opt.echo is not None
    # coapkit itself sent only a small response to the unverified source
    assert len(response.payload) == 0
