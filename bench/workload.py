"""The payloads the benchmark sends: a typical FlinkDeployment, as Metacontroller would POST it.

* `first_request(i)`: a new CR (no status, no children) — the first sync; needs no Flink REST call.
* `steady_request(i)`: the same CR after it reached STABLE — status written by earlier syncs, and the three
  children (ConfigMap, Service, JobManager + TaskManager Deployments) as Metacontroller observes them: with
  its last-applied annotation, owner reference, uid, resourceVersion and the Deployment status. Produced by
  driving the pure core through the simulated world of the tests (tests/sim.py, with the in-memory Flink of
  hooks/fake_flink.py) until STABLE, so the status is exactly what our own syncs write. A steady-state sync
  needs two Flink REST calls (GET /jobs/overview, and GET /overview for the registered TaskManagers since issue 16);
  `observation(i)` makes them against the same fake Flink.

Deployment `i` differs in name, uid and a config value, so 10,000 of them are 10,000 distinct objects.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from hooks import flink_io
from hooks.app import core_fingerprint
from hooks.fake_flink import FakeFlink
from sync import settled
from sync.defaults import BUILTIN_OPERATOR_DEFAULTS
from sync.deployment import plan_observation, sync_deployment
from sync.model import CoreSettings, FlinkObservation
from sync.records import settled_of
from tests.metacontroller import CHILD_GROUPS, LAST_APPLIED
from tests.sim import World

from . import flink_stub
from .flink_stub import job_id_for as stub_job_id

NAMESPACE = "flink"

# The core's settings as `flink-sync serve` has them with its defaults (no defaults file, no validator plugin):
# the benchmark's in-process figures and the records in its payloads are those of the server it measures.
SETTINGS = CoreSettings(operator_defaults=dict(BUILTIN_OPERATOR_DEFAULTS), progress_interval_s=5.0,
                        stable_interval_s=60.0, memo_key=core_fingerprint())

# A typical application deployment: savepoint upgrades, checkpointing, a little podTemplate.
TYPICAL_SPEC: dict[str, Any] = {
    "image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
    "flinkConfiguration": {
        "taskmanager.numberOfTaskSlots": "2",
        "state.backend.type": "rocksdb",
        "state.savepoints.dir": "s3://flink-state/savepoints",
        "state.checkpoints.dir": "s3://flink-state/checkpoints",
        "execution.checkpointing.interval": "30 s",
        "execution.checkpointing.timeout": "10 min",
        "restart-strategy.type": "exponential-delay",
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": "9249",
    },
    "podTemplate": {"metadata": {"labels": {"team": "data", "cost-center": "analytics"}},
                    "spec": {"containers": [{"name": "flink-main-container",
                                             "env": [{"name": "TZ", "value": "UTC"}]}]}},
    "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
    "taskManager": {"resource": {"memory": "4096m", "cpu": 2}},
    "job": {"jarURI": "local:///opt/flink/usrlib/orders-enrichment.jar", "entryClass": "com.example.OrdersJob",
            "args": ["--topic", "orders", "--group", "enrichment"], "parallelism": 4, "upgradeMode": "savepoint"},
}


def name_of(i: int) -> str:
    return f"orders-{i:05d}"


def new_parent(i: int = 0) -> dict[str, Any]:
    spec = copy.deepcopy(TYPICAL_SPEC)
    spec["flinkConfiguration"]["pipeline.name"] = f"orders enrichment {i}"
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
            "metadata": {"name": name_of(i), "namespace": NAMESPACE, "uid": f"4f1c2a9e-0000-4000-8000-{i:012d}",
                         "generation": 1, "resourceVersion": str(100_000 + i),
                         "creationTimestamp": "2025-11-24T15:00:00Z",
                         "labels": {"app.kubernetes.io/part-of": "orders"}},
            "spec": spec}


def controller() -> dict[str, Any]:
    return {"metadata": {"name": "flink-sync-flinkdeployment"}, "spec": {}, "status": {}}


def first_request(i: int = 0) -> dict[str, Any]:
    return {"controller": controller(), "parent": new_parent(i),
            "children": {group: {} for group in CHILD_GROUPS.values()}, "related": {}, "finalizing": False}


def _as_observed(child: dict[str, Any], parent: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    """A child the way Metacontroller reads it back from the API server."""
    obj = copy.deepcopy(child)
    meta = obj["metadata"]
    meta["namespace"] = NAMESPACE
    meta.setdefault("labels", {})["controller-uid"] = parent["metadata"]["uid"]
    meta.setdefault("annotations", {})[LAST_APPLIED] = json.dumps(child, sort_keys=True)
    meta["ownerReferences"] = [{"apiVersion": parent["apiVersion"], "kind": "FlinkDeployment",
                                "name": parent["metadata"]["name"], "uid": parent["metadata"]["uid"],
                                "controller": True, "blockOwnerDeletion": True}]
    meta["uid"] = f"child-{child['kind'].lower()}-{meta['name']}"
    meta["resourceVersion"] = "200123"
    meta["creationTimestamp"] = "2025-11-24T15:00:05Z"
    if status is not None:
        obj["status"] = status
    return obj


def _deployment_status(replicas: int) -> dict[str, Any]:
    return {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                            "lastUpdateTime": "2025-11-24T15:01:00Z", "lastTransitionTime": "2025-11-24T15:01:00Z",
                            "message": "Deployment has minimum availability."},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                            "lastUpdateTime": "2025-11-24T15:01:00Z", "lastTransitionTime": "2025-11-24T15:00:05Z",
                            "message": "ReplicaSet has successfully progressed."}]}


def _stable_world(i: int) -> World:
    world = World(new_parent(i))
    world.run_until(lambda w: w.lifecycle() == "STABLE"
                    and w.status.get("jobStatus", {}).get("state") == "RUNNING", limit=60)
    for _ in range(3):  # a few quiet resyncs, as a real STABLE deployment has had
        world.tick()
        world.sync()
    assert world.lifecycle() == "STABLE", world.summary()
    return world


class SteadyTemplate:
    """One STABLE deployment, re-labelled cheaply for deployment `i` (the sim is too slow to run 10,000 times).

    Every string that carries the name, uid or job id of deployment 0 is rewritten for `i` in the JSON text,
    so each of the 10,000 steady payloads is exactly what that deployment's own syncs would have produced."""

    def __init__(self) -> None:
        world = _stable_world(0)
        self.world = world
        parent = copy.deepcopy(world.parent)
        children: dict[str, dict[str, Any]] = {group: {} for group in CHILD_GROUPS.values()}
        for (kind, name), child in sorted(world.children.items()):
            status = _deployment_status(child["spec"].get("replicas", 1)) if kind == "Deployment" else None
            children[CHILD_GROUPS[kind]][name] = _as_observed(child, parent, status)
        self.request = {"controller": controller(), "parent": parent, "children": children, "related": {},
                        "finalizing": False}
        self.job_id = parent["status"]["jobStatus"]["jobId"]
        self.start_time = int(parent["status"]["jobStatus"].get("startTime") or 1)
        self.now_ms = world.now_ms
        # What Metacontroller sends once the deployment settled: the status with the record of its fixed point
        # (sync/settled.py), which one more resync's answer adds (the one status write of settling).
        answer = sync_deployment(parent, children, self.observation_of(self.request, 0), self.now_ms, SETTINGS)
        record = settled_of(answer.status)
        assert record is not None, "a STABLE deployment's resync is a fixed point the core keeps"
        self.record_digest = record.digest
        parent["status"] = answer.status
        self._text = json.dumps(self.request, separators=(",", ":"))

    def request_for(self, i: int) -> dict[str, Any]:
        return json.loads(self.text_for(i))

    def text_for(self, i: int) -> str:
        if i == 0:
            return self._text
        text = self._text.replace(name_of(0), name_of(i)).replace(
            new_parent(0)["metadata"]["uid"], new_parent(i)["metadata"]["uid"]).replace(
            self.job_id, job_id_for(self, i)).replace(
            "orders enrichment 0", f"orders enrichment {i}")
        # deployment i's own record: the digest of its own inputs (the record itself is not one of them)
        request = json.loads(text)
        digest = settled.digest(request["parent"], request["children"], self.observation_of(request, i), SETTINGS,
                                [], [])
        assert digest is not None
        return text.replace(self.record_digest, digest)

    def flink(self, i: int = 0) -> FakeFlink:
        """Deployment i's Flink cluster (hooks/fake_flink.py): its job RUNNING since the recorded start time."""
        cluster = FakeFlink(name_of(i))
        cluster.start_job(job_id_for(self, i)).start_time = self.start_time
        cluster.taskmanagers = flink_stub.TASKMANAGERS  # as the stub answers GET /overview
        return cluster

    def observation(self, i: int = 0) -> FlinkObservation:
        """What the hook learns from Flink on deployment i's steady resync (the hooks' own Flink I/O, against
        the fake): GET /jobs/overview and GET /overview (the registered TaskManagers)."""
        return self.observation_of(self.request_for(i), i)

    def observation_of(self, request: dict[str, Any], i: int) -> FlinkObservation:
        observation = flink_io.observe(self.flink(i), plan_observation(request["parent"], request["children"]))
        assert observation is not None, "a STABLE deployment's resync observes its cluster"
        return observation


def job_id_for(template: SteadyTemplate, i: int) -> str:
    """Deployment i's job id: a per-deployment stand-in of the same shape (the stub Flink answers with it)."""
    return stub_job_id(template.job_id, name_of(i))


__all__ = ["SETTINGS", "SteadyTemplate", "first_request", "name_of", "new_parent"]
