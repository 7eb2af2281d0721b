"""Deletion (the finalize hook): savepoint on deletion, cancel, HA data cleanup, and the session cluster that
waits for its session jobs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import flinkconf, snapshots
from ..model import Action, SyncResult
from ..render import is_kubernetes_ha
from ..snapshots import OP
from ..status import TERMINAL_JOB_STATES, error_json, error_message
from . import observe, upgrade

if TYPE_CHECKING:
    from ..deployment import DeploymentSync


def finalize(s: DeploymentSync) -> SyncResult:
    """Apache's cleanup order: a session cluster waits for its session jobs; a job takes its savepoint on
    deletion (recorded before the cluster goes) or is cancelled; then the HA data and the cluster go."""
    if s.old_status.get("lifecycleState") not in ("DELETING", "DELETED"):
        s._event("Cleanup", "Cleaning up FlinkDeployment", component="Operator")
    s.status["lifecycleState"] = "DELETING"
    if s.cluster and not s._is_app() and _blocked_by_session_jobs(s):
        return s._result(keep_lifecycle=True, resync=5.0, finalized=False)
    if s.cluster and s._is_app() and not s.flink_sync.delete_ready and not _stop_job(s):
        return s._result(keep_lifecycle=True, resync=s._progress_interval(), finalized=False)
    if s._delete_savepoint_just_recorded():
        # The deletion savepoint is recorded in this response; remove the cluster on the next call.
        return s._result(keep_lifecycle=True, resync=0.5, finalized=False)
    if _jobmanager_may_still_run(s):
        return s._result(keep_lifecycle=True, resync=2.0, finalized=False)
    s.actions.append(Action("delete_ha_data", {"name": s.name, "namespace": s.namespace}, required=False))
    s._remove_cluster()
    s._set_records(next=None)
    s.status["lifecycleState"] = "DELETED"
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    return s._result(keep_lifecycle=True, finalized=True)


def _jobmanager_may_still_run(s: DeploymentSync) -> bool:
    """Kubernetes HA: a JobManager that still runs re-creates its leader ConfigMap right after it is deleted (seen
    on the sandbox), so the HA data goes only once the cluster's Deployments are gone and their pods had their
    termination grace period to stop (the Apache operator deletes the Deployments and waits for them first)."""
    if not is_kubernetes_ha(s._config_for(s._cluster_spec() or s.desired)):
        return False
    if s.cluster or s._old_cluster_present():
        jm_pod = (((s._observed_jm() or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        grace_s = jm_pod.get("terminationGracePeriodSeconds")
        s._remove_cluster()
        s._set_records(next=None, ha_cleanup_at=s.now_ms + 1000 * int(grace_s if isinstance(grace_s, int) else 30))
        s.status["jobManagerDeploymentStatus"] = "MISSING"
        return True
    return s.now_ms < int(s.flink_sync.ha_cleanup_at or 0)


def _blocked_by_session_jobs(s: DeploymentSync) -> bool:
    """kubernetes.operator.session.deletion.block-on-session-jobs: a session cluster outlives its jobs."""
    blocking = sorted((job.get("metadata") or {}).get("name", "") for job in s.session_jobs)
    if not blocking or not flinkconf.is_true(s.config, OP + "session.deletion.block-on-session-jobs", True):
        return False
    message = f"The session jobs {blocking} should be deleted first"
    s.status["error"] = error_json("CleanupFailedException", message, "CleanupFailed")
    if error_message(s.old_status.get("error")) != message:
        s._event("CleanupFailed", message, "Warning", "Operator")
    return True


def _stop_job(s: DeploymentSync) -> bool:
    """Stop the job before its cluster goes. Returns whether the cluster may go on in this sync."""
    assert s.cluster is not None
    observe.observe(s)
    if s.flink_sync.pending is not None:
        s._progress_pending()
        return bool(s.flink_sync.delete_ready)
    if snapshots.savepoint_on_deletion(s.config) and s._job_running():
        upgrade.start_stop(s, "suspended", purpose="delete")
        return False
    if s.cluster.job_id and s.status.get("jobManagerDeploymentStatus") == "READY" and \
            s._job_status().get("state") not in TERMINAL_JOB_STATES:
        s.actions.append(Action("cancel", {"job_id": s.cluster.job_id}, required=False))
    return True
