"""coapkit: CoAP (RFC 7252) for Python.

The sans-I/O core (codec, messaging, exchanges, ...) is usable on its own; the
asyncio client and server sit on top of it.  The names most programs need are
here: :class:`Client`, :class:`Server`, :class:`Resource`, :class:`Request`,
:class:`Response`, :class:`Site`, the message values and :class:`Code`, and the
exceptions a program catches or raises (:class:`RequestTimeout`,
:class:`ErrorResponse`, :class:`RespondWith`, :class:`BadRequest`...; all in
:mod:`coapkit.errors`).
:class:`Client` and :class:`Server` (and so asyncio) are imported on first
use, so ``import coapkit`` stays light.
"""

from typing import TYPE_CHECKING, Any

from coapkit.address import Address
from coapkit.codec import (
    ACK,
    CON,
    NON,
    RST,
    BlockValue,
    Code,
    Message,
    MessageType,
    OptionNumber,
    Options,
)
from coapkit.errors import (
    BacklogFull,
    BadRequest,
    BadResponse,
    CoapError,
    DtlsError,
    ErrorResponse,
    NetworkError,
    NotStarted,
    OptionValueError,
    RequestCancelled,
    RequestError,
    RequestTimeout,
    ResetByPeer,
    RespondWith,
    RetransmissionsExceeded,
    TransferError,
    UriError,
)
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.resources import Request, Resource, Response, Site

if TYPE_CHECKING:
    from coapkit.client import Client
    from coapkit.server import Server

__version__ = "0.1.0.dev0"

__all__ = [
    "ACK",
    "CON",
    "NON",
    "RST",
    "Address",
    "BacklogFull",
    "BadRequest",
    "BadResponse",
    "BlockValue",
    "Client",
    "CoapError",
    "Code",
    "DtlsError",
    "ErrorResponse",
    "Message",
    "MessageType",
    "NetworkError",
    "NotStarted",
    "OptionNumber",
    "OptionValueError",
    "Options",
    "Request",
    "RequestCancelled",
    "RequestError",
    "RequestTimeout",
    "ResetByPeer",
    "Resource",
    "RespondWith",
    "Response",
    "RetransmissionsExceeded",
    "Server",
    "Site",
    "TransferError",
    "TransmissionParameters",
    "UriError",
    "__version__",
]

_LAZY = {"Client": "coapkit.client", "Server": "coapkit.server"}


if not TYPE_CHECKING:
    # Hidden from type checkers: a module __getattr__ would make every name importable
    # from coapkit as far as they can tell, typos included (``from coapkit import Clinet``).

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'coapkit' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
