"""The EDHOC protocol, sans I/O: an Initiator and a Responder, message by message.

RFC 9528 §5 (the messages and their processing), §4 (the key schedule) and
§6 (the error message).  Each class takes bytes and gives bytes; nothing here
sends, waits or reads a clock.  Whoever carries the messages (CoAP, in
:mod:`coapkit.edhoc.coap`) calls the methods in order::

    initiator = Initiator(me, peers, method=3, suites=[2], c_i=b"\\x37")
    message_1 = initiator.message_1()
                                     responder = Responder(me, peers)
                                     c_i, ead_1 = responder.process_message_1(message_1)
                                     message_2 = responder.message_2(c_r)
    initiator.process_message_2(message_2)
    message_3 = initiator.message_3()
                                     responder.process_message_3(message_3)
                                     message_4 = responder.message_4()      (optional)
    initiator.process_message_4(message_4)                                  (optional)

after which both sides have the same :meth:`exporter` and
:meth:`oscore_parameters` (Appendix A.1).  A method called out of order, and
anything wrong with a received message, raises
:class:`~coapkit.edhoc.errors.EdhocError`; the session is then over.

Key schedule (§4.1)::

    TH_2     = H( G_Y, H(message_1) )
    PRK_2e   = Extract( TH_2, G_XY )
    PRK_3e2m = PRK_2e                       when R signs (methods 0, 2)
             = Extract( KDF(PRK_2e, 1, TH_2, h), G_RX )          otherwise
    PRK_4e3m = PRK_3e2m                     when I signs (methods 0, 1)
             = Extract( KDF(PRK_3e2m, 5, TH_3, h), G_IY )        otherwise
    PRK_out  = KDF( PRK_4e3m, 7, TH_4, h );  PRK_exporter = KDF( PRK_out, 10, h'', h )

EDHOC_KDF(PRK, label, context, length) is HKDF-Expand(PRK, info, length) with
``info = (label: int, context: bstr, length: uint)`` as a CBOR Sequence
(§4.1.2).  Every session draws its own ephemeral key (unless one is passed in,
for test vectors), so every session's PRK_out, and every OSCORE context made
from it, is new: no nonce is ever used with the same key twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coapkit.edhoc.cbor import CborItem, bstr, decode_one, decode_sequence, encode_int, head
from coapkit.edhoc.credentials import (
    KCCS,
    KID,
    Credential,
    Identity,
    PeerLookup,
    ReceivedIdCred,
    kid_id_cred,
)
from coapkit.edhoc.crypto import (
    SUITES,
    CipherSuite,
    aead_decrypt,
    aead_encrypt,
    ecdh,
    generate_private,
    hash_sha256,
    hkdf_expand,
    hkdf_extract,
    public_of,
    sign,
    verify,
)
from coapkit.edhoc.errors import (
    ERR_WRONG_SUITE,
    EdhocError,
    EdhocPeerError,
)
from coapkit.oscore.context import ContextParameters

__all__ = [
    "METHODS",
    "EadItem",
    "Initiator",
    "Responder",
    "decode_conn_id",
    "decode_error",
    "encode_conn_id",
    "encode_error",
    "is_error_message",
]

#: §3.2: the methods, as (Initiator signs, Responder signs)
METHODS: dict[int, tuple[bool, bool]] = {
    0: (True, True),
    1: (True, False),
    2: (False, True),
    3: (False, False),
}
#: exporter labels of RFC 9528 Appendix A.1 (OSCORE Master Secret, Master Salt)
OSCORE_SECRET_LABEL = 0
OSCORE_SALT_LABEL = 1
OSCORE_SALT_LENGTH = 8
#: more EAD items than this in one message are refused (each is at least a byte)
MAX_EAD_ITEMS = 16


# -- encodings -------------------------------------------------------------------------------


def _one_byte_int(identifier: bytes) -> bool:
    return len(identifier) == 1 and (identifier[0] <= 0x17 or 0x20 <= identifier[0] <= 0x37)


def encode_conn_id(identifier: bytes) -> bytes:
    """C_I or C_R in a message (§3.3.2): the one-byte encoding of an integer -24..23
    when the identifier is such a byte, else a byte string."""
    return identifier if _one_byte_int(identifier) else bstr(identifier)


def decode_conn_id(item: CborItem) -> bytes:
    """The byte string a received C_I or C_R stands for."""
    if isinstance(item, bool) or item is None:
        raise EdhocError("a connection identifier is an integer or a byte string")
    if isinstance(item, int):
        if not -24 <= item <= 23:
            raise EdhocError("a connection identifier integer is within -24..23")
        return encode_int(item)
    if isinstance(item, bytes):
        return item
    raise EdhocError("a connection identifier is an integer or a byte string")


@dataclass(frozen=True, slots=True)
class EadItem:
    """One External Authorization Data item (§3.8): a label (negative: critical,
    written as the absolute value with ``critical`` set) and an optional value."""

    label: int
    value: bytes | None = None
    critical: bool = False

    def encode(self) -> bytes:
        number = -self.label if self.critical else self.label
        return encode_int(number) + (b"" if self.value is None else bstr(self.value))


def _parse_ead(items: Sequence[tuple[CborItem, int, int]]) -> tuple[EadItem, ...]:
    """EAD items (label, then a byte string value or not); a critical item is refused
    (§3.8: "If any critical EAD item cannot be processed, the session MUST be
    discontinued"): coapkit processes none, non-critical ones are ignored."""
    found: list[EadItem] = []
    index = 0
    while index < len(items):
        label = items[index][0]
        if isinstance(label, bool) or not isinstance(label, int):
            raise EdhocError("an EAD item starts with an integer label")
        value: bytes | None = None
        if index + 1 < len(items):
            following = items[index + 1][0]
            if isinstance(following, bytes):
                value = following
                index += 1
        index += 1
        if label < 0:
            raise EdhocError(f"critical EAD item {-label} is not supported")
        found.append(EadItem(label, value))
        if len(found) > MAX_EAD_ITEMS:
            raise EdhocError("too many EAD items")
    return tuple(found)


def _ead_bytes(items: Sequence[EadItem]) -> bytes:
    return b"".join(item.encode() for item in items)


def encode_error(err_code: int, info: str | Sequence[int] = "") -> bytes:
    """An EDHOC error message (§6): ERR_CODE 1 with a text, or 2 with SUITES_R."""
    if err_code == ERR_WRONG_SUITE:
        assert not isinstance(info, str)
        suites = list(info)
        if len(suites) == 1:
            return encode_int(2) + encode_int(suites[0])
        out = bytes((0x80 | len(suites),)) if len(suites) < 24 else b""
        return encode_int(2) + out + b"".join(encode_int(s) for s in suites)
    text = str(info).encode("utf-8")
    return encode_int(err_code) + head(3, len(text)) + text


def is_error_message(data: bytes) -> bool:
    """Whether ``data`` starts as an error message does: with an integer (§6; message_2,
    message_3 and message_4 are byte strings)."""
    return bool(data) and data[0] >> 5 in (0, 1)


def decode_error(data: bytes) -> EdhocPeerError:
    """The exception a received error message stands for."""
    items = decode_sequence(data)
    if not items or isinstance(items[0][0], bool) or not isinstance(items[0][0], int):
        return EdhocPeerError("the peer sent something that is not EDHOC")
    code = items[0][0]
    info = items[1][0] if len(items) > 1 else None
    if code == ERR_WRONG_SUITE:
        suites: tuple[int, ...] = ()
        if isinstance(info, int) and not isinstance(info, bool):
            suites = (info,)
        elif isinstance(info, list):
            suites = tuple(s for s in info if isinstance(s, int) and not isinstance(s, bool))
        return EdhocPeerError(
            f"the peer refused the cipher suite; it supports {list(suites)}",
            err_code=code,
            suites_r=suites,
        )
    text = info if isinstance(info, str) else ""
    return EdhocPeerError(f"the peer sent an EDHOC error {code}: {text}", err_code=code)


def _kdf(prk: bytes, label: int, context: bytes, length: int) -> bytes:
    """EDHOC_KDF (§4.1.2)."""
    return hkdf_expand(prk, encode_int(label) + bstr(context) + encode_int(length), length)


def _enc_structure(th: bytes) -> bytes:
    """The AEAD's additional data: ``["Encrypt0", h'', TH]`` (§5.4.2, §5.5.2)."""
    return b"\x83\x68Encrypt0\x40" + bstr(th)


def _sig_structure(id_cred: bytes, external_aad: bytes, mac: bytes) -> bytes:
    """``["Signature1", << ID_CRED >>, external_aad, MAC]`` (§5.3.2, RFC 9052 §4.4)."""
    return b"\x84\x6aSignature1" + bstr(id_cred) + bstr(external_aad) + bstr(mac)


def _id_cred_from_item(item: CborItem, raw: bytes) -> ReceivedIdCred:
    """ID_CRED_x as a message carries it: a compact kid (byte string or integer) or a map."""
    if isinstance(item, bool) or item is None:
        raise EdhocError("ID_CRED is a map, a byte string or an integer")
    if isinstance(item, int):
        if not -24 <= item <= 23:
            raise EdhocError("a compact kid integer is within -24..23")
        kid = encode_int(item)
        return ReceivedIdCred(kid_id_cred(kid), kid=kid)
    if isinstance(item, bytes):
        return ReceivedIdCred(kid_id_cred(item), kid=item)
    if not isinstance(item, dict) or not item:
        raise EdhocError("ID_CRED is a map, a byte string or an integer")
    kid_value = item.get(KID)
    found_kid = kid_value if isinstance(kid_value, bytes) else None
    ccs = None
    if KCCS in item:
        # the CCS's own bytes, as they are inside the map (the MAC covers them)
        if raw[:2] != b"\xa1\x0e":
            raise EdhocError("a kccs ID_CRED holds nothing but the CCS")
        ccs = raw[2:]
        if not isinstance(item[KCCS], dict):
            raise EdhocError("a kccs ID_CRED holds a CWT Claims Set (a map)")
    return ReceivedIdCred(raw, kid=found_kid, ccs=ccs)


# -- the sessions ----------------------------------------------------------------------------


class _Session:
    """What both roles share: the suite, the method, the transcript and the keys."""

    role = ""

    def __init__(self, identity: Identity, peers: PeerLookup) -> None:
        self.identity = identity
        self.peers = peers
        self.state = "start"
        self.suite: CipherSuite = SUITES[2]
        self.method = 3
        self.c_i = b""
        self.c_r = b""
        self.peer_credential: Credential | None = None
        self.peer_id_cred: ReceivedIdCred | None = None
        self.ead_received: tuple[EadItem, ...] = ()
        self._g_x = b""
        self._g_y = b""
        self._th_2 = b""
        self._th_3 = b""
        self._th_4 = b""
        self._prk_2e = b""
        self._prk_3e2m = b""
        self._prk_4e3m = b""
        self._prk_out = b""
        self._prk_exporter = b""

    def _expect(self, state: str) -> None:
        if self.state != state:
            raise EdhocError(f"EDHOC {self.role}: unexpected in state {self.state!r}")

    def _fail(self, exc: EdhocError) -> EdhocError:
        self.state = "failed"
        return exc

    @property
    def initiator_signs(self) -> bool:
        return METHODS[self.method][0]

    @property
    def responder_signs(self) -> bool:
        return METHODS[self.method][1]

    # -- keys shared by both roles -------------------------------------------------------

    def _after_th_2(self, g_xy: bytes) -> None:
        self._prk_2e = hkdf_extract(self._th_2, g_xy)

    def _prk_3e2m_from(self, g_rx: bytes | None) -> None:
        if g_rx is None:
            self._prk_3e2m = self._prk_2e
        else:
            salt = _kdf(self._prk_2e, 1, self._th_2, self.suite.hash_length)
            self._prk_3e2m = hkdf_extract(salt, g_rx)

    def _prk_4e3m_from(self, g_iy: bytes | None) -> None:
        if g_iy is None:
            self._prk_4e3m = self._prk_3e2m
        else:
            salt = _kdf(self._prk_3e2m, 5, self._th_3, self.suite.hash_length)
            self._prk_4e3m = hkdf_extract(salt, g_iy)

    def _mac_2(self, id_cred_r: bytes, cred_r: bytes, ead_2: bytes) -> bytes:
        context = encode_conn_id(self.c_r) + id_cred_r + bstr(self._th_2) + cred_r + ead_2
        length = self.suite.hash_length if self.responder_signs else self.suite.mac_length
        return _kdf(self._prk_3e2m, 2, context, length)

    def _mac_3(self, id_cred_i: bytes, cred_i: bytes, ead_3: bytes) -> bytes:
        context = id_cred_i + bstr(self._th_3) + cred_i + ead_3
        length = self.suite.hash_length if self.initiator_signs else self.suite.mac_length
        return _kdf(self._prk_4e3m, 6, context, length)

    def _signature_or_mac(
        self, signs: bool, mac: bytes, id_cred: bytes, th: bytes, cred: bytes, ead: bytes
    ) -> bytes:
        if not signs:
            return mac
        data = _sig_structure(id_cred, bstr(th) + cred + ead, mac)
        return sign(self.suite.signature, self.identity.private_key, data)

    def _check_signature_or_mac(
        self,
        signs: bool,
        received: bytes,
        mac: bytes,
        credential: Credential,
        id_cred: bytes,
        th: bytes,
        ead: bytes,
    ) -> None:
        if signs:
            data = _sig_structure(id_cred, bstr(th) + credential.cred + ead, mac)
            verify(self.suite.signature, credential.public_key, received, data)
        elif not _constant_time_equal(received, mac):
            raise EdhocError("the MAC does not verify")

    def _finish(self) -> None:
        h = self.suite.hash_length
        self._prk_out = _kdf(self._prk_4e3m, 7, self._th_4, h)
        self._prk_exporter = _kdf(self._prk_out, 10, b"", h)

    def _k_iv(self, prk: bytes, key_label: int, iv_label: int, th: bytes) -> tuple[bytes, bytes]:
        return (
            _kdf(prk, key_label, th, self.suite.key_length),
            _kdf(prk, iv_label, th, self.suite.iv_length),
        )

    def _lookup(self, id_cred: ReceivedIdCred) -> Credential:
        try:
            credential = self.peers(id_cred)
        except EdhocError:
            raise
        if credential is None:
            raise EdhocError("the peer's credential is not one this party trusts")
        return credential

    # -- the results ---------------------------------------------------------------------

    @property
    def prk_out(self) -> bytes:
        """PRK_out (§4.1.3), once the session completed."""
        if not self._prk_out:
            raise EdhocError("EDHOC has not completed")
        return self._prk_out

    def exporter(self, label: int, context: bytes, length: int) -> bytes:
        """EDHOC_Exporter (§4.2.1): ``EDHOC_KDF(PRK_exporter, label, context, length)``."""
        if not self._prk_exporter:
            raise EdhocError("EDHOC has not completed")
        return _kdf(self._prk_exporter, label, context, length)

    def _own_and_peer_ids(self) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def oscore_parameters(self, *, replay_window: int = 32) -> ContextParameters:
        """The OSCORE security context's input parameters (RFC 9528 Appendix A.1):
        Master Secret and Salt from the exporter (labels 0 and 1), the Sender ID the
        peer's connection identifier, the Recipient ID one's own."""
        from coapkit.oscore.algorithms import AEADS

        aead = AEADS[self.suite.app_aead]
        secret = self.exporter(OSCORE_SECRET_LABEL, b"", aead.key_length)
        salt = self.exporter(OSCORE_SALT_LABEL, b"", OSCORE_SALT_LENGTH)
        sender, recipient = self._own_and_peer_ids()
        return ContextParameters(
            secret,
            sender_id=sender,
            recipient_id=recipient,
            master_salt=salt,
            aead=aead.name,
            hkdf=self.suite.app_hash,
            replay_window=replay_window,
        )


def _constant_time_equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


class Initiator(_Session):
    """The party that sends message_1 (a CoAP client, Appendix A.2).

    ``suites``: SUITES_I, the selected suite last (§5.2.2); ``c_i``: C_I, also the
    Recipient ID of the OSCORE context to come; ``ephemeral``: the private key X
    (None: a fresh one); ``ead_1``: EAD items for message_1.
    """

    role = "Initiator"

    def __init__(
        self,
        identity: Identity,
        peers: PeerLookup,
        *,
        method: int = 3,
        suites: Sequence[int] = (2,),
        c_i: bytes,
        ephemeral: bytes | None = None,
        ead_1: Sequence[EadItem] = (),
    ) -> None:
        super().__init__(identity, peers)
        if method not in METHODS:
            raise ValueError(f"EDHOC method {method} does not exist (0 to 3)")
        if not suites or any(s not in SUITES for s in suites[-1:]):
            raise ValueError(f"cipher suite {list(suites)[-1:]} is not supported (0 to 3)")
        if not c_i or len(c_i) > 7:
            raise ValueError("C_I is 1 to 7 bytes (it becomes an OSCORE Recipient ID)")
        self.method = method
        self.suites_i = list(suites)
        self.suite = SUITES[self.suites_i[-1]]
        self.c_i = c_i
        self._x = ephemeral if ephemeral is not None else generate_private(self.suite.curve)
        self._ead_1 = tuple(ead_1)
        self._message_1 = b""
        self._plaintext_3 = b""

    def message_1(self) -> bytes:
        """message_1 (§5.2.1): METHOD, SUITES_I, G_X, C_I, ? EAD_1."""
        self._expect("start")
        self._g_x = public_of(self.suite.curve, self._x)
        if len(self.suites_i) == 1:
            suites = encode_int(self.suites_i[0])
        else:
            suites = bytes((0x80 | len(self.suites_i),)) + b"".join(
                encode_int(s) for s in self.suites_i
            )
        self._message_1 = (
            encode_int(self.method)
            + suites
            + bstr(self._g_x)
            + encode_conn_id(self.c_i)
            + _ead_bytes(self._ead_1)
        )
        self.state = "sent_1"
        return self._message_1

    def process_message_2(self, data: bytes) -> Credential:
        """Verify message_2 (§5.3.3); the Responder's credential, which the lookup
        found and the message proved.  An error message raises EdhocPeerError."""
        self._expect("sent_1")
        try:
            return self._process_message_2(bytes(data))
        except EdhocError as exc:
            raise self._fail(exc) from None

    def _process_message_2(self, data: bytes) -> Credential:
        if is_error_message(data):
            raise decode_error(data)
        item, end = decode_one(data)
        if not isinstance(item, bytes) or end != len(data):
            raise EdhocError("message_2 is one byte string")
        size = 32
        if len(item) <= size:
            raise EdhocError("message_2 is too short")
        self._g_y, ciphertext_2 = item[:size], item[size:]
        self._th_2 = hash_sha256(bstr(self._g_y) + bstr(hash_sha256(self._message_1)))
        self._after_th_2(ecdh(self.suite.curve, self._x, self._g_y))
        keystream = _kdf(self._prk_2e, 0, self._th_2, len(ciphertext_2))
        plaintext_2 = bytes(a ^ b for a, b in zip(ciphertext_2, keystream, strict=True))
        items = decode_sequence(plaintext_2)
        if len(items) < 3:
            raise EdhocError("PLAINTEXT_2 holds C_R, ID_CRED_R and Signature_or_MAC_2")
        self.c_r = decode_conn_id(items[0][0])
        if self.c_r == self.c_i:
            raise EdhocError("C_R equals C_I: the OSCORE Sender and Recipient ID would too")
        id_item, start, stop = items[1]
        id_cred_r = _id_cred_from_item(id_item, plaintext_2[start:stop])
        received = items[2][0]
        if not isinstance(received, bytes):
            raise EdhocError("Signature_or_MAC_2 is a byte string")
        ead_start = items[3][1] if len(items) > 3 else len(plaintext_2)
        ead_2 = plaintext_2[ead_start:]
        self.ead_received = _parse_ead(items[3:])
        credential = self._lookup(id_cred_r)
        self.peer_id_cred = id_cred_r
        g_rx = None
        if not self.responder_signs:
            g_rx = ecdh(self.suite.curve, self._x, credential.public_key)
        self._prk_3e2m_from(g_rx)
        mac_2 = self._mac_2(id_cred_r.encoded, credential.cred, ead_2)
        self._check_signature_or_mac(
            self.responder_signs,
            received,
            mac_2,
            credential,
            id_cred_r.encoded,
            self._th_2,
            ead_2,
        )
        self.peer_credential = credential
        self._th_3 = hash_sha256(bstr(self._th_2) + plaintext_2 + credential.cred)
        self.state = "verified_2"
        return credential

    def message_3(self, ead_3: Sequence[EadItem] = ()) -> bytes:
        """message_3 (§5.4.2); after it, the session's keys are final (PRK_out)."""
        self._expect("verified_2")
        own = self.identity.credential
        g_iy = None
        if not self.initiator_signs:
            g_iy = ecdh(self.suite.curve, self.identity.private_key, self._g_y)
        self._prk_4e3m_from(g_iy)
        ead = _ead_bytes(ead_3)
        mac_3 = self._mac_3(own.id_cred, own.cred, ead)
        signature_or_mac = self._signature_or_mac(
            self.initiator_signs, mac_3, own.id_cred, self._th_3, own.cred, ead
        )
        plaintext_3 = own.compact_id_cred + bstr(signature_or_mac) + ead
        key, iv = self._k_iv(self._prk_3e2m, 3, 4, self._th_3)
        ciphertext_3 = aead_encrypt(self.suite, key, iv, plaintext_3, _enc_structure(self._th_3))
        self._th_4 = hash_sha256(bstr(self._th_3) + plaintext_3 + own.cred)
        self._finish()
        self.state = "sent_3"
        return bstr(ciphertext_3)

    def process_message_4(self, data: bytes) -> tuple[EadItem, ...]:
        """Verify message_4 (§5.5.3): key confirmation from the Responder."""
        self._expect("sent_3")
        try:
            data = bytes(data)
            if is_error_message(data):
                raise decode_error(data)
            item, end = decode_one(data)
            if not isinstance(item, bytes) or end != len(data):
                raise EdhocError("message_4 is one byte string")
            key, iv = self._k_iv(self._prk_4e3m, 8, 9, self._th_4)
            plaintext = aead_decrypt(self.suite, key, iv, item, _enc_structure(self._th_4))
            ead = _parse_ead(decode_sequence(plaintext))
        except EdhocError as exc:
            raise self._fail(exc) from None
        self.state = "completed"
        return ead

    def _own_and_peer_ids(self) -> tuple[bytes, bytes]:
        return self.c_r, self.c_i


class Responder(_Session):
    """The party that answers message_1 (a CoAP server, Appendix A.2).

    ``methods`` and ``suites``: what it accepts (``suites`` most preferred first: the
    SUITES_R of an error message); ``ephemeral``: the private key Y (None: a fresh one).
    """

    role = "Responder"

    def __init__(
        self,
        identity: Identity,
        peers: PeerLookup,
        *,
        methods: Sequence[int] = (0, 1, 2, 3),
        suites: Sequence[int] = (2,),
        ephemeral: bytes | None = None,
    ) -> None:
        super().__init__(identity, peers)
        self.methods = tuple(methods)
        self.suites = tuple(s for s in suites if s in SUITES)
        if not self.suites:
            raise ValueError("a Responder supports at least one cipher suite (0 to 3)")
        self._y = ephemeral

    def process_message_1(self, data: bytes) -> tuple[bytes, tuple[EadItem, ...]]:
        """Check message_1 (§5.2.3); C_I and the EAD items.  A cipher suite it does not
        support raises EdhocError with ERR_CODE 2 and SUITES_R (§6.3)."""
        self._expect("start")
        try:
            return self._process_message_1(bytes(data))
        except EdhocError as exc:
            raise self._fail(exc) from None

    def _process_message_1(self, data: bytes) -> tuple[bytes, tuple[EadItem, ...]]:
        items = decode_sequence(data)
        if len(items) < 4:
            raise EdhocError("message_1 holds METHOD, SUITES_I, G_X and C_I")
        method, suites, g_x, c_i = (entry[0] for entry in items[:4])
        if isinstance(method, bool) or not isinstance(method, int) or method not in METHODS:
            raise EdhocError("message_1: unknown method")
        if method not in self.methods:
            raise EdhocError(f"method {method} is not accepted here")
        if isinstance(suites, int) and not isinstance(suites, bool):
            offered = [suites]
        elif isinstance(suites, list) and len(suites) >= 2:
            offered = []
            for suite in suites:
                if isinstance(suite, bool) or not isinstance(suite, int):
                    raise EdhocError("message_1: SUITES_I holds integers")
                offered.append(suite)
        else:
            raise EdhocError("message_1: SUITES_I is an integer or an array of 2 or more")
        selected = offered[-1]
        # §5.2.3: the selected suite is supported, and none the Initiator prefers is
        if selected not in self.suites or any(s in self.suites for s in offered[:-1]):
            raise EdhocError(
                "the selected cipher suite is not the one to use",
                err_code=ERR_WRONG_SUITE,
                suites_r=self.suites,
            )
        if not isinstance(g_x, bytes) or len(g_x) != 32:
            raise EdhocError("message_1: G_X is a 32-byte string")
        self.method = method
        self.suite = SUITES[selected]
        self.c_i = decode_conn_id(c_i)
        if len(self.c_i) > 7:
            raise EdhocError("C_I is longer than an OSCORE Recipient ID may be")
        self.ead_received = _parse_ead(items[4:])
        self._g_x = g_x
        self._message_1 = data
        self.state = "received_1"
        return self.c_i, self.ead_received

    def message_2(self, c_r: bytes, ead_2: Sequence[EadItem] = ()) -> bytes:
        """message_2 (§5.3.2) with the connection identifier ``c_r`` (1 to 7 bytes,
        other than C_I: it becomes the Recipient ID of the OSCORE context)."""
        self._expect("received_1")
        if not c_r or len(c_r) > 7 or c_r == self.c_i:
            raise ValueError("C_R is 1 to 7 bytes and differs from C_I")
        self.c_r = c_r
        suite = self.suite
        y = self._y if self._y is not None else generate_private(suite.curve)
        self._y = y
        self._g_y = public_of(suite.curve, y)
        self._th_2 = hash_sha256(bstr(self._g_y) + bstr(hash_sha256(self._message_1)))
        self._after_th_2(ecdh(suite.curve, y, self._g_x))
        own = self.identity.credential
        g_rx = None
        if not self.responder_signs:
            g_rx = ecdh(suite.curve, self.identity.private_key, self._g_x)
        self._prk_3e2m_from(g_rx)
        ead = _ead_bytes(ead_2)
        mac_2 = self._mac_2(own.id_cred, own.cred, ead)
        signature_or_mac = self._signature_or_mac(
            self.responder_signs, mac_2, own.id_cred, self._th_2, own.cred, ead
        )
        plaintext_2 = encode_conn_id(c_r) + own.compact_id_cred + bstr(signature_or_mac) + ead
        keystream = _kdf(self._prk_2e, 0, self._th_2, len(plaintext_2))
        ciphertext_2 = bytes(a ^ b for a, b in zip(plaintext_2, keystream, strict=True))
        self._th_3 = hash_sha256(bstr(self._th_2) + plaintext_2 + own.cred)
        self.state = "sent_2"
        return bstr(self._g_y + ciphertext_2)

    def process_message_3(self, data: bytes) -> Credential:
        """Verify message_3 (§5.4.3); the Initiator's credential, now authenticated."""
        self._expect("sent_2")
        try:
            return self._process_message_3(bytes(data))
        except EdhocError as exc:
            raise self._fail(exc) from None

    def _process_message_3(self, data: bytes) -> Credential:
        if is_error_message(data):
            raise decode_error(data)
        item, end = decode_one(data)
        if not isinstance(item, bytes) or end != len(data):
            raise EdhocError("message_3 is one byte string")
        key, iv = self._k_iv(self._prk_3e2m, 3, 4, self._th_3)
        plaintext_3 = aead_decrypt(self.suite, key, iv, item, _enc_structure(self._th_3))
        items = decode_sequence(plaintext_3)
        if len(items) < 2:
            raise EdhocError("PLAINTEXT_3 holds ID_CRED_I and Signature_or_MAC_3")
        id_item, start, stop = items[0]
        id_cred_i = _id_cred_from_item(id_item, plaintext_3[start:stop])
        received = items[1][0]
        if not isinstance(received, bytes):
            raise EdhocError("Signature_or_MAC_3 is a byte string")
        ead_start = items[2][1] if len(items) > 2 else len(plaintext_3)
        ead_3 = plaintext_3[ead_start:]
        self.ead_received = _parse_ead(items[2:])
        credential = self._lookup(id_cred_i)
        self.peer_id_cred = id_cred_i
        g_iy = None
        if not self.initiator_signs:
            assert self._y is not None
            g_iy = ecdh(self.suite.curve, self._y, credential.public_key)
        self._prk_4e3m_from(g_iy)
        mac_3 = self._mac_3(id_cred_i.encoded, credential.cred, ead_3)
        self._check_signature_or_mac(
            self.initiator_signs,
            received,
            mac_3,
            credential,
            id_cred_i.encoded,
            self._th_3,
            ead_3,
        )
        self.peer_credential = credential
        self._th_4 = hash_sha256(bstr(self._th_3) + plaintext_3 + credential.cred)
        self._finish()
        self.state = "completed"
        return credential

    def message_4(self, ead_4: Sequence[EadItem] = ()) -> bytes:
        """message_4 (§5.5.2): optional key confirmation for the Initiator."""
        self._expect("completed")
        key, iv = self._k_iv(self._prk_4e3m, 8, 9, self._th_4)
        return bstr(
            aead_encrypt(self.suite, key, iv, _ead_bytes(ead_4), _enc_structure(self._th_4))
        )

    def _own_and_peer_ids(self) -> tuple[bytes, bytes]:
        return self.c_i, self.c_r
