"""The cluster recipe of docs/deployment.md on loopback: Debian's nginx with its stream module
(examples/cluster/nginx-coap.conf, ports changed) in front of three ``coapkit server``
processes.  Sixty clients, each from its own loopback address, keep their backend across a
hundred requests; block-wise transfers and observations work through the proxy; when one
backend is killed, its clients move to the others and their observations recover within one
re-registration.

Which backend served whom is read from nginx's error log (level info names each session's
client and backend) and from the backends' request logs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coapkit import Client, Code
from coapkit.cli.plugtest import LARGE
from coapkit.codec.message import decode
from coapkit.messaging.parameters import TransmissionParameters
from tests.cluster.services import Nginx, Process, coapkit_server, free_udp_port

CLIENTS = 60
REQUESTS = 100
#: the clients' addresses: one each, as devices behind their own IP addresses
ADDRESSES = [f"127.0.0.{2 + number}" for number in range(CLIENTS)]
#: a quicker first retransmission than 2-3 s, so that the failover test takes seconds
QUICK = TransmissionParameters(ack_timeout=0.5)


@dataclass
class Cluster:
    nginx: Nginx
    backends: dict[int, Process]  # port -> process

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.nginx.port}"

    def requests_logged(self) -> dict[int, int]:
        """Port -> requests the backend logged (one line each)."""
        return {port: process.log().count(" -> ") for port, process in self.backends.items()}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    ports = [free_udp_port() for _ in range(3)]
    backends: dict[int, Process] = {}
    nginx: Nginx | None = None
    try:
        for number, port in enumerate(ports, start=1):
            backends[port] = coapkit_server(
                tmp_path, f"backend{number}", port, "--plugtest", "--obs-period", "0.5"
            )
        nginx = Nginx(tmp_path, free_udp_port(), ports)
        nginx.start()
        yield Cluster(nginx, backends)
    finally:
        if nginx is not None:
            nginx.stop()
        for process in backends.values():
            process.stop()


async def clients(**options: object) -> list[Client]:
    started = [Client(bind=(address, 0), **options) for address in ADDRESSES]  # type: ignore[arg-type]
    for client in started:
        await client.start()
    return started


async def test_sixty_clients_keep_their_backend_across_a_hundred_requests(
    cluster: Cluster,
) -> None:
    started = await clients()

    async def hundred(client: Client) -> int:
        answered = 0
        for _ in range(REQUESTS):
            response = await client.get(f"{cluster.uri}/test", timeout=20)
            answered += response.code == Code.CONTENT
        return answered

    try:
        answered = await asyncio.gather(*(hundred(client) for client in started))
    finally:
        for client in started:
            await client.close()
    assert answered == [REQUESTS] * CLIENTS
    sessions = cluster.nginx.sessions()
    assert sorted(sessions) == sorted(ADDRESSES)
    for address in ADDRESSES:
        assert len(sessions[address]) == 1, (address, sessions[address])  # one session, kept
    spread = Counter(backends[0] for backends in sessions.values())
    assert set(spread) == set(cluster.backends)  # every backend has clients
    # each backend answered exactly the requests of its own clients (its log, once written)
    expected = {port: spread[port] * REQUESTS for port in cluster.backends}
    deadline = time.monotonic() + 10
    while cluster.requests_logged() != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert cluster.requests_logged() == expected


async def test_block_wise_transfers_and_observations_through_the_proxy(cluster: Cluster) -> None:
    started = (await clients())[:6]
    try:
        for client in started:
            large = await client.get(f"{cluster.uri}/large", timeout=20)
            assert large.payload == LARGE  # Block2, 1 KiB blocks, through nginx
            body = bytes(range(256)) * 12  # 3 KiB: Block1
            stored = await client.put(
                f"{cluster.uri}/large-update", body, content_format=0, timeout=20
            )
            assert stored.code == Code.CHANGED
            back = await client.get(f"{cluster.uri}/large-update", timeout=20)
            assert back.payload == body
            async with client.observe(f"{cluster.uri}/obs") as observation:
                numbers = []
                for _ in range(4):  # the registration's answer and three notifications
                    response = await asyncio.wait_for(anext(observation), 10)
                    numbers.append(response.options.observe)
            assert numbers == sorted(numbers)
    finally:
        for client in started:
            await client.close()
    sessions = cluster.nginx.sessions()
    client_addresses = ADDRESSES[: len(started)]
    assert all(len(sessions[address]) == 1 for address in client_addresses)


async def test_killing_a_backend_moves_its_clients_and_their_observations_recover(
    cluster: Cluster,
) -> None:
    """Every client observes /obs (Max-Age 1 s: a notification every 0.5 s) and keeps asking
    /test.  The backend holding most clients is killed.  Its clients' next requests reach
    another backend (nginx marks the dead one failed at the first refused datagram and the
    retransmission opens a session elsewhere); their observations fall silent, and the one
    registration each sends again after Max-Age + 5 s reaches the new backend, whose
    notifications (clock-numbered) they take as newer."""
    registrations: dict[str, list[tuple[float, int]]] = {address: [] for address in ADDRESSES}

    def tracer_for(address: str):  # type: ignore[no-untyped-def]
        def trace(direction: str, data: bytes, remote: object) -> None:
            if direction != "send":
                return
            message = decode(data)
            if message.code == Code.GET and message.options.observe == 0:
                registrations[address].append((time.monotonic(), message.mid))

        return trace

    started = [
        Client(bind=(address, 0), transmission=QUICK, tracer=tracer_for(address))
        for address in ADDRESSES
    ]
    heard: dict[str, list[float]] = {address: [] for address in ADDRESSES}

    async def follow(client: Client, address: str) -> None:
        async with client.observe(f"{cluster.uri}/obs") as observation:
            async for _ in observation:
                heard[address].append(time.monotonic())

    try:
        for client in started:
            await client.start()
        followers = [
            asyncio.create_task(follow(client, address))
            for client, address in zip(started, ADDRESSES, strict=True)
        ]
        await asyncio.sleep(2)
        for client in started:
            assert (await client.get(f"{cluster.uri}/test", timeout=20)).code == Code.CONTENT
        assert all(len(times) >= 2 for times in heard.values())
        before = cluster.nginx.sessions()
        spread = Counter(sessions[0] for sessions in before.values())
        victim, moved_count = spread.most_common(1)[0]
        moved = [address for address, sessions in before.items() if sessions[0] == victim]
        assert moved_count == len(moved) >= 5

        cluster.backends[victim].kill()
        killed_at = time.monotonic()
        asked = [
            client.get(f"{cluster.uri}/test", timeout=30)
            for client, address in zip(started, ADDRESSES, strict=True)
            if address in moved
        ]
        for response in await asyncio.gather(*asked):
            assert response.code == Code.CONTENT  # answered by another backend

        # Their observations: silent, then one registration again (Max-Age 1 s + 5 s), which
        # the new backend answers; notifications flow again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(
                heard[a]
                and heard[a][-1] > killed_at + 6
                and len([t for t in heard[a] if t > killed_at]) >= 3
                for a in moved
            ):
                break
            await asyncio.sleep(0.25)
        for address in moved:
            again = {mid for when, mid in registrations[address] if when > killed_at}
            assert len(again) == 1, (address, registrations[address])  # one re-registration
            assert len([t for t in heard[address] if t > killed_at]) >= 3, address
        after = cluster.nginx.sessions()
        for address in moved:
            assert after[address][-1] != victim  # its new session is elsewhere
        for address in set(ADDRESSES) - set(moved):
            assert after[address] == before[address]  # the others stayed where they were
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    finally:
        for client in started:
            await client.close()
