"""A user's program type-checks with ``mypy --strict``, and a misuse is a type error.

Issue 16: ``Server.route`` returned ``Any``, ``request.remote`` was ``object``,
``Response.code`` an ``int``, and a misspelled keyword to ``client.get`` went unnoticed
by the type checker (``**kwargs: Any``).  mypy runs on the programs below against this
checkout's ``src`` (MYPYPATH), as a user's CI would run it against the package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
import asyncio

from coapkit import (
    Address, Client, Code, ErrorResponse, Request, RequestTimeout, RespondWith, Response,
    Server, Site, TransmissionParameters,
)

server = Server(bind=("127.0.0.1", 0), transmission=TransmissionParameters(nstart=2))
site = Site()


@server.route("/hello")
def hello(request: Request) -> Response:
    return Response(payload=f"hello {request.remote.host}")


@server.route("/slow", methods=["GET", "PUT"], rt="slow", accepts={"json"})
async def slow(request: Request) -> Response:
    await asyncio.sleep(0)
    if request.method is Code.PUT:
        raise RespondWith(Code.FORBIDDEN, "read only")
    return Response.json_({"from": str(request.remote)})


@site.route("/text")
def text(request: Request) -> str:
    return "plain"


async def main() -> None:
    hello_response: Response = hello(Request.build())  # the decorator kept the type
    slow_call = slow(Request.build())  # still a coroutine function
    await slow_call
    async with server, Client(timeout=5) as client:
        uri = f"coap://127.0.0.1:{server.port}/hello"
        response = await client.get(uri, params={"n": 1}, accept="text", timeout=2.5)
        code: Code = response.code
        remote: Address | None = response.remote
        if remote is not None:
            print(remote.host, remote.port, str(remote))
        await client.put(uri, json={"a": [1, 2]}, content_format="json")
        await client.post(uri, b"raw", options=[(65000, b"x")])
        try:
            await client.get(uri, raise_for_status=True)
        except ErrorResponse as error:
            print(error.response.json(), error.code)
        except RequestTimeout:
            pass
        async with client.observe(uri, params=[("a", "b")]) as observation:
            async for notification in observation:
                print(notification.text, code, hello_response)
                break
"""

BAD = {
    "misspelled keyword": (
        "async def f(c: Client) -> None:\n    await c.get('coap://h/', timout=3)\n",
        r'Unexpected keyword argument "timout" for "get" of "Client"',
    ),
    "an int payload": (
        "async def f(c: Client) -> None:\n    await c.put('coap://h/', 21)\n",
        r'Argument 2 to "put" of "Client" has incompatible type "int"',
    ),
    "transmission parameters as params": (
        "async def f(c: Client) -> None:\n"
        "    await c.get('coap://h/', params=TransmissionParameters())\n",
        r'Argument "params" to "get" of "Client" has incompatible type "TransmissionParameters"',
    ),
    "an option keyword": (
        "async def f(c: Client) -> None:\n    await c.get('coap://h/', etag=b'x')\n",
        r'Unexpected keyword argument "etag" for "get" of "Client"',
    ),
    "a handler returning a dict": (
        "@Server().route('/x')\ndef h(request: Request) -> dict[str, int]:\n    return {}\n",
        r'Value of type variable "HandlerT" of function cannot be',
    ),
    "a remote that is not a str": (
        "def h(request: Request) -> int:\n    return request.remote.host\n",
        r'Incompatible return value type \(got "str", expected "int"\)',
    ),
    "a name coapkit does not export": (
        "from coapkit import Clinet\n",
        r'has no attribute "Clinet"',
    ),
}

HEADER = "from coapkit import Client, Request, Server, TransmissionParameters\n\n"


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One mypy run over the good program and every bad one: each file's messages."""
    directory = tmp_path_factory.mktemp("typing")
    files = {"good": GOOD}
    for index, (_, (code, _)) in enumerate(BAD.items()):
        files[f"bad{index}"] = HEADER + code
    for name, code in files.items():
        (directory / f"{name}.py").write_text(code)
    env = dict(os.environ, MYPYPATH=str(ROOT / "src"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            *sorted(str(directory / f"{name}.py") for name in files),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=300,
        check=False,
    )
    output: dict[str, str] = dict.fromkeys(files, "")
    for line in result.stdout.splitlines():
        match = re.match(r"(?:.*/)?(\w+)\.py:\d+: (.*)", line)
        if match:
            output[match.group(1)] += match.group(2) + "\n"
    return output


def test_a_user_program_passes_mypy_strict(mypy_output: dict[str, str]) -> None:
    assert mypy_output["good"] == ""


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_misuse_is_a_type_error(case: str, mypy_output: dict[str, str]) -> None:
    index = list(BAD).index(case)
    messages = mypy_output[f"bad{index}"]
    assert re.search(BAD[case][1], messages), messages
