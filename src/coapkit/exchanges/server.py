"""The server side of exchanges: checking a request's options and answering with its token.

RFC 7252 §5.4.1 and §5.4.5: an option this endpoint does not understand, one
whose length is outside its registered bounds, and a repeated occurrence of a
non-repeatable option are all "unrecognised".  Critical ones make a CON
request fail with 4.02 (Bad Option) and a NON request be rejected (RST);
elective ones are removed before the application sees the request.
"""

from __future__ import annotations

from typing import Any

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import (
    REGISTRY,
    OptionBounds,
    OptionNumber,
    is_critical,
    option_name,
    within_bounds,
)
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import EncodeError
from coapkit.exchanges.events import Diagnostic, EndpointEvent, IncomingRequest, RequestRefused
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import Inbound, Outgoing
from coapkit.reliability import Datagrams, ReliabilityLayer

N = OptionNumber

#: Options the coapkit stack acts on.  OSCORE, EDHOC and Q-Block are registered but
#: not implemented, so they are not understood: being critical, a request with one
#: gets 4.02 and a response with one is rejected by the client.
UNDERSTOOD_OPTIONS: frozenset[int] = frozenset(
    {
        N.IF_MATCH,
        N.URI_HOST,
        N.ETAG,
        N.IF_NONE_MATCH,
        N.OBSERVE,
        N.URI_PORT,
        N.LOCATION_PATH,
        N.URI_PATH,
        N.CONTENT_FORMAT,
        N.MAX_AGE,
        N.URI_QUERY,
        N.HOP_LIMIT,
        N.ACCEPT,
        N.LOCATION_QUERY,
        N.BLOCK2,
        N.BLOCK1,
        N.SIZE2,
        N.PROXY_URI,
        N.PROXY_SCHEME,
        N.SIZE1,
        N.ECHO,
        N.NO_RESPONSE,
        N.REQUEST_TAG,
    }
)


def unrecognised_options(options: Options, understood: frozenset[int]) -> list[int]:
    """Indexes into ``options.items`` of the occurrences to treat as unrecognised."""
    bad: list[int] = []
    previous = -1
    for index, (number, value) in enumerate(options.items):
        spec = REGISTRY.get(number)
        if (
            spec is None
            or number not in understood
            or not spec.min_length <= len(value) <= spec.max_length
            or (number == previous and not spec.repeatable)
        ):
            bad.append(index)
        previous = number
    return bad


#: How many option names a 4.02 diagnostic lists (RFC 7252 §5.5.2: brief); a request with
#: a hundred unknown critical options must not make the answer too large to send.
_MAX_NAMES = 3


def _names(numbers: list[int]) -> str:
    names = sorted({option_name(n) for n in numbers})
    if len(names) <= _MAX_NAMES:
        return ", ".join(names)
    return ", ".join(names[:_MAX_NAMES]) + f" and {len(names) - _MAX_NAMES} more"


class ServerExchanges:
    """Hands checked requests up and sends responses back with the request's token."""

    def __init__(
        self, messaging: ReliabilityLayer, understood: frozenset[int] = UNDERSTOOD_OPTIONS
    ) -> None:
        self.messaging = messaging
        self.understood = understood
        #: number -> (min length, max length, repeatable) of every understood option
        self.option_bounds: OptionBounds = {
            number: (spec.min_length, spec.max_length, spec.repeatable)
            for number in understood
            if (spec := REGISTRY.get(number)) is not None
        }

    def request_received(
        self, message: Message, inbound: Inbound, now: float, out: Datagrams
    ) -> list[EndpointEvent]:
        items = message.options.items
        understood = self.understood
        # Fast path: every option understood, of a valid length, none repeated wrongly.
        if not within_bounds(items, self.option_bounds):
            bad = unrecognised_options(message.options, understood)
            critical = [items[i][0] for i in bad if is_critical(items[i][0])]
            if critical:
                reason = "unrecognised critical option: " + _names(critical)
                if inbound.mtype is MessageType.CON:
                    response = _make(
                        MessageType.ACK,
                        Code.BAD_OPTION,
                        0,
                        message.token,
                        Options(),
                        reason.encode(),
                    )
                    try:
                        self.messaging.respond(inbound, response, now, out)
                    except EncodeError:  # a very small max_message_size: no diagnostic
                        response = response.replace(payload=b"")
                        self.messaging.respond(inbound, response, now, out)
                    return [RequestRefused(inbound, response), Diagnostic(inbound.remote, reason)]
                self.messaging.reject(inbound, out)
                return [Diagnostic(inbound.remote, reason)]
            if bad:
                drop = set(bad)
                kept = tuple(item for i, item in enumerate(items) if i not in drop)
                message = _make(
                    message.mtype,
                    message.code,
                    message.mid,
                    message.token,
                    Options._trusted(kept),
                    message.payload,
                )
        return [IncomingRequest(message, inbound.remote, inbound)]

    def respond(
        self,
        inbound: Inbound,
        response: Message,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        owner: Any = None,
    ) -> Outgoing | None:
        token = inbound.message.token
        if response.token != token:
            response = _make(
                response.mtype, response.code, 0, token, response.options, response.payload
            )
        return self.messaging.respond(
            inbound, response, now, out, mtype=mtype, params=transmission, owner=owner
        )
