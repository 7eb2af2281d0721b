"""Observation: what the JobManager Deployment and Flink say, folded into status (jobManagerDeploymentStatus,
jobStatus, clusterInfo), and adoption of a cluster whose record the status lost."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import jobsync, observed
from ..model import FlinkObservation, JobInfo
from ..records import DeploymentRecord
from ..status import TERMINAL_JOB_STATES, error_json
from . import health
from .cluster import RECORD_ANNOTATION, observed_record, removed_on_purpose

if TYPE_CHECKING:
    from ..deployment import DeploymentSync


def adopt_newer_cluster(s: DeploymentSync) -> None:
    """A JobManager Deployment rendered from a record the status does not hold means that an earlier
    response was applied but its status write was lost, or that the status lost its records (restored from
    a backup, rewritten by hand or by another operator): take that record as deployed."""
    jm = s._observed_jm()
    text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
    if text and s.cluster and text == s._record_annotation(s.cluster):
        return  # the steady case: the JobManager runs the record the status already has
    seen = observed_record(jm)
    if seen is None or (jm or {}).get("metadata", {}).get("deletionTimestamp") or not _unknown_record(s, seen):
        return
    assert seen.seq is not None  # observed_record
    s._set_records(next=None, cluster=seen, deploys=max(seen.seq, s.flink_sync.deploys or 0))
    spec = _adopted_spec(s, seen)
    if spec.get("job") is not None:
        s._job_status().update({"jobId": seen.job_id, "state": "RECONCILING"})
    s._record_reconciled(spec)
    recon = s._recon()
    recon["state"] = "ROLLED_BACK" if recon.get("state") == "ROLLING_BACK" else "DEPLOYED"
    recon["reconciliationTimestamp"] = s.now_ms


def _adopted_spec(s: DeploymentSync, seen: DeploymentRecord) -> dict[str, Any]:
    """The reconciled spec of an adopted record: running, with the restore mode and snapshot nonces the status
    already knew."""
    spec = seen.spec_json()
    if spec.get("job") is not None:
        old_job = (s.reconciled or {}).get("job") or {}
        spec["job"]["state"] = "running"
        spec["job"]["upgradeMode"] = old_job.get("upgradeMode") or spec["job"].get("upgradeMode")
        for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
            spec["job"][nonce] = old_job.get(nonce)
    return spec


def _unknown_record(s: DeploymentSync, seen: DeploymentRecord) -> bool:
    """Whether the observed JobManager runs a record the status does not know (and should adopt)."""
    assert seen.seq is not None  # observed_record
    nxt = s.flink_sync.next
    if nxt is not None and seen.seq == nxt.seq:
        return False  # deploy_next finishes this one
    if s.cluster is None and nxt is None:
        return not removed_on_purpose(s.old_status, s.flink_sync, seen)
    return seen.seq > max((s.cluster.seq if s.cluster is not None else None) or 0, s.flink_sync.deploys or 0)


def observe(s: DeploymentSync) -> None:
    """jobManagerDeploymentStatus from the JobManager Deployment and Flink's answer, then the job."""
    cluster = s.cluster
    if not cluster:
        if s.reconciled is not None:
            s.status["jobManagerDeploymentStatus"] = "MISSING"
        return
    jm = s._observed_jm()
    if jm is None:
        _jobmanager_absent(s)
        return
    s._set_records(jm_seen=True)
    jm_status = _jobmanager_status(s, jm)
    s.status["jobManagerDeploymentStatus"] = jm_status
    flink = s.flink
    if jm_status != "READY" or flink is None:
        if s._is_app() and s._job_status().get("state") == "RUNNING":
            s._job_status()["state"] = "RECONCILING"
        return
    _cluster_info(s, flink)
    if s._is_app():
        observe_job(s, cluster)
        return
    recon = s._recon()
    if recon.get("state") == "DEPLOYED" and recon.get("lastReconciledSpec") != recon.get("lastStableSpec"):
        s._mark_stable()
    clear_error_when_healthy(s)


def _jobmanager_absent(s: DeploymentSync) -> None:
    """Not yet created (DEPLOYING), or gone after it was seen (MISSING; lost unless the job is suspended)."""
    if not s.flink_sync.jm_seen:
        s.status["jobManagerDeploymentStatus"] = "DEPLOYING"
        return
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    if ((s.reconciled or {}).get("job") or {}).get("state") != "suspended":
        s.jm_lost = True


def _jobmanager_status(s: DeploymentSync, jm: dict[str, Any]) -> str:
    """Apache's JobManagerDeploymentStatus: READY once Flink answers, ERROR on a replica failure."""
    available = observed.is_available(jm)
    if available:
        return "READY" if s.flink is not None and s.flink.reachable else "DEPLOYED_NOT_READY"
    failure = observed.replica_failure(jm)
    if not failure:
        # A JobManager container that will not start (OOMKilled, crash looping, image): ERROR, reported by health.
        return "ERROR" if health.jobmanager_failed(s) else "DEPLOYING"
    if s.old_status.get("jobManagerDeploymentStatus") != "ERROR":
        message = f"[flink-main-container] {failure}"
        s.status["error"] = error_json("DeploymentFailedException", message, "FailedCreate")
        s._event("FailedCreate", message, "Warning")
    return "ERROR"


def _cluster_info(s: DeploymentSync, flink: FlinkObservation) -> None:
    if flink.flink_version:
        info = dict(s.status.get("clusterInfo") or {})
        info["flink-version"] = flink.flink_version
        if flink.flink_revision:
            info["flink-revision"] = flink.flink_revision
        s.status["clusterInfo"] = info


def observe_job(s: DeploymentSync, cluster: DeploymentRecord) -> None:
    """jobStatus from Flink's view of the recorded job, and what its state means for the resource."""
    flink = s.flink
    assert flink is not None
    job_status = s._job_status()
    job = flink.job(cluster.job_id)
    old_state = job_status.get("state")
    if job is None:
        if flink.jobs is not None and old_state not in TERMINAL_JOB_STATES:
            job_status["state"] = "RECONCILING"
        return
    jobsync.observe_job_fields(s, job, old_state)
    jobsync.record_terminal_checkpoint(s, job, flink)
    _stable_when_running_or_finished(s, job)
    jobsync.report_failure(s, job, old_state, flink)
    if job.state == "CANCELED" and old_state != "CANCELED":
        _cancelled_outside(s)
    if job.state == "RUNNING":
        clear_error_when_healthy(s)


def _stable_when_running_or_finished(s: DeploymentSync, job: JobInfo) -> None:
    recon = s._recon()
    if recon.get("state") != "DEPLOYED":
        return
    if job.state == "RUNNING" and recon.get("lastReconciledSpec") != recon.get("lastStableSpec"):
        s._mark_stable()
    if job.state == "FINISHED" and ((s.reconciled or {}).get("job") or {}).get("state") == "running":
        s._mark_stable()


def _cancelled_outside(s: DeploymentSync) -> None:
    """Cancelled outside the operator: the job counts as suspended, so the spec restores it (Apache does the
    same)."""
    recon = s._recon()
    if s.flink_sync.pending is not None or ((s.reconciled or {}).get("job") or {}).get("state") != "running" or \
            recon.get("state") not in ("DEPLOYED", "ROLLED_BACK"):
        return
    spec = dict(s.reconciled or {})
    spec["job"] = {**(spec.get("job") or {}), "state": "suspended", "upgradeMode": "savepoint"}
    s._record_reconciled(spec)


def clear_error_when_healthy(s: DeploymentSync) -> None:
    recon = s._recon()
    if s.invalid or s.flink_sync.retry_at or s.flink_sync.manual_restore:
        return  # a failed upgrade waiting for its retry, or a manual restore, keeps its error
    if s.status.get("jobManagerDeploymentStatus") != "ERROR" and s._job_status().get("state") != "FAILED" \
            and recon.get("lastReconciledSpec") == recon.get("lastStableSpec"):
        s.status.pop("error", None)
