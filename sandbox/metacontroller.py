"""A STAND-IN for Metacontroller's CompositeController, for the local sandbox. It is NOT Metacontroller.

Metacontroller cannot be had from any package registry this project may use, so `make sandbox-up` runs this
small Python controller instead. It reads the CompositeController YAML files (metacontroller/*.yaml) directly
(Metacontroller's own CRD is not installed) and follows Metacontroller's documented behaviour
(docs: ../shared/docs/metacontroller.md, sections cited below) against the real API server:

* triggers (§4.3): parents and their owned children are polled (default every second; a change of any
  resourceVersion — spec, status, children, related objects — enqueues the parent), plus the hook's
  `resyncAfterSeconds` (one shot) and the controller's `resyncPeriodSeconds` (every parent);
* queue (§4.4): `--workers` (default 5) workers; one parent is never synced by two workers at once; a
  failed sync is retried with the client-go default per-item backoff (5 ms doubling, capped at 1000 s);
* API client (§4.4): Metacontroller's `--client-go-qps` 5 and `--client-go-burst` 10 (`--client-qps`,
  `--client-burst`; env SANDBOX_METACONTROLLER_QPS / _BURST), a client-go token bucket on every write. Reads are
  not throttled: the poll and the per-sync reads stand in for Metacontroller's informer cache, which costs it no
  requests. `--stats-file` writes the client's request counts (by verb and resource), the time writes waited for
  a token, and the syncs and hook calls of each controller, every second (the benchmark reads it);
* `--cached-reads` (env SANDBOX_METACONTROLLER_CACHED_READS=1; the benchmark's mode): a sync reads children and
  related objects from the last poll's lists (at most one poll interval old) instead of listing them, as
  Metacontroller reads its informer cache; off, every sync lists them (fresh, O(parents) per sync);
* one sync (§4.5): finalizer `metacontroller.io/compositecontroller-<name>` added first when a finalize hook
  exists; children claimed (owned by the parent's UID, or adopted when an orphan matches the selector);
  customize hook (cached per parent UID + generation, 20 min) fills `related`; the sync hook (or finalize,
  while `deletionTimestamp` is set) is POSTed `{controller, parent, children, related, finalizing}` with every
  child group key present and hook-version v1/v2 object keys (§2.2, §2.3); only a 200 is applied (§4.2);
  `finalized: true` removes the finalizer;
* children (§3.2): the namespace defaults to the parent's; `controller-uid` label under generateSelector;
  every child must match the parent selector; deletes first (Background, UID precondition), then creates
  (last-applied annotation + controller ownerReference, AlreadyExists swallowed) and updates by the child's
  updateStrategy: OnDelete (default) never, Recreate deletes, InPlace PUTs the three-way merge
  (sandbox/apply.py); a child being deleted is never updated; 404/409 swallowed;
* status (§4.1): hook status + `observedGeneration`, PUT to `/status` only when it differs from the live one;
* stateless: nothing is stored; a restart reads everything back from the API server.

A 429 answer requeues the parent after its Retry-After (no backoff, no event).

Not done: Rolling update methods, ETag, hook auth/TLS options, label-selected parents, the events rate limiter.
"""
from __future__ import annotations

import argparse
import copy
import heapq
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .apply import for_create, merge
from .kube import ApiError, Kube, Resource, TokenBucket

log = logging.getLogger("sandbox.metacontroller")

FINALIZER_PREFIX = "metacontroller.io/compositecontroller-"
CUSTOMIZE_CACHE_S = 20 * 60
BACKOFF_BASE_S = 0.005
BACKOFF_MAX_S = 1000.0


class HookFailed(Exception):
    pass


class RetryAfter(Exception):
    """The hook answered 429: requeue after Retry-After (whole seconds or an HTTP date; 0 if absent), no backoff and
    no event (as Metacontroller's hook documentation describes a 429 answer)."""

    def __init__(self, delay: float):
        super().__init__(f"429, retry after {delay}s")
        self.delay = delay


# ---------------------------------------------------------------------------------------------- the queue
class WorkQueue:
    """client-go's workqueue rules: a key queued while it is processed runs once more afterwards, never twice
    at once; add_after for delays; per-key exponential backoff for failures."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._timers: list[tuple[float, int, str]] = []
        self._waiting: dict[str, float] = {}  # key -> when its timer fires (one per key)
        self._seq = 0
        self._failures: dict[str, int] = {}
        self._shutdown = False
        threading.Thread(target=self._timer_loop, daemon=True, name="queue-timers").start()

    def add(self, key: str) -> None:
        with self._cond:
            if key in self._dirty or self._shutdown:
                return
            self._dirty.add(key)
            if key in self._processing:
                return
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        ready = time.monotonic() + delay
        with self._cond:
            # client-go's delaying queue keeps one entry per key: a key already waiting keeps the earlier time.
            # (Without this, every sync's resyncAfterSeconds would start one more resync chain per parent.)
            if key in self._waiting and self._waiting[key] <= ready:
                return
            self._waiting[key] = ready
            self._seq += 1
            heapq.heappush(self._timers, (ready, self._seq, key))
            self._cond.notify_all()

    def add_rate_limited(self, key: str) -> float:
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(BACKOFF_BASE_S * 2 ** n, BACKOFF_MAX_S)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        """Keys waiting to be synced (not those in progress or waiting for a timer)."""
        with self._cond:
            return len(self._queue)

    def get(self) -> str | None:
        with self._cond:
            while not self._queue and not self._shutdown:
                self._cond.wait(timeout=1.0)
            if self._shutdown:
                return None
            key = self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            return key

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def _timer_loop(self) -> None:
        while True:
            with self._cond:
                if self._shutdown:
                    return
                now = time.monotonic()
                due = []
                while self._timers and self._timers[0][0] <= now:
                    ready, _, key = heapq.heappop(self._timers)
                    if self._waiting.get(key) == ready:  # else superseded by an earlier time for the key
                        del self._waiting[key]
                        due.append(key)
                wait = (self._timers[0][0] - now) if self._timers else 1.0
            for key in due:
                self.add(key)
            with self._cond:
                if not due:
                    self._cond.wait(timeout=min(max(wait, 0.001), 1.0))


# ---------------------------------------------------------------------------------------------- config
@dataclass
class Hook:
    url: str
    version: str = "v1"
    timeout_s: float = 10.0


@dataclass
class ChildRule:
    api_version: str
    resource: str
    method: str  # OnDelete, Recreate, InPlace


@dataclass
class CompositeController:
    name: str
    raw: dict[str, Any]
    parent_api_version: str
    parent_resource: str
    children: list[ChildRule]
    sync: Hook | None
    finalize: Hook | None
    customize: Hook | None
    generate_selector: bool
    resync_period_s: float | None

    @property
    def finalizer(self) -> str:
        return FINALIZER_PREFIX + self.name


def _duration_s(text: str | None) -> float:
    if not text:
        return 10.0
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else c
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    return total if total > 0 else 10.0


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def _hook(spec: dict[str, Any] | None, service_urls: dict[str, str]) -> Hook | None:
    if not spec:
        return None
    webhook = spec.get("webhook") or {}
    url = webhook.get("url")
    if not url:
        svc = webhook.get("service") or {}
        key = f"{svc.get('name')}.{svc.get('namespace')}:{svc.get('port', 80)}"
        base = service_urls.get(key)
        if base is None:
            base = f"{svc.get('protocol', 'http')}://{svc.get('name')}.{svc.get('namespace')}:{svc.get('port', 80)}"
        url = base.rstrip("/") + webhook.get("path", "")
    return Hook(url, spec.get("version") or "v1", _duration_s(webhook.get("timeout")))


def load_controllers(paths: list[Path], service_urls: dict[str, str]) -> list[CompositeController]:
    out = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CompositeController":
                continue
            spec = doc["spec"]
            hooks = spec.get("hooks")
            if not hooks:
                raise SystemExit(f"{path}: no hooks defined")
            rules = [ChildRule(c["apiVersion"], c["resource"], ((c.get("updateStrategy") or {}).get("method")
                                                                 or "OnDelete"))
                     for c in spec.get("childResources") or []]
            period = spec.get("resyncPeriodSeconds")
            out.append(CompositeController(
                doc["metadata"]["name"], doc, spec["parentResource"]["apiVersion"], spec["parentResource"]["resource"],
                rules, _hook(hooks.get("sync"), service_urls), _hook(hooks.get("finalize"), service_urls),
                _hook(hooks.get("customize"), service_urls), bool(spec.get("generateSelector")),
                max(1.0, float(period)) if period else None))
    return out


# ---------------------------------------------------------------------------------------------- helpers
def group_key(kind: str, api_version: str) -> str:
    return f"{kind}.{api_version}"  # "Deployment.apps/v1", "ConfigMap.v1"


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in (obj["metadata"].get("ownerReferences") or []) if r.get("controller")), None)


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


# ---------------------------------------------------------------------------------------------- controller
@dataclass
class _ParentView:
    fingerprint: tuple[Any, ...] = ()


@dataclass
class Runner:
    kube: Kube
    cc: CompositeController
    workers: int = 5
    poll_s: float = 1.0
    http: requests.Session = field(default_factory=requests.Session)
    # Read children and related objects from the last poll's lists instead of listing them on every sync (as
    # Metacontroller reads its informer cache): for many parents, where a LIST per sync and child resource is O(N).
    cached_reads: bool = False

    def __post_init__(self) -> None:
        self.http.trust_env = False
        self.queue = WorkQueue()
        self.parent_res = self.kube.resource(self.cc.parent_api_version, self.cc.parent_resource)
        self.child_res: list[tuple[ChildRule, Resource]] = [
            (r, self.kube.resource(r.api_version, r.resource)) for r in self.cc.children]
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._customize_cache: dict[tuple[str, int], tuple[float, list[dict[str, Any]]]] = {}
        self._cache_lock = threading.Lock()
        self._listed: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (group/version, plural) -> last poll's list
        self._related_listed: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self.syncs = 0
        self.hook_calls: dict[str, int] = {}
        self.hook_seconds = 0.0
        self.controller_obj = {"metadata": copy.deepcopy(self.cc.raw.get("metadata") or {}),
                               "spec": copy.deepcopy(self.cc.raw.get("spec") or {}), "status": {}}

    # -------------------------------------------------------------- loops
    def start(self) -> None:
        for i in range(self.workers):
            threading.Thread(target=self._worker, daemon=True, name=f"{self.cc.name}-worker-{i}").start()
        threading.Thread(target=self._poll_loop, daemon=True, name=f"{self.cc.name}-poll").start()
        if self.cc.resync_period_s:
            threading.Thread(target=self._resync_loop, daemon=True, name=f"{self.cc.name}-resync").start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()

    def _resync_loop(self) -> None:
        assert self.cc.resync_period_s
        while not self._stop.wait(self.cc.resync_period_s):
            for key in list(self._seen):
                self.queue.add(key)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as e:  # the API server may be restarting: keep polling
                log.warning("%s: poll failed: %s", self.cc.name, e)
            self._stop.wait(self.poll_s)

    def poll_once(self) -> None:
        parents = self.kube.list(self.parent_res)
        children_by_owner: dict[str, list[str]] = {}
        for _, res in self.child_res:
            listed = self.kube.list(res)
            self._listed[(res.group_version, res.plural)] = listed
            for child in listed:
                ref = controller_ref(child)
                if ref:
                    children_by_owner.setdefault(ref["uid"], []).append(f"{child['kind']}/{child['metadata']['name']}@{_rv(child)}")
        related_rvs = self._related_fingerprints(parents)
        current = set()
        for parent in parents:
            meta = parent["metadata"]
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            current.add(key)
            fp = (meta["uid"], _rv(parent), tuple(sorted(children_by_owner.get(meta["uid"], []))),
                  related_rvs.get(meta["uid"], ()))
            if self._seen.get(key) != fp:
                self._seen[key] = fp
                self.queue.add(key)
        for key in list(self._seen):
            if key not in current:
                del self._seen[key]

    def _related_fingerprints(self, parents: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
        """resourceVersions of each parent's related objects, by the cached customize rules (so a change of a
        related object re-syncs the parents interested in it)."""
        out: dict[str, tuple[str, ...]] = {}
        if not self.cc.customize:
            return out
        lists: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._related_listed = lists  # the cache of cached_reads: filled below, replaced by the next poll
        for parent in parents:
            meta = parent["metadata"]
            with self._cache_lock:
                hit = self._customize_cache.get((meta["uid"], int(meta.get("generation") or 0)))
            if not hit:
                continue
            rvs = []
            for rule in hit[1]:
                try:
                    objs = self._related_for_rule(parent, rule, lists)
                except Exception:
                    continue
                rvs += [f"{o['kind']}/{o['metadata'].get('namespace')}/{o['metadata']['name']}@{_rv(o)}" for o in objs]
            out[meta["uid"]] = tuple(sorted(rvs))
        return out

    def _worker(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                resync_after = self.sync(key)
                self.queue.forget(key)
                if resync_after and resync_after > 0:
                    self.queue.add_after(key, resync_after)
            except RetryAfter as e:
                self.queue.add_after(key, e.delay)
            except Exception as e:
                delay = self.queue.add_rate_limited(key)
                log.warning("%s: failed to sync %s (retry in %.2fs): %s", self.cc.name, key, delay, e)
                self._event_sync_error(key, str(e))
            finally:
                self.queue.done(key)

    # -------------------------------------------------------------- one sync
    def sync(self, key: str) -> float | None:
        namespace, name = key.split("/", 1)
        parent = self.kube.get(self.parent_res, namespace or None, name)
        if parent is None:
            return None
        self.syncs += 1
        meta = parent["metadata"]
        deleting = bool(meta.get("deletionTimestamp"))
        finalizers = list(meta.get("finalizers") or [])
        ours = self.cc.finalizer
        if self.cc.finalize and not deleting and ours not in finalizers:
            parent = self._set_finalizers(parent, finalizers + [ours])
        elif not self.cc.finalize and ours in finalizers:
            parent = self._set_finalizers(parent, [f for f in finalizers if f != ours])
        meta = parent["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if deleting and self.cc.finalize and ours not in finalizers:
            return None  # already finalized; Kubernetes deletes it once other finalizers are gone
        selector = self._selector(parent)
        children = self._claim_children(parent, selector)
        related = self._related(parent)
        finalizing = deleting and self.cc.finalize is not None
        hook = self.cc.finalize if finalizing else self.cc.sync
        if hook is None:
            raise HookFailed("sync hook nil/not defined")
        request = {"controller": self.controller_obj, "parent": parent, "children": self._children_map(children, hook, parent),
                   "related": related, "finalizing": finalizing}
        response = self._call(hook, request)
        resync_after = response.get("resyncAfterSeconds")
        if response.get("finalized") and ours in finalizers:
            parent = self._set_finalizers(parent, [f for f in finalizers if f != ours])
        desired = response.get("children") or []
        desired = self._prepare_desired(parent, desired, selector)
        gc_finalizer = any(f in ("foregroundDeletion", "orphan") for f in (parent["metadata"].get("finalizers") or []))
        errors = []
        if not deleting or (finalizing and not gc_finalizer):
            errors = self._manage_children(parent, children, desired)
        if not (response.get("finalized") and deleting):
            self._update_status(parent, response.get("status"))
        if errors:
            raise HookFailed("; ".join(errors))
        return float(resync_after) if isinstance(resync_after, (int, float)) else None

    def _set_finalizers(self, parent: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
        meta = parent["metadata"]
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                 {"op": "replace" if "finalizers" in meta else "add", "path": "/metadata/finalizers", "value": finalizers}]
        try:
            return self.kube.patch(self.parent_res, meta.get("namespace"), meta["name"], patch,
                                   patch_type="application/json-patch+json")
        except ApiError as e:
            if e.status == 404 and not finalizers:
                return parent
            raise

    def _selector(self, parent: dict[str, Any]) -> dict[str, Any]:
        if self.cc.generate_selector:
            return {"matchLabels": {"controller-uid": parent["metadata"]["uid"]}}
        selector = (parent.get("spec") or {}).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            raise HookFailed(".spec.selector must have either matchLabels, matchExpressions, or both")
        return selector

    def _claim_children(self, parent: dict[str, Any], selector: dict[str, Any]) -> list[tuple[ChildRule, Resource, dict[str, Any]]]:
        meta = parent["metadata"]
        ns = meta.get("namespace")
        out = []
        for rule, res in self.child_res:
            for child in self._children_of(res, ns if self.parent_res.namespaced else None):
                cmeta = child["metadata"]
                ref = controller_ref(child)
                labels = cmeta.get("labels") or {}
                if ref is not None:
                    if ref.get("uid") != meta["uid"]:
                        continue
                    if not selector_matches(selector, labels) and not meta.get("deletionTimestamp"):
                        refs = [r for r in cmeta.get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
                        self._put_owner_refs(res, child, refs)  # release
                        continue
                    out.append((rule, res, child))
                elif (selector_matches(selector, labels) and not cmeta.get("deletionTimestamp")
                      and not meta.get("deletionTimestamp")):
                    refs = (cmeta.get("ownerReferences") or []) + [self._owner_ref(parent)]
                    adopted = self._put_owner_refs(res, child, refs)
                    if adopted is not None:
                        out.append((rule, res, adopted))
        return out

    def _children_of(self, res: Resource, namespace: str | None) -> list[dict[str, Any]]:
        listed = self._listed.get((res.group_version, res.plural)) if self.cached_reads else None
        if listed is None:
            return self.kube.list(res, namespace)
        return [o for o in listed if namespace is None or o["metadata"].get("namespace") == namespace]

    def _put_owner_refs(self, res: Resource, child: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any] | None:
        obj = copy.deepcopy(child)
        obj["metadata"]["ownerReferences"] = refs
        try:
            return self.kube.request("PUT", res.path(obj["metadata"].get("namespace"), obj["metadata"]["name"]), obj)
        except ApiError as e:
            if e.status in (404, 409):
                return None
            raise

    def _owner_ref(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": parent["metadata"]["name"],
                "uid": parent["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _object_key(self, obj: dict[str, Any], hook: Hook, parent: dict[str, Any]) -> str:
        ns = obj["metadata"].get("namespace")
        if hook.version == "v2":
            return f"{ns}/{obj['metadata']['name']}" if ns else obj["metadata"]["name"]
        if not parent["metadata"].get("namespace") and ns:
            return f"{ns}/{obj['metadata']['name']}"
        return obj["metadata"]["name"]

    def _children_map(self, children: list[tuple[ChildRule, Resource, dict[str, Any]]], hook: Hook,
                      parent: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {group_key(res.kind, rule.api_version): {} for rule, res in self.child_res}
        for rule, res, child in children:
            out[group_key(res.kind, rule.api_version)][self._object_key(child, hook, parent)] = child
        return out

    # -------------------------------------------------------------- customize / related
    def _customize_rules(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.cc.customize
        meta = parent["metadata"]
        ckey = (meta["uid"], int(meta.get("generation") or 0))
        now = time.monotonic()
        with self._cache_lock:
            hit = self._customize_cache.get(ckey)
            if hit and now - hit[0] < CUSTOMIZE_CACHE_S:
                return hit[1]
        response = self._call(self.cc.customize, {"controller": self.controller_obj, "parent": parent})
        rules = response.get("relatedResources") or []
        for rule in rules:
            if rule.get("names") and (rule.get("labelSelector") is not None or rule.get("namespaceSelector") is not None):
                raise HookFailed("customize: names together with a selector")
        with self._cache_lock:
            self._customize_cache = {k: v for k, v in self._customize_cache.items() if now - v[0] < CUSTOMIZE_CACHE_S}
            self._customize_cache[ckey] = (now, rules)
        return rules

    def _related_for_rule(self, parent: dict[str, Any], rule: dict[str, Any],
                          lists: dict[tuple[str, str, str], list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
        res = self.kube.resource(rule["apiVersion"], rule["resource"])
        pns = parent["metadata"].get("namespace")
        version = self.cc.customize.version if self.cc.customize else "v1"
        ns = rule.get("namespace")
        if pns and version == "v1":
            if ns and ns != pns:
                raise HookFailed(f"customize: namespace {ns!r} not allowed for a namespaced parent (hook v1)")
            if not res.namespaced:
                return []
            ns = pns
        lkey = (res.group_version, res.plural, ns or "")
        if lists is not None and lkey in lists:
            objs = lists[lkey]
        else:
            objs = self.kube.list(res, ns if res.namespaced else None)
            if lists is not None:
                lists[lkey] = objs
        names = rule.get("names")
        selector = rule.get("labelSelector")
        out = []
        for o in objs:
            if names and o["metadata"]["name"] not in names:
                continue
            if selector is not None and not selector_matches(selector, o["metadata"].get("labels") or {}):
                continue
            out.append(o)
        return out

    def _related(self, parent: dict[str, Any]) -> dict[str, Any]:
        if not self.cc.customize:
            return {}
        related: dict[str, dict[str, Any]] = {}
        for rule in self._customize_rules(parent):
            res = self.kube.resource(rule["apiVersion"], rule["resource"])
            group = related.setdefault(group_key(res.kind, rule["apiVersion"]), {})
            for o in self._related_for_rule(parent, rule, self._related_listed if self.cached_reads else None):
                group[self._object_key(o, self.cc.customize, parent)] = o
        return related

    # -------------------------------------------------------------- hook call
    def _call(self, hook: Hook, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body, sort_keys=True, separators=(",", ":"))
        started = time.monotonic()
        try:
            resp = self.http.post(hook.url, data=data, headers={"Content-Type": "application/json"},
                                  timeout=hook.timeout_s)
        except requests.RequestException as e:
            raise HookFailed(f"http error: Post {hook.url!r}: {e}") from e
        finally:
            path = hook.url.split("/", 3)[-1]
            self.hook_calls[path] = self.hook_calls.get(path, 0) + 1
            self.hook_seconds += time.monotonic() - started
        if resp.status_code == 429:
            raise RetryAfter(_retry_after(resp.headers.get("Retry-After")))
        if resp.status_code != 200:
            raise HookFailed(f"unsupported status code: {resp.status_code} body: {resp.text[:500]}")
        try:
            out = resp.json()
        except ValueError as e:
            raise HookFailed(f"can't unmarshal webhookResponse: {e}") from e
        if not isinstance(out, dict):
            raise HookFailed("can't unmarshal webhookResponse: not an object")
        if hook.version == "v2":
            unknown = set(out) - {"status", "children", "resyncAfterSeconds", "finalized", "relatedResources"}
            if unknown:
                raise HookFailed(f"strict decoding: unknown fields {sorted(unknown)}")
        return out

    # -------------------------------------------------------------- children
    def _prepare_desired(self, parent: dict[str, Any], desired: list[dict[str, Any]], selector: dict[str, Any]) -> list[dict[str, Any]]:
        pns = parent["metadata"].get("namespace")
        out = []
        for child in desired:
            child = copy.deepcopy(child)
            meta = child.setdefault("metadata", {})
            if not meta.get("namespace") and pns:
                meta["namespace"] = pns
            if self.cc.generate_selector:
                meta.setdefault("labels", {}).setdefault("controller-uid", parent["metadata"]["uid"])
            if not selector_matches(selector, meta.get("labels") or {}):
                raise HookFailed(f"labels on desired child {child.get('kind')} {meta.get('name')} don't match parent selector")
            out.append(child)
        return out

    def _manage_children(self, parent: dict[str, Any], observed: list[tuple[ChildRule, Resource, dict[str, Any]]],
                         desired: list[dict[str, Any]]) -> list[str]:
        errors: list[str] = []
        want: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for child in desired:
            want[(child["apiVersion"], child["kind"], child["metadata"].get("namespace") or "", child["metadata"]["name"])] = child
        have = {(rule.api_version, res.kind, c["metadata"].get("namespace") or "", c["metadata"]["name"]): (rule, res, c)
                for rule, res, c in observed}
        # deletes first
        for key, (_rule, res, child) in sorted(have.items()):
            if key in want or child["metadata"].get("deletionTimestamp"):
                continue
            try:
                log.info("%s: delete %s %s/%s", self.cc.name, res.kind, key[2], key[3])
                self.kube.delete(res, key[2] or None, key[3], uid=child["metadata"]["uid"])
            except ApiError as e:
                if e.status != 409:
                    errors.append(f"delete {res.kind} {key[3]}: {e}")
        methods = {(r.api_version, res.kind): r.method for r, res in self.child_res}
        for key, child in sorted(want.items()):
            try:
                if key not in have:
                    obj = for_create(child)
                    obj["metadata"].setdefault("ownerReferences", []).append(self._owner_ref(parent))
                    log.info("%s: create %s %s/%s", self.cc.name, key[1], key[2], key[3])
                    try:
                        self.kube.create(obj)
                    except ApiError as e:
                        if e.status != 409:  # AlreadyExists is swallowed
                            raise
                    continue
                rule, res, observed_child = have[key]
                if observed_child["metadata"].get("deletionTimestamp"):
                    continue
                merged = merge(observed_child, child)
                if merged == observed_child:
                    continue
                method = methods.get((key[0], key[1]), "OnDelete")
                if method in ("OnDelete",):
                    continue
                if method in ("Recreate", "RollingRecreate"):
                    log.info("%s: recreate %s %s/%s", self.cc.name, key[1], key[2], key[3])
                    self.kube.delete(res, key[2] or None, key[3], uid=observed_child["metadata"]["uid"])
                    continue
                log.info("%s: update %s %s/%s", self.cc.name, key[1], key[2], key[3])
                try:
                    self.kube.request("PUT", res.path(key[2] or None, key[3]), merged)
                except ApiError as e:
                    if e.status not in (404, 409):
                        raise
            except ApiError as e:
                errors.append(f"{key[1]} {key[3]}: {e}")
            except KeyError as e:
                errors.append(f"{key[1]} {key[3]}: {e}")
        return errors

    # -------------------------------------------------------------- status
    def _update_status(self, parent: dict[str, Any], status: Any) -> None:
        new = copy.deepcopy(status) if isinstance(status, dict) else {}
        new["observedGeneration"] = parent["metadata"].get("generation")
        meta = parent["metadata"]
        for _ in range(5):
            live = self.kube.get(self.parent_res, meta.get("namespace"), meta["name"])
            if live is None:
                return
            if (live.get("status") or {}) == new:
                return
            live["status"] = new
            try:
                self.kube.request("PUT", self.parent_res.path(meta.get("namespace"), meta["name"], "status"), live)
                log.info("%s: status of %s/%s written", self.cc.name, meta.get("namespace"), meta["name"])
                return
            except ApiError as e:
                if e.status == 404:
                    return
                if e.status != 409:
                    raise
                time.sleep(0.05)
        # 409 after the retries: swallowed (metacontroller.md §4.1)

    def _event_sync_error(self, key: str, message: str) -> None:
        namespace, name = key.split("/", 1)
        try:
            parent = self.kube.get(self.parent_res, namespace or None, name)
            if parent is None:
                return
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            event = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": f"{name}.", "namespace": namespace or "default"},
                     "involvedObject": {"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": name,
                                        "namespace": namespace, "uid": parent["metadata"]["uid"],
                                        "resourceVersion": parent["metadata"].get("resourceVersion")},
                     "reason": "SyncError", "message": f"Sync error: {message[:900]}", "type": "Warning",
                     "source": {"component": "metacontroller-standin"}, "firstTimestamp": now, "lastTimestamp": now,
                     "count": 1}
            self.kube.request("POST", f"/api/v1/namespaces/{namespace or 'default'}/events", event)
        except Exception as e:  # best effort
            log.debug("event failed: %s", e)


# ---------------------------------------------------------------------------------------------- main
def write_stats(path: Path, kube: Kube, runners: list[Runner]) -> None:
    """The API client's request counts and the controllers' syncs and hook calls, replaced atomically."""
    limiter = kube.limiter
    stats = {"time": time.time(), "requests": dict(kube.counts),
             "client": {"qps": limiter.qps, "burst": limiter.burst, "waited_s": round(limiter.waited_s, 3)}
             if limiter else None,
             "controllers": {r.cc.name: {"syncs": r.syncs, "hook_calls": dict(r.hook_calls),
                                         "hook_seconds": round(r.hook_seconds, 3), "queue": len(r.queue)}
                             for r in runners}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats, sort_keys=True))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A stand-in for Metacontroller's CompositeController (not Metacontroller).")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--controller", action="append", required=True, help="a CompositeController YAML file")
    ap.add_argument("--service-url", action="append", default=[],
                    help="NAME.NAMESPACE:PORT=http://127.0.0.1:PORT: where a webhook.service is reached")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("SANDBOX_METACONTROLLER_WORKERS", "5")),
                    help="workers per controller (Metacontroller's --workers, default 5)")
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--client-qps", type=float, default=float(os.environ.get("SANDBOX_METACONTROLLER_QPS", "5")),
                    help="writes per second of the API client (Metacontroller's --client-go-qps, default 5)")
    ap.add_argument("--client-burst", type=int, default=int(os.environ.get("SANDBOX_METACONTROLLER_BURST", "10")),
                    help="burst of the API client (Metacontroller's --client-go-burst, default 10)")
    ap.add_argument("--stats-file", help="write request counts, syncs and hook calls here every second")
    ap.add_argument("--cached-reads", action="store_true",
                    default=os.environ.get("SANDBOX_METACONTROLLER_CACHED_READS", "") not in ("", "0", "false"),
                    help="read children and related objects from the last poll (like Metacontroller's cache)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    service_urls = dict(s.split("=", 1) for s in args.service_url)
    limiter = TokenBucket(args.client_qps, args.client_burst) if args.client_qps > 0 else None
    kube = Kube.from_kubeconfig(args.kubeconfig, limiter=limiter)
    controllers = load_controllers([Path(p) for p in args.controller], service_urls)
    runners = []
    for cc in controllers:
        while True:
            try:
                runner = Runner(kube, cc, workers=args.workers, poll_s=args.poll_interval,
                                cached_reads=args.cached_reads)
                break
            except Exception as e:  # CRDs not yet served
                log.warning("%s: waiting for the parent resource: %s", cc.name, e)
                time.sleep(1)
        runner.start()
        runners.append(runner)
        log.info("started %s: parent %s %s, %d child rules, sync %s", cc.name, cc.parent_api_version,
                 cc.parent_resource, len(cc.children), cc.sync.url if cc.sync else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        if args.stats_file:
            write_stats(Path(args.stats_file), kube, runners)
    for r in runners:
        r.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
