"""Stateless cookies for the DTLS cookie exchange (RFC 6347 §4.2.1).

Theory of operation
-------------------
A server must not keep state for a source that has not shown it receives
at its address: a ClientHello is answered with a HelloVerifyRequest carrying
a cookie, and only a ClientHello that returns a valid cookie starts a
handshake.  The cookie is §4.2.1's suggestion::

    Cookie = window || HMAC-SHA256(key(window), client address || ClientHello parameters)[:16]

``window`` counts ``lifetime`` periods of the endpoint's clock; the key of a
window is derived from one secret drawn at construction (from the injected
randomness, docs/architecture.md rule 3), so nothing is stored per window or
per source, and a cookie is good for the window it was made in and the next
(one to two lifetimes).  The parameters are those a client repeats unchanged
in its second ClientHello (version, random, session ID, cipher suites,
compression methods, extensions), so a cookie cannot be carried over to
another hello.  Checking costs one HMAC, whether the cookie is good or not.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Hashable

from coapkit.dtls.records import ClientHello

COOKIE_MAC_LENGTH = 16


class CookieJar:
    """Makes and checks cookies; keeps one secret and nothing per source."""

    __slots__ = ("_keys", "_secret", "lifetime")

    def __init__(self, secret: bytes, lifetime: float = 60.0) -> None:
        if len(secret) < 16:
            raise ValueError("a cookie secret needs at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("the cookie lifetime must be positive")
        self._secret = secret
        self.lifetime = lifetime
        #: the keys of the two newest windows (window -> key)
        self._keys: dict[int, bytes] = {}

    def _key(self, window: int) -> bytes:
        key = self._keys.get(window)
        if key is None:
            key = hmac.new(self._secret, window.to_bytes(8, "big", signed=True), "sha256").digest()
            if len(self._keys) >= 2:
                del self._keys[min(self._keys)]
            self._keys[window] = key
        return key

    def _window(self, now: float) -> int:
        return math.floor(now / self.lifetime)

    def _mac(self, window: int, remote: Hashable, hello: ClientHello) -> bytes:
        material = b"".join(
            (
                repr(remote).encode(),
                b"\0",
                hello.client_version.to_bytes(2, "big"),
                hello.random,
                bytes([len(hello.session_id)]),
                hello.session_id,
                hello.parameters,
            )
        )
        digest = hmac.new(self._key(window), material, hashlib.sha256).digest()
        return digest[:COOKIE_MAC_LENGTH]

    def make(self, remote: Hashable, hello: ClientHello, now: float) -> bytes:
        """The cookie for ``hello`` from ``remote``, now."""
        window = self._window(now)
        return bytes([window & 0xFF]) + self._mac(window, remote, hello)

    def check(self, remote: Hashable, hello: ClientHello, now: float) -> bool:
        """Whether ``hello`` returns a cookie made for it, for ``remote``, in this window or
        the one before."""
        cookie = hello.cookie
        if len(cookie) != 1 + COOKIE_MAC_LENGTH:
            return False
        window = self._window(now)
        for candidate in (window, window - 1):
            if cookie[0] == candidate & 0xFF:
                return hmac.compare_digest(cookie[1:], self._mac(candidate, remote, hello))
        return False
