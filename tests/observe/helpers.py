"""Observe (RFC 7641) on the simulated network, in virtual time.

:class:`SimServer` is a sans-I/O :class:`~coapkit.endpoint.Endpoint` serving
a :class:`~coapkit.resources.site.Site` of plain-function resources, glued
exactly as the asyncio :class:`~coapkit.server.Server` glues them: the site
renders, ``endpoint.observe.on_response`` registers, ``endpoint.observe.updated``
plus ``endpoint.notify`` notify.  :class:`SimClient` is a sans-I/O client
endpoint whose observations are ``endpoint.request(..., keep_open=True)``.
Nothing here sleeps: every action is scheduled with ``network.call_at``.
"""

from __future__ import annotations

import random
from typing import Any

from coapkit.blockwise.client import Transfer
from coapkit.codec.codes import Code
from coapkit.codec.message import Message, decode
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.messaging.records import Remote
from coapkit.observe.registry import ObserveRegistry
from coapkit.resources import Resource, Response, Site
from coapkit.resources.request import Request
from coapkit.testing import EndpointNode, SimulatedNetwork

CON = MessageType.CON
NON = MessageType.NON
ACK = MessageType.ACK
RST = MessageType.RST

SERVER: Remote = ("192.0.2.100", 5683)


def client_address(index: int) -> Remote:
    return (f"198.51.100.{index + 1}", 40000 + index)


class State(Resource):
    """An observable resource whose representation is ``str(value)``."""

    observable = True

    def __init__(self, value: int = 0, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.value = value
        self.max_age: int | None = None
        self.code: int = Code.CONTENT
        self.body: bytes | None = None  #: a fixed body instead of str(value)

    def get(self, request: Request) -> Response:
        if self.code != Code.CONTENT:
            return Response(self.code, b"gone")
        payload = self.body if self.body is not None else str(self.value).encode()
        if self.max_age is not None:
            return Response(payload=payload, max_age=self.max_age)
        return Response(payload=payload)

    fetch = get


class SimServer:
    """An observable site on the simulated network (the asyncio Server's glue, in virtual time)."""

    def __init__(
        self,
        network: SimulatedNetwork,
        site: Site,
        *,
        address: Remote = SERVER,
        observers: ObserveRegistry | None = None,
        seed: int = 100,
        response_delay: float = 0.0,
        **endpoint_options: Any,
    ) -> None:
        self.network = network
        self.site = site
        self.address = address
        self.response_delay = response_delay  #: answer requests this much later (separately)
        self.endpoint = Endpoint(
            rng=random.Random(seed),
            observers=observers if observers is not None else ObserveRegistry(),
            **endpoint_options,
        )
        self.node = EndpointNode(self.endpoint, self._serve)
        network.attach(address, self.node)

    @property
    def registry(self) -> ObserveRegistry:
        return self.endpoint.observe.registry

    def _serve(self, node: EndpointNode, event: Any, now: float) -> Message | None:
        if self.response_delay:

            def later(now: float) -> list[tuple[bytes, Remote]]:
                return self.node.respond(event.handle, self._render(event, now), now)

            self.network.call_at(now + self.response_delay, self.address, later)
            return None
        return self._render(event, now)

    def _render(self, event: Any, now: float) -> Message:
        request = Request(event.request, event.remote, event.handle)
        response = self.site.dispatch(request)
        assert isinstance(response, Response)
        message = response.to_message()
        if OptionNumber.OBSERVE in event.request.options:
            found = self.site.match(request.path)
            key = found[0] if found is not None and found[0].observable else None
            message = self.endpoint.observe.on_response(
                key, event.request, event.remote, message, now
            )
        return message

    def notify_now(self, resource: Resource, now: float) -> list[tuple[bytes, Remote]]:
        """What ``resource.updated()`` makes the Server do, at ``now``."""
        sequence, observers = self.endpoint.observe.updated(resource)
        datagrams: list[tuple[bytes, Remote]] = []
        for observer in observers:
            response = self.site.dispatch(Request(observer.request, observer.remote, None))
            assert isinstance(response, Response)
            output = self.endpoint.notify(
                observer,
                response.to_message(),
                now,
                sequence=sequence,
                mtype=resource.notification_type,
                con_every=resource.con_every,
            )
            datagrams.extend(self.node._consume(output, now))
        return datagrams

    def update(self, resource: State, at: float, value: int | None = None) -> None:
        """At ``at``: set the resource's value (default: one more) and notify."""

        def action(now: float) -> list[tuple[bytes, Remote]]:
            resource.value = resource.value + 1 if value is None else value
            return self.notify_now(resource, now)

        self.network.call_at(at, self.address, action)

    def events_of(self, kind: type[Any]) -> list[Any]:
        return self.node.events_of(kind)


class Observation:
    """One observation a :class:`SimClient` started (``transfer`` is set when it starts)."""

    def __init__(self, node: EndpointNode) -> None:
        self.node = node
        self.transfer: Transfer | None = None

    @property
    def events(self) -> list[tuple[float, Any]]:
        """``(time, event)`` for every application event of this observation."""
        if self.transfer is None:
            return []
        return [(t, e) for t, e in self.node.events if getattr(e, "handle", None) is self.transfer]

    @property
    def times(self) -> list[float]:
        return [t for t, e in self.events if isinstance(e, ResponseEvent)]

    @property
    def responses(self) -> list[Message]:
        return [e.response for _, e in self.events if isinstance(e, ResponseEvent)]

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.responses]

    @property
    def sequences(self) -> list[int | None]:
        return [m.options.observe for m in self.responses]

    @property
    def ended(self) -> bool:
        return any(
            isinstance(e, RequestFailed) or (isinstance(e, ResponseEvent) and e.final)
            for _, e in self.events
        )

    @property
    def failures(self) -> list[RequestFailed]:
        return [e for _, e in self.events if isinstance(e, RequestFailed)]


class SimClient:
    """A sans-I/O client endpoint on the simulated network."""

    def __init__(
        self,
        network: SimulatedNetwork,
        address: Remote,
        *,
        seed: int = 1,
        server: Remote = SERVER,
        **endpoint_options: Any,
    ) -> None:
        self.network = network
        self.address = address
        self.server = server
        self.endpoint = Endpoint(rng=random.Random(seed), **endpoint_options)
        self.node = EndpointNode(self.endpoint)
        network.attach(address, self.node)

    def observe(
        self,
        path: str = "state",
        *,
        at: float = 0.0,
        method: int = Code.GET,
        mtype: MessageType = CON,
        payload: bytes = b"",
        timeout: float | None = None,
        **options: Any,
    ) -> Observation:
        """Register at ``at``; ``timeout`` bounds each registration exchange."""
        observation = Observation(self.node)
        message = Message(
            mtype,
            method,
            options=Options.build(uri_path=path.split("/"), observe=0, **options),
            payload=payload,
        )

        def start(now: float) -> list[tuple[bytes, Remote]]:
            transfer, datagrams = self.node.request(
                message, self.server, now, keep_open=True, timeout=timeout
            )
            observation.transfer = transfer
            return list(datagrams)

        self.network.call_at(at, self.address, start)
        return observation

    def cancel(self, observation: Observation, at: float) -> None:
        def action(now: float) -> list[tuple[bytes, Remote]]:
            assert observation.transfer is not None
            return self.node._consume(self.endpoint.cancel(observation.transfer, now), now)

        self.network.call_at(at, self.address, action)


def sent(network: SimulatedNetwork, src: Remote, dst: Remote) -> list[tuple[float, Message]]:
    """Every datagram ``src`` put on the wire to ``dst``, decoded, with its time."""
    return [(e.time, decode(e.data)) for e in network.sent_between(src, dst)]


def notifications(
    network: SimulatedNetwork, src: Remote, dst: Remote
) -> list[tuple[float, Message]]:
    """The CON/NON responses ``src`` sent to ``dst`` (notifications and their endings)."""
    return [(t, m) for t, m in sent(network, src, dst) if m.mtype in (CON, NON) and m.code >= 64]


class ScriptedServer:
    """A server endpoint that answers registrations and sends notifications as told."""

    def __init__(
        self,
        network: SimulatedNetwork,
        *,
        sequence: int | None = 10,
        max_age: int | None = None,
        reject: bool = False,
        address: Remote = SERVER,
    ) -> None:
        self.network = network
        self.address = address
        self.sequence = sequence  #: the Observe value answered to registrations (None: none)
        self.max_age = max_age
        self.reject = reject
        self.endpoint = Endpoint(rng=random.Random(100))
        self.node = EndpointNode(self.endpoint, self._serve)
        network.attach(address, self.node)
        self.requests: list[tuple[float, Message]] = []
        self.remote: Remote | None = None
        self.token = b""

    def _serve(self, node: EndpointNode, event: Any, now: float) -> Message | None:
        self.requests.append((now, event.request))
        if self.reject:
            handle = event.handle
            self.network.call_at(
                now, self.address, lambda now: self.endpoint.reject(handle, now).datagrams
            )
            return None
        observe = event.request.options.observe
        if observe == 0:
            self.remote, self.token = event.remote, event.request.token
        values: dict[str, Any] = {}
        if observe == 0 and self.sequence is not None:
            values["observe"] = self.sequence
        if self.max_age is not None:
            values["max_age"] = self.max_age
        return Message(code=Code.CONTENT, options=Options.build(**values), payload=b"registered")

    def send(
        self,
        at: float,
        sequence: int | None,
        payload: bytes = b"",
        *,
        mtype: MessageType = NON,
        code: int = Code.CONTENT,
        copies: int = 1,
        **options: Any,
    ) -> None:
        """At ``at``: send a notification (``copies`` times, each with its own message ID)."""

        def action(now: float) -> list[tuple[bytes, Remote]]:
            assert self.remote is not None
            if sequence is not None:
                options["observe"] = sequence
                if self.sequence is not None:
                    self.sequence = sequence  # re-registrations get the latest state
            message = Message(
                mtype, code, token=self.token, options=Options.build(**options), payload=payload
            )
            datagrams: list[tuple[bytes, Remote]] = []
            for _ in range(copies):
                _, output = self.endpoint.send_separate(self.remote, message, now, mtype=mtype)
                datagrams.extend(output.datagrams)
            return datagrams

        self.network.call_at(at, self.address, action)
