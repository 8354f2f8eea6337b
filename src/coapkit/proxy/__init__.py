"""Proxying: forward, reverse, cross-transport and HTTP<->CoAP, with a cache and shared
observations (RFC 7252 §5.6-§5.7, §10; RFC 7641 §5; RFC 8075; RFC 8768).

Built on the :class:`~coapkit.client.Client` and the
:class:`~coapkit.server.Server` coapkit already has:

* :class:`ProxySite` is a site, served by a ``Server`` on any transport: forward
  proxying (Proxy-Uri, Proxy-Scheme; off unless asked, narrowed by an allow
  list), reverse rules, a response cache (:mod:`coapkit.cache`), shared
  observations, hooks to authorise or rewrite a request;
* :class:`~coapkit.proxy.http.HttpCrossProxy` puts an HTTP server in front of
  it (the ``http`` extra: ``pip install 'coapkit[http]'``), with Server-Sent
  Events for observing.

The guide "Proxying" in the documentation walks through them.
"""

from coapkit.proxy.forwarding import DEFAULT_HOP_LIMIT, Forwarding
from coapkit.proxy.observations import ObservationHub, SharedObservation, Subscription
from coapkit.proxy.rules import AllowList, HttpUri, ReverseRule, parse_reverse_rule
from coapkit.proxy.site import AuthorizeHook, ProxyConfig, ProxySite, RewriteHook

__all__ = [
    "DEFAULT_HOP_LIMIT",
    "AllowList",
    "AuthorizeHook",
    "Forwarding",
    "HttpUri",
    "ObservationHub",
    "ProxyConfig",
    "ProxySite",
    "ReverseRule",
    "RewriteHook",
    "SharedObservation",
    "Subscription",
    "parse_reverse_rule",
]
