"""Options (RFC 7252 §3.1, §3.2, §5.4, §5.10), the option registry and Block values (RFC 7959)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from coapkit.codec.option_registry import (
    BY_ATTRIBUTE,
    BY_NAME,
    REGISTRY,
    OptionFormat,
    OptionNumber,
    OptionSpec,
    decode_uint,
    encode_uint,
    is_critical,
    is_no_cache_key,
    is_unsafe,
    lookup_option,
    option_name,
    option_spec,
)
from coapkit.codec.options import (
    EMPTY_OPTIONS,
    BlockValue,
    Options,
    decode_value,
    encode_value,
    option_problems,
)
from coapkit.errors import CoapError, OptionValueError

N = OptionNumber

# -- the registry ----------------------------------------------------------------------

# (number, name, format, min, max, repeatable), written out from RFC 7252 §5.10 Table 4,
# RFC 7641, 7959, 7967, 8613, 8768, 9175, 9177 and 9668.
REGISTERED = [
    (1, "If-Match", OptionFormat.OPAQUE, 0, 8, True),
    (3, "Uri-Host", OptionFormat.STRING, 1, 255, False),
    (4, "ETag", OptionFormat.OPAQUE, 1, 8, True),
    (5, "If-None-Match", OptionFormat.EMPTY, 0, 0, False),
    (6, "Observe", OptionFormat.UINT, 0, 3, False),
    (7, "Uri-Port", OptionFormat.UINT, 0, 2, False),
    (8, "Location-Path", OptionFormat.STRING, 0, 255, True),
    (9, "OSCORE", OptionFormat.OPAQUE, 0, 255, False),
    (11, "Uri-Path", OptionFormat.STRING, 0, 255, True),
    (12, "Content-Format", OptionFormat.UINT, 0, 2, False),
    (14, "Max-Age", OptionFormat.UINT, 0, 4, False),
    (15, "Uri-Query", OptionFormat.STRING, 0, 255, True),
    (16, "Hop-Limit", OptionFormat.UINT, 1, 1, False),
    (17, "Accept", OptionFormat.UINT, 0, 2, False),
    (19, "Q-Block1", OptionFormat.UINT, 0, 3, False),
    (20, "Location-Query", OptionFormat.STRING, 0, 255, True),
    (21, "EDHOC", OptionFormat.EMPTY, 0, 0, False),
    (23, "Block2", OptionFormat.UINT, 0, 3, False),
    (27, "Block1", OptionFormat.UINT, 0, 3, False),
    (28, "Size2", OptionFormat.UINT, 0, 4, False),
    (31, "Q-Block2", OptionFormat.UINT, 0, 3, True),
    (35, "Proxy-Uri", OptionFormat.STRING, 1, 1034, False),
    (39, "Proxy-Scheme", OptionFormat.STRING, 1, 255, False),
    (60, "Size1", OptionFormat.UINT, 0, 4, False),
    (252, "Echo", OptionFormat.OPAQUE, 1, 40, False),
    (258, "No-Response", OptionFormat.UINT, 0, 1, False),
    (292, "Request-Tag", OptionFormat.OPAQUE, 0, 8, True),
]


def test_registry_matches_the_rfcs() -> None:
    assert {
        n: (s.name, s.format, s.min_length, s.max_length, s.repeatable) for n, s in REGISTRY.items()
    } == {number: tuple(rest) for number, *rest in REGISTERED}
    assert set(REGISTRY) == {int(n) for n in OptionNumber}
    for number, spec in REGISTRY.items():
        assert spec.number == number
        assert option_spec(number) is spec
        assert BY_NAME[spec.name.lower()] is spec
        assert BY_ATTRIBUTE[spec.attribute] is spec
    assert len(BY_NAME) == len(BY_ATTRIBUTE) == len(REGISTRY)


# C(ritical), U(nsafe), N(oCacheKey) from RFC 7252 §5.10 Table 4 and the later RFCs.
PROPERTIES = {
    1: "C",
    3: "CU",
    4: "",
    5: "C",
    6: "U",  # Observe (RFC 7641 §2)
    7: "CU",
    8: "",
    9: "C",  # OSCORE (RFC 8613 §2): critical, safe to forward
    11: "CU",
    12: "",
    14: "U",
    15: "CU",
    16: "",  # Hop-Limit (RFC 8768 §3)
    17: "C",
    19: "CU",  # Q-Block1 (RFC 9177 §4)
    20: "",
    21: "C",  # EDHOC (RFC 9668 §3.1): critical, safe to forward
    23: "CU",
    27: "CU",
    28: "N",
    31: "CU",  # Q-Block2 (RFC 9177 §4)
    35: "CU",
    39: "CU",
    60: "N",
    252: "N",  # Echo (RFC 9175 §2.2.1)
    258: "U",  # No-Response (RFC 7967 §2)
    292: "",  # Request-Tag (RFC 9175 §3.2.1): elective, safe to forward, in the cache key
}


@pytest.mark.parametrize(("number", "flags"), PROPERTIES.items())
def test_option_properties(number: int, flags: str) -> None:
    spec = REGISTRY[number]
    assert (spec.critical, spec.unsafe, spec.no_cache_key) == (
        "C" in flags,
        "U" in flags,
        "N" in flags,
    )
    assert is_critical(number) == ("C" in flags)
    assert is_unsafe(number) == ("U" in flags)
    assert is_no_cache_key(number) == ("N" in flags)


def test_properties_of_unknown_numbers() -> None:
    # §5.4.6: the properties are a function of the number alone.
    assert is_critical(65001) and not is_unsafe(65001)
    assert not is_critical(65000)
    assert is_unsafe(65002)
    assert is_no_cache_key(0x1C) and is_no_cache_key(0x3C) and is_no_cache_key(0xFFFC)
    assert is_no_cache_key(0x1D)  # the critical bit is not part of the test (0x1e mask)
    assert not is_no_cache_key(0x1E)  # unsafe
    assert not is_no_cache_key(0x0C)


def test_spec_attribute_and_length_ok() -> None:
    spec = REGISTRY[N.IF_NONE_MATCH]
    assert spec.attribute == "if_none_match"
    assert REGISTRY[N.ETAG].attribute == "etag"
    assert REGISTRY[N.Q_BLOCK1].attribute == "q_block1"
    assert spec.length_ok(0) and not spec.length_ok(1)
    hop = REGISTRY[N.HOP_LIMIT]
    assert not hop.length_ok(0) and hop.length_ok(1) and not hop.length_ok(2)
    with pytest.raises(AttributeError):
        spec.number = 6  # type: ignore[misc]


def test_option_name_and_spec() -> None:
    assert option_name(11) == "Uri-Path"
    assert option_name(N.ECHO) == "Echo"
    assert option_name(0) == "Option 0"
    assert option_name(65000) == "Option 65000"
    assert option_spec(2) is None
    assert isinstance(option_spec(12), OptionSpec)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("11", 11),
        (" 0 ", 0),
        ("65535", 65535),
        ("Uri-Path", 11),
        ("uri-path", 11),
        ("URI-PATH", 11),
        ("uri_path", 11),
        ("ETag", 4),
        ("etag", 4),
        ("if_none_match", 5),
        ("Q-Block2", 31),
        ("q_block2", 31),
        ("oscore", 9),
    ],
)
def test_lookup_option(text: str, number: int) -> None:
    assert lookup_option(text) == number


def test_lookup_option_errors() -> None:
    with pytest.raises(ValueError, match="option number 65536 is above 65535"):
        lookup_option("65536")
    with pytest.raises(ValueError, match="unknown option name: 'Uri Path'"):
        lookup_option("Uri Path")
    with pytest.raises(ValueError, match="unknown option name: ''"):
        lookup_option("")


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0, b""),
        (1, b"\x01"),
        (255, b"\xff"),
        (256, b"\x01\x00"),
        (5683, b"\x16\x33"),
        (0xFFFFFF, b"\xff\xff\xff"),
        (0x1000000, b"\x01\x00\x00\x00"),
        (2**64, b"\x01" + bytes(8)),
    ],
)
def test_uint_encoding(value: int, raw: bytes) -> None:
    # §3.2: shortest big-endian form, zero is the empty string.
    assert encode_uint(value) == raw
    assert decode_uint(raw) == value


def test_uint_encoding_edges() -> None:
    assert decode_uint(b"\x00\x00\x05") == 5  # leading zeros are accepted on receipt
    assert decode_uint(b"\x00") == 0
    with pytest.raises(ValueError, match="cannot be negative"):
        encode_uint(-1)


# -- Block values (RFC 7959 §2.2) ------------------------------------------------------


@pytest.mark.parametrize(
    ("uint", "num", "more", "szx"),
    [
        (0x00, 0, False, 0),
        (0x06, 0, False, 6),
        (0x0E, 0, True, 6),
        (0x1E, 1, True, 6),
        (0x32, 3, False, 2),
        (0x07, 0, False, 7),  # reserved szx 7 is still representable
        (0xFFFFFF, 0xFFFFF, True, 7),
    ],
)
def test_block_value_uint(uint: int, num: int, more: bool, szx: int) -> None:
    block = BlockValue.from_uint(uint)
    assert block == (num, more, szx)
    assert (block.num, block.more, block.szx) == (num, more, szx)
    assert block.to_uint() == uint


def test_block_value_round_trip_all_small_values() -> None:
    for uint in range(1 << 12):
        assert BlockValue.from_uint(uint).to_uint() == uint


@pytest.mark.parametrize(
    ("szx", "size"), [(0, 16), (1, 32), (2, 64), (3, 128), (4, 256), (5, 512), (6, 1024)]
)
def test_block_size(szx: int, size: int) -> None:
    assert BlockValue(0, False, szx).size == size
    assert BlockValue.szx_for_size(size) == szx
    assert BlockValue(5, True, szx).offset == 5 * size


def test_bert_blocks_count_in_1024_byte_units() -> None:
    """szx 7 is BERT (RFC 8323 §6): NUM counts 1024-byte blocks, as with szx 6."""
    bert = BlockValue(3, True, 7)
    assert (bert.size, bert.offset, bert.bert) == (1024, 3072, True)
    assert not BlockValue(3, True, 6).bert
    assert repr(bert) == "BlockValue(num=3, more=True, size=BERT)"


@pytest.mark.parametrize("size", [0, -16, 8, 15, 17, 48, 1000, 2048, 4096])
def test_szx_for_bad_size(size: int) -> None:
    with pytest.raises(ValueError, match=f"power of two from 16 to 1024, not {size}"):
        BlockValue.szx_for_size(size)


def test_block_value_repr() -> None:
    assert repr(BlockValue(2, True, 6)) == "BlockValue(num=2, more=True, size=1024)"


# -- typed accessors: every registered option, built by keyword and read back ----------

# attribute -> (value given to build(), value read back, raw values on the wire)
TYPED: dict[str, tuple[Any, Any, list[bytes]]] = {
    "if_match": ([b"", b"\x01\x02"], (b"", b"\x01\x02"), [b"", b"\x01\x02"]),
    "uri_host": ("example.com", "example.com", [b"example.com"]),
    "etag": ([b"\xaa", b"\xbb\xcc"], b"\xaa", [b"\xaa", b"\xbb\xcc"]),
    "if_none_match": (True, True, [b""]),
    "observe": (0, 0, [b""]),
    "uri_port": (5683, 5683, [b"\x16\x33"]),
    "location_path": (["a", "b c"], ("a", "b c"), [b"a", b"b c"]),
    "oscore": (b"\x09\x00", b"\x09\x00", [b"\x09\x00"]),
    "uri_path": (
        ["sensors", "temp\u00e9"],
        ("sensors", "temp\u00e9"),
        [b"sensors", b"temp\xc3\xa9"],
    ),
    "content_format": (50, 50, [b"\x32"]),
    "max_age": (0xFFFFFFFF, 0xFFFFFFFF, [b"\xff\xff\xff\xff"]),
    "uri_query": (["a=1", ""], ("a=1", ""), [b"a=1", b""]),
    "hop_limit": (16, 16, [b"\x10"]),
    "accept": (60, 60, [b"\x3c"]),
    "q_block1": (BlockValue(2, True, 6), BlockValue(2, True, 6), [b"\x2e"]),
    "location_query": ("x=1", ("x=1",), [b"x=1"]),
    "edhoc": (True, True, [b""]),
    "block2": (BlockValue(0, False, 2), BlockValue(0, False, 2), [b"\x02"]),
    "block1": (BlockValue(1025, True, 6), BlockValue(1025, True, 6), [b"\x40\x1e"]),
    "size2": (123456, 123456, [b"\x01\xe2\x40"]),
    "q_block2": ([BlockValue(3, False, 0), 0x4E], BlockValue(3, False, 0), [b"\x30", b"\x4e"]),
    "proxy_uri": ("coap://example.com/x", "coap://example.com/x", [b"coap://example.com/x"]),
    "proxy_scheme": ("coap", "coap", [b"coap"]),
    "size1": (1, 1, [b"\x01"]),
    "echo": (b"\x01" * 40, b"\x01" * 40, [b"\x01" * 40]),
    "no_response": (26, 26, [b"\x1a"]),
    "request_tag": ([b"", b"t1"], (b"", b"t1"), [b"", b"t1"]),
}

ABSENT: dict[str, Any] = {
    "if_match": (),
    "etag": None,
    "if_none_match": False,
    "location_path": (),
    "uri_path": (),
    "uri_query": (),
    "location_query": (),
    "edhoc": False,
    "request_tag": (),
}


def test_every_registered_option_has_an_accessor_and_a_case_here() -> None:
    assert set(TYPED) == set(BY_ATTRIBUTE)
    for attribute in BY_ATTRIBUTE:
        assert isinstance(getattr(Options, attribute), property)


@pytest.mark.parametrize("attribute", sorted(TYPED))
def test_typed_accessor(attribute: str) -> None:
    given, read, raw = TYPED[attribute]
    spec = BY_ATTRIBUTE[attribute]
    options = Options.build(**{attribute: given})
    assert getattr(options, attribute) == read
    assert options.get_all(spec.number) == raw
    assert options.items == tuple((spec.number, r) for r in raw)
    # The same bytes read through the raw constructor give the same typed value.
    assert getattr(Options((spec.number, r) for r in raw), attribute) == read
    # Absent: None for single values, () for sequences, False for flags.
    assert getattr(EMPTY_OPTIONS, attribute) == ABSENT.get(attribute)
    # Removing by keyword.
    assert getattr(options.replace(**{attribute: None}), attribute) == ABSENT.get(attribute)


def test_etags() -> None:
    options = Options.build(etag=[b"\x01", b"\x02"])
    assert options.etag == b"\x01"
    assert options.etags == (b"\x01", b"\x02")
    assert EMPTY_OPTIONS.etags == ()


def test_uint_accessors_accept_leading_zeros() -> None:
    assert Options([(N.CONTENT_FORMAT, b"\x00\x32")]).content_format == 50
    assert Options([(N.OBSERVE, b"\x00\x00\x00")]).observe == 0
    assert Options([(N.BLOCK2, b"\x00\x00\x16")]).block2 == BlockValue(1, False, 6)


@pytest.mark.parametrize(
    ("number", "raw", "attribute", "reason"),
    [
        (N.URI_PORT, b"\x01\x02\x03", "uri_port", "Uri-Port must be 0 to 2 bytes, not 3"),
        (N.OBSERVE, b"\x00" * 4, "observe", "Observe must be 0 to 3 bytes, not 4"),
        (N.BLOCK2, b"\x00" * 4, "block2", "Block2 must be 0 to 3 bytes, not 4"),
        (N.MAX_AGE, b"\x00" * 5, "max_age", "Max-Age must be 0 to 4 bytes, not 5"),
        (N.NO_RESPONSE, b"\x00" * 2, "no_response", "No-Response must be 0 to 1 bytes, not 2"),
        (N.URI_HOST, b"", "uri_host", "Uri-Host must be 1 to 255 bytes, not 0"),
        (N.URI_PATH, b"x" * 256, "uri_path", "Uri-Path must be 0 to 255 bytes, not 256"),
        (N.URI_PATH, b"\xc3\x28", "uri_path", "Uri-Path is not valid UTF-8"),
        (N.PROXY_URI, b"\xff", "proxy_uri", "Proxy-Uri is not valid UTF-8"),
        (N.LOCATION_QUERY, b"\x80", "location_query", "Location-Query is not valid UTF-8"),
    ],
)
def test_typed_accessor_rejects_bad_values(
    number: int, raw: bytes, attribute: str, reason: str
) -> None:
    options = Options([(number, raw)])
    with pytest.raises(OptionValueError) as info:
        getattr(options, attribute)
    assert info.value.reason == reason
    assert str(info.value) == reason
    assert info.value.number == number
    assert isinstance(info.value, ValueError) and isinstance(info.value, CoapError)


# -- encode_value / decode_value -----------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "value", "raw"),
    [
        (N.OBSERVE, 0, b""),
        (N.OBSERVE, 0xFFFFFF, b"\xff\xff\xff"),
        (N.BLOCK1, BlockValue(0, True, 6), b"\x0e"),
        (N.URI_PATH, "", b""),
        (N.URI_PATH, "\u00fc", b"\xc3\xbc"),
        (N.ETAG, bytearray(b"\x01"), b"\x01"),
        (N.ETAG, memoryview(b"\x01\x02"), b"\x01\x02"),
        (N.IF_MATCH, b"", b""),
        (N.IF_NONE_MATCH, True, b""),
        (N.IF_NONE_MATCH, b"", b""),
    ],
)
def test_encode_value(number: int, value: Any, raw: bytes) -> None:
    encoded = encode_value(REGISTRY[number], value)
    assert encoded == raw
    assert type(encoded) is bytes


@pytest.mark.parametrize(
    ("number", "value", "reason"),
    [
        (N.URI_PORT, "5683", "Uri-Port takes an integer, not '5683'"),
        (N.URI_PORT, True, "Uri-Port takes an integer, not True"),
        (N.URI_PORT, 1.0, "Uri-Port takes an integer, not 1.0"),
        (N.URI_PORT, b"\x01", "Uri-Port takes an integer, not b'\\x01'"),
        (N.URI_PORT, -1, "Uri-Port cannot be negative"),
        (N.URI_PORT, 65536, "Uri-Port must be 0 to 2 bytes, not 3"),
        (N.OBSERVE, 1 << 24, "Observe must be 0 to 3 bytes, not 4"),
        (N.BLOCK2, BlockValue(1 << 20, False, 0), "Block2 must be 0 to 3 bytes, not 4"),
        (N.HOP_LIMIT, 0, "Hop-Limit must be 1 to 1 bytes, not 0"),
        (N.URI_PATH, b"a", "Uri-Path takes a string, not b'a'"),
        (N.URI_PATH, 1, "Uri-Path takes a string, not 1"),
        (N.URI_PATH, "x" * 256, "Uri-Path must be 0 to 255 bytes, not 256"),
        # 128 characters, 256 bytes: the bound is on the encoded length.
        (N.URI_PATH, "\u00e9" * 128, "Uri-Path must be 0 to 255 bytes, not 256"),
        (N.URI_HOST, "", "Uri-Host must be 1 to 255 bytes, not 0"),
        (N.PROXY_URI, "x" * 1035, "Proxy-Uri must be 1 to 1034 bytes, not 1035"),
        (N.ETAG, "abc", "ETag takes bytes, not a string"),
        (N.ETAG, 5, "ETag takes bytes, not 5"),
        (N.ETAG, [1], "ETag takes bytes, not [1]"),
        (N.ETAG, b"", "ETag must be 1 to 8 bytes, not 0"),
        (N.ETAG, b"123456789", "ETag must be 1 to 8 bytes, not 9"),
        (N.ECHO, b"x" * 41, "Echo must be 1 to 40 bytes, not 41"),
        (N.IF_NONE_MATCH, b"x", "If-None-Match is an empty option"),
        (N.IF_NONE_MATCH, "yes", "If-None-Match is an empty option"),
    ],
)
def test_encode_value_errors(number: int, value: Any, reason: str) -> None:
    with pytest.raises(OptionValueError) as info:
        encode_value(REGISTRY[number], value)
    assert info.value.reason == reason
    assert info.value.number == number


@pytest.mark.parametrize(
    ("number", "raw", "value"),
    [
        (N.URI_PORT, b"\x16\x33", 5683),
        (N.URI_PORT, b"", 0),
        (N.URI_PATH, b"temp", "temp"),
        (N.IF_NONE_MATCH, b"", None),
        (N.ETAG, b"\x01", b"\x01"),
        (0, b"\x00\x01", b"\x00\x01"),  # unknown: raw
        (65001, b"", b""),
    ],
)
def test_decode_value(number: int, raw: bytes, value: object) -> None:
    assert decode_value(number, raw) == value


def test_decode_value_errors_are_option_value_errors() -> None:
    with pytest.raises(OptionValueError, match="Uri-Path is not valid UTF-8") as info:
        decode_value(N.URI_PATH, b"\xff")
    # no decoder traceback chained to it
    assert info.value.__cause__ is None and info.value.__context__ is None
    with pytest.raises(OptionValueError, match="If-None-Match must be 0 to 0 bytes, not 1"):
        decode_value(N.IF_NONE_MATCH, b"\x00")
    with pytest.raises(OptionValueError, match="ETag must be 1 to 8 bytes, not 0"):
        decode_value(N.ETAG, b"")


# -- the Options collection ----------------------------------------------------------------


def test_empty() -> None:
    assert Options() == EMPTY_OPTIONS
    assert not EMPTY_OPTIONS
    assert len(EMPTY_OPTIONS) == 0
    assert list(EMPTY_OPTIONS) == []
    assert EMPTY_OPTIONS.items == ()
    assert EMPTY_OPTIONS.numbers() == []
    assert Options.build() == EMPTY_OPTIONS
    assert repr(EMPTY_OPTIONS) == "Options()"


def test_constructor_sorts_stably_and_coerces() -> None:
    options = Options([(11, b"b"), (3, bytearray(b"h")), (11, memoryview(b"a")), (1, b"")])
    assert options.items == ((1, b""), (3, b"h"), (11, b"b"), (11, b"a"))
    assert all(type(v) is bytes for _, v in options)
    assert list(options) == list(options.items)
    assert len(options) == 4 and options
    assert options.numbers() == [1, 3, 11]


@pytest.mark.parametrize("number", [-1, 65536, 1 << 32])
def test_constructor_rejects_numbers_outside_16_bits(number: int) -> None:
    with pytest.raises(
        OptionValueError, match=f"option number {number} is outside 0..65535"
    ) as info:
        Options([(number, b"")])
    assert info.value.number == number


def test_lookup() -> None:
    options = Options([(11, b"a"), (11, b"b"), (12, b"\x32")])
    assert 11 in options and N.URI_PATH in options
    assert 3 not in options
    assert "Uri-Path" not in options
    assert options.get(11) == b"a"
    assert options.get(3) is None
    assert options.get_all(11) == [b"a", b"b"]
    assert options.get_all(3) == []
    assert options.count(11) == 2
    assert options.count(12) == 1
    assert options.count(3) == 0


def test_add() -> None:
    options = Options([(11, b"a"), (12, b"")])
    added = options.add(11, b"b")
    assert added.items == ((11, b"a"), (11, b"b"), (12, b""))
    assert options.items == ((11, b"a"), (12, b""))  # unchanged
    assert EMPTY_OPTIONS.add(65535).items == ((65535, b""),)
    assert EMPTY_OPTIONS.add(1, bytearray(b"x")).items == ((1, b"x"),)
    with pytest.raises(OptionValueError):
        EMPTY_OPTIONS.add(65536)


def test_remove() -> None:
    options = Options([(3, b"h"), (11, b"a"), (11, b"b"), (12, b""), (15, b"q")])
    assert options.remove(11).items == ((3, b"h"), (12, b""), (15, b"q"))
    assert options.remove(11, 3, 99).items == ((12, b""), (15, b"q"))
    assert options.remove() == options
    assert options.remove(99) == options
    assert EMPTY_OPTIONS.remove(1) == EMPTY_OPTIONS


def test_replace() -> None:
    options = Options([(3, b"h"), (11, b"a"), (11, b"b"), (12, b"\x32"), (65000, b"x")])
    assert options.replace() is options
    replaced = options.replace(uri_path=["c"], content_format=60, uri_port=1)
    assert replaced.items == ((3, b"h"), (7, b"\x01"), (11, b"c"), (12, b"\x3c"), (65000, b"x"))
    # A single string for a repeatable option is one value, not a sequence of characters.
    assert options.replace(uri_path="abc").uri_path == ("abc",)
    assert options.replace(uri_path="").uri_path == ("",)
    # An empty sequence, None and False remove.
    assert options.replace(uri_path=[]).uri_path == ()
    assert options.replace(uri_path=None).items == ((3, b"h"), (12, b"\x32"), (65000, b"x"))
    assert options.replace(uri_host=False).uri_host is None
    assert options.replace(if_none_match=False) == options
    # Values of 0 are values, not removals.
    assert options.replace(content_format=0).content_format == 0
    assert options.replace(observe=0).observe == 0
    # Repeatable options keep the given order.
    assert options.replace(uri_path=["z", "y", "x"]).uri_path == ("z", "y", "x")
    assert options.replace(if_match=[b"2", b"1"]).if_match == (b"2", b"1")


def test_replace_errors() -> None:
    with pytest.raises(TypeError, match="unknown option keyword: uri_paths"):
        EMPTY_OPTIONS.replace(uri_paths=["a"])
    with pytest.raises(OptionValueError, match="Uri-Path takes a string"):
        EMPTY_OPTIONS.replace(uri_path=[b"a"])
    with pytest.raises(OptionValueError, match="Content-Format takes an integer"):
        Options.build(content_format=b"\x32")
    with pytest.raises(OptionValueError, match="Accept: unknown content format 'jsno'"):
        Options.build(accept="jsno")


@pytest.mark.parametrize(
    ("name", "number"),
    [("json", 50), ("application/json", 50), ("CBOR", 60), ("text/plain", 0), ("42", 42)],
)
def test_content_format_and_accept_take_names_as_the_cli_does(name: str, number: int) -> None:
    options = Options.build(content_format=name, accept=name)
    assert (options.content_format, options.accept) == (number, number)
    assert options == Options.build(content_format=number, accept=number)


def test_build_repeatable_options_from_one_value_of_any_accepted_type() -> None:
    # A BlockValue is a tuple and a memoryview is iterable, but each is one value.
    assert Options.build(q_block2=BlockValue(3, True, 2)).get_all(N.Q_BLOCK2) == [b"\x3a"]
    assert Options.build(q_block2=5).get_all(N.Q_BLOCK2) == [b"\x05"]
    assert Options.build(etag=memoryview(b"ab")).etags == (b"ab",)
    assert Options.build(if_match=bytearray(b"ab")).if_match == (b"ab",)
    assert Options.build(request_tag=b"").request_tag == (b"",)


def test_set_raw() -> None:
    options = Options([(11, b"a"), (11, b"b"), (12, b"")])
    assert options.set_raw(11, [b"c"]).items == ((11, b"c"), (12, b""))
    assert options.set_raw(11, []).items == ((12, b""),)
    assert options.set_raw(3, [b"h", bytearray(b"i")]).items == (
        (3, b"h"),
        (3, b"i"),
        (11, b"a"),
        (11, b"b"),
        (12, b""),
    )
    # Unchecked: a 3-byte Uri-Port can be crafted this way.
    assert options.set_raw(N.URI_PORT, [b"\x01\x02\x03"]).get(N.URI_PORT) == b"\x01\x02\x03"
    with pytest.raises(OptionValueError):
        options.set_raw(70000, [b""])


def test_immutable() -> None:
    options = Options.build(uri_path=["a"])
    with pytest.raises(AttributeError, match="immutable"):
        options.items = ()
    with pytest.raises(AttributeError, match="immutable"):
        del options.items
    with pytest.raises(AttributeError):
        options.uri_path = ("b",)  # type: ignore[misc]


def test_equality_and_hash() -> None:
    a = Options([(11, b"a"), (11, b"b"), (3, b"h")])
    b = Options([(3, b"h"), (11, b"a"), (11, b"b")])
    c = Options([(3, b"h"), (11, b"b"), (11, b"a")])  # repeated values in another order
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != a.items
    assert a.__eq__(a.items) is NotImplemented
    assert len({a, b, c}) == 2


@pytest.mark.parametrize(
    "options",
    [EMPTY_OPTIONS, Options([(11, b"a"), (11, b"b"), (3, b"h"), (65535, b"")])],
    ids=["empty", "some"],
)
def test_pickle_and_copy(options: Options) -> None:
    # Options are immutable values: pickling and copying must give an equal value.
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(options, protocol)) == options
    assert copy.copy(options) == options
    assert copy.deepcopy(options) == options
    assert copy.deepcopy({"o": options})["o"].items == options.items


def test_repr() -> None:
    options = Options(
        [
            (N.URI_PATH, b"a"),
            (N.CONTENT_FORMAT, b"\x32"),
            (N.IF_NONE_MATCH, b""),
            (N.URI_PORT, b"\x01\x02\x03"),  # bad length: shown raw
            (N.URI_QUERY, b"\xff"),  # not UTF-8: shown raw
            (65000, b"x"),
        ]
    )
    assert repr(options) == (
        "Options(If-None-Match=None, Uri-Port=b'\\x01\\x02\\x03', Uri-Path='a', "
        "Content-Format=50, Uri-Query=b'\\xff', Option 65000=b'x')"
    )


# -- option_problems (§5.4.1, §5.4.3, §5.4.5) ----------------------------------------------


def test_no_problems() -> None:
    assert option_problems(EMPTY_OPTIONS) == []
    options = Options.build(
        uri_host="h", uri_path=["a", "b"], etag=[b"1", b"2"], content_format=0, q_block2=[0, 1]
    )
    assert option_problems(options) == []


def test_unknown_options() -> None:
    options = Options([(0, b""), (65000, b""), (65001, b"x"), (65001, b"y")])
    assert option_problems(options) == [
        (0, "unknown option 0"),
        (65000, "unknown option 65000"),
        (65001, "unknown option 65001"),
        (65001, "unknown option 65001"),
    ]


def test_bad_lengths() -> None:
    options = Options([(N.URI_PORT, b"\x00\x00\x01"), (N.HOP_LIMIT, b""), (N.ETAG, b"")])
    assert option_problems(options) == [
        (N.ETAG, "ETag has length 0, outside 1..8"),
        (N.URI_PORT, "Uri-Port has length 3, outside 0..2"),
        (N.HOP_LIMIT, "Hop-Limit has length 0, outside 1..1"),
    ]


def test_repetition() -> None:
    options = Options([(N.CONTENT_FORMAT, b"")] * 3 + [(N.URI_PATH, b"a")] * 2)
    # Uri-Path is repeatable; the second and third Content-Format are reported.
    assert option_problems(options) == [
        (N.CONTENT_FORMAT, "Content-Format is repeated but is not repeatable"),
        (N.CONTENT_FORMAT, "Content-Format is repeated but is not repeatable"),
    ]
    # A repeated instance with a bad length is reported for its length.
    options = Options([(N.URI_PORT, b""), (N.URI_PORT, b"\x00\x00\x00")])
    assert option_problems(options) == [(N.URI_PORT, "Uri-Port has length 3, outside 0..2")]
