"""The store suite: the same tests on the SQLite and the Redis store (a real redis-server).

Time is an argument of every store call, so nothing here waits: ``now`` moves by hand.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coapkit.codec.link_format import Link, parse_link_format
from coapkit.rd import Lookup, Registration, SQLiteStore, Store
from coapkit.rd.model import matching_positions, resolved_links

pytestmark = pytest.mark.real_loop

NOW = 1_700_000_000.0
_prefixes = itertools.count()


def registration(
    ep: str,
    links: str = '</temp>;rt="temperature";if="sensor",</light>;rt="light-lux";obs',
    *,
    sector: str = "",
    lifetime: int = 100,
    now: float = NOW,
    base: str | None = None,
    source: str = "192.0.2.7",
    attributes: tuple[tuple[str, str | None], ...] = (),
) -> Registration:
    return Registration(
        id=0,
        ep=ep,
        sector=sector,
        base=base or f"coap://[2001:db8::{len(ep)}]:5683",
        explicit_base=base is not None,
        lifetime=lifetime,
        expires=now + lifetime,
        attributes=attributes,
        links=tuple(parse_link_format(links)),
        source=source,
        owner=None,
    )


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(str(tmp_path / "rd.sqlite"))
    else:
        from coapkit.rd.redis_store import RedisStore

        url = request.getfixturevalue("redis_url")
        opened = RedisStore(url, prefix=f"test{next(_prefixes)}:{tmp_path.name}:")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_register_get_find_replace(store: Store) -> None:
    first = await store.register(registration("node1"), NOW)
    assert first.id > 0
    assert await store.get(first.id, NOW) == first
    assert await store.find("", "node1", NOW) == first
    other = await store.register(registration("node2"), NOW)
    assert other.id != first.id
    again = await store.register(registration("node1", "</x>", lifetime=50), NOW + 1)
    assert again.id == first.id  # the same name keeps its registration resource
    stored = await store.get(first.id, NOW + 1)
    assert stored is not None and [link.target for link in stored.links] == ["/x"]
    assert stored.lifetime == 50
    assert await store.count(NOW + 1) == 2


async def test_sectors_keep_names_apart(store: Store) -> None:
    one = await store.register(registration("node", sector="a"), NOW)
    two = await store.register(registration("node", sector="b"), NOW)
    assert one.id != two.id
    found = await store.find("b", "node", NOW)
    assert found is not None and found.id == two.id
    assert await store.find("", "node", NOW) is None


async def test_update_and_remove(store: Store) -> None:
    stored = await store.register(registration("node1"), NOW)
    changed = stored.with_changes(
        base="coap://192.0.2.9", lifetime=500, expires=NOW + 510, attributes=(("et", "x"),)
    )
    assert await store.update(changed, NOW + 10)
    assert await store.get(stored.id, NOW + 10) == changed
    assert await store.get(stored.id, NOW + 400) == changed  # the new lifetime holds
    assert await store.remove(stored.id)
    assert not await store.remove(stored.id)
    assert await store.get(stored.id, NOW) is None
    assert not await store.update(changed, NOW)
    fresh = await store.register(registration("node1"), NOW)
    assert fresh.id > stored.id  # never an id used before


async def test_expiry_is_by_time(store: Store) -> None:
    short = await store.register(registration("short", lifetime=10), NOW)
    await store.register(registration("long", lifetime=1000), NOW)
    assert await store.get(short.id, NOW + 9.9) is not None
    assert await store.get(short.id, NOW + 10) is None  # gone at expiry, before any purge
    assert await store.find("", "short", NOW + 10) is None
    assert await store.count(NOW + 10) == 1
    assert [r.ep for r in await store.endpoints(Lookup(), NOW + 10)] == ["long"]
    assert not await store.update(short, NOW + 11)
    assert await store.purge(NOW + 11) == 1
    assert await store.purge(NOW + 11) == 0
    again = await store.register(registration("short"), NOW + 12)
    assert again.id != short.id  # an expired registration's resource is not revived


async def test_count_by_source(store: Store) -> None:
    await store.register(registration("a", source="192.0.2.1"), NOW)
    await store.register(registration("b", source="192.0.2.1"), NOW)
    c = await store.register(registration("c", source="192.0.2.2"), NOW)
    assert await store.count(NOW, "192.0.2.1") == 2
    assert await store.count(NOW, "192.0.2.2") == 1
    await store.register(registration("c", source="192.0.2.1"), NOW)  # moved
    assert await store.count(NOW, "192.0.2.1") == 3
    assert await store.count(NOW, "192.0.2.2") == 0
    await store.remove(c.id)
    assert await store.count(NOW, "192.0.2.1") == 2


async def test_endpoint_lookup_filters_and_pages(store: Store) -> None:
    for number in range(1, 8):
        await store.register(
            registration(
                f"node{number}",
                '</t>;rt="temperature"' if number % 2 else '</l>;rt="light"',
                sector="floor1" if number < 4 else "floor2",
                attributes=(("et", "oic.d.sensor"),) if number == 5 else (),
            ),
            NOW,
        )

    async def eps(*filters: tuple[str, str | None], page: int = 0, count: int | None = None):
        found = await store.endpoints(Lookup(tuple(filters), page, count), NOW)
        return [item.ep for item in found]

    assert await eps() == [f"node{n}" for n in range(1, 8)]
    assert await eps(("d", "floor1")) == ["node1", "node2", "node3"]
    assert await eps(("ep", "node1*")) == ["node1"]
    assert await eps(("ep", "node*"), page=1, count=3) == ["node4", "node5", "node6"]
    assert await eps(count=2) == ["node1", "node2"]
    assert await eps(page=3, count=2) == ["node7"]
    assert await eps(("et", "oic.d.sensor")) == ["node5"]
    assert await eps(("et", None)) == ["node5"]
    assert await eps(("rt", "light")) == ["node2", "node4", "node6"]
    assert await eps(("rt", "temp*"), ("d", "floor2")) == ["node5", "node7"]
    assert await eps(("rt", "nothing")) == []
    first = (await store.endpoints(Lookup(), NOW))[0]
    assert await eps(("href", first.path)) == ["node1"]
    assert first.links == ()  # an endpoint lookup does not need them


async def test_resource_lookup_resolves_filters_and_pages(store: Store) -> None:
    base = "coap://[2001:db8::1]:61616"
    await store.register(
        registration(
            "node1",
            '</sensors/temp>;rt="temperature";if="sensor",'
            '</sensors/light>;rt="light-lux";if="sensor";obs,'
            '<http://www.example.com/manual.pdf>;anchor="/sensors/temp";rel="describedby"',
            base=base,
        ),
        NOW,
    )
    await store.register(registration("node2", '</t>;rt="temperature"', sector="s"), NOW)

    async def res(*filters: tuple[str, str | None], page: int = 0, count: int | None = None):
        return await store.resources(Lookup(tuple(filters), page, count), NOW)

    everything = await res()
    assert [link.target for link in everything] == [
        f"{base}/sensors/temp",
        f"{base}/sensors/light",
        "http://www.example.com/manual.pdf",
        "coap://[2001:db8::5]:5683/t",
    ]
    assert everything[0].anchor == base
    assert everything[2].anchor == f"{base}/sensors/temp"
    assert [link.target for link in await res(("rt", "temperature"))] == [
        f"{base}/sensors/temp",
        "coap://[2001:db8::5]:5683/t",
    ]
    assert [link.target for link in await res(("if", "sensor"), ("obs", None))] == [
        f"{base}/sensors/light"
    ]
    assert [link.target for link in await res(("ep", "node1"), ("rt", "light*"))] == [
        f"{base}/sensors/light"
    ]
    assert len(await res(("d", "s"))) == 1
    assert [link.target for link in await res(("href", f"{base}/sensors/*"))] == [
        f"{base}/sensors/temp",
        f"{base}/sensors/light",
    ]
    assert [link.get("rel") for link in await res(("anchor", f"{base}/sensors/temp"))] == [
        "describedby"
    ]
    assert await res(page=1, count=3) == everything[3:]
    assert await res(page=0, count=0) == []


async def test_data_survives_reopening(store: Store, tmp_path: Path) -> None:
    stored = await store.register(registration("node1"), NOW)
    await store.close()
    await store.open()
    assert await store.get(stored.id, NOW) == stored


async def test_lookups_agree_with_the_model(store: Store) -> None:
    """Random registrations and lookups: each store gives what the model's rule gives."""
    rng = random.Random(7)
    types = ["temp", "temperature", "light", "humidity", "core.s"]
    expected: list[Registration] = []
    for number in range(25):
        links = ",".join(
            f'</r{index}>;rt="{rng.choice(types)} {rng.choice(types)}";ct={rng.choice([0, 40, 50])}'
            + (";obs" if rng.random() < 0.3 else "")
            for index in range(rng.randint(0, 4))
        )
        attributes = (("et", rng.choice(types)),) if rng.random() < 0.5 else ()
        expected.append(
            await store.register(
                registration(
                    f"n{number}", links, sector=rng.choice(["", "x"]), attributes=attributes
                ),
                NOW,
            )
        )
    names = ["rt", "ct", "et", "obs", "d", "ep", "if"]
    for _ in range(60):
        filters = []
        for _ in range(rng.randint(0, 2)):
            name = rng.choice(names)
            value = rng.choice([*types, "te*", "n1*", "x", "40", "", None])
            filters.append((name, value if value != "" else None))
        count = rng.choice([None, None, 3])
        lookup = Lookup(tuple(filters), rng.randint(0, 2) if count else 0, count)
        model_eps = [item for item in expected if matching_positions(item, lookup)[0]]
        model_links: list[Link] = []
        for item in expected:
            passed, positions = matching_positions(item, lookup)
            if passed:
                every = resolved_links(item)
                model_links.extend(every[position - 1] for position in positions)
        end = None if count is None else lookup.offset + count
        found_eps = await store.endpoints(lookup, NOW)
        assert [item.id for item in found_eps] == [
            item.id for item in model_eps[lookup.offset : end]
        ], lookup
        assert await store.resources(lookup, NOW) == model_links[lookup.offset : end], lookup


async def test_redis_expires_by_key_ttl(redis_url: str) -> None:
    from coapkit.rd.redis_store import RedisStore

    store = RedisStore(redis_url, prefix="ttl-test:")
    await store.open()
    try:
        stored = await store.register(registration("node1", lifetime=100), NOW)
        client = store._db()
        ttl = await client.pttl(f"ttl-test:reg:{stored.id}")
        assert 99_000 < ttl <= 100_000
        assert 99_000 < await client.pttl("ttl-test:name:0::node1") <= 100_000
    finally:
        await store.close()
