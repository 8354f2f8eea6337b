"""The directory's resources (RFC 9176) through the real Client and Server, in virtual time."""

from __future__ import annotations

from coapkit import Code
from coapkit.codec.link_format import Link
from coapkit.testing import VirtualNetwork
from tests.rd.helpers import RD, directory

LINKS = '</sensors/temp>;rt="temperature-c";if="sensor";ct=41,</sensors/light>;rt="light-lux";obs'


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
