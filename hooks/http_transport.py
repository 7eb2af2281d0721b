"""One HTTP/1.1 exchange with hard limits, for the Flink REST client: libcurl through pycurl.

Why libcurl: a hook makes one Flink REST call on nearly every sync, and the pure-Python HTTP stacks
spend most of that call's CPU in request preparation and header parsing (requests ~400 µs, urllib3
~170 µs per warm call on the benchmark machine; libcurl ~45 µs). bench/README.md has the figures.

What every exchange guarantees:

* a connect timeout, and a total deadline for the whole exchange (connect + read timeout);
* a response size limit: checked against `Content-Length` before the body is read, and again while it
  streams in (the transfer is aborted past the limit);
* no redirects, no proxy and no `.netrc` from the environment, http and https only, HTTP/1.1;
* https verifies the server against `SSL_CERT_FILE`, else the system's CA bundle, else certifi's;
* keep-alive: idle curl handles keep their connection, so sequential calls to one cluster reuse one TCP
  connection; a handle whose transfer failed is closed, never reused; one bounded pool per worker;
* thread safety: a handle serves one exchange at a time (taken from the pool, given back after).
"""
from __future__ import annotations

import io
import os
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import pycurl

from .transport import Answer, ErrorKind, TransportError

__all__ = ["Answer", "CurlPool", "ErrorKind", "TransportError", "ca_bundle"]

_UNREACHABLE = {pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY,
                pycurl.E_SSL_CONNECT_ERROR, pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CACERT_BADFILE,
                pycurl.E_SSL_CERTPROBLEM, pycurl.E_SEND_ERROR}
# CURLE_WEIRD_SERVER_REPLY (8, not HTTP) keeps its old FTP-era name in pycurl.
_BROKEN = {pycurl.E_RECV_ERROR, pycurl.E_PARTIAL_FILE, pycurl.E_GOT_NOTHING, pycurl.E_FTP_WEIRD_SERVER_REPLY}


def ca_bundle() -> str | None:
    """The CA file https verification uses: SSL_CERT_FILE, the system bundle, or certifi's."""
    return _ca_bundle(os.environ.get("SSL_CERT_FILE"))


@lru_cache(maxsize=8)
def _ca_bundle(ssl_cert_file: str | None) -> str | None:
    candidates = [ssl_cert_file, ssl.get_default_verify_paths().cafile]
    try:
        import certifi
        candidates.append(certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with the kubernetes client
        pass
    return next((path for path in candidates if path and os.path.isfile(path)), None)


@dataclass
class _Exchange:
    """What one transfer collects: the status line and headers of the final answer, and the body."""
    max_bytes: int
    status_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    too_large: bool = False

    def on_header(self, line: bytes) -> None:
        text = line.decode("iso-8859-1").strip()
        if text.startswith("HTTP/"):  # a new answer (after a 100 Continue): start over
            self.status_line, self.headers = text, {}
        elif ":" in text:
            name, _, value = text.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def on_body(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.too_large = True
            return 0  # anything but len(chunk) aborts the transfer (CURLE_WRITE_ERROR)
        self.chunks.append(chunk)
        return None

    def reason(self) -> str:
        parts = self.status_line.split(" ", 2)
        return parts[2] if len(parts) == 3 else ""


class CurlPool:
    """The libcurl `Transport` (hooks/transport.py). Keep-alive HTTP to many origins (`http(s)://host:port`), shared by all the Flink clients of a worker.

    An idle handle keeps its connection to the origin it last talked to; a call takes the most recently
    used idle handle of its origin, or a new one. At most `max_idle` handles are kept (each holds a
    socket and a wake-up socket pair, so ~3 file descriptors); past that the least recently used is
    closed. `request` is safe to call from many threads: a handle serves one exchange at a time."""

    def __init__(self, max_idle: int = 128, *, user_agent: str = "flink-sync") -> None:
        self.max_idle = max_idle
        self.user_agent = user_agent
        self._by_origin: dict[str, list[pycurl.Curl]] = {}
        self._lru: OrderedDict[int, tuple[str, pycurl.Curl]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def idle(self) -> int:
        with self._lock:
            return len(self._lru)

    def close(self) -> None:
        """Close every idle handle and its connection (handles in use are kept when given back)."""
        with self._lock:
            handles = [handle for _origin, handle in self._lru.values()]
            self._lru.clear()
            self._by_origin.clear()
        for handle in handles:
            handle.close()

    def _take(self, origin: str) -> pycurl.Curl:
        with self._lock:
            handles = self._by_origin.get(origin)
            if handles:
                handle = handles.pop()
                if not handles:
                    del self._by_origin[origin]
                del self._lru[id(handle)]
                return handle
        return pycurl.Curl()

    def _give_back(self, origin: str, handle: pycurl.Curl, reusable: bool) -> None:
        evicted: list[pycurl.Curl] = []
        with self._lock:
            if reusable and self.max_idle > 0:
                self._by_origin.setdefault(origin, []).append(handle)
                self._lru[id(handle)] = (origin, handle)
                while len(self._lru) > self.max_idle:
                    old_origin, old = self._lru.popitem(last=False)[1]
                    self._by_origin[old_origin].remove(old)
                    if not self._by_origin[old_origin]:
                        del self._by_origin[old_origin]
                    evicted.append(old)
            else:
                evicted.append(handle)
        for old in evicted:
            old.close()

    def request(self, origin: str, method: str, target: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, connect_timeout: float, total_timeout: float,
                max_bytes: int) -> Answer:
        """One exchange with `origin`; `target` is the path with its query. Raises TransportError, never
        pycurl.error."""
        handle = self._take(origin)
        exchange = _Exchange(max_bytes)
        reusable = False
        try:
            self._configure(handle, origin + target, method, body, headers or {}, connect_timeout, total_timeout,
                            max_bytes, exchange)
            try:
                handle.perform()
            except pycurl.error as exc:
                raise self._error(handle, origin, exc, exchange) from None
            reusable = True
            return Answer(handle.getinfo(pycurl.RESPONSE_CODE), exchange.reason(), exchange.headers,
                          b"".join(exchange.chunks))
        finally:
            self._give_back(origin, handle, reusable)

    def _configure(self, handle: pycurl.Curl, url: str, method: str, body: bytes | None, headers: dict[str, str],
                   connect_timeout: float, total_timeout: float, max_bytes: int, exchange: _Exchange) -> None:
        # A GET like the handle's last one (same scheme, limits and headers: every steady resync's calls) keeps the
        # options it has and sets only the URL and this exchange's callbacks; anything else starts from reset().
        ca_file = ca_bundle() if url.startswith("https://") else None
        profile = (url[:5], ca_file, connect_timeout, total_timeout, max_bytes, tuple(headers.items()))
        if method == "GET" and body is None and getattr(handle, "flink_sync_get_profile", None) == profile:
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.HEADERFUNCTION, exchange.on_header)
            handle.setopt(pycurl.WRITEFUNCTION, exchange.on_body)
            return
        handle.flink_sync_get_profile = profile if method == "GET" and body is None else None
        # reset() clears every option of the previous exchange but keeps the handle's connection cache.
        handle.reset()
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.PROXY, "")  # never a proxy from http_proxy / https_proxy
        handle.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: required with threads
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000)))
        handle.setopt(pycurl.TIMEOUT_MS, max(1, int(total_timeout * 1000)))
        handle.setopt(pycurl.MAXFILESIZE_LARGE, max_bytes)  # refuses a larger Content-Length up front
        handle.setopt(pycurl.USERAGENT, self.user_agent)
        if ca_file:
            handle.setopt(pycurl.CAINFO, ca_file)
        # An empty `Expect:` stops curl from waiting for 100 Continue before larger bodies (jar uploads).
        handle.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"])
        handle.setopt(pycurl.HEADERFUNCTION, exchange.on_header)
        handle.setopt(pycurl.WRITEFUNCTION, exchange.on_body)
        if method == "GET":
            return
        if method == "POST":
            handle.setopt(pycurl.POST, 1)
        else:
            handle.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None or method == "POST":
            data = body or b""
            if method != "POST":
                handle.setopt(pycurl.UPLOAD, 1)  # a body with PATCH/PUT/DELETE goes through the read callback
                handle.setopt(pycurl.INFILESIZE_LARGE, len(data))
            else:
                handle.setopt(pycurl.POSTFIELDSIZE_LARGE, len(data))
            handle.setopt(pycurl.READDATA, io.BytesIO(data))

    def _error(self, handle: pycurl.Curl, origin: str, exc: pycurl.error, exchange: _Exchange) -> TransportError:
        code = exc.args[0] if exc.args else -1
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        status = handle.getinfo(pycurl.RESPONSE_CODE) or None
        if exchange.too_large or code == pycurl.E_FILESIZE_EXCEEDED:
            declared = exchange.headers.get("content-length", "")
            size = f"of {declared} bytes " if declared.isdigit() else ""
            return TransportError("too_large", f"response {size}exceeds the {exchange.max_bytes}-byte limit", status)
        if code == pycurl.E_OPERATION_TIMEDOUT:
            where = "while reading the response body" if exchange.status_line else "waiting for an answer"
            return TransportError("timeout", f"timed out {where}", status)
        if code in _UNREACHABLE:
            errno = handle.getinfo(pycurl.OS_ERRNO)
            reason = os.strerror(errno) if errno else text
            return TransportError("unreachable", f"cannot connect to {origin} ({reason})")
        if code in _BROKEN:
            return TransportError("broken", f"connection broken while reading the response ({text})", status)
        return TransportError("failed", f"request failed ({text})", status)

