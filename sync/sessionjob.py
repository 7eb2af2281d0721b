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

from . import jobsync, podhealth, snapshot_resources
from . import sessionjob_submission as submissions
from .diff import DiffType
from .flinkdeployment.cluster import iso
from .ids import derive_id
from .intake import usable_status
from .jaruri import check_jar_uri
from .jobsync import JobSync, ReadSpec
from .model import (
    CoreSettings,
    FlinkObservation,
    ObservationPlan,
    SyncResult,
)
from .records import FlinkSyncRecord, PendingRecord
from .sessionjob_submission import session_config
from .snapshots import savepoint_on_deletion
from .spec import (
    FlinkSessionJobSpec,
    parse_session_job_spec,
)
from .status import (
    TERMINAL_JOB_STATES,
    error_json,
    error_message,
    set_condition,
)
from .validation import validate_session_job


def plan_observation(parent: dict[str, Any], session: dict[str, Any] | None) -> ObservationPlan:
    status = usable_status(parent.get("status"))
    if session is None or (session.get("status") or {}).get("jobManagerDeploymentStatus") != "READY":
        return ObservationPlan()
    records = FlinkSyncRecord.from_json(status.get("flinkSync") or {})
    submission, pending = records.submission, records.pending
    job_id = (submission.job_id if submission is not None else None) or \
        (pending.job_id if pending is not None else None) or (status.get("jobStatus") or {}).get("jobId")
    if not job_id:
        return ObservationPlan()
    trigger = pending.trigger_id if pending is not None and pending.op in ("stop", "savepoint") else None
    return ObservationPlan(query_cluster=True, job_id=job_id,
                           trigger_job_id=pending.job_id if trigger and pending is not None else None,
                           trigger_id=trigger, latest_checkpoint=True, failure_cause=True)


class SessionJobSync(JobSync):
    """One sync of a FlinkSessionJob: the shared job state machine (`sync/jobsync.py`) with a submission to the
    session cluster in place of a cluster (`sync/sessionjob_submission.py`)."""

    SPEC_KIND = "FlinkSessionJobSpec"
    EVENT_COMPONENT = "Job"
    IS_DEPLOYMENT = False

    def __init__(self, parent: dict[str, Any], session: dict[str, Any] | None, flink: FlinkObservation | None,
                 now_ms: int, settings: CoreSettings, jar_allowlist: tuple[str, ...]):
        super().__init__(parent, flink, now_ms, settings)
        self.session = session
        self.jar_allowlist = jar_allowlist
        self.recon: dict[str, Any] = self._recon()
        self.job_status: dict[str, Any] = self._job_status()
        self.desired: FlinkSessionJobSpec | None = None
        self.waiting_reason: str | None = None
        self.session_pods_cause: str | None = None  # what is wrong with the session cluster's pods (podhealth)

    def _session_ready(self) -> bool:
        return ((self.session or {}).get("status") or {}).get("jobManagerDeploymentStatus") == "READY"

    # ------------------------------------------------------------------ reading the spec
    def _parse_spec(self, spec: Any) -> FlinkSessionJobSpec:
        return parse_session_job_spec(spec)

    def _read_spec(self) -> ReadSpec:
        spec = parse_session_job_spec(self.parent.get("spec"))
        config = session_config(self.settings, self.namespace, self.session, spec)
        error = validate_session_job(self.name, spec, config, self.reconciled, self.session,
                                     self.settings.validators, self.parent)
        if error is None and spec.job is not None and spec.job.jarURI:
            error = check_jar_uri(spec.job.jarURI, self.jar_allowlist)
        return spec, config, error

    def _config_when_invalid(self, read_config: dict[str, str]) -> dict[str, str]:
        return read_config

    def _validation_error_fixed(self, old_error: str) -> bool:
        return "ValidationException" in old_error

    def _waiting_for_dependency(self) -> bool:
        """The session cluster is not there, or not READY: nothing can be observed or submitted yet."""
        if self.session is None:
            self.waiting_reason = f"session FlinkDeployment '{(self.parent.get('spec') or {}).get('deploymentName')}' not found in namespace {self.namespace}"
            if self.recon.get("lastReconciledSpec") and self.job_status.get("state") == "RUNNING":
                self.job_status["state"] = "RECONCILING"
            return True
        if not self._session_ready():
            self.waiting_reason = (f"waiting for session cluster '{self.session['metadata']['name']}' to be READY "
                                   f"(now {(self.session.get('status') or {}).get('jobManagerDeploymentStatus') or 'not deployed'})"
                                   + (f": {self.session_pods_cause}" if self.session_pods_cause else ""))
            return True
        return False

    # ------------------------------------------------------------------ observe
    def _observe(self) -> None:
        """jobStatus from the session cluster's view of the submitted job."""
        flink = self.flink
        submission = self.flink_sync.submission
        if flink is None or submission is None:
            return
        if not flink.reachable:
            if self.job_status.get("state") == "RUNNING":
                self.job_status["state"] = "RECONCILING"
            return
        job = flink.job(submission.job_id)
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
    def _continue_recorded_step(self) -> bool:
        """An operation in flight, or a recorded submission not yet made (or lost by the session cluster)."""
        if self.flink_sync.pending is not None:
            self._progress_pending()
            return True
        submission = self.flink_sync.submission
        if submission and (not self.flink_sync.submitted or submissions.submission_lost(self, submission)):
            submissions.submit(self, submission)
            return True
        return False

    def _without_a_valid_change(self) -> None:
        """The first submission of a valid spec whose job should run; an invalid spec changes nothing."""
        assert self.desired is not None
        if self.reconciled is None and not self.invalid and self.desired.job and self.desired.job.state == "running":
            submissions.prepare_submission(self, first=True)

    def _deployed_state(self) -> str | None:
        if self.flink_sync.submission is None:
            return None
        return self._reconciled_job().get("state", "running")  # type: ignore[no-any-return]

    def _drop_stopped_deployment(self) -> None:
        self._set_records(submission=None, submitted=None)

    def _prepare_deployment(self, diff: DiffType) -> None:
        submissions.prepare_submission(self, diff=diff)

    def _suspend(self, diff: DiffType) -> None:
        """Stop the submitted job the way its upgradeMode asks: cancel (stateless, savepoint redeploy) or stop
        with a savepoint; a job that already ended is suspended from its last checkpoint."""
        assert self.desired is not None and self.desired.job is not None
        wanted = self.desired.job.state
        state = self.job_status.get("state")
        assert self.flink_sync.submission is not None
        job_id = self.flink_sync.submission.job_id
        assert job_id is not None  # a submission names its job
        mode = "stateless" if self.desired.job.upgradeMode == "stateless" else "savepoint"
        if state in TERMINAL_JOB_STATES:
            self._suspend_ended_job(wanted, mode)
            return
        if self._job_gone(job_id):
            self._finish_suspend(wanted, mode)
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
            self._set_records(redeploy_from=self.desired.job.initialSavepointPath)
        if redeploy or self.desired.job.upgradeMode == "stateless":
            self._set_records(pending=PendingRecord.cancel(job_id, self.now_ms,
                                                           restore_mode="savepoint" if redeploy else "stateless"))
            return True
        if state != "RUNNING":
            return False
        attempt = self.flink_sync.attempts or 0
        self._set_records(pending=PendingRecord.stop(derive_id(self.uid, "stop", job_id, attempt), job_id, self.now_ms))
        return True

    def _steady(self) -> None:
        """A running job: a manual or periodic savepoint."""
        submission = self.flink_sync.submission
        if self.desired is None or self.desired.job is None or submission is None or submission.job_id is None or \
                self.job_status.get("state") != "RUNNING" or self._reconciled_job().get("state") != "running":
            return
        self._start_due_savepoint(submission.job_id)

    # ------------------------------------------------------------------ deletion
    def _finalize(self) -> SyncResult:
        """Stop the job before the resource goes: savepoint on deletion (recorded first) or cancel."""
        self.status["lifecycleState"] = "DELETING"
        if self.old_status.get("lifecycleState") not in ("DELETING", "DELETED"):
            self._event("Cleanup", "Cleaning up FlinkSessionJob", component="Operator")
        submission = self.flink_sync.submission
        if submission is None or self._nothing_to_stop():
            if self._delete_savepoint_just_recorded():
                return self._result(keep_lifecycle=True, finalized=False, resync=0.5)
            self.status["lifecycleState"] = "DELETED"
            self._set_records(submission=None)
            return self._result(keep_lifecycle=True, finalized=True)
        self._observe()
        if self.flink_sync.pending is not None:
            self._progress_pending()
            return self._result(keep_lifecycle=True, finalized=False,
                                resync=0.5 if self.flink_sync.delete_ready else 2.0)
        job_id = submission.job_id
        assert job_id is not None  # a submission names its job
        if savepoint_on_deletion(self.config) and self.job_status.get("state") == "RUNNING":
            self._set_records(pending=PendingRecord.stop(derive_id(self.uid, "stop", job_id, "delete"), job_id,
                                                         self.now_ms, "delete"))
        else:
            self._set_records(pending=PendingRecord.cancel(job_id, self.now_ms, "delete"))
        return self._result(keep_lifecycle=True, finalized=False, resync=1.0)

    def _nothing_to_stop(self) -> bool:
        """The job ended, its deletion savepoint is recorded, or its session cluster is gone or not ready. A session
        cluster being deleted waits for its session jobs (block-on-session-jobs), so its job must still be
        cancelled properly; only a session cluster that is gone releases the job at once."""
        session_gone = self.session is None or (self.session.get("status") or {}).get("lifecycleState") == "DELETED"
        return self.job_status.get("state") in TERMINAL_JOB_STATES or session_gone or not self._session_ready() \
            or bool(self.flink_sync.delete_ready)

    # ------------------------------------------------------------------ the answer
    def _kind_status(self) -> None:
        if not self.job_status:
            self.status.pop("jobStatus", None)

    def _conditions(self) -> None:
        _conditions(self)

    def _busy(self) -> bool:
        return bool(self.waiting_reason) or self.recon.get("state") == "UPGRADING" or \
            self.status.get("lifecycleState") == "DEPLOYED"

    def _takes_periodic_savepoints(self) -> bool:
        return True


def _conditions(s: SessionJobSync) -> None:
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
    sync = SessionJobSync(parent, session, flink, now_ms, settings, jar_allowlist)
    cause = podhealth.classify(podhealth.ClusterView(pods=tuple(session_pods or ())))
    sync.session_pods_cause = cause.message if cause is not None else None
    result = sync.run(finalizing)
    # Without the session cluster its part of the configuration is unknown: the snapshots are then kept as they are.
    config = sync.config if sync.desired is not None and session is not None else None
    return snapshot_resources.attach(result, snapshot_resources.JobRef("FlinkSessionJob", sync.name, sync.namespace),
                                     parent.get("status"), children, config, now_ms, settings.progress_interval_s,
                                     checkpoint_asked_at=sync.incoming_records.checkpoint_snapshot_at)


def submission_failed(status: dict[str, Any], message: str) -> dict[str, Any]:
    """Fold a failed submit call back into the status (the next sync submits again with the same job id)."""
    status = copy.deepcopy(status)
    records = FlinkSyncRecord.from_json(status.get("flinkSync") or {})
    status["flinkSync"] = records.replace(submitted=None).to_json()
    status["error"] = error_json("SubmissionException", message)
    return status
