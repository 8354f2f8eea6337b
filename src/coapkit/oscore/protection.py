"""Protecting and verifying CoAP requests and responses (RFC 8613 §4, §5, §8).

Theory of operation
-------------------
**Which field goes where (§4.1, §4.2).**  The original ("inner") message's
code, payload and Class E options are encrypted into the COSE ciphertext,
the payload of the OSCORE ("outer") message; the outer message keeps the
Class U options a proxy needs (Uri-Host, Uri-Port, Proxy-Scheme, Hop-Limit,
the proxy part of a Proxy-Uri) and gets the OSCORE option and a dummy code:
POST, or FETCH for an Observe request; 2.04 or 2.05 for their responses.
Observe is both: a registration carries Observe=0 inside and out, every other
Observe only outside (§4.1.3.5).  No-Response goes both ways (§4.1.3.6).
An option this module does not know is Class E.  On receipt the outer
copies of Class E options are discarded (§8.2 step 1, §8.4 step 1).

**Binding (§5.4, §7.1).**  The AEAD's additional data is the Enc_structure
around the external AAD ``[1, [alg], request_kid, request_piv, h'']``: a
response is bound to its request by the request's kid and Partial IV, which
:class:`RequestBinding` carries from the one to the other.  A response may
reuse its request's nonce once (the usual single response); a notification,
an Echo challenge and anything sent after the first response use a new
Partial IV of the responder's own.

**Errors.**  The server-side functions raise :class:`~coapkit.oscore.errors.Rejection`
with the code and diagnostic §8.2 lists; the client-side ones raise
:class:`~coapkit.oscore.errors.ProtectionInvalid`.  Neither raises anything
else for any input from the network (a fuzz harness checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from coapkit.codec.codes import Code, is_request
from coapkit.codec.message import Message, _make, decode_options, encode_options
from coapkit.codec.option_registry import OptionNumber, encode_uint
from coapkit.codec.options import EMPTY_OPTIONS, OptionItem, Options
from coapkit.errors import DecodeError
from coapkit.oscore.context import SecurityContext
from coapkit.oscore.errors import (
    ProtectionInvalid,
    Rejection,
    context_not_found,
    decode_failure,
    decryption_failed,
    replay_detected,
)
from coapkit.oscore.option import OscoreDecodeError, OscoreOption, decode_option, encode_option

__all__ = [
    "ContextLookup",
    "RequestBinding",
    "VerifiedResponse",
    "piv_bytes",
    "protect_request",
    "protect_response",
    "unprotect_request",
    "unprotect_response",
]

N = OptionNumber
_OSCORE = int(N.OSCORE)
_OBSERVE = int(N.OBSERVE)
_ECHO = int(N.ECHO)
_PROXY_URI = int(N.PROXY_URI)
_NO_RESPONSE = int(N.NO_RESPONSE)
#: options only ever outside (Class U), RFC 8613 §4.1 (Hop-Limit: RFC 8768 §3; EDHOC:
#: RFC 9668 §3.1)
_OUTER_ONLY = frozenset(
    int(n) for n in (N.URI_HOST, N.URI_PORT, N.HOP_LIMIT, N.EDHOC, N.PROXY_URI, N.PROXY_SCHEME)
)
#: what an OSCORE message keeps of its outer options on receipt (everything else outer
#: is Class E's outer copy, or hop-by-hop, and is discarded)
_KEPT_OUTER = frozenset(int(n) for n in (N.URI_HOST, N.URI_PORT, N.PROXY_SCHEME, N.PROXY_URI))
#: options a request's split must look at (the rest are Class E and go inside as they are)
_SPECIAL = _OUTER_ONLY | {_OSCORE, _OBSERVE, _PROXY_URI, _NO_RESPONSE}
_POST = int(Code.POST)
_FETCH = int(Code.FETCH)
_CHANGED = int(Code.CHANGED)
_CONTENT = int(Code.CONTENT)


def piv_bytes(number: int) -> bytes:
    """A sequence number as a Partial IV: no leading zeros, 0 as ``b"\\x00"`` (§5)."""
    return number.to_bytes((number.bit_length() + 7) >> 3, "big") if number else b"\0"


@dataclass(slots=True)
class RequestBinding:
    """What ties a response to its request: the context, the request's kid and Partial
    IV (§5.4), the outer code (POST or FETCH) and whether the request's nonce may still
    be used for a response (§5.2: once, and never for a notification)."""

    context: SecurityContext
    kid: bytes
    partial_iv: bytes
    outer_code: int
    reuse_nonce: bool
    #: the request registered an observation (Observe=0 inside and out)
    observe: bool = False
    #: the AEAD's additional data of every message of the exchange (it depends on the
    #: request's kid and Partial IV only): made once
    aad: bytes = b""

    def __post_init__(self) -> None:
        if not self.aad:
            self.aad = self.context.aad(self.kid, self.partial_iv)

    @property
    def sequence_number(self) -> int:
        return int.from_bytes(self.partial_iv, "big")


@dataclass(frozen=True, slots=True)
class VerifiedResponse:
    """A response that passed verification: the inner message and the Partial IV it
    carried (None when it used the request's nonce)."""

    message: Message
    partial_iv: int | None
    #: the kid context it carried (only in Appendix B.2's re-derivation)
    kid_context: bytes | None = None


#: how a server finds the Recipient Context for an OSCORE option's kid and kid context
ContextLookup = Callable[[OscoreOption], SecurityContext | None]


# -- building the plaintext and the outer options ------------------------------------------------


def _plaintext(
    code: int, items: list[OptionItem] | tuple[OptionItem, ...], payload: bytes
) -> bytes:
    body = encode_options(items) if items else b""
    if payload:
        return b"".join((bytes((code,)), body, b"\xff", payload))
    return bytes((code,)) + body


def _split_proxy_uri(value: bytes) -> tuple[list[OptionItem], list[OptionItem]]:
    """Proxy-Uri split as §4.1.3.3 says: (outer items, inner items)."""
    parts = urlsplit(value.decode("utf-8", "surrogateescape"))
    outer: list[OptionItem] = [(_PROXY_URI, f"{parts.scheme}://{parts.netloc}".encode())]
    inner: list[OptionItem] = []
    path = parts.path.lstrip("/")
    if path:
        inner.extend((int(N.URI_PATH), unquote(s).encode()) for s in path.split("/"))
    if parts.query:
        inner.extend((int(N.URI_QUERY), unquote(a).encode()) for a in parts.query.split("&"))
    return outer, inner


def _split_request(
    message: Message,
) -> tuple[list[OptionItem] | tuple[OptionItem, ...], list[OptionItem], bool, bool]:
    """(inner items, outer items, registration, Observe present) of a request's options."""
    items = message.options.items
    for number, _ in items:
        if number in _SPECIAL:
            break
    else:
        return items, [], False, False  # the common case: everything is Class E
    inner: list[OptionItem] = []
    outer: list[OptionItem] = []
    registration = observe = split = False
    for number, value in items:
        if number == _OSCORE:
            raise ValueError("the request already carries an OSCORE option (nesting, §4.1.3.7)")
        if number == _OBSERVE:
            outer.append((number, value))
            observe = True
            if value in (b"", b"\0"):  # 0: a registration (or re-registration)
                inner.append((number, value))
                registration = True
        elif number == _PROXY_URI:
            outer_part, inner_part = _split_proxy_uri(value)
            outer.extend(outer_part)
            inner.extend(inner_part)
            split = True
        elif number in _OUTER_ONLY:
            outer.append((number, value))
        elif number == _NO_RESPONSE:
            outer.append((number, value))
            inner.append((number, value))
        else:
            inner.append((number, value))
    if split:
        inner.sort(key=_first)
    return inner, outer, registration, observe


def _first(item: OptionItem) -> int:
    return item[0]


# -- requests ----------------------------------------------------------------------------------


def protect_request(
    context: SecurityContext,
    message: Message,
    *,
    kid_context: bytes | None = None,
    send_id_context: bool = True,
) -> tuple[Message, RequestBinding]:
    """The OSCORE request for ``message`` (§8.1), and the binding to verify its response.

    Takes a new Sender Sequence Number (stored ahead first where needed).  The ID
    Context goes along as kid context when the context has one (unless
    ``send_id_context`` is False), or ``kid_context`` when given (Appendix B.2).
    """
    if not is_request(message.code):
        raise ValueError("protect_request takes a request")
    inner, outer, registration, observe = _split_request(message)
    number = context.take_sequence_number()
    piv = piv_bytes(number)
    kid = context.sender_id
    hint = kid_context
    if hint is None and send_id_context:
        hint = context.id_context
    outer.append((_OSCORE, encode_option(piv, kid, hint)))
    if len(outer) > 1:
        outer.sort(key=_first)
    plaintext = _plaintext(message.code, inner, message.payload)
    aad = context.aad(kid, piv)
    ciphertext = context.sender_cipher.encrypt(context.sender_nonce(number), plaintext, aad)
    outer_code = _FETCH if observe else _POST
    protected = _make(
        message.mtype,
        outer_code,
        message.mid,
        message.token,
        Options._trusted(tuple(outer)),
        ciphertext,
    )
    return protected, RequestBinding(context, kid, piv, outer_code, False, registration, aad)


def request_option(message: Message) -> OscoreOption:
    """The decoded OSCORE option of a request; Rejection (4.02) if malformed or absent
    fields make it no request (§8.2 step 2)."""
    raw = message.options.get(_OSCORE)
    if raw is None:
        raise decode_failure("no OSCORE option")
    try:
        option = decode_option(raw)
    except OscoreDecodeError as exc:
        raise decode_failure(str(exc)) from None
    if option.kid is None:
        raise decode_failure("a request carries no kid")
    if option.partial_iv is None:
        raise decode_failure("a request carries no Partial IV")
    return option


def unprotect_request(outer: Message, lookup: ContextLookup) -> tuple[Message, RequestBinding]:
    """Verify an OSCORE request (§8.2): the inner request and its binding.

    Raises :class:`Rejection`: 4.02 when the option or COSE object cannot be decoded,
    4.01 when no context matches the kid or the Partial IV was seen before, 4.00 when
    decryption fails; 4.01 with Echo, protected (``binding`` set), when the context
    lost its replay window and the request does not carry the Echo value that proves
    it fresh (Appendix B.1.2).
    """
    option = request_option(outer)
    if outer.code not in (_POST, _FETCH):
        raise Rejection(Code.METHOD_NOT_ALLOWED, "an OSCORE request is a POST or a FETCH (§4.2)")
    context = lookup(option)
    if context is None:
        raise context_not_found()
    piv = option.partial_iv
    kid = option.kid
    assert piv is not None and kid is not None
    number = int.from_bytes(piv, "big")
    known = context.window_known
    if known and not context.is_fresh(number):
        raise replay_detected()
    ciphertext = outer.payload
    if len(ciphertext) <= context.aead.tag_length:
        raise decode_failure("the ciphertext is shorter than the tag and a code")
    aad = context.aad(kid, piv)
    try:
        plaintext = context.recipient_cipher.decrypt(
            context.recipient_nonce(number), ciphertext, aad
        )
    except Exception:  # cryptography's InvalidTag: not verified
        raise decryption_failed() from None
    binding = RequestBinding(context, kid, piv, outer.code, True, False, aad)
    inner = _inner_message(outer, plaintext, binding)
    if not is_request(inner.code):
        raise Rejection(Code.BAD_REQUEST, "the protected code is no request", binding=binding)
    if not known:
        # Appendix B.1.2: after losing the window, only a request echoing our value is
        # known to be fresh; its number starts the window.
        if inner.options.get(_ECHO) != context.echo_value:
            binding.reuse_nonce = False
            raise Rejection(
                Code.UNAUTHORIZED,
                "freshness unknown after a restart: repeat with the Echo value",
                binding=binding,
                echo=context.echo_value,
            )
        context.start_window(number)
    elif not context.is_fresh(number):  # verified meanwhile by another request
        raise replay_detected()
    else:
        context.accept(number)
    observe = outer.options.get(_OBSERVE)
    binding.observe = observe is not None and not int.from_bytes(observe, "big")
    return inner, binding


def _inner_message(outer: Message, plaintext: bytes, binding: RequestBinding) -> Message:
    """The inner request: the decrypted code, options and payload, with the outer Class U
    options that concern the endpoint (Uri-Host, Uri-Port, Proxy-Scheme)."""
    code = plaintext[0]
    try:
        options, payload = decode_options(plaintext, 1)
    except DecodeError as exc:
        raise Rejection(
            Code.BAD_REQUEST, f"malformed protected message: {exc}", binding=binding
        ) from None
    outer_items = outer.options.items
    if len(outer_items) == 1 and _OBSERVE not in options:
        # the common case: only the OSCORE option outside, no Observe inside
        return _make(outer.mtype, code, outer.mid, outer.token, options, payload)
    items = [item for item in options.items if item[0] != _OBSERVE]
    outer_observe = outer.options.get(_OBSERVE)
    if outer_observe is not None and not int.from_bytes(outer_observe, "big"):
        # A registration: Observe=0 inside and out (§4.1.3.5.1); any other inner Observe
        # is not this endpoint's business.
        items.extend(item for item in options.items if item[0] == _OBSERVE)
    items.extend(item for item in outer_items if item[0] in _KEPT_OUTER)
    items.sort(key=_first)
    inner_options = Options._trusted(tuple(items)) if items else EMPTY_OPTIONS
    return _make(outer.mtype, code, outer.mid, outer.token, inner_options, payload)


# -- responses ---------------------------------------------------------------------------------


def protect_response(
    binding: RequestBinding,
    message: Message,
    *,
    new_partial_iv: bool = False,
    kid_context: bytes | None = None,
) -> Message:
    """The OSCORE response for ``message`` to the request of ``binding`` (§8.3).

    The request's nonce is used once if allowed; ``new_partial_iv`` (a notification,
    §4.1.3.5.2; anything after the first response) takes a Sender Sequence Number
    instead, carried as the response's Partial IV.  The outer message has the OSCORE
    option only: its Observe, if any, is the caller's.  ``kid_context`` goes into the
    option only for Appendix B.2's first response (R2).
    """
    context = binding.context
    items = message.options.items
    if _OBSERVE in message.options:
        items = tuple(item for item in items if item[0] != _OBSERVE)
    if binding.reuse_nonce and not new_partial_iv:
        binding.reuse_nonce = False
        nonce = context.recipient_nonce(binding.sequence_number)
        option = b""
    else:
        binding.reuse_nonce = False
        number = context.take_sequence_number()
        nonce = context.sender_nonce(number)
        option = encode_option(piv_bytes(number), None, kid_context)
    plaintext = _plaintext(message.code, items, message.payload)
    ciphertext = context.sender_cipher.encrypt(nonce, plaintext, binding.aad)
    outer_code = _CONTENT if binding.outer_code == _FETCH else _CHANGED
    options = Options._trusted(((_OSCORE, option),))
    return _make(message.mtype, outer_code, message.mid, message.token, options, ciphertext)


def unprotect_response(binding: RequestBinding, outer: Message) -> VerifiedResponse:
    """Verify an OSCORE response to the request of ``binding`` (§8.4).

    Raises :class:`ProtectionInvalid` naming what failed.  When the outer message has
    Observe (a notification), the inner one gets Observe too: the low 24 bits of its
    Partial IV, so that ordering follows OSCORE's (§7.4, "copying the least significant
    bytes of the Partial IV into the Observe option").
    """
    context = binding.context
    raw = outer.options.get(_OSCORE)
    if raw is None:
        raise ProtectionInvalid("the response is not protected (no OSCORE option)")
    try:
        option = decode_option(raw)
    except OscoreDecodeError as exc:
        raise ProtectionInvalid(f"the response's OSCORE option is malformed: {exc}") from None
    if option.kid is not None and option.kid != context.recipient_id:
        raise ProtectionInvalid("the response names another sender (kid)")
    ciphertext = outer.payload
    if len(ciphertext) <= context.aead.tag_length:
        raise ProtectionInvalid("the response's ciphertext is too short")
    piv = option.partial_iv
    if piv is None:
        nonce = context.sender_nonce(binding.sequence_number)
        number = None
    else:
        number = int.from_bytes(piv, "big")
        nonce = context.recipient_nonce(number)
    try:
        plaintext = context.recipient_cipher.decrypt(nonce, ciphertext, binding.aad)
    except Exception:
        raise ProtectionInvalid(
            "the response failed verification (tampered with, or another key)"
        ) from None
    code = plaintext[0]
    try:
        options, payload = decode_options(plaintext, 1)
    except DecodeError as exc:
        raise ProtectionInvalid(f"the protected response is malformed: {exc}") from None
    if is_request(code):
        raise ProtectionInvalid("the protected code of the response is a request code")
    items = [item for item in options.items if item[0] != _OBSERVE]
    if _OBSERVE in outer.options and number is not None:
        items.append((_OBSERVE, encode_uint(number & 0xFFFFFF)))
        items.sort(key=_first)
    inner_options = Options._trusted(tuple(items)) if items else EMPTY_OPTIONS
    inner = _make(outer.mtype, code, outer.mid, outer.token, inner_options, payload)
    return VerifiedResponse(inner, number, option.kid_context)
