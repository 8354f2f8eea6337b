"""The CoAP wire format: messages, options, codes, content formats, URIs and link format.

Pure functions and values only; no I/O, no clock (docs/architecture.md rule 1).
"""

from coapkit.codec.codes import Code, code_name, format_code
from coapkit.codec.message import Message, decode, encode
from coapkit.codec.option_registry import OptionFormat, OptionNumber, OptionSpec, option_name
from coapkit.codec.options import BlockValue, Options
from coapkit.codec.types import ACK, CON, NON, RST, MessageType

__all__ = [
    "ACK",
    "CON",
    "NON",
    "RST",
    "BlockValue",
    "Code",
    "Message",
    "MessageType",
    "OptionFormat",
    "OptionNumber",
    "OptionSpec",
    "Options",
    "code_name",
    "decode",
    "encode",
    "format_code",
    "option_name",
]
