"""The demo resources ``coapkit server`` serves without ``--plugtest``.

* ``/hello``: GET → 2.05 "Hello, CoAP!" (text/plain).
* ``/counter``: GET → the current value; POST → 2.04 and the value plus one.
* ``/time``: GET → the current UTC time, ISO 8601 (observable once Observe
  lands: the Observe work marks it ``observable`` and notifies every second).
* ``/echo``: PUT, POST and FETCH → 2.04 (2.05 for FETCH) with the request's
  payload and Content-Format.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from coapkit.codec.codes import Code
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site

__all__ = ["Counter", "demo_site"]


class Counter(Resource):
    """A number that POST increments."""

    rt = "counter"
    title = "A counter: GET reads it, POST increments it"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def get(self, request: Request) -> Response:
        return Response(Code.CONTENT, str(self.value))

    def post(self, request: Request) -> Response:
        self.value += 1
        return Response(Code.CHANGED, str(self.value))


class Time(Resource):
    """The current time; ``clock`` returns an aware datetime (injectable for tests)."""

    rt = "time"
    title = "The current time (UTC, ISO 8601)"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.clock = clock or (lambda: datetime.now(UTC))

    def get(self, request: Request) -> Response:
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        return Response(Code.CONTENT, now.isoformat().replace("+00:00", "Z"), max_age=1)


def demo_site() -> Site:
    """A fresh site with /hello, /counter, /time and /echo."""
    site = Site()

    @site.route("/hello", rt="greeting", title="Hello, CoAP!")
    def hello(request: Request) -> Response:
        return Response(Code.CONTENT, "Hello, CoAP!")

    site.add("/counter", Counter())
    site.add("/time", Time())

    @site.route("/echo", methods=("PUT", "POST", "FETCH"), title="Echoes the request payload")
    def echo(request: Request) -> Response:
        code = Code.CONTENT if request.method == Code.FETCH else Code.CHANGED
        return Response(code, request.payload, content_format=request.content_format)

    return site
