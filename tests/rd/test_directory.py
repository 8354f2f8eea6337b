"""The directory's resources (RFC 9176) through the real Client and Server, in virtual time."""

from __future__ import annotations

import asyncio

from coapkit import Code
from coapkit.codec.link_format import Link
from coapkit.rd import RDConfig
from coapkit.testing import VirtualNetwork
from tests.rd.helpers import RD, directory

#: sent without Content-Format (link-format is assumed) unless a test says otherwise
LINKS = b'</sensors/temp>;rt="temperature-c";if="sensor";ct=41,</sensors/light>;rt="light-lux";obs'


async def test_discovery_lists_the_directory_resources() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client:
        response = await client.get(f"{RD}/.well-known/core?rt=core.rd*")
    assert response.code == Code.CONTENT
    targets = {link.target: link.rt for link in response.links()}
    assert targets == {
        "/rd": ("core.rd",),
        "/rd-lookup/ep": ("core.rd-lookup-ep",),
        "/rd-lookup/res": ("core.rd-lookup-res",),
    }


async def test_register_then_look_up_then_delete() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client:
        created = await client.post(
            f"{RD}/rd?ep=node1&et=oic.d.sensor&lt=600", LINKS, content_format=40
        )
        assert created.code == Code.CREATED, created.text
        location = "/" + "/".join(created.location_path)
        assert location.startswith("/reg/")
        source = f"coap://{client.local_address[0]}:{client.local_address[1]}"

        endpoints = (await client.get(f"{RD}/rd-lookup/ep")).links()
        assert [link.target for link in endpoints] == [location]
        assert endpoints[0].get("ep") == "node1"
        assert endpoints[0].get("base") == source
        assert endpoints[0].get("et") == "oic.d.sensor"
        assert endpoints[0].get("lt") == "600"

        resources = (await client.get(f"{RD}/rd-lookup/res?rt=temperature-c")).links()
        assert resources == [
            Link(
                f"{source}/sensors/temp",
                (("rt", "temperature-c"), ("if", "sensor"), ("ct", "41"), ("anchor", source)),
            )
        ]
        assert (await client.get(f"{RD}{location}")).links()[0].target == "/sensors/temp"

        deleted = await client.delete(f"{RD}{location}")
        assert deleted.code == Code.DELETED
        assert (await client.get(f"{RD}/rd-lookup/ep")).payload == b""
        assert (await client.post(f"{RD}{location}")).code == Code.NOT_FOUND


async def _count(client: object, what: str = "ep") -> int:
    response = await client.get(f"{RD}/rd-lookup/{what}")  # type: ignore[attr-defined]
    return len(response.links())


async def test_bad_registrations_are_refused_whole() -> None:
    net = VirtualNetwork()
    config = RDConfig(max_body=200, max_links=3, max_per_source=2)
    async with directory(net, config=config), net.client() as client:

        async def post(query: str, payload: bytes | str = LINKS, **kw: object) -> object:
            if isinstance(payload, str):
                kw.setdefault("content_format", 40)
            return await client.post(f"{RD}/rd{query}", payload, **kw)  # type: ignore[arg-type]

        cases = [
            ("", LINKS, Code.BAD_REQUEST, "ep is missing"),
            ("?ep=a&ep=b", LINKS, Code.BAD_REQUEST, "more than once"),
            ("?ep=" + "x" * 64, LINKS, Code.BAD_REQUEST, "63 bytes"),
            ("?ep=n&lt=0", LINKS, Code.BAD_REQUEST, "lt must be between"),
            ("?ep=n&lt=-5", LINKS, Code.BAD_REQUEST, "lt must be a number"),
            ("?ep=n&lt=99999999999", LINKS, Code.BAD_REQUEST, "lt must be"),
            ("?ep=n&base=/relative", LINKS, Code.BAD_REQUEST, "absolute URI"),
            ("?ep=n&page=2", LINKS, Code.BAD_REQUEST, "not a registration parameter"),
            ("?ep=n", '</a>;rt="x,</b>', Code.BAD_REQUEST, "malformed link-format"),
            ("?ep=n", b"\xff\xfe", Code.BAD_REQUEST, "not UTF-8"),
            ("?ep=n", "</a>," * 50, Code.REQUEST_ENTITY_TOO_LARGE, "at most 200 bytes"),
            ("?ep=n", "</a>,</b>,</c>,</d>", Code.REQUEST_ENTITY_TOO_LARGE, "at most 3 links"),
        ]
        for query, payload, code, diagnostic in cases:
            response = await post(query, payload, content_format=40)
            assert response.code == code, (query, response)  # type: ignore[attr-defined]
            assert diagnostic in response.text, (query, response.text)  # type: ignore[attr-defined]
        too_large = await post("?ep=n", "</a>," * 50, content_format=40)
        assert too_large.options.size1 == 200  # type: ignore[attr-defined]
        wrong = await post("?ep=n", "{}", content_format=50)
        assert wrong.code == Code.UNSUPPORTED_CONTENT_FORMAT  # type: ignore[attr-defined]
        assert await _count(client) == 0  # nothing half-stored

        assert (await post("?ep=one")).code == Code.CREATED  # type: ignore[attr-defined]
        assert (await post("?ep=two")).code == Code.CREATED  # type: ignore[attr-defined]
        full = await post("?ep=three")
        assert full.code == Code.SERVICE_UNAVAILABLE  # type: ignore[attr-defined]
        assert "the most one source may have" in full.text  # type: ignore[attr-defined]
        assert full.max_age == 60  # type: ignore[attr-defined]
        assert (await post("?ep=one")).code == Code.CREATED  # type: ignore[attr-defined]
        assert await _count(client) == 2


async def test_lifetime_expiry_and_updates_on_the_virtual_clock() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client:
        created = await client.post(f"{RD}/rd?ep=node&lt=60", LINKS)
        location = "/" + "/".join(created.location_path)
        await asyncio.sleep(59)
        assert await _count(client) == 1
        assert (await client.post(f"{RD}{location}?lt=120")).code == Code.CHANGED
        await asyncio.sleep(100)
        assert (await client.get(f"{RD}/rd-lookup/ep")).links()[0].get("lt") == "120"
        await asyncio.sleep(21)
        assert await _count(client) == 0
        assert (await client.post(f"{RD}{location}")).code == Code.NOT_FOUND


async def test_update_changes_base_attributes_and_links() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client, net.client() as moved:
        created = await client.post(f"{RD}/rd?ep=node&et=a&x=1", LINKS)
        location = f"{RD}/" + "/".join(created.location_path)
        here = "coap://{}:{}".format(*client.local_address[:2])
        there = "coap://{}:{}".format(*moved.local_address[:2])

        def endpoint(response: object) -> Link:
            return response.links()[0]  # type: ignore[attr-defined,no-any-return]

        # an implicit base follows the source address of an update (RFC 9176 §5.3.1)
        assert (await moved.post(location)).code == Code.CHANGED
        assert endpoint(await client.get(f"{RD}/rd-lookup/ep")).get("base") == there
        # an explicit one stays until changed again
        explicit = await client.post(location, params={"base": "coap://[2001:db8::1]"})
        assert explicit.code == Code.CHANGED
        assert (await moved.post(location)).code == Code.CHANGED
        found = endpoint(await client.get(f"{RD}/rd-lookup/ep"))
        assert found.get("base") == "coap://[2001:db8::1]"
        resources = (await client.get(f"{RD}/rd-lookup/res")).links()
        assert resources[0].target == "coap://[2001:db8::1]/sensors/temp"
        # attributes: a new value replaces, an empty one removes
        assert (await client.post(f"{location}?et=b&x=")).code == Code.CHANGED
        found = endpoint(await client.get(f"{RD}/rd-lookup/ep"))
        assert found.get_all("et") == ["b"] and not found.has("x")
        # links: a payload replaces them, POST or PUT (aiocoap's way)
        assert (await client.post(location, "</new>;rt=x", content_format=40)).code == Code.CHANGED
        assert [link.target for link in (await client.get(location)).links()] == ["/new"]
        assert (await client.put(location, "</put>", content_format=40)).code == Code.CHANGED
        assert [link.target for link in (await client.get(location)).links()] == ["/put"]
        bad = await client.post(location, "<broken", content_format=40)
        assert bad.code == Code.BAD_REQUEST
        assert [link.target for link in (await client.get(location)).links()] == ["/put"]
        # ep and d cannot change
        assert (await client.post(f"{location}?ep=other")).code == Code.BAD_REQUEST
        del here


async def test_same_name_same_resource_sectors_apart() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client:
        first = await client.post(f"{RD}/rd?ep=node", LINKS)
        again = await client.post(f"{RD}/rd?ep=node", b"</only>")
        other = await client.post(f"{RD}/rd?ep=node&d=lab", LINKS)
        assert first.location_path == again.location_path != other.location_path
        assert await _count(client) == 2
        assert await _count(client, "res") == 3
        lab = (await client.get(f"{RD}/rd-lookup/ep?d=lab")).links()
        assert [link.get("ep") for link in lab] == ["node"]


async def test_lookup_formats_and_paging() -> None:
    net = VirtualNetwork()
    async with directory(net), net.client() as client:
        for number in range(5):
            await client.post(f"{RD}/rd?ep=n{number}", LINKS)
        json_links = await client.post(
            f"{RD}/rd?ep=json",
            '[{"href":"/j","rt":["a","b"],"obs":true,"ct":"40"}]',
            content_format=504,
        )
        assert json_links.code == Code.CREATED, json_links.text
        found = (await client.get(f"{RD}/rd-lookup/res?ep=json")).links()
        assert found[0].rt == ("a", "b") and found[0].obs
        as_json = await client.get(f"{RD}/rd-lookup/ep?count=2&page=1", accept=504)
        assert as_json.content_format == 504
        assert [item["ep"] for item in as_json.json()] == ["n2", "n3"]
        as_cbor = await client.get(f"{RD}/rd-lookup/res?rt=a", accept=64)
        assert as_cbor.content_format == 64
        assert as_cbor.cbor()[0]["href"].endswith("/j")
        cbor_registration = await client.post(
            f"{RD}/rd?ep=cbor", b"\x81\xa2dhrefb/cbrtax", content_format=64
        )
        assert cbor_registration.code == Code.CREATED
        assert (await client.get(f"{RD}/rd-lookup/res?rt=x")).links()[0].target.endswith("/c")
        assert (await client.get(f"{RD}/rd-lookup/ep", accept=0)).code == Code.NOT_ACCEPTABLE
        assert (await client.get(f"{RD}/rd-lookup/ep?page=1")).code == Code.BAD_REQUEST
        assert (await client.get(f"{RD}/rd-lookup/ep?count=x")).code == Code.BAD_REQUEST


async def test_a_restart_keeps_every_registration(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "rd.sqlite"
    net = VirtualNetwork()
    async with net.client() as client:
        async with directory(net, path):
            created = await client.post(f"{RD}/rd?ep=node&lt=1000", LINKS)
            for number in range(20):
                await client.post(f"{RD}/rd?ep=n{number}", LINKS)
        async with directory(net, path):
            assert await _count(client) == 21
            location = f"{RD}/" + "/".join(created.location_path)
            assert (await client.post(location)).code == Code.CHANGED


async def test_lookups_are_observable_and_follow_registrations_updates_removals_expiry() -> None:
    """RFC 9176 §6 lets lookups be observed (RFC 7641): an observer of a filtered resource
    lookup is sent its own lookup's answer again after each registration, update and
    removal, and after the purge that takes an expired registration away."""
    net = VirtualNetwork()
    async with directory(net), net.client() as watcher, net.client() as device:
        seen: list[list[str]] = []
        registered = asyncio.Event()

        async def watch() -> None:
            uri = f"{RD}/rd-lookup/res?rt=temperature-c"
            async with watcher.observe(uri) as observation:
                async for response in observation:
                    assert response.options.observe is not None
                    seen.append([link.target.rsplit("/", 2)[-1] for link in response.links()])
                    if len(seen) == 2:
                        registered.set()
                    if len(seen) == 6:
                        break

        task = asyncio.create_task(watch())
        await asyncio.sleep(1)
        created = await device.post(f"{RD}/rd?ep=node&lt=600", LINKS)
        location = "/" + "/".join(created.location_path)
        await registered.wait()
        light_only = b'</sensors/light>;rt="light-lux"'
        assert (await device.put(f"{RD}{location}", light_only)).code == Code.CHANGED
        await asyncio.sleep(1)
        assert (await device.delete(f"{RD}{location}")).code == Code.DELETED
        await asyncio.sleep(1)
        await device.post(f"{RD}/rd?ep=brief&lt=60", LINKS)
        await asyncio.wait_for(task, timeout=200)  # lt 60 s, then the purge (every 60 s)
    assert seen == [[], ["temp"], [], [], ["temp"], []]
