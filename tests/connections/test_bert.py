"""BERT, block-wise transfers in large blocks over connections (RFC 8323 §6), in virtual time.

Two sans-I/O endpoints on a simulated stream (:class:`StreamPair`).  Both
announce Block-Wise-Transfer and a Max-Message-Size of 66,688 bytes by
default, so either may send the other BERT blocks (szx 7) of up to 64
1024-byte blocks; a peer that does not announce Block-Wise-Transfer gets the
plain 1024-byte blocks of RFC 7959, as over UDP.  The tests count what went
over the wire.
"""

from __future__ import annotations

import random
from random import Random
from typing import Any

import pytest

from coapkit.blockwise.server import BlockwiseConfig
from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import BlockValue, Options
from coapkit.codec.stream import decode_frame, encode_frame
from coapkit.connections import ConnectionLayer, ConnectionReady, StreamConfig, signals
from coapkit.endpoint import Endpoint
from coapkit.errors import TransferError
from coapkit.exchanges.events import RequestFailed
from coapkit.resources import Resource, Response, Site
from tests.blockwise.helpers import Pair, with_body
from tests.blockwise.helpers import get as udp_get
from tests.connections.helpers import SERVER, StreamPair

BODY = random.Random(17).randbytes(100_000)  #: 100 kB, no pattern to hide a misplaced block
ROOMY = BlockwiseConfig(max_body=256 * 1024)  #: a server that takes a 100 kB body
NO_BWT = StreamConfig(block_wise=False)  #: a CSM without Block-Wise-Transfer


class Upload(Resource):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def put(self, request: Any) -> Response:
        self.bodies.append(request.payload)
        return Response(Code.CHANGED, payload=str(len(request.payload)))


class Feed(Resource):
    observable = True

    def __init__(self) -> None:
        super().__init__()
        self.body = b"first"

    def get(self, request: Any) -> Response:
        return Response(payload=self.body)


def make_site() -> tuple[Site, Upload, Feed]:
    site = Site()
    upload = Upload()
    feed = Feed()
    site.add("/upload", upload)
    site.add("/feed", feed)

    @site.route("/large")
    def large(request: Any) -> Response:
        return Response(payload=BODY)

    @site.route("/echo", methods=("POST",))
    def echo(request: Any) -> Response:
        return Response(Code.CHANGED, payload=request.payload)

    @site.route("/medium")
    def medium(request: Any) -> Response:
        return Response(payload=BODY[:3000])

    @site.route("/broken")
    def broken(request: Any) -> Response:
        # a server that sends a BERT block of 1500 bytes that is not the last
        return Response(payload=BODY[:1500], options=Options.build(block2=BlockValue(0, True, 7)))

    return site, upload, feed


def get(path: str, **options: Any) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=[path], **options))


def put(payload: bytes, **options: Any) -> Message:
    return Message(
        code=Code.PUT, options=Options.build(uri_path=["upload"], **options), payload=payload
    )


def sent(pair: StreamPair, side: str) -> list[Message]:
    """The messages (not signals) ``side`` put on the wire, decoded, in order."""
    frames = [decode_frame(data) for _, who, data in pair.wire if who == side]
    return [m for m in frames if m.code >> 5 != 7]


def blocks(messages: list[Message], number: str) -> list[tuple[BlockValue | None, int]]:
    return [(getattr(m.options, number), len(m.payload)) for m in messages]


def connected(**kwargs: Any) -> tuple[StreamPair, Upload, Feed]:
    site, upload, feed = make_site()
    pair = StreamPair(site, **kwargs)
    pair.connect()
    return pair, upload, feed


def only_result(pair: StreamPair, handle: Any) -> Any:
    [result] = pair.results(handle)
    return result


# -- both sides announce Block-Wise-Transfer: BERT -------------------------------------------


def test_each_side_learns_from_the_others_csm_that_it_takes_bert() -> None:
    pair, _, _ = connected()
    assert pair.client.blockwise_config.bert and pair.server.blockwise_config.bert
    csm = decode_frame(pair.wire[0][2])
    assert csm.options.get(signals.BLOCK_WISE_TRANSFER) == b""  # announced by default
    [ready] = pair.of("client", ConnectionReady)
    assert ready == ConnectionReady(SERVER, 1152 + 64 * 1024, True)
    assert len(pair.client.bert_peers) == len(pair.server.bert_peers) == 1
    pair.disconnect("gone")
    assert len(pair.client.bert_peers) == len(pair.server.bert_peers) == 0


def test_a_100_kb_download_takes_two_bert_responses_instead_of_98_blocks() -> None:
    pair, _, _ = connected()
    result = only_result(pair, pair.request(get("large")))
    assert result.response.payload == BODY
    # 64 blocks of 1024 bytes fit the client's Max-Message-Size (66,688 bytes) and are
    # the most one message carries (max_bert_blocks); the next request asks for block 64
    assert blocks(sent(pair, "server"), "block2") == [
        (BlockValue(0, True, 7), 65_536),
        (BlockValue(64, False, 7), 34_464),
    ]
    assert [m.options.block2 for m in sent(pair, "client")] == [None, BlockValue(64, False, 7)]

    plain, _, _ = connected(client_config=NO_BWT)  # a client that does not announce it
    result = only_result(plain, plain.request(get("large")))
    assert result.response.payload == BODY
    responses = blocks(sent(plain, "server"), "block2")
    assert len(responses) == 98  # ceil(100,000 / 1024)
    assert {block.szx for block, _ in responses if block} == {6}
    assert {size for _, size in responses[:-1]} == {1024}
    assert {m.options.block2.szx for m in sent(plain, "client")[1:]} == {6}


def test_a_100_kb_upload_takes_two_bert_requests_instead_of_98_blocks() -> None:
    pair, upload, _ = connected(server_blockwise=ROOMY)
    result = only_result(pair, pair.request(put(BODY)))
    assert (result.response.code, result.response.payload) == (Code.CHANGED, b"100000")
    assert upload.bodies == [BODY]
    assert blocks(sent(pair, "client"), "block1") == [
        (BlockValue(0, True, 7), 65_536),
        (BlockValue(64, False, 7), 34_464),
    ]
    # 2.31 Continue echoes the block number with szx 7 (RFC 8323 §6.2), and so does the
    # final response
    assert [(m.code, m.options.block1) for m in sent(pair, "server")] == [
        (Code.CONTINUE, BlockValue(0, True, 7)),
        (Code.CHANGED, BlockValue(64, False, 7)),
    ]

    for config in ("server_config", "client_config"):
        # a server that does not announce Block-Wise-Transfer gets plain blocks; so does
        # one that does, from a client that did not: BERT wants both CSMs to say so
        plain, upload, _ = connected(server_blockwise=ROOMY, **{config: NO_BWT})
        result = only_result(plain, plain.request(put(BODY)))
        assert result.response.code == Code.CHANGED and upload.bodies == [BODY]
        requests = blocks(sent(plain, "client"), "block1")
        assert len(requests) == 98
        assert {block.szx for block, _ in requests if block} == {6}


def test_a_server_that_sends_plain_blocks_is_invited_to_bert() -> None:
    """A BERT option in a request says "szx 6, and BERT is welcome" (RFC 8323 §6, control
    usage): the client asks so after a 1024-byte block from a peer that announced BERT."""
    asked: list[BlockValue | None] = []
    site = Site()

    @site.route("/blocks")
    def by_hand(request: Any) -> Response:
        wanted = request.options.block2
        asked.append(wanted)
        if wanted is None:  # the first block, as a server that starts small sends it
            return Response(
                payload=BODY[:1024], options=Options.build(block2=BlockValue(0, True, 6))
            )
        start = wanted.num * 1024
        chunk = BODY[start : start + 8192]
        more = start + 8192 < 20_000
        return Response(
            payload=chunk[: 20_000 - start],
            options=Options.build(block2=BlockValue(wanted.num, more, 7)),
        )

    pair = StreamPair(site)
    pair.connect()
    result = only_result(pair, pair.request(get("blocks")))
    assert result.response.payload == BODY[:20_000]
    assert asked == [
        None,
        BlockValue(1, False, 7),
        BlockValue(9, False, 7),
        BlockValue(17, False, 7),
    ]


def test_a_body_that_fits_one_message_goes_whole() -> None:
    pair, upload, _ = connected()
    result = only_result(pair, pair.request(get("medium")))
    assert result.response.payload == BODY[:3000]
    result = only_result(pair, pair.request(put(BODY[:3000])))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY[:3000]]
    # no blocks either way: the peer's Max-Message-Size takes 3000 bytes at once
    assert [(m.options.block1, m.options.block2) for m in sent(pair, "client")] == [
        (None, None)
    ] * 2
    assert [len(m.payload) for m in sent(pair, "server")] == [3000, 4]


def test_bert_messages_stay_within_the_peers_max_message_size() -> None:
    small = StreamConfig(max_message_size=5000)
    pair, upload, _ = connected(client_config=small, server_config=small, server_blockwise=ROOMY)
    result = only_result(pair, pair.request(get("large")))
    assert result.response.payload == BODY
    result = only_result(pair, pair.request(put(BODY)))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY]
    # four 1024-byte blocks fit 5000 bytes with the header and options, five do not
    for side, number in (("server", "block2"), ("client", "block1")):
        carried = [(block, size) for block, size in blocks(sent(pair, side), number) if block]
        assert len(carried) == 25  # ceil(100,000 / 4096)
        assert {size for _, size in carried[:-1]} == {4096}
        assert [block.num for block, _ in carried][:3] == [0, 4, 8]
    assert max(len(data) for _, _, data in pair.wire) <= 5000


def test_bert_is_capped_by_max_bert_blocks() -> None:
    capped = BlockwiseConfig(max_body=256 * 1024, max_bert_blocks=8)
    pair, upload, _ = connected(client_blockwise=capped, server_blockwise=capped)
    result = only_result(pair, pair.request(put(BODY)))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY]
    assert len(sent(pair, "client")) == 13  # ceil(100,000 / 8192)
    assert {len(m.payload) for m in sent(pair, "client")[:-1]} == {8192}
    no_bert = BlockwiseConfig(max_bert_blocks=1)  # sends no BERT, still takes it
    pair, _, _ = connected(client_blockwise=no_bert, server_blockwise=no_bert)
    result = only_result(pair, pair.request(put(BODY[:20_000])))
    assert result.response.code == Code.CHANGED
    assert {m.options.block1.szx for m in sent(pair, "client")} == {6}


def test_an_observed_resource_too_large_for_one_message_is_completed_in_bert_blocks() -> None:
    pair, _, feed = connected()
    handle = pair.request(get("feed", observe=0), keep_open=True)
    feed.body = BODY + BODY[:50_000]  # 150 kB: three BERT blocks
    sequence, observers = pair.server.observe.updated(feed)
    for observer in observers:
        notification = Message(code=Code.CONTENT, payload=feed.body)
        pair.take("server", pair.server.notify(observer, notification, pair.now, sequence=sequence))
    payloads = [e.response.payload for e in pair.results(handle)]
    assert payloads == [b"first", feed.body]
    assert blocks(sent(pair, "server")[1:], "block2") == [
        (BlockValue(0, True, 7), 65_536),
        (BlockValue(64, True, 7), 65_536),
        (BlockValue(128, False, 7), 18_928),
    ]


def test_a_later_csm_that_lowers_the_max_message_size_withdraws_bert() -> None:
    pair, upload, _ = connected(server_blockwise=ROOMY)
    csm = signals.csm(1152, True)
    again = encode_frame(csm.code, b"", csm.options, b"")
    pair.take("client", pair.client.datagram_received(again, SERVER, pair.now))
    assert pair.of("client", ConnectionReady)[-1] == ConnectionReady(SERVER, 1152, True)
    assert len(pair.client.bert_peers) == 0  # RFC 8323 §5.3.2
    result = only_result(pair, pair.request(put(BODY[:10_000])))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY[:10_000]]
    assert {m.options.block1.szx for m in sent(pair, "client")} == {6}
    # the same CSM once more changes nothing and is not reported again
    pair.take("client", pair.client.datagram_received(again, SERVER, pair.now))
    assert len(pair.of("client", ConnectionReady)) == 2


# -- BERT is accepted from any peer over a connection ------------------------------------------


def test_bert_from_a_peer_we_did_not_announce_block_wise_transfer_to_is_accepted() -> None:
    """As aiocoap 0.4.17 sends it when it starts an upload before our CSM arrives."""
    pair, upload, _ = connected(server_config=NO_BWT)
    first = only_result(pair, pair.request(put(BODY[:2048], block1=BlockValue(0, True, 7))))
    assert first.response.code == Code.CONTINUE
    assert first.response.options.block1 == BlockValue(0, True, 7)
    last = only_result(pair, pair.request(put(BODY[2048:5000], block1=BlockValue(2, False, 7))))
    assert (last.response.code, last.response.payload) == (Code.CHANGED, b"5000")
    assert last.response.options.block1 == BlockValue(2, False, 7)
    assert upload.bodies == [BODY[:5000]]


def test_a_request_for_bert_blocks_from_a_peer_without_bert_gets_1024_bytes() -> None:
    pair, _, _ = connected(client_config=NO_BWT)
    result = only_result(pair, pair.request(get("large", block2=BlockValue(3, False, 7))))
    assert result.response.options.block2 == BlockValue(3, True, 6)
    assert result.response.payload == BODY[3072:4096]


# -- malformed BERT ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "payload", "code"),
    [
        # not the last block, and not a multiple of 1024 bytes (RFC 8323 §6)
        (BlockValue(0, True, 7), BODY[:1500], Code.BAD_REQUEST),
        (BlockValue(0, True, 7), b"", Code.BAD_REQUEST),
        # a block that does not continue where the body is (RFC 7959 §2.9.2)
        (BlockValue(3, True, 7), BODY[:1024], Code.REQUEST_ENTITY_INCOMPLETE),
    ],
)
def test_a_malformed_bert_upload_is_refused(block: BlockValue, payload: bytes, code: int) -> None:
    pair, upload, _ = connected()
    first = only_result(pair, pair.request(put(BODY[:2048], block1=BlockValue(0, True, 7))))
    assert first.response.code == Code.CONTINUE
    bad = only_result(pair, pair.request(put(payload, block1=block)))
    assert bad.response.code == code
    assert upload.bodies == []


def test_a_malformed_bert_response_fails_the_request() -> None:
    pair, _, _ = connected()
    failed = only_result(pair, pair.request(get("broken")))
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, TransferError)
    assert "carried 1500 bytes, not a multiple of 1024" in str(failed.error)


def test_a_bert_answer_to_a_last_block_is_not_kept_for_a_retry() -> None:
    """The answer to a body's last block is kept in case the block comes again (its
    answer lost, over UDP); a BERT answer can be as large as a message, and over a
    connection no block comes again, so the bound stays one plain block per record."""
    pair, upload, _ = connected(server_blockwise=ROOMY)
    result = only_result(pair, pair.request(put(BODY)))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY]
    assert pair.server.blockwise.finished_bodies == 1  # a small answer: kept
    echo = Message(code=Code.POST, options=Options.build(uri_path=["echo"]), payload=BODY)
    result = only_result(pair, pair.request(echo))
    assert result.response.payload == BODY
    assert pair.server.blockwise.finished_bodies == 1  # the echo's first 64 kB: not kept
    # up, two BERT blocks; down, a 2.31, the echo's first 64 blocks with the final
    # response (Block1 and Block2 both), and the rest
    assert [
        (m.options.block1, m.options.block2, len(m.payload)) for m in sent(pair, "server")[2:]
    ] == [
        (BlockValue(0, True, 7), None, 0),
        (BlockValue(64, False, 7), BlockValue(0, True, 7), 65_536),
        (None, BlockValue(64, False, 7), 34_464),
    ]


def test_an_upload_beyond_max_body_is_refused_as_without_bert() -> None:
    pair, upload, _ = connected()  # max_body 64 KiB
    result = only_result(pair, pair.request(put(BODY)))
    assert result.response.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert result.response.options.size1 == 64 * 1024
    assert len(sent(pair, "client")) == 1 and upload.bodies == []


# -- where there is no BERT -----------------------------------------------------------------


def test_bert_can_be_turned_off_over_a_connection() -> None:
    off = BlockwiseConfig(bert=False, max_body=256 * 1024)
    pair, upload, _ = connected(client_blockwise=off, server_blockwise=off)
    result = only_result(pair, pair.request(put(BODY[:10_000])))
    assert result.response.code == Code.CHANGED and upload.bodies == [BODY[:10_000]]
    assert {m.options.block1.szx for m in sent(pair, "client")} == {6}
    refused = only_result(pair, pair.request(put(BODY[:2048], block1=BlockValue(0, True, 7))))
    assert (refused.response.code, refused.response.payload) == (
        Code.BAD_OPTION,
        b"Block1 szx 7 is reserved",
    )


def test_over_udp_szx_7_stays_reserved() -> None:
    def app(node: Any, event: Any, now: float) -> Message:
        if event.request.code == Code.GET:
            bert = Options.build(block2=BlockValue(0, True, 7))
            return Message(code=Code.CONTENT, options=bert, payload=BODY[:1024])
        return Message(code=Code.CHANGED)

    pair = Pair(app)
    assert not pair.client.endpoint.blockwise_config.bert
    refused = pair.request(with_body(Code.PUT, BODY[:1024], "x", block1=BlockValue(0, True, 7)))
    assert (refused.response.code, refused.response.payload) == (
        Code.BAD_OPTION,
        b"Block1 szx 7 is reserved",
    )
    refused = pair.request(udp_get("x", block2=BlockValue(1, False, 7)))
    assert (refused.response.code, refused.response.payload) == (
        Code.BAD_OPTION,
        b"Block2 szx 7 is reserved",
    )
    # and a server that answers with szx 7 over UDP fails the transfer
    failed = pair.request(udp_get("x"))
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, TransferError)
    assert "szx 7 is reserved" in str(failed.error)
    with pytest.raises(ValueError, match="BERT needs a connection layer"):
        Endpoint(rng=Random(3), blockwise=BlockwiseConfig(bert=True))
    assert Endpoint(rng=Random(4), layer=ConnectionLayer()).blockwise_config.bert
