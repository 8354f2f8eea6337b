"""The malformed and odd datagrams of issue 9, exact bytes in and out.

Every case runs twice: on the sans-I/O endpoint (with the site answering the
requests that reach it) and through a real UDP socket to a coapkit Server.
Hex: header bytes, then token, options and payload.  A site with one resource
at ``/`` answering ``2.05 "root"`` (Content-Format 0) is the server.
"""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import IncomingRequest
from coapkit.resources import Request, Response, Site
from coapkit.server import Server

REMOTE = ("192.0.2.1", 5683)

ROOT_205 = "60450001c0ff726f6f74"  # ACK 2.05 MID 1, Content-Format 0, "root"


def bad_option(name: str) -> str:
    """ACK 4.02 MID 1 whose diagnostic payload names the option."""
    return "60820001ff" + f"unrecognised critical option: {name}".encode().hex()


CORPUS: list[tuple[str, str, list[str]]] = [
    # dropped silently: no readable header
    ("empty datagram", "", []),
    ("one byte", "40", []),
    ("three bytes", "400197", []),
    ("version 2", "80019998", []),
    # answered with RST: a CON with a readable header but malformed
    ("token length 9", "49010001", ["70000001"]),
    ("token cut short", "48010001aabb", ["70000001"]),
    ("delta 13 with nothing after it", "40010001d0", ["70000001"]),
    ("delta 14 cut short", "40010001e001", ["70000001"]),
    ("length 13 with nothing after it", "400100010d", ["70000001"]),
    ("delta nibble 15", "40010001f1", ["70000001"]),
    ("length nibble 15", "400100010f", ["70000001"]),
    ("payload marker without payload", "40010001ff", ["70000001"]),
    ("option number above 65535", "40010001e0fef2c0", ["70000001"]),
    ("option length 65804", "400100010effff", ["70000001"]),
    ("empty message with a token", "4100000100", ["70000001"]),
    ("reserved code class 1", "40200001", ["70000001"]),
    ("reserved code class 6", "40c00001", ["70000001"]),
    ("reserved code class 7 over UDP", "40e00001", ["70000001"]),
    # ignored: impossible combinations
    ("a request inside an ACK", "60010001", []),
    ("a non-empty RST", "70000001ff41", []),
    ("an empty NON", "50000001", []),
    # 4.02 piggybacked: unrecognised critical options (RFC 7252 §5.4.1, §5.4.3, §5.4.5)
    ("unknown critical option 65001", "40010001e0fcdc", [bad_option("Option 65001")]),
    ("If-None-Match twice", "400300015000", [bad_option("If-None-Match")]),
    ("3-byte Uri-Port", "4001000173010203", [bad_option("Uri-Port")]),
    ("300-byte Uri-Host", "400100013e001f" + "61" * 300, [bad_option("Uri-Host")]),
    # answered normally: an unknown elective option is ignored
    ("unknown elective option 65000", "40010001e0fcdb", [ROOT_205]),
    # 4.00, never a UnicodeDecodeError
    (
        "non-UTF-8 Uri-Path",
        "40010001b2c328",
        ["60800001ff" + b"Uri-Path is not valid UTF-8".hex()],
    ),
    # the opaque token is echoed byte for byte
    ("token fdff", "42010001fdff", ["62450001fdffc0ff726f6f74"]),
    # a CoAP ping
    ("empty CON (ping)", "40000001", ["70000001"]),
]


def make_site() -> Site:
    site = Site()

    @site.route("/")
    def root(request: Request) -> Response:
        return Response(payload="root")

    return site


def sans_io_answer(data: bytes) -> list[str]:
    site = make_site()
    endpoint = Endpoint(rng=random.Random(7))
    output = endpoint.datagram_received(data, REMOTE, 0.0)
    sent = [datagram.hex() for datagram, remote in output.datagrams]
    for event in output.events:
        if isinstance(event, IncomingRequest):
            response = site.dispatch(Request(event.request, event.remote, event.handle))
            assert isinstance(response, Response)
            reply = endpoint.respond(event.handle, response.to_message(), 0.0)
            sent.extend(datagram.hex() for datagram, remote in reply.datagrams)
    # Nothing else is due later for these inputs (no stray retransmission, no separate ACK).
    later = endpoint.handle_timeout(1000.0)
    assert later.datagrams == []
    return sent


@pytest.mark.parametrize(("name", "request_hex", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_sans_io(name: str, request_hex: str, expected: list[str]) -> None:
    assert sans_io_answer(bytes.fromhex(request_hex)) == expected


async def test_real_socket() -> None:
    """The same corpus through a real socket; then a normal request still works."""
    async with Server(make_site(), bind=("127.0.0.1", 0)) as server:
        loop = asyncio.get_running_loop()
        destination = ("127.0.0.1", server.port)
        for name, request_hex, expected in CORPUS:
            # A new source port per case: the corpus reuses MID 1, which the server
            # would otherwise rightly treat as a duplicate and answer by replay.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.bind(("127.0.0.1", 0))
                await loop.sock_sendto(sock, bytes.fromhex(request_hex), destination)
                received = []
                for _ in expected:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 2.0)
                    received.append(data.hex())
                assert received == expected, name
                # Nothing more comes back: a ping's RST is the fence (MID 0xfffe).
                await loop.sock_sendto(sock, bytes.fromhex("4000fffe"), destination)
                fence = await asyncio.wait_for(loop.sock_recv(sock, 2048), 2.0)
                assert fence.hex() == "7000fffe", f"{name}: unexpected extra datagram {fence.hex()}"
                # ... and the server still serves this client
                await loop.sock_sendto(sock, bytes.fromhex("40010099"), destination)
                data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 2.0)
                assert data.hex() == "60450099c0ff726f6f74", name
