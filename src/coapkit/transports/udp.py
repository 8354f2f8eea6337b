"""CoAP over UDP (RFC 7252 §3) for asyncio: one non-blocking socket read with ``add_reader``.

Why not :class:`asyncio.DatagramProtocol`: it cannot see ancillary data, so
it can tell neither the address a request was sent to (needed to recognise
multicast requests and to answer from the address the client used) nor which
destination an ICMP error was about.  Reading the socket directly also lets
one wake-up drain every datagram that is waiting (a batch), and lets the
driver rearm its single timer once per batch rather than per datagram.

* Dual stack: an ``AF_INET6`` socket with ``IPV6_V6ONLY`` off serves IPv4 as
  v4-mapped addresses (``::ffff:192.0.2.1``); remotes are always 4-tuples
  then.  Without IPv6 the socket is ``AF_INET`` and remotes are 2-tuples.
  :meth:`UdpTransport.remote_for` maps a resolved address to this form.
* Linux ``IP_RECVERR``/``IPV6_RECVERR``: ICMP errors (port unreachable...)
  are read from the socket's error queue with the destination they concern
  (the queue entry names it, and quotes the start of the datagram that
  caused it) and reported through ``error_received(remote, exc, head)``.
  The kernel also reports a queued error once more as the result of the
  *next* ``sendto``, whoever that goes to; such a send is not this
  recipient's failure: the queue is drained (each entry reported to the
  remote it names) and the datagram is sent again.
* Never deaf.  An error in the queue makes the socket signal ``EPOLLERR``
  until the queue is read.  asyncio's selector loop hands that to the
  reader, which drains the queue; libuv (uvloop) instead treats ``POLLERR``
  on a poll handle as fatal and stops watching the socket for good, silently.
  On such loops the socket is put in an epoll set of its own and the loop
  watches that set's descriptor, which only ever becomes *readable* when the
  socket has something to report, errors included (see :class:`_Watch`).
* Sends that cannot go now: ``EAGAIN`` (full send buffer) waits for
  writability, ``ENOBUFS`` (full device queue, no readiness event for it)
  retries on a short timer backing off to 0.1 s; meanwhile datagrams queue in
  order, at most ``WRITE_BACKLOG_LIMIT`` of them (beyond, new ones are
  dropped and counted: the message layer retransmits what must arrive).
* ``IP_PKTINFO``/``IPV6_RECVPKTINFO`` when bound to a wildcard address or
  joined to multicast groups: the destination address of each datagram tells
  whether it was multicast, and replies leave from the address the request
  was sent to.
"""

from __future__ import annotations

import asyncio
import errno as errno_module
import ipaddress
import logging
import os
import select
import socket
import struct
from asyncio import selector_events
from collections import deque
from typing import Any, Protocol

from coapkit.errors import NetworkError

logger = logging.getLogger("coapkit.transport")

# Linux values; the socket module does not export all of them.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_LINUX = hasattr(os, "sched_getaffinity")

COAP_MULTICAST_V4 = "224.0.1.187"
COAP_MULTICAST_V6_LINK = "ff02::fd"
COAP_MULTICAST_V6_SITE = "ff05::fd"

MAX_DATAGRAM = 65536
BATCH_LIMIT = 64  #: datagrams read per wake-up before yielding to the loop
REPLY_FROM_LIMIT = 4096  #: remotes whose local destination address is remembered
WRITE_BACKLOG_LIMIT = 4096  #: datagrams waiting for a full send buffer; beyond, dropped
ERROR_HEAD = 64  #: bytes of the offending datagram kept with an error (CoAP header and token)

#: Errors a send can return because an earlier ICMP error (for any destination) is
#: pending on the socket; that send did not go out and is not its recipient's failure.
_PENDING_ERRORS = frozenset(
    {
        errno_module.ECONNREFUSED,
        errno_module.EHOSTUNREACH,
        errno_module.ENETUNREACH,
        errno_module.EHOSTDOWN,
        errno_module.ENONET,
        errno_module.EPROTO,
        errno_module.EMSGSIZE,
        errno_module.ETIMEDOUT,
        errno_module.EACCES,
    }
)
_SEND_LATER = object()  #: a send result: wait for the socket to become writable
_SEND_RETRY = object()  #: a send result: try again on a timer (ENOBUFS)
_SEND_DONE = object()  #: a send result: sent, or failed and reported

Address = tuple[Any, ...]


class DatagramSink(Protocol):
    """What the transport reports to (the runtime driver)."""

    def datagram_received(self, data: bytes, remote: Address, multicast: bool) -> None: ...

    def error_received(self, remote: Address, error: NetworkError, head: bytes) -> None: ...

    def batch_done(self) -> None: ...


def _is_wildcard(host: str) -> bool:
    return host in ("", "::", "0.0.0.0")


class UdpTransport:
    """One UDP socket bound to a local address, read by the event loop."""

    #: datagrams that may wait for room in the send buffer; beyond, new ones are dropped
    write_backlog_limit = WRITE_BACKLOG_LIMIT

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sink: DatagramSink,
        *,
        want_pktinfo: bool,
        watch: bool | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.sink = sink
        self.family = sock.family
        self._want_pktinfo = want_pktinfo
        self._closed = False
        self._groups: set[str] = set()
        self._write_backlog: deque[tuple[bytes, Address]] = deque()
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_delay = 0.0
        self._writer_armed = False
        #: datagrams dropped because the send backlog was full
        self.dropped = 0
        #: errors read from the socket's error queue (ICMP and local errors)
        self.errors_received = 0
        #: remote -> the pktinfo to answer it from the address it wrote to (bounded, FIFO)
        self._reply_from: dict[Address, tuple[int, int, bytes]] = {}
        if watch is None:
            watch = _loop_needs_watch(loop)
        self._watch = _Watch(sock) if watch else None
        loop.add_reader(self._watched_fd(), self._on_readable)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def bind(
        cls,
        loop: asyncio.AbstractEventLoop,
        sink: DatagramSink,
        host: str = "::",
        port: int = 0,
        *,
        reuse_port: bool = False,
        pktinfo: bool | None = None,
        watch: bool | None = None,
    ) -> UdpTransport:
        """Open and bind a socket.  ``host`` ``"::"`` (default) is dual-stack when possible.

        ``watch``: watch the socket through an epoll set of its own (see the module
        doc); by default on Linux for every loop but asyncio's selector loop.
        """
        family = socket.AF_INET6
        if host == "0.0.0.0" or (host and _is_ipv4(host)):
            family = socket.AF_INET
        elif host in ("", "::") and not socket.has_ipv6:
            family, host = socket.AF_INET, "0.0.0.0"
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            if family != socket.AF_INET6 or host not in ("", "::"):
                raise
            family, host = socket.AF_INET, "0.0.0.0"
            sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                if host in ("", "::"):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                _try_setsockopt(sock, socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            _try_setsockopt(sock, socket.IPPROTO_IP, IP_RECVERR, 1)
            wildcard = _is_wildcard(host)
            want_pktinfo = wildcard if pktinfo is None else pktinfo
            if want_pktinfo:
                if family == socket.AF_INET6:
                    _try_setsockopt(sock, socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                _try_setsockopt(sock, socket.IPPROTO_IP, IP_PKTINFO, 1)
            if family == socket.AF_INET6:
                sock.bind((host or "::", port, 0, _scope_of(host)))
            else:
                sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(loop, sock, sink, want_pktinfo=want_pktinfo, watch=watch)

    @property
    def local_address(self) -> Address:
        return tuple(self.sock.getsockname())

    def remote_for(self, sockaddr: Address) -> Address:
        """Convert a getaddrinfo / user address into the form this socket reports remotes in."""
        host = sockaddr[0]
        port = sockaddr[1]
        if self.family == socket.AF_INET6:
            if ":" not in host:
                return (f"::ffff:{host}", port, 0, 0)
            flow = sockaddr[2] if len(sockaddr) > 2 else 0
            scope = sockaddr[3] if len(sockaddr) > 3 else 0
            return (host, port, flow, scope)
        if ":" in host:
            if host.startswith("::ffff:") and "." in host:
                return (host[7:], port)
            raise NetworkError(f"cannot reach IPv6 address {host} from an IPv4-only socket")
        return (host, port)

    # -- multicast ------------------------------------------------------------------------

    def join_group(self, group: str, interface: int | str = 0) -> None:
        """Join a multicast group (e.g. the All-CoAP-Nodes addresses, RFC 7252 §12.8)."""
        address = ipaddress.ip_address(group.partition("%")[0])
        if address.version == 4:
            if isinstance(interface, str) and _is_ipv4(interface):
                mreq = socket.inet_aton(group) + socket.inet_aton(interface)
            else:  # struct ip_mreqn: group, local address (any), interface index
                index = (
                    interface if isinstance(interface, int) else socket.if_nametoindex(interface)
                )
                mreq = (
                    socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", index)
                )
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            _try_setsockopt(self.sock, socket.IPPROTO_IP, IP_PKTINFO, 1)
        else:
            if self.family != socket.AF_INET6:
                raise NetworkError(f"cannot join IPv6 group {group} on an IPv4 socket")
            index = interface if isinstance(interface, int) else socket.if_nametoindex(interface)
            mreq = socket.inet_pton(socket.AF_INET6, str(address)) + struct.pack("@I", index)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            _try_setsockopt(self.sock, socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        self._groups.add(str(address))
        self._want_pktinfo = True

    def set_multicast_interface(self, interface: str | int) -> None:
        """Send multicast through ``interface``: an IPv4 address (``"127.0.0.1"``), an
        interface name (``"eth0"``) or index; the route table decides otherwise."""
        if isinstance(interface, str) and _is_ipv4(interface):
            self.sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface)
            )
            return
        index = interface if isinstance(interface, int) else socket.if_nametoindex(interface)
        if self.family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        # ip_mreqn: group (unused here), local address (any), interface index
        mreqn = socket.inet_aton("0.0.0.0") * 2 + struct.pack("@i", index)
        _try_setsockopt_bytes(self.sock, socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)

    # -- receiving ------------------------------------------------------------------------------

    def _watched_fd(self) -> int:
        watch = self._watch
        return self.sock.fileno() if watch is None else watch.fileno()

    @property
    def watched(self) -> bool:
        """True when the loop watches the socket through an epoll set of its own."""
        return self._watch is not None

    def _on_readable(self) -> None:
        sink = self.sink
        sock = self.sock
        if self._watch is not None and self._write_backlog and self._retry_timer is None:
            self._flush()  # the watch set reports writability here too
        try:
            if self._want_pktinfo:
                self._read_with_pktinfo(sock, sink)
            else:
                received = sink.datagram_received
                for _ in range(BATCH_LIMIT):
                    try:
                        data, addr = sock.recvfrom(MAX_DATAGRAM)
                    except BlockingIOError:
                        break
                    except InterruptedError:
                        continue
                    except OSError as exc:
                        self._read_errors(exc)
                        continue
                    received(data, addr, False)
        finally:
            sink.batch_done()

    def _read_with_pktinfo(self, sock: socket.socket, sink: DatagramSink) -> None:
        ancsize = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(12)
        groups = self._groups
        for _ in range(BATCH_LIMIT):
            try:
                data, ancdata, _flags, addr = sock.recvmsg(MAX_DATAGRAM, ancsize)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                self._read_errors(exc)
                continue
            multicast = False
            for level, kind, payload in ancdata:
                local = _pktinfo_destination(level, kind, payload)
                if local is None:
                    continue
                if groups and local in groups:
                    multicast = True
                elif level == socket.IPPROTO_IPV6 or self.family == socket.AF_INET:
                    self._remember_local(addr, level, kind, payload)
                break
            sink.datagram_received(data, addr, multicast)

    def _remember_local(self, remote: Address, level: int, kind: int, payload: bytes) -> None:
        """Answer ``remote`` later from the local address it sent to."""
        if level == socket.IPPROTO_IPV6:
            info = (level, IPV6_PKTINFO, payload[:20])
        else:  # struct in_pktinfo with ipi_spec_dst set to the destination, ifindex 0
            info = (level, IP_PKTINFO, b"\0\0\0\0" + payload[8:12] + b"\0\0\0\0")
        table = self._reply_from
        if remote not in table and len(table) >= REPLY_FROM_LIMIT:
            del table[next(iter(table))]
        table[remote] = info

    def _read_errors(self, first: OSError) -> None:
        """A read failed: report the errors waiting in the error queue to whom they concern."""
        if not _LINUX:
            logger.debug("socket error %r without an error queue", first)
            return
        for remote, error, head in self._drain_error_queue(first.errno or errno_module.EIO):
            self.sink.error_received(remote, error, head)

    def _drain_error_queue(self, fallback: int) -> list[tuple[Address, NetworkError, bytes]]:
        """Read the socket's error queue (``IP_RECVERR``): each entry names the destination
        an error was about and quotes the start of the datagram that caused it.

        Reading the queue also clears the error the kernel would otherwise return
        from the next send, and ends the ``EPOLLERR`` condition.
        """
        found: list[tuple[Address, NetworkError, bytes]] = []
        for _ in range(BATCH_LIMIT):
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(ERROR_HEAD, 512, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self.errors_received += 1
            code = fallback
            for level, kind, payload in ancdata:
                if (level, kind) in (
                    (socket.IPPROTO_IP, IP_RECVERR),
                    (socket.IPPROTO_IPV6, IPV6_RECVERR),
                ) and len(payload) >= 4:
                    code = struct.unpack_from("=I", payload)[0]
            if addr:
                remote = tuple(addr)
                found.append((remote, _network_error(code, remote), bytes(data)))
        return found

    # -- sending ---------------------------------------------------------------------------------

    def sendto(self, data: bytes, remote: Address) -> None:
        """Send one datagram; never raises for the network's reasons (they are reported)."""
        if self._closed:
            return
        backlog = self._write_backlog
        if backlog:
            self._queue(data, remote)
            return
        result = self._send_one(data, remote)
        if result is not _SEND_DONE:
            self._queue(data, remote)
            self._wait(result)

    def _raw_send(self, data: bytes, remote: Address) -> None:
        info = self._reply_from.get(remote) if self._reply_from else None
        if info is None:
            self.sock.sendto(data, remote)
        else:
            self.sock.sendmsg([data], [info], 0, remote)

    def _send_one(self, data: bytes, remote: Address) -> object:
        """Try to send now: _SEND_DONE (sent, or failed and reported), _SEND_LATER or
        _SEND_RETRY (keep it and try again)."""
        for _ in range(4):
            try:
                self._raw_send(data, remote)
            except (BlockingIOError, InterruptedError):
                return _SEND_LATER
            except OSError as exc:
                code = exc.errno or errno_module.EIO
                if code == errno_module.ENOBUFS:
                    return _SEND_RETRY
                if code in _PENDING_ERRORS and _LINUX:
                    # Probably an earlier ICMP error for someone else, returned by this
                    # send: the queue says whose; this datagram did not go, send it again.
                    others = self._drain_error_queue(code)
                    if others:
                        self._report_later(others)
                        continue
                self._report_later([(remote, _network_error(code, remote), data[:ERROR_HEAD])])
                return _SEND_DONE
            else:
                return _SEND_DONE
        return _SEND_DONE

    def _report_later(self, errors: list[tuple[Address, NetworkError, bytes]]) -> None:
        """Report errors found while sending on the loop's next turn, not from inside the
        send: the caller may be in the middle of sending a list of datagrams."""
        self.loop.call_soon(self._report, errors)

    def _report(self, errors: list[tuple[Address, NetworkError, bytes]]) -> None:
        if self._closed:
            return
        for remote, error, head in errors:
            self.sink.error_received(remote, error, head)

    def _queue(self, data: bytes, remote: Address) -> None:
        backlog = self._write_backlog
        if len(backlog) >= self.write_backlog_limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "send buffer full: %d datagrams waiting, %d dropped so far",
                    len(backlog),
                    self.dropped,
                )
            return
        backlog.append((data, remote))

    def _wait(self, result: object) -> None:
        """Try the backlog again when the socket is writable, or after a pause (ENOBUFS)."""
        if result is _SEND_RETRY:
            if self._retry_timer is None:
                delay = self._retry_delay = min(0.1, max(0.005, self._retry_delay * 2))
                self._retry_timer = self.loop.call_later(delay, self._on_retry)
            return
        self._retry_delay = 0.0
        if self._writer_armed:
            return
        self._writer_armed = True
        if self._watch is not None:
            self._watch.want_write(True)
        else:
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _stop_waiting(self) -> None:
        if self._writer_armed:
            self._writer_armed = False
            if self._watch is not None:
                self._watch.want_write(False)
            else:
                self.loop.remove_writer(self.sock.fileno())
        self._retry_delay = 0.0

    def _on_retry(self) -> None:
        self._retry_timer = None
        if not self._closed:
            self._flush()

    def _on_writable(self) -> None:
        if self._retry_timer is None:
            self._flush()

    def _flush(self) -> None:
        """Send what waits, in order, until the socket refuses again."""
        backlog = self._write_backlog
        while backlog:
            data, remote = backlog[0]
            result = self._send_one(data, remote)
            if result is not _SEND_DONE:
                if result is _SEND_RETRY and self._writer_armed:
                    self._stop_waiting()
                self._wait(result)
                return
            backlog.popleft()
        self._stop_waiting()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(self._watched_fd())
            if self._writer_armed and self._watch is None:
                self.loop.remove_writer(fd)
        self._writer_armed = False
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self._write_backlog.clear()
        if self._watch is not None:
            self._watch.close()
        self.sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


class _Watch:
    """An epoll set holding only the socket, for loops that must not see ``POLLERR``.

    The loop watches this set's descriptor for reading.  An epoll descriptor is
    readable while one of its members is ready, and it never reports an error
    condition itself: the socket's ``EPOLLERR`` (an ICMP error waiting in its
    queue) shows up as "readable", and the reader drains the queue.  The set is
    level-triggered and never waited on: the kernel re-checks the socket each
    time the loop polls the set, so it stays readable exactly as long as the
    socket has data, errors or (when asked for) room to write.
    """

    __slots__ = ("_epoll", "_fd")

    def __init__(self, sock: socket.socket) -> None:
        self._epoll = select.epoll()
        self._fd = sock.fileno()
        self._epoll.register(self._fd, select.EPOLLIN)

    def fileno(self) -> int:
        return self._epoll.fileno()

    def want_write(self, on: bool) -> None:
        mask = select.EPOLLIN | (select.EPOLLOUT if on else 0)
        self._epoll.modify(self._fd, mask)

    def close(self) -> None:
        self._epoll.close()


def _loop_needs_watch(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the socket needs its own epoll set on this loop (see :class:`_Watch`)."""
    if not _LINUX or not hasattr(select, "epoll"):
        return False  # no error queue either: nothing raises POLLERR for UDP there
    return not isinstance(loop, selector_events.BaseSelectorEventLoop)


async def resolve_bind_host(loop: asyncio.AbstractEventLoop, host: str) -> str:
    """The address to bind for ``host``: an IP literal or wildcard as it is, a host name
    (``"localhost"``) resolved to its first address, preferring IPv4 as most clients
    and peers on a host name reach it there first."""
    if _is_wildcard(host) or _is_ip(host.partition("%")[0]):
        return host
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r} to an address to bind: {exc.strerror}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _try_setsockopt(sock: socket.socket, level: int, option: int, value: int) -> bool:
    try:
        sock.setsockopt(level, option, value)
    except OSError:
        return False
    return True


def _try_setsockopt_bytes(sock: socket.socket, level: int, option: int, value: bytes) -> bool:
    try:
        sock.setsockopt(level, option, value)
    except OSError:
        return False
    return True


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def _scope_of(host: str) -> int:
    if "%" in host:
        zone = host.partition("%")[2]
        return int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
    return 0


def _pktinfo_destination(level: int, kind: int, payload: bytes) -> str | None:
    """The local destination address in an IP_PKTINFO / IPV6_PKTINFO control message."""
    if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(payload) >= 16:
        address = ipaddress.IPv6Address(payload[:16])
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else str(address)
    if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= 12:
        return socket.inet_ntoa(payload[8:12])  # struct in_pktinfo: ifindex, spec_dst, addr
    return None


def _network_error(code: int, remote: Any) -> NetworkError:
    host = remote[0] if isinstance(remote, tuple) and remote else remote
    port = remote[1] if isinstance(remote, tuple) and len(remote) > 1 else "?"
    if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
        host = host[7:]
    where = f"[{host}]:{port}" if isinstance(host, str) and ":" in host else f"{host}:{port}"
    reason = os.strerror(code)
    if code == errno_module.ECONNREFUSED:
        reason = "port unreachable (connection refused): nothing listens there"
    return NetworkError(f"{where}: {reason}", errno=code)
