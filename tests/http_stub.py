"""A tiny scripted HTTP server on 127.0.0.1 for failure-path tests (no real Flink behind it).

`StubServer` maps (method, path) to a handler `f(request) -> Reply | None`; a `Reply` is sent as is,
and a handler may also write to the socket itself (for slow or broken answers) and return None.
Requests are recorded. Stopping the server releases handlers that wait on `server.release`.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True  # False: no Content-Length, body streamed until the connection closes

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    handler: BaseHTTPRequestHandler

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Route = Callable[[Request], "Reply | None"]


class StubServer:
    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate file, key file) to serve https."""
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Request] = []
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, path, query, dict(self.headers), body, self)
                stub.requests.append(request)
                route = stub.routes.get((self.command, path)) or stub.routes.get((self.command, "*"))
                reply = route(request) if route else Reply(404, {"errors": [f"Not found: {path}"]})
                if reply is not None:
                    self.send(reply)

            def send(self, reply: Reply) -> None:
                payload = reply.payload()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json; charset=UTF-8", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(payload)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up (timeouts, refused TLS) are part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def route(self, method: str, path: str, handler: Route | Reply) -> None:
        if isinstance(handler, Reply):
            reply = handler

            def fixed(_request: Request) -> Reply:
                return reply

            handler = fixed
        self.routes[(method, path)] = handler

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound, then released)."""
    from .flinkbed.net import free_port
    return free_port()
