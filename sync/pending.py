"""In-flight Flink operations of one job, shared by FlinkDeployments and FlinkSessionJobs.

`status.flinkSync.pending` records an operation before it is issued (intent first): a stop-with-savepoint,
a cancel, or a savepoint, with the job id and a deterministic trigger id. Each sync polls it from what Flink
reports and either waits, re-issues it with the same trigger id, completes it (the savepoint path goes to
status before anything that depends on it changes) or fails it (the job keeps running; an upgrade is
retried later). Also here: the suspend and snapshot steps both kinds share (the recorded target spec, a
suspend's end, a due savepoint). `PendingOperations` is the base of `sync/jobsync.py`'s `JobSync`, which
provides the two methods at its end.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any

from . import snapshots
from .ids import derive_id
from .model import Action, Event, FlinkObservation
from .records import FlinkSyncRecord, PendingRecord
from .snapshots import _duration_ms, _opt
from .spec import deserialize_reconciled, spec_json
from .status import TERMINAL_JOB_STATES, error_json

CHECKPOINT_STATS_SETTLE_MS = 4_000
UPGRADE_RETRY_MS = 15_000
CANCEL_REISSUE_MS = 30_000
_TRIGGER_KEYS = ("triggerId", "triggerTimestamp", "triggerType", "formatType")


def settled(job: Any, now_ms: int) -> bool:
    """Flink caches checkpoint statistics (web.refresh-interval, 3 s): trust "the latest checkpoint" of a job
    only once it ended longer ago than that (an unknown end time counts as long ago)."""
    return job.end_time is None or now_ms - int(job.end_time) >= CHECKPOINT_STATS_SETTLE_MS


class PendingOperations(ABC):
    """The base of both kinds' syncs: the state below, the in-flight operations, and the accessors and steps both
    share. `JobSync` provides the two methods at the end."""

    uid: str
    old_status: dict[str, Any]
    flink_sync: FlinkSyncRecord
    status: dict[str, Any]
    flink: FlinkObservation | None
    now_ms: int
    config: dict[str, str]
    actions: list[Action]
    events: list[Event]
    reconciled: dict[str, Any] | None
    desired: Any
    waiting_progress: bool

    def _start_savepoint(self, job_id: str, trigger_type: str, nonce: int | None, key: object) -> None:
        """Record a savepoint of `job_id` to take (MANUAL for `nonce`, or PERIODIC), keyed by `key` so that a
        retried sync asks for the same savepoint. Issued on the next sync, once this record is durable."""
        pending = PendingRecord.savepoint(derive_id(self.uid, "savepoint", job_id, trigger_type, key), job_id,
                                          self.now_ms, trigger_type, nonce)
        self._set_records(pending=pending)
        self._savepoint_info().update({"triggerId": pending.trigger_id, "triggerTimestamp": self.now_ms,
                                       "triggerType": trigger_type,
                                       "formatType": _opt(self.config, "savepoint.format.type", "CANONICAL")})
        self.waiting_progress = True

    def _periodic_due_at(self) -> int | None:
        return snapshots.periodic_due_at(self.config, self._job_status())

    def _set_records(self, **changes: Any) -> None:
        """Change fields of `status.flinkSync` (None: the field goes)."""
        self.flink_sync = self.flink_sync.replace(**changes)

    def _write_records(self) -> None:
        """`status.flinkSync` from the records (left out when there are none)."""
        written = self.flink_sync.to_json()
        if written:
            self.status["flinkSync"] = written
        else:
            self.status.pop("flinkSync", None)

    def _progress_pending(self) -> None:
        pending = self.flink_sync.pending
        assert pending is not None
        self.waiting_progress = True
        if pending.op == "cancel":
            self._progress_cancel(pending)
        else:
            self._progress_trigger(pending)

    def _progress_cancel(self, pending: PendingRecord) -> None:
        flink = self.flink
        if flink is None or not flink.reachable or flink.jobs is None:
            return  # nothing known: wait
        job = flink.job(pending.job_id)
        if job is not None and job.state not in TERMINAL_JOB_STATES:
            if not pending.issued_at or self.now_ms - pending.issued_at > CANCEL_REISSUE_MS:
                # The cancel intent is durable (it came in with the status): ask Flink, again after 30 s.
                self.actions.append(Action("cancel", {"job_id": pending.job_id}, required=pending.purpose != "delete"))
                self._set_records(pending=pending.replace(issued_at=self.now_ms))
                self._job_status()["state"] = "CANCELLING"
            return
        if job is not None and not pending.checkpoint_recorded:
            if not settled(job, self.now_ms):
                return  # Flink's checkpoint statistics lag the job's end by up to ~3 s
            # Record the terminal state and the last checkpoint first; finish on the next sync.
            self._job_status()["state"] = job.state
            if flink.latest_checkpoint_path:
                self._job_status()["upgradeSavepointPath"] = flink.latest_checkpoint_path
            self._set_records(pending=pending.replace(checkpoint_recorded=True), checkpoint_of=job.job_id)
            return
        self._set_records(pending=None)
        if pending.purpose == "delete":
            self._set_records(delete_ready=True)
            return
        self._finish_suspend(self._wanted_state(), pending.restore_mode or "savepoint")

    def _progress_trigger(self, pending: PendingRecord) -> None:
        """A stop-with-savepoint or a savepoint, polled by its trigger id."""
        flink = self.flink
        trigger = flink.trigger if flink is not None and flink.reachable else None
        timeout_ms = _duration_ms(self.config, "savepoint.trigger.timeout",
                                  self.config.get("execution.checkpointing.timeout") or "10 min")
        if trigger is None:
            if self.now_ms - pending.started_at > timeout_ms:
                self._pending_failed(pending, "Flink did not report the savepoint in time")
            return
        assert flink is not None
        if trigger.state == "UNKNOWN_TRIGGER":
            self._unknown_trigger(pending, flink)
            return
        if trigger.state == "IN_PROGRESS":
            if self.now_ms - pending.started_at > timeout_ms:
                self._pending_failed(pending, "Timed out waiting for the savepoint")
            return
        if trigger.state == "FAILED" or not trigger.location:
            self._pending_failed(pending, trigger.failure or "Savepoint failed")
            return
        self._pending_completed(pending, trigger.location)

    def _unknown_trigger(self, pending: PendingRecord, flink: FlinkObservation) -> None:
        """Flink never received the trigger (or restarted): ask again with the same trigger id, unless the job
        shows what became of it."""
        op = pending.op
        job = flink.job(pending.job_id)
        if op == "stop" and job is not None and job.state in TERMINAL_JOB_STATES and flink.latest_checkpoint_path:
            # Flink forgot the stop's result (kept 5 min, or the JobManager restarted) but the job did stop:
            # its latest savepoint/checkpoint is the restore point.
            self._pending_completed(pending, flink.latest_checkpoint_path)
            return
        if job is not None and job.state != "RUNNING" and op == "savepoint":
            self._pending_failed(pending, f"job is {job.state}, savepoint abandoned")
            return
        self.actions.append(snapshots.stop_action(pending, self.config) if op == "stop"
                            else snapshots.savepoint_action(pending, self.config))

    def _pending_completed(self, pending: PendingRecord, location: str) -> None:
        self._set_records(pending=None, attempts=None)
        if pending.op == "stop":
            self._job_status()["upgradeSavepointPath"] = location
            self._set_records(checkpoint_of=pending.job_id)  # the stop's savepoint is this job's restore point
            self._add_savepoint(location, pending.started_at, "UPGRADE", None)
            if pending.purpose == "delete":
                self._set_records(delete_ready=True)
                return
            self._job_status()["state"] = "FINISHED"
            self._finish_suspend(self._wanted_state(), "savepoint")
            return
        trigger_type = pending.trigger_type or "MANUAL"
        self._add_savepoint(location, pending.started_at, trigger_type, pending.nonce)
        self._savepoint_done(trigger_type, pending.nonce, pending.started_at)

    def _pending_failed(self, pending: PendingRecord, reason: str) -> None:
        self._set_records(pending=None)
        if pending.op == "stop":
            message = f"Savepoint Error: {reason}"
            self.status["error"] = error_json("UpgradeFailureException", message, "SavepointError")
            self._event("SavepointError", message, "Warning")
            self._set_records(attempts=(self.flink_sync.attempts or 0) + 1, retry_at=self.now_ms + UPGRADE_RETRY_MS)
            if self._recon().get("state") == "UPGRADING":
                self._recon()["state"] = "DEPLOYED"  # the job keeps running; the upgrade is retried later
            return
        trigger_type = pending.trigger_type or "MANUAL"
        message = (f"Savepoint failed for savepointTriggerNonce: {pending.nonce}: {reason}"
                   if trigger_type == "MANUAL" else f"Periodic savepoint failed: {reason}")
        self._event("SavepointError", message, "Warning", "Operator")
        self._savepoint_done(trigger_type, pending.nonce, pending.started_at)

    def _savepoint_done(self, trigger_type: str, nonce: int | None, started_at: int) -> None:
        """A savepoint ended (either way): clear its trigger; a periodic one counts from its start, a manual one
        marks its nonce as handled."""
        info = self._savepoint_info()
        for key in _TRIGGER_KEYS:
            info.pop(key, None)
        if trigger_type == "PERIODIC":
            info["lastPeriodicSavepointTimestamp"] = started_at
        else:
            self._reconcile_nonce(nonce)

    def _add_savepoint(self, location: str, timestamp: int, trigger_type: str, nonce: int | None) -> None:
        self.actions += snapshots.add_savepoint(self._savepoint_info(), self.config, self.now_ms, location, timestamp,
                                                trigger_type, nonce)

    def _reconcile_nonce(self, nonce: int | None) -> None:
        """Advance savepointTriggerNonce in the recorded spec (and the stable one when they were equal)."""
        recon = self._recon()
        was_stable = recon.get("lastReconciledSpec") == recon.get("lastStableSpec")
        spec = copy.deepcopy(self.reconciled or {})
        if spec.get("job") is None:
            return
        spec["job"]["savepointTriggerNonce"] = nonce
        _, first = deserialize_reconciled(recon.get("lastReconciledSpec"))
        self._record_reconciled(spec, first)
        if was_stable:
            self._mark_stable()

    # --- shared by both kinds -----------------------------------------------------------------------------
    def _recon(self) -> dict[str, Any]:
        recon: dict[str, Any] = self.status.setdefault("reconciliationStatus", {})
        return recon

    def _job_status(self) -> dict[str, Any]:
        job_status: dict[str, Any] = self.status.setdefault("jobStatus", {})
        return job_status

    def _savepoint_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._job_status().setdefault("savepointInfo", {})
        return info

    def _mark_stable(self) -> None:
        recon = self._recon()
        if recon.get("lastReconciledSpec"):
            recon["lastStableSpec"] = recon["lastReconciledSpec"]

    def _wanted_state(self) -> str:
        job = getattr(self.desired, "job", None)
        return job.state if job is not None else "running"

    def _finish_suspend(self, wanted: str, restore_mode: str) -> None:
        """The job is stopped and the path to restore from is in status: record the suspended spec. Anything
        that depends on that path (removing a cluster, a new submission) happens on a later sync."""
        self._record_reconciled(self._target_spec("suspended", restore_mode))
        recon = self._recon()
        if wanted == "running":
            recon["state"] = "UPGRADING"
        else:
            recon["state"] = "DEPLOYED"
            self._mark_stable()
        self.waiting_progress = True

    def _target_spec(self, job_state: str, upgrade_mode: str | None) -> dict[str, Any]:
        """The desired spec as it will be recorded: this job state and restore mode, old snapshot nonces kept."""
        assert self.desired is not None
        spec: dict[str, Any] = spec_json(self.desired)
        if spec.get("job") is not None:
            spec["job"]["state"] = job_state
            if upgrade_mode:
                spec["job"]["upgradeMode"] = upgrade_mode
            if self.reconciled is not None:
                old_job = self.reconciled.get("job") or {}
                for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
                    spec["job"][nonce] = old_job.get(nonce)
        return spec

    def _reconciled_job(self) -> dict[str, Any]:
        job: dict[str, Any] = (self.reconciled or {}).get("job") or {}
        return job

    def _start_due_savepoint(self, job_id: str) -> bool:
        """A manual savepoint (a new savepointTriggerNonce) or a periodic one that is due, in that order, recorded
        to be triggered on the next sync. Whether one was."""
        assert self.desired is not None and self.desired.job is not None
        nonce = self.desired.job.savepointTriggerNonce
        if nonce is not None and nonce != self._reconciled_job().get("savepointTriggerNonce"):
            self._start_savepoint(job_id, "MANUAL", nonce, nonce)
            return True
        due_at = self._periodic_due_at()
        if due_at is not None and self.now_ms >= due_at:
            # Keyed by the due time, so a retried sync asks for the same savepoint.
            self._start_savepoint(job_id, "PERIODIC", None, due_at)
            return True
        return False

    def _suspend_ended_job(self, wanted: str, restore_mode: str) -> None:
        """A job that already ended is suspended from its last checkpoint, once its terminal state (and with it
        that checkpoint's path) came back in the status."""
        if (self.old_status.get("jobStatus") or {}).get("state") not in TERMINAL_JOB_STATES:
            self.waiting_progress = True
            return
        self._finish_suspend(wanted, restore_mode)

    # --- what differs by kind -----------------------------------------------------------------------------
    @abstractmethod
    def _event(self, reason: str, message: str, kind: str = "Normal", component: str = "") -> None:
        """An Event on the resource, with the kind's default component."""

    @abstractmethod
    def _record_reconciled(self, spec: dict[str, Any], first: bool = False) -> None:
        """Write `lastReconciledSpec` from a spec of the kind."""

