"""RFC 8613 Appendix C: the test vectors, byte for byte.

C.1-C.3 derive the contexts (with a Master Salt, without, with an ID Context)
on both sides; C.4-C.6 protect a GET request from the client; C.7 and C.8
protect the server's 2.05 response, first with the request's nonce, then with
a Partial IV of its own.  Each protected message is also verified by the
other side, and the intermediate values the appendix lists (info, external
AAD, AAD, plaintext, nonce, OSCORE option, ciphertext) are checked where it
lists them.
"""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from coapkit import Message
from coapkit.codec.codes import Code
from coapkit.oscore.cbor import encode
from coapkit.oscore.context import ContextParameters, SecurityContext
from coapkit.oscore.option import decode_option
from coapkit.oscore.protection import (
    RequestBinding,
    protect_request,
    protect_response,
    unprotect_request,
    unprotect_response,
)

h = bytes.fromhex
SECRET = h("0102030405060708090a0b0c0d0e0f10")
SALT = h("9e7ca92223786340")
ID_CONTEXT = h("37cbf3210017a2d3")


def context(sender: str, recipient: str, *, salt: bytes = b"", id_context: bytes | None = None):
    return SecurityContext(
        ContextParameters(SECRET, h(sender), h(recipient), master_salt=salt, id_context=id_context)
    )


# -- C.1 to C.3: key derivation ---------------------------------------------------------------

DERIVATIONS = [
    # (name, sender, recipient, salt, id context, sender key, recipient key, common IV,
    #  sender nonce at PIV 0, recipient nonce at PIV 0)
    (
        "C.1.1 client",
        "",
        "01",
        SALT,
        None,
        "f0910ed7295e6ad4b54fc793154302ff",
        "ffb14e093c94c9cac9471648b4f98710",
        "4622d4dd6d944168eefb54987c",
        "4622d4dd6d944168eefb54987c",
        "4722d4dd6d944169eefb54987c",
    ),
    (
        "C.1.2 server",
        "01",
        "",
        SALT,
        None,
        "ffb14e093c94c9cac9471648b4f98710",
        "f0910ed7295e6ad4b54fc793154302ff",
        "4622d4dd6d944168eefb54987c",
        "4722d4dd6d944169eefb54987c",
        "4622d4dd6d944168eefb54987c",
    ),
    (
        "C.2.1 client",
        "00",
        "01",
        b"",
        None,
        "321b26943253c7ffb6003b0b64d74041",
        "e57b5635815177cd679ab4bcec9d7dda",
        "be35ae297d2dace910c52e99f9",
        "bf35ae297d2dace910c52e99f9",
        "bf35ae297d2dace810c52e99f9",
    ),
    (
        "C.2.2 server",
        "01",
        "00",
        b"",
        None,
        "e57b5635815177cd679ab4bcec9d7dda",
        "321b26943253c7ffb6003b0b64d74041",
        "be35ae297d2dace910c52e99f9",
        "bf35ae297d2dace810c52e99f9",
        "bf35ae297d2dace910c52e99f9",
    ),
    (
        "C.3.1 client",
        "",
        "01",
        SALT,
        ID_CONTEXT,
        "af2a1300a5e95788b356336eeecd2b92",
        "e39a0c7c77b43f03b4b39ab9a268699f",
        "2ca58fb85ff1b81c0b7181b85e",
        "2ca58fb85ff1b81c0b7181b85e",
        "2da58fb85ff1b81d0b7181b85e",
    ),
    (
        "C.3.2 server",
        "01",
        "",
        SALT,
        ID_CONTEXT,
        "e39a0c7c77b43f03b4b39ab9a268699f",
        "af2a1300a5e95788b356336eeecd2b92",
        "2ca58fb85ff1b81c0b7181b85e",
        "2da58fb85ff1b81d0b7181b85e",
        "2ca58fb85ff1b81c0b7181b85e",
    ),
]


@pytest.mark.parametrize("row", DERIVATIONS, ids=[row[0] for row in DERIVATIONS])
def test_key_derivation(row: tuple) -> None:
    _, sender, recipient, salt, id_context, skey, rkey, iv, snonce, rnonce = row
    ctx = context(sender, recipient, salt=salt, id_context=id_context)
    assert ctx.sender_key == h(skey)
    assert ctx.recipient_key == h(rkey)
    assert ctx.common_iv == h(iv)
    assert ctx.nonce(b"\0", ctx.sender_id) == h(snonce)
    assert ctx.nonce(b"\0", ctx.recipient_id) == h(rnonce)
    assert ctx.sender_nonce(0) == h(snonce)
    assert ctx.recipient_nonce(0) == h(rnonce)


def test_info_structures() -> None:
    """C.1.1 and C.2.1 list the HKDF info arrays: the encoding is the appendix's."""
    assert encode([b"", None, 10, "Key", 16]) == h("8540f60a634b657910")
    assert encode([b"\x01", None, 10, "Key", 16]) == h("854101f60a634b657910")
    assert encode([b"", None, 10, "IV", 13]) == h("8540f60a6249560d")
    assert encode([b"\x00", None, 10, "Key", 16]) == h("854100f60a634b657910")
    # C.3.1, with the ID Context
    assert encode([b"", ID_CONTEXT, 10, "Key", 16]) == h("85404837cbf3210017a2d30a634b657910")


def test_tiny_cbor_matches_cbor2() -> None:
    cbor2 = pytest.importorskip("cbor2")
    for value in (
        [1, [10], b"", b"\x14", b""],
        [b"\x01" * 30, None, -27, "IV", 13],
        ["Encrypt0", b"", b"x" * 300],
        [0, 23, 24, 255, 256, 65535, 65536, 2**32, -1, -24, -25, -256, -257],
    ):
        assert encode(value) == cbor2.dumps(value)


# -- C.4 to C.6: requests ----------------------------------------------------------------------

REQUESTS = [
    # (name, context, unprotected request, protected request, option, external AAD, nonce,
    #  ciphertext)
    (
        "C.4",
        ("", "01", SALT, None),
        "44015d1f00003974396c6f63616c686f737483747631",
        "44025d1f00003974396c6f63616c686f7374620914ff612f1092f1776f1c1668b3825e",
        "0914",
        "8501810a40411440",
        "4622d4dd6d944168eefb549868",
        "612f1092f1776f1c1668b3825e",
    ),
    (
        "C.5",
        ("00", "01", b"", None),
        "440171c30000b932396c6f63616c686f737483747631",
        "440271c30000b932396c6f63616c686f737463091400ff4ed339a5a379b0b8bc731fffb0",
        "091400",
        "8501810a4100411440",
        "bf35ae297d2dace910c52e99ed",
        "4ed339a5a379b0b8bc731fffb0",
    ),
    (
        "C.6",
        ("", "01", SALT, ID_CONTEXT),
        "44012f8eef9bbf7a396c6f63616c686f737483747631",
        # the appendix's "protected CoAP request" has an erratum (its own ciphertext and
        # option do not make it); this is its option and ciphertext in that message
        "44022f8eef9bbf7a396c6f63616c686f73746b19140837cbf3210017a2d3ff72cd7273fd331ac45cffbe55c3",
        "19140837cbf3210017a2d3",
        "8501810a40411440",
        "2ca58fb85ff1b81c0b7181b84a",
        "72cd7273fd331ac45cffbe55c3",
    ),
]


@pytest.mark.parametrize("row", REQUESTS, ids=[row[0] for row in REQUESTS])
def test_protected_request(row: tuple) -> None:
    _, (sender, recipient, salt, id_context), plain, protected, option, aad, nonce, ct = row
    client = context(sender, recipient, salt=salt, id_context=id_context)
    client.sequence_number = 20
    message = Message.decode(h(plain))
    outer, binding = protect_request(client, message)
    assert outer.encode() == h(protected)
    assert outer.options.oscore == h(option)
    assert outer.payload == h(ct)
    assert client.external_aad(client.sender_id, b"\x14") == h(aad)
    assert client.aad(client.sender_id, b"\x14") == h("8368456e63727970743040") + bytes(
        (0x40 | len(h(aad)),)
    ) + h(aad)
    assert client.sender_nonce(20) == h(nonce)
    assert (binding.kid, binding.partial_iv, binding.outer_code) == (client.sender_id, b"\x14", 2)
    assert client.sequence_number == 21

    # ... and the server takes it back to the original request
    server = context(recipient, sender, salt=salt, id_context=id_context)
    received = Message.decode(h(protected))
    inner, server_binding = unprotect_request(received, lambda option: server)
    assert inner == message
    assert server_binding.partial_iv == b"\x14"
    assert decode_option(h(option)).kid_context == id_context


# -- C.7 and C.8: responses ----------------------------------------------------------------------

RESPONSE = "64455d1f00003974ff48656c6c6f20576f726c6421"


def response_binding(ctx: SecurityContext, requester: bytes, reuse: bool) -> RequestBinding:
    return RequestBinding(ctx, requester, b"\x14", int(Code.POST), reuse)


def test_c7_response_with_the_request_nonce() -> None:
    server = context("01", "", salt=SALT)
    outer = protect_response(response_binding(server, b"", True), Message.decode(h(RESPONSE)))
    assert outer.encode() == h("64445d1f0000397490ffdbaad1e9a7e7b2a813d3c31524378303cdafae119106")
    assert outer.options.oscore == b""
    assert server.sequence_number == 0  # the request's nonce: no number taken

    client = context("", "01", salt=SALT)
    verified = unprotect_response(response_binding(client, b"", False), outer)
    assert verified.message == Message.decode(h(RESPONSE))
    assert verified.partial_iv is None


def test_c8_response_with_a_partial_iv() -> None:
    server = context("01", "", salt=SALT)
    outer = protect_response(
        response_binding(server, b"", True), Message.decode(h(RESPONSE)), new_partial_iv=True
    )
    assert outer.encode() == h(
        "64445d1f00003974920100ff4d4c13669384b67354b2b6175ff4b8658c666a6cf88e"
    )
    assert server.nonce(b"\0", server.sender_id) == h("4722d4dd6d944169eefb54987c")
    assert server.sequence_number == 1

    client = context("", "01", salt=SALT)
    verified = unprotect_response(response_binding(client, b"", False), outer)
    assert verified.message == Message.decode(h(RESPONSE))
    assert verified.partial_iv == 0
