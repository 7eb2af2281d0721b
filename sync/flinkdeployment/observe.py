"""Observation: what the JobManager Deployment and Flink say, folded into status (jobManagerDeploymentStatus,
jobStatus, clusterInfo), and adoption of a cluster whose record the status lost."""
from __future__ import annotations

import json

from typing import TYPE_CHECKING, Any

from .. import observed
from ..pending import settled
from ..status import TERMINAL_JOB_STATES, error_json
from .cluster import RECORD_ANNOTATION, observed_record

if TYPE_CHECKING:
    from ..deployment import _Sync as DeploymentSync


def adopt_newer_cluster(s: DeploymentSync) -> None:
    """A JobManager Deployment rendered from a record the status does not hold means that an earlier
    response was applied but its status write was lost, or that the status lost its records (restored from
    a backup, rewritten by hand or by another operator): take that record as deployed."""
    jm = s._observed_jm()
    text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
    if text and s.cluster and text == s._record_annotation(s.cluster):
        return  # the steady case: the JobManager runs the record the status already has
    seen = observed_record(jm)
    if seen is None or (jm or {}).get("metadata", {}).get("deletionTimestamp"):
        return
    nxt = s.internal.get("next")
    if nxt is not None and seen.get("seq") == nxt.get("seq"):
        return  # _deploy_next finishes this one
    if s.cluster is None and nxt is None:
        if not lost_record(s, seen):
            return
    elif seen["seq"] <= max(int((s.cluster or {}).get("seq") or 0), int(s.internal.get("deploys") or 0)):
        return
    s.internal.pop("next", None)
    s.internal["cluster"] = seen
    s.internal["deploys"] = max(seen["seq"], int(s.internal.get("deploys") or 0))
    spec = json.loads(seen["spec"])
    if spec.get("job") is not None:
        old_job = (s.reconciled or {}).get("job") or {}
        spec["job"]["state"] = "running"
        spec["job"]["upgradeMode"] = old_job.get("upgradeMode") or spec["job"].get("upgradeMode")
        for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
            spec["job"][nonce] = old_job.get(nonce)
        s._job_status().update({"jobId": seen.get("jobId"), "state": "RECONCILING"})
    s._record_reconciled(spec)
    recon = s._recon()
    if recon.get("state") != "ROLLING_BACK":
        recon["state"] = "DEPLOYED"
    else:
        recon["state"] = "ROLLED_BACK"
    recon["reconciliationTimestamp"] = s.now_ms


def lost_record(s: DeploymentSync, seen: dict[str, Any]) -> bool:
    """With no cluster record in status, whether the observed JobManager's record was lost rather than
    removed on purpose (a removal in flight: Metacontroller's cache may still show the deleted child)."""
    if "removed" in s.internal:
        return seen["seq"] > int(s.internal.get("removed") or 0)
    # A status from before `removed` existed: a removal there always left jobManagerDeploymentStatus MISSING.
    return s.old_status.get("jobManagerDeploymentStatus") != "MISSING"


def observe(s: DeploymentSync) -> None:
    cluster = s.cluster
    if not cluster:
        if s.reconciled is not None:
            s.status["jobManagerDeploymentStatus"] = "MISSING"
        return
    jm = s._observed_jm()
    flink = s.flink
    previous = s.old_status.get("jobManagerDeploymentStatus")
    if jm is None:
        recon_job_state = ((s.reconciled or {}).get("job") or {}).get("state")
        if s.internal.get("jmSeen") and recon_job_state != "suspended":
            s.jm_lost = True
            s.status["jobManagerDeploymentStatus"] = "MISSING"
            return
        if s.internal.get("jmSeen"):
            s.status["jobManagerDeploymentStatus"] = "MISSING"
            return
        s.status["jobManagerDeploymentStatus"] = "DEPLOYING"
        return
    s.internal["jmSeen"] = True
    failure = observed.replica_failure(jm)
    if observed.is_available(jm) and flink is not None and flink.reachable:
        jm_status = "READY"
    elif observed.is_available(jm):
        jm_status = "DEPLOYED_NOT_READY"
    elif failure:
        jm_status = "ERROR"
        if previous != "ERROR":
            message = f"[flink-main-container] {failure}"
            s.status["error"] = error_json("DeploymentFailedException", message, "FailedCreate")
            s._event("FailedCreate", message, "Warning")
    else:
        jm_status = "DEPLOYING"
    s.status["jobManagerDeploymentStatus"] = jm_status
    if jm_status != "READY" or flink is None:
        if s._is_app() and s._job_status().get("state") == "RUNNING":
            s._job_status()["state"] = "RECONCILING"
        return
    if flink.flink_version:
        info = dict(s.status.get("clusterInfo") or {})
        info["flink-version"] = flink.flink_version
        if flink.flink_revision:
            info["flink-revision"] = flink.flink_revision
        s.status["clusterInfo"] = info
    recon_state = s._recon().get("state")
    if not s._is_app():
        if recon_state == "DEPLOYED" and s._recon().get("lastReconciledSpec") != s._recon().get("lastStableSpec"):
            s._mark_stable()
        clear_error_when_healthy(s)
        return
    observe_job(s, cluster)


def observe_job(s: DeploymentSync, cluster: dict[str, Any]) -> None:
    flink = s.flink
    assert flink is not None
    job_status = s._job_status()
    job_id = cluster.get("jobId")
    job = flink.job(job_id)
    old_state = job_status.get("state")
    if job is None:
        if flink.jobs is not None and old_state not in TERMINAL_JOB_STATES:
            job_status["state"] = "RECONCILING"
        return
    job_status["jobId"] = job.job_id
    job_status["jobName"] = job.name
    if job.start_time:
        job_status["startTime"] = str(job.start_time)
    if job.state != old_state:
        job_status["state"] = job.state
        job_status["updateTime"] = str(s.now_ms)
        message = f"Job status changed from {old_state} to {job.state}" if old_state else f"Job status changed to {job.state}"
        s._event("JobStatusChanged", message, component="Job")
    recon = s._recon()
    recon_job_state = ((s.reconciled or {}).get("job") or {}).get("state")
    if job.state in TERMINAL_JOB_STATES and flink.latest_checkpoint_path and settled(job, s.now_ms) and \
            s.internal.get("checkpointOf") != job.job_id and not s.internal.get("pending"):
        # Once per terminal job, and only after Flink's checkpoint statistics have caught up with its end.
        job_status["upgradeSavepointPath"] = flink.latest_checkpoint_path
        s.internal["checkpointOf"] = job.job_id
    if job.state == "RUNNING" and recon.get("state") == "DEPLOYED" and \
            recon.get("lastReconciledSpec") != recon.get("lastStableSpec"):
        s._mark_stable()
    if job.state == "FINISHED" and recon_job_state == "running" and recon.get("state") == "DEPLOYED":
        s._mark_stable()
    if job.state == "FAILED" and old_state != "FAILED":
        cause = flink.failure_cause or "Job failed"
        s.status["error"] = error_json("JobFailedException", cause)
        s._event("Error", cause, "Warning", "Job")
    if job.state == "CANCELED" and old_state != "CANCELED" and not s.internal.get("pending") and \
            recon_job_state == "running" and recon.get("state") in ("DEPLOYED", "ROLLED_BACK"):
        # Cancelled outside the operator: the job counts as suspended, so the spec restores it (Apache does the same).
        spec = dict(s.reconciled or {})
        spec["job"] = {**(spec.get("job") or {}), "state": "suspended", "upgradeMode": "savepoint"}
        s._record_reconciled(spec)
    if job.state == "RUNNING":
        clear_error_when_healthy(s)


def clear_error_when_healthy(s: DeploymentSync) -> None:
    recon = s._recon()
    if s.invalid or s.internal.get("retryAt") or s.internal.get("manualRestore"):
        return  # a failed upgrade waiting for its retry, or a manual restore, keeps its error
    if s.status.get("jobManagerDeploymentStatus") != "ERROR" and s._job_status().get("state") != "FAILED" \
            and recon.get("lastReconciledSpec") == recon.get("lastStableSpec"):
        s.status.pop("error", None)
