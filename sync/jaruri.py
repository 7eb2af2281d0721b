"""Pure checks of a session job's `jarURI` against the server's allowlist (no network: the fetcher
re-checks resolved addresses and every redirect)."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

FIELD = "spec.job.jarURI"
SCHEMES = ("https", "http", "file", "local")


def restricted_ip(host: str) -> bool:
    """Loopback, link-local, private, unspecified, multicast or reserved addresses."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_unspecified or \
        addr.is_multicast or addr.is_reserved


def _admits(prefix: str, uri: str) -> bool:
    """Prefixes are matched by parts, not as raw strings: `https://repo.example.com` admits
    `https://repo.example.com/a.jar` but not `https://repo.example.com.evil.net/a.jar`."""
    try:
        want, got = urlsplit(prefix), urlsplit(uri)
        if want.scheme != got.scheme:
            return False
        if want.hostname is not None:
            if (want.hostname or "").lower() != (got.hostname or "").lower() or want.port != got.port:
                return False
    except ValueError:
        return False
    return got.path.startswith(want.path or "")


def prefix_allows(uri: str, allowlist: tuple[str, ...]) -> str | None:
    """The allowlist prefix that admits `uri`, if any."""
    return next((prefix for prefix in allowlist if _admits(prefix, uri)), None)


def prefix_names_host(prefix: str) -> bool:
    """Whether an allowlist prefix names a host explicitly (`http://127.0.0.1:8000/` does, `https://` does not)."""
    return bool(urlsplit(prefix).hostname)


def check_jar_uri(uri: str, allowlist: tuple[str, ...]) -> str | None:
    """An error naming the field, or None."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        return f"{FIELD}: '{uri}' is not a valid URI: {exc}"
    if not parts.scheme:
        return f"{FIELD}: '{uri}' must include a scheme (https://, http://, file://)"
    if parts.scheme not in SCHEMES:
        return f"{FIELD}: scheme '{parts.scheme}' is not supported; use one of {', '.join(SCHEMES)}"
    prefix = prefix_allows(uri, allowlist) or (prefix_allows("file://" + uri[len("local://"):], allowlist)
                                              if parts.scheme == "local" else None)
    if prefix is None:
        return (f"{FIELD}: '{uri}' is not allowed; allowed prefixes: {', '.join(allowlist) or '(none)'} "
                "(set FLINK_SYNC_JAR_URI_ALLOWLIST on the hook server to extend it)")
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            return f"{FIELD}: '{uri}' must include a host"
        if restricted_ip(parts.hostname) and not prefix_names_host(prefix):
            return (f"{FIELD}: host '{parts.hostname}' is a loopback, link-local or private address; allow it by "
                    "naming it in an FLINK_SYNC_JAR_URI_ALLOWLIST prefix")
        if parts.hostname in ("localhost",) and not prefix_names_host(prefix):
            return f"{FIELD}: host 'localhost' is restricted; name it in an FLINK_SYNC_JAR_URI_ALLOWLIST prefix to allow it"
    return None
