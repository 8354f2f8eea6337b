"""Who may register which endpoint names: the security policies of RFC 9176 §7.

A policy sees every registration, update and removal with the requester's security
identity (``None`` over plain CoAP; a TLS client certificate's name, a DTLS PSK
identity or certificate name; OSCORE identities through the same hook: see
:class:`~coapkit.rd.directory.ResourceDirectory`'s ``identify``) and the source host,
and refuses with 4.01 or 4.03 by raising :class:`~coapkit.errors.RespondWith`.

* :class:`OpenPolicy`: anyone registers, updates and removes anything (plain CoAP as
  aiocoap-rd runs it; fine on a closed network).
* :class:`FirstComePolicy`: RFC 9176 §7.5's "First Come First Remembered": a name
  that is not registered goes to whoever registers it first; while that registration
  lives, only the same owner may register the name again, update or remove it.  The
  owner is the security identity, or without one the source address (host), which
  anyone who can send from that address can claim: over plain CoAP this only keeps
  honest devices from taking each other's names.
* :class:`AuthenticatedPolicy`: RFC 9176 §7.1: only authenticated requesters, and
  each only for the names its identity allows (by default the name equal to the
  identity; ``ep`` may then be left out: the identity names the endpoint).
"""

from __future__ import annotations

from collections.abc import Callable

from coapkit.codec.codes import Code
from coapkit.errors import RespondWith
from coapkit.rd.model import Registration

__all__ = ["AuthenticatedPolicy", "FirstComePolicy", "OpenPolicy", "RegistrationPolicy"]


class RegistrationPolicy:
    """The base policy: everything allowed (:class:`OpenPolicy`); override the hooks."""

    name = "open"

    def default_name(self, identity: str | None) -> str | None:
        """The ``ep`` of a registration that gives none (None: it is required)."""
        return None

    def owner(self, identity: str | None, source: str) -> str | None:
        """What a new registration records as its owner."""
        return identity

    def check(
        self,
        *,
        identity: str | None,
        source: str,
        ep: str,
        sector: str,
        existing: Registration | None,
    ) -> None:
        """Raise RespondWith (4.01, 4.03) to refuse a registration of ``ep`` in
        ``sector`` (``existing``: the live one of that name), or an update or removal
        of ``existing``."""


class OpenPolicy(RegistrationPolicy):
    """Anyone may register, update and remove any registration."""


class FirstComePolicy(RegistrationPolicy):
    """A live name belongs to whoever registered it (identity, else source host)."""

    name = "first-come"

    def owner(self, identity: str | None, source: str) -> str | None:
        return identity if identity is not None else f"address {source}"

    def check(
        self,
        *,
        identity: str | None,
        source: str,
        ep: str,
        sector: str,
        existing: Registration | None,
    ) -> None:
        if existing is None:
            return
        if existing.owner is not None and existing.owner != self.owner(identity, source):
            where = f" in sector {sector!r}" if sector else ""
            raise RespondWith(
                Code.FORBIDDEN,
                f"endpoint name {ep!r}{where} is registered by another requester "
                "(first come, first remembered: RFC 9176 §7.5)",
            )


class AuthenticatedPolicy(RegistrationPolicy):
    """Only authenticated requesters, each for the names ``allowed(identity, ep, sector)``
    grants (by default: ``ep`` equal to the identity, any sector)."""

    name = "authenticated"

    def __init__(self, allowed: Callable[[str, str, str], bool] | None = None) -> None:
        self.allowed = allowed if allowed is not None else _same_name

    def default_name(self, identity: str | None) -> str | None:
        return identity

    def check(
        self,
        *,
        identity: str | None,
        source: str,
        ep: str,
        sector: str,
        existing: Registration | None,
    ) -> None:
        if identity is None:
            raise RespondWith(
                Code.UNAUTHORIZED,
                "this resource directory takes registrations from authenticated "
                "endpoints only (a client certificate, DTLS or OSCORE)",
            )
        if not self.allowed(identity, ep, sector):
            raise RespondWith(Code.FORBIDDEN, f"{identity!r} may not register as {ep!r}")


def _same_name(identity: str, ep: str, sector: str) -> bool:
    return identity == ep


POLICIES: dict[str, type[RegistrationPolicy]] = {
    "open": OpenPolicy,
    "first-come": FirstComePolicy,
    "authenticated": AuthenticatedPolicy,
}
