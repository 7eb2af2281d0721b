"""Recovery and rollback: a lost JobManager Deployment (Apache's JM deployment recovery, or 'Manual restore
required'), and the rollback of an upgrade that did not become stable in time."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import flinkconf
from ..ids import derive_id
from ..model import Action
from ..render import is_ha_enabled, is_kubernetes_ha
from ..snapshots import OP, _duration_ms
from ..spec import deserialize_reconciled, parse_deployment_spec
from ..status import TERMINAL_JOB_STATES, error_json
from .cluster import cluster_record

if TYPE_CHECKING:
    from ..deployment import DeploymentSync
    from ..spec import FlinkDeploymentSpec


def jm_missing(s: DeploymentSync, previous: str | None) -> None:
    """The JobManager Deployment is gone (Apache's "JM deployment recovery"): redeploy it when that is safe,
    otherwise ask for a manual restore. Reported once, when it goes missing."""
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    job_status = s._job_status()
    if job_status.get("state") not in TERMINAL_JOB_STATES:
        job_status["state"] = "RECONCILING"
    if previous in ("MISSING", "ERROR"):
        return
    s.status["error"] = error_json("MissingJobManagerException", "Missing JobManager deployment")
    s._event("Missing", "Missing JobManager deployment", "Warning")
    spec = s._cluster_spec()
    if spec is not None and s.cluster is not None and _recoverable(s, spec):
        _recover_deployment(s, spec)
    elif spec is not None and not flinkconf.is_true(s.config, OP + "jm-deployment-recovery.enabled", True):
        _not_recovered(s, spec)
    else:
        _manual_restore_required(s)


def _recoverable(s: DeploymentSync, spec: FlinkDeploymentSpec) -> bool:
    """Recovery is on, and the job loses nothing by a redeploy: stateless, or resumed from HA."""
    stateless = spec.job is None or spec.job.upgradeMode == "stateless"
    return flinkconf.is_true(s.config, OP + "jm-deployment-recovery.enabled", True) and \
        (stateless or is_ha_enabled(s._config_for(spec)))


def _recover_deployment(s: DeploymentSync, spec: FlinkDeploymentSpec) -> None:
    """Redeploy the deployed spec: with HA the same job id (Flink resumes from HA), otherwise a new one, as the
    Apache operator does. The rest of the old cluster goes first (see upgrade.deploy_next)."""
    ha = is_ha_enabled(s._config_for(spec))
    s._event("RecoverDeployment", "Recovering lost deployment", "Warning", "Job")
    seq = (s.flink_sync.deploys or 1) + 1
    old = s._remove_cluster()
    assert old is not None  # jm_missing: only with a cluster record
    job_id = old.job_id
    if spec.job is not None and not ha:
        job_id = derive_id(s.uid, s.generation, "recover", seq)
    s._set_records(deploys=seq, next=cluster_record(spec, job_id, old.restore_path if ha else None,
                                                    int(old.generation or s.generation), seq=seq))
    if job_id:
        s._job_status()["jobId"] = job_id
    s.waiting_progress = True


def _not_recovered(s: DeploymentSync, spec: FlinkDeploymentSpec) -> None:
    """JM deployment recovery is off: as Apache, the loss is only reported (MISSING, "Missing JobManager
    deployment", job RECONCILING, lifecycle unchanged) and nothing is redeployed. The cluster record goes, since a
    JobManager Deployment still returned would be re-created by Metacontroller. With Kubernetes HA the job's state
    stays in the HA ConfigMaps, and the next spec change restores from them with the same job id (Apache's
    last-state upgrade when HA metadata is available): the recorded restore mode says so."""
    s._remove_cluster()
    job = (s.reconciled or {}).get("job")
    if job is None or not is_kubernetes_ha(s._config_for(spec)) or job.get("upgradeMode") == "last-state":
        return
    recon = s._recon()
    stable = recon.get("lastReconciledSpec") == recon.get("lastStableSpec")
    s._record_reconciled({**(s.reconciled or {}), "job": {**job, "upgradeMode": "last-state"}})
    if stable:
        s._mark_stable()


def _manual_restore_required(s: DeploymentSync) -> None:
    """A stateful job without HA cannot be recovered safely: restarting it from the deploy-time savepoint would
    silently rewind its state. Stop managing the cluster and ask for a manual restore."""
    s._remove_cluster()
    s._set_records(manual_restore=True)
    s.status["error"] = error_json(
        "UpgradeFailureException",
        "JobManager deployment is missing and HA metadata is not available to make stateful upgrades. It is "
        "possible that the job has finished or terminally failed, or the configmaps have been deleted. "
        "Manual restore required.", "UpgradeFailed")


def should_roll_back(s: DeploymentSync) -> bool:
    recon = s._recon()
    if not flinkconf.is_true(s.config, OP + "deployment.rollback.enabled"):
        return False
    if recon.get("state") != "DEPLOYED" or recon.get("lastReconciledSpec") == recon.get("lastStableSpec"):
        return False
    stable, _ = deserialize_reconciled(recon.get("lastStableSpec"))
    if not stable or ((stable.get("job") or {}).get("state") == "suspended"):
        return False
    if s.desired is None or stable.get("flinkVersion") != s.desired.flinkVersion:
        return False
    timeout = _duration_ms(s.config, "deployment.readiness.timeout", "5 min")
    return s.now_ms - int(recon.get("reconciliationTimestamp") or s.now_ms) > timeout


def start_rollback(s: DeploymentSync) -> None:
    """Redeploy the last stable spec: remove the unstable cluster, then deploy from the upgrade savepoint."""
    recon = s._recon()
    stable, _ = deserialize_reconciled(recon.get("lastStableSpec"))
    assert stable is not None
    s._event("Rollback", "Rolling back failed deployment.")
    recon["state"] = "ROLLING_BACK"
    stable_spec = parse_deployment_spec(stable)
    job_status = s._job_status()
    recon_mode = ((s.reconciled or {}).get("job") or {}).get("upgradeMode")
    job_id = None
    path = None
    if stable_spec.job is not None:
        if recon_mode == "last-state" and is_kubernetes_ha(s.config):
            job_id = job_status.get("jobId")
        else:
            job_id = derive_id(s.uid, s.generation, "rollback", s.flink_sync.deploys or 1)
            if recon_mode != "stateless":
                path = job_status.get("upgradeSavepointPath")
        if s.cluster and s.cluster.job_id and s.status.get("jobManagerDeploymentStatus") == "READY":
            s.actions.append(Action("cancel", {"job_id": s.cluster.job_id}, required=False))
        job_status["jobId"] = job_id
    seq = (s.flink_sync.deploys or 1) + 1
    s._set_records(deploys=seq)
    s._remove_cluster()
    s._set_records(next=cluster_record(stable_spec, job_id, path, s.generation, seq=seq))
    s.status["jobManagerDeploymentStatus"] = "MISSING"
    s.waiting_progress = True
