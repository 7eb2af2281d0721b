"""Deletion (the finalize hook): savepoint on deletion, cancel, HA data cleanup, and the session cluster that
waits for its session jobs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import flinkconf, snapshots
from ..model import Action, SyncResult
from ..snapshots import OP
from ..status import TERMINAL_JOB_STATES, error_json, error_message
from . import observe, upgrade

if TYPE_CHECKING:
    from ..deployment import _Sync as DeploymentSync


def finalize(s: DeploymentSync) -> SyncResult:
    """Apache's cleanup order: a session cluster waits for its session jobs; a job takes its savepoint on
    deletion (recorded before the cluster goes) or is cancelled; then the HA data and the cluster go."""
    if s.old_status.get("lifecycleState") not in ("DELETING", "DELETED"):
        s._event("Cleanup", "Cleaning up FlinkDeployment", component="Operator")
    s.status["lifecycleState"] = "DELETING"
    if s.cluster and not s._is_app() and _blocked_by_session_jobs(s):
        return s._result(keep_lifecycle=True, resync=5.0, finalized=False)
    if s.cluster and s._is_app() and not s.internal.get("deleteReady") and not _stop_job(s):
        return s._result(keep_lifecycle=True, resync=s._progress_interval(), finalized=False)
    if s.internal.get("deleteReady") and s.old_status.get("flinkSync", {}).get("deleteReady") is None:
        # The deletion savepoint is recorded in this response; remove the cluster on the next call.
        return s._result(keep_lifecycle=True, resync=0.5, finalized=False)
    s.actions.append(Action("delete_ha_data", {"name": s.name, "namespace": s.namespace}, required=False))
    s._remove_cluster()
    s.internal.pop("next", None)
    s.status["lifecycleState"] = "DELETED"
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    return s._result(keep_lifecycle=True, finalized=True)


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
    if s.internal.get("pending"):
        s._progress_pending()
        return bool(s.internal.get("deleteReady"))
    if flinkconf.is_true(s.config, OP + "job.savepoint-on-deletion") and s._job_running() \
            and snapshots.savepoint_dir(s.config):
        upgrade.start_stop(s, "suspended", purpose="delete")
        return False
    if s.cluster.get("jobId") and s.status.get("jobManagerDeploymentStatus") == "READY" and \
            s._job_status().get("state") not in TERMINAL_JOB_STATES:
        s.actions.append(Action("cancel", {"job_id": s.cluster["jobId"]}, required=False))
    return True
