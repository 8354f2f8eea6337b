"""Block-wise transfers (RFC 7959) between the real client and server, in virtual time."""

from __future__ import annotations

from coapkit import Code
from coapkit.testing import VirtualNetwork
from tests.testing.helpers import BODY, App, sent


async def test_a_download_comes_in_blocks() -> None:
    app = App()
    net = VirtualNetwork(seed=1)
    progress: list[tuple[int, int | None]] = []
    async with net.server(app.site) as server, net.client() as client:
        response = await client.get(
            "coap://server/big", progress=lambda done, total: progress.append((done, total))
        )
        requests = sent(net, client.local_address, server.address)
        answers = sent(net, server.address, client.local_address)
    assert response.payload == BODY
    assert [m.options.block2.num if m.options.block2 else None for _, m in requests] == [
        None,
        1,
        2,
        3,
        4,
    ]
    sizes = [len(m.payload) for _, m in answers]
    assert sizes == [1024, 1024, 1024, 1024, 904]
    assert progress[-1][0] == 5000


async def test_an_upload_goes_in_blocks() -> None:
    app = App()
    net = VirtualNetwork(seed=2)
    async with net.server(app.site) as server, net.client() as client:
        response = await client.put("coap://server/upload", BODY)
        requests = sent(net, client.local_address, server.address)
    assert (response.code, response.text) == (Code.CHANGED, "5000")
    assert app.uploads == [BODY]  # the handler saw the whole body, once
    assert [len(m.payload) for _, m in requests] == [1024, 1024, 1024, 1024, 904]
    assert [m.options.block1.more for _, m in requests] == [True] * 4 + [False]  # type: ignore[union-attr]


async def test_block_wise_over_a_lossy_link() -> None:
    app = App()
    net = VirtualNetwork(seed=3, loss=0.25, duplicate=0.1, jitter=0.05)
    async with net.server(app.site), net.client() as client:
        download = await client.get("coap://server/big")
        upload = await client.put("coap://server/upload", BODY)
    assert download.payload == BODY
    assert upload.text == "5000"
    assert app.uploads == [BODY]
    assert net.simulated.lost >= 3
