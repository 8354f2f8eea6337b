"""Block1: large request bodies split by the client and reassembled by the server
(RFC 7959 §2.5, §2.9; Request-Tag from RFC 9175 §3), on the simulated network.
"""

from __future__ import annotations

import pytest

from coapkit import BlockValue, Code, Message, Options
from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.errors import TransferError
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import LinkConditions
from tests.blockwise.helpers import (
    CLIENT,
    SERVER,
    Pair,
    body_of,
    response,
    scripted,
    with_body,
)

MiB = 1024 * 1024
BIG = BlockwiseConfig(max_body=2 * MiB)


class Store:
    """An app that keeps every body it is handed and answers 2.04 (or ``code``)."""

    def __init__(self, code: int = Code.CHANGED, payload: bytes = b""):
        self.bodies: list[bytes] = []
        self.code = code
        self.payload = payload

    def __call__(self, node, event, now):
        self.bodies.append(event.request.payload)
        return Message(code=self.code, payload=self.payload)


def block(num: int, more: bool, szx: int, payload: bytes, code: int = Code.PUT, **options):
    """A request carrying one Block1 block, sent as it is (the client does not split it)."""
    return with_body(code, payload, "up", block1=BlockValue(num, more, szx), **options)


def client_blocks(pair: Pair) -> list[Message]:
    return [m for m in pair.client_requests() if N.BLOCK1 in m.options]


def server_answers(pair: Pair) -> list[Message]:
    return [m for m in pair.sent(SERVER, CLIENT) if m.code >= 64]


# -- the big one ------------------------------------------------------------------------


@pytest.mark.parametrize("szx", range(7))
def test_one_mebibyte_request_at_every_block_size_under_loss(szx):
    body = body_of(MiB, seed=10 + szx)
    store = Store()
    pair = Pair(
        store,
        seed=200 + szx,
        loss=0.2,
        server_config=BIG,
        client_config=BlockwiseConfig(max_szx=szx),
        keep_trace=False,
    )
    final = pair.request(with_body(Code.PUT, body, "large", content_format=42))
    assert isinstance(final, ResponseEvent), final
    assert final.response.code == Code.CHANGED
    assert N.BLOCK1 not in final.response.options
    assert len(store.bodies) == 1  # the handler ran once, on the whole body
    assert store.bodies[0] == body  # byte-identical
    assert pair.requests[0].options.content_format == 42
    assert N.BLOCK1 not in pair.requests[0].options and N.SIZE1 not in pair.requests[0].options
    stats = pair.blockwise.stats
    assert stats.bodies_reassembled == 1 and stats.bodies_incomplete == 0
    assert pair.blockwise.bodies_in_progress == 0 and pair.blockwise.buffered_bytes == 0
    assert pair.network.lost > 0.15 * pair.network.delivered
    blocks = MiB >> (szx + 4)
    progress = pair.progress(final.handle)
    assert len(progress) == blocks
    assert all(p.upload and p.total == MiB for p in progress)
    assert progress[-2].done == MiB - (1 << (szx + 4))
    assert progress[-1].done == MiB


# -- the wire ---------------------------------------------------------------------------------


def test_blocks_on_the_wire():
    body = body_of(3000)
    store = Store()
    pair = Pair(store)
    final = pair.request(with_body(Code.PUT, body, "up"))
    sent = client_blocks(pair)
    assert [m.options.block1 for m in sent] == [
        BlockValue(0, True, 6),
        BlockValue(1, True, 6),
        BlockValue(2, False, 6),
    ]
    assert [len(m.payload) for m in sent] == [1024, 1024, 952]
    assert [m.options.size1 for m in sent] == [3000, None, None]
    answers = server_answers(pair)
    assert [(a.code, a.options.block1) for a in answers] == [
        (Code.CONTINUE, BlockValue(0, True, 6)),
        (Code.CONTINUE, BlockValue(1, True, 6)),
        (Code.CHANGED, BlockValue(2, False, 6)),  # the final response echoes Block1
    ]
    assert final.response.code == Code.CHANGED
    assert store.bodies == [body]
    assert len({m.token for m in sent}) == 3  # one exchange per block


def test_a_body_that_fits_one_block_goes_whole():
    store = Store()
    pair = Pair(store)
    pair.request(with_body(Code.POST, b"p" * 1024, "up"))
    [only] = pair.client_requests()
    assert N.BLOCK1 not in only.options and N.SIZE1 not in only.options
    assert store.bodies == [b"p" * 1024]


@pytest.mark.parametrize("code", [Code.POST, Code.PUT, Code.FETCH, Code.PATCH, Code.IPATCH])
def test_every_method_with_a_body(code):
    body = body_of(2500)
    store = Store(Code.CONTENT if code == Code.FETCH else Code.CHANGED)
    pair = Pair(store)
    final = pair.request(with_body(code, body, "up"))
    assert final.response.code == store.code
    assert store.bodies == [body]
    assert pair.requests[0].code == code


def test_get_and_delete_are_never_split():
    store = Store()
    pair = Pair(store)
    pair.request(with_body(Code.DELETE, b"d" * 1100, "up"))
    assert N.BLOCK1 not in pair.client_requests()[0].options


def test_client_block_size_is_configurable():
    body = body_of(1000)
    store = Store()
    pair = Pair(store, client_config=BlockwiseConfig(max_szx=2))
    pair.request(with_body(Code.PUT, body, "up"))
    assert {m.options.block1.szx for m in client_blocks(pair)} == {2}
    assert len(client_blocks(pair)) == 16
    assert store.bodies == [body]


def test_the_server_asks_for_smaller_blocks():
    """The 2.31 to block 0 (1024 bytes) asks for 256: the client goes on at byte 1024 with
    block number 4 (RFC 7959 §2.5, Figure 8's pattern)."""
    body = body_of(2000)
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_szx=4))
    final = pair.request(with_body(Code.PUT, body, "up"))
    assert final.response.code == Code.CHANGED
    assert store.bodies == [body]
    sent = client_blocks(pair)
    assert [m.options.block1 for m in sent] == [
        BlockValue(0, True, 6),
        BlockValue(4, True, 4),
        BlockValue(5, True, 4),
        BlockValue(6, True, 4),
        BlockValue(7, False, 4),
    ]
    assert server_answers(pair)[0].options.block1 == BlockValue(0, True, 4)


def test_progress_events_for_an_upload():
    store = Store()
    pair = Pair(store)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert [(p.done, p.total, p.upload) for p in pair.progress(final.handle)] == [
        (1024, 3000, True),
        (2048, 3000, True),
        (3000, 3000, True),
    ]


# -- 4.13 Request Entity Too Large ------------------------------------------------------------


def test_size1_above_max_body_is_refused_at_block_0():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body=2000))
    final = pair.request(with_body(Code.PUT, body_of(5000), "up"))
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert final.response.options.size1 == 2000
    # The client gives up (the server cannot take the body at any block size): one request.
    assert len(pair.client_requests()) == 1
    assert store.bodies == []
    assert pair.blockwise.stats.bodies_too_large == 1
    assert pair.blockwise.bodies_in_progress == 0


def test_body_growing_beyond_max_body_without_size1_is_refused():
    """A client that does not announce Size1 learns at the block that crosses the limit."""
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body=2000))
    assert pair.request(block(0, True, 6, b"a" * 1024)).response.code == Code.CONTINUE
    final = pair.request(block(1, True, 6, b"b" * 1024))
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert final.response.options.size1 == 2000
    assert pair.blockwise.bodies_in_progress == 0
    assert pair.blockwise.buffered_bytes == 0


def test_4_13_to_a_whole_request_is_retried_in_blocks():
    """RFC 7959 §2.9.3: a 4.13 to a request without Block1 is a hint to try Block1; a Block1
    option in it gives the block size the server wants."""
    body = body_of(900)
    store = Store()

    def small_only(node, event, now):
        if not store.bodies and len(event.request.payload) > 64:
            store.bodies.append(b"refused")
            return Message(
                code=Code.REQUEST_ENTITY_TOO_LARGE,
                options=Options.build(size1=4096, block1=BlockValue(0, False, 2)),
            )
        return store(node, event, now)

    pair = Pair(small_only)
    final = pair.request(with_body(Code.POST, body, "up"))
    assert final.response.code == Code.CHANGED
    assert store.bodies == [b"refused", body]
    sent = pair.client_requests()
    assert N.BLOCK1 not in sent[0].options
    assert {m.options.block1.szx for m in sent[1:]} == {2}
    assert sent[1].options.size1 == 900


def test_4_13_to_a_whole_request_without_block1_hint_tries_a_smaller_block():
    body = body_of(900)
    calls = []

    def script(request):
        calls.append(request)
        if N.BLOCK1 not in request.options:
            return response(Code.REQUEST_ENTITY_TOO_LARGE, size1=4096)
        num, more, szx = request.options.block1
        return response(Code.CONTINUE if more else Code.CHANGED, block1=BlockValue(num, more, szx))

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.POST, body, "up"))
    assert final.response.code == Code.CHANGED
    # 900 bytes did not go whole: the next smaller block size is 512.
    assert [m.options.block1 for m in peer.requests[1:]] == [
        BlockValue(0, True, 5),
        BlockValue(1, False, 5),
    ]


def test_4_13_to_a_whole_request_with_too_small_size1_is_final():
    def script(request):
        return response(Code.REQUEST_ENTITY_TOO_LARGE, size1=100)

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.POST, body_of(900), "up"))
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert len(peer.requests) == 1


@pytest.mark.parametrize(
    "request_",
    [
        with_body(Code.POST, b"s" * 16, "up"),  # no smaller block size exists
        with_body(Code.POST, b"", "up"),
        with_body(Code.GET, b"", "up"),
        with_body(Code.PUT, b"p" * 100, "up", block1=BlockValue(0, False, 6)),  # already Block1
    ],
    ids=["16-bytes", "empty", "get", "own-block1"],
)
def test_4_13_that_blocks_cannot_help_is_final(request_):
    def script(request):
        return response(Code.REQUEST_ENTITY_TOO_LARGE, block1=BlockValue(0, False, 0))

    pair, peer = scripted(script)
    final = pair.request(request_)
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert len(peer.requests) == 1


def test_4_13_to_a_block_retries_from_block_0_at_the_hinted_size():
    body = body_of(3000)

    def script(request):
        num, more, szx = request.options.block1
        if szx > 4:
            return response(
                Code.REQUEST_ENTITY_TOO_LARGE, size1=10_000, block1=BlockValue(0, False, 4)
            )
        return response(Code.CONTINUE if more else Code.CHANGED, block1=BlockValue(num, more, szx))

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.PUT, body, "up"))
    assert final.response.code == Code.CHANGED
    sent = [m.options.block1 for m in peer.requests]
    assert sent[0] == BlockValue(0, True, 6)
    assert sent[1:] == [BlockValue(n, n < 11, 4) for n in range(12)]
    assert peer.requests[1].options.size1 == 3000
    assert b"".join(m.payload for m in peer.requests[1:]) == body


def test_4_13_is_retried_once():
    def script(request):
        return response(Code.REQUEST_ENTITY_TOO_LARGE, block1=BlockValue(0, False, 4))

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert len(peer.requests) == 2
    assert N.BLOCK1 not in final.response.options


def test_4_13_mid_upload_without_hint_is_final():
    def script(request):
        num = request.options.block1.num
        if num == 0:
            return response(Code.CONTINUE, block1=BlockValue(0, True, 6))
        return response(Code.REQUEST_ENTITY_TOO_LARGE)

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert final.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert len(peer.requests) == 2


# -- 4.08 Request Entity Incomplete -----------------------------------------------------------


def test_a_gap_is_4_08_and_ends_the_body():
    store = Store()
    pair = Pair(store)
    assert pair.request(block(0, True, 6, b"a" * 1024)).response.code == Code.CONTINUE
    gap = pair.request(block(2, True, 6, b"c" * 1024))
    assert gap.response.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert b"1024" in gap.response.payload  # says where it expected the next block
    # The body is gone: the block that was missing no longer helps.
    late = pair.request(block(1, False, 6, b"b" * 10))
    assert late.response.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert store.bodies == []
    assert pair.blockwise.stats.bodies_incomplete == 2
    assert pair.blockwise.bodies_in_progress == 0


def test_a_body_without_block_0_is_4_08():
    store = Store()
    pair = Pair(store)
    final = pair.request(block(3, False, 6, b"x" * 10))
    assert final.response.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert store.bodies == []
    assert pair.blockwise.bodies_in_progress == 0


def test_mixed_up_block_sizes_are_4_08():
    store = Store()
    pair = Pair(store)
    pair.request(block(0, True, 6, b"a" * 1024))
    # block 1 of 256 bytes starts at byte 256, inside what block 0 already brought
    final = pair.request(block(1, True, 4, b"b" * 256))
    assert final.response.code == Code.REQUEST_ENTITY_INCOMPLETE


def test_same_block_number_with_other_content_is_4_08():
    store = Store()
    pair = Pair(store)
    pair.request(block(0, True, 6, b"a" * 1024))
    pair.request(block(1, True, 6, b"b" * 1024))
    final = pair.request(block(1, True, 6, b"X" * 1024))
    assert final.response.code == Code.REQUEST_ENTITY_INCOMPLETE


def test_a_repeated_block_is_answered_again_and_not_appended_twice():
    store = Store()
    pair = Pair(store)
    for num, payload in [(0, b"a"), (0, b"a"), (1, b"b"), (1, b"b")]:
        answer = pair.request(block(num, True, 4, payload * 256))
        assert answer.response.code == Code.CONTINUE
        assert answer.response.options.block1 == BlockValue(num, True, 4)
    final = pair.request(block(2, False, 4, b"c" * 7))
    assert final.response.code == Code.CHANGED
    assert store.bodies == [b"a" * 256 + b"b" * 256 + b"c" * 7]


def test_block_0_with_new_content_starts_a_new_body():
    store = Store()
    pair = Pair(store)
    pair.request(block(0, True, 4, b"a" * 256))
    pair.request(block(1, True, 4, b"b" * 256))
    pair.request(block(0, True, 4, b"z" * 256))
    pair.request(block(1, False, 4, b"y" * 5))
    assert store.bodies == [b"z" * 256 + b"y" * 5]


def test_a_block_whose_answers_are_all_lost_is_sent_again():
    body = body_of(3000)
    store = Store()
    pair = Pair(store)
    # all five answers to block 1 (the server's datagrams 2 to 6) are lost
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset(range(2, 7))))
    final = pair.request(with_body(Code.PUT, body, "up"))
    assert final.response.code == Code.CHANGED
    assert store.bodies == [body]
    nums = [m.options.block1.num for m in client_blocks(pair)]
    assert nums == [0, 1, 1, 1, 1, 1, 1, 2]
    assert len({m.token for m in client_blocks(pair)}) == 4


def test_the_last_block_whose_answers_are_all_lost():
    """The server ran the handler for the last block, but all five answers were lost, so the
    client sends the last block again in a new exchange.  The server remembers the bodies it
    handed up lately (their last block and its answer, for the transfer timeout): it replays
    the stored 2.04 and does not run the handler a second time (the request may not be
    idempotent).  Without that record RFC 7959 would leave only 4.08 to answer."""
    body = body_of(3000)
    store = Store()
    pair = Pair(store)
    pair.network.set_link(SERVER, CLIENT, LinkConditions(drop=frozenset(range(3, 8))))
    final = pair.request(with_body(Code.PUT, body, "up"))
    assert store.bodies == [body]
    assert final.response.code == Code.CHANGED
    last = [m for m in client_blocks(pair) if not m.options.block1.more]
    assert len(last) == 6  # one exchange of five transmissions, all answers lost, then one
    assert len({m.token for m in last}) == 2
    assert pair.blockwise.stats.last_blocks_answered_again == 1


def test_a_different_last_block_after_the_body_finished_is_still_4_08():
    """Only the very same last block is a retry; any other block without block 0 is not."""
    body = body_of(3000)
    store = Store()
    pair = Pair(store)
    assert pair.request(with_body(Code.PUT, body, "up")).response.code == Code.CHANGED
    other = pair.request(block(2, False, 6, b"x" * 5))
    assert other.response.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert store.bodies == [body]


# -- malformed blocks -------------------------------------------------------------------------


def test_more_flag_with_a_short_block_is_4_00():
    pair = Pair(Store())
    final = pair.request(block(0, True, 6, b"short"))
    assert final.response.code == Code.BAD_REQUEST


def test_last_block_larger_than_its_size_is_4_00():
    pair = Pair(Store())
    pair.request(block(0, True, 0, b"a" * 16))
    final = pair.request(block(1, False, 0, b"b" * 17))
    assert final.response.code == Code.BAD_REQUEST


def test_block1_szx_7_is_4_02():
    store = Store()
    pair = Pair(store)
    request = Message(
        code=Code.PUT, options=Options([(N.URI_PATH, b"up"), (N.BLOCK1, b"\x0f")]), payload=b"x"
    )
    final = pair.request(request)
    assert final.response.code == Code.BAD_OPTION
    assert store.bodies == []


# -- concurrent bodies: Request-Tag (RFC 9175 §3) ---------------------------------------------


def test_two_uploads_to_one_resource_are_kept_apart_by_request_tag():
    one, two = body_of(5000, seed=1), body_of(4000, seed=2)
    store = Store()
    pair = Pair(store)
    first = pair.start(with_body(Code.PUT, one, "shared"))
    second = pair.start(with_body(Code.PUT, two, "shared"))
    pair.network.step()
    pair.network.step()
    assert pair.wait(first[0]).response.code == Code.CHANGED
    assert pair.wait(second[0]).response.code == Code.CHANGED
    tag = (1).to_bytes(4, "big")
    # the blocks of the two bodies alternate; the second body carries a Request-Tag
    assert [(m.options.get(N.REQUEST_TAG), m.options.block1.num) for m in client_blocks(pair)] == [
        (None, 0),
        (tag, 0),
        (None, 1),
        (tag, 1),
        (None, 2),
        (tag, 2),
        (None, 3),
        (tag, 3),
        (None, 4),
    ]
    # the handler gets each body whole, the Request-Tag kept on the assembled request
    assert [r.options.get(N.REQUEST_TAG) for r in pair.requests] == [tag, None]
    assert store.bodies == [two, one]


def test_request_tags_are_not_reused_while_bodies_are_in_flight():
    bodies = [body_of(3000, seed=i) for i in range(3)]
    store = Store()
    pair = Pair(store)
    handles = [pair.start(with_body(Code.POST, body, "shared")) for body in bodies]
    pair.network.step()
    for box in handles:
        assert pair.wait(box[0]).response.code == Code.CHANGED
    assert sorted(store.bodies) == sorted(bodies)
    assert len({m.options.get(N.REQUEST_TAG) for m in client_blocks(pair)}) == 3
    # Afterwards a single upload needs no tag.
    pair.request(with_body(Code.POST, body_of(2000), "shared"))
    assert client_blocks(pair)[-1].options.get(N.REQUEST_TAG) is None


def test_without_request_tag_interleaved_bodies_are_4_08():
    """What Request-Tag prevents: two bodies for one resource from one client, interleaved
    without tags, look like one body with a gap."""
    store = Store()
    pair = Pair(store)
    assert pair.request(block(0, True, 4, b"a" * 256)).response.code == Code.CONTINUE
    assert pair.request(block(0, True, 4, b"x" * 256)).response.code == Code.CONTINUE
    final = pair.request(block(1, True, 4, b"b" * 256))  # continues x, not a...
    assert final.response.code == Code.CONTINUE
    assert pair.request(block(1, False, 4, b"y")).response.code == Code.REQUEST_ENTITY_INCOMPLETE


def test_uploads_to_different_resources_need_no_tag():
    store = Store()
    pair = Pair(store)
    a = pair.start(with_body(Code.PUT, body_of(3000, seed=1), "a"))
    b = pair.start(with_body(Code.PUT, body_of(3000, seed=2), "b"))
    pair.network.step()
    pair.wait(a[0])
    pair.wait(b[0])
    assert {m.options.get(N.REQUEST_TAG) for m in client_blocks(pair)} == {None}
    assert len(store.bodies) == 2


# -- Block1 and Block2 together (RFC 7959 §3.3) -----------------------------------------------


def test_large_post_with_a_large_response():
    body, answer = body_of(3000, seed=1), body_of(2500, seed=2)
    store = Store(Code.CHANGED, answer)
    pair = Pair(store)
    final = pair.request(with_body(Code.POST, body, "both"))
    assert final.response.code == Code.CHANGED
    assert final.response.payload == answer
    assert store.bodies == [body]
    sent = pair.client_requests()
    assert [(m.options.block1, m.options.block2) for m in sent] == [
        (BlockValue(0, True, 6), None),
        (BlockValue(1, True, 6), None),
        (BlockValue(2, False, 6), None),
        (None, BlockValue(1, False, 6)),
        (None, BlockValue(2, False, 6)),
    ]
    first_answer = next(a for a in server_answers(pair) if a.code == Code.CHANGED)
    assert first_answer.options.block1 == BlockValue(2, False, 6)
    assert first_answer.options.block2 == BlockValue(0, True, 6)
    assert N.BLOCK1 not in final.response.options and N.BLOCK2 not in final.response.options


def test_large_fetch_with_a_large_response():
    body, answer = body_of(3000, seed=1), body_of(2500, seed=2)
    store = Store(Code.CONTENT, answer)
    pair = Pair(store)
    final = pair.request(with_body(Code.FETCH, body, "both"))
    assert final.response.payload == answer
    assert store.bodies == [body]
    # The body went block-wise, so it cannot ride along with the requests for the rest of
    # the response (it would not fit in one message): like libcoap, the client sends them
    # without it, and the server answers them from the representation it cached under a
    # key without the body (see test_fetch_rest_of_the_response_without_the_body).
    block2_requests = [m for m in pair.client_requests() if N.BLOCK2 in m.options]
    assert [m.payload for m in block2_requests] == [b"", b""]


def test_fetch_rest_of_the_response_without_the_body():
    """libcoap's pattern: the Block1 blocks of a FETCH body (each with Block2 early
    negotiation), then requests for the rest of the response that carry no body, but the
    Request-Tag and Size1 of the blocks.  The body came in blocks, so it is not part of
    the cache key: the rest comes from the cache."""
    query, answer = body_of(2500, seed=1), body_of(1000, seed=2)
    store = Store(Code.CONTENT, answer)
    pair = Pair(store)
    common = {"block2": BlockValue(0, False, 4), "request_tag": [b"t"], "size1": 2500}
    for num in range(3):
        chunk = query[num * 1024 : (num + 1) * 1024]
        last = pair.raw(block(num, num < 2, 6, chunk, Code.FETCH, **common))
    assert last.options.block2 == BlockValue(0, True, 4)
    rest = []
    for num in (1, 2, 3):
        request = with_body(
            Code.FETCH,
            b"",
            "up",
            block2=BlockValue(num, False, 4),
            request_tag=[b"t"],
            size1=2500,
        )
        rest.append(pair.raw(request).payload)
    assert last.payload + b"".join(rest) == answer
    assert store.bodies == [query]
    assert pair.blockwise.stats.blocks_served_from_cache == 3


# -- the client against peers that do odd things ---------------------------------------------


def test_2_31_without_block1_fails():
    def script(request):
        return response(Code.CONTINUE)

    pair, _ = scripted(script)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert isinstance(final, RequestFailed)
    assert isinstance(final.error, TransferError)
    assert "without a Block1" in str(final.error)


def test_2_31_after_the_last_block_fails():
    def script(request):
        return response(Code.CONTINUE, block1=request.options.block1)

    pair, peer = scripted(script)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert isinstance(final.error, TransferError)
    assert "after the last block" in str(final.error)
    assert len(peer.requests) == 3


def test_an_error_mid_upload_is_the_answer():
    def script(request):
        num = request.options.block1.num
        if num == 0:
            return response(Code.CONTINUE, block1=BlockValue(0, True, 6))
        return response(Code.SERVICE_UNAVAILABLE, b"busy", block1=BlockValue(num, False, 6))

    pair, _ = scripted(script)
    final = pair.request(with_body(Code.PUT, body_of(3000), "up"))
    assert final.response.code == Code.SERVICE_UNAVAILABLE
    assert final.response.payload == b"busy"
    assert N.BLOCK1 not in final.response.options
    # the client's upload bookkeeping is cleared: a new upload needs no Request-Tag
    pair.request(with_body(Code.PUT, body_of(3000), "up"))


# -- malformed options from the peer never raise (docs/architecture.md rule 8) ------------------

BAD_SIZE = b"\x01" * 5  # Size1 is at most 4 bytes


def test_malformed_size1_in_a_block_is_ignored():
    store = Store()
    pair = Pair(store)
    first = Message(
        code=Code.PUT,
        options=Options([(N.URI_PATH, b"up"), (N.BLOCK1, b"\x0e"), (N.SIZE1, BAD_SIZE)]),
        payload=b"a" * 1024,
    )
    assert pair.request(first).response.code == Code.CONTINUE
    assert pair.request(block(1, False, 6, b"b")).response.code == Code.CHANGED
    assert store.bodies == [b"a" * 1024 + b"b"]


def test_malformed_size1_in_a_4_13_is_ignored():
    def script(request):
        if N.BLOCK1 in request.options and request.options.block1.szx == 4:
            more = request.options.block1.more
            return response(Code.CONTINUE if more else Code.CHANGED, block1=request.options.block1)
        return Message(
            code=Code.REQUEST_ENTITY_TOO_LARGE,
            options=Options([(N.BLOCK1, b"\x04"), (N.SIZE1, BAD_SIZE)]),
        )

    for body in (body_of(3000), body_of(900)):  # sent in blocks, and sent whole
        pair, peer = scripted(script)
        final = pair.request(with_body(Code.PUT, body, "up"))
        assert final.response.code == Code.CHANGED
        assert b"".join(m.payload for m in peer.requests[1:]) == body
