"""Argument types of the command line, kept apart so that ``--help`` and usage errors
never pay for importing the asyncio client and server."""

from __future__ import annotations

import argparse
import math

from coapkit.codec.content_formats import parse_content_format

METHODS = ("get", "post", "put", "delete", "fetch", "patch", "ipatch")
LOOP_CHOICES = ("auto", "asyncio", "uvloop")
#: the URI schemes the commands take; shell completion offers them for a URI and --listen
SCHEMES = ("coap", "coaps", "coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws")
#: ``--congestion``: the names of coapkit.messaging.congestion.CONGESTION_CONTROLS
CONGESTION_CHOICES = ("fixed", "cocoa")


def timeout_type(text: str) -> float:
    """``--timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def content_format_type(text: str) -> int:
    """``--content-format`` and ``--accept``: a number or a name (``json``, ``text/plain``)."""
    try:
        return parse_content_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_type(text: str) -> int:
    """``--port``: 0 (any free port) to 65535."""
    if not (text.isascii() and text.isdigit()) or int(text) > 0xFFFF:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return int(text)


def count_type(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value
