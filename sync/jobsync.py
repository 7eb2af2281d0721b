"""The job state machine both kinds share: a FlinkDeployment's job and a FlinkSessionJob are read, validated,
observed, stepped and reported the same way (the Apache operator's AbstractFlinkResourceReconciler,
AbstractJobReconciler and JobStatusObserver serve both kinds).

`JobSync` is the skeleton of one sync: read the status (`sync/intake.py`, then the records of
`sync/records.py`), parse and validate the spec (an invalid spec keeps the last reconciled one), observe, take
at most one step of the state machine, then write the lifecycle state, conditions and records. The in-flight
operations (stop, cancel, savepoint) are `sync/pending.py`'s. Each kind plugs in what differs: how its spec is
read and checked, how it is observed, what it deploys (a cluster's children, or a submission to a session
cluster) and how it is deleted (`sync/deployment.py`, `sync/sessionjob.py`).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from .clock import plain
from .diff import DiffType, classify
from .intake import usable_status
from .model import Action, CoreSettings, Event, FlinkObservation, JobInfo, SyncResult
from .pending import PendingOperations, settled
from .podtemplate import json_copy
from .records import FlinkSyncRecord
from .spec import SpecError, deserialize_reconciled, serialize_reconciled, spec_json
from .status import TERMINAL_JOB_STATES, error_json, error_message, lifecycle_state

#: What a kind's spec reader returns: the parsed spec (None: unreadable), its effective configuration, and the
#: validation error naming the field (None: valid).
ReadSpec = tuple[Any, dict[str, str], str | None]


class JobSync(PendingOperations):
    """One sync of one resource: the skeleton (observe → decide → act → status and conditions) with the kind's
    parts as the methods at the end."""

    #: The spec's name in SpecChanged events, and the default component of the kind's events.
    SPEC_KIND: ClassVar[str]
    EVENT_COMPONENT: ClassVar[str]
    IS_DEPLOYMENT: ClassVar[bool]

    def __init__(self, parent: dict[str, Any], flink: FlinkObservation | None, now_ms: int,
                 settings: CoreSettings) -> None:
        meta = parent.get("metadata") or {}
        self.parent, self.flink, self.now_ms, self.settings = parent, flink, now_ms, settings
        self.name: str = meta.get("name") or ""
        self.namespace: str = meta.get("namespace") or "default"
        self.uid: str = meta.get("uid") or f"{self.namespace}/{self.name}"
        self.generation: int = int(meta.get("generation") or 1)
        # Shape-checked first: a part the core cannot continue from is a StatusUnusable (422, nothing applied).
        self.old_status: dict[str, Any] = usable_status(parent.get("status"))
        self.status: dict[str, Any] = json_copy(self.old_status)
        self.status.pop("observedGeneration", None)
        self.status.setdefault("flinkSync", {})  # its place in status; _result writes the records there
        self.incoming_records = FlinkSyncRecord.from_json(self.old_status.get("flinkSync") or {})
        self.flink_sync = self.incoming_records
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.desired: Any = None
        self.config: dict[str, str] = {}
        self.invalid: str | None = None
        self.reconciled, _ = deserialize_reconciled(self._recon().get("lastReconciledSpec"))
        self.waiting_progress = False

    # ----------------------------------------------------------------- the skeleton
    def run(self, finalizing: bool) -> SyncResult:
        self._before_validation()
        self._parse_and_validate()
        if finalizing:
            return self._finalize()
        if self._waiting_for_dependency():
            return self._result()
        self._observe()
        self._step()
        return self._checked(self._result())

    def _parse_and_validate(self) -> None:
        """The spec as validated, or (invalid) the last reconciled one, with the error in status."""
        try:
            spec, config, error = self._read_spec()
        except SpecError as exc:
            spec, config, error = None, {}, str(exc)
        except Exception as exc:  # noqa: BLE001 - malformed input must become a status error, not a 500
            spec, config, error = None, {}, f"spec: could not be read: {type(exc).__name__}: {exc}"
        if error:
            self._keep_last_good_spec(error, config)
            return
        self.desired, self.config = spec, config
        if self._validation_error_fixed(self.old_status.get("error") or ""):
            self.status.pop("error", None)

    def _keep_last_good_spec(self, error: str, read_config: dict[str, str]) -> None:
        """Keep reconciling the last good spec (Apache replaces the in-memory spec the same way)."""
        self.invalid = error
        self.status["error"] = error_json("ValidationException", error)
        if error_message(self.old_status.get("error")) != error:
            self._event("ValidationError", error, "Warning", "Operator")
        if self.reconciled is not None:
            try:
                self.desired = self._parse_spec(self.reconciled)
            except SpecError:
                self.desired = None
        self.config = self._config_when_invalid(read_config)

    def _step(self) -> None:
        """One decision: first finish what the status records as in flight, then act on the spec."""
        if self._continue_recorded_step() or self.desired is None:
            return
        if self.reconciled is None or self.invalid:
            self._without_a_valid_change()
            return
        diff, fields = classify(self.reconciled, spec_json(self.desired))
        if self._decided_by_a_loss(diff):
            return
        if diff == DiffType.IGNORE and self._recon().get("state") != "UPGRADING":
            self._steady()
            return
        if self._change_refused(diff):
            return
        announce_spec_change(self, diff, fields, self.SPEC_KIND)
        if retry_later(self) or self._changed_in_place(diff):
            return
        self._upgrade(diff)

    def _upgrade(self, diff: DiffType) -> None:
        """A spec change: stop what runs (the way its upgradeMode asks), take its record away once it stopped,
        then record what is to run (a later sync deploys or submits it)."""
        current = self._deployed_state()
        if current == "running":
            self._suspend(diff)
            return
        if current == "suspended":
            # The stop or cancel finished and the path to restore from is already durable in status.
            self._drop_stopped_deployment()
            self.waiting_progress = True
            return
        if self._wanted_state() == "suspended":
            if self._recon().get("state") == "UPGRADING":
                self._recon()["state"] = "DEPLOYED"
            return
        if self._old_deployment_present():
            self.waiting_progress = True
            return
        self._prepare_deployment(diff)

    def _result(self, keep_lifecycle: bool = False, resync: float | None = None,
                finalized: bool | None = None) -> SyncResult:
        if not keep_lifecycle:
            self.status.pop("lifecycleState", None)
            self.status["lifecycleState"] = lifecycle_state(self.status, is_deployment=self.IS_DEPLOYMENT)
        self.status["observedGeneration"] = self.generation
        self._kind_status()
        self._conditions()
        self._write_records()
        wake_at = None
        if resync is None:
            resync = self._resync_after()
            wake_at = self._periodic_due_at() if self._takes_periodic_savepoints() else None
        children = self._children() if finalized is not True else []
        return SyncResult(status=self.status, children=children, actions=self.actions, events=self.events,
                          resync_after_seconds=resync_toward(resync, wake_at, self.now_ms), finalized=finalized,
                          resync_base=resync, wake_at_ms=wake_at)

    def _resync_after(self) -> float:
        """Soon while something is in flight, otherwise the reconcile interval (`_result` shortens it to the next
        periodic savepoint)."""
        busy = self.waiting_progress or self._busy()
        return self._progress_interval() if busy else self._reconcile_interval()

    # ----------------------------------------------------------------- shared steps
    def _event(self, reason: str, message: str, kind: str = "Normal", component: str = "") -> None:
        self.events.append(Event(reason=reason, message=message, type=kind,  # type: ignore[arg-type]
                                 component=component or self.EVENT_COMPONENT))

    def _record_reconciled(self, spec_dict: dict[str, Any], first: bool = False) -> None:
        spec = self._parse_spec(spec_dict)
        self._recon()["lastReconciledSpec"] = serialize_reconciled(spec, first)
        self.reconciled = spec_json(spec)

    def _delete_savepoint_just_recorded(self) -> bool:
        """Deletion: the savepoint on deletion is recorded in this answer; what depends on it waits a sync."""
        return bool(self.flink_sync.delete_ready) and self.incoming_records.delete_ready is None

    def _progress_interval(self) -> float:
        return self.settings.progress_interval_s

    def _reconcile_interval(self) -> float:
        return self.settings.stable_interval_s

    # ----------------------------------------------------------------- what each kind plugs in
    def _before_validation(self) -> None:
        """Anything the validation depends on (a FlinkDeployment adopts a cluster whose record was lost)."""

    def _waiting_for_dependency(self) -> bool:
        """Whether the sync waits for something outside the resource (a session job for its session cluster)."""
        return False

    def _decided_by_a_loss(self, diff: DiffType) -> bool:
        """Whether something observed lost (a JobManager Deployment) decided this sync."""
        return False

    def _change_refused(self, diff: DiffType) -> bool:
        """Whether a spec change must wait (a FlinkDeployment after "Manual restore required")."""
        return False

    def _changed_in_place(self, diff: DiffType) -> bool:
        """Whether the change was applied without a redeploy (a reactive cluster's scale change)."""
        return False

    def _old_deployment_present(self) -> bool:
        """Whether what the previous deployment left is still there (a new one waits for it)."""
        return False

    def _kind_status(self) -> None:
        """Status fields only the kind has."""

    def _children(self) -> list[dict[str, Any]]:
        return []

    def _checked(self, result: SyncResult) -> SyncResult:
        """The last check of the answer (a FlinkDeployment's answer never deletes unaccounted children)."""
        return result

    @abstractmethod
    def _parse_spec(self, spec: Any) -> Any:
        """The kind's spec model (SpecError when it cannot be read)."""

    @abstractmethod
    def _read_spec(self) -> ReadSpec:
        """The parent's spec, its effective configuration and its validation error."""

    @abstractmethod
    def _config_when_invalid(self, read_config: dict[str, str]) -> dict[str, str]:
        """The configuration to act on while the spec is invalid."""

    @abstractmethod
    def _validation_error_fixed(self, old_error: str) -> bool:
        """Whether the recorded error was a validation error that a valid spec clears."""

    @abstractmethod
    def _finalize(self) -> SyncResult:
        """Deletion: stop the job the way the kind's configuration asks, then release the resource."""

    @abstractmethod
    def _observe(self) -> None:
        """Fold what Flink (and Kubernetes) report into the status."""

    @abstractmethod
    def _continue_recorded_step(self) -> bool:
        """Finish what the records show in flight; True when that decided this sync."""

    @abstractmethod
    def _without_a_valid_change(self) -> None:
        """Nothing reconciled yet (the first deployment), or an invalid spec (only what is in flight finishes)."""

    @abstractmethod
    def _steady(self) -> None:
        """The spec is what runs: snapshots (and a FlinkDeployment's rollback)."""

    @abstractmethod
    def _deployed_state(self) -> str | None:
        """"running" or "suspended" as the records and the reconciled spec say; None: nothing is deployed."""

    @abstractmethod
    def _suspend(self, diff: DiffType) -> None:
        """Stop the running job the way its upgradeMode asks."""

    @abstractmethod
    def _drop_stopped_deployment(self) -> None:
        """Take the record of a stopped deployment out of status (its children or submission go)."""

    @abstractmethod
    def _prepare_deployment(self, diff: DiffType) -> None:
        """Record what is to run next (job id, restore path); a later sync deploys or submits it."""

    @abstractmethod
    def _conditions(self) -> None:
        """The kind's status conditions."""

    @abstractmethod
    def _busy(self) -> bool:
        """Whether something is in flight or not ready (resync soon)."""

    @abstractmethod
    def _takes_periodic_savepoints(self) -> bool:
        """Whether the resource runs a job that periodic savepoints apply to."""


def resync_toward(resync: float, wake_at_ms: int | None, now_ms: int) -> float:
    """The resync, never past `wake_at_ms` (a periodic savepoint's due time) while that is still ahead. Reads the
    time without `sync/clock.py` following it: a kept answer recomputes this itself (sync/settled.py)."""
    if wake_at_ms is None:
        return resync
    remaining = wake_at_ms - plain(now_ms)
    return min(resync, max(1.0, remaining / 1000)) if remaining > 0 else resync


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
