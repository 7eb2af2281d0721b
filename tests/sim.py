"""A deterministic, in-process world for state-machine tests: Metacontroller's apply semantics, a kubelet,
and a small model of Flink's REST behaviour (jobs, savepoint triggers, cancel, checkpoints). It calls the
pure core directly, so hundreds of generated scenarios run in seconds. The same flows run against a real
Flink in the `flink`-marked end-to-end tests; this model exists to explore orderings and faults.

Flink behaviours modelled (from flink-local.md): a fixed job id from `$internal.pipeline.job-id`; restore from
`execution.savepoint.path`; savepoint triggers identified by a client trigger id (a repeated trigger id returns
the first result); stop-with-savepoint ends the job FINISHED; cancel ends it CANCELED; externalized checkpoints
retained on cancellation; the JobManager stays up after the job ends (shutdown-on-application-finish=false).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from sync.deployment import plan_observation, sync_deployment
from sync.model import Action, FlinkObservation, JobInfo, SyncResult, TriggerResult

from .helpers import SETTINGS
from .metacontroller import CHILD_GROUPS


def _conf(children: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, str]:
    cm = children.get(("ConfigMap", f"flink-config-{name}"))
    if cm is None:
        return {}
    data = cm["data"]
    if "flink-conf.yaml" in data:
        return dict(line.split(": ", 1) for line in data["flink-conf.yaml"].splitlines() if ": " in line)
    from sync.flinkconf import flatten
    return flatten(yaml.safe_load(data["config.yaml"]))


@dataclass
class FakeJob:
    job_id: str
    state: str = "RUNNING"
    value: int = 0            # the keyed counter: proves state continues across restores
    restored_from: str | None = None
    checkpoint: str | None = None


@dataclass
class FakeCluster:
    name: str
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    up: bool = False
    start_ticks: int = 1


@dataclass
class World:
    """One FlinkDeployment, its children, and the Flink cluster those children would run."""
    parent: dict[str, Any]
    now_ms: int = 1_764_000_000_000
    children: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    cluster: FakeCluster | None = None
    savepoints: dict[str, int] = field(default_factory=dict)   # location -> counter value
    savepoint_polls: int = 1            # polls before a trigger completes
    fail_savepoints: bool = False
    flink_down: bool = False
    lose_status_writes: bool = False
    history: list[SyncResult] = field(default_factory=list)
    jobs_started: list[str] = field(default_factory=list)
    fail_new_jobs: bool = False
    stale_checkpoints: bool = False   # /jobs/{id}/checkpoints is cached ~3 s: after a stop it may name an old checkpoint

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
        if self.cluster is None or getattr(self.cluster, "marker", None) != marker:
            conf = _conf(self.children, self.name)
            cluster = FakeCluster(self.name)
            cluster.marker = marker  # type: ignore[attr-defined]
            job_id = conf.get("$internal.pipeline.job-id")
            if job_id:
                restore = conf.get("execution.savepoint.path")
                value = self.savepoints.get(restore, 0) if restore else 0
                cluster.jobs[job_id] = FakeJob(job_id, "FAILED" if self.fail_new_jobs else "RUNNING", value, restore)
                self.jobs_started.append(job_id)
            self.cluster = cluster

    def tick(self) -> None:
        """Time passes: the cluster becomes ready, running jobs count and checkpoint."""
        self.now_ms += 1000
        if self.cluster is None:
            return
        if self.cluster.start_ticks > 0:
            self.cluster.start_ticks -= 1
            if self.cluster.start_ticks == 0:
                self.cluster.up = True
            return
        for job in self.cluster.jobs.values():
            if job.state == "RUNNING":
                job.value += 1
                location = f"file:/cp/{job.job_id}/chk-{job.value}"
                self.savepoints[location] = job.value
                job.checkpoint = location

    def _deployment_status(self, deployment: dict[str, Any]) -> dict[str, Any]:
        if deployment["metadata"]["name"] == self.name and not (self.cluster and self.cluster.up):
            return {"replicas": 1, "availableReplicas": 0}
        replicas = deployment["spec"]["replicas"]
        return {"replicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas}

    def _observe(self) -> FlinkObservation | None:
        plan = plan_observation(self.parent, self.request_children())
        if not plan.query_cluster:
            return None
        cluster = self.cluster
        if self.flink_down or cluster is None or not cluster.up:
            return FlinkObservation(reachable=False, error="connection refused")
        jobs = tuple(JobInfo(j.job_id, self.name, j.state, 1) for j in cluster.jobs.values())
        trigger = None
        if plan.trigger_id:
            record = cluster.triggers.get(plan.trigger_id)
            if record is None:
                trigger = TriggerResult("UNKNOWN_TRIGGER")
            elif record["polls"] > 0:
                record["polls"] -= 1
                trigger = TriggerResult("IN_PROGRESS")
            else:
                trigger = TriggerResult(record["state"], record.get("location"), record.get("failure"))
        job = cluster.jobs.get(plan.job_id or "")
        latest = job.checkpoint if job is not None and job.state in ("FINISHED", "CANCELED", "FAILED") else None
        if latest and self.stale_checkpoints:
            latest = "file:/cp/stale/chk-1"  # subsumed long ago: restoring from it fails
        return FlinkObservation(reachable=True, flink_version="1.20.3", jobs=jobs, trigger=trigger,
                                latest_checkpoint_path=latest,
                                failure_cause="boom" if job is not None and job.state == "FAILED" else None)

    def _act(self, action: Action) -> None:
        cluster = self.cluster
        if self.flink_down or cluster is None or not cluster.up:
            return  # the call fails; the core re-issues it on a later sync
        p = action.params
        job = cluster.jobs.get(p.get("job_id", ""))
        if action.kind in ("trigger_savepoint", "stop_with_savepoint"):
            if p["trigger_id"] in cluster.triggers:
                return  # Flink answers a repeated trigger id with the first operation
            if job is None or job.state != "RUNNING" or self.fail_savepoints:
                cluster.triggers[p["trigger_id"]] = {"state": "FAILED", "failure": "savepoint failed", "polls": 0}
                return
            location = f"file:/sp/savepoint-{job.job_id[:6]}-{len(self.savepoints)}"
            self.savepoints[location] = job.value
            cluster.triggers[p["trigger_id"]] = {"state": "COMPLETED", "location": location, "polls": self.savepoint_polls}
            if action.kind == "stop_with_savepoint":
                job.state = "FINISHED"
                job.checkpoint = location
        elif action.kind == "cancel":
            if job is not None and job.state not in ("FINISHED", "CANCELED", "FAILED"):
                job.state = "CANCELED"

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
        observation = self._observe()
        result = sync_deployment(copy.deepcopy(self.parent), self.request_children(), observation, self.now_ms,
                                 SETTINGS, finalizing=finalizing)
        for action in result.actions:
            self._act(action)
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

    def lifecycle(self) -> str | None:
        return self.status.get("lifecycleState")

    def running_job(self) -> FakeJob | None:
        if self.cluster is None:
            return None
        return next((j for j in self.cluster.jobs.values() if j.state == "RUNNING"), None)

    def summary(self) -> str:
        job = self.running_job()
        return (f"lifecycle={self.lifecycle()} jm={self.status.get('jobManagerDeploymentStatus')} "
                f"job={self.status.get('jobStatus', {}).get('state')} running={job.job_id[:6] if job else None} "
                f"internal={ {k: v for k, v in self.status.get('flinkSync', {}).items() if k != 'cluster'} } "
                f"error={self.status.get('error', '')[:120]}")
