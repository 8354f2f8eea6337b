"""Signalling messages of CoAP over reliable transports (RFC 8323 §5).

Signals have codes 7.01 to 7.05 and an option number space of their own per
signal code; as for requests, an odd option number is critical (§5.2).

========  ======  ==================================================
code      name    options
========  ======  ==================================================
7.01      CSM     2 Max-Message-Size (uint), 4 Block-Wise-Transfer (empty)
7.02      Ping    2 Custody (empty)
7.03      Pong    2 Custody (empty)
7.04      Release 2 Alternative-Address (string, repeatable), 4 Hold-Off (uint, s)
7.05      Abort   2 Bad-CSM-Option (uint)
========  ======  ==================================================
"""

from __future__ import annotations

from coapkit.codec.message import Message
from coapkit.codec.options import Options

CSM = 0xE1  #: 7.01 Capabilities and Settings Message
PING = 0xE2  #: 7.02
PONG = 0xE3  #: 7.03
RELEASE = 0xE4  #: 7.04
ABORT = 0xE5  #: 7.05

SIGNAL_NAMES = {CSM: "CSM", PING: "Ping", PONG: "Pong", RELEASE: "Release", ABORT: "Abort"}

MAX_MESSAGE_SIZE = 2  #: CSM option (uint)
BLOCK_WISE_TRANSFER = 4  #: CSM option (empty)
CUSTODY = 2  #: Ping/Pong option (empty)
ALTERNATIVE_ADDRESS = 2  #: Release option (string)
HOLD_OFF = 4  #: Release option (uint, seconds)
BAD_CSM_OPTION = 2  #: Abort option (uint)

#: the options each signal defines; any other critical (odd) option is an error
KNOWN_OPTIONS: dict[int, frozenset[int]] = {
    CSM: frozenset({MAX_MESSAGE_SIZE, BLOCK_WISE_TRANSFER}),
    PING: frozenset({CUSTODY}),
    PONG: frozenset({CUSTODY}),
    RELEASE: frozenset({ALTERNATIVE_ADDRESS, HOLD_OFF}),
    ABORT: frozenset({BAD_CSM_OPTION}),
}

#: the base value of Max-Message-Size until the peer's CSM says otherwise (§5.3.1)
BASE_MAX_MESSAGE_SIZE = 1152


def is_signal(code: int) -> bool:
    return code >> 5 == 7


def uint(value: int) -> bytes:
    """An option's uint encoding: big-endian, no leading zero bytes (RFC 7252 §3.2)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def read_uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def unknown_critical(message: Message) -> int | None:
    """The first critical option ``message`` (a signal) carries that its code does not
    define, or None."""
    known = KNOWN_OPTIONS.get(message.code, frozenset())
    for number, _ in message.options.items:
        if number & 1 and number not in known:
            return number
    return None


def csm(max_message_size: int, block_wise: bool) -> Message:
    items = [(MAX_MESSAGE_SIZE, uint(max_message_size))]
    if block_wise:
        items.append((BLOCK_WISE_TRANSFER, b""))
    return Message(code=CSM, options=Options(tuple(items)))


def abort(reason: str, bad_csm_option: int | None = None) -> Message:
    options = (
        Options() if bad_csm_option is None else Options(((BAD_CSM_OPTION, uint(bad_csm_option)),))
    )
    return Message(code=ABORT, options=options, payload=reason.encode())


def release(reason: str = "", hold_off: int | None = None) -> Message:
    options = Options() if hold_off is None else Options(((HOLD_OFF, uint(hold_off)),))
    return Message(code=RELEASE, options=options, payload=reason.encode())
