"""Exchanges: tokens, matching responses to requests, request timeouts (sans I/O)."""

from coapkit.exchanges.client import ClientExchanges, ClientRequest
from coapkit.exchanges.events import (
    Diagnostic,
    EndpointEvent,
    IncomingRequest,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    RequestRefused,
    ResponseAcknowledged,
    ResponseDeliveryFailed,
    ResponseEvent,
    ResponseRejected,
)
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS, ServerExchanges
from coapkit.exchanges.tokens import TokenSource

__all__ = [
    "UNDERSTOOD_OPTIONS",
    "ClientExchanges",
    "ClientRequest",
    "Diagnostic",
    "EndpointEvent",
    "IncomingRequest",
    "PongReceived",
    "RequestAcknowledged",
    "RequestFailed",
    "RequestRefused",
    "ResponseAcknowledged",
    "ResponseDeliveryFailed",
    "ResponseEvent",
    "ResponseRejected",
    "ServerExchanges",
    "TokenSource",
]
