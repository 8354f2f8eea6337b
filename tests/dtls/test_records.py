"""DTLS record headers and the ClientHello, read without decrypting (RFC 6347 §4.1, §4.2.1),
and the stateless cookies (coapkit.dtls.cookies): any bytes in, never an exception out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coapkit.dtls.cookies import CookieJar
from coapkit.dtls.records import (
    DTLS_1_0,
    HANDSHAKE,
    HELLO_VERIFY_REQUEST,
    describe_records,
    hello_verify_request,
    is_client_hello,
    parse_client_hello,
    split_records,
)


def record(content_type: int, epoch: int, sequence: int, fragment: bytes) -> bytes:
    return (
        bytes([content_type, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + sequence.to_bytes(6, "big")
        + len(fragment).to_bytes(2, "big")
        + fragment
    )


def client_hello(cookie: bytes = b"", *, random: bytes = bytes(range(32)), seq: int = 0) -> bytes:
    body = (
        b"\xfe\xfd"
        + random
        + b"\x00"  # no session ID
        + bytes([len(cookie)])
        + cookie
        + b"\x00\x02\xc0\xa8"  # one cipher suite: TLS_PSK_WITH_AES_128_CCM_8
        + b"\x01\x00"  # no compression
    )
    length = len(body).to_bytes(3, "big")
    message = b"\x01" + length + seq.to_bytes(2, "big") + b"\x00\x00\x00" + length + body
    return record(HANDSHAKE, 0, 7 + seq, message)


def test_records_of_a_datagram() -> None:
    datagram = record(22, 0, 1, b"abc") + record(20, 0, 2, b"\x01") + record(23, 1, 0, b"x" * 40)
    records = split_records(datagram)
    assert records is not None
    assert [(r.content_type, r.epoch, r.sequence, r.length) for r in records] == [
        (22, 0, 1, 3),
        (20, 0, 2, 1),
        (23, 1, 0, 40),
    ]
    assert records[-1].end == len(datagram)
    assert describe_records(datagram) == (
        "handshake(epoch 0, 3 bytes), change_cipher_spec(epoch 0, 1 byte), "
        "application_data(epoch 1, 40 bytes)"
    )


def test_anything_but_whole_records_is_refused() -> None:
    good = record(23, 1, 5, b"data")
    assert split_records(good) is not None
    assert split_records(good[:-1]) is None  # cut short
    assert split_records(good + b"\x17") is None  # a byte that is no record
    assert split_records(b"") is None
    assert split_records(b"\x99" + good[1:]) is None  # no such content type
    assert split_records(good[:1] + b"\x03\x03" + good[3:]) is None  # TLS, not DTLS


def test_a_client_hello_and_its_hello_verify_request() -> None:
    datagram = client_hello(seq=0)
    records = split_records(datagram)
    assert records is not None and is_client_hello(datagram, records[0])
    hello = parse_client_hello(datagram)
    assert hello is not None
    assert hello.client_version == 0xFEFD and hello.random == bytes(range(32))
    assert hello.cookie == b"" and hello.session_id == b"" and hello.record_sequence == 7
    reply = hello_verify_request(hello, b"C" * 17)
    [header] = split_records(reply)
    # §4.2.1: DTLS 1.0's version, the ClientHello's record sequence number
    assert (header.content_type, header.version, header.epoch, header.sequence) == (
        HANDSHAKE,
        DTLS_1_0,
        0,
        7,
    )
    assert reply[13] == HELLO_VERIFY_REQUEST
    assert reply[13 + 12 :] == b"\xfe\xff\x11" + b"C" * 17
    with_cookie = parse_client_hello(client_hello(b"C" * 17, seq=1))
    assert with_cookie is not None and with_cookie.cookie == b"C" * 17


def test_fragmented_or_malformed_hellos_are_not_taken() -> None:
    datagram = bytearray(client_hello())
    datagram[13 + 9 : 13 + 12] = (10).to_bytes(3, "big")  # a fragment of it
    assert parse_client_hello(bytes(datagram)) is None
    datagram = bytearray(client_hello())
    datagram[13 + 12 + 34] = 33  # a session ID longer than 32 bytes
    assert parse_client_hello(bytes(datagram)) is None
    assert parse_client_hello(record(HANDSHAKE, 1, 0, client_hello()[13:])) is None  # epoch 1


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_parsers_never_raise(data: bytes) -> None:
    records = split_records(data)
    if records is not None:
        assert records[-1].end == len(data)
        is_client_hello(data, records[0])
    parse_client_hello(data)
    describe_records(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=13 + 12, max_size=200), st.integers(0, 200))
def test_mutated_hellos_never_raise(tail: bytes, cut: int) -> None:
    datagram = client_hello() + tail
    parse_client_hello(datagram[:cut])
    mutated = bytearray(client_hello())
    for index, byte in enumerate(tail[:20]):
        mutated[(index * 7 + cut) % len(mutated)] = byte
    parse_client_hello(bytes(mutated))


def test_cookies_are_bound_to_source_hello_and_time() -> None:
    jar = CookieJar(b"k" * 32, lifetime=60.0)
    hello = parse_client_hello(client_hello())
    assert hello is not None
    cookie = jar.make(("192.0.2.1", 5000), hello, now=10.0)
    assert len(cookie) == 17

    def returned(cookie: bytes, random: bytes = bytes(range(32))) -> object:
        parsed = parse_client_hello(client_hello(cookie, random=random, seq=1))
        assert parsed is not None
        return parsed

    assert jar.check(("192.0.2.1", 5000), returned(cookie), now=11.0)
    assert jar.check(("192.0.2.1", 5000), returned(cookie), now=119.0)  # the next window
    assert not jar.check(("192.0.2.1", 5000), returned(cookie), now=121.0)  # two later
    assert not jar.check(("192.0.2.1", 5001), returned(cookie), now=11.0)  # another port
    assert not jar.check(("192.0.2.1", 5000), returned(cookie, bytes(32)), now=11.0)
    assert not jar.check(("192.0.2.1", 5000), returned(cookie[:-1] + b"\0"), now=11.0)
    assert not jar.check(("192.0.2.1", 5000), returned(b""), now=11.0)
    other = CookieJar(b"j" * 32)
    assert not other.check(("192.0.2.1", 5000), returned(cookie), now=11.0)
