"""DTLS 1.2 records as the session layer reads them: headers only (RFC 6347 §4.1), and the
one handshake message it answers itself, the ClientHello (§4.2.1).

The session layer never decrypts: it reads record headers to route a
datagram, to refuse one that is not whole records, and to tell a first
ClientHello (sent in the clear, epoch 0) from the rest.  A ClientHello
without a valid cookie is answered here with a HelloVerifyRequest, before
any state exists for its source (§4.2.1); everything else goes to the engine.

Layout (all big-endian)::

    record     type(1) version(2) epoch(2) sequence_number(6) length(2) fragment
    handshake  msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3) body
    ClientHello body
               client_version(2) random(32) session_id<0..32> cookie<0..2^8-1>
               cipher_suites<2..2^16-2> compression_methods<1..2^8-1> extensions

Every parser here takes any bytes and returns None for what it does not
accept; none raises (docs/architecture.md rule 8).
"""

from __future__ import annotations

from dataclasses import dataclass

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
TLS12_CID = 25  #: RFC 9146 connection ID records (not supported: dropped)
CONTENT_TYPES = frozenset({CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, TLS12_CID})

CLIENT_HELLO = 1
HELLO_VERIFY_REQUEST = 3

HEADER_LENGTH = 13
HANDSHAKE_HEADER_LENGTH = 12
#: the largest record: 2^14 bytes of plaintext and 2,048 of expansion (RFC 6347 §4.1)
MAX_RECORD_LENGTH = 2**14 + 2048
#: the longest cookie DTLS 1.2 allows (RFC 6347 §4.2.1)
MAX_COOKIE_LENGTH = 255
#: DTLS 1.0's version number, which a HelloVerifyRequest carries whatever is negotiated
#: later (RFC 6347 §4.2.1)
DTLS_1_0 = 0xFEFF
DTLS_1_2 = 0xFEFD


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """One record of a datagram: its header, and where its fragment lies in the datagram."""

    content_type: int
    version: int
    epoch: int
    sequence: int
    start: int  #: offset of the record (its header) in the datagram
    length: int  #: bytes of fragment after the 13-byte header

    @property
    def end(self) -> int:
        return self.start + HEADER_LENGTH + self.length


def split_records(datagram: bytes) -> list[RecordHeader] | None:
    """The records of a datagram, or None unless it is one or more whole records.

    A datagram whose last record is cut short, or that carries a byte that is
    no record, is refused whole (RFC 6347 §4.1.2.7 lets a receiver discard
    invalid records silently): the engine only ever sees whole records.
    """
    records: list[RecordHeader] = []
    size = len(datagram)
    start = 0
    while start < size:
        if size - start < HEADER_LENGTH:
            return None
        content_type = datagram[start]
        if content_type not in CONTENT_TYPES:
            return None
        version = (datagram[start + 1] << 8) | datagram[start + 2]
        if datagram[start + 1] != 0xFE:  # every DTLS version is 0xFEnn
            return None
        length = (datagram[start + 11] << 8) | datagram[start + 12]
        if length > MAX_RECORD_LENGTH or start + HEADER_LENGTH + length > size:
            return None
        records.append(
            RecordHeader(
                content_type,
                version,
                (datagram[start + 3] << 8) | datagram[start + 4],
                int.from_bytes(datagram[start + 5 : start + 11], "big"),
                start,
                length,
            )
        )
        start += HEADER_LENGTH + length
    return records or None


@dataclass(frozen=True, slots=True)
class ClientHello:
    """An unfragmented ClientHello in the first record of a datagram (epoch 0)."""

    record_sequence: int  #: the record's sequence number, echoed in a HelloVerifyRequest
    message_seq: int
    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    #: cipher suites, compression methods and extensions, as sent: the cookie covers them
    parameters: bytes


def is_client_hello(datagram: bytes, record: RecordHeader) -> bool:
    """Whether ``record`` (of ``datagram``) is a plaintext ClientHello (epoch 0)."""
    return (
        record.content_type == HANDSHAKE
        and record.epoch == 0
        and record.length >= HANDSHAKE_HEADER_LENGTH
        and datagram[record.start + HEADER_LENGTH] == CLIENT_HELLO
    )


def parse_client_hello(datagram: bytes) -> ClientHello | None:
    """The ClientHello opening ``datagram``, or None.

    Only a ClientHello that fits one record and one fragment is taken (as
    OpenSSL's ``DTLSv1_listen`` does): a client sends its ClientHello whole,
    and reassembling fragments would mean keeping state for a source that
    has not yet proved its address.
    """
    records = split_records(datagram)
    if records is None:
        return None
    record = records[0]
    if not is_client_hello(datagram, record):
        return None
    at = record.start + HEADER_LENGTH
    end = record.end
    length = int.from_bytes(datagram[at + 1 : at + 4], "big")
    message_seq = (datagram[at + 4] << 8) | datagram[at + 5]
    offset = int.from_bytes(datagram[at + 6 : at + 9], "big")
    fragment = int.from_bytes(datagram[at + 9 : at + 12], "big")
    at += HANDSHAKE_HEADER_LENGTH
    if offset != 0 or fragment != length or at + length > end or length < 2 + 32 + 1 + 1:
        return None
    body_end = at + length
    client_version = (datagram[at] << 8) | datagram[at + 1]
    random = datagram[at + 2 : at + 34]
    at += 34
    session_length = datagram[at]
    if session_length > 32 or at + 1 + session_length + 1 > body_end:
        return None
    session_id = datagram[at + 1 : at + 1 + session_length]
    at += 1 + session_length
    cookie_length = datagram[at]
    if at + 1 + cookie_length > body_end:
        return None
    cookie = datagram[at + 1 : at + 1 + cookie_length]
    at += 1 + cookie_length
    return ClientHello(
        record_sequence=record.sequence,
        message_seq=message_seq,
        client_version=client_version,
        random=bytes(random),
        session_id=bytes(session_id),
        cookie=bytes(cookie),
        parameters=bytes(datagram[at:body_end]),
    )


def hello_verify_request(hello: ClientHello, cookie: bytes) -> bytes:
    """The HelloVerifyRequest answering ``hello`` with ``cookie`` (RFC 6347 §4.2.1).

    Its record carries DTLS 1.0's version and the ClientHello's record
    sequence number, and its handshake message the message_seq of the
    ClientHello, as §4.2.1 and §4.2.2 ask; the body's server_version is
    DTLS 1.0 too, whatever is negotiated later.
    """
    if len(cookie) > MAX_COOKIE_LENGTH:
        raise ValueError("a DTLS 1.2 cookie has at most 255 bytes")
    body = DTLS_1_0.to_bytes(2, "big") + bytes([len(cookie)]) + cookie
    size = len(body).to_bytes(3, "big")
    message = (
        bytes([HELLO_VERIFY_REQUEST])
        + size
        + hello.message_seq.to_bytes(2, "big")
        + b"\0\0\0"
        + size
        + body
    )
    return (
        bytes([HANDSHAKE])
        + DTLS_1_0.to_bytes(2, "big")
        + b"\0\0"  # epoch 0
        + hello.record_sequence.to_bytes(6, "big")
        + len(message).to_bytes(2, "big")
        + message
    )


def describe_records(datagram: bytes) -> str:
    """A short description of a datagram's records, for traces and diagnostics:
    ``handshake(epoch 0, 154 bytes), change_cipher_spec(epoch 0, 1 byte)``."""
    records = split_records(datagram)
    if records is None:
        return f"{len(datagram)} bytes that are no DTLS records"
    parts = []
    for record in records:
        name = _NAMES.get(record.content_type, str(record.content_type))
        unit = "byte" if record.length == 1 else "bytes"
        parts.append(f"{name}(epoch {record.epoch}, {record.length} {unit})")
    return ", ".join(parts)


_NAMES = {
    CHANGE_CIPHER_SPEC: "change_cipher_spec",
    ALERT: "alert",
    HANDSHAKE: "handshake",
    APPLICATION_DATA: "application_data",
    TLS12_CID: "tls12_cid",
}
