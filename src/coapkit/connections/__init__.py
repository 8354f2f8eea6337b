"""CoAP over reliable transports (RFC 8323): the connection layer and its signals, sans I/O.

The connection layer stands where the message layer stands for UDP: under
the exchanges, block-wise and Observe layers (docs/architecture.md).
"""

from coapkit.connections.layer import (
    CloseConnection,
    ConnectionLayer,
    ConnectionReady,
    IdleConnection,
    StreamConfig,
)

__all__ = [
    "CloseConnection",
    "ConnectionLayer",
    "ConnectionReady",
    "IdleConnection",
    "StreamConfig",
]
