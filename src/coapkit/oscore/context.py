"""OSCORE security contexts: derivation, sender sequence numbers and the replay window.

RFC 8613 §3 (the Common, Sender and Recipient Contexts and their derivation
with HKDF), §5.2 (the AEAD nonce), §7.2 (sequence numbers), §7.4 (the replay
window), Appendix B.1.1 (the sequence number persisted ahead in steps) and
B.1.2 (a replay window that was lost: Echo).

Theory of operation
-------------------
A :class:`SecurityContext` is made from :class:`ContextParameters` (the
inputs of §3.2, immutable) and holds what is derived from them (Sender Key,
Recipient Key, Common IV, one cipher object per key) and the two things that
change: the Sender Sequence Number and the Recipient's replay window.

**Sequence numbers are never used twice**, even across a crash.  The state
lives behind a :class:`SequenceStore` (a file in the runtime,
:mod:`coapkit.runtime.oscore_files`; memory in tests): what the store holds is
``next_to_send``, a number no message has used yet.  Before the context hands
out a number at or beyond what it last stored, it stores a number ``step``
further first (B.1.1), so a context reloaded after a crash starts beyond
every number it may have used, wasting at most one step.  The step starts
small and doubles with each write, up to :attr:`SequencePolicy.step_limit`:
few writes at any rate, few numbers lost in a crash of a quiet process.

**The replay window** (§7.4, DTLS-style, 32 numbers by default) is kept as
aiocoap keeps it (the lowest number it covers and a bit field), so that the
same state file serves both stacks.  It is written to the store only when
the context is closed cleanly.  While the process runs, the store says
"unknown" (written once, at the first request after loading): a process
that dies without closing comes back not knowing which requests it
accepted, and then asks the first request of each client for an Echo (B.1.2)
before accepting any; the number of that fresh request starts the window.

Nothing here reads a clock or a random source of its own: the Echo value is
drawn from the injected :class:`~coapkit.randomness.RandomSource`, and the
store is whatever the runtime passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from coapkit.errors import CoapError, ProtocolUsageError
from coapkit.oscore.algorithms import AEADS, DEFAULT_AEAD, DEFAULT_HKDF, HKDFS, Aead, hkdf
from coapkit.oscore.cbor import bstr, encode
from coapkit.randomness import RandomSource

__all__ = [
    "MAX_SEQUENCE_NUMBER",
    "ContextExhausted",
    "ContextParameters",
    "MemoryStore",
    "ReplayWindow",
    "SecurityContext",
    "SequencePolicy",
    "SequenceState",
    "SequenceStore",
]

#: the largest Sender Sequence Number (§7.2.1: less than 2**40, five bytes of Partial IV)
MAX_SEQUENCE_NUMBER = (1 << 40) - 1
DEFAULT_WINDOW = 32


class ContextExhausted(CoapError):
    """The Sender Sequence Number reached its maximum: the context can protect no more
    messages (§7.2.1); a new one must be established."""

    hint = "establish a new security context (new Master Secret, or new Master Salt / ID Context)"


@dataclass(frozen=True, slots=True)
class ContextParameters:
    """The input parameters of a security context (RFC 8613 §3.2).

    ``aead`` and ``hkdf`` are named as in aiocoap's context directories
    (``"AES-CCM-16-64-128"``, ``"sha256"``); ``replay_window`` is the number of
    sequence numbers the replay window covers (§7.4; 32 by default).
    """

    master_secret: bytes
    sender_id: bytes
    recipient_id: bytes
    master_salt: bytes = b""
    id_context: bytes | None = None
    aead: str = DEFAULT_AEAD.name
    hkdf: str = DEFAULT_HKDF
    replay_window: int = DEFAULT_WINDOW
    #: Appendix B.2: the context is a template from which the two peers derive a new one
    #: (a new ID Context) whenever either lost its state; never used as it is
    rederive: bool = False

    def __post_init__(self) -> None:
        algorithm = AEADS.get(self.aead)
        if algorithm is None:
            known = ", ".join(AEADS)
            raise ValueError(f"unknown AEAD algorithm {self.aead!r} (known: {known})")
        if self.hkdf not in HKDFS:
            raise ValueError(f"unknown HKDF hash {self.hkdf!r} (known: {', '.join(HKDFS)})")
        longest = algorithm.max_id_length
        for name, value in (("Sender ID", self.sender_id), ("Recipient ID", self.recipient_id)):
            if len(value) > longest:
                raise ValueError(
                    f"{name} of {len(value)} bytes is longer than {algorithm.name} allows "
                    f"({longest} bytes, §3.3)"
                )
        if self.sender_id == self.recipient_id:
            raise ValueError("the Sender ID and the Recipient ID must differ (§3.3)")
        if not 1 <= self.replay_window <= 4096:
            raise ValueError("the replay window covers 1 to 4096 sequence numbers")
        if self.id_context is not None and len(self.id_context) > 255:
            raise ValueError("an ID Context is at most 255 bytes (it travels as kid context)")

    @property
    def algorithm(self) -> Aead:
        return AEADS[self.aead]

    def reversed(self) -> ContextParameters:
        """The peer's parameters: Sender and Recipient ID swapped (handy in tests)."""
        return replace(self, sender_id=self.recipient_id, recipient_id=self.sender_id)


@dataclass(frozen=True, slots=True)
class SequencePolicy:
    """How far ahead the Sender Sequence Number is stored (RFC 8613 Appendix B.1.1).

    The first write reserves ``step_start`` numbers, each following one twice as
    many as the one before, up to ``step_limit``: a crash loses at most that
    many numbers of the 2**40, and a busy context writes rarely.
    """

    step_start: int = 10
    step_limit: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.step_start <= self.step_limit:
            raise ValueError("SequencePolicy needs 1 <= step_start <= step_limit")


@dataclass(frozen=True, slots=True)
class SequenceState:
    """What a :class:`SequenceStore` keeps: the next Sender Sequence Number no message has
    used, and the replay window as ``(index, bitfield)`` or None ("unknown")."""

    next_to_send: int
    window: tuple[int, int] | None


class SequenceStore(Protocol):
    """Where a context keeps its :class:`SequenceState` across restarts.

    ``save`` must not return before the state is durable: the context uses a sequence
    number only after the save that covers it returned.  A store that holds a resource
    (a file lock) may have a ``release()`` method, which :meth:`SecurityContext.close`
    calls last.
    """

    def load(self) -> SequenceState | None:
        """The state last saved, or None for a context never used."""

    def save(self, state: SequenceState) -> None: ...


@dataclass(slots=True)
class MemoryStore:
    """A :class:`SequenceStore` in memory: for tests and the simulator (a "restart" is a
    new context on the same store)."""

    state: SequenceState | None = None
    saves: int = 0
    history: list[SequenceState] = field(default_factory=list)
    keep_history: bool = False

    def load(self) -> SequenceState | None:
        return self.state

    def save(self, state: SequenceState) -> None:
        self.state = state
        self.saves += 1
        if self.keep_history:
            self.history.append(state)


class ReplayWindow:
    """The replay window of a Recipient Context (RFC 8613 §7.4), DTLS-style.

    ``index`` is the lowest sequence number it still covers (bit 0 of ``bitfield``);
    a set bit is a number already accepted, anything below ``index`` is refused.
    The representation is aiocoap's, so a stored window means the same to both.

    >>> window = ReplayWindow(32)
    >>> window.is_fresh(5)
    True
    >>> window.accept(5)
    >>> window.is_fresh(5), window.is_fresh(4), window.is_fresh(37)
    (False, True, True)
    """

    __slots__ = ("bitfield", "index", "size")

    def __init__(self, size: int = DEFAULT_WINDOW, index: int = 0, bitfield: int = 0) -> None:
        self.size = size
        self.index = index
        self.bitfield = bitfield

    def is_fresh(self, number: int) -> bool:
        """Whether a request with this sequence number may be accepted."""
        offset = number - self.index
        if offset < 0:
            return False
        if offset >= self.size:
            return True
        return not (self.bitfield >> offset) & 1

    def accept(self, number: int) -> None:
        """Mark ``number`` as seen, sliding the window up if it is beyond its top."""
        overshoot = number - (self.index + self.size - 1)
        if overshoot > 0:
            self.index += overshoot
            self.bitfield >>= overshoot
        self.bitfield |= 1 << (number - self.index)

    @classmethod
    def starting_at(cls, number: int, size: int = DEFAULT_WINDOW) -> ReplayWindow:
        """A window that refuses ``number`` and everything before it (B.1.2: the number of
        the first request known to be fresh)."""
        return cls(size, number, 1)

    def state(self) -> tuple[int, int]:
        return (self.index, self.bitfield)


class SecurityContext:
    """A security context (RFC 8613 §3): derived keys, the Common IV, the Sender Sequence
    Number and the replay window.  See the module docstring for the persistence rules.

    ``store``: where the sequence number and replay window live (None: in memory only, a
    fresh context: numbers from 0, an empty window).  ``rng``: the source of the Echo
    value that proves freshness after the replay window was lost (B.1.2); needed only
    then.  ``label``: the name the credentials give it (``":client1"``), which a server
    shows its handlers as the request's security identity.
    """

    def __init__(
        self,
        parameters: ContextParameters,
        *,
        store: SequenceStore | None = None,
        rng: RandomSource | None = None,
        label: str | None = None,
        policy: SequencePolicy | None = None,
    ) -> None:
        self.parameters = parameters
        self.label = label
        self.store = store
        self.policy = policy or SequencePolicy()
        aead = self.aead = parameters.algorithm
        self.sender_id = parameters.sender_id
        self.recipient_id = parameters.recipient_id
        self.id_context = parameters.id_context
        self.sender_key = self._derive(parameters.sender_id, "Key", aead.key_length)
        self.recipient_key = self._derive(parameters.recipient_id, "Key", aead.key_length)
        self.common_iv = self._derive(b"", "IV", aead.nonce_length)
        self.sender_cipher = aead.cipher(self.sender_key)
        self.recipient_cipher = aead.cipher(self.recipient_key)
        self._iv = int.from_bytes(self.common_iv, "big")
        self._sender_nonce_base = self._nonce_base(parameters.sender_id)
        self._recipient_nonce_base = self._nonce_base(parameters.recipient_id)
        #: the start of the external AAD: version 1 and the AEAD algorithm (§5.4)
        self._aad_head = b"\x85\x01\x81" + encode(aead.number)
        #: a number the next write must cover: every number below it may be in use
        self._stored_limit = 0
        self._step = self.policy.step_start
        self._rng = rng
        self._echo: bytes | None = None
        #: a client's Appendix B.2 state, when this context is a template (made on use)
        self.rederivation: object | None = None
        #: the window is known unless the state said "unknown" (a crash, B.1.2)
        self.window: ReplayWindow | None
        state = store.load() if store is not None else None
        if state is None:
            self.sequence_number = 0
            self.window = ReplayWindow(parameters.replay_window)
            self._window_stored = True  # nothing stored: an empty window is right
        else:
            self.sequence_number = state.next_to_send
            self._stored_limit = state.next_to_send
            if state.window is None:
                self.window = None
            else:
                index, bits = state.window
                self.window = ReplayWindow(parameters.replay_window, index, bits)
            self._window_stored = state.window is not None
        self._closed = False

    def __repr__(self) -> str:
        name = f" {self.label}" if self.label else ""
        return (
            f"<SecurityContext{name} sender={self.sender_id.hex() or '(empty)'} "
            f"recipient={self.recipient_id.hex() or '(empty)'}>"
        )

    # -- derivation (§3.2.1) ------------------------------------------------------------------

    def _derive(self, role_id: bytes, kind: str, length: int) -> bytes:
        p = self.parameters
        info = encode([role_id, p.id_context, self.aead.number, kind, length])
        return hkdf(p.hkdf, p.master_salt, p.master_secret, info, length)

    def _nonce_base(self, id_piv: bytes) -> int:
        """The Common IV XOR the nonce's ID part (§5.2), ready for a Partial IV."""
        n = self.aead.nonce_length
        block = bytes((len(id_piv),)) + id_piv.rjust(n - 6, b"\0") + b"\0\0\0\0\0"
        return self._iv ^ int.from_bytes(block, "big")

    def nonce(self, partial_iv: bytes, id_piv: bytes) -> bytes:
        """The AEAD nonce for a Partial IV generated by the endpoint whose Sender ID is
        ``id_piv`` (§5.2)."""
        if id_piv == self.sender_id:
            base = self._sender_nonce_base
        elif id_piv == self.recipient_id:
            base = self._recipient_nonce_base
        else:
            base = self._nonce_base(id_piv)
        value = base ^ int.from_bytes(partial_iv, "big")
        return value.to_bytes(self.aead.nonce_length, "big")

    def sender_nonce(self, sequence_number: int) -> bytes:
        return (self._sender_nonce_base ^ sequence_number).to_bytes(self.aead.nonce_length, "big")

    def recipient_nonce(self, sequence_number: int) -> bytes:
        return (self._recipient_nonce_base ^ sequence_number).to_bytes(
            self.aead.nonce_length, "big"
        )

    def aad(self, request_kid: bytes, request_piv: bytes) -> bytes:
        """The AEAD's additional data: the Enc_structure around the external AAD (§5.4),
        with no Class I options (none are defined)."""
        external = self._aad_head + bstr(request_kid) + bstr(request_piv) + b"\x40"
        return b"\x83\x68Encrypt0\x40" + bstr(external)

    def external_aad(self, request_kid: bytes, request_piv: bytes) -> bytes:
        return self._aad_head + bstr(request_kid) + bstr(request_piv) + b"\x40"

    # -- the Sender Sequence Number (§7.2, B.1.1) ---------------------------------------------

    def take_sequence_number(self) -> int:
        """The next Sender Sequence Number, never handed out before, in this process or any
        earlier one with the same store (stored ahead first when needed)."""
        if self._closed:
            raise ProtocolUsageError(f"{self!r} is closed")
        number = self.sequence_number
        if number > MAX_SEQUENCE_NUMBER:
            raise ContextExhausted(
                f"{self!r}: every Sender Sequence Number is used (2**40); the context "
                "can protect no more messages"
            )
        if number >= self._stored_limit and self.store is not None:
            limit = min(number + self._step, MAX_SEQUENCE_NUMBER + 1)
            self._step = min(self._step * 2, self.policy.step_limit)
            self.store.save(SequenceState(limit, self._stored_window()))
            self._stored_limit = limit
        self.sequence_number = number + 1
        return number

    def _stored_window(self) -> tuple[int, int] | None:
        window = self.window
        return window.state() if window is not None and self._window_stored else None

    # -- the replay window (§7.4, B.1.2) --------------------------------------------------------

    @property
    def window_known(self) -> bool:
        """False after a crash until a request proved fresh with Echo (B.1.2)."""
        return self.window is not None

    @property
    def echo_value(self) -> bytes:
        """The Echo value a request must carry to prove it fresh (B.1.2), made on first use."""
        if self._echo is None:
            if self._rng is None:
                raise ProtocolUsageError(
                    f"{self!r} lost its replay window and has no random source for an Echo "
                    "value: give SecurityContext(rng=...)"
                )
            self._echo = self._rng.randbytes(8)
        return self._echo

    def is_fresh(self, sequence_number: int) -> bool:
        """Whether a request with this number may be accepted (False while the window is
        unknown: ask for an Echo first)."""
        window = self.window
        return window is not None and window.is_fresh(sequence_number)

    def accept(self, sequence_number: int) -> None:
        """A request with this number was verified: it may not be accepted again."""
        window = self.window
        assert window is not None
        if self._window_stored and self.store is not None:
            # From now on the stored window is out of date: say "unknown" once, so that
            # a crash leads to Echo (B.1.2) rather than to accepting a replay.
            self._window_stored = False
            self.store.save(SequenceState(self._stored_limit, None))
        window.accept(sequence_number)

    def start_window(self, sequence_number: int) -> None:
        """A request proved fresh by Echo (B.1.2): the window starts above its number."""
        self.window = ReplayWindow.starting_at(sequence_number, self.parameters.replay_window)
        if self.store is not None:
            self._window_stored = False
            self.store.save(SequenceState(max(self._stored_limit, self.sequence_number), None))

    # -- Appendix B.2 ------------------------------------------------------------------------------

    @property
    def rederive(self) -> bool:
        """Whether this context is a template for Appendix B.2's re-derivation."""
        return self.parameters.rederive

    def derived(self, id_context: bytes) -> SecurityContext:
        """updateCtx (Appendix B.2): this context's parameters with the ID Context
        ``id_context``: new keys and Common IV, numbers from 0, an empty window, kept in
        memory only (a lost one is derived anew, never reused)."""
        parameters = replace(self.parameters, id_context=id_context, rederive=False)
        return SecurityContext(parameters, rng=self._rng, label=self.label, policy=self.policy)

    def random_bytes(self, n: int) -> bytes:
        """``n`` bytes from the context's random source (B.2's nonces R1, R2, R3)."""
        if self._rng is None:
            raise ProtocolUsageError(
                f"{self!r} has no random source: give SecurityContext(rng=...)"
            )
        return self._rng.randbytes(n)

    # -- the end ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Store the exact state (the numbers not used, the window): a clean restart wastes
        no sequence number and needs no Echo.  The context is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        store = self.store
        if store is not None:
            window = self.window.state() if self.window is not None else None
            store.save(SequenceState(self.sequence_number, window))
            self._stored_limit = self.sequence_number
            self._window_stored = window is not None
            release = getattr(store, "release", None)
            if callable(release):
                release()  # a file store's lock

    @property
    def closed(self) -> bool:
        return self._closed
