"""Test CoAP code deterministically: virtual time, and a seeded, lossy simulated network.

The sans-I/O core takes the time as an argument and returns what to send, so
a whole network of CoAP endpoints can run in virtual time, in milliseconds,
with per-link latency, jitter (reordering), loss and duplication, and the same
seed always gives the same trace.  Two ways to use it:

* the real :class:`~coapkit.Client` and :class:`~coapkit.Server` on a
  :class:`VirtualNetwork`, run by :func:`run` (or any
  :class:`VirtualEventLoop`): an application's tests read like the
  application, ``async def`` handlers, Observe and block-wise included, and
  a 93 s retransmission timeout passes in microseconds;
* sans-I/O nodes on a :class:`SimulatedNetwork`, stepped by the test:
  :func:`serve_site` puts your :class:`~coapkit.resources.site.Site` on a
  simulated :class:`EndpointNode`.

The guide "Testing your CoAP application" in the documentation walks through both.
"""

from coapkit.testing.clock import VirtualClock
from coapkit.testing.loop import VirtualEventLoop, VirtualTimeDeadlock, run
from coapkit.testing.network import (
    EndpointNode,
    LinkConditions,
    MessageLayerNode,
    SimNode,
    SimulatedNetwork,
    TraceEntry,
    serve_site,
)
from coapkit.testing.virtual import VirtualNetwork, VirtualTransport

__all__ = [
    "EndpointNode",
    "LinkConditions",
    "MessageLayerNode",
    "SimNode",
    "SimulatedNetwork",
    "TraceEntry",
    "VirtualClock",
    "VirtualEventLoop",
    "VirtualNetwork",
    "VirtualTimeDeadlock",
    "VirtualTransport",
    "run",
    "serve_site",
]
