"""Shared helpers for the block-wise tests: two endpoints on the simulated network.

Everything runs in virtual time on :class:`~coapkit.testing.SimulatedNetwork`:
a client :class:`~coapkit.endpoint.Endpoint` and a server one, each wrapped in
an :class:`~coapkit.testing.EndpointNode`, with a server ``app`` that answers
every :class:`~coapkit.exchanges.events.IncomingRequest` and records it.
:class:`ScriptedPeer` stands in for a server whose answers a test spells out
byte for byte (a peer that behaves in ways a coapkit server never would).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from coapkit import Code, Message, MessageType, Options
from coapkit.blockwise.client import Transfer, TransferProgress
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import IncomingRequest, RequestFailed, ResponseEvent
from coapkit.messaging.records import Remote
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

CLIENT: Remote = ("192.0.2.1", 5683)
SERVER: Remote = ("192.0.2.2", 5683)

#: virtual time far beyond any transfer in these tests
FOREVER = 10_000_000.0

App = Callable[[EndpointNode, IncomingRequest, float], Message | None]


def body_of(size: int, seed: int = 0) -> bytes:
    """``size`` reproducible pseudo-random bytes (no repeating pattern hides a misplaced block)."""
    return random.Random(seed).randbytes(size)


def get(*path: str, **options: Any) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=list(path), **options))


def with_body(code: int, payload: bytes, *path: str, **options: Any) -> Message:
    return Message(
        code=code, options=Options.build(uri_path=list(path), **options), payload=payload
    )


class Pair:
    """A client and a server endpoint on one simulated network."""

    def __init__(
        self,
        app: App | None = None,
        *,
        seed: int = 1,
        loss: float = 0.0,
        conditions: LinkConditions | None = None,
        server_config: BlockwiseConfig | None = None,
        client_config: BlockwiseConfig | None = None,
        keep_trace: bool = True,
    ) -> None:
        self.network = SimulatedNetwork(
            seed=seed,
            conditions=conditions or LinkConditions(loss=loss),
            keep_trace=keep_trace,
        )
        self.requests: list[Message] = []  #: what the server application was handed
        self._raw_mid = 0
        self._app = app
        self.server = EndpointNode(
            Endpoint(rng=random.Random(seed + 1), blockwise=server_config), self._serve
        )
        self.client = EndpointNode(Endpoint(rng=random.Random(seed + 2), blockwise=client_config))
        self.network.attach(SERVER, self.server)
        self.network.attach(CLIENT, self.client)

    def _serve(self, node: EndpointNode, event: IncomingRequest, now: float) -> Message | None:
        self.requests.append(event.request)
        if self._app is None:
            return Message(code=Code.NOT_FOUND)
        return self._app(node, event, now)

    @property
    def blockwise(self) -> Any:
        """The server's :class:`~coapkit.blockwise.server.BlockwiseServer`."""
        return self.server.endpoint.blockwise

    def start(self, message: Message, at: float | None = None, **kwargs: Any) -> list[Transfer]:
        """Have the client send ``message`` at ``at`` (default: now); the handle appears in
        the returned list once sent."""
        box: list[Transfer] = []

        def send(now: float) -> list[tuple[bytes, Remote]]:
            handle, datagrams = self.client.request(message, SERVER, now, **kwargs)
            box.append(handle)
            return datagrams

        self.network.call_at(self.network.now if at is None else at, CLIENT, send)
        return box

    def run(self, limit: float = FOREVER) -> None:
        self.network.run_until_quiet(limit)

    def request(self, message: Message, **kwargs: Any) -> Any:
        """Send ``message`` and run until its final event (response or failure), which is
        returned; the network stops there (cached representations are still fresh)."""
        box = self.start(message, **kwargs)
        self.network.step()
        return self.wait(box[0])

    def wait(self, handle: Transfer) -> Any:
        """Run until ``handle`` has its final event and return it."""
        events = self.client.events
        seen = 0
        while True:
            for _, event in events[seen:]:
                if getattr(event, "handle", None) is handle and (
                    isinstance(event, RequestFailed)
                    or (isinstance(event, ResponseEvent) and event.final)
                ):
                    return self.final(handle)
            seen = len(events)
            assert self.network.step(), "the network went quiet before the request ended"

    def _finals(self, handle: Transfer) -> list[Any]:
        return [
            event
            for event in self.events(handle)
            if isinstance(event, RequestFailed)
            or (isinstance(event, ResponseEvent) and event.final)
        ]

    def final(self, handle: Transfer) -> Any:
        """The one final ResponseEvent or RequestFailed of ``handle``."""
        finals = self._finals(handle)
        assert len(finals) == 1, finals
        return finals[0]

    def events(self, handle: Transfer) -> list[Any]:
        return [
            event for _, event in self.client.events if getattr(event, "handle", None) is handle
        ]

    def progress(self, handle: Transfer) -> list[TransferProgress]:
        return [event for event in self.events(handle) if isinstance(event, TransferProgress)]

    def sent(self, src: Remote, dst: Remote) -> list[Message]:
        """Messages ``src`` put on the wire to ``dst`` (lost ones included), decoded."""
        return [Message.decode(entry.data) for entry in self.network.sent_between(src, dst)]

    def raw(self, message: Message) -> Message:
        """Hand ``message`` (a CON request, sent as it is: no block-wise client logic) to the
        server straight, with a fresh message ID and token; return its piggybacked answer."""
        self._raw_mid += 1
        request = Message(
            MessageType.CON,
            message.code,
            self._raw_mid,
            self._raw_mid.to_bytes(2, "big"),
            message.options,
            message.payload,
        )
        now = self.network.now
        [(data, _)] = self.server.datagram_received(request.encode(), CLIENT, now)
        return Message.decode(data)

    def client_requests(self) -> list[Message]:
        """Every request datagram the client sent, retransmissions included."""
        return [m for m in self.sent(CLIENT, SERVER) if m.code != 0 and m.code < 32]


Script = Callable[[Message], Message | None]


class ScriptedPeer:
    """A server that answers each request with what ``script(request)`` returns.

    The answer is piggybacked: an ACK with the request's message ID and token.
    ``None`` sends nothing.  Every request received is kept in :attr:`requests`.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Message] = []

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, multicast: bool = False
    ) -> list[tuple[bytes, Remote]]:
        request = Message.decode(data)
        if request.mtype is not MessageType.CON or request.code == 0:
            return []
        self.requests.append(request)
        answer = self.script(request)
        if answer is None:
            return []
        reply = Message(
            MessageType.ACK, answer.code, request.mid, request.token, answer.options, answer.payload
        )
        return [(reply.encode(), remote)]

    def handle_timeout(self, now: float) -> list[tuple[bytes, Remote]]:
        return []

    def next_deadline(self) -> float | None:
        return None


def scripted(script: Script, *, seed: int = 1, client_config: BlockwiseConfig | None = None):
    """A :class:`Pair` whose server is a :class:`ScriptedPeer`; returns ``(pair, peer)``."""
    pair = Pair(seed=seed, client_config=client_config)
    peer = ScriptedPeer(script)
    pair.network.attach(SERVER, peer)
    return pair, peer


def response(code: int, payload: bytes = b"", **options: Any) -> Message:
    return Message(code=code, options=Options.build(**options), payload=payload)
