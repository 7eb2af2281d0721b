"""What the job state machines of both kinds share: a FlinkDeployment's job and a FlinkSessionJob are observed,
announced and retried the same way (Apache's AbstractJobReconciler and JobStatusObserver serve both kinds).
Each function reads and writes the sync it is given, through the records and status fields both kinds have."""
from __future__ import annotations

from typing import Any, Protocol

from .diff import DiffType
from .model import FlinkObservation, JobInfo
from .pending import settled
from .records import FlinkSyncRecord
from .status import TERMINAL_JOB_STATES, error_json


class JobSync(Protocol):
    """The part of a sync (either kind) these steps use."""
    status: dict[str, Any]
    flink_sync: FlinkSyncRecord
    now_ms: int
    generation: int
    waiting_progress: bool

    def _job_status(self) -> dict[str, Any]: ...

    def _set_records(self, **changes: Any) -> None: ...

    def _event(self, reason: str, message: str, kind: str = ..., component: str = ...) -> None: ...


def observe_job_fields(s: JobSync, job: JobInfo, old_state: str | None) -> None:
    """jobStatus from Flink's job overview; a JobStatusChanged event when the state moved."""
    job_status = s._job_status()
    job_status["jobId"] = job.job_id
    job_status["jobName"] = job.name
    if job.start_time:
        job_status["startTime"] = str(job.start_time)
    if job.state != old_state:
        job_status["state"] = job.state
        job_status["updateTime"] = str(s.now_ms)
        message = f"Job status changed from {old_state} to {job.state}" if old_state else \
            f"Job status changed to {job.state}"
        s._event("JobStatusChanged", message, component="Job")


def record_terminal_checkpoint(s: JobSync, job: JobInfo, flink: FlinkObservation) -> None:
    """A terminal job's latest checkpoint is where a later restore starts: once per terminal job, and only after
    Flink's checkpoint statistics have caught up with its end (sync/pending.py `settled`)."""
    if job.state in TERMINAL_JOB_STATES and flink.latest_checkpoint_path and settled(job, s.now_ms) and \
            s.flink_sync.checkpoint_of != job.job_id and not s.flink_sync.pending:
        s._job_status()["upgradeSavepointPath"] = flink.latest_checkpoint_path
        s._set_records(checkpoint_of=job.job_id)


def report_failure(s: JobSync, job: JobInfo, old_state: str | None, flink: FlinkObservation) -> None:
    """A job that just failed: its root cause in status.error and an Error event."""
    if job.state == "FAILED" and old_state != "FAILED":
        cause = flink.failure_cause or "Job failed"
        s.status["error"] = error_json("JobFailedException", cause)
        s._event("Error", cause, "Warning", "Job")


def announce_spec_change(s: JobSync, diff: DiffType, fields: list[str], spec_kind: str) -> None:
    """One SpecChanged event per generation, as Apache emits it."""
    if diff != DiffType.IGNORE and s.flink_sync.spec_changed_generation != s.generation:
        s._set_records(spec_changed_generation=s.generation)
        s._event("SpecChanged", f"{diff.name} change(s) detected (Diff: {spec_kind}["
                 + ", ".join(fields) + "]), starting reconciliation.", component="JobManagerDeployment")


def retry_later(s: JobSync) -> bool:
    """A failed upgrade step waits for its retry time (`retryAt`)."""
    retry_at = s.flink_sync.retry_at
    if retry_at and s.now_ms < retry_at:
        s.waiting_progress = True
        return True
    s._set_records(retry_at=None)
    return False
