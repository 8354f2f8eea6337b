"""Framing of CoAP over TCP, TLS and WebSockets (RFC 8323 §3.2, §4.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.stream import (
    FrameReader,
    _length_header,
    decode_frame,
    decode_ws,
    encode_frame,
    encode_ws,
    frame_message,
)
from coapkit.codec.types import MessageType
from coapkit.errors import DecodeError, EncodeError

GET_A = Options.build(uri_path=["a"])


def test_a_small_frame_by_hand() -> None:
    # Len 2 (option 11 "a": 0xB1 0x61), TKL 1; code 0.01; token 0x01.
    assert encode_frame(Code.GET, b"\x01", GET_A, b"") == bytes.fromhex("210101b161")
    message = decode_frame(bytes.fromhex("210101b161"))
    assert (message.code, message.token, message.options.uri_path) == (Code.GET, b"\x01", ("a",))
    assert (message.mtype, message.mid) == (MessageType.CON, 0)  # meaningless over streams


def test_a_websocket_message_by_hand() -> None:
    # Len 0 always; TKL 1; code; token; options.
    assert encode_ws(Code.GET, b"\x01", GET_A, b"") == bytes.fromhex("0101 01b161")
    assert decode_ws(bytes.fromhex("010101b161")).options.uri_path == ("a",)


@pytest.mark.parametrize(
    ("payload_size", "nibble", "extension"),
    [
        (0, 0, 0),
        (11, 12, 0),  # 12 = marker + 11: the largest length in the nibble
        (12, 13, 1),  # 13: one extension byte
        (267, 13, 1),  # 268 = 13 + 255
        (268, 14, 2),  # 269: two bytes
        (65803, 14, 2),  # 65804 = 269 + 65535
        (65804, 15, 4),  # 65805: four bytes
        (100_000, 15, 4),
    ],
)
def test_length_encodings_round_trip(payload_size: int, nibble: int, extension: int) -> None:
    payload = bytes(range(256)) * (payload_size // 256) + bytes(payload_size % 256)
    frame = encode_frame(Code.CONTENT, b"tk", Options(), payload)
    assert frame[0] >> 4 == nibble and frame[0] & 0x0F == 2
    assert len(frame) == 1 + extension + 1 + 2 + (len(payload) + 1 if payload else 0)
    message = decode_frame(frame)
    assert message.payload == payload and message.token == b"tk"
    assert message.code == Code.CONTENT


def test_signals_are_framed_like_any_message() -> None:
    csm = encode_frame(0xE1, b"", Options(((2, (1152).to_bytes(2, "big")), (4, b""))), b"")
    message = decode_frame(csm)
    assert message.code == 0xE1 and message.options.items == ((2, b"\x04\x80"), (4, b""))


@given(
    code=st.sampled_from([Code.GET, Code.POST, Code.CONTENT, Code.NOT_FOUND, 0xE2, 0xE3, 0]),
    token=st.binary(max_size=8),
    payload=st.binary(max_size=3000),
    path=st.lists(st.text(max_size=20), max_size=4),
)
def test_round_trip(code: int, token: bytes, payload: bytes, path: list[str]) -> None:
    options = Options.build(uri_path=path) if path else Options()
    for encode, decode in ((encode_frame, decode_frame), (encode_ws, decode_ws)):
        message = decode(encode(code, token, options, payload))
        assert (message.code, message.token, message.options, message.payload) == (
            code,
            token,
            options,
            payload,
        )


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=600), min_size=1, max_size=6), st.data())
def test_any_chunking_gives_the_same_messages(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(
        encode_frame(Code.CONTENT, bytes([n]), Options(), p) for n, p in enumerate(payloads)
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = FrameReader(max_size=10_000)
    got: list[Message] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got += reader.feed(stream[start:cut])
        start = cut
    assert [m.payload for m in got] == payloads and reader.buffered == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("09", "token length 9 is reserved"),
        ("0f", "token length 15 is reserved"),
        ("0020", "code 1.00 is in a reserved class"),  # class 1
        ("00c0", "code 6.00 is in a reserved class"),
        ("20 01 f0 00", "option delta nibble 15 is reserved"),
        ("10 45 ff", "payload marker is not followed by a payload"),
        ("20 01 b5 61", "runs past the end"),  # option of 5 bytes in a 2-byte body
    ],
)
def test_malformed_frames(frame: str, reason: str) -> None:
    reader = FrameReader(max_size=1152)
    with pytest.raises(DecodeError, match=reason):
        reader.feed(bytes.fromhex(frame))
    assert reader.failed and reader.buffered == 0
    with pytest.raises(DecodeError, match="already failed"):
        reader.feed(b"\x00\x45")  # no resynchronising after an error


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("01", "shorter than its 2-byte header"),
        ("1145", "Len is 1 in a WebSocket message"),
        ("0945", "token length 9"),
        ("0445 0102", "token of 4 bytes runs past the end"),
        ("00e0", None),  # 7.00 is a signal code, decoded (the connection layer judges it)
        ("0020", "reserved class"),
    ],
)
def test_malformed_websocket_messages(data: str, reason: str | None) -> None:
    raw = bytes.fromhex(data)
    if reason is None:
        assert decode_ws(raw).code == 0xE0
        return
    with pytest.raises(DecodeError, match=reason):
        decode_ws(raw)


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    reader = FrameReader(max_size=1152)
    header = bytes((0xF0, 0x7F, 0xFF, 0xFF, 0xFF))  # a body of 2**31 + 65805 bytes
    with pytest.raises(DecodeError, match="larger than the 1152 announced"):
        reader.feed(header)  # not a byte of the body buffered first
    fits = FrameReader(max_size=1152)
    assert fits.feed(encode_frame(Code.CONTENT, b"", Options(), bytes(1100)))[0].payload


def test_a_partial_header_waits_for_more() -> None:
    reader = FrameReader(max_size=100_000)
    frame = encode_frame(Code.CONTENT, b"abcd", Options(), bytes(70_000))
    assert reader.feed(frame[:1]) == [] and reader.feed(frame[1:3]) == []
    assert reader.buffered == 3
    [message] = reader.feed(frame[3:])
    assert len(message.payload) == 70_000 and reader.buffered == 0


def test_encoding_refuses_what_cannot_be_framed() -> None:
    with pytest.raises(EncodeError, match="at most 8 bytes"):
        encode_frame(Code.GET, bytes(9), Options(), b"")
    with pytest.raises(EncodeError, match=r"outside 0\.\.255"):
        encode_ws(256, b"", Options(), b"")
    message = Message(code=Code.GET, token=b"t", options=GET_A)
    assert decode_frame(frame_message(message)).options == GET_A


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_decoding_is_total(data: bytes) -> None:
    """Any bytes: messages or DecodeError, nothing else."""
    with contextlib.suppress(DecodeError):
        FrameReader(max_size=1152).feed(data)
    with contextlib.suppress(DecodeError):
        decode_ws(data)


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 14, 267, 268, 269, 270, 65804, 65805, 65806])
def test_every_length_form_at_its_edges_round_trips(size: int) -> None:
    # body = options + 0xFF + payload: Len 0..12, 13 (+1 byte), 14 (+2), 15 (+4)
    payload = b"p" * size
    data = encode_frame(Code.CONTENT, b"\x07", Options(), payload)
    body = size + 1 if size else 0
    nibble = data[0] >> 4
    assert nibble == (body if body < 13 else 13 if body < 269 else 14 if body < 65805 else 15)
    message = decode_frame(data)
    assert (message.code, message.token, message.payload) == (Code.CONTENT, b"\x07", payload)
    assert data == b"".join(
        (
            _length_header(body, 1),
            bytes((Code.CONTENT,)),
            b"\x07",
            b"\xff" + payload if size else b"",
        )
    )
