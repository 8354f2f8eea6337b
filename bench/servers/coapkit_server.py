"""coapkit serving one small resource with a plain (synchronous) handler.

Besides the shared options (see common.py): ``--dedup-cap-total`` and
``--dedup-cap-per-peer`` set the message layer's deduplication caps
(``MessagingConfig``), and ``--stats SECONDS`` prints one line every so often on
stdout, ``stats t=... dedup=... peers=... received=... duplicates=...
evictions=... holds=... dedup_runs=... bodies=...`` (``holds``: message-ID hold
runs, ``bodies``: Block1 bodies being reassembled; -1 for a count a coapkit does not
have), for bench_flood.py and bench_flood_ports.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from common import PAYLOAD, run

from coapkit.messaging.layer import MessagingConfig
from coapkit.resources import Response, Site
from coapkit.server import Server


def options(parser: argparse.ArgumentParser) -> None:
    defaults = MessagingConfig()
    parser.add_argument("--dedup-cap-total", type=int, default=defaults.dedup_cap_total)
    parser.add_argument("--dedup-cap-per-peer", type=int, default=defaults.dedup_cap_per_peer)
    parser.add_argument("--stats", type=float, default=0.0, help="print stats every N s")


async def report(server: Server, interval: float) -> None:
    start = time.monotonic()
    messaging = server.endpoint.messaging
    while True:
        await asyncio.sleep(interval)
        stats = messaging.stats
        print(
            f"stats t={time.monotonic() - start:.2f} dedup={messaging.dedup_entries} "
            f"peers={messaging.peer_count} received={stats.received} "
            f"duplicates={stats.duplicates} evictions={stats.dedup_evictions} "
            f"holds={getattr(messaging, 'mid_hold_runs', -1)} "
            f"dedup_runs={getattr(messaging, 'dedup_runs', -1)} "
            f"bodies={server.endpoint.blockwise.bodies_in_progress}",
            flush=True,
        )


async def main(args: argparse.Namespace) -> None:
    site = Site()

    @site.route("/hello")
    def hello(request: object) -> Response:
        return Response(payload=PAYLOAD)

    messaging = MessagingConfig(
        dedup_cap_total=args.dedup_cap_total, dedup_cap_per_peer=args.dedup_cap_per_peer
    )
    async with Server(site, bind=(args.host, args.port), messaging=messaging) as server:
        if args.stats > 0:
            print(f"ready pid={os.getpid()}", flush=True)
            await report(server, args.stats)
        await asyncio.Event().wait()


if __name__ == "__main__":
    run(main, options)
