"""`hooks.artifacts`: fetching a session job's jar safely (allowlist, address checks, redirects, limits),
against jar servers on 127.0.0.1."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks import artifacts
from hooks.artifacts import ArtifactError, FetchedJar, fetch_jar, validate_jar_uri
from tests.http_stub import Reply, Request, StubServer, closed_port

JAR = b"PK\x03\x04" + bytes(range(256)) * 64  # 16 KiB and change; the content is opaque to the fetcher


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        stub.route("GET", "/jobs/counter.jar", Reply(200, JAR, {"Content-Type": "application/java-archive"}))
        yield stub


def allow(server: StubServer) -> tuple[str, ...]:
    return (f"http://127.0.0.1:{server.port}/",)


def message(info: pytest.ExceptionInfo[ArtifactError]) -> str:
    assert info.value.field == "spec.job.jarURI"
    text = str(info.value)
    assert text.startswith("spec.job.jarURI: ")
    return text


# --- fetching over HTTP ------------------------------------------------------------------------


def test_allowed_when_the_allowlist_names_the_host(server: StubServer) -> None:
    jar = fetch_jar(f"{server.url}/jobs/counter.jar", allowlist=allow(server), max_bytes=1 << 20, timeout=5)
    assert jar == FetchedJar("counter.jar", JAR)
    filename, data = jar  # callers unpack it
    assert filename == "counter.jar" and data == JAR
    (request,) = server.requests
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"


def test_loopback_refused_by_default(server: StubServer) -> None:
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"{server.url}/jobs/counter.jar")  # default allowlist: https:// only
    assert "is not allowed; allowed prefixes: https://" in message(info)
    with pytest.raises(ArtifactError) as info:  # an allowlist that does not name the host
        fetch_jar(f"{server.url}/jobs/counter.jar", allowlist=("http://", "https://"))
    assert "host '127.0.0.1' is a loopback address" in message(info)
    assert server.requests == []


def test_host_names_are_resolved_and_checked(server: StubServer) -> None:
    """`localhost` is refused without a prefix that names it; with one, the checked address is used."""
    uri = f"http://localhost:{server.port}/jobs/counter.jar"
    with pytest.raises(ArtifactError) as info:
        fetch_jar(uri, allowlist=("http://",))
    assert "loopback" in message(info)
    # a name resolving to a restricted address, checked after resolution (not from the literal)
    with pytest.raises(ArtifactError) as info:
        artifacts._checked_addresses(artifacts.JarSource(uri, "http", "localhost", server.port, "/", "http://", False),
                                   artifacts._Deadline(5, uri))
    assert "resolves to" in message(info)
    assert fetch_jar(uri, allowlist=(f"http://localhost:{server.port}/",)).data == JAR
    assert server.requests[0].headers["Host"] == f"localhost:{server.port}"


def test_next_checked_address_when_one_refuses(server: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with two addresses: the first refuses the connection (nothing listens on 127.0.0.2)."""
    real_getaddrinfo = socket.getaddrinfo

    def two_addresses(host: str, port: int, *a: Any, **k: Any) -> list[Any]:
        if host != "jars.test":  # the connection itself resolves the (literal) address again
            return real_getaddrinfo(host, port, *a, **k)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("127.0.0.2", "127.0.0.1")]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    uri = f"http://jars.test:{server.port}/jobs/counter.jar"
    assert fetch_jar(uri, allowlist=(f"http://jars.test:{server.port}/",)).data == JAR
    assert server.requests[0].headers["Host"] == f"jars.test:{server.port}"
    with pytest.raises(ArtifactError) as info:  # both loopback: refused unless the prefix names the host
        fetch_jar(uri, allowlist=("http://",))
    assert "resolves to 127.0.0.2, a loopback address" in message(info)


def test_ftp_refused_with_a_clear_message() -> None:
    with pytest.raises(ArtifactError) as info:
        fetch_jar("ftp://example.com/job.jar")
    assert message(info) == "spec.job.jarURI: scheme 'ftp' is not allowed; allowed prefixes: https://"


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "streamed"])
def test_larger_than_the_limit(server: StubServer, with_length: bool) -> None:
    server.route("GET", "/big.jar", Reply(200, JAR, content_length=with_length))
    uri = f"{server.url}/big.jar"
    with pytest.raises(ArtifactError) as info:
        fetch_jar(uri, allowlist=allow(server), max_bytes=1024, timeout=5)
    assert "larger than the 1024-byte limit" in message(info)
    if with_length:
        assert f"({len(JAR)} bytes)" in str(info.value)
    assert fetch_jar(uri, allowlist=allow(server), max_bytes=len(JAR), timeout=5).data == JAR


def test_404_is_a_clear_error(server: StubServer) -> None:
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"{server.url}/jobs/missing.jar?X-Amz-Signature=secret", allowlist=allow(server))
    text = message(info)
    assert f"fetching 'http://127.0.0.1:{server.port}/jobs/missing.jar?…' failed: HTTP 404" in text
    assert "secret" not in text


def test_connection_refused_is_a_clear_error() -> None:
    port = closed_port()
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"http://127.0.0.1:{port}/a.jar", allowlist=(f"http://127.0.0.1:{port}/",), timeout=2)
    assert "Connection refused" in message(info)


def test_redirect_followed_and_rechecked(server: StubServer) -> None:
    server.route("GET", "/old.jar", Reply(301, b"", {"Location": "/jobs/counter.jar"}))
    assert fetch_jar(f"{server.url}/old.jar", allowlist=allow(server)) == FetchedJar("counter.jar", JAR)


def test_redirect_to_another_scheme_refused(server: StubServer) -> None:
    server.route("GET", "/old.jar", Reply(302, b"", {"Location": "file:///etc/passwd"}))
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"{server.url}/old.jar", allowlist=(*allow(server), "file://"))
    assert "redirects to another scheme ('file')" in message(info)
    server.route("GET", "/tls.jar", Reply(302, b"", {"Location": f"https://127.0.0.1:{server.port}/x.jar"}))
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"{server.url}/tls.jar", allowlist=(*allow(server), "https://"))
    assert "another scheme ('https')" in message(info)


def test_redirect_to_a_loopback_host_not_in_the_allowlist_refused(server: StubServer) -> None:
    with StubServer() as other:
        other.route("GET", "/x.jar", Reply(200, JAR))
        server.route("GET", "/old.jar", Reply(302, b"", {"Location": f"{other.url}/x.jar"}))
        with pytest.raises(ArtifactError) as info:
            fetch_jar(f"{server.url}/old.jar", allowlist=(*allow(server), "http://"))
        assert message(info).startswith(f"spec.job.jarURI: redirect from 'http://127.0.0.1:{server.port}/old.jar': "
                                        "host '127.0.0.1' is a loopback address")
        assert other.requests == []


def test_redirect_loop_is_bounded(server: StubServer) -> None:
    server.route("GET", "/loop.jar", Reply(302, b"", {"Location": "/loop.jar"}))
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"{server.url}/loop.jar", allowlist=allow(server))
    assert "more than 3 redirects" in message(info)
    assert len(server.requests) == 4


def test_total_time_limit_enforced(server: StubServer) -> None:
    def slow(request: Request) -> None:
        handler = request.handler
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(JAR)))
        handler.end_headers()
        for i in range(0, len(JAR), 256):  # each piece well within a read timeout, the whole not
            if server.release.wait(0.1):
                return
            try:
                handler.wfile.write(JAR[i:i + 256])
                handler.wfile.flush()
            except OSError:
                return
        return

    def hang(request: Request) -> None:
        server.release.wait(10)
        return

    server.route("GET", "/slow.jar", slow)
    server.route("GET", "/hang.jar", hang)
    for path in ("/slow.jar", "/hang.jar"):
        start = time.monotonic()
        with pytest.raises(ArtifactError) as info:
            fetch_jar(f"{server.url}{path}", allowlist=allow(server), timeout=1.0)
        assert time.monotonic() - start < 1.0 + 1.0
        assert "1 s" in message(info)


# --- local files -------------------------------------------------------------------------------


def test_file_allowed_only_with_a_file_prefix(tmp_path: Path) -> None:
    jar = tmp_path / "job.jar"
    jar.write_bytes(JAR)
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"file://{jar}")
    assert "is not allowed; allowed prefixes: https://" in message(info)
    assert fetch_jar(f"file://{jar}", allowlist=("https://", "file://")) == FetchedJar("job.jar", JAR)
    assert fetch_jar(f"local://{jar}", allowlist=("file://",)).data == JAR  # local:// reads the same path
    assert fetch_jar(f"file:{jar}", allowlist=(f"file://{tmp_path}/",)).data == JAR


def test_file_prefix_limits_the_directory(tmp_path: Path) -> None:
    allowed, other = tmp_path / "jars", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (other / "x.jar").write_bytes(JAR)
    (allowed / "link.jar").symlink_to(other / "x.jar")
    prefix = (f"file://{allowed}/",)
    for uri in (f"file://{other}/x.jar", f"file://{allowed}/../other/x.jar", f"file://{allowed}/link.jar"):
        with pytest.raises(ArtifactError):
            fetch_jar(uri, allowlist=prefix)
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"file://{allowed}/missing.jar", allowlist=prefix)
    assert "cannot read" in message(info) and "No such file" in str(info.value)
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"file://{allowed}", allowlist=prefix)
    assert "not a regular file" in message(info)
    (allowed / "big.jar").write_bytes(JAR)
    with pytest.raises(ArtifactError) as info:
        fetch_jar(f"file://{allowed}/big.jar", allowlist=prefix, max_bytes=100)
    assert "larger than the 100-byte limit" in message(info)


def test_file_with_a_host_is_refused() -> None:
    with pytest.raises(ArtifactError) as info:
        validate_jar_uri("file://fileserver/share/job.jar", ("file://",))
    assert "hook server's own filesystem" in message(info)


# --- pure validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "allowlist", "error"), [
    ("https://repo.example.com/a.jar", ("https://",), None),
    ("https://repo.example.com/jars/a.jar", ("https://repo.example.com/jars/",), None),
    ("https://repo.example.com:8443/a.jar", ("https://repo.example.com/",), "is not allowed"),
    ("https://repo.example.com.evil.net/a.jar", ("https://repo.example.com",), "is not allowed"),
    ("https://repo.example.com/other/a.jar", ("https://repo.example.com/jars/",), "is not allowed"),
    ("https://repo.example.com/jars/../a.jar", ("https://repo.example.com/jars/",), "'..' path segments"),
    ("http://repo.example.com/a.jar", ("https://",), "is not allowed"),
    ("https://user:pw@repo.example.com/a.jar", ("https://",), "credentials"),
    ("https://10.1.2.3/a.jar", ("https://",), "private address"),
    ("https://169.254.169.254/latest", ("https://",), "link-local address"),
    ("https://[::1]/a.jar", ("https://",), "loopback address"),
    ("https://[fd00::1]/a.jar", ("https://",), "private address"),
    ("https://0.0.0.0/a.jar", ("https://",), "unspecified address"),
    ("https://224.0.0.1/a.jar", ("https://",), "multicast address"),
    ("https://[::ffff:127.0.0.1]/a.jar", ("https://",), "loopback address"),
    ("https://10.1.2.3/a.jar", ("https://10.1.2.3/",), None),
    ("s3://bucket/a.jar", ("https://",), "scheme 's3' is not allowed"),
    ("/opt/flink/job.jar", ("https://",), "has no scheme"),
    ("https:///a.jar", ("https://",), "has no host"),
    ("", ("https://",), "non-empty"),
    ("https://a.example/a.jar", (), "allowed prefixes: (none)"),
])
def test_validate_jar_uri(uri: str, allowlist: tuple[str, ...], error: str | None) -> None:
    if error is None:
        assert validate_jar_uri(uri, allowlist).uri == uri
    else:
        with pytest.raises(ArtifactError) as info:
            validate_jar_uri(uri, allowlist)
        assert error in message(info)


def test_parse_allowlist() -> None:
    assert artifacts.parse_allowlist(None) == ("https://",)
    assert artifacts.parse_allowlist(" https://a/ , ,file:///opt/jars/") == ("https://a/", "file:///opt/jars/")


def test_resolution_is_bounded_by_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_dns(*_a: object, **_k: object) -> list[object]:
        time.sleep(2)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", slow_dns)
    start = time.monotonic()
    with pytest.raises(ArtifactError) as info:
        fetch_jar("https://slow-dns.example/a.jar", timeout=0.5)
    assert time.monotonic() - start < 1.5
    assert "resolving 'slow-dns.example' took longer" in message(info)


# --- https: the connection goes to the checked address, TLS verifies the host name ---------------


def test_https_pinned_to_the_checked_address(tls_cert: tuple[str, str]) -> None:
    cert, _key = tls_cert
    with StubServer(tls=tls_cert) as server:
        server.route("GET", "/a.jar", Reply(200, JAR))
        uri = f"https://localhost:{server.port}/a.jar"
        allowlist = (f"https://localhost:{server.port}/",)
        assert fetch_jar(uri, allowlist=allowlist, ca_certs=cert).data == JAR  # SNI + verification for localhost
        assert server.requests[-1].headers["Host"] == f"localhost:{server.port}"
        with pytest.raises(ArtifactError) as info:  # the public CAs do not trust it
            fetch_jar(uri, allowlist=allowlist)
        assert "certificate verify failed" in message(info)
        with pytest.raises(ArtifactError) as info:  # the certificate names localhost, not 127.0.0.1
            fetch_jar(f"https://127.0.0.1:{server.port}/a.jar", allowlist=(f"https://127.0.0.1:{server.port}/",),
                      ca_certs=cert)
        assert "failed" in message(info)
