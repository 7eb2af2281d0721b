"""The FlinkSessionJob sync (the Apache operator's session-job reconciler): a job submitted to a session cluster.

Records in `status.flinkSync`:
* `submission`: the job that should run (spec, job id, restore path). Written one sync *before* the
  submit action, so a retried submission reuses the same job id and Flink refuses a second copy.
* `submitted`: set once the submit call succeeded for that submission.
* `pending`: an in-flight stop-with-savepoint / cancel / savepoint, as for FlinkDeployments.
"""
from __future__ import annotations

import copy
from typing import Any

from . import flinkconf, jobsync, podhealth, records, snapshot_resources, snapshots
from . import sessionjob_submission as submissions
from .diff import DiffType, classify
from .flinkdeployment.cluster import iso
from .ids import derive_id
from .intake import usable_status
from .model import (
    Action,
    CoreSettings,
    Event,
    FlinkObservation,
    ObservationPlan,
    SyncResult,
)
from .pending import PendingOperations
from .sessionjob_submission import session_config
from .snapshots import OP
from .spec import (
    FlinkSessionJobSpec,
    SpecError,
    deserialize_reconciled,
    parse_session_job_spec,
    serialize_reconciled,
    spec_json,
)
from .status import (
    TERMINAL_JOB_STATES,
    error_json,
    error_message,
    lifecycle_state,
    set_condition,
)
from .validation import validate_session_job


def plan_observation(parent: dict[str, Any], session: dict[str, Any] | None) -> ObservationPlan:
    status = usable_status(parent.get("status"))
    internal = status.get("flinkSync") or {}
    if session is None or (session.get("status") or {}).get("jobManagerDeploymentStatus") != "READY":
        return ObservationPlan()
    submission = internal.get("submission") or {}
    pending = internal.get("pending") or {}
    job_id = submission.get("jobId") or pending.get("jobId") or (status.get("jobStatus") or {}).get("jobId")
    if not job_id:
        return ObservationPlan()
    trigger = pending.get("triggerId") if pending.get("op") in ("stop", "savepoint") else None
    return ObservationPlan(query_cluster=True, job_id=job_id, trigger_job_id=pending.get("jobId") if trigger else None,
                           trigger_id=trigger, latest_checkpoint=True, failure_cause=True)


class _SessionJobSync(PendingOperations):
    def __init__(self, parent: dict[str, Any], session: dict[str, Any] | None, flink: FlinkObservation | None,
                 now_ms: int, settings: CoreSettings, jar_allowlist: tuple[str, ...]):
        meta = parent.get("metadata") or {}
        self.parent, self.session, self.flink, self.now_ms, self.settings = parent, session, flink, now_ms, settings
        self.jar_allowlist = jar_allowlist
        self.name = meta.get("name") or ""
        self.namespace = meta.get("namespace") or "default"
        self.uid = meta.get("uid") or f"{self.namespace}/{self.name}"
        self.generation = int(meta.get("generation") or 1)
        self.old_status = usable_status(parent.get("status"))  # StatusUnusable (422) when it cannot be continued
        self.status = copy.deepcopy(self.old_status)
        self.status.pop("observedGeneration", None)
        self.internal: dict[str, Any] = self.status.setdefault("flinkSync", {})
        self.recon: dict[str, Any] = self.status.setdefault("reconciliationStatus", {})
        self.job_status: dict[str, Any] = self.status.setdefault("jobStatus", {})
        self.reconciled, _ = deserialize_reconciled(self.recon.get("lastReconciledSpec"))
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.desired: FlinkSessionJobSpec | None = None
        self.config: dict[str, str] = {}
        self.invalid: str | None = None
        self.waiting_progress = False
        self.waiting_reason: str | None = None
        self.session_pods_cause: str | None = None  # what is wrong with the session cluster's pods (podhealth)

    # ------------------------------------------------------------------ helpers
    def _event(self, reason: str, message: str, kind: str = "Normal", component: str = "Job") -> None:
        self.events.append(Event(reason=reason, message=message, type=kind, component=component))  # type: ignore[arg-type]

    def _record_reconciled(self, spec: dict[str, Any], first: bool = False) -> None:
        self.recon["lastReconciledSpec"] = serialize_reconciled(parse_session_job_spec(spec), first)
        self.reconciled = spec

    def _session_ready(self) -> bool:
        return ((self.session or {}).get("status") or {}).get("jobManagerDeploymentStatus") == "READY"

    def _target_spec(self, job_state: str, upgrade_mode: str | None) -> dict[str, Any]:
        assert self.desired is not None
        spec = spec_json(self.desired)
        old_job = (self.reconciled or {}).get("job") or {}
        spec["job"]["state"] = job_state
        if upgrade_mode:
            spec["job"]["upgradeMode"] = upgrade_mode
        if self.reconciled is not None:
            for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
                spec["job"][nonce] = old_job.get(nonce)
        return spec

    # ------------------------------------------------------------------ entry
    def run(self, finalizing: bool) -> SyncResult:
        self._parse()
        if finalizing:
            return self._finalize()
        if self.session is None:
            self.waiting_reason = f"session FlinkDeployment '{(self.parent.get('spec') or {}).get('deploymentName')}' not found in namespace {self.namespace}"
            if self.recon.get("lastReconciledSpec") and self.job_status.get("state") == "RUNNING":
                self.job_status["state"] = "RECONCILING"
            return self._result()
        if not self._session_ready():
            self.waiting_reason = (f"waiting for session cluster '{self.session['metadata']['name']}' to be READY "
                                   f"(now {(self.session.get('status') or {}).get('jobManagerDeploymentStatus') or 'not deployed'})"
                                   + (f": {self.session_pods_cause}" if self.session_pods_cause else ""))
            return self._result()
        self._observe()
        self._step()
        return self._result()

    def _parse(self) -> None:
        try:
            spec = parse_session_job_spec(self.parent.get("spec"))
            self.config = session_config(self.settings, self.namespace, self.session, spec)
            error = validate_session_job(self.name, spec, self.config, self.reconciled, self.session,
                                         self.settings.validators, self.parent)
            if error is None and spec.job is not None and spec.job.jarURI:
                from .jaruri import check_jar_uri
                error = check_jar_uri(spec.job.jarURI, self.jar_allowlist)
        except SpecError as exc:
            spec, error = None, str(exc)
        if error:
            self.invalid = error
            if error_message(self.old_status.get("error")) != error:
                self._event("ValidationError", error, "Warning", "Operator")
            self.status["error"] = error_json("ValidationException", error)
            if self.reconciled is not None:
                self.desired = parse_session_job_spec(self.reconciled)
            return
        self.desired = spec
        if "ValidationException" in (self.old_status.get("error") or ""):
            self.status.pop("error", None)

    # ------------------------------------------------------------------ observe
    def _observe(self) -> None:
        """jobStatus from the session cluster's view of the submitted job."""
        flink = self.flink
        submission = self.internal.get("submission")
        if flink is None or not submission:
            return
        if not flink.reachable:
            if self.job_status.get("state") == "RUNNING":
                self.job_status["state"] = "RECONCILING"
            return
        job = flink.job(submission.get("jobId"))
        if job is None:
            return
        old = self.job_status.get("state")
        jobsync.observe_job_fields(self, job, old)
        jobsync.record_terminal_checkpoint(self, job, flink)
        stable = self.recon.get("lastReconciledSpec") == self.recon.get("lastStableSpec")
        if job.state == "RUNNING" and self.recon.get("state") == "DEPLOYED" and not stable:
            self._mark_stable()
        jobsync.report_failure(self, job, old, flink)
        if job.state == "RUNNING" and not self.invalid and stable:
            self.status.pop("error", None)

    # ------------------------------------------------------------------ state machine
    def _step(self) -> None:
        """One decision: first finish what the status records as in flight, then act on the spec."""
        if self._continue_recorded_step() or self.desired is None:
            return
        if self.reconciled is None:
            if not self.invalid and self.desired.job and self.desired.job.state == "running":
                submissions.prepare_submission(self, first=True)
            return
        if self.invalid:
            return
        diff, fields = classify(self.reconciled, spec_json(self.desired))
        if diff == DiffType.IGNORE and self.recon.get("state") != "UPGRADING":
            self._other_changes()
            return
        jobsync.announce_spec_change(self, diff, fields, "FlinkSessionJobSpec")
        if not jobsync.retry_later(self):
            self._upgrade(diff)

    def _continue_recorded_step(self) -> bool:
        """An operation in flight, or a recorded submission not yet made (or lost by the session cluster)."""
        if self.internal.get("pending"):
            self._progress_pending()
            return True
        submission = self.internal.get("submission")
        if submission and (not self.internal.get("submitted") or submissions.submission_lost(self, submission)):
            submissions.submit(self, submission)
            return True
        return False

    def _upgrade(self, diff: DiffType) -> None:
        assert self.desired is not None and self.desired.job is not None
        current = ((self.reconciled or {}).get("job") or {}).get("state", "running")
        wanted = self.desired.job.state
        submission = self.internal.get("submission")
        if submission and current == "running":
            self._suspend(diff, wanted)
            return
        if submission and current == "suspended":
            self.internal.pop("submission")
            self.internal.pop("submitted", None)
            self.waiting_progress = True
            return
        if wanted == "suspended":
            if self.recon.get("state") == "UPGRADING":
                self.recon["state"] = "DEPLOYED"
            return
        submissions.prepare_submission(self, diff=diff)

    def _suspend(self, diff: DiffType, wanted: str) -> None:
        """Stop the submitted job the way its upgradeMode asks: cancel (stateless, savepoint redeploy) or stop
        with a savepoint; a job that already ended is suspended from its last checkpoint."""
        assert self.desired is not None and self.desired.job is not None
        state = self.job_status.get("state")
        job_id = self.internal["submission"]["jobId"]
        if state in TERMINAL_JOB_STATES or self._job_gone(job_id):
            if state in TERMINAL_JOB_STATES and \
                    (self.old_status.get("jobStatus") or {}).get("state") not in TERMINAL_JOB_STATES:
                self.waiting_progress = True  # the terminal state and its checkpoint path must be durable first
                return
            self._finish_suspend(wanted, "stateless" if self.desired.job.upgradeMode == "stateless" else "savepoint")
            return
        if state == "CANCELLING":
            self.waiting_progress = True
            return
        self._event("Suspended", "Suspending existing deployment.", component="JobManagerDeployment")
        if not self._record_stop(diff, job_id, state):
            self.waiting_progress = True
            return
        self.recon["state"] = "UPGRADING"
        self.waiting_progress = True

    def _job_gone(self, job_id: str) -> bool:
        """The session cluster answers and does not know the job."""
        return self.flink is not None and self.flink.reachable and self.flink.jobs is not None and \
            self.flink.job(job_id) is None

    def _record_stop(self, diff: DiffType, job_id: str, state: str | None) -> bool:
        """Record the cancel or stop-with-savepoint (issued on the next sync, once durable). False: nothing to do
        yet (the job is not running)."""
        assert self.desired is not None and self.desired.job is not None
        redeploy = diff == DiffType.SAVEPOINT_REDEPLOY
        if redeploy:
            self.internal["redeployFrom"] = self.desired.job.initialSavepointPath
        if redeploy or self.desired.job.upgradeMode == "stateless":
            self.internal["pending"] = records.cancel_record(
                job_id, self.now_ms, restore_mode="savepoint" if redeploy else "stateless")
            return True
        if state != "RUNNING":
            return False
        attempt = int(self.internal.get("attempts") or 0)
        self.internal["pending"] = records.stop_record(derive_id(self.uid, "stop", job_id, attempt), job_id,
                                                       self.now_ms)
        return True

    def _other_changes(self) -> None:
        submission = self.internal.get("submission")
        if self.desired is None or self.desired.job is None or not submission or \
                self.job_status.get("state") != "RUNNING" or ((self.reconciled or {}).get("job") or {}).get("state") != "running":
            return
        nonce = self.desired.job.savepointTriggerNonce
        trigger_type, key = None, None
        if nonce is not None and nonce != ((self.reconciled or {}).get("job") or {}).get("savepointTriggerNonce"):
            trigger_type, key = "MANUAL", nonce
        else:
            due = self._periodic_due_in_ms()
            if due is not None and due <= 0:
                trigger_type, key, nonce = "PERIODIC", self.now_ms + due, None
        if trigger_type is None:
            return
        self._start_savepoint(submission["jobId"], trigger_type, nonce, key)

    # ------------------------------------------------------------------ deletion
    def _finalize(self) -> SyncResult:
        """Stop the job before the resource goes: savepoint on deletion (recorded first) or cancel."""
        self.status["lifecycleState"] = "DELETING"
        if self.old_status.get("lifecycleState") not in ("DELETING", "DELETED"):
            self._event("Cleanup", "Cleaning up FlinkSessionJob", component="Operator")
        submission = self.internal.get("submission")
        if not submission or self._nothing_to_stop():
            if self.internal.get("deleteReady") and (self.old_status.get("flinkSync") or {}).get("deleteReady") is None:
                return self._result(keep_lifecycle=True, finalized=False, resync=0.5)
            self.status["lifecycleState"] = "DELETED"
            self.internal.pop("submission", None)
            return self._result(keep_lifecycle=True, finalized=True)
        self._observe()
        if self.internal.get("pending"):
            self._progress_pending()
            return self._result(keep_lifecycle=True, finalized=False,
                                resync=0.5 if self.internal.get("deleteReady") else 2.0)
        job_id = submission["jobId"]
        if flinkconf.is_true(self.config, OP + "job.savepoint-on-deletion") and self.job_status.get("state") == "RUNNING" \
                and snapshots.savepoint_dir(self.config):
            self.internal["pending"] = records.stop_record(derive_id(self.uid, "stop", job_id, "delete"), job_id,
                                                           self.now_ms, "delete")
        else:
            self.internal["pending"] = records.cancel_record(job_id, self.now_ms, "delete")
        return self._result(keep_lifecycle=True, finalized=False, resync=1.0)

    def _nothing_to_stop(self) -> bool:
        """The job ended, its deletion savepoint is recorded, or its session cluster is gone or not ready. A session
        cluster being deleted waits for its session jobs (block-on-session-jobs), so its job must still be
        cancelled properly; only a session cluster that is gone releases the job at once."""
        session_gone = self.session is None or (self.session.get("status") or {}).get("lifecycleState") == "DELETED"
        return self.job_status.get("state") in TERMINAL_JOB_STATES or session_gone or not self._session_ready() \
            or bool(self.internal.get("deleteReady"))

    # ------------------------------------------------------------------ result
    def _result(self, keep_lifecycle: bool = False, finalized: bool | None = None,
                resync: float | None = None) -> SyncResult:
        if not keep_lifecycle:
            self.status.pop("lifecycleState", None)
            self.status["lifecycleState"] = lifecycle_state(self.status, is_deployment=False)
        self.status["observedGeneration"] = self.generation
        _conditions(self)
        if not self.internal:
            self.status.pop("flinkSync", None)
        if not self.job_status:
            self.status.pop("jobStatus", None)
        return SyncResult(status=self.status, children=[], actions=self.actions, events=self.events,
                          resync_after_seconds=self._resync_after() if resync is None else resync,
                          finalized=finalized)


    def _resync_after(self) -> float:
        """Soon while something is in flight, otherwise the reconcile interval; never past the next periodic
        savepoint."""
        busy = self.waiting_progress or self.waiting_reason or self.recon.get("state") == "UPGRADING" or \
            self.status.get("lifecycleState") == "DEPLOYED"
        resync = self.settings.progress_interval_s if busy else self.settings.stable_interval_s
        due = self._periodic_due_in_ms()
        if due is not None and due > 0:
            resync = min(resync, max(1.0, due / 1000))
        return resync


def _conditions(s: _SessionJobSync) -> None:
    """Ready (the job runs, or why it waits for its session cluster) and Degraded (an error)."""
    now = iso(s.now_ms)
    conditions = list(s.status.get("conditions") or [])
    running = s.job_status.get("state") == "RUNNING"
    if s.waiting_reason:
        conditions = set_condition(conditions, "Ready", False, "WaitingForSessionCluster", s.waiting_reason,
                                   now, s.generation)
    else:
        conditions = set_condition(conditions, "Ready", running, "JobRunning" if running else "JobNotRunning",
                                   f"lifecycle {s.status.get('lifecycleState')}, job {s.job_status.get('state')}",
                                   now, s.generation)
    error = error_message(s.status.get("error"))
    conditions = set_condition(conditions, "Degraded", bool(error), "Error" if error else "AsExpected",
                               error[:512] if error else "no error", now, s.generation)
    s.status["conditions"] = conditions


def sync_session_job(parent: dict[str, Any], session: dict[str, Any] | None, flink: FlinkObservation | None,
                     now_ms: int, settings: CoreSettings, finalizing: bool = False,
                     jar_allowlist: tuple[str, ...] = ("https://",),
                     session_pods: list[dict[str, Any]] | None = None,
                     children: dict[str, Any] | None = None) -> SyncResult:
    """One sync of a FlinkSessionJob. Pure. `session_pods`: the session cluster's pods (customize relates them),
    so that a job waiting for its session cluster says what is wrong with it. `children`: its observed
    FlinkStateSnapshot children (sync/snapshot_resources.py)."""
    sync = _SessionJobSync(parent, session, flink, now_ms, settings, jar_allowlist)
    cause = podhealth.classify(podhealth.ClusterView(pods=tuple(session_pods or ())))
    sync.session_pods_cause = cause.message if cause is not None else None
    result = sync.run(finalizing)
    # Without the session cluster its part of the configuration is unknown: the snapshots are then kept as they are.
    config = sync.config if sync.desired is not None and session is not None else None
    return snapshot_resources.attach(result, snapshot_resources.JobRef("FlinkSessionJob", sync.name, sync.namespace),
                                     parent.get("status"), children, config, now_ms, settings.progress_interval_s)


def submission_failed(status: dict[str, Any], message: str) -> dict[str, Any]:
    """Fold a failed submit call back into the status (the next sync submits again with the same job id)."""
    status = copy.deepcopy(status)
    internal = status.setdefault("flinkSync", {})
    internal.pop("submitted", None)
    status["error"] = error_json("SubmissionException", message)
    return status
