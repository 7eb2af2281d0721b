"""The cluster record: the deployment a FlinkDeployment's children are rendered from, and the copy of it the
JobManager Deployment carries (`flink-sync.io/cluster-record`) so that a lost status write is recognised."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import kubelimits
from ..ids import derive_id
from ..intake import StatusUnusable
from ..records import DeploymentRecord, FlinkSyncRecord, spec_text
from ..render import ClusterPlan, render_cluster
from ..spec import FlinkDeploymentSpec, SpecError, parse_deployment_spec, spec_json

if TYPE_CHECKING:
    from ..deployment import DeploymentSync

RECORD_ANNOTATION = "flink-sync.io/cluster-record"


def iso(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_record(spec: FlinkDeploymentSpec, job_id: str | None, restore_path: str | None, generation: int,
                   mark_stable: bool = False, seq: int = 1) -> DeploymentRecord:
    return DeploymentRecord(spec=spec_text(spec_json(spec)), job_id=job_id, restore_path=restore_path,
                            generation=generation, seq=seq, mark_stable=True if mark_stable else None)


def record_annotation(record: DeploymentRecord) -> str:
    """The record a JobManager Deployment was rendered from, kept on it so that a sync whose status write was
    lost can be recognised later (the role of Apache's generation annotation)."""
    keep = {"seq": record.seq, "jobId": record.job_id, "restorePath": record.restore_path,
            "generation": record.generation, "spec": record.spec}
    return json.dumps(keep, separators=(",", ":"), sort_keys=True)


def observed_record(jm: dict[str, Any] | None) -> DeploymentRecord | None:
    """The record an observed JobManager Deployment carries, or None when it carries no readable one."""
    text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
    if not text:
        return None
    try:
        record = json.loads(text)
        parse_deployment_spec(json.loads(record["spec"]))
        if not isinstance(record.get("seq"), int):
            return None
        return DeploymentRecord.from_json(record)
    except (ValueError, KeyError, TypeError, SpecError, AttributeError):
        return None


def removed_on_purpose(status: dict[str, Any], records: FlinkSyncRecord, seen: DeploymentRecord | None) -> bool:
    """Whether an observed JobManager (`seen`: the record it carries, None when it carries no readable one) is
    what a deliberate removal left behind, still in Metacontroller's cache or being deleted, rather than a
    cluster whose record the status lost (adopted, never deleted). The one rule for adoption (observe.py) and
    for the final check of the answer (guard.py)."""
    if records.removed is not None:
        return seen is not None and seen.seq is not None and seen.seq <= records.removed
    # A status of a flink-sync from before `removed`: its removals left jobManagerDeploymentStatus MISSING. A
    # status without any record was not written by flink-sync, so nothing in it was removed on purpose.
    return bool(records.to_json()) and status.get("jobManagerDeploymentStatus") == "MISSING"


def children(s: DeploymentSync) -> list[dict[str, Any]]:
    record = s.cluster
    if record is None:
        return []
    spec = s._cluster_spec()
    assert spec is not None
    plan = ClusterPlan(s.name, s.namespace, spec, int(record.generation or 1), record.job_id,
                       record.restore_path, s.settings.operator_defaults)
    children = s._checked_render.children_for(plan)
    for child in children:
        if child["kind"] == "Deployment" and child["metadata"]["name"] == s.name:
            child["metadata"].setdefault("annotations", {})[RECORD_ANNOTATION] = s._record_annotation(record)
    return children


def refused_children(s: DeploymentSync, spec: FlinkDeploymentSpec) -> str | None:
    """Why the API server would refuse the children of this spec, or None. Checked before anything is torn
    down for it: Metacontroller deletes the old children before it creates new ones."""
    if s.cluster and spec == s._cluster_spec():
        return None  # the children running now (the steady case; the record's spec is parsed once per sync)
    plan = ClusterPlan(s.name, s.namespace, spec, s.generation, *_next_job(s, spec), s.settings.operator_defaults)
    try:
        rendered = render_cluster(plan)
        problem = kubelimits.children_error(rendered)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        return f"spec: the cluster cannot be rendered from it: {type(exc).__name__}: {exc}"
    if problem:
        return f"spec: Kubernetes would refuse the cluster's objects: {problem}"
    s._checked_render = CheckedRender(plan, rendered)
    return None


def _next_job(s: DeploymentSync, spec: FlinkDeploymentSpec) -> tuple[str | None, str | None]:
    """The job id and restore path the check renders with. Before the first deployment they are the ones
    `upgrade.first_deploy` records, so the check's children are the answer's (rendered once). Later the next job
    id is not known yet: a stand-in of the same length gives the same verdict."""
    if spec.job is None:
        return None, None
    if s.cluster is None and s.reconciled is None:
        return first_job_id(s.uid, s.generation), spec.job.initialSavepointPath
    return "0" * 32, None


def first_job_id(uid: str, generation: int) -> str:
    """The job id of a FlinkDeployment's first deployment (fixed, so a retried sync submits the same job)."""
    return derive_id(uid, generation, 0)


class CheckedRender:
    """The children the validity check rendered in this sync, handed to the answer when it is rendered from the
    same plan (the first deployment: one render instead of two). Anything else renders afresh."""

    def __init__(self, plan: ClusterPlan | None = None, children: list[dict[str, Any]] | None = None) -> None:
        self._plan, self._children = plan, children

    def children_for(self, plan: ClusterPlan) -> list[dict[str, Any]]:
        if self._children is not None and plan == self._plan:
            children, self._children = self._children, None  # handed over once: the caller may change them
            return children
        return render_cluster(plan)


def check_records_agree(s: DeploymentSync) -> None:
    """The cluster record and the reconciled spec describe the same kind of cluster: a job cluster never
    becomes a session cluster (validation refuses the switch). A status where they disagree was written by
    something else; acting on it would tear the running cluster down as an "upgrade"."""
    if s.cluster is None or s.reconciled is None:
        return
    try:
        spec = s._cluster_spec()  # parsed once per sync; later readers reuse it
        recorded_job = spec.job if spec is not None else None
    except (ValueError, SpecError) as exc:
        raise StatusUnusable(f"status.flinkSync.cluster.spec: not the recorded spec ({exc})") from None
    if (recorded_job is None) != (s.reconciled.get("job") is None):
        raise StatusUnusable("status.reconciliationStatus.lastReconciledSpec: describes a "
                             + ("session" if s.reconciled.get("job") is None else "job")
                             + " cluster, but status.flinkSync.cluster records the running one as a "
                             + ("session" if recorded_job is None else "job") + " cluster")
