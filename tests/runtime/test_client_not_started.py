"""A Client used before start() or after close() says so, instead of failing an assertion."""

from __future__ import annotations

import pytest

from coapkit.client import Client
from coapkit.errors import CoapError, NotStarted


def test_local_address_before_start_says_how_to_start() -> None:
    with pytest.raises(NotStarted) as caught:
        _ = Client().local_address
    assert isinstance(caught.value, CoapError) and isinstance(caught.value, RuntimeError)
    assert str(caught.value) == (
        "the client is not started (or is closed); "
        "use 'async with Client() as client:' or 'await client.start()'"
    )
    assert caught.value.hint is not None and "async with Client()" in caught.value.hint


async def test_local_address_while_started_only() -> None:
    client = Client(bind=("127.0.0.1", 0))
    async with client:
        host, port = client.local_address[:2]
        assert host == "127.0.0.1" and port > 0
    with pytest.raises(NotStarted):
        _ = client.local_address


async def test_requests_before_start_raise_not_started() -> None:
    client = Client()
    with pytest.raises(NotStarted):
        await client.get("coap://127.0.0.1/x")
    with pytest.raises(NotStarted):
        await anext(client.observe("coap://127.0.0.1/x"))
