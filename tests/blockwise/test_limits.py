"""Limits of the block-wise server: bounded reassembly buffers per remote and in total, a
bounded representation cache, expiry of abandoned transfers, counters; plus the
:class:`~coapkit.blockwise.server.BlockwiseServer` on its own for what an endpoint never
hands it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from coapkit import BlockValue, Code, Message, MessageType, Options
from coapkit.blockwise.server import (
    BlockwiseConfig,
    BlockwiseServer,
    BlockwiseStats,
    body_key,
    representation_key,
)
from coapkit.codec.option_registry import OptionNumber as N
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import ResponseEvent
from coapkit.messaging.records import Remote
from coapkit.testing import EndpointNode, LinkConditions
from tests.blockwise.helpers import (
    CLIENT,
    SERVER,
    Pair,
    body_of,
    get,
    with_body,
)

OTHER: Remote = ("192.0.2.3", 5683)


class Store:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, node, event, now):
        if event.request.code == Code.GET:
            return Message(code=Code.CONTENT, payload=body_of(3000))
        self.bodies.append(event.request.payload)
        return Message(code=Code.CHANGED)


def block(path: str, num: int, more: bool, payload: bytes, szx: int = 6) -> Message:
    return with_body(Code.PUT, payload, path, block1=BlockValue(num, more, szx))


# -- reassembly buffers -----------------------------------------------------------------------


def test_bodies_per_remote_are_bounded_oldest_dropped():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_bodies_per_remote=2))
    for path in "abc":
        assert pair.request(block(path, 0, True, b"0" * 1024)).response.code == Code.CONTINUE
    bw = pair.blockwise
    assert bw.bodies_in_progress == 2
    assert bw.buffered_bytes == 2048
    # "a" was the oldest: it is gone, "b" and "c" go on.
    assert pair.request(block("a", 1, False, b"1")).response.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert pair.request(block("b", 1, False, b"1")).response.code == Code.CHANGED
    assert pair.request(block("c", 1, False, b"1")).response.code == Code.CHANGED
    assert bw.bodies_in_progress == 0 and bw.buffered_bytes == 0


def test_the_per_remote_bound_leaves_other_remotes_alone():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_bodies_per_remote=1))
    other = EndpointNode(Endpoint(rng=random.Random(9)))
    pair.network.attach(OTHER, other)

    def other_sends(message):
        box = []

        def send(now):
            handle, datagrams = other.request(message, SERVER, now)
            box.append(handle)
            return datagrams

        pair.network.call_at(pair.network.now, OTHER, send)
        pair.network.run_for(1.0)
        [event] = [e for _, e in other.events if isinstance(e, ResponseEvent)][-1:]
        return event.response

    assert other_sends(block("x", 0, True, b"o" * 1024)).code == Code.CONTINUE
    assert pair.request(block("x", 0, True, b"m" * 1024)).response.code == Code.CONTINUE
    assert pair.request(block("y", 0, True, b"m" * 1024)).response.code == Code.CONTINUE
    # the client's "x" was dropped for its "y"; the other remote's "x" is still there
    assert other_sends(block("x", 1, False, b"!")).code == Code.CHANGED
    assert store.bodies == [b"o" * 1024 + b"!"]


def test_bodies_in_total_are_bounded_least_recently_used_dropped():
    server = BlockwiseServer(BlockwiseConfig(max_bodies=3))
    remotes = [("192.0.2.10", 5683 + i) for i in range(4)]
    for i, remote in enumerate(remotes[:3]):
        assert server.on_request(block("a", 0, True, b"x" * 16, 0), remote, i)[1].code == (
            Code.CONTINUE
        )
    # The first remote sends its next block: now the second one's body is the idlest.
    assert server.on_request(block("a", 1, True, b"x" * 16, 0), remotes[0], 3.0)[1].code == (
        Code.CONTINUE
    )
    assert server.on_request(block("a", 0, True, b"y" * 16, 0), remotes[3], 4.0)[1].code == (
        Code.CONTINUE
    )
    assert (server.bodies_in_progress, server.stats.bodies_evicted) == (3, 1)
    assert server.buffered_bytes == 4 * 16
    late = server.on_request(block("a", 1, False, b"!", 0), remotes[1], 5.0)[1]
    assert late.code == Code.REQUEST_ENTITY_INCOMPLETE  # its client starts again
    for remote, size in ((remotes[0], 33), (remotes[2], 17), (remotes[3], 17)):
        num = 2 if remote is remotes[0] else 1
        whole, answer = server.on_request(block("a", num, False, b"!", 0), remote, 6.0)
        assert answer is None and whole is not None and len(whole.payload) == size
    assert (server.bodies_in_progress, server.buffered_bytes) == (0, 0)


def test_the_body_limits_must_allow_a_body():
    for settings in ({"max_bodies": 0}, {"max_bodies_per_remote": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            BlockwiseConfig(**settings)


class CountingOrderedDict(OrderedDict[Any, Any]):
    """An OrderedDict that counts the entries its iterators hand out."""

    handed_out = 0

    def __iter__(self) -> Iterator[Any]:
        for key in super().__iter__():
            CountingOrderedDict.handed_out += 1
            yield key

    def items(self) -> Any:
        return ((key, self[key]) for key in self)

    def values(self) -> Any:
        return (self[key] for key in self)


def test_100k_abandoned_bodies_cost_the_same_each_and_a_normal_upload_goes_through():
    """A flood of abandoned one-block bodies (16-byte blocks, the smallest) from 25,000
    remotes, four each: the table stays at max_bodies, no body costs a look at the others
    (before, every new body scanned all bodies to count its remote's: 8.5 ms per body at
    50,000 bodies), and a client uploading three blocks every 1,000 bodies gets its body
    reassembled every time."""
    server = BlockwiseServer()
    server._bodies = CountingOrderedDict()
    CountingOrderedDict.handed_out = 0
    client = ("203.0.113.50", 5683)
    cap = server.config.max_bodies
    uploads = 0
    for i in range(100_000):
        now = i * 0.001
        remote = (f"10.0.{(i >> 8) % 100}.{i & 0xFF}", 5683 + i % 4)
        assert server.on_request(block(str(i), 0, True, b"x" * 16, 0), remote, now)[1].code == (
            Code.CONTINUE
        )
        assert server.bodies_in_progress == min(i + 1, cap)
        if i % 1000 == 500:
            for num in range(3):
                whole, answer = server.on_request(
                    block("mine", num, num < 2, b"%d" % num * 16, 0), client, now
                )
            assert answer is None and whole is not None and len(whole.payload) == 48
            uploads += 1
    assert uploads == 100
    assert server.stats.bodies_evicted == 100_000 - cap
    assert server.buffered_bytes == cap * 16
    # Per block: the oldest body, to see whether it expired, and one more to evict when the
    # table is full; never a scan.
    assert CountingOrderedDict.handed_out <= 2 * 100_000 + 3 * uploads
    server.expire(100.0 + server.config.transfer_timeout)
    assert (server.bodies_in_progress, server.buffered_bytes, server._by_remote) == (0, 0, {})


def test_total_buffer_bound_at_block_0_is_5_03():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body_total=3000))
    assert pair.request(block("a", 0, True, b"a" * 1024)).response.code == Code.CONTINUE
    assert pair.request(block("b", 0, True, b"b" * 1024)).response.code == Code.CONTINUE
    busy = pair.request(block("c", 0, True, b"c" * 1024)).response
    assert busy.code == Code.SERVICE_UNAVAILABLE
    assert busy.options.max_age == 5
    assert pair.blockwise.buffered_bytes == 2048
    # finishing a body frees its bytes
    assert pair.request(block("a", 1, False, b"!")).response.code == Code.CHANGED
    assert pair.request(block("c", 0, True, b"c" * 1024)).response.code == Code.CONTINUE


def test_total_buffer_bound_on_a_later_block_is_5_03_and_drops_the_body():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body_total=2500))
    pair.request(block("a", 0, True, b"a" * 1024))
    pair.request(block("b", 0, True, b"b" * 1024))
    assert pair.request(block("a", 1, True, b"a" * 1024)).response.code == (
        Code.SERVICE_UNAVAILABLE
    )
    assert pair.blockwise.bodies_in_progress == 1
    assert pair.blockwise.buffered_bytes == 1024
    # the client library, told 5.03, would start over; the old body is gone
    assert pair.request(block("a", 2, False, b"!")).response.code == (
        Code.REQUEST_ENTITY_INCOMPLETE
    )


def test_a_whole_upload_against_a_busy_server_gets_5_03():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body_total=1000))
    final = pair.request(with_body(Code.PUT, body_of(3000), "a"))
    assert final.response.code == Code.SERVICE_UNAVAILABLE
    assert store.bodies == []


# -- expiry -----------------------------------------------------------------------------------


def test_an_abandoned_body_expires_and_frees_its_memory():
    store = Store()
    config = BlockwiseConfig(transfer_timeout=60.0)
    pair = Pair(store, server_config=config)
    box = pair.start(with_body(Code.PUT, body_of(5000), "up"))
    pair.network.step()
    handle = box[0]
    # run until two blocks went through (the third is on its way), then the client gives up
    while len(pair.progress(handle)) < 2:
        pair.network.step()
    pair.network.call_at(
        pair.network.now, CLIENT, lambda now: pair.client.endpoint.cancel(handle, now).datagrams
    )
    pair.network.run_for(0.1)
    bw = pair.blockwise
    assert bw.bodies_in_progress == 1
    assert bw.buffered_bytes == 3072
    last_block_at = max(
        entry.time
        for entry in pair.network.trace
        if entry.event == "delivered" and entry.dst == SERVER
    )
    assert bw.next_deadline() == pytest.approx(last_block_at + 60.0)
    assert pair.server.endpoint.next_deadline() <= last_block_at + 60.0
    pair.network.run_until(last_block_at + 59.0)
    assert bw.bodies_in_progress == 1
    pair.network.run_until(last_block_at + 60.0)
    assert bw.bodies_in_progress == 0
    assert bw.buffered_bytes == 0
    assert bw.stats.bodies_expired == 1
    assert bw.next_deadline() is None
    assert store.bodies == []


def test_cached_representations_expire_and_free_their_memory():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(transfer_timeout=30.0))
    final = pair.request(get("large"))
    assert final.response.payload == body_of(3000)
    bw = pair.blockwise
    assert bw.cached_representations == 1
    assert bw.buffered_bytes == 3000
    done_at = pair.network.now
    pair.network.run_until(done_at + 29.0)
    assert bw.cached_representations == 1
    pair.network.run_until(done_at + 31.0)
    assert bw.cached_representations == 0
    assert bw.buffered_bytes == 0
    assert bw.stats.representations_expired == 1
    # a later block request renders the representation again
    again = pair.request(get("large", block2=BlockValue(2, False, 6)))
    assert again.response.payload == body_of(3000)[2048:]
    assert len(pair.requests) == 2


def test_using_a_representation_keeps_it_fresh():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(transfer_timeout=30.0))
    pair.request(get("large"))
    for _ in range(4):  # every 20 s, well past the 30 s from the first use
        pair.network.run_for(20.0)
        pair.request(get("large", block2=BlockValue(1, False, 6)))
    assert len(pair.requests) == 1
    assert pair.blockwise.stats.representations_expired == 0


def test_abandoned_downloads_and_uploads_at_once_all_expire():
    """Both tables, many remotes' worth of entries, one endpoint timer: all back to zero."""
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(transfer_timeout=100.0))
    for path in "abc":
        pair.request(block(path, 0, True, b"x" * 1024))
        pair.network.run_for(10.0)
        pair.request(get(path))
        pair.network.run_for(10.0)
    bw = pair.blockwise
    assert (bw.bodies_in_progress, bw.cached_representations) == (3, 3)
    assert bw.buffered_bytes == 3 * 1024 + 3 * 3000
    pair.run()  # no event is left once everything expired
    assert (bw.bodies_in_progress, bw.cached_representations, bw.buffered_bytes) == (0, 0, 0)
    assert bw.stats.bodies_expired == 3
    assert bw.stats.representations_expired == 3
    assert pair.server.endpoint.next_deadline() is None


def test_a_block_after_its_body_expired_is_4_08():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(transfer_timeout=10.0))
    pair.request(block("a", 0, True, b"a" * 1024))
    pair.network.run_for(11.0)
    assert pair.request(block("a", 1, False, b"!")).response.code == Code.REQUEST_ENTITY_INCOMPLETE


def test_expiry_on_arrival_without_a_timer():
    """Expired entries are swept when a block request arrives, even if no timer ran."""
    server = BlockwiseServer(BlockwiseConfig(transfer_timeout=10.0))
    first = block("a", 0, True, b"a" * 1024)
    assert server.on_request(first, CLIENT, 0.0)[1].code == Code.CONTINUE
    second = block("b", 0, True, b"b" * 1024)
    assert server.on_request(second, CLIENT, 20.0)[1].code == Code.CONTINUE
    assert server.bodies_in_progress == 1
    assert server.stats.bodies_expired == 1


# -- the cache bounds -------------------------------------------------------------------------


def test_cache_bytes_are_bounded():
    bodies = {name: body_of(3000, seed=i) for i, name in enumerate("abc")}

    def app(node, event, now):
        return Message(code=Code.CONTENT, payload=bodies[event.request.options.uri_path[0]])

    pair = Pair(app, server_config=BlockwiseConfig(cache_bytes=7000))
    for name in "abc":
        pair.request(get(name))
    assert pair.blockwise.cached_representations == 2
    assert pair.blockwise.buffered_bytes == 6000


def test_a_representation_replaces_the_older_one_under_its_key():
    versions = iter([body_of(3000, seed=1), body_of(2000, seed=2)])

    def app(node, event, now):
        return Message(code=Code.CONTENT, payload=next(versions))

    pair = Pair(app)
    pair.request(get("r"))
    final = pair.request(get("r"))  # block 0 is always rendered afresh
    assert final.response.payload == body_of(2000, seed=2)
    assert pair.blockwise.cached_representations == 1
    assert pair.blockwise.buffered_bytes == 2000
    assert pair.blockwise.stats.representations_cached == 2


# -- counters ---------------------------------------------------------------------------------


def test_counters():
    store = Store()
    pair = Pair(store, server_config=BlockwiseConfig(max_body=5000, transfer_timeout=50.0))
    pair.request(with_body(Code.PUT, body_of(3000), "ok"))  # reassembled
    pair.request(with_body(Code.PUT, body_of(6000), "big"))  # too large
    pair.request(block("gap", 2, False, b"?"))  # incomplete
    pair.request(block("left", 0, True, b"l" * 1024))  # will expire
    pair.request(get("large"))  # cached, 2 blocks from the cache, will expire
    pair.run()
    assert pair.blockwise.stats == BlockwiseStats(
        bodies_reassembled=1,
        bodies_too_large=1,
        bodies_incomplete=1,
        bodies_expired=1,
        blocks_served_from_cache=2,
        representations_cached=1,
        representations_expired=1,
    )


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("szx", [-1, 7])
def test_max_szx_outside_0_to_6_is_refused(szx):
    with pytest.raises(ValueError, match="max_szx"):
        BlockwiseConfig(max_szx=szx)


def test_block_sizes():
    assert BlockwiseConfig().max_block_size == 1024
    assert BlockwiseConfig(max_szx=0).max_block_size == 16


# -- the BlockwiseServer on its own: what an endpoint never hands it --------------------------


def request_with(*items: tuple[int, bytes], code: int = Code.GET, payload: bytes = b"") -> Message:
    return Message(MessageType.CON, code, 1, b"t", Options([(N.URI_PATH, b"r"), *items]), payload)


def test_requests_without_block_options_pass_through():
    server = BlockwiseServer()
    request = request_with()
    assert server.on_request(request, CLIENT, 0.0) == (request, None)


@pytest.mark.parametrize("number", [N.BLOCK1, N.BLOCK2])
def test_malformed_block_option_is_4_02(number):
    server = BlockwiseServer()
    request = request_with((number, b"\x00\x00\x00\x01"), code=Code.PUT)
    passed, answer = server.on_request(request, CLIENT, 0.0)
    assert passed is None
    assert answer.code == Code.BAD_OPTION


def test_response_to_a_malformed_block2_request_is_sliced_from_block_0():
    server = BlockwiseServer()
    request = request_with((N.BLOCK2, b"\x00\x00\x00\x01"))
    response = Message(MessageType.ACK, Code.CONTENT, 1, b"t", payload=b"z" * 3000)
    sliced = server.on_response(request, response, CLIENT, 0.0)
    assert sliced.options.block2 == BlockValue(0, True, 6)


def test_a_response_that_needs_nothing_is_returned_as_it_is():
    server = BlockwiseServer()
    request = request_with((N.BLOCK2, b"\x06"))
    response = Message(MessageType.ACK, Code.CONTENT, 1, b"t", payload=b"small")
    assert server.on_response(request, response, CLIENT, 0.0) is response


def test_keys():
    get_a = request_with((N.ACCEPT, b"\x32"), (N.BLOCK2, b"\x16"), (N.ETAG, b"e"))
    get_b = request_with((N.ACCEPT, b"\x32"), (N.OBSERVE, b""))
    assert representation_key(get_a, CLIENT) == representation_key(get_b, CLIENT)
    assert representation_key(get_a, CLIENT) != representation_key(get_a, OTHER)
    fetch_1 = request_with(code=Code.FETCH, payload=b"1")
    fetch_2 = request_with(code=Code.FETCH, payload=b"2")
    assert representation_key(fetch_1, CLIENT) != representation_key(fetch_2, CLIENT)
    put_1 = request_with((N.BLOCK1, b"\x0e"), (N.SIZE1, b"\x09"), code=Code.PUT, payload=b"1")
    put_2 = request_with((N.BLOCK1, b"\x1e"), code=Code.PUT, payload=b"2")
    tagged = request_with((N.BLOCK1, b"\x1e"), (N.REQUEST_TAG, b"\x01"), code=Code.PUT)
    assert body_key(put_1, CLIENT) == body_key(put_2, CLIENT)
    assert body_key(put_1, CLIENT) != body_key(tagged, CLIENT)


def test_lossy_link_with_duplicates_and_reordering_still_reassembles():
    """Duplicated and reordered datagrams (the message layer deduplicates) and lost ones."""
    body = body_of(64 * 1024, seed=5)
    store = Store()
    pair = Pair(
        store,
        seed=7,
        conditions=LinkConditions(loss=0.2, duplicate=0.2, jitter=0.5),
        keep_trace=False,
    )
    final = pair.request(with_body(Code.POST, body, "up"))
    assert final.response.code == Code.CHANGED
    assert store.bodies == [body]
    download = pair.request(get("large"))
    assert download.response.payload == body_of(3000)


# -- the record of finished bodies ------------------------------------------------------------


def _upload(server: BlockwiseServer, path: str, now: float) -> Message:
    """Send a two-block body; return its last block (the body is handed up)."""
    assert server.on_request(block(path, 0, True, b"0" * 1024), CLIENT, now)[1].code == (
        Code.CONTINUE
    )
    last = block(path, 1, False, b"end")
    whole, answer = server.on_request(last, CLIENT, now)
    assert answer is None and whole is not None and whole.payload == b"0" * 1024 + b"end"
    return last


def test_a_retried_last_block_waits_for_then_gets_the_stored_answer():
    server = BlockwiseServer()
    last = _upload(server, "a", 0.0)
    assert server.finished_bodies == 1
    # retried before the application answered: 5.03 with Max-Age, the handler does not rerun
    passed, busy = server.on_request(last, CLIENT, 1.0)
    assert passed is None and busy.code == Code.SERVICE_UNAVAILABLE
    assert busy.options.max_age == 1
    answer = server.on_response(last, Message(code=Code.CHANGED, payload=b"ok"), CLIENT, 2.0)
    assert answer.options.block1 == BlockValue(1, False, 6)
    passed, again = server.on_request(last, CLIENT, 3.0)
    assert passed is None and again is answer
    assert server.stats.last_blocks_answered_again == 2
    # the same block number with other content, or from another remote, is no retry
    assert server.on_request(block("a", 1, False, b"END"), CLIENT, 4.0)[1].code == (
        Code.REQUEST_ENTITY_INCOMPLETE
    )
    assert server.on_request(last, OTHER, 4.0)[1].code == Code.REQUEST_ENTITY_INCOMPLETE


def test_the_record_of_finished_bodies_is_bounded_and_expires():
    server = BlockwiseServer(BlockwiseConfig(cache_entries=2, transfer_timeout=10.0))
    lasts = [_upload(server, path, 0.0) for path in "abc"]
    assert server.finished_bodies == 2  # the oldest went first
    assert server.on_request(lasts[0], CLIENT, 1.0)[1].code == Code.REQUEST_ENTITY_INCOMPLETE
    assert server.on_request(lasts[2], CLIENT, 1.0)[1].code == Code.SERVICE_UNAVAILABLE
    assert server.next_deadline() == 10.0  # "b"; the retry moved "c" on to 11.0
    server.expire(10.0)
    assert server.finished_bodies == 1
    server.expire(11.0)
    assert server.finished_bodies == 0
    assert server.next_deadline() is None
    assert server.on_request(lasts[2], CLIENT, 12.0)[1].code == Code.REQUEST_ENTITY_INCOMPLETE


def test_each_retry_of_the_last_block_keeps_the_record_alive():
    """A client whose answers keep getting lost retries every MAX_TRANSMIT_WAIT; each retry
    answered from the record extends it, so the third retry is not met with 4.08."""
    server = BlockwiseServer(BlockwiseConfig(transfer_timeout=10.0))
    last = _upload(server, "a", 0.0)
    server.on_response(last, Message(code=Code.CHANGED), CLIENT, 0.0)
    for now in (8.0, 16.0, 24.0):
        server.expire(now)
        assert server.on_request(last, CLIENT, now)[1].code == Code.CHANGED
    assert server.next_deadline() == 34.0
