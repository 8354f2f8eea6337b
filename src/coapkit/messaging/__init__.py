"""The RFC 7252 message layer: types, message IDs, retransmission, deduplication (sans I/O)."""

from coapkit.messaging.congestion import CoCoA, CongestionControl, FixedTimers
from coapkit.messaging.events import (
    DeliveryFailed,
    EmptyAckReceived,
    MessageIgnored,
    MessagingEvent,
    PeerFailed,
    RequestReceived,
    ResetReceived,
    ResponseReceived,
)
from coapkit.messaging.layer import MessageLayer, MessagingConfig
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.records import Inbound, InboundState, Outgoing, OutgoingState, Remote
from coapkit.messaging.stats import MessagingStats, PeerStatistics

__all__ = [
    "DEFAULT_PARAMETERS",
    "CoCoA",
    "CongestionControl",
    "DeliveryFailed",
    "EmptyAckReceived",
    "FixedTimers",
    "Inbound",
    "InboundState",
    "MessageIgnored",
    "MessageLayer",
    "MessagingConfig",
    "MessagingEvent",
    "MessagingStats",
    "Outgoing",
    "OutgoingState",
    "PeerFailed",
    "PeerStatistics",
    "Remote",
    "RequestReceived",
    "ResetReceived",
    "ResponseReceived",
    "TransmissionParameters",
]
