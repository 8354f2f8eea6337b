"""The resource directory against aiocoap 0.4.17, both ways: coapkit's registrant against
``aiocoap-rd``, aiocoap's registrant (aiocoap.resourcedirectory.client.register) against
``coapkit rd``, and raw registrations, lookups, updates and removals each way.

Deviations of aiocoap found here (each asserted where it shows, so that a change in
aiocoap shows up as a failing test):

* aiocoap-rd serves its interfaces at paths of its own (``/resourcedirectory/``,
  ``/endpoint-lookup/``, ``/resource-lookup/``): a registrant must discover them
  (RFC 9176 §4.3 allows any path; coapkit's does).
* aiocoap-rd's registration resources end in an empty segment (``/reg/1/``), which
  a registrant must keep.
* aiocoap-rd refuses (4.00) an update that carries links in its payload; it takes
  them by PUT (coapkit's directory takes both).
* aiocoap-rd answers lookups in link-format only: 4.06 for link-format+json (504).
* aiocoap-rd's endpoint lookup does not show ``lt`` (coapkit's does).
* aiocoap-rd leaves out a resource's anchor where it is the origin of its target
  (RFC 9176 §6's examples show it); coapkit's directory always gives it.
* aiocoap's registrant sends ``lt`` only when it is not 90,000 and never ``base``
  for its own registration; it renews at 3/4 of a lifetime of up to 240 s.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coapkit import Client, Code, Request, Server, Site
from coapkit.rd.registrant import Registrant
from tests.interop.peers import free_udp_port, require_aiocoap
from tests.rd.processes import RDProcess

pytestmark = pytest.mark.interop

require_aiocoap()

import aiocoap  # noqa: E402
import aiocoap.resource  # noqa: E402
from aiocoap.resourcedirectory.client.register import Registerer  # noqa: E402

LINKS = b'</sensors/temp>;rt="temperature";if="sensor",</sensors/light>;rt="light-lux"'


def device_site() -> Site:
    site = Site()

    @site.route("/sensors/temp", rt="temperature")
    def temp(request: Request) -> str:
        return "21.5"

    @site.route("/sensors/light", rt="light-lux")
    def light(request: Request) -> str:
        return "300"

    return site


class AiocoapRD:
    """``aiocoap-rd --bind 127.0.0.1:PORT`` in a subprocess."""

    def __init__(self) -> None:
        self.port = free_udp_port()
        script = Path(sys.executable).with_name("aiocoap-rd")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "aiocoap.cli.rd"]
        self.process = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"coap://127.0.0.1:{self.port}"

    async def wait(self, client: Client) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                await client.get(f"{self.url}/.well-known/core", timeout=0.5)
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("aiocoap-rd did not start") from None
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def test_coapkit_registrant_against_aiocoap_rd() -> None:
    rd = AiocoapRD()
    try:
        async with Client() as client, Server(device_site(), bind=("127.0.0.1", 0)) as server:
            await rd.wait(client)
            registrant = Registrant(server, rd.url, ep="coapkit-dev", lifetime=120, timeout=5)
            async with registrant:
                await asyncio.wait_for(registrant.registered.wait(), 10)
                assert registrant.location is not None
                assert registrant.location.endswith("/")  # aiocoap-rd's /reg/1/
                me = f"coap://127.0.0.1:{server.port}"
                # lookups with the coapkit client, raw
                endpoints = (await client.get(f"{rd.url}/endpoint-lookup/")).links()
                assert [(link.get("ep"), link.get("base")) for link in endpoints] == [
                    ("coapkit-dev", me)
                ]
                resources = await client.get(f"{rd.url}/resource-lookup/?rt=temperature")
                assert [link.target for link in resources.links()] == [f"{me}/sensors/temp"]
                assert resources.links()[0].anchor is None  # deviation: no anchor
                refused = await client.get(f"{rd.url}/endpoint-lookup/", accept=504)
                assert refused.code == Code.NOT_ACCEPTABLE
                # an update: a plain one renews
                registrant.registered.clear()
                registrant.refresh(with_links=False)
                await asyncio.wait_for(registrant.registered.wait(), 10)
                assert registrant.updates == 1 and registrant.registrations == 1
                # deviation: links in an update's payload are refused; PUT takes them
                location = f"{rd.url}{registrant.location}"
                with_links = await client.post(location, b"</x>", content_format=40)
                assert with_links.code == Code.BAD_REQUEST
                assert (await client.put(location, b"</x>", content_format=40)).is_success
            # the removal on stop
            assert (await client.get(f"{rd.url}/endpoint-lookup/")).payload == b""
            # raw registration, update and removal by the coapkit client
            created = await client.post(
                f"{rd.url}/resourcedirectory/?ep=raw&lt=100", LINKS, content_format=40
            )
            assert created.code == Code.CREATED
            location = f"{rd.url}/" + "/".join(created.location_path)
            assert (await client.post(f"{location}?lt=200")).code == Code.CHANGED
            found = (await client.get(f"{rd.url}/endpoint-lookup/?ep=raw")).links()
            assert found[0].get("ep") == "raw" and found[0].get("lt") is None  # no lt shown
            assert (await client.delete(location)).code == Code.DELETED
            assert (await client.get(f"{rd.url}/endpoint-lookup/?ep=raw")).payload == b""
    finally:
        rd.stop()


class Text(aiocoap.resource.Resource):
    rt = "temperature"

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=b"21.5")


async def test_aiocoap_registrant_against_coapkit_rd(tmp_path: Path) -> None:
    rd = RDProcess(str(tmp_path / "rd.sqlite"))
    site = aiocoap.resource.Site()
    site.add_resource(
        [".well-known", "core"], aiocoap.resource.WKCResource(site.get_resources_as_linkheader)
    )
    site.add_resource(["sensors", "temp"], Text())
    port = free_udp_port()
    context = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", port), transports=["udp6"]
    )
    try:
        registerer = Registerer(
            context, rd=rd.url, lt=4, registration_parameters={"ep": "aiocoap-dev", "et": "x"}
        )
        deadline = time.monotonic() + 15
        while registerer.state != "registered":
            assert registerer.state not in ("failed",), rd.log()
            assert time.monotonic() < deadline, registerer.state
            await asyncio.sleep(0.05)
        me = f"coap://127.0.0.1:{port}"
        # raw lookups with the aiocoap client
        request = aiocoap.Message(code=aiocoap.GET, uri=f"{rd.url}/rd-lookup/ep")
        response = await context.request(request).response
        text = response.payload.decode()
        assert "ep=aiocoap-dev" in text and f'base="{me}"' in text and ";et=x;" in text
        request = aiocoap.Message(code=aiocoap.GET, uri=f"{rd.url}/rd-lookup/res?rt=temperature")
        response = await context.request(request).response
        assert response.payload.decode().startswith(f"<{me}/sensors/temp>")
        # its update at 3/4 of the lifetime keeps it alive past the lifetime
        await asyncio.sleep(6)
        assert "POST /reg/" in rd.log() and "2.04 Changed" in rd.log()
        response = await context.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{rd.url}/rd-lookup/ep")
        ).response
        assert b"aiocoap-dev" in response.payload
        await registerer.shutdown()
        response = await context.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{rd.url}/rd-lookup/ep")
        ).response
        assert response.payload == b""
        # raw registration, update (PUT of links as aiocoap-rd takes them) and removal
        post = aiocoap.Message(
            code=aiocoap.POST, uri=f"{rd.url}/rd?ep=raw", payload=LINKS, content_format=40
        )
        created = await context.request(post).response
        assert created.code == aiocoap.CREATED
        location = f"{rd.url}/" + "/".join(created.opt.location_path)
        put = aiocoap.Message(code=aiocoap.PUT, uri=location, payload=b"</y>", content_format=40)
        assert (await context.request(put).response).code == aiocoap.CHANGED
        lookup = aiocoap.Message(code=aiocoap.GET, uri=f"{rd.url}/rd-lookup/res?ep=raw")
        assert (await context.request(lookup).response).payload.decode().startswith("<coap://")
        delete = aiocoap.Message(code=aiocoap.DELETE, uri=location)
        assert (await context.request(delete).response).code == aiocoap.DELETED
    finally:
        await context.shutdown()
        rd.stop()
