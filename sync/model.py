"""What goes into the pure core and what comes out: observed Flink state, actions, events, the result.

The hook gathers a `FlinkObservation` (REST calls planned by `plan_observation`), calls the core, then
carries out the returned `Action`s. Every action is idempotent: savepoint triggers carry a trigger id and
submissions a job id that the core derived deterministically and recorded in the returned status.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SavepointState = Literal["IN_PROGRESS", "COMPLETED", "FAILED", "UNKNOWN_TRIGGER"]


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time: int | None = None
    end_time: int | None = None


@dataclass(frozen=True)
class TriggerResult:
    """Result of polling a savepoint (or stop-with-savepoint) trigger."""
    state: SavepointState
    location: str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class FlinkObservation:
    """What the hook learnt from the Flink REST API during this sync (None fields were not asked)."""
    reachable: bool
    error: str | None = None
    flink_version: str | None = None
    flink_revision: str | None = None
    jobs: tuple[JobInfo, ...] | None = None
    trigger: TriggerResult | None = None
    latest_checkpoint_path: str | None = None
    failure_cause: str | None = None
    taskmanagers: int | None = None      # TaskManagers registered with the JobManager (None: not known)

    def job(self, job_id: str | None) -> JobInfo | None:
        if not job_id or self.jobs is None:
            return None
        return next((job for job in self.jobs if job.job_id == job_id), None)


@dataclass(frozen=True)
class ObservationPlan:
    """REST calls the hook should make before calling the core."""
    query_cluster: bool = False          # GET /jobs/overview (and /config when cluster_info is wanted)
    cluster_info: bool = False
    job_id: str | None = None
    trigger_job_id: str | None = None    # poll GET /jobs/{id}/savepoints/{trigger}
    trigger_id: str | None = None
    latest_checkpoint: bool = False      # GET /jobs/{id}/checkpoints
    failure_cause: bool = False          # GET /jobs/{id}/exceptions
    taskmanagers: bool = False           # GET /overview: registered TaskManagers


@dataclass(frozen=True)
class Action:
    """What the hook carries out after the core decided (kind + parameters): a Flink REST call, a session job's
    submission (fetch, upload, run), or the HA data cleanup of a deleted cluster."""
    kind: Literal["trigger_savepoint", "stop_with_savepoint", "cancel", "dispose_savepoint", "trigger_checkpoint",
                  "delete_ha_data", "remove_ha_job_graphs", "submit_job", "rescale_in_place"]
    params: dict[str, Any] = field(default_factory=dict)
    # True: a failure is reported in status.error; False: best effort (logged only).
    required: bool = True


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the parent, with the Apache operator's reasons."""
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    component: str = "Operator"


@dataclass
class SyncResult:
    status: dict[str, Any]
    children: list[dict[str, Any]]
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    resync_after_seconds: float | None = None
    finalized: bool | None = None
    #: How `resync_after_seconds` came about: the interval, shortened to the time left until `wake_at_ms` (a
    #: periodic savepoint's due time) while that is ahead (`jobsync.resync_toward`). A kept answer recomputes it.
    resync_base: float | None = None
    wake_at_ms: int | None = None
    #: Answered from the record of an earlier sync with the same inputs (sync/settled.py), not by the whole sync.
    kept: bool = False

    def response(self, finalizing: bool) -> dict[str, Any]:
        """The Metacontroller response body: only keys Metacontroller knows."""
        body: dict[str, Any] = {"status": self.status, "children": self.children}
        if self.resync_after_seconds:
            body["resyncAfterSeconds"] = self.resync_after_seconds
        if finalizing:
            body["finalized"] = bool(self.finalized)
        return body


@dataclass(frozen=True)
class CoreSettings:
    """Server-side settings the core needs (from the environment and the defaults file, read by the hook)."""
    operator_defaults: dict[str, str] = field(default_factory=dict)
    validators: tuple[Any, ...] = ()
    progress_interval_s: float = 5.0
    stable_interval_s: float = 60.0
    #: Names the core's code (and anything else outside these fields its answers depend on); a resync that would
    #: change nothing is answered from its record only when this is set (sync/settled.py). Empty: never.
    memo_key: str = ""
