"""How much memory an idle CoAP-over-TCP connection costs a coapkit server.

A coapkit server on a free port; a child process opens N connections that
each send a CSM (RFC 8323 §5.3) and then nothing; this process's RSS before
and after, divided by N, is printed (bytes per connection).

    python coapkit_idle_probe.py --loop uvloop --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from coapkit import Server
from coapkit.codec.stream import encode_frame
from coapkit.connections import signals
from coapkit.transports.tcp import StreamLimits

_CROWD = """
import socket, sys, time
port, count, frame = int(sys.argv[1]), int(sys.argv[2]), bytes.fromhex(sys.argv[3])
crowd = []
for _ in range(count):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(frame)
    crowd.append(sock)
print("ok", flush=True)
time.sleep(120)
"""


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


async def probe(count: int) -> float:
    limits = StreamLimits(max_per_host=count + 100)
    async with Server(listen=["coap+tcp://127.0.0.1:0"], stream_limits=limits) as server:
        listener = server.listeners[0]
        port = listener.uri.rsplit(":", 1)[1]
        csm = signals.csm(1152, False)
        frame = encode_frame(csm.code, b"", csm.options, b"").hex()
        gc.collect()
        await asyncio.sleep(0.2)
        before = rss()
        crowd = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CROWD, port, str(count), frame, stdout=asyncio.subprocess.PIPE
        )
        assert crowd.stdout is not None
        await crowd.stdout.readline()
        while listener.transport.connection_count < count:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        gc.collect()
        after = rss()
        crowd.kill()
        await crowd.wait()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        print(uvloop.run(probe(args.count)))
    else:
        print(asyncio.run(probe(args.count)))


if __name__ == "__main__":
    main()
