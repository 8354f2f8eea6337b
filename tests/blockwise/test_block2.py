"""Block2: large responses sliced by the server and reassembled by the client (RFC 7959 §2.4).

All on the simulated network in virtual time; the big matrix runs under 20 %
loss in both directions, so block exchanges fail now and then and the block
retries are exercised along the way.
"""

from __future__ import annotations

import pytest

from coapkit import BlockValue, Code, Message, Options
from coapkit.blockwise.client import MAX_RESTARTS
from coapkit.blockwise.server import BlockwiseConfig, etag_for
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.errors import RetransmissionsExceeded, TransferError
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import LinkConditions
from tests.blockwise.helpers import (
    CLIENT,
    SERVER,
    Pair,
    body_of,
    get,
    response,
    scripted,
    with_body,
)

MiB = 1024 * 1024


def serve(body: bytes, **options: object):
    """An app serving ``body`` (2.05) to every request."""

    def app(node, event, now):
        return Message(code=Code.CONTENT, options=Options.build(**options), payload=body)

    return app


def server_blocks(pair: Pair) -> list[Message]:
    """The responses the server sent to the client, in order (retransmissions included)."""
    return [m for m in pair.sent(SERVER, CLIENT) if m.code >= 64]


# -- the big one ------------------------------------------------------------------------


@pytest.mark.parametrize("szx", range(7))
def test_one_mebibyte_response_at_every_block_size_under_loss(szx):
    body = body_of(MiB, seed=szx)
    pair = Pair(
        serve(body, content_format=42),
        seed=100 + szx,
        loss=0.2,
        server_config=BlockwiseConfig(max_szx=szx),
        keep_trace=False,
    )
    final = pair.request(get("large"))
    assert isinstance(final, ResponseEvent), final
    assert final.response.code == Code.CONTENT
    assert final.response.payload == body  # byte-identical
    assert final.response.options.content_format == 42
    assert N.BLOCK2 not in final.response.options and N.SIZE2 not in final.response.options
    blocks = MiB >> (szx + 4)
    # The handler ran once: every later block came from the representation cache (some
    # more than once: a block whose exchange failed under the loss is asked for again).
    assert len(pair.requests) == 1
    assert pair.blockwise.stats.blocks_served_from_cache >= blocks - 1
    assert pair.network.lost > 0.15 * pair.network.delivered  # the loss really happened
    progress = pair.progress(final.handle)
    assert len(progress) == blocks
    assert progress[-2].done == MiB - (1 << (szx + 4))
    assert progress[-1].done == MiB
    assert {p.total for p in progress} == {MiB}


# -- sizes and negotiation ------------------------------------------------------------------


def test_default_block_size_is_1024_with_size2_and_etag():
    body = body_of(3000)
    pair = Pair(serve(body))
    final = pair.request(get("large"))
    assert final.response.payload == body
    blocks = server_blocks(pair)
    assert [b.options.block2 for b in blocks] == [
        BlockValue(0, True, 6),
        BlockValue(1, True, 6),
        BlockValue(2, False, 6),
    ]
    assert [len(b.payload) for b in blocks] == [1024, 1024, 952]
    assert blocks[0].options.size2 == 3000
    assert blocks[1].options.size2 is None  # Size2 on block 0, or when asked for
    assert {b.options.etag for b in blocks} == {etag_for(body)}
    # The final response keeps the ETag the blocks carried.
    assert final.response.options.etag == etag_for(body)


def test_handler_etag_is_kept():
    pair = Pair(serve(body_of(2000), etag=b"v1"))
    final = pair.request(get("large"))
    assert {b.options.etag for b in server_blocks(pair)} == {b"v1"}
    assert final.response.options.etag == b"v1"


def test_configured_server_block_size():
    body = body_of(1000)
    pair = Pair(serve(body), server_config=BlockwiseConfig(max_szx=4))
    final = pair.request(get("large"))
    assert final.response.payload == body
    assert [len(b.payload) for b in server_blocks(pair)] == [256, 256, 256, 232]


def test_early_negotiation_asks_for_smaller_blocks():
    body = body_of(1000)
    pair = Pair(serve(body))
    final = pair.request(get("large", block2=BlockValue(0, False, 2)))
    assert final.response.payload == body
    requests = pair.client_requests()
    assert requests[0].options.block2 == BlockValue(0, False, 2)
    assert [r.options.block2 for r in requests] == [BlockValue(n, False, 2) for n in range(16)]
    assert {len(b.payload) for b in server_blocks(pair)[:-1]} == {64}
    assert len(pair.requests) == 1


def test_early_negotiation_larger_than_the_server_allows_gets_the_server_size():
    body = body_of(1000)
    pair = Pair(serve(body), server_config=BlockwiseConfig(max_szx=3))
    final = pair.request(get("large", block2=BlockValue(0, False, 6)))
    assert final.response.payload == body
    assert {b.options.block2.szx for b in server_blocks(pair)} == {3}
    # The client continues at the server's size.
    assert {r.options.block2.szx for r in pair.client_requests()[1:]} == {3}


def test_small_response_with_early_negotiation_is_not_sliced():
    pair = Pair(serve(b"small"))
    final = pair.request(get("small", block2=BlockValue(0, False, 2)))
    assert final.response.payload == b"small"
    [only] = server_blocks(pair)
    assert N.BLOCK2 not in only.options


def test_small_response_is_not_sliced():
    pair = Pair(serve(b"x" * 1024))
    final = pair.request(get("exactly-one-block"))
    assert final.response.payload == b"x" * 1024
    [only] = server_blocks(pair)
    assert N.BLOCK2 not in only.options and N.ETAG not in only.options


# -- random access ----------------------------------------------------------------------------


def test_random_access_fetches_exactly_one_block():
    body = body_of(5000)
    pair = Pair(serve(body))
    final = pair.request(get("large", block2=BlockValue(5, False, 4)))
    assert [r.options.block2 for r in pair.client_requests()] == [BlockValue(5, False, 4)]
    assert final.response.payload == body[5 * 256 : 6 * 256]
    assert final.response.options.block2 == BlockValue(5, True, 4)


def test_random_access_last_block():
    body = body_of(5000)
    pair = Pair(serve(body))
    final = pair.request(get("large", block2=BlockValue(4, False, 6)))
    assert final.response.payload == body[4096:]
    assert final.response.options.block2 == BlockValue(4, False, 6)


def test_random_access_from_the_cache():
    body = body_of(5000)
    pair = Pair(serve(body))
    pair.request(get("large"))
    final = pair.request(get("large", block2=BlockValue(3, False, 6)))
    assert final.response.payload == body[3072:4096]
    assert len(pair.requests) == 1
    assert pair.blockwise.stats.blocks_served_from_cache == 5


@pytest.mark.parametrize("cached", [False, True])
def test_random_access_with_a_larger_size_than_the_server_keeps_the_offset(cached):
    """A server that uses a smaller block than asked for serves the block at the asked-for
    offset: block 1 of 1024 bytes is block 4 of 256 bytes (RFC 7959 §2.4; aiocoap's
    ``BlockwiseTuple.reduced_to`` does the same)."""
    body = body_of(5000)
    pair = Pair(serve(body), server_config=BlockwiseConfig(max_szx=4))
    if cached:
        pair.request(get("large"))
    final = pair.request(get("large", block2=BlockValue(1, False, 6)))
    assert final.response.options.block2 == BlockValue(4, True, 4)
    assert final.response.payload == body[1024:1280]


@pytest.mark.parametrize("cached", [False, True])
def test_block2_beyond_the_end_is_4_02(cached):
    body = body_of(3000)
    pair = Pair(serve(body))
    if cached:
        pair.request(get("large"))
    final = pair.request(get("large", block2=BlockValue(3, False, 6)))
    assert final.response.code == Code.BAD_OPTION
    assert N.BLOCK2 not in final.response.options


def test_block2_szx_7_is_4_02():
    pair = Pair(serve(body_of(3000)))
    request = Message(code=Code.GET, options=Options([(N.URI_PATH, b"large"), (N.BLOCK2, b"\x07")]))
    final = pair.request(request)
    assert final.response.code == Code.BAD_OPTION
    assert pair.requests == []


# -- ETag consistency -------------------------------------------------------------------------


class Changing:
    """A resource whose representation changes on the given handler runs (1-based)."""

    def __init__(self, size: int, change_on: set[int] | None = None, always: bool = False):
        self.size = size
        self.change_on = change_on or set()
        self.always = always
        self.version = 0
        self.runs = 0
        self.bodies = [body_of(size, seed=0)]

    def __call__(self, node, event, now):
        self.runs += 1
        if self.always or self.runs in self.change_on:
            self.version += 1
            self.bodies.append(body_of(self.size, seed=self.version))
        return Message(code=Code.CONTENT, payload=self.bodies[self.version])


def test_etag_change_mid_transfer_restarts_and_succeeds():
    resource = Changing(5000, change_on={3})
    # No cache: every block request runs the handler, so the change is seen mid-transfer.
    pair = Pair(resource, server_config=BlockwiseConfig(cache_entries=0))
    final = pair.request(get("large"))
    assert isinstance(final, ResponseEvent)
    assert final.response.payload == resource.bodies[1]
    assert final.handle.restarts == 1
    requested = [r.options.block2.num for r in pair.client_requests()[1:]]
    # blocks 1 and then 2 (changed: ETag differs), then from block 0 again to the end
    assert requested == [1, 2, 0, 1, 2, 3, 4]


def test_etag_keeps_changing_fails_with_transfer_error():
    resource = Changing(5000, always=True)
    pair = Pair(resource, server_config=BlockwiseConfig(cache_entries=0))
    final = pair.request(get("large"))
    assert isinstance(final, RequestFailed)
    assert isinstance(final.error, TransferError)
    assert "changed" in str(final.error)
    assert final.handle.restarts == MAX_RESTARTS + 1


def test_block_zero_again_counts_as_a_restart():
    """A peer that answers every Block2 request with block 0 again must not keep the
    client asking for block 1 forever."""
    body = body_of(3000)

    def always_block_zero(request):
        return response(
            Code.CONTENT, body[:1024], block2=BlockValue(0, True, 6), etag=b"e", size2=3000
        )

    pair, peer = scripted(always_block_zero)
    final = pair.request(get("large"))
    assert isinstance(final, RequestFailed)
    assert isinstance(final.error, TransferError)
    assert len(peer.requests) == MAX_RESTARTS + 2  # block 0, then block 1 asked for 4 times


# -- Size2 ------------------------------------------------------------------------------------


def test_size2_zero_on_a_small_resource_is_answered():
    pair = Pair(serve(b"twelve bytes"))
    final = pair.request(get("small", size2=0))
    assert final.response.payload == b"twelve bytes"
    assert final.response.options.size2 == 12


def test_size2_zero_on_a_large_resource_is_answered_on_every_block():
    body = body_of(3000)
    pair = Pair(serve(body))
    final = pair.request(get("large", size2=0))
    assert final.response.payload == body
    assert [b.options.size2 for b in server_blocks(pair)] == [3000, 3000, 3000]


def test_handler_size2_is_kept():
    pair = Pair(serve(b"abc", size2=99))
    final = pair.request(get("small", size2=0))
    assert final.response.options.size2 == 99


# -- errors and other codes -----------------------------------------------------------------


def test_errors_are_not_sliced():
    diagnostic = b"e" * 1100  # more than a block, still within one message

    def app(node, event, now):
        return Message(code=Code.INTERNAL_SERVER_ERROR, payload=diagnostic)

    pair = Pair(app)
    final = pair.request(get("broken"))
    assert final.response.code == Code.INTERNAL_SERVER_ERROR
    assert final.response.payload == diagnostic
    [only] = server_blocks(pair)
    assert N.BLOCK2 not in only.options
    assert pair.blockwise.cached_representations == 0


def test_error_to_a_block2_request_is_not_sliced():
    def app(node, event, now):
        return Message(code=Code.NOT_FOUND, payload=b"n" * 2000)

    pair = Pair(app)
    final = pair.request(get("gone", block2=BlockValue(1, False, 6)))
    assert final.response.code == Code.NOT_FOUND
    # too long for one message: the diagnostic is cut to fit (RFC 7252 §4.6), still 4.04
    assert 1000 < len(final.response.payload) < 1152
    assert set(final.response.payload) == {ord("n")}


def test_handler_slicing_itself_is_left_alone():
    def app(node, event, now):
        return Message(
            code=Code.CONTENT,
            options=Options.build(block2=BlockValue(0, False, 6)),
            payload=b"h" * 1100,  # not what RFC 7959 allows, but the handler's business
        )

    pair = Pair(app)
    final = pair.request(get("own"))
    assert final.response.payload == b"h" * 1100
    assert pair.blockwise.cached_representations == 0


# -- the cache --------------------------------------------------------------------------------


def test_cache_too_small_renders_every_block():
    body = body_of(5000)
    pair = Pair(serve(body), server_config=BlockwiseConfig(cache_bytes=4000))
    final = pair.request(get("large"))
    assert final.response.payload == body
    assert len(pair.requests) == 5
    assert pair.blockwise.cached_representations == 0


def test_cache_is_per_representation():
    a, b = body_of(3000, seed=1), body_of(3000, seed=2)

    def app(node, event, now):
        return Message(code=Code.CONTENT, payload=a if event.request.options.uri_query else b)

    pair = Pair(app)
    first = pair.start(get("r", uri_query=["x"]))
    second = pair.start(get("r"))
    pair.network.step()
    assert pair.wait(first[0]).response.payload == a
    assert pair.wait(second[0]).response.payload == b
    assert len(pair.requests) == 2
    assert pair.blockwise.cached_representations == 2


def test_cache_entries_are_bounded_lru():
    bodies = {name: body_of(2000, seed=i) for i, name in enumerate("abc")}

    def app(node, event, now):
        return Message(code=Code.CONTENT, payload=bodies[event.request.options.uri_path[0]])

    pair = Pair(app, server_config=BlockwiseConfig(cache_entries=2))
    for name in "abc":
        assert pair.request(get(name)).response.payload == bodies[name]
    assert pair.blockwise.cached_representations == 2
    assert pair.blockwise.buffered_bytes == 4000
    # "a" was evicted: its block 1 is rendered again; "c" is still there.
    pair.request(get("a", block2=BlockValue(1, False, 6)))
    pair.request(get("c", block2=BlockValue(1, False, 6)))
    assert [r.options.uri_path[0] for r in pair.requests] == ["a", "b", "c", "a"]


# -- methods other than GET -------------------------------------------------------------------


def test_post_with_a_large_response_runs_the_handler_once():
    body = body_of(4000)

    def app(node, event, now):
        return Message(code=Code.CHANGED, payload=body + event.request.payload)

    pair = Pair(app)
    final = pair.request(with_body(Code.POST, b"in", "run"))
    assert final.response.code == Code.CHANGED
    assert final.response.payload == body + b"in"
    assert len(pair.requests) == 1
    # The later block requests carry no body (RFC 7959 §2.4: only Block2 moves on).
    assert [r.payload for r in pair.client_requests()[1:]] == [b""] * 3


def test_fetch_with_a_large_response_sends_its_body_with_every_block_request():
    body = body_of(3000)

    def app(node, event, now):
        return Message(code=Code.CONTENT, payload=body[: int(event.request.payload)])

    pair = Pair(app)
    final = pair.request(with_body(Code.FETCH, b"2500", "select"))
    assert final.response.payload == body[:2500]
    # FETCH bodies are part of the cache key (RFC 8132 §2.3.2), so each block request
    # carries the body again, and the cache still serves it.
    assert [r.payload for r in pair.client_requests()] == [b"2500"] * 3
    assert len(pair.requests) == 1


# -- loss of whole exchanges ------------------------------------------------------------------


def test_a_block_whose_exchange_fails_is_asked_for_again():
    body = body_of(3000)
    # The server's 2nd..6th datagrams to the client are lost: all five answers to the
    # request for block 1 (the first transmission and its four retransmissions).
    pair = Pair(serve(body))
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset(range(2, 7))))
    final = pair.request(get("large"))
    assert isinstance(final, ResponseEvent)
    assert final.response.payload == body
    requests = pair.client_requests()
    nums = [r.options.block2.num for r in requests if N.BLOCK2 in r.options]
    assert nums == [1] * 5 + [1, 2]
    assert len({r.token for r in requests if r.options.block2 is not None}) == 3
    assert len(pair.requests) == 1


def test_block_retries_are_bounded():
    pair = Pair(serve(body_of(3000)), client_config=BlockwiseConfig(block_retries=2))
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset(range(2, 1000))))
    final = pair.request(get("large"))
    assert isinstance(final, RequestFailed)
    assert isinstance(final.error, RetransmissionsExceeded)
    # three exchanges for block 1, five transmissions each
    assert len(pair.client_requests()) == 1 + 3 * 5


def test_the_first_exchange_failing_fails_the_request():
    pair = Pair(serve(body_of(3000)))
    pair.network.set_link(SERVER, CLIENT, LinkConditions(loss=1.0))
    final = pair.request(get("large"))
    assert isinstance(final.error, RetransmissionsExceeded)
    assert len(pair.client_requests()) == 5


# -- the client against peers that do odd things ---------------------------------------------


def test_block_that_does_not_continue_the_body_fails():
    body = body_of(3000)

    def skip_a_block(request):
        num = request.options.block2.num if N.BLOCK2 in request.options else 0
        num = 2 if num == 1 else num
        return response(
            Code.CONTENT,
            body[num * 1024 : (num + 1) * 1024],
            block2=BlockValue(num, num < 2, 6),
            etag=b"e",
        )

    pair, _ = scripted(skip_a_block)
    final = pair.request(get("large"))
    assert isinstance(final.error, TransferError)
    assert "does not continue" in str(final.error)


def test_representation_sent_whole_after_the_first_block_is_the_answer():
    body = body_of(900)  # whole, it still fits one message (an oversized one is dropped)

    def whole_later(request):
        if N.BLOCK2 in request.options:
            return response(Code.CONTENT, body)
        return response(Code.CONTENT, body[:256], block2=BlockValue(0, True, 4))

    pair, _ = scripted(whole_later)
    final = pair.request(get("large"))
    assert final.response.payload == body


def test_response_body_limit():
    pair = Pair(serve(body_of(5000)), client_config=BlockwiseConfig(max_response_body=3000))
    final = pair.request(get("large"))
    assert isinstance(final.error, TransferError)
    assert "larger than 3000" in str(final.error)


def test_server_reducing_the_block_size_mid_transfer():
    body = body_of(3000)

    def shrink(request):
        block = request.options.block2 or BlockValue(0, False, 6)
        if block.num == 0:
            return response(Code.CONTENT, body[:1024], block2=BlockValue(0, True, 6))
        start = block.offset
        num = start // 256
        return response(
            Code.CONTENT, body[start : start + 256], block2=BlockValue(num, start + 256 < 3000, 4)
        )

    pair, peer = scripted(shrink)
    final = pair.request(get("large"))
    assert final.response.payload == body
    assert [r.options.block2 for r in peer.requests[1:3]] == [
        BlockValue(1, False, 6),
        BlockValue(5, False, 4),
    ]


# -- progress ---------------------------------------------------------------------------------


def test_progress_events_for_a_download():
    body = body_of(3000)
    pair = Pair(serve(body))
    final = pair.request(get("large"))
    progress = pair.progress(final.handle)
    assert [(p.done, p.total, p.upload) for p in progress] == [
        (1024, 3000, False),
        (2048, 3000, False),
        (3000, 3000, False),  # the last block too, just before the response
    ]
    # they come before the final response
    events = pair.events(final.handle)
    assert events[-1] is final


def test_progress_without_size2_has_no_total():
    body = body_of(3000)

    def no_size(request):
        block = request.options.block2 or BlockValue(0, False, 6)
        chunk = body[block.offset : block.offset + 1024]
        return response(
            Code.CONTENT, chunk, block2=BlockValue(block.num, block.offset + 1024 < 3000, 6)
        )

    pair, _ = scripted(no_size)
    final = pair.request(get("large"))
    assert final.response.payload == body
    assert [p.total for p in pair.progress(final.handle)] == [None, None, 3000]  # known at the end


# -- malformed options from the peer never raise (docs/architecture.md rule 8) ------------------

BAD_SIZE = b"\x01" * 5  # Size1 and Size2 are at most 4 bytes


def test_malformed_size2_in_a_block_request_is_ignored():
    body = body_of(3000)
    pair = Pair(serve(body))
    request = Message(
        code=Code.GET,
        options=Options([(N.URI_PATH, b"large"), (N.BLOCK2, b"\x06"), (N.SIZE2, BAD_SIZE)]),
    )
    final = pair.request(request)
    assert final.response.payload == body
    assert server_blocks(pair)[0].options.size2 == 3000


def test_malformed_size2_in_a_block_response_is_ignored():
    body = body_of(3000)

    def script(request):
        block = request.options.block2 or BlockValue(0, False, 6)
        more = block.offset + 1024 < len(body)
        return Message(
            code=Code.CONTENT,
            options=Options(
                [(N.BLOCK2, BlockValue(block.num, more, 6).to_uint().to_bytes(1, "big"))]
                + ([(N.SIZE2, BAD_SIZE)] if block.num == 0 else [])
            ),
            payload=body[block.offset : block.offset + 1024],
        )

    pair, _ = scripted(script)
    final = pair.request(get("large"))
    assert final.response.payload == body
    assert [p.total for p in pair.progress(final.handle)] == [None, None, 3000]  # known at the end
