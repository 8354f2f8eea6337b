"""Server-side resources: requests, responses, resources and the site that routes between them.

RFC 7252 §5.8-5.10 (methods, response codes, options as a server uses
them), RFC 8132 (FETCH, PATCH, iPATCH) and RFC 6690 (``/.well-known/core``).
Sans-I/O like the rest of the core (docs/architecture.md rule 1): nothing here touches
a socket, a clock or an event loop.  Handlers may be coroutine functions;
:meth:`Site.dispatch` then returns an awaitable for the runtime to await.
"""

from coapkit.resources.request import Request
from coapkit.resources.resource import FunctionResource, Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site
from coapkit.resources.well_known import WellKnownCore

__all__ = ["FunctionResource", "Request", "Resource", "Response", "Site", "WellKnownCore"]
