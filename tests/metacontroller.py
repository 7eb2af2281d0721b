"""A Metacontroller emulator for tests: it sends hook requests the way Metacontroller does and applies the
responses with Metacontroller's semantics (metacontroller.md §2–§4):

* request `{controller, parent, children, related, finalizing}`, every child group key present even when empty,
  object keys `name` (hook v1) or `namespace/name` (v2);
* only a 200 is applied; anything else applies nothing (the parent is retried);
* children missing from the response are deleted; new ones are created with the last-applied annotation and a
  controller ownerReference; existing ones are updated in place (InPlace), keeping the object's `status`;
* the parent's whole `.status` is replaced by the response's, with `observedGeneration` set to the generation.

The "kubelet" is pluggable: a callback that fills each Deployment's `status` (a real pod runner in the
real-Flink tests, a fixed "available" status elsewhere).
"""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

CHILD_GROUPS = {"ConfigMap": "ConfigMap.v1", "Service": "Service.v1", "Deployment": "Deployment.apps/v1",
                "Ingress": "Ingress.networking.k8s.io/v1",
                "FlinkStateSnapshot": "FlinkStateSnapshot.flink.apache.org/v1beta1"}
CHILD_API = {"ConfigMap": "v1", "Service": "v1", "Deployment": "apps/v1", "Ingress": "networking.k8s.io/v1",
             "FlinkStateSnapshot": "flink.apache.org/v1beta1"}
LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"


class HookError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"hook answered {status}: {body[:300]}")
        self.status = status
        self.body = body


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0, session: requests.Session | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = (session or requests).post(url, data=json.dumps(body), timeout=timeout,
                                          headers={"Content-Type": "application/json", **(headers or {})})
    if response.status_code != 200:
        raise HookError(response.status_code, response.text)
    return response.json()


@dataclass
class Cluster:
    """The API-server side: parents and their children."""
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, ns, name)
    clock: Callable[[], float] = time.time

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace", "default"), meta["name"])] = obj

    def children_of(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        uid = parent["metadata"]["uid"]
        return [o for o in self.objects.values()
                if any(ref.get("uid") == uid and ref.get("controller") for ref in o["metadata"].get("ownerReferences", []))]


@dataclass
class Controller:
    """One CompositeController: its hook URLs and how to reach them."""
    cluster: Cluster
    kind: str
    sync_url: str
    finalize_url: str | None = None
    customize_url: str | None = None
    hook_version: str = "v1"
    child_kinds: tuple[str, ...] = ()
    kubelet: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    session: requests.Session = field(default_factory=requests.Session)
    headers: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    # ------------------------------------------------------------------ requests
    def _key(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace', 'default')}/{meta['name']}" if self.hook_version == "v2" else meta["name"]

    def request_for(self, parent: dict[str, Any], finalizing: bool = False) -> dict[str, Any]:
        children: dict[str, dict[str, Any]] = {CHILD_GROUPS[k]: {} for k in self.child_kinds}
        for child in self.cluster.children_of(parent):
            if self.kubelet is not None and child["kind"] == "Deployment":
                child["status"] = self.kubelet(child) or {}
            children[CHILD_GROUPS[child["kind"]]][self._key(child)] = copy.deepcopy(child)
        return {"controller": {"metadata": {"name": f"{self.kind.lower()}-controller"}, "spec": {}, "status": {}},
                "parent": copy.deepcopy(parent), "children": children, "related": self._related(parent),
                "finalizing": finalizing}

    def _related(self, parent: dict[str, Any]) -> dict[str, Any]:
        if not self.customize_url:
            return {}
        rules = post_json(self.customize_url, {"controller": {}, "parent": parent}, session=self.session,
                          headers=self.headers)["relatedResources"]
        related: dict[str, dict[str, Any]] = {}
        namespace = parent["metadata"].get("namespace", "default")
        kinds = {"flinkdeployments": "FlinkDeployment", "flinksessionjobs": "FlinkSessionJob", "pods": "Pod"}
        for rule in rules:
            kind = kinds[rule["resource"]]
            group = related.setdefault(f"{kind}.{rule['apiVersion']}", {})
            wanted = ((rule.get("labelSelector") or {}).get("matchLabels") or {}).items()
            for (k, ns, name), obj in self.cluster.objects.items():
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if k == kind and ns == namespace and (not rule.get("names") or name in rule["names"]) \
                        and wanted <= labels.items():
                    group[self._key(obj)] = copy.deepcopy(obj)
        return related

    # ------------------------------------------------------------------ one sync
    def sync(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """One sync (or finalize, when the parent is being deleted). Returns the hook's response."""
        parent = self.cluster.get(self.kind, namespace, name)
        assert parent is not None, f"{self.kind} {namespace}/{name} does not exist"
        finalizing = bool(parent["metadata"].get("deletionTimestamp"))
        url = self.finalize_url if finalizing and self.finalize_url else self.sync_url
        self.calls += 1
        response = post_json(url, self.request_for(parent, finalizing), session=self.session, headers=self.headers)
        assert set(response) <= {"status", "children", "resyncAfterSeconds", "finalized"}, response.keys()
        if "finalized" in response:
            assert finalizing, "finalized must only be answered while finalizing"
        self._apply_children(parent, response.get("children") or [])
        status = copy.deepcopy(response.get("status") or {})
        status["observedGeneration"] = parent["metadata"].get("generation", 1)
        parent["status"] = status
        if finalizing and response.get("finalized"):
            for child in self.cluster.children_of(parent):
                self.cluster.objects.pop((child["kind"], child["metadata"].get("namespace", "default"),
                                          child["metadata"]["name"]))
            self.cluster.objects.pop((self.kind, namespace, name))
        return response

    def _apply_children(self, parent: dict[str, Any], desired: list[dict[str, Any]]) -> None:
        namespace = parent["metadata"].get("namespace", "default")
        uid = parent["metadata"]["uid"]
        wanted = {}
        for child in desired:
            assert child["kind"] in self.child_kinds, f"undeclared child kind {child['kind']}"
            assert child["apiVersion"] == CHILD_API[child["kind"]], child["apiVersion"]
            ns = child["metadata"].get("namespace") or namespace
            assert ns == namespace, "a namespaced parent can only own children in its namespace"
            wanted[(child["kind"], ns, child["metadata"]["name"])] = child
        for existing in self.cluster.children_of(parent):
            key = (existing["kind"], existing["metadata"].get("namespace", "default"), existing["metadata"]["name"])
            if key not in wanted:
                self.cluster.objects.pop(key)
        for key, child in wanted.items():
            obj = copy.deepcopy(child)
            meta = obj["metadata"]
            meta["namespace"] = key[1]
            meta.setdefault("labels", {})["controller-uid"] = uid
            meta.setdefault("annotations", {})[LAST_APPLIED] = json.dumps(child, sort_keys=True)
            meta["ownerReferences"] = [{"apiVersion": parent["apiVersion"], "kind": self.kind,
                                        "name": parent["metadata"]["name"], "uid": uid, "controller": True,
                                        "blockOwnerDeletion": True}]
            old = self.cluster.objects.get(key)
            if old is not None:
                obj["status"] = old.get("status", {})  # a child's status is never set by the parent's hook
                meta["uid"] = old["metadata"]["uid"]
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            else:
                meta["uid"] = f"{key[0]}-{key[2]}-{self.calls}"
                meta["creationTimestamp"] = self.cluster.clock()
            self.cluster.objects[key] = obj

    # ------------------------------------------------------------------ helpers for tests
    def children_snapshot(self, name: str, namespace: str = "default") -> str:
        parent = self.cluster.get(self.kind, namespace, name)
        return json.dumps(sorted((c["kind"], c["metadata"]["name"], json.dumps({k: v for k, v in c.items() if k != "status"},
                                                                                 sort_keys=True))
                                 for c in self.cluster.children_of(parent)))

    def settle(self, name: str, namespace: str = "default", max_syncs: int = 10) -> int:
        """Sync until the status and children stop changing; returns how many syncs that took."""
        for count in range(1, max_syncs + 1):
            parent = self.cluster.get(self.kind, namespace, name)
            before = (json.dumps(parent.get("status"), sort_keys=True), self.children_snapshot(name, namespace))
            self.sync(name, namespace)
            parent = self.cluster.get(self.kind, namespace, name)
            after = (json.dumps(parent.get("status"), sort_keys=True), self.children_snapshot(name, namespace))
            if before == after:
                return count
        raise AssertionError(f"{self.kind} {namespace}/{name} did not settle within {max_syncs} syncs")


def create(cluster: Cluster, resource: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    obj = copy.deepcopy(resource)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("uid", f"uid-{meta['name']}")
    meta["generation"] = 1
    meta["creationTimestamp"] = cluster.clock()
    cluster.put(obj)
    return obj


def update_spec(cluster: Cluster, kind: str, name: str, change: Callable[[dict[str, Any]], None],
                namespace: str = "default") -> None:
    """Edit the spec like `kubectl apply`/`patch` would: the generation moves on when the spec changes."""
    obj = cluster.get(kind, namespace, name)
    assert obj is not None
    before = json.dumps(obj.get("spec"), sort_keys=True)
    change(obj["spec"])
    if json.dumps(obj.get("spec"), sort_keys=True) != before:
        obj["metadata"]["generation"] += 1


def delete(cluster: Cluster, kind: str, name: str, namespace: str = "default") -> None:
    obj = cluster.get(kind, namespace, name)
    assert obj is not None
    obj["metadata"]["deletionTimestamp"] = cluster.clock()


def controllers(url: str, cluster: Cluster, version: str = "v1",
                kubelet: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> tuple[Controller, Controller]:
    """The two CompositeControllers of metacontroller/ against a hook server at `url`: FlinkDeployment (with
    its child kinds) and FlinkSessionJob. `kubelet` reports Deployment status (default: all available)."""
    deployments = Controller(cluster, "FlinkDeployment", f"{url}/sync/flinkdeployment", f"{url}/finalize/flinkdeployment",
                             f"{url}/customize/flinkdeployment", version,
                             ("ConfigMap", "Service", "Deployment", "Ingress", "FlinkStateSnapshot"),
                             kubelet=kubelet or available)
    session_jobs = Controller(cluster, "FlinkSessionJob", f"{url}/sync/flinksessionjob", f"{url}/finalize/flinksessionjob",
                              f"{url}/customize/flinksessionjob", version, ("FlinkStateSnapshot",))
    return deployments, session_jobs


def available(deployment: dict[str, Any]) -> dict[str, Any]:
    """A kubelet stand-in for tests without Flink: every Deployment is fully available."""
    replicas = deployment["spec"].get("replicas", 1)
    return {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}]}
