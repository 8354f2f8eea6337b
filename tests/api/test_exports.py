"""What a program imports from ``coapkit`` itself: the names in ``__all__`` are there."""

from __future__ import annotations

import subprocess
import sys

import pytest

import coapkit
from coapkit import errors

#: the exceptions a program catches (client side) or raises (server side)
USER_ERRORS = [
    "CoapError",
    "RequestError",
    "RequestTimeout",
    "RetransmissionsExceeded",
    "ResetByPeer",
    "NetworkError",
    "DtlsError",
    "ErrorResponse",
    "TransferError",
    "BadResponse",
    "RequestCancelled",
    "BacklogFull",
    "NotStarted",
    "UriError",
    "OptionValueError",
    "RespondWith",
    "BadRequest",
]


@pytest.mark.parametrize("name", USER_ERRORS)
def test_the_errors_a_user_handles_come_from_coapkit(name: str) -> None:
    assert name in coapkit.__all__
    assert getattr(coapkit, name) is getattr(errors, name)


def test_every_name_in_all_is_importable() -> None:
    for name in coapkit.__all__:
        assert getattr(coapkit, name) is not None, name


def test_import_coapkit_stays_light() -> None:
    """The errors come with ``import coapkit``; asyncio still only with Client or Server."""
    code = (
        "import sys, coapkit; from coapkit import RequestTimeout, RespondWith, BadRequest; "
        "print('asyncio' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
