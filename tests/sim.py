"""A deterministic, in-process world for state-machine tests: Metacontroller's apply semantics, a kubelet,
and the in-memory Flink of hooks/fake_flink.py (jobs, savepoint triggers, cancel, checkpoints), reached through
the hooks' own Flink I/O (`flink_io.observe` and `flink_io.execute`). It calls the pure core directly, so
hundreds of generated scenarios run in seconds. The same flows run against a real Flink in the
`flink`-marked end-to-end tests; this model exists to explore orderings and faults.

Faults: `flink_down`, `fail_savepoints`, `savepoint_polls`, `stale_checkpoints`, `fail_new_jobs`,
`lose_status_writes`, and `cluster.triggers.clear()` (the JobManager forgot its savepoint operations).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from hooks import flink_io, submit
from hooks.fake_flink import FakeFlink, FakeJob, boot
from hooks.flink_api import FlinkApi
from hooks.settings import Settings
from sync import sessionjob
from sync.deployment import plan_observation, sync_deployment
from sync.model import Action, FlinkObservation, SyncResult

from .helpers import SETTINGS
from .metacontroller import CHILD_GROUPS

__all__ = ["FakeFlink", "FakeJob", "SessionCluster", "World"]


def _jar_in_memory(uri: str, **_: object) -> tuple[str, bytes]:
    return uri.rsplit("/", 1)[-1], b"PK"


@dataclass
class SessionCluster:
    """A session cluster for FlinkSessionJob tests: the same in-memory Flink (hooks/fake_flink.py), reached through
    the hooks' own Flink I/O and submission (`flink_io.observe`, `flink_io.execute`, `submit.submit_job`) as the
    server reaches Flink; jars are fetched from memory."""
    flink: FakeFlink = field(default_factory=lambda: FakeFlink("session"))

    def observe(self, parent: dict[str, Any], session: dict[str, Any] | None) -> FlinkObservation | None:
        return flink_io.observe(self.flink, sessionjob.plan_observation(parent, session))

    def execute(self, actions: list[Action]) -> None:
        flink_io.execute(self.flink, actions, submitter=self._submit)

    @staticmethod
    def _submit(client: FlinkApi, params: dict[str, Any]) -> str | None:
        return submit.submit_job(client, params, Settings(), fetcher=_jar_in_memory)


@dataclass
class World:
    """One FlinkDeployment, its children, and the Flink cluster those children would run."""
    parent: dict[str, Any]
    now_ms: int = 1_764_000_000_000
    children: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    cluster: FakeFlink | None = None
    savepoints: dict[str, int] = field(default_factory=dict)   # location -> counter value
    savepoint_polls: int = 1            # polls before a trigger completes
    fail_savepoints: bool = False
    flink_down: bool = False
    lose_status_writes: bool = False
    history: list[SyncResult] = field(default_factory=list)
    jobs_started: list[str] = field(default_factory=list)
    fail_new_jobs: bool = False
    stale_checkpoints: bool = False   # /jobs/{id}/checkpoints is cached ~3 s: after a stop it may name an old checkpoint
    pods: list[dict[str, Any]] = field(default_factory=list)  # the cluster's pods as the customize hook relates them

    @property
    def name(self) -> str:
        return self.parent["metadata"]["name"]

    # ------------------------------------------------------------------ the Flink side
    def _kubelet(self) -> None:
        """Start/stop the fake cluster to match the JM Deployment, like pods would."""
        jm = self.children.get(("Deployment", self.name))
        if jm is None:
            self.cluster = None
            return
        marker = json.dumps(jm["spec"]["template"], sort_keys=True)
        if self.cluster is None or self.cluster.marker != marker:
            cluster = boot(self.name, self.children.values(), self.savepoints, start_ticks=1,
                           failure="boom" if self.fail_new_jobs else None)
            cluster.marker = marker
            self.jobs_started.extend(cluster.jobs)
            self.cluster = cluster

    def tick(self) -> None:
        """Time passes: the cluster becomes ready, running jobs count and checkpoint."""
        self.now_ms += 1000
        if self.cluster is not None:
            self.cluster.tick()

    def flink(self) -> FakeFlink:
        """The Flink REST API the hooks would reach now, with this world's faults (no cluster: nothing answers)."""
        cluster = self.cluster if self.cluster is not None else FakeFlink(self.name, up=False)
        cluster.down = self.flink_down
        cluster.fail_savepoints = self.fail_savepoints
        cluster.savepoint_polls = self.savepoint_polls
        cluster.stale_checkpoints = self.stale_checkpoints
        return cluster

    def _deployment_status(self, deployment: dict[str, Any]) -> dict[str, Any]:
        if deployment["metadata"]["name"] == self.name and not (self.cluster and self.cluster.up):
            return {"replicas": 1, "availableReplicas": 0}
        replicas = deployment["spec"]["replicas"]
        return {"replicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas}

    def _observe(self) -> FlinkObservation | None:
        """What the hook would learn from Flink now: the planned calls, made by hooks/flink_io.py."""
        return flink_io.observe(self.flink(), plan_observation(self.parent, self.request_children()))

    # ------------------------------------------------------------------ Metacontroller
    def request_children(self) -> dict[str, dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {group: {} for group in CHILD_GROUPS.values()}
        for (kind, name), obj in self.children.items():
            obj = copy.deepcopy(obj)
            if kind == "Deployment":
                obj["status"] = self._deployment_status(obj)
            groups[CHILD_GROUPS[kind]][name] = obj
        return groups

    def sync(self, finalizing: bool = False) -> SyncResult:
        # The hooks' own Flink I/O (hooks/flink_io.py) against the fake Flink; a failed call is retried by the
        # core on a later sync, as in the server (which also reports it in status.error).
        observation = self._observe()
        result = sync_deployment(copy.deepcopy(self.parent), self.request_children(), observation, self.now_ms,
                                 SETTINGS, finalizing=finalizing, pods=copy.deepcopy(self.pods))
        return self.apply(result)

    def apply(self, result: SyncResult) -> SyncResult:
        """What follows a sync: the hooks carry out its actions, Metacontroller applies its children and writes
        its status (unless status writes are being lost), the kubelet starts what the children ask for."""
        flink_io.execute(self.flink(), result.actions)
        self.children = {(c["kind"], c["metadata"]["name"]): c for c in result.children}
        if not self.lose_status_writes:
            status = copy.deepcopy(result.status)
            status["observedGeneration"] = self.parent["metadata"]["generation"]
            self.parent["status"] = status
        self._kubelet()
        self.history.append(result)
        return result

    def step(self, n: int = 1) -> SyncResult:
        result = self.sync()
        for _ in range(n - 1):
            self.tick()
            result = self.sync()
        return result

    def run_until(self, predicate, limit: int = 60) -> SyncResult:
        for _ in range(limit):
            result = self.sync()
            if predicate(self):
                return result
            self.tick()
        raise AssertionError(f"not reached after {limit} syncs: {self.summary()}")

    def edit(self, change) -> None:
        before = json.dumps(self.parent["spec"], sort_keys=True)
        change(self.parent["spec"])
        if json.dumps(self.parent["spec"], sort_keys=True) != before:
            self.parent["metadata"]["generation"] += 1

    # ------------------------------------------------------------------ reading state
    @property
    def status(self) -> dict[str, Any]:
        return self.parent.get("status") or {}

    def cluster_children(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The cluster's children (the FlinkStateSnapshot children record savepoints, not the cluster)."""
        return {key: child for key, child in self.children.items() if key[0] != "FlinkStateSnapshot"}

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """The FlinkStateSnapshot children, by name."""
        return {name: child for (kind, name), child in self.children.items() if kind == "FlinkStateSnapshot"}

    def lifecycle(self) -> str | None:
        return self.status.get("lifecycleState")

    def running_job(self) -> FakeJob | None:
        return self.cluster.running_job() if self.cluster is not None else None

    def summary(self) -> str:
        job = self.running_job()
        return (f"lifecycle={self.lifecycle()} jm={self.status.get('jobManagerDeploymentStatus')} "
                f"job={self.status.get('jobStatus', {}).get('state')} running={job.job_id[:6] if job else None} "
                f"internal={ {k: v for k, v in self.status.get('flinkSync', {}).items() if k != 'cluster'} } "
                f"error={self.status.get('error', '')[:120]}")
