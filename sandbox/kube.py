"""A small Kubernetes REST client for the sandbox's own processes (stand-in controller, node agent, setup).

Plain `requests` against the API server with a bearer token; every call has a timeout. Objects are plain
dicts, exactly as the API server returns them. Discovery (resource plural -> kind, namespaced) is read
once per group/version and cached.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

DEFAULT_TIMEOUT = 10.0


class ApiError(Exception):
    def __init__(self, status: int, body: str, method: str = "", url: str = ""):
        super().__init__(f"{method} {url}: {status} {body[:500]}")
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        try:
            return str(json.loads(self.body).get("reason", ""))
        except ValueError:
            return ""


@dataclass(frozen=True)
class Resource:
    group_version: str  # "v1", "apps/v1"
    plural: str
    kind: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class TokenBucket:
    """client-go's client-side rate limiter (`flowcontrol.NewTokenBucketRateLimiter(qps, burst)`): `burst` tokens,
    refilled at `qps` per second; a request waits for a token (Metacontroller's API client: 5 qps, burst 10)."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # time requests spent waiting for a token, all threads together

    def take(self) -> None:
        with self._lock:  # one waiter at a time, in order, as client-go's limiter serves them
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.qps
                time.sleep(wait)
                self.waited_s += wait
                self._tokens = 1.0
                self._last = time.monotonic()
            self._tokens -= 1


def _counted_kind(method: str, path: str) -> str:
    """`VERB resource[/subresource]` of a request path (names and namespaces left out), for the counters."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]  # drop api/v1 or apis/<group>/<version>
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    resource = parts[0] if parts else "?"
    sub = f"/{parts[2]}" if len(parts) > 2 else ""
    verb = {"GET": "LIST" if len(parts) == 1 else "GET"}.get(method, method)
    return f"{verb} {resource}{sub}"


class Kube:
    """`limiter`, when given, throttles every request but reads (GET): the callers' reads stand in for an informer
    cache, which costs a real controller no requests. `counts` counts requests by `VERB resource[/sub]`."""

    def __init__(self, server: str, token: str, timeout: float = DEFAULT_TIMEOUT, ca_file: str | None = None,
                 limiter: TokenBucket | None = None):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter
        self.counts: Counter[str] = Counter()
        self._session = requests.Session()
        self._session.trust_env = False  # never a proxy from the environment
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.verify = ca_file or False
        self._discovery: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout: float = DEFAULT_TIMEOUT,
                        limiter: TokenBucket | None = None) -> Kube:
        cfg = yaml.safe_load(Path(path).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        ca = cluster.get("certificate-authority")
        return cls(cluster["server"], user["token"], timeout=timeout, ca_file=ca, limiter=limiter)

    # ------------------------------------------------------------------ raw
    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                content_type: str = "application/json", timeout: float | None = None) -> Any:
        url = self.server + path
        if self.limiter is not None and method != "GET":
            self.limiter.take()
        self.counts[_counted_kind(method, path)] += 1  # Counter += under the GIL: no update lost in practice
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        resp = self._session.request(method, url, data=data, params=params,
                                     headers={"Content-Type": content_type, "Accept": "application/json"},
                                     timeout=timeout or self.timeout)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, resp.text, method, path)
        if not resp.content:
            return None
        return resp.json()

    def healthy(self) -> bool:
        try:
            r = self._session.get(self.server + "/readyz", timeout=2)
            return r.status_code == 200
        except requests.RequestException:
            return False

    # ------------------------------------------------------------------ discovery
    def resources(self, group_version: str) -> dict[str, Resource]:
        with self._lock:
            cached = self._discovery.get(group_version)
        if cached:
            return cached
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        found = self.request("GET", path)
        out = {}
        for r in found.get("resources", []):
            if "/" in r["name"]:
                continue
            res = Resource(group_version, r["name"], r["kind"], bool(r["namespaced"]))
            out[r["name"]] = res
            out[r["kind"]] = res
        with self._lock:
            self._discovery[group_version] = out
        return out

    def resource(self, api_version: str, plural_or_kind: str) -> Resource:
        res = self.resources(api_version).get(plural_or_kind)
        if res is None:
            with self._lock:  # maybe a CRD installed since: read discovery again
                self._discovery.pop(api_version, None)
            res = self.resources(api_version).get(plural_or_kind)
        if res is None:
            raise KeyError(f"{api_version} {plural_or_kind}: not served")
        return res

    def for_object(self, obj: dict[str, Any]) -> Resource:
        return self.resource(obj["apiVersion"], obj["kind"])

    # ------------------------------------------------------------------ verbs
    def list(self, res: Resource, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        out = self.request("GET", res.path(namespace), params=params)
        items = out.get("items") or []
        kind = out.get("kind", "").removesuffix("List") or res.kind
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", res.group_version)
            item.setdefault("kind", kind)
        return items

    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", res.path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        res = self.for_object(obj)
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", res.path(ns if res.namespaced else None), obj)

    def replace(self, obj: dict[str, Any], sub: str | None = None) -> dict[str, Any]:
        res = self.for_object(obj)
        meta = obj["metadata"]
        return self.request("PUT", res.path(meta.get("namespace") if res.namespaced else None, meta["name"], sub), obj)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: Any, sub: str | None = None,
              patch_type: str = "application/merge-patch+json") -> dict[str, Any]:
        return self.request("PATCH", res.path(namespace, name, sub), patch, content_type=patch_type)

    def delete(self, res: Resource, namespace: str | None, name: str, uid: str | None = None,
               propagation: str = "Background") -> None:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", res.path(namespace, name), body)
        except ApiError as e:
            if e.status != 404:
                raise

    def apply_manifest(self, obj: dict[str, Any]) -> str:
        """Create, or replace when it exists (like a simple `kubectl apply`); returns what was done."""
        res = self.for_object(obj)
        meta = obj["metadata"]
        ns = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not ns:
            ns = meta["namespace"] = "default"
        existing = self.get(res, ns, meta["name"])
        if existing is None:
            self.request("POST", res.path(ns), obj)
            return "created"
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        self.request("PUT", res.path(ns, meta["name"]), obj)
        return "replaced"


def label_selector_string(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def load_yaml_documents(path: str | Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if isinstance(doc, dict) and doc.get("kind"):
            if doc["kind"].endswith("List") and "items" in doc:
                yield from doc["items"]
            else:
                yield doc


def quote(s: str) -> str:
    return urllib.parse.quote(s, safe="")
