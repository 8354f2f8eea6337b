"""Extension modules for the optional compiled build (``COAPKIT_MYPYC=1``); see pyproject.toml.

Without ``COAPKIT_MYPYC=1`` there are none and the package is pure Python.  The modules
compiled are those every datagram passes through: the codec, the message layer, the
exchange layer (both halves) and the client's block-wise layer, the endpoint, the asyncio
driver and the UDP transport.  The resource layer (Site, Request, Response) and the
Client class stay Python: compiled, the resource layer saves little (about 0.3 us of 4.4
per request) and its public types would behave differently at the edges (IntEnum codes,
error messages for wrong argument types).  Some modules cannot be compiled as they are
(codec/uri has surrogate literals, runtime/entropy needs weak references, the event
dataclasses name types imported only for type checking).
"""

import os

from setuptools import setup

COMPILED = [
    "codec/codes",
    "codec/message",
    "codec/option_registry",
    "codec/options",
    "endpoint",
    "exchanges/server",
    "exchanges/client",
    "exchanges/tokens",
    "blockwise/client",
    "messaging/addresses",
    "messaging/dedup",
    "messaging/layer",
    "messaging/message_ids",
    "messaging/parameters",
    "messaging/peers",
    "messaging/records",
    "messaging/stats",
    "runtime/driver",
    "transports/udp",
]

ext_modules = []
if os.environ.get("COAPKIT_MYPYC") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(
        [f"src/coapkit/{name}.py" for name in COMPILED], opt_level="3", debug_level="0"
    )

setup(ext_modules=ext_modules)
