"""A FlinkSessionJob's submission: the job that should run is recorded (job id, restore path, spec) one sync
before it is submitted, so a retried submission reuses the same job id and Flink refuses a second copy."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import flinkconf
from .diff import DiffType
from .ids import derive_id
from .model import Action, CoreSettings
from .records import DeploymentRecord, spec_text
from .snapshots import OP
from .spec import (
    FlinkSessionJobSpec,
    SpecError,
    deserialize_reconciled,
    parse_deployment_spec,
    parse_session_job_spec,
    spec_json,
)


def session_config(settings: CoreSettings, namespace: str, session: dict[str, Any] | None,
                   spec: FlinkSessionJobSpec) -> dict[str, str]:
    try:
        session_spec = parse_deployment_spec((session or {}).get("spec"))
    except SpecError as exc:
        raise SpecError("spec.deploymentName", f"the session cluster's spec cannot be read ({exc})") from None
    return flinkconf.effective_user_config(settings.operator_defaults, namespace, session_spec.flinkVersion,
                                           session_spec.flinkConfiguration, spec.flinkConfiguration)


if TYPE_CHECKING:
    from .sessionjob import SessionJobSync


def prepare_submission(s: SessionJobSync, first: bool = False, diff: DiffType = DiffType.UPGRADE) -> None:
    assert s.desired is not None and s.desired.job is not None
    job = s.desired.job
    deploys = s.flink_sync.deploys or 0
    if first:
        restore_mode = "savepoint" if job.initialSavepointPath else "stateless"
        path = job.initialSavepointPath
        if path:
            s.job_status["upgradeSavepointPath"] = path
    else:
        recon_mode = ((s.reconciled or {}).get("job") or {}).get("upgradeMode") or "stateless"
        restore_mode = "stateless" if job.upgradeMode == "stateless" else recon_mode
        redeploy_from = s.flink_sync.redeploy_from
        s._set_records(redeploy_from=None)
        if diff == DiffType.SAVEPOINT_REDEPLOY or redeploy_from:
            restore_mode = "savepoint"
            s.job_status["upgradeSavepointPath"] = redeploy_from or job.initialSavepointPath
        path = s.job_status.get("upgradeSavepointPath") if restore_mode == "savepoint" else None
    job_id = derive_id(s.uid, s.generation, deploys)
    submission = DeploymentRecord.submission(spec_text(spec_json(s.desired)), job_id, path, s.generation)
    s._set_records(deploys=deploys + 1, submission=submission, submitted=None)
    s.job_status.update({"jobId": job_id, "jobName": s.name, "state": "RECONCILING"})
    s._record_reconciled(s._target_spec("suspended", restore_mode), first=first)
    s.recon["state"] = "UPGRADING"
    s.recon["reconciliationTimestamp"] = s.now_ms
    s.waiting_progress = True


def submit(s: SessionJobSync, submission: DeploymentRecord) -> None:
    spec = parse_session_job_spec(submission.spec_json())
    assert spec.job is not None
    config = session_config(s.settings, s.namespace, s.session, spec)
    config.setdefault("pipeline.name", s.name)
    if spec.job.upgradeMode == "last-state":
        config.setdefault("execution.checkpointing.interval", "5 min")
    config.setdefault("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    job_config = {k: v for k, v in config.items() if not k.startswith((OP, "job.autoscaler."))}
    s.actions.append(Action("submit_job", {
        "jar_uri": spec.job.jarURI, "job_id": submission.job_id, "entry_class": spec.job.entryClass,
        "args": list(spec.job.args), "parallelism": spec.job.parallelism if spec.job.parallelism > 0 else None,
        "savepoint_path": submission.restore_path,
        "allow_non_restored_state": spec.job.allowNonRestoredState,
        "flink_configuration": job_config,
        "flink_version": ((s.session or {}).get("spec") or {}).get("flinkVersion")}))
    s._set_records(submitted=True, submitted_at=s.now_ms)
    if s.recon.get("state") == "UPGRADING":
        spec_dict = copy.deepcopy(s.reconciled or {})
        spec_dict["job"]["state"] = "running"
        _, first = deserialize_reconciled(s.recon.get("lastReconciledSpec"))
        s._record_reconciled(spec_dict, first)
        s.recon["state"] = "DEPLOYED"
        s.recon["reconciliationTimestamp"] = s.now_ms
        if submission.mark_stable:
            s._set_records(submission=submission.replace(mark_stable=None))
            s._mark_stable()
        s._event("Submit", "Starting deployment")
    s.waiting_progress = True


def submission_lost(s: SessionJobSync, submission: DeploymentRecord) -> bool:
    """Submitted, yet the cluster does not know the job (e.g. the session cluster was re-created): submit
    again with the same id; Flink refuses a duplicate if it is there after all."""
    flink = s.flink
    return flink is not None and flink.reachable and flink.jobs is not None and \
        flink.job(submission.job_id) is None and \
        s.now_ms - (s.flink_sync.submitted_at or 0) > 30_000
