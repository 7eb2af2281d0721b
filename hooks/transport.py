"""What the Flink REST client needs from HTTP: one exchange with hard limits (`Transport`), its answer and its
typed failure. `hooks/http_transport.py` (libcurl) implements it; tests may pass any object of this shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ErrorKind = Literal["unreachable", "timeout", "too_large", "broken", "failed"]


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes


@dataclass
class TransportError(Exception):
    kind: ErrorKind
    message: str
    status: int | None = None

    def __str__(self) -> str:
        return self.message


class Transport(Protocol):
    """One HTTP/1.1 exchange with `origin` (`http(s)://host:port`); `target` is the path with its query.
    Must honour the connect timeout, the total deadline and the response size limit, follow no redirects,
    and raise `TransportError` (never anything else) when no complete answer arrived."""

    def request(self, origin: str, method: str, target: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, connect_timeout: float, total_timeout: float,
                max_bytes: int) -> Answer: ...
