"""A stand-in for the Flink REST API of many clusters, on 127.0.0.1: `GET /{namespace}/{name}/jobs/overview`
answers the overview Flink 1.20 gives for one RUNNING job — the job of deployment `name` (its id derived the way
bench/workload.py derives it) — and `GET /{namespace}/{name}/overview` the cluster overview (2 TaskManagers
registered). `FLINK_SYNC_REST_URL_TEMPLATE=http://{name}.localhost:PORT/{namespace}/{name}` points the
hooks here. It counts the TCP connections it accepted and the requests it served (`GET /__stats`), which shows
whether the hooks reuse connections, and closes connections idle for more than --idle-timeout s.

It is a single-threaded selectors loop with minimal HTTP/1.1 parsing, so that it takes as little of the 2 cores
as possible from the server being measured (http.server costs ~10× more per request). The whole answer leaves
in one send(), as from Flink's Netty server (an answer split in two segments would meet Nagle + delayed ACK on
a kept-alive connection: +40 ms, a stub artifact).

    python -m bench.flink_stub --port 8098 --job-id <32 hex> --start-time 1
"""
from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import time


def rest_url_template(port: int) -> str:
    """Each deployment's Flink REST API at its own origin, as each cluster has its own Service in Kubernetes:
    `{name}.localhost` is loopback to libcurl (RFC 6761) without a DNS lookup, so all of them reach the one
    stub on 127.0.0.1 while the hooks' connection pool sees 10,000 distinct hosts."""
    return f"http://{{name}}.localhost:{port}/{{namespace}}/{{name}}"


def job_id_for(base_job_id: str, name: str) -> str:
    """Deployment 0 runs `base_job_id`; deployment i (named orders-0000i) runs f"{i:08x}" + base_job_id[8:]."""
    tail = name.rsplit("-", 1)[-1]
    index = int(tail) if tail.isdigit() else 0
    return base_job_id if index == 0 else f"{index:08x}{base_job_id[8:]}"


def overview(job_id: str, name: str, start_time: int) -> dict:
    """GET /jobs/overview as Flink 1.20 answers it, for one running job."""
    return {"jobs": [{"jid": job_id, "name": name, "start-time": start_time, "end-time": -1, "duration": 600_000,
                      "state": "RUNNING", "last-modification": start_time,
                      "tasks": {"running": 4, "canceling": 0, "canceled": 0, "total": 4, "created": 0,
                                "scheduled": 0, "deploying": 0, "reconciling": 0, "finished": 0,
                                "initializing": 0, "failed": 0}}]}


# The typical deployment's TaskManagers (parallelism 4, 2 slots each), all registered.
TASKMANAGERS, SLOTS_PER_TASKMANAGER = 2, 2


def cluster_overview() -> dict:
    """GET /overview as Flink 1.20 answers it: the registered TaskManagers (every steady resync asks, to tell a
    TaskManager that never registered) and the slots, all taken by the one running job."""
    return {"taskmanagers": TASKMANAGERS, "slots-total": TASKMANAGERS * SLOTS_PER_TASKMANAGER, "slots-available": 0,
            "jobs-running": 1, "jobs-finished": 0, "jobs-cancelled": 0, "jobs-failed": 0,
            "flink-version": "1.20.1", "flink-commit": "b1fe7b4"}


def _answer(status: int, body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n").encode() + data


class Stub:
    def __init__(self, port: int, base_job_id: str, start_time: int, idle_timeout: float):
        self.base_job_id = base_job_id
        self.start_time = start_time
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.requests = 0
        self.max_open = 0
        self.listener = socket.create_server(("127.0.0.1", port), backlog=1024)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.buffers: dict[socket.socket, bytearray] = {}
        self.last_seen: dict[socket.socket, float] = {}
        self.running = True

    def route(self, path: str) -> bytes:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if parts == ["healthz"]:
            return _answer(200, {"status": "ok"})
        if parts == ["__stats"]:
            return _answer(200, {"connections": self.connections, "requests": self.requests,
                                 "open_connections": len(self.buffers), "max_open_connections": self.max_open})
        self.requests += 1
        if len(parts) == 4 and parts[2:] == ["jobs", "overview"]:
            name = parts[1]
            return _answer(200, overview(job_id_for(self.base_job_id, name), name, self.start_time))
        if len(parts) == 3 and parts[2] == "overview":
            return _answer(200, cluster_overview())
        return _answer(404, {"errors": [f"Not found: /{'/'.join(parts[2:])}"]})

    def close(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        self.buffers.pop(sock, None)
        self.last_seen.pop(sock, None)
        sock.close()

    def serve(self) -> None:
        last_sweep = time.monotonic()
        while self.running:
            for key, _ in self.selector.select(timeout=0.5):
                if key.data is None:
                    self.accept()
                    continue
                self.read(key.fileobj)  # type: ignore[arg-type]
            now = time.monotonic()
            if now - last_sweep > 1.0:
                last_sweep = now
                for sock, seen in list(self.last_seen.items()):
                    if now - seen > self.idle_timeout:
                        self.close(sock)

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(True)  # answers are small: a blocking sendall never waits in practice
            self.connections += 1
            self.buffers[sock] = bytearray()
            self.last_seen[sock] = time.monotonic()
            self.max_open = max(self.max_open, len(self.buffers))
            self.selector.register(sock, selectors.EVENT_READ, True)

    def read(self, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            self.close(sock)
            return
        buf = self.buffers[sock]
        buf += chunk
        self.last_seen[sock] = time.monotonic()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < end + 4 + length:
                return
            del buf[:end + 4 + length]
            request_line = head.split("\r\n", 1)[0].split(" ")
            answer = self.route(request_line[1]) if len(request_line) == 3 else _answer(400, {"errors": ["bad"]})
            try:
                sock.sendall(answer)
            except OSError:
                self.close(sock)
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flink_stub")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--start-time", type=int, default=1)
    parser.add_argument("--idle-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    stub = Stub(args.port, args.job_id, args.start_time, args.idle_timeout)

    def stop(*_: object) -> None:
        stub.running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stub.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
