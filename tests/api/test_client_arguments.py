"""The client's request arguments, over real loopback sockets: what reaches the server.

Issue 16's field report: ``client.put(uri, 21)`` sent 21 zero bytes, ``[21]`` one byte
0x15; ``client.get(uri, params={...})`` failed deep inside with ``'dict' object has no
attribute 'exchange_lifetime'``; a misspelled keyword was a surprise at run time.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest

from coapkit import (
    Address,
    BadRequest,
    Client,
    Code,
    ErrorResponse,
    Options,
    Request,
    Response,
    Server,
    Site,
    TransmissionParameters,
)
from coapkit.codec.uri import uri_from_options


def make_site() -> Site:
    site = Site()

    @site.route("/echo", ("GET", "PUT", "POST", "FETCH", "PATCH", "iPATCH", "DELETE"))
    def echo(request: Request) -> Response:
        """What arrived, as JSON: the method, query, Content-Format, Accept, payload."""
        return Response.json_(
            {
                "method": request.method_name,
                "query": list(request.query),
                "content_format": request.content_format,
                "accept": request.accept,
                "payload": request.payload.hex(),
                "etag": [e.hex() for e in request.etags],
                "remote": str(request.remote),
            }
        )

    @site.route("/value-error")
    def value_error(request: Request) -> Response:
        raise ValueError("the database password is hunter2")

    @site.route("/problem", "POST")
    def problem(request: Request) -> Response:
        request.json()  # malformed JSON: BadRequest, 4.00
        raise BadRequest("unreachable")

    @site.route("/missing")
    def missing(request: Request) -> Response:
        return Response.json_({"error": "no such sensor"}, Code.NOT_FOUND)

    return site


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with Server(make_site(), bind=("127.0.0.1", 0)) as server:
        yield f"coap://127.0.0.1:{server.port}"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(timeout=10) as client:
        yield client


async def echoed(response: Response) -> dict[str, Any]:
    assert response.code == Code.CONTENT, response
    seen: dict[str, Any] = response.json()
    return seen


# -- 1. payload types, json=, cbor=, content-format names ---------------------------------------


@pytest.mark.parametrize("payload", [21, [21], 2.5, {"a": 1}, None, object()])
async def test_a_payload_is_bytes_like_or_str_only(
    client: Client, base: str, payload: object
) -> None:
    with pytest.raises(TypeError, match="a payload is bytes or str, not"):
        await client.put(f"{base}/echo", payload)  # type: ignore[arg-type]


async def test_bytes_like_and_str_payloads(client: Client, base: str) -> None:
    uri = f"{base}/echo"
    for payload in (b"\x15", bytearray(b"\x15"), memoryview(b"\x00\x15")[1:]):
        seen = await echoed(await client.put(uri, payload))
        assert (seen["payload"], seen["content_format"]) == ("15", None)
    seen = await echoed(await client.put(uri, "21"))
    assert (seen["payload"], seen["content_format"]) == ("3231", 0)  # text/plain


async def test_json_and_cbor_keywords_encode_and_set_the_content_format(
    client: Client, base: str
) -> None:
    uri = f"{base}/echo"
    value = {"temperature": 21.5, "unit": "°C", "ok": True}
    seen = await echoed(await client.post(uri, json=value))
    assert seen["content_format"] == 50
    assert bytes.fromhex(seen["payload"]) == '{"temperature":21.5,"unit":"°C","ok":true}'.encode()
    seen = await echoed(await client.put(uri, cbor=value))
    assert seen["content_format"] == 60
    assert cbor2.loads(bytes.fromhex(seen["payload"])) == value
    # another Content-Format of the same encoding, by name
    seen = await echoed(await client.fetch(uri, json=[1], content_format="application/senml+json"))
    assert (seen["content_format"], seen["payload"]) == (110, b"[1]".hex())
    seen = await echoed(await client.ipatch(uri, cbor=0, content_format="senml+cbor"))
    assert (seen["content_format"], seen["payload"]) == (112, "00")
    seen = await echoed(await client.patch(uri, json=None))  # None: no JSON given
    assert (seen["content_format"], seen["payload"]) == (None, "")


async def test_json_and_cbor_are_instead_of_a_payload(client: Client, base: str) -> None:
    with pytest.raises(TypeError, match="not both"):
        await client.post(f"{base}/echo", b"x", json={})
    with pytest.raises(TypeError, match="json= or cbor=, not both"):
        await client.post(f"{base}/echo", json={}, cbor={})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await client.post(f"{base}/echo", json=float("nan"))


async def test_content_format_names_wherever_a_number_is_taken(client: Client, base: str) -> None:
    uri = f"{base}/echo"
    seen = await echoed(await client.put(uri, b"{}", content_format="json", accept="cbor"))
    assert (seen["content_format"], seen["accept"]) == (50, 60)
    seen = await echoed(await client.get(uri, accept="application/link-format"))
    assert seen["accept"] == 40
    seen = await echoed(await client.post(uri, "x", content_format="text/plain; charset=utf-8"))
    assert seen["content_format"] == 0
    with pytest.raises(ValueError, match="unknown content format 'jsno'"):
        await client.put(uri, b"{}", content_format="jsno")


async def test_cbor_without_the_extra_fails_with_one_line_naming_it(
    client: Client, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cbor2", None)  # import cbor2 raises ImportError
    with pytest.raises(ImportError) as caught:
        await client.put(f"{base}/echo", cbor={"a": 1})
    message = str(caught.value)
    assert "\n" not in message
    assert "coapkit[cbor]" in message
    with pytest.raises(ImportError, match=r"coapkit\[cbor\]"):
        Response.cbor_({"a": 1})


# -- 2. params= is the query, transmission= the transmission parameters --------------------------


async def test_params_are_appended_as_uri_query_options(client: Client, base: str) -> None:
    params = {"q": "a b&c=d/é", "n": 3, "x": 2.5, "on": True, "off": False, "e": None}
    seen = await echoed(await client.get(f"{base}/echo?first=1", params=params))
    assert seen["query"] == [
        "first=1",  # the URI's own query first
        "q=a b&c=d/é",  # one option: nothing to percent-encode on the wire
        "n=3",
        "x=2.5",
        "on=true",
        "off=false",
        "e=",
    ]


async def test_params_as_pairs_and_repeated_names(client: Client, base: str) -> None:
    seen = await echoed(await client.get(f"{base}/echo", params=[("rt", "a"), ("rt", "b")]))
    assert seen["query"] == ["rt=a", "rt=b"]
    seen = await echoed(await client.delete(f"{base}/echo", params={"id": [1, 2]}))
    assert (seen["method"], seen["query"]) == ("DELETE", ["id=1", "id=2"])


async def test_the_query_of_params_percent_encodes_in_the_uri(client: Client) -> None:
    parsed, _ = await client.resolve("coap://127.0.0.1/s")
    message = client.build_request("GET", parsed, params={"q": "a b&c"})
    assert message.options.uri_query == ("q=a b&c",)
    uri = uri_from_options(message.options, host="127.0.0.1", port=5683)
    assert str(uri) == "coap://127.0.0.1/s?q=a%20b%26c"


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ("a=1", TypeError, "put a query string in the URI"),
        ([("a", "1", "2")], TypeError, r"takes \(name, value\) pairs"),
        ({"a": b"1"}, TypeError, "query parameter 'a': a value is a str"),
        ({1: "x"}, TypeError, "name is a str"),
        ({"a=b": "c"}, ValueError, "cannot contain '='"),
        (TransmissionParameters(), TypeError, "transmission parameters go in transmission="),
        (42, TypeError, "takes a mapping or"),
    ],
)
async def test_params_that_are_no_query(
    client: Client, base: str, params: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await client.get(f"{base}/echo", params=params)


async def test_transmission_parameters_per_client_and_per_request(base: str) -> None:
    fast = TransmissionParameters(ack_timeout=0.5, max_retransmit=1)
    async with Client(transmission=fast) as client:
        assert client.transmission is fast
        assert client.driver.endpoint.messaging.params is fast
        response = await client.get(f"{base}/echo", transmission=fast.replace(nstart=2))
        assert response.code == Code.CONTENT
    server = Server(make_site(), transmission=fast)
    assert server.transmission is fast


METHODS = ["get", "put", "post", "delete", "fetch", "patch", "ipatch", "request", "observe"]


@pytest.mark.parametrize("name", METHODS)
async def test_a_misspelled_keyword_is_a_type_error_at_the_call(client: Client, name: str) -> None:
    method = getattr(client, name)
    args: tuple[Any, ...] = ("GET", "coap://127.0.0.1/x") if name == "request" else ("coap://x",)
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        method(*args, timout=3)  # raised before a coroutine or observation exists
    parameters = inspect.signature(method).parameters
    assert not [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert {"params", "options", "timeout"} <= set(parameters)
    assert "transmission" in parameters


async def test_typed_options_go_in_options(client: Client, base: str) -> None:
    options = Options.build(etag=b"\x01\x02", accept="json")
    seen = await echoed(await client.get(f"{base}/echo", options=options, accept="cbor"))
    assert (seen["etag"], seen["accept"]) == (["0102"], 60)  # accept= replaces the option's
    seen = await echoed(await client.put(f"{base}/echo", b"{}", options=options, content_format=50))
    assert (seen["etag"], seen["accept"], seen["content_format"]) == (["0102"], 50, 50)
    with pytest.raises(TypeError, match="options= takes an Options value"):
        await client.get(f"{base}/echo", options={"etag": b"\x01"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'etag'"):
        await client.get(f"{base}/echo", etag=b"\x01")  # type: ignore[call-arg]


# -- 5. errors, 6. the response's types ----------------------------------------------------------


async def test_a_handler_value_error_is_a_5_00_without_its_text(client: Client, base: str) -> None:
    response = await client.get(f"{base}/value-error")
    assert (response.code, response.text) == (Code.INTERNAL_SERVER_ERROR, "internal server error")
    malformed = await client.post(f"{base}/problem", b"{nope", content_format="json")
    assert malformed.code == Code.BAD_REQUEST
    assert malformed.text.startswith("payload is not valid JSON")


async def test_error_response_carries_the_response(client: Client, base: str) -> None:
    with pytest.raises(ErrorResponse) as caught:
        await client.get(f"{base}/missing", raise_for_status=True)
    error = caught.value
    assert error.code is Code.NOT_FOUND
    assert isinstance(error.response, Response)
    assert error.response.json() == {"error": "no such sensor"}
    assert error.response.remote == Address("127.0.0.1", int(base.rsplit(":", 1)[1]))


async def test_the_response_has_a_code_and_an_address(client: Client, base: str) -> None:
    response = await client.get(f"{base}/echo")
    assert isinstance(response.code, Code)
    assert isinstance(response.remote, Address)
    assert str(response.remote) == base.removeprefix("coap://")
    seen = json.loads(response.payload)
    local = client.local_address
    assert seen["remote"].endswith(f":{local[1]}")
    assert seen["remote"].startswith("127.0.0.1:")  # IPv4-mapped shown as IPv4
