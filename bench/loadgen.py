"""A small closed-loop HTTP/1.1 load generator: C keep-alive connections in ONE thread (selectors, non-blocking
sockets, requests pre-encoded as bytes), each connection sending its next request as soon as the answer to the
previous one is complete.

Why not `requests` in threads: on a 2-core machine the load generator competes with the server for CPU, and a
`requests.Session` costs several hundred µs of Python per call, which would be charged to the server's numbers.
This loop costs a few tens of µs per request; it measures its own CPU time and reports it, so the table can say
how much of the machine the client took. `wrk` (when installed) is used as a cross-check in `__main__`.
"""
from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _server_side_owner(server_port: int, client_port: int, pids: Sequence[int]) -> int | None:
    """Which of `pids` accepted the connection from 127.0.0.1:client_port (via /proc/net/tcp and the fd tables)."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                inode = fields[9]
                break
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def balanced_connections(host: str, port: int, n: int, worker_pids: Sequence[int],
                         max_reconnects: int = 400) -> tuple[list[socket.socket], dict[str, Any]]:
    """`n` keep-alive connections spread evenly over the gunicorn workers.

    gunicorn's workers race to accept() on the shared socket, so a handful of long-lived connections can all
    land on one worker, which then uses one core while the other idles (Metacontroller's few keep-alive
    connections can meet the same fate). Runs would then measure the luck of the accept race. Connections are
    reopened until each worker holds n / workers of them; the first draw is reported too."""
    def owner(sock: socket.socket) -> int | None:
        client_port = sock.getsockname()[1]
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            pid = _server_side_owner(port, client_port, worker_pids)
            if pid is not None:
                return pid
            time.sleep(0.005)
        return None

    conns = [connect(host, port) for _ in range(n)]
    owners = [owner(sock) for sock in conns]
    first = {str(pid): owners.count(pid) for pid in worker_pids}
    share = n // len(worker_pids)
    reconnects = 0
    while reconnects < max_reconnects:
        counts = {pid: owners.count(pid) for pid in worker_pids}
        if all(count == share for count in counts.values()) or (n % len(worker_pids) and
                                                                   max(counts.values()) - min(counts.values()) <= 1):
            break
        busiest = max(counts, key=counts.get)
        index = owners.index(busiest)
        conns[index].close()
        conns[index] = connect(host, port)
        owners[index] = owner(conns[index])
        reconnects += 1
    final = {str(pid): owners.count(pid) for pid in worker_pids}
    return conns, {"first_draw": first, "balanced": final, "reconnects": reconnects}


def encode_post(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


@dataclass
class LoadResult:
    completed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    connections: int = 0
    bytes_in: int = 0
    failures: list[str] = field(default_factory=list)
    answers_total: int = 0   # warm-up answers included

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_us(self, q: float) -> float:
        values = sorted(self.latencies_ns)
        if not values:
            return float("nan")
        index = min(len(values) - 1, max(0, int(q / 100 * len(values) + 0.5) - 1))
        return values[index] / 1000

    def summary(self) -> dict[str, Any]:
        return {"completed": self.completed, "elapsed_s": round(self.elapsed_s, 3), "per_s": round(self.rate, 1),
                "p50_ms": round(self.percentile_us(50) / 1000, 3), "p99_ms": round(self.percentile_us(99) / 1000, 3),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "connections": self.connections,
                "client_cpu_s": round(self.client_cpu_s, 3),
                "client_cpu_share_of_one_core": round(self.client_cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0,
                "failures": self.failures[:5]}


_IDLE = 1 << 62


class _Conn:
    __slots__ = ("sock", "out", "sent", "buf", "need", "start", "index", "status")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.out = memoryview(b"")
        self.sent = 0
        self.buf = bytearray()
        self.need = -1
        self.start = 0
        self.index = -1
        self.status = 0


def run(host: str, port: int, requests: Sequence[bytes], *, concurrency: int = 8, count: int | None = None,
        duration_s: float | None = None, warmup_s: float = 0.0,
        check: Callable[[int, int, bytes], str | None] | None = None, timeout_s: float = 120.0,
        sockets: Sequence[socket.socket] | None = None) -> LoadResult:
    """Send `requests[i % len(requests)]` in order until `count` answers (or `duration_s` after the warm-up).

    `check(index, status, body)` may return a failure text for an answer (kept, up to a few, in the result).
    Answers during the first `warmup_s` seconds are not recorded (count excludes them). `sockets`: connections
    opened beforehand (see `balanced_connections`); they are closed at the end."""
    if count is None and duration_s is None:
        raise ValueError("give count or duration_s")
    selector = selectors.DefaultSelector()
    conns: list[_Conn] = []
    result = LoadResult()
    next_index = 0
    issued = 0
    clock = time.perf_counter_ns
    cpu0 = time.thread_time()
    wall0 = time.perf_counter()
    measuring = warmup_s <= 0
    measure_start = wall0
    hard_deadline = wall0 + warmup_s + (duration_s or 0) + timeout_s

    def stop_issuing(now: float) -> bool:
        if not measuring:
            return False
        if count is not None:
            return issued >= count
        return now - measure_start >= (duration_s or 0)

    def send_next(conn: _Conn) -> None:
        nonlocal next_index, issued
        conn.index = next_index
        conn.out = memoryview(requests[next_index % len(requests)])
        conn.sent = 0
        conn.buf = bytearray()
        conn.need = -1
        next_index += 1
        if measuring:
            issued += 1
        conn.start = clock()
        _flush(conn)

    def _flush(conn: _Conn) -> None:
        try:
            while conn.sent < len(conn.out):
                conn.sent += conn.sock.send(conn.out[conn.sent:])
        except BlockingIOError:
            selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            return
        selector.modify(conn.sock, selectors.EVENT_READ, conn)

    given = list(sockets or [])
    for index in range(concurrency):
        sock = given[index] if index < len(given) else connect(host, port)
        sock.setblocking(False)
        conn = _Conn(sock)
        selector.register(sock, selectors.EVENT_READ, conn)
        conns.append(conn)
        result.connections += 1
    active = set(range(len(conns)))
    for conn in conns:
        send_next(conn)
    while active:
        if time.perf_counter() > hard_deadline:
            result.failures.append("timed out waiting for answers")
            break
        for key, mask in selector.select(timeout=1.0):
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                _flush(conn)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                chunk = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            if not chunk:
                if conn.need == _IDLE:
                    selector.unregister(conn.sock)
                    continue
                raise ConnectionError(f"server closed a keep-alive connection (request #{conn.index})")
            conn.buf += chunk
            if conn.need < 0:
                end = conn.buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = bytes(conn.buf[:end]).decode("latin-1")
                lines = head.split("\r\n")
                conn.status = int(lines[0].split(" ", 2)[1])
                length = None
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    lowered = name.strip().lower()
                    if lowered == "content-length":
                        length = int(value.strip())
                    elif lowered == "transfer-encoding" and "chunked" in value.lower():
                        raise ConnectionError("chunked answers are not supported by this load generator")
                if length is None:
                    raise ConnectionError("answer without Content-Length")
                del conn.buf[:end + 4]
                conn.need = length
            if len(conn.buf) < conn.need:
                continue
            done_ns = clock()
            body = bytes(conn.buf[:conn.need])
            result.answers_total += 1
            if measuring:
                result.completed += 1
                result.latencies_ns.append(done_ns - conn.start)
                result.statuses[conn.status] = result.statuses.get(conn.status, 0) + 1
                result.bytes_in += len(body)
                if check is not None:
                    problem = check(conn.index, conn.status, body)
                    if problem and len(result.failures) < 20:
                        result.failures.append(problem)
            now = time.perf_counter()
            if not measuring and now - wall0 >= warmup_s:
                measuring = True
                measure_start = now
                cpu0 = time.thread_time()
            if stop_issuing(now):
                active.discard(conns.index(conn))
                selector.modify(conn.sock, selectors.EVENT_READ, conn)
                conn.need = _IDLE
                continue
            send_next(conn)
    result.elapsed_s = time.perf_counter() - measure_start
    result.client_cpu_s = time.thread_time() - cpu0
    for conn in conns:
        try:
            selector.unregister(conn.sock)
        except KeyError:
            pass
        conn.sock.close()
    selector.close()
    return result
