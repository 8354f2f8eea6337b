"""The ETSI CoAP plugtest resource set, for ``coapkit server --plugtest``.

PLUGTEST.md (in the shared design folder) says what each resource does; the
test descriptions behind it are the ETSI plugtests' TD_COAP_CORE_xx and
TD_COAP_LINK_xx.  Built here: ``/test``, ``/separate``, ``/seg1/seg2/seg3``,
``/query``, ``/location-query``, ``/multi-format``, ``/validate``,
``/create1``, ``/link1``-``/link3``, ``/path`` and ``/path/sub1``-``sub3``,
and ``/.well-known/core`` with its filters (the site's own).

Not built yet, for the block-wise (RFC 7959) and Observe (RFC 7641) work to
add to the site :func:`plugtest_site` returns: ``/large``,
``/large-update``, ``/large-create``, ``/large-post``, ``/obs``,
``/obs-non``, ``/obs-large``.

CON requests get piggybacked responses and NON requests NON responses: the
messaging layer does that for every resource.  ``/separate`` is a coroutine
that answers after ``separate_delay`` seconds, long after the empty-ACK delay,
so a CON request gets an empty ACK and then a CON response.
"""

from __future__ import annotations

import asyncio
import hashlib

from coapkit.codec.codes import Code, code_name
from coapkit.codec.content_formats import CBOR, JSON, LINK_FORMAT, TEXT_PLAIN, XML
from coapkit.codec.link_format import Link
from coapkit.codec.types import MessageType
from coapkit.errors import RespondWith
from coapkit.resources.request import Request
from coapkit.resources.resource import Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site

__all__ = ["plugtest_site"]


def describe(request: Request) -> str:
    """The request's type, code, MID and token, as /test and /separate report them."""
    message = request.message
    token = message.token.hex() or "(empty)"
    return (
        f"Type: {int(message.mtype)} ({MessageType(message.mtype).name})\n"
        f"Code: {message.code} ({code_name(message.code)})\n"
        f"MID: {message.mid}\n"
        f"Token: {token}"
    )


def _cbor(value: object) -> bytes:
    """A minimal CBOR encoder (RFC 8949 §3) for the small maps /multi-format serves.

    Handles non-negative integers, text strings and maps of them: enough to
    keep the plugtest server free of the optional cbor2 dependency.
    """

    def head(major: int, argument: int) -> bytes:
        if argument < 24:
            return bytes([major << 5 | argument])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if argument < 1 << (8 * size):
                return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
        raise ValueError("integer too large for CBOR")

    if isinstance(value, bool) or value is None:
        raise TypeError("not supported")
    if isinstance(value, int) and value >= 0:
        return head(0, value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head(3, len(data)) + data
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR here")


class Test(Resource):
    """/test: GET, POST, PUT and DELETE as TD_COAP_CORE_01 to _08 exercise them."""

    title = "Default test resource"

    def __init__(self) -> None:
        super().__init__()
        self.exists = True

    def get(self, request: Request) -> Response:
        return Response(Code.CONTENT, describe(request), max_age=30)

    def post(self, request: Request) -> Response:
        return Response(Code.CREATED, location_path=["location1", "location2", "location3"])

    def put(self, request: Request) -> Response:
        if request.if_none_match and self.exists:
            raise RespondWith(Code.PRECONDITION_FAILED, "")
        code = Code.CHANGED if self.exists else Code.CREATED
        self.exists = True
        return Response(code)

    def delete(self, request: Request) -> Response:
        self.exists = False
        return Response(Code.DELETED)


def plugtest_site(*, separate_delay: float = 1.0) -> Site:
    """A fresh site with the plugtest resources that need neither block-wise nor Observe."""
    site = Site()
    site.add("/test", Test())

    @site.route("/separate", title="Resource which cannot be served immediately")
    async def separate(request: Request) -> Response:
        await asyncio.sleep(separate_delay)
        return Response(Code.CONTENT, describe(request))

    @site.route("/seg1/seg2/seg3", title="Long path resource")
    def seg3(request: Request) -> Response:
        return Response(Code.CONTENT, "seg1/seg2/seg3")

    @site.route("/query", title="Resource accepting query parameters")
    def query(request: Request) -> Response:
        return Response(Code.CONTENT, "&".join(request.query))

    @site.route("/location-query", methods=("POST",), title="Location-Query test resource")
    def location_query(request: Request) -> Response:
        return Response(Code.CREATED, location_query=["first=1", "second=2"])

    site.add("/multi-format", MultiFormat())
    site.add("/validate", Validate())
    site.add("/create1", Create())
    for number, (if_, rt) in enumerate(
        (("If1", "Type1 Type2"), ("If2", "Type2 Type3"), ("foo", "Type1 Type3")), start=1
    ):
        site.add(f"/link{number}", Resource(if_=if_, rt=rt, title="Link test resource"))
    children = ("sub1", "sub2", "sub3")

    @site.route("/path", ct=LINK_FORMAT, title="Hierarchical link description entry")
    def path(request: Request) -> Response:
        return Response.link_format(Link.make(f"/path/{child}") for child in children)

    for child in children:
        site.add(f"/path/{child}", _Leaf("Hierarchical link description sub-resource"))
    return site


class _Leaf(Resource):
    def __init__(self, title: str) -> None:
        super().__init__(title=title)

    def get(self, request: Request) -> Response:
        return Response(Code.CONTENT, f"{request.path_string}")


class MultiFormat(Resource):
    """/multi-format: one representation in text, XML, JSON or CBOR, as Accept asks (4.06 else)."""

    ct = (TEXT_PLAIN, XML, JSON, CBOR)
    produces = frozenset(ct)
    title = "Resource in several content formats"

    def get(self, request: Request) -> Response:
        message = request.message
        fields = {
            "type": MessageType(message.mtype).name,
            "code": code_name(message.code),
            "mid": message.mid,
        }
        accept = request.accept
        if accept is None or accept == TEXT_PLAIN:
            return Response(Code.CONTENT, describe(request), content_format=TEXT_PLAIN)
        if accept == XML:
            xml = '<msg type="{type}" code="{code}" mid="{mid}"/>'.format(**fields)
            return Response(Code.CONTENT, xml.encode(), content_format=XML)
        if accept == JSON:
            return Response.json_(fields)
        return Response(Code.CONTENT, _cbor(fields), content_format=CBOR)


class Validate(Resource):
    """/validate: an ETag derived from the content; 2.03 for a known ETag; If-Match on PUT."""

    title = "Resource which varies"

    def __init__(self) -> None:
        super().__init__()
        self.payload = b"validate: version 1"
        self.content_format: int | None = TEXT_PLAIN

    @property
    def etag(self) -> bytes:
        data = repr(self.content_format).encode() + b"\0" + self.payload
        return hashlib.sha256(data).digest()[:6]

    def get(self, request: Request) -> Response:
        etag = self.etag
        if etag in request.etags:
            return Response(Code.VALID, etag=etag)
        return Response(Code.CONTENT, self.payload, content_format=self.content_format, etag=etag)

    def put(self, request: Request) -> Response:
        if not request.preconditions_met(self.etag):
            raise RespondWith(Code.PRECONDITION_FAILED, "")
        self.payload = request.payload
        self.content_format = request.content_format
        return Response(Code.CHANGED, etag=self.etag)


class Create(Resource):
    """/create1: absent (4.04, not listed) until a PUT creates it; DELETE makes it absent again."""

    title = "Creates on PUT"

    def __init__(self) -> None:
        super().__init__(hidden=True)
        self.payload: bytes | None = None
        self.content_format: int | None = None

    @property
    def exists(self) -> bool:
        return self.payload is not None

    def get(self, request: Request) -> Response:
        if self.payload is None:
            raise RespondWith(Code.NOT_FOUND, "not created yet")
        return Response(Code.CONTENT, self.payload, content_format=self.content_format)

    def put(self, request: Request) -> Response:
        if not request.preconditions_met(None, exists=self.exists):
            raise RespondWith(Code.PRECONDITION_FAILED, "")
        code = Code.CHANGED if self.exists else Code.CREATED
        self.payload = request.payload
        self.content_format = request.content_format
        self.hidden = False
        return Response(code)

    def delete(self, request: Request) -> Response:
        self.payload = None
        self.content_format = None
        self.hidden = True
        return Response(Code.DELETED)
