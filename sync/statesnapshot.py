"""The FlinkStateSnapshot state machine (Apache operator 1.10+, FLIP-446), as a pure function.

One sync takes the snapshot, the job it references (resolved by the hook from Metacontroller's related
objects: `SnapshotTarget`), what Flink answered about the snapshot's trigger (`SnapshotPoll`) and the time, and
returns the status, the REST calls to make (`Action`s) and Events. The states are Apache's:

    TRIGGER_PENDING -> IN_PROGRESS -> COMPLETED | FAILED | ABANDONED

* A savepoint with `alreadyExists: true` is COMPLETED at once with its path; nothing is triggered.
* A trigger id is derived from the snapshot's uid and its failure count, and recorded in `status.flinkSync` one
  sync **before** the REST call that sends it (Flink answers a repeated client-chosen trigger id with the first
  operation), so a lost status write never starts a second snapshot.
* A job that is not RUNNING (by the referenced resource's recorded `status.jobStatus.state`, as Apache checks
  it) gives ABANDONED, before the trigger and while it is in progress.
* A failure (Flink's error, or a checkpoint asked of a Flink before 1.17) counts in `failures`; below
  `backoffLimit` (-1: no limit) the snapshot goes back to TRIGGER_PENDING and is triggered anew after
  10 s x 2^(failures-1) (capped at `MAX_BACKOFF_MS`), with a new trigger id; past it, FAILED.
* Deletion (`finalize`): a COMPLETED savepoint with `disposeOnDelete` is disposed of through Flink's
  `/savepoint-disposal` when its job runs; otherwise the resource is released with an Event saying the data
  stays. Checkpoints are never disposed of (Flink owns them). An IN_PROGRESS snapshot is polled to its end first.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from . import flinkconf, versions
from .ids import derive_id
from .model import Action, Event, SavepointState, SyncResult
from .spec import SpecError, _describe
from .status import error_json
from .validation import SAVEPOINT_DIR_KEYS

TRIGGER_PENDING, IN_PROGRESS, COMPLETED, FAILED, ABANDONED = (
    "TRIGGER_PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "ABANDONED")
TERMINAL_STATES = (COMPLETED, FAILED, ABANDONED)
BACKOFF_BASE_MS = 10_000
#: Apache doubles without a cap; an unlimited retry (backoffLimit -1) waiting days between attempts helps nobody.
MAX_BACKOFF_MS = 3_600_000
#: The first Flink with `POST /jobs/{id}/checkpoints` (FLINK-27101), as Apache checks it.
CHECKPOINT_TRIGGER_SINCE = "v1_17"


# ---------------------------------------------------------------------------------------------- the spec
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JobReference(_Model):
    kind: Literal["FlinkDeployment", "FlinkSessionJob"] | None = None
    name: str | None = None


class SavepointSpec(_Model):
    path: str | None = None
    formatType: Literal["CANONICAL", "NATIVE", "UNKNOWN"] = "CANONICAL"
    disposeOnDelete: bool = True
    alreadyExists: bool = False


class FlinkStateSnapshotSpec(_Model):
    """`spec` of a FlinkStateSnapshot with Apache's defaults (the CRD declares none; the Java model applies them)."""
    jobReference: JobReference | None = None
    savepoint: SavepointSpec | None = None
    checkpoint: dict[str, Any] | None = None
    backoffLimit: int = -1

    @property
    def kind_word(self) -> str:
        return "savepoint" if self.savepoint is not None else "checkpoint"


def parse_snapshot_spec(raw: Any) -> FlinkStateSnapshotSpec:
    """The spec, checked by Apache's rules (DefaultValidator.validateStateSnapshot) in their order; a
    `SpecError` names the field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError("spec", "must be an object")
    try:
        spec = FlinkStateSnapshotSpec.model_validate(raw)
    except ValidationError as error:
        raise _describe(error) from None
    if (spec.savepoint is None) == (spec.checkpoint is None):
        raise SpecError("spec", "exactly one of savepoint or checkpoint must be set")
    if spec.savepoint is not None and spec.savepoint.alreadyExists:
        return spec  # a record of an existing savepoint needs no job
    if spec.jobReference is None or not spec.jobReference.name:
        raise SpecError("spec.jobReference", "a job reference (kind and name) is required")
    if spec.jobReference.kind is None:
        raise SpecError("spec.jobReference.kind", "required: FlinkDeployment or FlinkSessionJob")
    if spec.savepoint is not None and spec.savepoint.formatType == "UNKNOWN":
        raise SpecError("spec.savepoint.formatType", "UNKNOWN cannot be sent to Flink; use CANONICAL or NATIVE")
    return spec


# ---------------------------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class SnapshotTarget:
    """The job a snapshot references, as its resource records it (resolved by `resolve_target`)."""
    kind: str
    name: str
    job_id: str | None
    running: bool
    cluster: str | None          # the FlinkDeployment whose REST API serves the job (None: not found)
    flink_version: str | None
    config: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.name} ({self.kind})"


def resolve_target(spec: FlinkStateSnapshotSpec, deployments: dict[str, dict[str, Any]],
                   session_jobs: dict[str, dict[str, Any]], namespace: str,
                   operator_defaults: dict[str, str]) -> SnapshotTarget | None:
    """The referenced job, from the FlinkDeployments and FlinkSessionJobs of the snapshot's namespace that
    Metacontroller related (by name). None when the reference names nothing there."""
    ref = spec.jobReference
    if ref is None or not ref.name or ref.kind is None:
        return None
    if ref.kind == "FlinkDeployment":
        target = deployments.get(ref.name)
        cluster: dict[str, Any] | None = target
    else:
        target = session_jobs.get(ref.name)
        cluster_name = ((target or {}).get("spec") or {}).get("deploymentName")
        cluster = deployments.get(cluster_name) if isinstance(cluster_name, str) else None
    if target is None:
        return None
    job_status = (target.get("status") or {}).get("jobStatus") or {}
    cluster_spec = (cluster or {}).get("spec") or {}
    version = cluster_spec.get("flinkVersion") if isinstance(cluster_spec.get("flinkVersion"), str) else None
    configs = [cluster_spec.get("flinkConfiguration")]
    if ref.kind == "FlinkSessionJob":  # the session job's own config over its cluster's (FLINK-39814)
        configs.append((target.get("spec") or {}).get("flinkConfiguration"))
    config = flinkconf.effective_user_config(operator_defaults, namespace, version,
                                             *[c if isinstance(c, dict) else None for c in configs])
    job_id = job_status.get("jobId") if isinstance(job_status.get("jobId"), str) else None
    return SnapshotTarget(kind=ref.kind, name=ref.name, job_id=job_id,
                          running=job_status.get("state") == "RUNNING" and bool(job_id),
                          cluster=(cluster.get("metadata") or {}).get("name") if cluster else None,
                          flink_version=version, config=config)


# ---------------------------------------------------------------------------------------------- Flink's answer
@dataclass(frozen=True)
class SnapshotPollPlan:
    """The REST call that reports an IN_PROGRESS snapshot: GET /jobs/{job}/savepoints|checkpoints/{trigger}."""
    kind: Literal["savepoint", "checkpoint"]
    job_id: str
    trigger_id: str
    cluster: str


@dataclass(frozen=True)
class SnapshotPoll:
    """What Flink said about the trigger. `location` is the savepoint's path, or the checkpoint's external
    path ("" when its details could not be read). `unreachable`: no answer (the next sync asks again)."""
    state: SavepointState
    location: str | None = None
    failure: str | None = None
    unreachable: str | None = None


def plan_poll(parent: dict[str, Any]) -> SnapshotPollPlan | None:
    """The poll an IN_PROGRESS snapshot needs, from its recorded status alone (or None)."""
    status = parent.get("status") or {}
    record = status.get("flinkSync") or {}
    if status.get("state") != IN_PROGRESS or not isinstance(record, dict):
        return None
    trigger_id, job_id, cluster = status.get("triggerId"), record.get("jobId"), record.get("cluster")
    if not (isinstance(trigger_id, str) and isinstance(job_id, str) and isinstance(cluster, str)):
        return None
    kind: Literal["savepoint", "checkpoint"] = "checkpoint" if "checkpoint" in (parent.get("spec") or {}) \
        and (parent.get("spec") or {}).get("savepoint") is None else "savepoint"
    return SnapshotPollPlan(kind, job_id, trigger_id, cluster)


# ---------------------------------------------------------------------------------------------- one sync
def has_checkpoint_trigger(flink_version: str | None) -> bool:
    return versions.is_known(flink_version) and versions.at_least(str(flink_version), CHECKPOINT_TRIGGER_SINCE)


def iso(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff_ms(failures: int) -> int:
    """10 s x 2^(failures-1): 10, 20, 40 s ... (at most MAX_BACKOFF_MS)."""
    return min(BACKOFF_BASE_MS << min(max(failures - 1, 0), 20), MAX_BACKOFF_MS)


@dataclass
class _Snapshot:
    parent: dict[str, Any]
    target: SnapshotTarget | None
    poll: SnapshotPoll | None
    now_ms: int
    progress_s: float
    reconcile_s: float
    status: dict[str, Any] = field(init=False)
    result: SyncResult = field(init=False)

    def __post_init__(self) -> None:
        self.status = copy.deepcopy(self.parent.get("status") or {})
        if self.status.get("state") is None:
            self.status.update({"state": TRIGGER_PENDING, "failures": 0})
        self.status.pop("observedGeneration", None)
        self.result = SyncResult(status=self.status, children=[])

    @property
    def record(self) -> dict[str, Any]:
        record = self.status.get("flinkSync")
        return record if isinstance(record, dict) else {}

    @property
    def failures(self) -> int:
        value = self.status.get("failures")
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    def event(self, reason: str, message: str) -> None:
        self.result.events.append(Event(reason, message, "Warning", component="Snapshot"))

    def wait(self, seconds: float) -> None:
        self.result.resync_after_seconds = max(seconds, 0.1)

    # ------------------------------------------------------------------ transitions
    def complete(self, path: str) -> None:
        self.status.update({"state": COMPLETED, "path": path, "resultTimestamp": iso(self.now_ms)})
        self.status.pop("error", None)
        self.status.pop("flinkSync", None)

    def abandon(self, spec: FlinkStateSnapshotSpec) -> None:
        target = self.target
        why = "was not found" if target is None else "is not running"
        name = target.describe() if target else f"{spec.jobReference.name if spec.jobReference else None}"
        message = f"Snapshot abandoned: the referenced job {name} {why}"
        self.status.update({"state": ABANDONED, "path": None, "error": message, "resultTimestamp": iso(self.now_ms)})
        self.status.pop("flinkSync", None)
        self.event("SnapshotAbandoned", message)

    def fail(self, spec: FlinkStateSnapshotSpec, message: str) -> None:
        """Apache's failure rule: count it, then retry after the backoff, or FAILED past backoffLimit."""
        failures = self.failures + 1
        self.status.update({"failures": failures, "resultTimestamp": iso(self.now_ms),
                            "error": error_json("ReconciliationException", message)})
        self.event("SavepointError" if spec.savepoint is not None else "CheckpointError", message)
        if 0 <= spec.backoffLimit < failures:
            self.status["state"] = FAILED
            self.status.pop("flinkSync", None)
            self.result.resync_after_seconds = None
            return
        delay = backoff_ms(failures)
        self.status["state"] = TRIGGER_PENDING
        self.status["flinkSync"] = {"retryAt": self.now_ms + delay}
        self.wait(delay / 1000)

    # ------------------------------------------------------------------ steps
    def trigger_pending(self, spec: FlinkStateSnapshotSpec) -> None:
        savepoint = spec.savepoint
        if savepoint is not None and savepoint.alreadyExists:
            self.status["triggerTimestamp"] = iso(self.now_ms)
            self.complete(savepoint.path)  # type: ignore[arg-type]  # Apache records a null path too
            return
        target = self.target
        if target is None:
            ref = spec.jobReference
            namespace = (self.parent.get("metadata") or {}).get("namespace") or "default"
            self.validation_error(SpecError("spec.jobReference", f"target {ref.kind if ref else None} "
                                            f"{namespace}/{ref.name if ref else None} was not found"))
            return
        if not target.running:
            self.abandon(spec)
            return
        retry_at = self.record.get("retryAt")
        if isinstance(retry_at, int) and retry_at > self.now_ms:
            self.wait((retry_at - self.now_ms) / 1000)
            return
        if target.cluster is None:
            self.fail(spec, f"the FlinkDeployment of the session job {target.describe()} was not found")
            return
        if savepoint is None and not has_checkpoint_trigger(target.flink_version):
            self.fail(spec, f"checkpoints can be triggered only on Flink 1.17 and later "
                            f"(the job runs flinkVersion {target.flink_version})")
            return
        self.trigger(spec, target)

    def trigger(self, spec: FlinkStateSnapshotSpec, target: SnapshotTarget) -> None:
        """Record the trigger id, and send it on the next sync (once the record came back in the request)."""
        uid = (self.parent.get("metadata") or {}).get("uid") or (self.parent.get("metadata") or {}).get("name")
        trigger_id = derive_id(uid, "snapshot", self.failures)
        planned = {"triggerId": trigger_id, "jobId": target.job_id, "cluster": target.cluster}
        incoming = (self.parent.get("status") or {}).get("flinkSync") or {}
        if any(incoming.get(k) != v for k, v in planned.items()):
            self.status["flinkSync"] = planned
            self.wait(self.progress_s)
            return
        if spec.savepoint is not None:
            directory = spec.savepoint.path or flinkconf.get_first(target.config, *SAVEPOINT_DIR_KEYS)
            self.result.actions.append(Action("trigger_savepoint", {
                "job_id": target.job_id, "trigger_id": trigger_id, "target_dir": directory,
                "format_type": spec.savepoint.formatType}))
        else:
            self.result.actions.append(Action("trigger_checkpoint", {
                "job_id": target.job_id, "trigger_id": trigger_id, "checkpoint_type": "FULL"}))
        self.status.update({"state": IN_PROGRESS, "triggerId": trigger_id, "triggerTimestamp": iso(self.now_ms)})
        self.wait(self.progress_s)

    def in_progress(self, spec: FlinkStateSnapshotSpec) -> None:
        target, poll = self.target, self.poll
        if target is None or not target.running or target.job_id != self.record.get("jobId"):
            self.abandon(spec)
            return
        self.wait(self.progress_s)
        if poll is None or poll.unreachable is not None or poll.state == "IN_PROGRESS":
            return  # asked again on the next sync
        if poll.state == "COMPLETED" and poll.location is not None:
            if spec.checkpoint is not None and not poll.location:
                self.event("CheckpointError", "the checkpoint completed but its path could not be read "
                                              "(it is older than web.checkpoints.history?)")
            self.complete(poll.location)
            self.result.resync_after_seconds = None
            return
        failure = poll.failure or ("Flink no longer knows the trigger (the JobManager restarted?)"
                                   if poll.state == "UNKNOWN_TRIGGER" else f"the {spec.kind_word} failed")
        self.fail(spec, failure)

    def validation_error(self, error: SpecError) -> None:
        message = str(error)
        if self.status.get("error") != error_json("ValidationException", message):
            self.event("ValidationError", message)
        self.status["error"] = error_json("ValidationException", message)
        self.wait(self.reconcile_s)

    def finalize(self, spec: FlinkStateSnapshotSpec) -> None:
        """Deletion: dispose of a completed savepoint through Flink when that is asked for and possible."""
        self.result.finalized = True
        if spec.checkpoint is not None or spec.savepoint is None or not spec.savepoint.disposeOnDelete:
            return
        if spec.jobReference is None or not spec.jobReference.name:
            return
        if self.status.get("state") == IN_PROGRESS:
            self.in_progress(spec)  # wait for the savepoint's end: a path then exists to dispose of
            if self.status.get("state") == IN_PROGRESS:
                self.result.finalized = False
                return
        path = self.status.get("path")
        if self.status.get("state") != COMPLETED or not isinstance(path, str) or not path:
            return
        target = self.target
        if target is None or not target.running or target.cluster is None:
            why = "was not found" if target is None else "is not running"
            self.event("CleanupFailed", f"The savepoint {path} was not disposed of and stays: the referenced job "
                                        f"{target.describe() if target else spec.jobReference.name} {why}")
            return
        self.result.actions.append(Action("dispose_savepoint", {"path": path}))
        self.result.resync_after_seconds = None


def sync_snapshot(parent: dict[str, Any], target: SnapshotTarget | None, poll: SnapshotPoll | None, now_ms: int,
                  *, finalizing: bool = False, progress_s: float = 5.0, reconcile_s: float = 60.0) -> SyncResult:
    """One sync (or finalize) of a FlinkStateSnapshot. Children are always none."""
    s = _Snapshot(parent, target, poll, now_ms, progress_s, reconcile_s)
    try:
        spec = parse_snapshot_spec(parent.get("spec"))
    except SpecError as error:
        s.validation_error(error)
        if finalizing:
            s.result.finalized = True  # nothing can be disposed of safely by an unreadable spec
        return s.result
    if finalizing:
        s.finalize(spec)
    elif s.status.get("state") == TRIGGER_PENDING:
        s.trigger_pending(spec)
    elif s.status.get("state") == IN_PROGRESS:
        s.in_progress(spec)
    return s.result


def trigger_failed(result: SyncResult, parent: dict[str, Any], message: str, now_ms: int) -> None:
    """The trigger call of this sync failed: Apache's failure rule, applied to the answer."""
    s = _Snapshot({**parent, "status": result.status}, None, None, now_ms, 0, 0)
    incoming = parent.get("status") or {}
    s.status["state"] = TRIGGER_PENDING
    for key in ("triggerId", "triggerTimestamp"):  # Apache writes them only when a trigger call succeeded
        if incoming.get(key) is None:
            s.status.pop(key, None)
        else:
            s.status[key] = incoming[key]
    s.result = result
    s.fail(parse_snapshot_spec(parent.get("spec")), message)
    result.status = s.status


def disposal_failed(result: SyncResult, message: str) -> None:
    """The disposal call failed: keep the resource (the finalizer) and try again on the next sync."""
    result.finalized = False
    result.status["error"] = error_json("FlinkRestException", f"savepoint disposal failed: {message}")
    result.resync_after_seconds = 10.0
