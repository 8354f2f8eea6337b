"""Forwarding a request: what goes upstream, what comes back down (RFC 7252 §5.7, RFC 8768).

* **Options** (§5.7.1-§5.7.2): the target travels in the URI of the upstream
  request, so Proxy-Uri, Proxy-Scheme and the Uri-* options are not copied;
  the options of one hop (Observe, which the proxy handles with its shared
  observations; Block1, Block2, Size1, Size2, Q-Block1, Q-Block2 and
  Request-Tag, since the proxy reassembles bodies both ways; Echo and
  No-Response, answered by this hop) are not either.  Every other option is
  forwarded as it came.  An unknown *unsafe* option cannot be (§5.7.1): the
  request is answered 5.02 Bad Gateway.  Served by a coapkit
  :class:`~coapkit.server.Server`, though, a request reaches the proxy only
  with the options its endpoint knows: as for every server, an unknown
  critical option is answered 4.02 and an unknown elective one is dropped
  before any resource sees it (so an unknown safe-to-forward option is not
  forwarded either; RFC 7252 §5.7.1 would forward it).
* **Hop-Limit** (RFC 8768 §3): a request is forwarded with one less than it
  came with, one without it as if it had come with :data:`DEFAULT_HOP_LIMIT`
  (16: forwarded with 15, as libcoap does), and one that arrives with 1 is not
  forwarded: it is answered 5.08 Hop Limit Reached, with the proxy's name in
  the diagnostic payload.  A proxy relaying a 5.08 adds its own name
  to the payload (``proxy-a, proxy-b``), so that the loop can be read there.
  Hop-Limit 0 is malformed (4.00).
* **Gateway errors** (§5.9.3): 5.02 Bad Gateway when the upstream answered
  with something unusable or could not be reached, 5.04 Gateway Timeout when
  it did not answer in time, 5.05 Proxying Not Supported for a target the
  proxy does not or may not reach.  They carry Max-Age 0 so that no cache
  keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from coapkit.codec.codes import Code
from coapkit.codec.option_registry import OptionNumber, is_unsafe, option_spec
from coapkit.codec.options import Options
from coapkit.errors import BadRequest, OptionValueError
from coapkit.proxy.rules import HttpUri, Target
from coapkit.resources.request import Request
from coapkit.resources.response import Response

__all__ = [
    "DEFAULT_HOP_LIMIT",
    "Forwarding",
    "downstream_response",
    "gateway_error",
    "hop_limit",
    "relay_hop_limit_reached",
    "upstream_options",
]

N = OptionNumber

#: The Hop-Limit a proxy gives a request that has none (RFC 8768 §3).
DEFAULT_HOP_LIMIT = 16

#: The longest 5.08 diagnostic a relaying proxy extends (a loop's names, comma-separated).
MAX_HOP_DIAGNOSTIC = 512

#: Request options that never go upstream (see the module doc).
_NOT_FORWARDED = (
    N.URI_HOST,
    N.URI_PORT,
    N.URI_PATH,
    N.URI_QUERY,
    N.PROXY_URI,
    N.PROXY_SCHEME,
    N.OBSERVE,
    N.BLOCK1,
    N.BLOCK2,
    N.SIZE1,
    N.SIZE2,
    N.Q_BLOCK1,
    N.Q_BLOCK2,
    N.REQUEST_TAG,
    N.ECHO,
    N.NO_RESPONSE,
    N.HOP_LIMIT,
)
_NOT_FORWARDED_SET = frozenset(_NOT_FORWARDED)

#: Response options of one hop, not passed down (the proxy's server adds its own).
_HOP_RESPONSE_OPTIONS = (
    N.OBSERVE,
    N.BLOCK1,
    N.BLOCK2,
    N.SIZE1,
    N.SIZE2,
    N.Q_BLOCK1,
    N.Q_BLOCK2,
    N.REQUEST_TAG,
    N.ECHO,
)


@dataclass(frozen=True, slots=True)
class Forwarding:
    """A request about to be forwarded: what hooks see and may change.

    ``request`` is the request as received; ``target`` where it goes (a
    :class:`~coapkit.codec.uri.CoapUri`, or an :class:`~coapkit.proxy.rules.HttpUri`);
    ``options`` and ``payload`` what goes with it (the target's Uri-* options are added
    from ``target`` when it is sent); ``reverse`` whether a reverse rule (rather than
    Proxy-Uri or Proxy-Scheme) chose the target.  Change one with :meth:`replace`.
    """

    request: Request
    target: Target
    options: Options
    payload: bytes
    reverse: bool = False

    @property
    def method(self) -> int:
        return self.request.message.code

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port

    @property
    def scheme(self) -> str:
        return self.target.scheme

    @property
    def is_http(self) -> bool:
        return isinstance(self.target, HttpUri)

    def replace(self, **changes: Any) -> Forwarding:
        """A copy with some fields changed (``target``, ``options``, ``payload``)."""
        return replace(self, **changes)


def hop_limit(options: Options) -> int | None:
    """The request's Hop-Limit; None without one; BadRequest (4.00) for 0 or a bad value."""
    try:
        value = options.hop_limit
    except OptionValueError as exc:
        raise BadRequest(exc.reason) from None
    if value == 0:
        raise BadRequest("Hop-Limit 0 is not a valid value (RFC 8768 §3)")
    return value


def upstream_options(options: Options, hops: int) -> Options | Response:
    """The options to forward, Hop-Limit ``hops`` among them; a 5.02 Response when an
    unknown unsafe option forbids forwarding (RFC 7252 §5.7.1)."""
    kept = []
    for number, value in options.items:
        if number in _NOT_FORWARDED_SET:
            continue
        if is_unsafe(number) and option_spec(number) is None:
            return gateway_error(
                Code.BAD_GATEWAY, f"option {number} is unsafe to forward and unknown here"
            )
        kept.append((number, value))
    kept.append((N.HOP_LIMIT, bytes([hops])))
    return Options(kept)


def gateway_error(code: int, diagnostic: str) -> Response:
    """A 5.0x the proxy makes itself: a diagnostic, and Max-Age 0 so that no cache keeps it."""
    return Response(code, diagnostic.encode("utf-8")[:1024], max_age=0)


def hop_limit_reached(name: str) -> Response:
    """5.08 Hop Limit Reached (RFC 8768 §3), naming this proxy."""
    return gateway_error(Code.HOP_LIMIT_REACHED, name)


def relay_hop_limit_reached(response: Response, name: str) -> Response:
    """A 5.08 from upstream with this proxy's name added to its list (RFC 8768 §3)."""
    payload = response.payload
    extended = payload + b", " + name.encode("utf-8") if payload else name.encode("utf-8")
    if len(extended) > MAX_HOP_DIAGNOSTIC:
        return response
    return response.replace(payload=extended)


def downstream_response(response: Response) -> Response:
    """An upstream response without the options of its hop (see the module doc)."""
    options = response.options
    for number, _ in options.items:
        if number in _HOP_RESPONSE_OPTIONS:
            return response.replace(options=options.remove(*_HOP_RESPONSE_OPTIONS), remote=None)
    return response
