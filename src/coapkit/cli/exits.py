"""Exit statuses of the ``coapkit`` tool and the errors the commands raise to end with one.

The table is documented in :mod:`coapkit.cli.main` (module docstring and
``coapkit --help``); :func:`exit_status` is the one place that maps an
exception to a status and a one-line message.
"""

from __future__ import annotations

import asyncio

from coapkit.errors import (
    BadResponse,
    CoapError,
    NetworkError,
    RequestTimeout,
    ReservedCodeResponse,
    ResetByPeer,
    TransferError,
    UriError,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MALFORMED = 3
EXIT_CLIENT_ERROR = 4
EXIT_SERVER_ERROR = 5
EXIT_BAD_URI = 6
EXIT_NETWORK = 7
EXIT_TIMEOUT = 8
EXIT_RESET = 9
EXIT_FILE = 10
EXIT_TRANSFER = 11
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line asks for something impossible (exit status 2)."""


class LocalFileError(Exception):
    """A local file cannot be read or written (exit status 10)."""


class MissingExtraError(Exception):
    """What the command needs is in an extra that is not installed (exit status 6, as for
    a scheme whose transport is missing); the message names the extra."""


def response_status(code: int) -> int:
    """0 for 2.xx, 4 for 4.xx, 5 for 5.xx and for a response class CoAP does not define
    (3.xx; an answer in a reserved class, 1.xx, 6.xx or 7.xx, never becomes a response:
    the request fails with ReservedCodeResponse, which :func:`exit_status` makes 5 too)."""
    if 64 <= code < 96:
        return EXIT_OK
    if 128 <= code < 160:
        return EXIT_CLIENT_ERROR
    return EXIT_SERVER_ERROR


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit status for an exception that ended a command, and the line to print."""
    message = str(exc).strip() or type(exc).__name__
    hint = getattr(exc, "hint", None)
    if isinstance(exc, UsageError):
        return EXIT_USAGE, message
    if isinstance(exc, LocalFileError):
        return EXIT_FILE, message
    if isinstance(exc, MissingExtraError):
        return EXIT_BAD_URI, message
    oscore = _oscore_status(exc)
    if oscore is not None:
        return oscore, f"{message}\n{hint}" if hint else message
    if isinstance(exc, UriError):
        return EXIT_BAD_URI, f"bad URI: {message}"
    if isinstance(exc, ResetByPeer):
        status = EXIT_RESET
    elif isinstance(exc, RequestTimeout | TimeoutError | asyncio.TimeoutError):
        status = EXIT_TIMEOUT
        if not isinstance(exc, RequestTimeout):
            message = "timed out"
    elif isinstance(exc, NetworkError):
        status = EXIT_NETWORK
    elif isinstance(exc, TransferError):
        status = EXIT_TRANSFER
        message = f"block-wise transfer failed: {message}"
    elif isinstance(exc, ReservedCodeResponse):  # a code of no known class: as 3.xx is
        status = EXIT_SERVER_ERROR
    elif isinstance(exc, BadResponse):
        status = EXIT_MALFORMED
    elif isinstance(exc, CoapError):
        status = EXIT_INTERNAL
    else:
        return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {message} (run with -v)"
    if hint:
        message = f"{message}; {hint}"
    return status, message


def _oscore_status(exc: BaseException) -> int | None:
    """An OSCORE failure's status: 4 when the server refused the protected request (its
    4.01, 4.00 or 4.02), 7 when its answer failed verification here."""
    from coapkit.oscore.errors import OscoreError, PeerRejected

    if isinstance(exc, PeerRejected):
        return EXIT_CLIENT_ERROR
    if isinstance(exc, OscoreError):
        return EXIT_NETWORK
    return None
