"""Fetch a session job's jar from `spec.job.jarURI`, safely.

The URI comes from a custom resource, so it is untrusted. The server's allowlist
(`FLINK_SYNC_JAR_URI_ALLOWLIST`, comma-separated URL prefixes, default `https://`) decides what may be
fetched:

* schemes `https`, `http`, `file` and `local`. `file://` and `local://` read a path on the **hook
  server's own filesystem** (in a cluster: the hook pod's, e.g. a jar baked into its image or a mounted
  volume), never the Flink image's. Both need an allowlist prefix of `file://` (or a narrower one such
  as `file:///opt/jars/`; `local://` prefixes are read as `file://`).
* A prefix matches by parts, not by raw string: same scheme, and when the prefix names a host, the same
  host and port (so `https://repo.example.com` does not admit `https://repo.example.com.evil.net/`), then
  the path must start with the prefix's path.
* HTTP(S) hosts are resolved with `getaddrinfo` and **every** address is checked: loopback, link-local,
  private (RFC 1918, ULA), unspecified, multicast and other non-global addresses are refused unless the
  matching allowlist prefix names that host explicitly (`http://127.0.0.1:8000/`,
  `https://nexus.build.svc/`). The connection then goes to the checked address (TLS still verifies the
  certificate against the host name), so a second DNS answer cannot redirect it (no DNS rebinding).
* Redirects are followed by hand, at most 3; each hop is checked like the original URI and must keep the
  scheme. Size limit (Content-Length and while streaming) and one total time limit for the whole fetch,
  DNS included. No proxy from the environment is used; credentials in the URI are refused.

Every failure is an `ArtifactError` whose text names the field, e.g.
"spec.job.jarURI: scheme 'ftp' is not allowed; allowed prefixes: https://".
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import posixpath
import socket
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

FIELD = "spec.job.jarURI"
SCHEMES = ("https", "http", "file", "local")
DEFAULT_ALLOWLIST: tuple[str, ...] = ("https://",)
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_TIMEOUT_S = 5.0
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
USER_AGENT = "flink-sync-jar-fetcher"

# getaddrinfo has no timeout of its own: it runs here so the fetch's time limit also bounds DNS.
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="jar-dns")


class ArtifactError(Exception):
    """The jar cannot be used: refused by policy, or the fetch failed. `str()` names the field."""

    def __init__(self, message: str, field: str = FIELD) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class FetchedJar(NamedTuple):
    """A fetched jar: the file name (last path segment) and the content."""
    filename: str
    data: bytes


@dataclass(frozen=True)
class JarSource:
    """A jarURI that passed the pure checks."""
    uri: str
    scheme: str  # https | http | file ("local" is reported as "file")
    host: str | None  # lower case, no brackets; None for file
    port: int | None  # effective port for http(s)
    path: str  # normalised absolute path for file; the raw path for http(s)
    prefix: str  # the allowlist prefix that admitted it
    prefix_names_host: bool


# --------------------------------------------------------------------------------------------
# Pure checks (no network)
# --------------------------------------------------------------------------------------------


def parse_allowlist(text: str | None) -> tuple[str, ...]:
    """`FLINK_SYNC_JAR_URI_ALLOWLIST` → prefixes (comma-separated, blanks dropped); unset → `https://`."""
    if text is None:
        return DEFAULT_ALLOWLIST
    return tuple(p.strip() for p in text.split(",") if p.strip())


def redact(uri: str) -> str:
    """The URI for messages: no user info, no query or fragment (pre-signed URLs carry tokens there)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    netloc = host + port
    suffix = "?…" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{suffix}" if parts.scheme else uri[:200]


def _family(scheme: str) -> str:
    return "file" if scheme in ("file", "local") else scheme


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def _describe(allowlist: Sequence[str]) -> str:
    return ", ".join(allowlist) if allowlist else "(none)"


def _split(uri: str, where: str = "") -> tuple[str, str | None, int | None, str]:
    """(scheme family, host, port, path) of a URI; raises ArtifactError for malformed ones."""
    parts, port = _parse_uri(uri, where)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ArtifactError(f"{where}'{redact(uri)}' has no scheme (use https://, http:// or file://)")
    if parts.username is not None or parts.password is not None:
        raise ArtifactError(f"{where}credentials in the URI are not allowed")
    family = _family(scheme)
    if family == "file":
        return family, None, None, _local_path(uri, parts, where)
    if ".." in unquote(parts.path).split("/"):
        raise ArtifactError(f"{where}'{redact(uri)}' must not contain '..' path segments")
    host = (parts.hostname or "").lower().rstrip(".")
    return family, host or None, port or _default_port(scheme), parts.path or "/"


def _parse_uri(uri: str, where: str) -> tuple[SplitResult, int | None]:
    if not isinstance(uri, str) or not uri.strip():
        raise ArtifactError("must be a non-empty URI")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in uri):
        raise ArtifactError(f"{where}contains control characters")
    try:
        parts = urlsplit(uri.strip())
        return parts, parts.port
    except ValueError as exc:
        raise ArtifactError(f"{where}'{redact(uri)}' is not a valid URI ({exc})") from None


def _local_path(uri: str, parts: SplitResult, where: str) -> str:
    """file:// and local:// name a path on the hook server's own filesystem, never another host."""
    if parts.netloc not in ("", "localhost"):
        raise ArtifactError(f"{where}'{redact(uri)}' names host '{parts.netloc}'; file:// and local:// "
                            "read the hook server's own filesystem only")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise ArtifactError(f"{where}'{redact(uri)}' must be an absolute path")
    return posixpath.normpath(path)


def _prefix_admits(prefix: str, family: str, host: str | None, port: int | None, path: str) -> bool:
    """Whether one allowlist prefix admits the URI's parts (structured match, see the module doc)."""
    try:
        parts = urlsplit(prefix.strip())
        p_port = parts.port
    except ValueError:
        return False
    if _family(parts.scheme.lower()) != family:
        return False
    if family == "file":
        p_path = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            return False
        return p_path in ("", "/") or path.startswith(p_path) or path == p_path.rstrip("/")
    p_host = (parts.hostname or "").lower().rstrip(".")
    if p_host and (p_host != host or (p_port or _default_port(family)) != port):
        return False
    return not parts.path or path.startswith(parts.path)


def _names_host(prefix: str) -> bool:
    try:
        return bool(urlsplit(prefix.strip()).hostname)
    except ValueError:
        return False


def restricted_reason(address: str) -> str | None:
    """Why an IP address may not be fetched from without an explicit allowlist entry, or None."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, label in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                        ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return label
    return None if ip.is_global else "non-global"


def _is_local_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def validate_jar_uri(uri: str, allowlist: Iterable[str] = DEFAULT_ALLOWLIST) -> JarSource:
    """Check a jarURI against the allowlist without touching the network: scheme, credentials, prefix,
    and a host that is a restricted IP literal or `localhost`. Raises ArtifactError; the fetch repeats
    these checks and also checks the resolved addresses and every redirect."""
    prefixes = tuple(allowlist)
    return _validate(uri, prefixes, where="")


def _refuse_restricted_host(host: str, family: str, port: int | None, where: str) -> None:
    """A restricted address (loopback, private, ...) only when an allowlist prefix names the host."""
    reason = restricted_reason(host) or ("loopback" if _is_local_name(host) else None)
    if reason:
        example = f"{family}://{f'[{host}]' if ':' in host else host}"
        example += "" if port == _default_port(family) else f":{port}"
        raise ArtifactError(f"{where}host '{host}' is a {reason} address; allow it by naming it in an "
                            f"FLINK_SYNC_JAR_URI_ALLOWLIST prefix (e.g. '{example}/')")


def _validate(uri: str, prefixes: tuple[str, ...], where: str) -> JarSource:
    scheme = urlsplit(uri.strip()).scheme.lower() if isinstance(uri, str) else ""
    if scheme and scheme not in SCHEMES:
        raise ArtifactError(f"{where}scheme '{scheme}' is not allowed; allowed prefixes: {_describe(prefixes)}")
    family, host, port, path = _split(uri, where)
    if family in ("http", "https") and not host:
        raise ArtifactError(f"{where}'{redact(uri)}' has no host")
    prefix = next((p for p in prefixes if _prefix_admits(p, family, host, port, path)), None)
    if prefix is None:
        raise ArtifactError(f"{where}'{redact(uri)}' is not allowed; allowed prefixes: {_describe(prefixes)} "
                            "(the hook server's FLINK_SYNC_JAR_URI_ALLOWLIST)")
    names_host = _names_host(prefix)
    if host is not None and not names_host:
        _refuse_restricted_host(host, family, port, where)
    return JarSource(uri=uri.strip(), scheme=family, host=host, port=port, path=path, prefix=prefix,
                     prefix_names_host=names_host)


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


class _Deadline:
    """One time budget for the whole fetch."""

    def __init__(self, seconds: float, uri: str) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.uri = uri

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise ArtifactError(f"fetching '{redact(self.uri)}' took longer than the {self.seconds:g} s limit")
        return left


def fetch_jar(uri: str, *, allowlist: Iterable[str] = DEFAULT_ALLOWLIST, max_bytes: int = DEFAULT_MAX_BYTES,
              timeout: float = DEFAULT_TIMEOUT_S, ca_certs: str | None = None) -> FetchedJar:
    """Fetch the jar a session job names; returns (file name, bytes). Raises ArtifactError.
    `ca_certs`: a CA bundle file for https (default: certifi's public CAs)."""
    prefixes = tuple(allowlist)
    source = validate_jar_uri(uri, prefixes)
    deadline = _Deadline(timeout, source.uri)
    if source.scheme == "file":
        return _read_file(source, prefixes, max_bytes, deadline)
    return _fetch_http(source, prefixes, max_bytes, deadline, ca_certs or certifi.where())


def _filename(path: str) -> str:
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).lstrip(".")
    return safe or "job.jar"


def _too_large(uri: str, max_bytes: int, size: int | None = None) -> ArtifactError:
    size_text = f" ({size} bytes)" if size is not None else ""
    return ArtifactError(f"'{redact(uri)}' is larger than the {max_bytes}-byte limit{size_text} "
                         "(FLINK_SYNC_JAR_MAX_BYTES)")


def _read_file(source: JarSource, prefixes: tuple[str, ...], max_bytes: int, deadline: _Deadline) -> FetchedJar:
    """Read a local file (the hook server's filesystem). Symlinks are resolved and re-checked."""
    real = os.path.realpath(source.path)
    if real != source.path:
        _validate("file://" + real, prefixes, where=f"'{redact(source.uri)}' resolves to '{real}': ")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ArtifactError(f"cannot read '{redact(source.uri)}' on the hook server: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a directory, FIFO or device: never read it
        os.close(fd)
        raise ArtifactError(f"'{redact(source.uri)}' is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise _too_large(source.uri, max_bytes, info.st_size)
        data = bytearray()
        while chunk := handle.read(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise _too_large(source.uri, max_bytes)
            deadline.remaining()
    return FetchedJar(_filename(real), bytes(data))


def _resolve(host: str, port: int, deadline: _Deadline) -> list[str]:
    """Every address `host` resolves to (within the deadline)."""
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=deadline.remaining())
    except concurrent.futures.TimeoutError:
        raise ArtifactError(f"resolving '{host}' took longer than the {deadline.seconds:g} s limit") from None
    except socket.gaierror as exc:
        raise ArtifactError(f"cannot resolve host '{host}': {exc.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ArtifactError(f"host '{host}' has no address")
    return addresses


def _checked_addresses(source: JarSource, deadline: _Deadline) -> list[str]:
    """Resolve the host and check every address; returns them, to connect to in order."""
    assert source.host is not None and source.port is not None
    addresses = _resolve(source.host, source.port, deadline)
    if not source.prefix_names_host:
        for address in addresses:
            reason = restricted_reason(address)
            if reason:
                raise ArtifactError(f"host '{source.host}' resolves to {address}, a {reason} address; allow it by "
                                    "naming the host in an FLINK_SYNC_JAR_URI_ALLOWLIST prefix")
    return addresses


def _fetch_http(source: JarSource, prefixes: tuple[str, ...], max_bytes: int, deadline: _Deadline,
                ca_certs: str) -> FetchedJar:
    """GET with manual redirects; every hop is validated, resolved and pinned to a checked address."""
    current = source
    for hop in range(MAX_REDIRECTS + 1):
        response = _open_any(current, _checked_addresses(current, deadline), deadline, ca_certs)
        try:
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    raise ArtifactError(f"'{redact(current.uri)}' answered HTTP {response.status} without Location")
                if hop == MAX_REDIRECTS:
                    raise ArtifactError(f"'{redact(source.uri)}': more than {MAX_REDIRECTS} redirects")
                current = _redirect_target(source, current, location, prefixes)
                continue
            if response.status != 200:
                raise ArtifactError(f"fetching '{redact(current.uri)}' failed: HTTP {response.status} "
                                    f"{response.reason or ''}".rstrip())
            data = _read_body(response, current, max_bytes, deadline)
            return FetchedJar(_filename(urlsplit(current.uri).path), data)
        finally:
            response.release_conn()
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _redirect_target(origin: JarSource, current: JarSource, location: str, prefixes: tuple[str, ...]) -> JarSource:
    target = urljoin(current.uri, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme != origin.scheme:
        raise ArtifactError(f"'{redact(current.uri)}' redirects to another scheme ('{scheme}'); "
                            "redirects must keep the scheme")
    return _validate(target, prefixes, where=f"redirect from '{redact(current.uri)}': ")


def _open_any(source: JarSource, addresses: list[str], deadline: _Deadline,
              ca_certs: str) -> urllib3.BaseHTTPResponse:
    """Try the checked addresses in order until one accepts the connection."""
    for address in addresses[:-1]:
        try:
            return _open(source, address, deadline, ca_certs, raise_connect_errors=True)
        except urllib3.exceptions.NewConnectionError:
            continue
    return _open(source, addresses[-1], deadline, ca_certs)


def _open(source: JarSource, address: str, deadline: _Deadline, ca_certs: str,
          raise_connect_errors: bool = False) -> urllib3.BaseHTTPResponse:
    """Send the GET to the checked `address`, with the URI's host in the Host header and for TLS."""
    assert source.host is not None and source.port is not None
    left = deadline.remaining()
    timeout = urllib3.Timeout(connect=left, read=left)
    if source.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, source.port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs, assert_hostname=source.host, server_hostname=source.host)
    else:
        pool = urllib3.HTTPConnectionPool(address, source.port, timeout=timeout, retries=False, maxsize=1)
    parts = urlsplit(source.uri)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{source.host}]" if ":" in source.host else source.host
    if source.port != _default_port(source.scheme):
        host_header += f":{source.port}"
    try:
        return pool.urlopen("GET", target, headers={"Host": host_header, "User-Agent": USER_AGENT,
                                                    "Accept-Encoding": "identity"},
                            redirect=False, retries=False, preload_content=False, assert_same_host=False)
    except urllib3.exceptions.NewConnectionError as exc:  # (a subclass of ConnectTimeoutError in urllib3 2)
        if raise_connect_errors:
            raise
        raise ArtifactError(f"fetching '{redact(source.uri)}' failed: {_reason(exc)}") from None
    except urllib3.exceptions.TimeoutError:
        raise ArtifactError(f"fetching '{redact(source.uri)}' timed out (limit {deadline.seconds:g} s)") from None
    except Urllib3Error as exc:
        raise ArtifactError(f"fetching '{redact(source.uri)}' failed: {_reason(exc)}") from None


def _read_body(response: urllib3.BaseHTTPResponse, source: JarSource, max_bytes: int, deadline: _Deadline) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(source.uri, max_bytes, int(declared))
    data = bytearray()
    try:
        # read1 returns what has arrived, so the deadline is checked between arrivals.
        while chunk := response.read1(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise _too_large(source.uri, max_bytes)
            deadline.remaining()
    except urllib3.exceptions.TimeoutError:
        raise ArtifactError(f"fetching '{redact(source.uri)}' timed out (limit {deadline.seconds:g} s)") from None
    except Urllib3Error as exc:
        raise ArtifactError(f"fetching '{redact(source.uri)}' failed while reading: {_reason(exc)}") from None
    return bytes(data)


def _reason(exc: BaseException) -> str:
    """A short reason from urllib3's nested exception messages."""
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "certificate verify failed", "Name or service not known",
                   "Connection reset", "timed out"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__
