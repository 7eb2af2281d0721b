"""Snapshots of a running job: manual (savepointTriggerNonce), periodic, and checkpoint triggers. The in-flight
operations themselves are in sync/pending.py (shared with FlinkSessionJobs)."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .. import snapshot_resources
from ..ids import derive_id
from ..model import Action
from ..snapshots import _opt

if TYPE_CHECKING:
    from ..deployment import DeploymentSync


def other_changes(s: DeploymentSync) -> None:
    """A running job whose spec is reconciled: a manual savepoint (new savepointTriggerNonce), a periodic one
    that is due, or a manual checkpoint (new checkpointTriggerNonce), in that order, one per sync."""
    if s.desired is None or s.desired.job is None or not s._job_running():
        return
    reconciled_job = s._reconciled_job()
    if reconciled_job.get("state") != "running":
        return
    assert s.cluster is not None  # _job_running
    job_id = s.cluster.job_id
    assert job_id is not None  # a job cluster's record names its job
    if s._start_due_savepoint(job_id):
        return
    checkpoint_nonce = s.desired.job.checkpointTriggerNonce
    if checkpoint_nonce is not None and checkpoint_nonce != reconciled_job.get("checkpointTriggerNonce"):
        _trigger_checkpoint(s, job_id, checkpoint_nonce)


def _trigger_checkpoint(s: DeploymentSync, job_id: str, nonce: int) -> None:
    """A manual checkpoint: fire and record the nonce (Flink keeps the checkpoint itself). With snapshot
    resources, record instead that a checkpoint resource is to be made: it is created on the next sync, once this
    record is durable, and the snapshot controller takes it (sync/snapshot_resources.py)."""
    assert s.desired is not None
    if snapshot_resources.checkpoint_as_resource(s.config, s.desired.flinkVersion):
        s._set_records(checkpoint_snapshot_at=s.now_ms)
    else:
        s.actions.append(Action("trigger_checkpoint", {
            "job_id": job_id, "checkpoint_type": _opt(s.config, "checkpoint.type", "FULL"),
            "trigger_id": derive_id(s.uid, "checkpoint", nonce)}))
    spec = copy.deepcopy(s.reconciled or {})
    spec["job"]["checkpointTriggerNonce"] = nonce
    was_stable = s._recon().get("lastReconciledSpec") == s._recon().get("lastStableSpec")
    s._record_reconciled(spec)
    if was_stable:
        s._mark_stable()
