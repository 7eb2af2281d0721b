"""Upgrades by mode (stateless, savepoint, last-state) and suspend, for a FlinkDeployment: stop or cancel the
running job the way its upgradeMode asks, record where to restore from, record and create the next cluster. The
order of the steps is the shared state machine's (`JobSync._upgrade` in sync/jobsync.py); every step that
depends on a value runs on a sync whose incoming status already holds it."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .. import flinkconf, snapshots
from ..diff import DiffType
from ..ids import derive_id
from ..model import Action
from ..records import PendingRecord
from ..render import is_kubernetes_ha
from ..snapshots import OP
from ..spec import spec_json
from ..status import TERMINAL_JOB_STATES
from . import health
from .cluster import cluster_record, first_job_id, observed_record

if TYPE_CHECKING:
    from ..deployment import DeploymentSync


def first_deploy(s: DeploymentSync) -> None:
    spec = s.desired
    assert spec is not None
    if spec.job is not None and spec.job.state == "suspended":
        return  # created suspended: nothing is deployed, lifecycle CREATED
    job_id = first_job_id(s.uid, s.generation) if spec.job is not None else None
    restore = spec.job.initialSavepointPath if spec.job is not None else None
    recorded = spec_json(spec)
    if spec.job is not None:
        recorded["job"]["upgradeMode"] = "savepoint" if restore else "stateless"
        job_status = s._job_status()
        job_status.update({"jobId": job_id, "jobName": s.name, "state": "RECONCILING"})
        if restore:
            job_status["upgradeSavepointPath"] = restore
    s._record_reconciled(recorded, first=True)
    recon = s._recon()
    recon["state"] = "DEPLOYED"
    recon["reconciliationTimestamp"] = s.now_ms
    s._set_records(cluster=cluster_record(spec, job_id, restore, s.generation, seq=1), deploys=1)
    s.status["jobManagerDeploymentStatus"] = "DEPLOYING"
    s.status.pop("error", None)
    s._event("Submit", "Starting deployment")


def deploy_next(s: DeploymentSync) -> None:
    nxt = s.flink_sync.next
    assert nxt is not None
    seen = observed_record(s._observed_jm())
    ours = seen is not None and seen.seq == nxt.seq
    if s._old_cluster_present() and not ours:
        s.waiting_progress = True
        return
    mark_stable = nxt.mark_stable
    s._set_records(next=None, cluster=nxt.replace(mark_stable=None), jm_seen=False)
    recon = s._recon()
    if recon.get("state") == "ROLLING_BACK":
        recon["state"] = "ROLLED_BACK"
    else:
        spec = copy.deepcopy(s.reconciled or {})
        if spec.get("job"):
            spec["job"]["state"] = "running"
        s._record_reconciled(spec)
        recon["state"] = "DEPLOYED"
        if mark_stable:
            s._mark_stable()
    recon["reconciliationTimestamp"] = s.now_ms
    job_status = s._job_status()
    if nxt.job_id:
        job_status.update({"jobId": nxt.job_id, "state": "RECONCILING"})
        job_status.pop("startTime", None)
    s.status["jobManagerDeploymentStatus"] = "DEPLOYING"
    if not s.invalid:
        s.status.pop("error", None)
    if nxt.job_id and is_kubernetes_ha(s._config_for(s._cluster_spec())):
        # Apache's restoreJob: with HA the new JobManager would run the job graph stored in HA (the old spec's
        # parallelism, arguments, ...) instead of the new one; the checkpoints stay. Before the cluster exists.
        s.actions.append(Action("remove_ha_job_graphs", {"name": s.name, "namespace": s.namespace}))
    s._event("Submit", "Starting deployment")


def can_scale_in_place(s: DeploymentSync) -> bool:
    return (s._config_for(s._cluster_spec()).get("scheduler-mode") or "").lower() == "reactive"


def scale_in_place(s: DeploymentSync) -> None:
    assert s.desired is not None and s.cluster is not None
    s._set_records(cluster=s.cluster.replace(spec=cluster_record(s.desired, None, None, 0).spec))
    spec = spec_json(s.desired)
    if spec.get("job") and s.reconciled and s.reconciled.get("job"):
        spec["job"]["upgradeMode"] = s.reconciled["job"].get("upgradeMode")
        spec["job"]["savepointTriggerNonce"] = s.reconciled["job"].get("savepointTriggerNonce")
    s._record_reconciled(spec)
    s._recon()["state"] = "DEPLOYED"
    s._recon()["reconciliationTimestamp"] = s.now_ms


def prepare_deploy(s: DeploymentSync, diff: DiffType) -> None:
    """Record the next deployment (job id, restore path) in status; the following sync creates it."""
    assert s.desired is not None
    job = s.desired.job
    job_status = s._job_status()
    recon_job = (s.reconciled or {}).get("job") or {}
    deploys = s.flink_sync.deploys or 1
    mark_stable = bool(s.flink_sync.mark_stable_on_deploy)
    s._set_records(mark_stable_on_deploy=None)
    if job is None:
        restore_mode, path, job_id = None, None, None
    else:
        restore_mode = "stateless" if job.upgradeMode == "stateless" else (recon_job.get("upgradeMode") or "stateless")
        redeploy_from = s.flink_sync.redeploy_from
        s._set_records(redeploy_from=None)
        if diff == DiffType.SAVEPOINT_REDEPLOY or redeploy_from:
            restore_mode, mark_stable = "savepoint", True
            job_status["upgradeSavepointPath"] = redeploy_from or job.initialSavepointPath
        path = job_status.get("upgradeSavepointPath") if restore_mode == "savepoint" else None
        if restore_mode == "last-state" and job_status.get("jobId"):
            job_id = job_status["jobId"]  # HA checkpoints are keyed by job id
        else:
            job_id = derive_id(s.uid, s.generation, deploys)
        job_status["jobId"] = job_id
    s._set_records(deploys=deploys + 1,
                   next=cluster_record(s.desired, job_id, path, s.generation, mark_stable, seq=deploys + 1))
    s._record_reconciled(s._target_spec("suspended", restore_mode))
    recon = s._recon()
    recon["state"] = "UPGRADING"
    recon["reconciliationTimestamp"] = s.now_ms
    s.waiting_progress = True


def suspend(s: DeploymentSync, diff: DiffType) -> None:
    """Stop the running job the way its upgradeMode asks, as the Apache operator does."""
    assert s.desired is not None and s.cluster is not None
    if s.desired.job is None:
        _suspend_session_cluster(s)
        return
    wanted = s.desired.job.state
    job_state = s._job_status().get("state")
    if diff == DiffType.SAVEPOINT_REDEPLOY:
        _savepoint_redeploy(s, wanted, job_state)
    elif s.desired.job.upgradeMode == "stateless":
        stateless_suspend(s, wanted, "stateless", cancel=job_state not in TERMINAL_JOB_STATES)
    elif job_state in TERMINAL_JOB_STATES:
        s._suspend_ended_job(wanted, "savepoint")
    elif job_state == "CANCELLING":
        s.waiting_progress = True
    elif s.desired.job.upgradeMode == "savepoint":
        _suspend_savepoint_mode(s, wanted, job_state)
    else:
        _suspend_last_state(s, wanted, job_state)


def _suspend_session_cluster(s: DeploymentSync) -> None:
    """A session cluster: delete it, then deploy the new one."""
    s._remove_cluster()
    s._record_reconciled(s._target_spec("running", None))
    s._recon()["state"] = "UPGRADING"
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    s._event("Suspended", "Suspending existing deployment.")
    s.waiting_progress = True


def _savepoint_redeploy(s: DeploymentSync, wanted: str, job_state: str | None) -> None:
    """Redeploy from initialSavepointPath (already durable: it is in the spec); stable at once."""
    assert s.desired is not None and s.desired.job is not None
    s._job_status()["upgradeSavepointPath"] = s.desired.job.initialSavepointPath
    s._set_records(mark_stable_on_deploy=True, redeploy_from=s.desired.job.initialSavepointPath)
    stateless_suspend(s, wanted, "savepoint", cancel=job_state not in TERMINAL_JOB_STATES)


def _version_changed(s: DeploymentSync) -> bool:
    cluster_spec = s._cluster_spec()
    return cluster_spec is not None and s.desired is not None and cluster_spec.flinkVersion != s.desired.flinkVersion


def _suspend_savepoint_mode(s: DeploymentSync, wanted: str, job_state: str | None) -> None:
    """Stop with a savepoint; a job that cannot take one falls back to last-state when allowed."""
    if job_state == "RUNNING" and s.status.get("jobManagerDeploymentStatus") == "READY":
        start_stop(s, wanted)
    elif _version_changed(s) or flinkconf.is_true(s.config, OP + "job.upgrade.last-state-fallback.enabled", True):
        _suspend_last_state(s, wanted, job_state)
    else:
        s.waiting_progress = True


def _suspend_last_state(s: DeploymentSync, wanted: str, job_state: str | None) -> None:
    """Keep the HA metadata and redeploy, or cancel and restore the latest checkpoint; a Flink version change
    needs a savepoint (or a cancel) first."""
    jm_ready = s.status.get("jobManagerDeploymentStatus") == "READY"
    cancellable = jm_ready and job_state not in (None, "RECONCILING") and job_state not in TERMINAL_JOB_STATES
    if _version_changed(s):
        if job_state == "RUNNING" and snapshots.savepoint_dir(s.config) and jm_ready:
            start_stop(s, wanted)
        elif cancellable:
            start_cancel(s, wanted)
        else:
            s.waiting_progress = True
        return
    ha = is_kubernetes_ha(s._config_for(s._cluster_spec())) and is_kubernetes_ha(s.config)
    if ha and not flinkconf.is_true(s.config, OP + "job.upgrade.last-state.job-cancel.enabled"):
        _suspend_keeping_ha(s, wanted)
    elif cancellable:
        start_cancel(s, wanted)
    elif ((s.reconciled or {}).get("job") or {}).get("upgradeMode") != "last-state" and \
            health.jobmanager_never_started(s):
        # Apache's rule for a JobManager that never started (crash loop, OOMKilled, image): no job ran on it, so
        # the edit that fixes it redeploys from the restore path recorded before (nothing to stop, nothing lost).
        s._finish_suspend(wanted, "savepoint")
    else:
        s.waiting_progress = True


def _suspend_keeping_ha(s: DeploymentSync, wanted: str) -> None:
    """Keep the HA metadata: delete the cluster, redeploy with the same job id; Flink resumes from HA."""
    s._event("Suspended", "Suspending existing deployment.")
    s._record_reconciled(s._target_spec("suspended", "last-state"))
    s._recon()["state"] = "UPGRADING" if wanted == "running" else "DEPLOYED"
    if wanted != "running":
        s._mark_stable()
    s._remove_cluster()
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    s._job_status()["state"] = "FINISHED"  # as Apache records a completed suspend; nothing runs now
    s.waiting_progress = True


def stateless_suspend(s: DeploymentSync, wanted: str, restore_mode: str, cancel: bool) -> None:
    assert s.cluster is not None
    job_id = s.cluster.job_id
    if cancel and job_id and s.status.get("jobManagerDeploymentStatus") == "READY":
        s.actions.append(Action("cancel", {"job_id": job_id}, required=False))
    s._event("Suspended", "Suspending existing deployment.")
    s._finish_suspend(wanted, restore_mode)
    # Nothing to keep: the cluster goes in this same sync.
    s._remove_cluster()
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    s._job_status()["state"] = "CANCELED" if cancel else s._job_status().get("state")


def start_stop(s: DeploymentSync, wanted: str, purpose: str | None = None) -> None:
    assert s.cluster is not None
    job_id = s.cluster.job_id
    assert job_id is not None  # only a job is stopped
    trigger_id = derive_id(s.uid, "stop", job_id, s.flink_sync.attempts or 0)
    pending = PendingRecord.stop(trigger_id, job_id, s.now_ms,
                                 purpose or ("upgrade" if wanted == "running" else "suspend"))
    # Intent first: the stop is issued on the next sync, once this record is durable in status.
    s._set_records(pending=pending)
    if pending.purpose != "delete":
        s._recon()["state"] = "UPGRADING"
        s._event("Suspended", "Suspending existing deployment.")
    s.waiting_progress = True


def start_cancel(s: DeploymentSync, wanted: str, purpose: str | None = None) -> None:
    assert s.cluster is not None
    job_id = s.cluster.job_id
    assert job_id is not None  # only a job is cancelled
    s._set_records(pending=PendingRecord.cancel(job_id, s.now_ms,
                                                purpose or ("upgrade" if wanted == "running" else "suspend")))
    s._recon()["state"] = "UPGRADING"
    s._event("Suspended", "Suspending existing deployment.")
    s.waiting_progress = True
