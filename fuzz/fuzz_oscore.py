#!/usr/bin/env python3
"""Coverage-guided fuzzing of OSCORE's decoding (coapkit.oscore): the option, the COSE object.

The first byte of an input picks what is fuzzed (its value modulo 4):

0. ``decode_option`` of the rest: the OSCORE option value (RFC 8613 §6.1);
1. ``unprotect_request`` of a request built from the rest (``code, option length,
   option value, payload``), as a server receives it: two security contexts are
   known (kid ``01``, and kid ``02`` with the ID Context ``ab``, whose replay
   window is lost so that Appendix B.1.2's Echo path runs);
2. ``unprotect_response`` of a response built the same way, for a request the
   client protected;
3. a valid protected request (GET, POST with a payload, an Observe registration)
   with some bytes changed: ``which request, then (position, xor value)`` pairs.

For every input:

1. ``decode_option`` returns an option or raises ``OscoreDecodeError``, nothing
   else, and what it returns encodes back to the very input;
2. a server's verification raises nothing but ``Rejection`` (whose code is one of
   §8.2's: 4.00, 4.01, 4.02, 4.05), a client's nothing but ``ProtectionInvalid``;
3. a request with a byte of its OSCORE option value or of its ciphertext changed
   is never accepted (integrity); an unchanged one always is, to the original
   inner request.

    python fuzz/fuzz_oscore.py -atheris_runs=1000000 fuzz/corpus-oscore fuzz/seeds/oscore
    python fuzz/fuzz_oscore.py --no-atheris -runs=1000000 -seed=1 fuzz/seeds/oscore
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.oscore.option
        import coapkit.oscore.protection  # noqa: F401

from coapkit.codec.codes import Code  # noqa: E402
from coapkit.codec.message import Message  # noqa: E402
from coapkit.codec.options import Options  # noqa: E402
from coapkit.codec.types import MessageType  # noqa: E402
from coapkit.oscore.context import ContextParameters, ReplayWindow, SecurityContext  # noqa: E402
from coapkit.oscore.errors import ProtectionInvalid, Rejection  # noqa: E402
from coapkit.oscore.option import OscoreDecodeError, OscoreOption, decode_option  # noqa: E402
from coapkit.oscore.protection import (  # noqa: E402
    RequestBinding,
    protect_request,
    unprotect_request,
    unprotect_response,
)

SECRET = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
OSCORE = 9
CODES = (Code.POST, Code.FETCH, Code.GET, Code.CONTENT, Code.CHANGED, Code.PUT, 0xFF)
REJECTION_CODES = {Code.BAD_REQUEST, Code.UNAUTHORIZED, Code.BAD_OPTION, Code.METHOD_NOT_ALLOWED}


class InvariantError(AssertionError):
    """OSCORE's decoding broke one of the invariants in the module docstring."""


class _Rng:
    def __init__(self) -> None:
        self._random = random.Random(0)

    def random(self) -> float:
        return self._random.random()

    def getrandbits(self, k: int, /) -> int:
        return self._random.getrandbits(k)

    def randbytes(self, n: int, /) -> bytes:
        return self._random.randbytes(n)


# server side: one context per client; the second lost its replay window
_PLAIN = ContextParameters(SECRET, b"\x00", b"\x01")
_LOST = ContextParameters(SECRET, b"\x00", b"\x02", id_context=b"\xab")
SERVER = SecurityContext(_PLAIN, rng=_Rng())
SERVER_LOST = SecurityContext(_LOST, rng=_Rng())
# client side
CLIENT = SecurityContext(_PLAIN.reversed())
CLIENT_LOST = SecurityContext(_LOST.reversed())


def lookup(option: OscoreOption) -> SecurityContext | None:
    if option.kid == b"\x01" and option.kid_context is None:
        return SERVER
    if option.kid == b"\x02" and option.kid_context == b"\xab":
        return SERVER_LOST
    return None


def _fresh_server() -> None:
    SERVER.window = ReplayWindow(32)
    SERVER_LOST.window = None


def _requests() -> list[tuple[Message, Message, SecurityContext]]:
    """(original, protected) pairs the tampering mode starts from."""
    originals = [
        Message(MessageType.CON, Code.GET, 1, b"t", Options.build(uri_path=["a", "b"])),
        Message(
            MessageType.NON,
            Code.POST,
            2,
            b"",
            Options.build(uri_path=["x"], content_format=0, uri_host="h"),
            b"payload " * 4,
        ),
        Message(MessageType.CON, Code.GET, 3, b"tk", Options.build(uri_path=["obs"], observe=0)),
    ]
    out = []
    for number, original in enumerate(originals):
        client = CLIENT_LOST if number == 2 else CLIENT
        protected, _ = protect_request(client, original)
        out.append((original, protected, client))
    return out


REQUESTS = _requests()


def _message(data: bytes, mtype: MessageType = MessageType.CON) -> Message:
    code = CODES[data[0] % len(CODES)] if data else Code.POST
    length = data[1] if len(data) > 1 else 0
    option = data[2 : 2 + length]
    payload = data[2 + length :]
    options = Options(((OSCORE, option),)) if len(data) > 1 else Options(())
    return Message(mtype, code, 7, b"\x01", options, payload)


def check_option(data: bytes) -> bool:
    try:
        option = decode_option(data)
    except OscoreDecodeError:
        return False
    encoded = option.encode()
    if encoded != data:
        raise InvariantError(
            f"option {data.hex()} decodes to {option}, which encodes to {encoded.hex()}"
        )
    return True


def check_request(data: bytes) -> bool:
    _fresh_server()
    message = _message(data)
    try:
        unprotect_request(message, lookup)
    except Rejection as rejection:
        if rejection.code not in REJECTION_CODES:
            raise InvariantError(f"rejection with code {rejection.code}") from None
        return False
    return True


def check_response(data: bytes) -> bool:
    message = _message(data, MessageType.ACK)
    binding = RequestBinding(CLIENT, CLIENT.sender_id, b"\x05", int(Code.POST), False)
    try:
        unprotect_response(binding, message)
    except ProtectionInvalid:
        return False
    return True


def check_tampered(data: bytes) -> bool:
    original, protected, _ = REQUESTS[data[0] % len(REQUESTS)] if data else REQUESTS[0]
    option = bytearray(protected.options.oscore or b"")
    payload = bytearray(protected.payload)
    changed = False
    for pos in range(1, len(data) - 1, 2):
        where, value = data[pos], data[pos + 1]
        if not value:
            continue
        if where & 0x80 and option:
            option[where % len(option)] ^= value
        else:
            payload[where % len(payload)] ^= value
        changed = True
    tampered = protected.replace(
        options=protected.options.set_raw(OSCORE, [bytes(option)]), payload=bytes(payload)
    )
    changed = changed and tampered != protected
    _fresh_server()
    SERVER_LOST.start_window(0)
    SERVER_LOST.window = ReplayWindow(32)
    try:
        inner, _ = unprotect_request(tampered, lookup)
    except Rejection as rejection:
        if not changed:
            raise InvariantError(f"an untouched request was rejected: {rejection}") from None
        if rejection.code not in REJECTION_CODES:
            raise InvariantError(f"rejection with code {rejection.code}") from None
        return False
    if changed:
        raise InvariantError(f"a tampered request was accepted: {tampered!r}")
    if inner.options.remove(3) != original.options.remove(3) or inner.payload != original.payload:
        raise InvariantError(f"{original!r} came back as {inner!r}")
    return True


CHECKS = (check_option, check_request, check_response, check_tampered)


def check(data: bytes) -> bool:
    if not data:
        return False
    return CHECKS[data[0] % len(CHECKS)](data[1:])


def TestOneInput(data: bytes) -> None:
    check(data)


# -- the pure-Python mode -------------------------------------------------------------------


def generate(rng: random.Random) -> bytes:
    mode = rng.randrange(4)
    if mode == 3:
        pairs = bytes(rng.randrange(256) for _ in range(2 * rng.randrange(3)))
        return bytes((3, rng.randrange(3))) + pairs
    flags = rng.choice((0, 0x09, 0x19, 0x01, 0x08, 0x10, 0x1F, 0x0E, 0x20, rng.randrange(256)))
    piv = rng.randbytes(flags & 7 if rng.random() < 0.9 else rng.randrange(8))
    value = bytes((flags,)) + piv if flags or rng.random() < 0.1 else b""
    if flags & 0x10:
        context = rng.choice((b"\xab", b"", rng.randbytes(rng.randrange(4))))
        value += bytes((len(context) + rng.choice((0, 0, 0, 1, -1)) & 0xFF,)) + context
    if flags & 0x08:
        value += rng.choice((b"\x01", b"\x02", b"", b"\x00", rng.randbytes(rng.randrange(9))))
    if mode == 0:
        return b"\x00" + value
    payload = rng.randbytes(rng.choice((0, 1, 8, 9, 10, 20, 64)))
    code = rng.randrange(len(CODES))
    return bytes((mode, code, len(value) & 0xFF)) + value + payload


def seeds() -> dict[str, bytes]:
    """Seed inputs (``--write-seeds``): one of each mode."""
    protected = REQUESTS[1][1]
    option = protected.options.oscore or b""
    return {
        "option-kid-piv.bin": b"\x00\x09\x05\x25",
        "option-kid-context.bin": b"\x00\x19\x05\x05\x44\x61\x6c\x65\x6b",
        "option-empty.bin": b"\x00",
        "option-piv-only.bin": b"\x00\x01\x07",
        "request-valid-post.bin": bytes((1, 0, len(option))) + option + protected.payload,
        "request-unknown-kid.bin": b"\x01\x00\x03\x09\x05\x25" + bytes(20),
        "request-lost-window.bin": b"\x01\x00\x06\x19\x01\x01\xab\x02\x02" + bytes(20),
        "response-no-piv.bin": b"\x02\x03\x00" + bytes(20),
        "tampered-none.bin": b"\x03\x00",
        "tampered-ciphertext.bin": b"\x03\x01\x05\x01",
        "tampered-option.bin": b"\x03\x02\x81\x40",
    }


def main(argv: list[str]) -> int:
    if "--write-seeds" in argv:
        directory = Path(__file__).resolve().parent / "seeds" / "oscore"
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (directory / name).write_bytes(data)
        print(f"wrote {len(seeds())} seeds to {directory}")
        return 0
    return fuzzlib.main(
        argv,
        name="fuzz_oscore",
        test_one_input=TestOneInput,
        check=check,
        generate=generate,
        coverage_guided=COVERAGE_GUIDED,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
