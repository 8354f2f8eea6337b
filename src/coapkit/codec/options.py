"""The options of a message: an immutable, ordered collection with typed access.

RFC 7252 §5.4 and §3.1.  On the wire options are sorted by number and
repeated options keep their relative order; :class:`Options` keeps exactly
that order, so encoding is deterministic and ``decode(encode(m)) == m``.

Values are stored as the raw bytes that travel on the wire and are decoded
only when a typed accessor asks for them (``options.uri_path``,
``options.content_format``, ``options.block2``...), so a message that is only
forwarded or deduplicated never pays for decoding its options.  Options that
coapkit does not know are kept as raw bytes and survive a round trip.

Building goes through keywords named after the registry (``uri_path=["a"]``,
``content_format=50``, ``observe=0``, ``if_none_match=True``); those values
are checked against the registered format and length bounds.  Content-Format
and Accept also take a content-format name (``content_format="json"``,
``accept="application/cbor"``), looked up in the registry as the command-line
tool looks up its ``--content-format``.  The raw
:meth:`Options.add` accepts any bytes, for tests and for crafting odd messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from coapkit.codec.content_formats import parse_content_format
from coapkit.codec.option_registry import (
    BY_ATTRIBUTE,
    REGISTRY,
    OptionFormat,
    OptionNumber,
    OptionSpec,
    decode_uint,
    encode_uint,
    option_name,
)
from coapkit.compiled import mypyc_attr
from coapkit.errors import OptionValueError

OptionItem = tuple[int, bytes]
#: what the constructors accept for one option (the value is copied to bytes)
OptionInput = tuple[int, bytes | bytearray | memoryview]

_first = itemgetter(0)
#: the options whose value is a Content-Format, and so may be given by name
_CONTENT_FORMAT_OPTIONS = frozenset({int(OptionNumber.CONTENT_FORMAT), int(OptionNumber.ACCEPT)})


class BlockValue(NamedTuple):
    """A Block1 or Block2 option value (RFC 7959 §2.2): block number, more flag, size exponent.

    The block size is ``2 ** (szx + 4)`` bytes: 16 to 1024 for szx 0 to 6.  szx 7 is
    reserved over UDP; over reliable transports it is BERT (RFC 8323 §6): blocks of 1024
    bytes as with szx 6, of which one message may carry several.  So ``size`` and
    ``offset`` count in 1024-byte units for szx 7 too: a BERT block numbered *n* starts
    at byte ``n * 1024``, whatever it carries.
    """

    num: int
    more: bool
    szx: int

    @property
    def size(self) -> int:
        """Bytes per block (1024 for BERT: the unit NUM counts, not what a message carries)."""
        return 1024 if self.szx == 7 else 1 << (self.szx + 4)

    @property
    def offset(self) -> int:
        """Byte offset of this block in the whole body."""
        return self.num * self.size

    @property
    def bert(self) -> bool:
        """Whether this is a BERT option (szx 7, RFC 8323 §6)."""
        return self.szx == 7

    def to_uint(self) -> int:
        return (self.num << 4) | (8 if self.more else 0) | self.szx

    @classmethod
    def from_uint(cls, value: int) -> BlockValue:
        return cls(value >> 4, bool(value & 8), value & 7)

    @staticmethod
    def szx_for_size(size: int) -> int:
        """The size exponent for a block size of 16..1024 bytes (a power of two)."""
        if size < 16 or size > 1024 or size & (size - 1):
            raise ValueError(f"block size must be a power of two from 16 to 1024, not {size}")
        return size.bit_length() - 5

    def __repr__(self) -> str:
        size = "BERT" if self.szx == 7 else self.size
        return f"BlockValue(num={self.num}, more={self.more}, size={size})"


# Values that a repeatable option's keyword takes as one value, not a sequence of
# them: a BlockValue is a tuple and a memoryview is iterable, yet each is one value.
_SINGLE_VALUE = (str, bytes, bytearray, memoryview, int, BlockValue)


def _check_length(spec: OptionSpec, value: bytes) -> bytes:
    if not spec.length_ok(len(value)):
        raise OptionValueError(
            spec.number,
            f"{spec.name} must be {spec.min_length} to {spec.max_length} bytes, not {len(value)}",
        )
    return value


def encode_value(spec: OptionSpec, value: Any) -> bytes:
    """Turn a typed value into the wire bytes for ``spec``, checking format and length."""
    fmt = spec.format
    if fmt is OptionFormat.UINT:
        if isinstance(value, BlockValue):
            value = value.to_uint()
        elif isinstance(value, str) and spec.number in _CONTENT_FORMAT_OPTIONS:
            try:
                value = parse_content_format(value)
            except ValueError as exc:
                raise OptionValueError(spec.number, f"{spec.name}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionValueError(spec.number, f"{spec.name} takes an integer, not {value!r}")
        if value < 0:
            raise OptionValueError(spec.number, f"{spec.name} cannot be negative")
        raw = encode_uint(value)
    elif fmt is OptionFormat.STRING:
        if not isinstance(value, str):
            raise OptionValueError(spec.number, f"{spec.name} takes a string, not {value!r}")
        raw = value.encode("utf-8")
    elif fmt is OptionFormat.OPAQUE:
        if isinstance(value, str):
            raise OptionValueError(spec.number, f"{spec.name} takes bytes, not a string")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise OptionValueError(spec.number, f"{spec.name} takes bytes, not {value!r}")
        raw = bytes(value)
    else:  # EMPTY
        if value not in (b"", True):
            raise OptionValueError(spec.number, f"{spec.name} is an empty option")
        raw = b""
    return _check_length(spec, raw)


def decode_value(number: int, raw: bytes) -> int | str | bytes | None:
    """The typed value of one option instance; raw bytes for unknown options.

    Raises :class:`OptionValueError` for a value outside the registered length
    or a string that is not UTF-8 (RFC 7252 §3.2 requires UTF-8 Net-Unicode).
    """
    spec = REGISTRY.get(number)
    if spec is None:
        return raw
    _check_length(spec, raw)
    fmt = spec.format
    if fmt is OptionFormat.UINT:
        return decode_uint(raw)
    if fmt is OptionFormat.STRING:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass  # raised below, outside the handler: no decoder traceback chained to it
        raise OptionValueError(number, f"{spec.name} is not valid UTF-8")
    if fmt is OptionFormat.EMPTY:
        return None
    return raw


@mypyc_attr(native_class=False)  # its immutability idiom needs a regular class
class Options:
    """Immutable, ordered CoAP options with typed accessors.

    >>> opts = Options.build(uri_path=["sensors", "temp"], content_format=50)
    >>> opts.uri_path
    ('sensors', 'temp')
    >>> opts.content_format
    50
    >>> opts.replace(content_format=None).content_format is None
    True
    """

    __slots__ = ("items",)

    #: All ``(number, raw value)`` pairs in wire order (a plain attribute, read on every
    #: request: no property call in the hot loops).
    items: tuple[OptionItem, ...]

    def __init__(self, items: Iterable[OptionInput] = ()) -> None:
        checked = []
        for number, value in items:
            if not 0 <= number <= 0xFFFF:
                raise OptionValueError(number, f"option number {number} is outside 0..65535")
            checked.append((int(number), bytes(value)))
        checked.sort(key=_first)  # stable: repeated options keep their order
        object.__setattr__(self, "items", tuple(checked))

    @classmethod
    def _trusted(cls, items: tuple[OptionItem, ...]) -> Options:
        """Wrap items already sorted and typed (the decoder's fast path)."""
        self = object.__new__(cls)
        _set_items(self, items)
        return self

    @classmethod
    def build(cls, **values: Any) -> Options:
        """Options from keywords named after registered options, checked against the registry."""
        return EMPTY_OPTIONS.replace(**values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Options are immutable; use replace(), add() or remove()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Options are immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Options, (self.items,))

    # -- container protocol -----------------------------------------------------

    def __iter__(self) -> Iterator[OptionItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __contains__(self, number: object) -> bool:
        for n, _ in self.items:  # noqa: SIM110 - a loop is twice as fast as any(generator)
            if n == number:
                return True
        return False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self.items == other.items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        parts = []
        for number, raw in self.items:
            try:
                value: object = decode_value(number, raw)
            except OptionValueError:
                value = raw
            parts.append(f"{option_name(number)}={value!r}")
        return f"Options({', '.join(parts)})"

    def numbers(self) -> list[int]:
        """The distinct option numbers present, ascending."""
        seen: list[int] = []
        for number, _ in self.items:
            if not seen or seen[-1] != number:
                seen.append(number)
        return seen

    def get(self, number: int) -> bytes | None:
        """The raw value of the first instance of ``number``, or ``None``."""
        for n, value in self.items:
            if n == number:
                return value
        return None

    def get_all(self, number: int) -> list[bytes]:
        """The raw values of every instance of ``number``, in order."""
        return [value for n, value in self.items if n == number]

    def count(self, number: int) -> int:
        return sum(1 for n, _ in self.items if n == number)

    # -- deriving new options -----------------------------------------------------

    def add(self, number: int, value: bytes | bytearray | memoryview = b"") -> Options:
        """New options with one more raw instance of ``number`` (after any existing ones)."""
        return Options((*self.items, (number, value)))

    def remove(self, *numbers: int) -> Options:
        """New options without any instance of the given numbers."""
        drop = set(numbers)
        return Options._trusted(tuple(item for item in self.items if item[0] not in drop))

    def replace(self, **values: Any) -> Options:
        """New options with the keyword-named options set (``None`` or ``False`` removes).

        Repeatable options take a sequence (``uri_path=["a", "b"]``); the others a
        single value.  Numbers not named are kept as they are.
        """
        if not values:
            return self
        changes: dict[int, list[bytes]] = {}
        for attribute, value in values.items():
            spec = BY_ATTRIBUTE.get(attribute)
            if spec is None:
                raise TypeError(f"unknown option keyword: {attribute}")
            if value is None or value is False:
                changes[spec.number] = []
            elif spec.repeatable:
                values_list = [value] if isinstance(value, _SINGLE_VALUE) else value
                changes[spec.number] = [encode_value(spec, v) for v in values_list]
            else:
                changes[spec.number] = [encode_value(spec, value)]
        kept = [item for item in self.items if item[0] not in changes]
        kept.extend((number, raw) for number, raws in changes.items() for raw in raws)
        kept.sort(key=_first)
        return Options._trusted(tuple(kept))

    def set_raw(self, number: int, values: Sequence[bytes | bytearray | memoryview]) -> Options:
        """New options with every instance of ``number`` replaced by ``values`` (unchecked)."""
        kept = [item for item in self.items if item[0] != number]
        kept.extend((number, bytes(v)) for v in values)
        return Options(kept)

    # -- typed access -----------------------------------------------------------------

    def _uint(self, number: int) -> int | None:
        raw = self.get(number)
        if raw is None:
            return None
        if len(raw) > 4 or len(raw) > REGISTRY[number].max_length:
            _check_length(REGISTRY[number], raw)
        return int.from_bytes(raw, "big")

    def _string(self, number: int) -> str | None:
        raw = self.get(number)
        if raw is None:
            return None
        value = decode_value(number, raw)
        assert isinstance(value, str)
        return value

    def _strings(self, number: int) -> tuple[str, ...]:
        out = []
        for n, raw in self.items:
            if n == number:
                value = decode_value(number, raw)
                assert isinstance(value, str)
                out.append(value)
        return tuple(out)

    def _block(self, number: int) -> BlockValue | None:
        value = self._uint(number)
        return None if value is None else BlockValue.from_uint(value)

    @property
    def if_match(self) -> tuple[bytes, ...]:
        return tuple(self.get_all(OptionNumber.IF_MATCH))

    @property
    def uri_host(self) -> str | None:
        return self._string(OptionNumber.URI_HOST)

    @property
    def etag(self) -> bytes | None:
        """The first ETag (a response carries at most one)."""
        return self.get(OptionNumber.ETAG)

    @property
    def etags(self) -> tuple[bytes, ...]:
        """All ETags (a request may list several, RFC 7252 §5.10.6.2)."""
        return tuple(self.get_all(OptionNumber.ETAG))

    @property
    def if_none_match(self) -> bool:
        return OptionNumber.IF_NONE_MATCH in self

    @property
    def observe(self) -> int | None:
        return self._uint(OptionNumber.OBSERVE)

    @property
    def uri_port(self) -> int | None:
        return self._uint(OptionNumber.URI_PORT)

    @property
    def location_path(self) -> tuple[str, ...]:
        return self._strings(OptionNumber.LOCATION_PATH)

    @property
    def oscore(self) -> bytes | None:
        return self.get(OptionNumber.OSCORE)

    @property
    def uri_path(self) -> tuple[str, ...]:
        return self._strings(OptionNumber.URI_PATH)

    @property
    def content_format(self) -> int | None:
        return self._uint(OptionNumber.CONTENT_FORMAT)

    @property
    def max_age(self) -> int | None:
        """Max-Age in seconds if present; the default of 60 s applies when absent (§5.10.5)."""
        return self._uint(OptionNumber.MAX_AGE)

    @property
    def uri_query(self) -> tuple[str, ...]:
        return self._strings(OptionNumber.URI_QUERY)

    @property
    def hop_limit(self) -> int | None:
        return self._uint(OptionNumber.HOP_LIMIT)

    @property
    def accept(self) -> int | None:
        return self._uint(OptionNumber.ACCEPT)

    @property
    def q_block1(self) -> BlockValue | None:
        return self._block(OptionNumber.Q_BLOCK1)

    @property
    def location_query(self) -> tuple[str, ...]:
        return self._strings(OptionNumber.LOCATION_QUERY)

    @property
    def edhoc(self) -> bool:
        return OptionNumber.EDHOC in self

    @property
    def block2(self) -> BlockValue | None:
        return self._block(OptionNumber.BLOCK2)

    @property
    def block1(self) -> BlockValue | None:
        return self._block(OptionNumber.BLOCK1)

    @property
    def size2(self) -> int | None:
        return self._uint(OptionNumber.SIZE2)

    @property
    def q_block2(self) -> BlockValue | None:
        return self._block(OptionNumber.Q_BLOCK2)

    @property
    def proxy_uri(self) -> str | None:
        return self._string(OptionNumber.PROXY_URI)

    @property
    def proxy_scheme(self) -> str | None:
        return self._string(OptionNumber.PROXY_SCHEME)

    @property
    def size1(self) -> int | None:
        return self._uint(OptionNumber.SIZE1)

    @property
    def echo(self) -> bytes | None:
        return self.get(OptionNumber.ECHO)

    @property
    def no_response(self) -> int | None:
        return self._uint(OptionNumber.NO_RESPONSE)

    @property
    def request_tag(self) -> tuple[bytes, ...]:
        return tuple(self.get_all(OptionNumber.REQUEST_TAG))


#: the slot's own setter: stores past Options.__setattr__ (which refuses), faster than
#: object.__setattr__
_set_items = vars(Options)["items"].__set__

EMPTY_OPTIONS = Options._trusted(())


def option_problems(options: Options) -> list[tuple[int, str]]:
    """Options that a receiver must treat as unrecognised (RFC 7252 §5.4.3, §5.4.5).

    Returns ``(number, reason)`` for every known option whose value length is
    outside its registered bounds or which is repeated although it is not
    repeatable, and for every unknown option.  The caller decides by the
    number's critical bit whether this means 4.02 / a Reset or silence.
    """
    problems: list[tuple[int, str]] = []
    previous = -1
    for number, raw in options.items:
        spec = REGISTRY.get(number)
        if spec is None:
            problems.append((number, f"unknown option {number}"))
        elif not spec.length_ok(len(raw)):
            problems.append(
                (
                    number,
                    f"{spec.name} has length {len(raw)}, "
                    f"outside {spec.min_length}..{spec.max_length}",
                )
            )
        elif number == previous and not spec.repeatable:
            problems.append((number, f"{spec.name} is repeated but is not repeatable"))
        previous = number
    return problems
