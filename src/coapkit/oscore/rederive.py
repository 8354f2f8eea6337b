"""Appendix B.2 of RFC 8613: two peers derive a new security context from the old one.

A context marked ``rederive`` (``"coapkit-rederive": true`` in its directory's
settings) is a *template*: neither side protects a message with it.  Each time
a client starts without a context it can trust (a new process, or the server
forgot the last one), the two derive a new one with a new ID Context, so that a
client that lost its sequence numbers never reuses a nonce, without new keys::

    client                                       server
      | request #1, kid context ID1 (8 random bytes),
      |   protected with CTX1 = updateCtx(ID1)  -->  verified with CTX1, not served;
      |                                              R2 = 8 random bytes
      |  <-- 4.01, kid context R2, protected with CTX2 = updateCtx(R2 | ID1)
      | request #2 (the same request), kid context R2 | R3,
      |   protected with CTX3 = updateCtx(R2 | R3)  -->  R2 is ours: CTX3, served
      |  <-- the response, protected with CTX3
    CTX3 is the context of both from now on (the client leaves the kid context out).

``updateCtx(X)`` is the template's parameters with ID Context X
(:meth:`SecurityContext.derived`); ``|`` is concatenation.  The server keeps
each R2 it sent until request #2 (or until :data:`MAX_PENDING` newer ones push
it out), so that only a client that saw its response #1 gets CTX3.  A derived
context lives in memory only: after a restart of either side the procedure runs
again, with new random values, and no derived context is ever used twice.

This follows Appendix B.2's exchange; the kid contexts are the raw values above.
Californium, the other implementation known to do B.2, wraps them in CBOR byte
strings on the wire, so the two do not interoperate on this (aiocoap 0.4.17
has no B.2).
"""

from __future__ import annotations

from collections import OrderedDict

from coapkit.oscore.context import SecurityContext

__all__ = ["ClientRederivation", "ServerRederivation", "NONCE_LENGTH"]

#: bytes of ID1, R2 and R3 (B.2 recommends 8)
NONCE_LENGTH = 8
#: R2 values a server remembers at once, per template (oldest forgotten first)
MAX_PENDING = 64


class ClientRederivation:
    """A client's side of B.2 for one template context (kept on it as ``session``)."""

    def __init__(self, template: SecurityContext) -> None:
        self.template = template
        #: the context both sides derived last (None: none yet, or forgotten)
        self.established: SecurityContext | None = None
        #: ID1 of the request #1 in flight
        self._id1: bytes | None = None
        #: the context and kid context of request #2 in flight
        self._second: tuple[SecurityContext, bytes] | None = None

    @classmethod
    def of(cls, template: SecurityContext) -> ClientRederivation:
        session = template.rederivation
        if session is None:
            session = template.rederivation = cls(template)
        assert isinstance(session, ClientRederivation)
        return session

    def request_context(self) -> tuple[SecurityContext, bytes | None]:
        """The context to protect the next request with, and its kid context."""
        if self.established is not None:
            return self.established, None
        if self._second is not None:
            return self._second
        self._id1 = id1 = self.template.random_bytes(NONCE_LENGTH)
        return self.template.derived(id1), id1

    def on_response(self, context: SecurityContext) -> None:
        """A response verified with ``context``: if that is request #2's CTX3, CTX3 is
        established."""
        if self._second is not None and context is self._second[0]:
            self.established = self._second[0]
            self._second = None
            self._id1 = None

    def first_response_context(self, r2: bytes) -> SecurityContext | None:
        """CTX2 for verifying response #1, which carried kid context R2 (None if no
        request #1 is in flight)."""
        if self._id1 is None or self._second is not None:
            return None
        return self.template.derived(r2 + self._id1)

    def start_second(self, r2: bytes) -> None:
        """Response #1 verified: request #2 goes with CTX3 = updateCtx(R2 | R3)."""
        id_context = r2 + self.template.random_bytes(NONCE_LENGTH)
        self._second = (self.template.derived(id_context), id_context)

    @property
    def pending(self) -> bool:
        """Whether the request in flight is part of a re-derivation (#1 or #2)."""
        return self.established is None

    def forget(self) -> None:
        """The server does not know our context (it restarted): derive anew."""
        self.established = None
        self._second = None
        self._id1 = None


class ServerRederivation:
    """A server's side of B.2 for one template context."""

    def __init__(self, template: SecurityContext) -> None:
        self.template = template
        #: R2 values sent in responses #1, not yet followed by request #2
        self._pending: OrderedDict[bytes, None] = OrderedDict()

    def first_request_context(self, id1: bytes) -> SecurityContext:
        """CTX1 = updateCtx(ID1), to verify request #1 with."""
        return self.template.derived(id1)

    def new_r2(self) -> bytes:
        r2 = self.template.random_bytes(NONCE_LENGTH)
        self._pending[r2] = None
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return r2

    def second_request_context(self, kid_context: bytes) -> SecurityContext | None:
        """CTX3 = updateCtx(R2 | R3) if ``kid_context`` starts with an R2 this server sent
        (it is then used up), else None."""
        r2 = kid_context[:NONCE_LENGTH]
        if len(kid_context) != 2 * NONCE_LENGTH or r2 not in self._pending:
            return None
        del self._pending[r2]
        return self.template.derived(kid_context)
