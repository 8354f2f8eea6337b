"""Two sans-I/O endpoints joined by a simulated connection, in virtual time.

:class:`StreamPair` carries the bytes each endpoint's connection layer wants
sent to the other side, in order (a TCP stream, or WebSocket messages), and
acts on :class:`CloseConnection` as a runtime would: the connection is closed
on both sides.  The server side answers requests from a site (plain-function
handlers) the way the asyncio server does.  Nothing sleeps: ``advance`` moves
the virtual clock and runs the timers that come due.
"""

from __future__ import annotations

import random
from typing import Any

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.message import Message
from coapkit.connections import CloseConnection, ConnectionLayer, StreamConfig
from coapkit.endpoint import Endpoint, Output
from coapkit.errors import NetworkError
from coapkit.exchanges.events import IncomingRequest, RequestFailed, ResponseEvent
from coapkit.resources import Request, Site

CLIENT = ("192.0.2.1", 40001)  #: the client as the server sees it
SERVER = ("192.0.2.2", 5683)  #: the server as the client sees it


class StreamPair:
    def __init__(
        self,
        site: Site | None = None,
        *,
        client_config: StreamConfig | None = None,
        server_config: StreamConfig | None = None,
        websocket: bool = False,
        seed: int = 1,
        client_blockwise: BlockwiseConfig | None = None,
        server_blockwise: BlockwiseConfig | None = None,
    ) -> None:
        self.now = 0.0
        self.websocket = websocket
        self.client = Endpoint(
            rng=random.Random(seed),
            layer=ConnectionLayer(config=client_config),
            blockwise=client_blockwise,
        )
        self.server = Endpoint(
            rng=random.Random(seed + 1),
            layer=ConnectionLayer(config=server_config),
            blockwise=server_blockwise,
        )
        self.site = site or Site()
        self.events: dict[str, list[Any]] = {"client": [], "server": []}
        #: what went over the wire: (time, "client" or "server", bytes)
        self.wire: list[tuple[float, str, bytes]] = []
        self.closed: list[tuple[str, CloseConnection]] = []
        self.connected = False
        self.hold = False  #: while True, nothing is delivered (a stalled peer)

    # -- plumbing ---------------------------------------------------------------------

    def _other(self, side: str) -> tuple[Endpoint, Any, str]:
        if side == "client":
            return self.server, CLIENT, "server"
        return self.client, SERVER, "client"

    def take(self, side: str, output: Output) -> None:
        """Deliver ``output`` of ``side``'s endpoint and whatever it causes."""
        for data, _remote in output.datagrams:
            self.wire.append((self.now, side, data))
            if not self.connected or self.hold:
                continue
            endpoint, source, other = self._other(side)
            self.take(other, endpoint.datagram_received(data, source, self.now))
        for event in output.events:
            self.events[side].append(event)
            if isinstance(event, CloseConnection):
                self.closed.append((side, event))
                self.disconnect(f"closed by the {side}: {event.reason}")
            elif isinstance(event, IncomingRequest) and side == "server":
                self.answer(event)

    def answer(self, event: IncomingRequest) -> None:
        request = Request(event.request, event.remote, event.handle)
        response = self.site.dispatch(request)
        assert not hasattr(response, "__await__"), "use plain-function handlers here"
        message = response.to_message(event.request.token)  # type: ignore[union-attr]
        if event.request.options.observe is not None:
            resource = self.site.match(request.path)
            key = resource[0] if resource and resource[0].observable else None
            message = self.server.observe.on_response(
                key, event.request, event.remote, message, self.now
            )
        self.take("server", self.server.respond(event.handle, message, self.now))

    def connect(self) -> None:
        # Both ends exist before either CSM travels (as with a TCP handshake).
        client = self.client.connection_made(SERVER, self.now, websocket=self.websocket)
        server = self.server.connection_made(CLIENT, self.now, websocket=self.websocket)
        self.connected = True
        self.take("client", client)
        self.take("server", server)

    def disconnect(self, reason: str = "closed") -> None:
        if not self.connected:
            return
        self.connected = False
        error = NetworkError(reason)
        self.take("client", self.client.connection_lost(SERVER, error, self.now))
        self.take("server", self.server.connection_lost(CLIENT, error, self.now))

    def advance(self, seconds: float) -> None:
        """Move the virtual clock, running each endpoint's timers as they come due."""
        end = self.now + seconds
        while True:
            due = [
                (deadline, side, endpoint)
                for side, endpoint in (("client", self.client), ("server", self.server))
                if (deadline := endpoint.next_deadline()) is not None and deadline <= end
            ]
            if not due:
                break
            deadline, side, endpoint = min(due, key=lambda item: item[0])
            self.now = max(self.now, deadline)
            self.take(side, endpoint.handle_timeout(self.now))
        self.now = end

    # -- the client's side ------------------------------------------------------------------

    def request(self, message: Message, **kwargs: Any) -> Any:
        handle, output = self.client.request(message, SERVER, self.now, **kwargs)
        self.take("client", output)
        return handle

    def results(self, handle: Any) -> list[Any]:
        """The responses and failures of one request (progress events left out)."""
        return [
            e
            for e in self.events["client"]
            if isinstance(e, ResponseEvent | RequestFailed) and e.handle is handle
        ]

    def of(self, side: str, kind: type) -> list[Any]:
        return [e for e in self.events[side] if isinstance(e, kind)]
