"""The FlinkDeployment sync: parent + observed children + observed Flink state + clock in; desired
children, status, actions and events out (apache-operator-behaviour.md §2–§7, §9).

Metacontroller writes status once per sync, *after* applying children, and deletes every child a response
leaves out. So every step that depends on a durable record is split across syncs:

* `status.flinkSync.cluster` is the deployment the children are rendered from (spec, job id, restore path,
  generation). Children change only when this record changes, and a new record is written only after the
  values it needs (job id, savepoint path) were already in the incoming status.
* `status.flinkSync.pending` is an in-flight Flink operation (stop-with-savepoint, cancel, savepoint) with a
  deterministic trigger id; it is polled on later syncs, and re-issued with the same id if Flink lost it.
* `status.flinkSync.next` is the deployment to create once the old cluster's Deployments are gone.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import flinkconf, kubelimits, observed, records, snapshots
from .snapshots import OP, _duration_ms, _opt
from .diff import DiffType, classify
from .durations import DurationError, parse_duration
from .ids import derive_id
from .intake import StatusUnusable, usable_status
from .model import Action, CoreSettings, Event, FlinkObservation, ObservationPlan, SyncResult
from .pending import PendingOperations, settled
from .podtemplate import json_copy
from .render import ClusterPlan, is_ha_enabled, is_kubernetes_ha, parallelism_and_replicas, render_cluster
from .spec import (FlinkDeploymentSpec, SpecError, deserialize_reconciled, parse_deployment_spec,
                   serialize_reconciled, spec_json)
from .status import (TERMINAL_JOB_STATES, camel, error_json, error_message, lifecycle_state, set_condition)
from .validation import validate_deployment

RECORD_ANNOTATION = "flink-sync.io/cluster-record"


def iso(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_record(spec: FlinkDeploymentSpec, job_id: str | None, restore_path: str | None, generation: int,
                   mark_stable: bool = False, seq: int = 1) -> dict[str, Any]:
    record: dict[str, Any] = {"spec": json.dumps(spec_json(spec), separators=(",", ":"), sort_keys=True),
                              "jobId": job_id, "restorePath": restore_path, "generation": generation, "seq": seq}
    if mark_stable:
        record["markStable"] = True
    return record


def record_annotation(record: dict[str, Any]) -> str:
    """The record a JobManager Deployment was rendered from, kept on it so that a sync whose status write was
    lost can be recognised later (the role of Apache's generation annotation)."""
    keep = {k: record.get(k) for k in ("seq", "jobId", "restorePath", "generation", "spec")}
    return json.dumps(keep, separators=(",", ":"), sort_keys=True)


def observed_record(jm: dict[str, Any] | None) -> dict[str, Any] | None:
    text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
    if not text:
        return None
    try:
        record = json.loads(text)
        parse_deployment_spec(json.loads(record["spec"]))
        return record if isinstance(record.get("seq"), int) else None
    except (ValueError, KeyError, TypeError, SpecError):
        return None


def plan_observation(parent: dict[str, Any], children: dict[str, Any] | None) -> ObservationPlan:
    """Which Flink REST calls this sync needs (pure: decided from the recorded status and observed children)."""
    meta = parent.get("metadata") or {}
    status = usable_status(parent.get("status"))
    internal = status.get("flinkSync") or {}
    cluster = internal.get("cluster")
    pending = internal.get("pending") or {}
    if not cluster:
        return ObservationPlan()
    jm = observed.deployment(children, meta.get("name", ""))
    if jm is None and not pending:
        return ObservationPlan()
    job_id = cluster.get("jobId") if json.loads(cluster["spec"]).get("job") is not None else None
    trigger = pending.get("triggerId") if pending.get("op") in ("stop", "savepoint") else None
    return ObservationPlan(
        query_cluster=True,
        cluster_info=not status.get("clusterInfo") or status.get("jobManagerDeploymentStatus") != "READY",
        job_id=job_id,
        trigger_job_id=pending.get("jobId") if trigger else None,
        trigger_id=trigger,
        latest_checkpoint=job_id is not None,
        failure_cause=job_id is not None,
    )


@dataclass
class _Sync(PendingOperations):
    parent: dict[str, Any]
    children_in: dict[str, Any]
    flink: FlinkObservation | None
    now_ms: int
    settings: CoreSettings
    session_jobs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        meta = self.parent.get("metadata") or {}
        self.name: str = meta.get("name") or ""
        self.namespace: str = meta.get("namespace") or "default"
        self.uid: str = meta.get("uid") or f"{self.namespace}/{self.name}"
        self.generation: int = int(meta.get("generation") or 1)
        # Shape-checked first: a part the core cannot continue from is a StatusUnusable (422, nothing applied).
        self.old_status: dict[str, Any] = usable_status(self.parent.get("status"))
        self.status: dict[str, Any] = json_copy(self.old_status)
        self.status.pop("observedGeneration", None)
        self.internal: dict[str, Any] = self.status.setdefault("flinkSync", {})
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.desired: FlinkDeploymentSpec | None = None
        self.config: dict[str, str] = {}
        self.invalid: str | None = None
        self.reconciled, _ = deserialize_reconciled(self._recon().get("lastReconciledSpec"))
        self._check_records_agree()
        self.waiting_progress = False
        self.jm_lost = False
        self._parsed_cluster_spec: tuple[str, FlinkDeploymentSpec] | None = None
        self._annotation: tuple[tuple[Any, ...], str] | None = None

    def _check_records_agree(self) -> None:
        """The cluster record and the reconciled spec describe the same kind of cluster: a job cluster never
        becomes a session cluster (validation refuses the switch). A status where they disagree was written by
        something else; acting on it would tear the running cluster down as an "upgrade"."""
        if self.cluster is None or self.reconciled is None:
            return
        try:
            recorded = json.loads(self.cluster["spec"])
        except ValueError:
            raise StatusUnusable("status.flinkSync.cluster.spec: not the recorded spec (unreadable JSON)") from None
        if not isinstance(recorded, dict):
            raise StatusUnusable("status.flinkSync.cluster.spec: not the recorded spec (not an object)")
        if (recorded.get("job") is None) != (self.reconciled.get("job") is None):
            raise StatusUnusable("status.reconciliationStatus.lastReconciledSpec: describes a "
                                 + ("session" if self.reconciled.get("job") is None else "job")
                                 + " cluster, but status.flinkSync.cluster records the running one as a "
                                 + ("session" if recorded.get("job") is None else "job") + " cluster")

    def _remove_cluster(self) -> dict[str, Any]:
        """Take the cluster record out of status, so this response leaves its children out, and record that
        this was deliberate (`removed`): a later sync that still observes them knows they are going."""
        record = self.internal.pop("cluster", None) or {}
        seq = record.get("seq")
        if isinstance(seq, int):
            self.internal["removed"] = max(seq, int(self.internal.get("removed") or 0))
        return record

    # ----------------------------------------------------------------- small accessors
    def _recon(self) -> dict[str, Any]:
        return self.status.setdefault("reconciliationStatus", {})

    def _job_status(self) -> dict[str, Any]:
        return self.status.setdefault("jobStatus", {})

    @property
    def cluster(self) -> dict[str, Any] | None:
        return self.internal.get("cluster")

    def _cluster_spec(self) -> FlinkDeploymentSpec | None:
        if not self.cluster:
            return None
        text = self.cluster["spec"]
        if self._parsed_cluster_spec is None or self._parsed_cluster_spec[0] != text:
            # Parsed once per sync (it is asked for several times); callers only read it.
            self._parsed_cluster_spec = (text, parse_deployment_spec(json.loads(text)))
        return self._parsed_cluster_spec[1]

    def _record_annotation(self, record: dict[str, Any]) -> str:
        """record_annotation(record), computed once per sync for the same record values."""
        key = tuple(record.get(k) for k in ("seq", "jobId", "restorePath", "generation", "spec"))
        if self._annotation is None or self._annotation[0] != key:
            self._annotation = (key, record_annotation(record))
        return self._annotation[1]

    def _is_app(self) -> bool:
        spec = self.desired or self._cluster_spec()
        if spec is not None:
            return spec.job is not None
        return (self.reconciled or {}).get("job") is not None

    def _event(self, reason: str, message: str, kind: str = "Normal", component: str = "JobManagerDeployment") -> None:
        self.events.append(Event(reason=reason, message=message, type=kind, component=component))  # type: ignore[arg-type]

    def _record_reconciled(self, spec_dict: dict[str, Any], first: bool = False) -> None:
        spec = parse_deployment_spec(spec_dict)
        self._recon()["lastReconciledSpec"] = serialize_reconciled(spec, first)
        self.reconciled = spec_json(spec)

    def _mark_stable(self) -> None:
        recon = self._recon()
        if recon.get("lastReconciledSpec"):
            recon["lastStableSpec"] = recon["lastReconciledSpec"]

    def _observed_jm(self) -> dict[str, Any] | None:
        return observed.deployment(self.children_in, self.name)

    def _old_cluster_present(self) -> bool:
        return bool(self._observed_jm() or observed.deployment(self.children_in, f"{self.name}-taskmanager"))

    def _config_for(self, spec: FlinkDeploymentSpec | None) -> dict[str, str]:
        if spec is None:
            return {}
        return flinkconf.effective_user_config(self.settings.operator_defaults, self.namespace, spec.flinkVersion,
                                               spec.flinkConfiguration)

    # ----------------------------------------------------------------- entry point
    def run(self, finalizing: bool) -> SyncResult:
        # Adoption first: the record it finds also decides what "the last reconciled spec" is for validation.
        self._adopt_newer_cluster()
        self._parse_and_validate()
        if finalizing:
            return self._finalize()
        self._observe()
        self._step()
        result = self._result()
        _refuse_unaccounted_removal(self.old_status, self.children_in, result.children, self.name)
        return result

    def _parse_and_validate(self) -> None:
        spec_raw = self.parent.get("spec")
        error: str | None
        try:
            spec = parse_deployment_spec(spec_raw)
            config = self._config_for(spec)
            recon_state = ((self.reconciled or {}).get("job") or {}).get("state")
            error = validate_deployment(self.name, spec, config, self.reconciled, recon_state,
                                        self.settings.validators, self.parent) or self._refused_children(spec)
        except SpecError as exc:
            spec, config, error = None, {}, str(exc)
        except Exception as exc:  # noqa: BLE001 - malformed input must become a status error, not a 500
            spec, config, error = None, {}, f"spec: could not be read: {type(exc).__name__}: {exc}"
        if error:
            self.invalid = error
            previous = error_message(self.old_status.get("error"))
            self.status["error"] = error_json("ValidationException", error)
            if previous != error:
                self._event("ValidationError", error, "Warning", "Operator")
            # Keep reconciling the last good spec (Apache replaces the in-memory spec the same way).
            if self.reconciled is not None:
                try:
                    self.desired = parse_deployment_spec(self.reconciled)
                except SpecError:
                    self.desired = None
                self.config = self._config_for(self.desired)
            return
        self.desired, self.config = spec, config
        if error_message(self.old_status.get("error")).startswith("spec") and \
                "ValidationException" in (self.old_status.get("error") or ""):
            self.status.pop("error", None)  # the spec was fixed

    def _refused_children(self, spec: FlinkDeploymentSpec) -> str | None:
        """Why the API server would refuse the children of this spec, or None. Checked before anything is torn
        down for it: Metacontroller deletes the old children before it creates new ones."""
        if self.cluster and cluster_record(spec, None, None, 0)["spec"] == self.cluster.get("spec"):
            return None  # the children running now (the steady case)
        plan = ClusterPlan(self.name, self.namespace, spec, self.generation, "0" * 32 if spec.job else None, None,
                           self.settings.operator_defaults)
        try:
            problem = kubelimits.children_error(render_cluster(plan))
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            return f"spec: the cluster cannot be rendered from it: {type(exc).__name__}: {exc}"
        return f"spec: Kubernetes would refuse the cluster's objects: {problem}" if problem else None

    # ----------------------------------------------------------------- observe
    def _adopt_newer_cluster(self) -> None:
        """A JobManager Deployment rendered from a record the status does not hold means that an earlier
        response was applied but its status write was lost, or that the status lost its records (restored from
        a backup, rewritten by hand or by another operator): take that record as deployed."""
        jm = self._observed_jm()
        text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
        if text and self.cluster and text == self._record_annotation(self.cluster):
            return  # the steady case: the JobManager runs the record the status already has
        seen = observed_record(jm)
        if seen is None or (jm or {}).get("metadata", {}).get("deletionTimestamp"):
            return
        nxt = self.internal.get("next")
        if nxt is not None and seen.get("seq") == nxt.get("seq"):
            return  # _deploy_next finishes this one
        if self.cluster is None and nxt is None:
            if not self._lost_record(seen):
                return
        elif seen["seq"] <= max(int((self.cluster or {}).get("seq") or 0), int(self.internal.get("deploys") or 0)):
            return
        self.internal.pop("next", None)
        self.internal["cluster"] = seen
        self.internal["deploys"] = max(seen["seq"], int(self.internal.get("deploys") or 0))
        spec = json.loads(seen["spec"])
        if spec.get("job") is not None:
            old_job = (self.reconciled or {}).get("job") or {}
            spec["job"]["state"] = "running"
            spec["job"]["upgradeMode"] = old_job.get("upgradeMode") or spec["job"].get("upgradeMode")
            for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
                spec["job"][nonce] = old_job.get(nonce)
            self._job_status().update({"jobId": seen.get("jobId"), "state": "RECONCILING"})
        self._record_reconciled(spec)
        recon = self._recon()
        if recon.get("state") != "ROLLING_BACK":
            recon["state"] = "DEPLOYED"
        else:
            recon["state"] = "ROLLED_BACK"
        recon["reconciliationTimestamp"] = self.now_ms

    def _lost_record(self, seen: dict[str, Any]) -> bool:
        """With no cluster record in status, whether the observed JobManager's record was lost rather than
        removed on purpose (a removal in flight: Metacontroller's cache may still show the deleted child)."""
        if "removed" in self.internal:
            return seen["seq"] > int(self.internal.get("removed") or 0)
        # A status from before `removed` existed: a removal there always left jobManagerDeploymentStatus MISSING.
        return self.old_status.get("jobManagerDeploymentStatus") != "MISSING"

    def _observe(self) -> None:
        cluster = self.cluster
        if not cluster:
            if self.reconciled is not None:
                self.status["jobManagerDeploymentStatus"] = "MISSING"
            return
        jm = self._observed_jm()
        flink = self.flink
        previous = self.old_status.get("jobManagerDeploymentStatus")
        if jm is None:
            recon_job_state = ((self.reconciled or {}).get("job") or {}).get("state")
            if self.internal.get("jmSeen") and recon_job_state != "suspended":
                self.jm_lost = True
                self.status["jobManagerDeploymentStatus"] = "MISSING"
                return
            if self.internal.get("jmSeen"):
                self.status["jobManagerDeploymentStatus"] = "MISSING"
                return
            self.status["jobManagerDeploymentStatus"] = "DEPLOYING"
            return
        self.internal["jmSeen"] = True
        failure = observed.replica_failure(jm)
        if observed.is_available(jm) and flink is not None and flink.reachable:
            jm_status = "READY"
        elif observed.is_available(jm):
            jm_status = "DEPLOYED_NOT_READY"
        elif failure:
            jm_status = "ERROR"
            if previous != "ERROR":
                message = f"[flink-main-container] {failure}"
                self.status["error"] = error_json("DeploymentFailedException", message, "FailedCreate")
                self._event("FailedCreate", message, "Warning")
        else:
            jm_status = "DEPLOYING"
        self.status["jobManagerDeploymentStatus"] = jm_status
        if jm_status != "READY" or flink is None:
            if self._is_app() and self._job_status().get("state") == "RUNNING":
                self._job_status()["state"] = "RECONCILING"
            return
        if flink.flink_version:
            info = dict(self.status.get("clusterInfo") or {})
            info["flink-version"] = flink.flink_version
            if flink.flink_revision:
                info["flink-revision"] = flink.flink_revision
            self.status["clusterInfo"] = info
        recon_state = self._recon().get("state")
        if not self._is_app():
            if recon_state == "DEPLOYED" and self._recon().get("lastReconciledSpec") != self._recon().get("lastStableSpec"):
                self._mark_stable()
            self._clear_error_when_healthy()
            return
        self._observe_job(cluster)

    def _jm_missing(self, previous: str | None) -> None:
        self.status["jobManagerDeploymentStatus"] = "MISSING"
        job_status = self._job_status()
        if job_status.get("state") not in TERMINAL_JOB_STATES:
            job_status["state"] = "RECONCILING"
        if previous in ("MISSING", "ERROR"):
            return
        self.status["error"] = error_json("MissingJobManagerException", "Missing JobManager deployment")
        self._event("Missing", "Missing JobManager deployment", "Warning")
        spec = self._cluster_spec()
        stateless = spec is None or spec.job is None or spec.job.upgradeMode == "stateless"
        recovery = flinkconf.is_true(self.config, OP + "jm-deployment-recovery.enabled", True)
        ha = is_ha_enabled(self._config_for(spec))
        if recovery and (stateless or ha) and spec is not None and self.cluster is not None:
            # Redeploy the deployed spec: with HA the same job id (Flink resumes from HA), otherwise a new one,
            # as the Apache operator does. The rest of the old cluster goes first (see _deploy_next).
            self._event("RecoverDeployment", "Recovering lost deployment", "Warning", "Job")
            seq = int(self.internal.get("deploys") or 1) + 1
            old = self._remove_cluster()
            job_id = old.get("jobId")
            if spec.job is not None and not ha:
                job_id = derive_id(self.uid, self.generation, "recover", seq)
            self.internal["deploys"] = seq
            self.internal["next"] = cluster_record(spec, job_id, old.get("restorePath") if ha else None,
                                                   int(old.get("generation") or self.generation), seq=seq)
            if job_id:
                self._job_status()["jobId"] = job_id
            self.waiting_progress = True
            return
        # A stateful job without HA cannot be recovered safely: restarting it from the deploy-time savepoint
        # would silently rewind its state. Stop managing the cluster and ask for a manual restore.
        self._remove_cluster()
        self.internal["manualRestore"] = True
        self.status["error"] = error_json(
            "UpgradeFailureException",
            "JobManager deployment is missing and HA metadata is not available to make stateful upgrades. It is "
            "possible that the job has finished or terminally failed, or the configmaps have been deleted. "
            "Manual restore required.", "UpgradeFailed")

    def _observe_job(self, cluster: dict[str, Any]) -> None:
        flink = self.flink
        assert flink is not None
        job_status = self._job_status()
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
            job_status["updateTime"] = str(self.now_ms)
            message = f"Job status changed from {old_state} to {job.state}" if old_state else f"Job status changed to {job.state}"
            self._event("JobStatusChanged", message, component="Job")
        recon = self._recon()
        recon_job_state = ((self.reconciled or {}).get("job") or {}).get("state")
        if job.state in TERMINAL_JOB_STATES and flink.latest_checkpoint_path and settled(job, self.now_ms) and \
                self.internal.get("checkpointOf") != job.job_id and not self.internal.get("pending"):
            # Once per terminal job, and only after Flink's checkpoint statistics have caught up with its end.
            job_status["upgradeSavepointPath"] = flink.latest_checkpoint_path
            self.internal["checkpointOf"] = job.job_id
        if job.state == "RUNNING" and recon.get("state") == "DEPLOYED" and \
                recon.get("lastReconciledSpec") != recon.get("lastStableSpec"):
            self._mark_stable()
        if job.state == "FINISHED" and recon_job_state == "running" and recon.get("state") == "DEPLOYED":
            self._mark_stable()
        if job.state == "FAILED" and old_state != "FAILED":
            cause = flink.failure_cause or "Job failed"
            self.status["error"] = error_json("JobFailedException", cause)
            self._event("Error", cause, "Warning", "Job")
        if job.state == "CANCELED" and old_state != "CANCELED" and not self.internal.get("pending") and \
                recon_job_state == "running" and recon.get("state") in ("DEPLOYED", "ROLLED_BACK"):
            # Cancelled outside the operator: the job counts as suspended, so the spec restores it (Apache does the same).
            spec = dict(self.reconciled or {})
            spec["job"] = {**(spec.get("job") or {}), "state": "suspended", "upgradeMode": "savepoint"}
            self._record_reconciled(spec)
        if job.state == "RUNNING":
            self._clear_error_when_healthy()

    def _clear_error_when_healthy(self) -> None:
        recon = self._recon()
        if self.invalid or self.internal.get("retryAt") or self.internal.get("manualRestore"):
            return  # a failed upgrade waiting for its retry, or a manual restore, keeps its error
        if self.status.get("jobManagerDeploymentStatus") != "ERROR" and self._job_status().get("state") != "FAILED" \
                and recon.get("lastReconciledSpec") == recon.get("lastStableSpec"):
            self.status.pop("error", None)

    # ----------------------------------------------------------------- the state machine
    def _step(self) -> None:
        if self.internal.get("next"):
            self._deploy_next()
            return
        if self.internal.get("pending"):
            self._progress_pending()
            return
        if self.cluster and self.reconciled is not None and \
                ((self.reconciled.get("job") or {}).get("state")) == "suspended":
            # The job was stopped and the path to restore from is durable in status: remove the cluster.
            self._remove_cluster()
            self.status["jobManagerDeploymentStatus"] = "MISSING"
            self.waiting_progress = True
            return
        if self.desired is None:
            return
        if self.reconciled is None:
            if not self.invalid:
                self._first_deploy()
            return
        if self.invalid:
            # Only finish what is in flight: an upgrade whose old cluster is already gone is completed with
            # the recorded target spec so that an invalid edit never leaves the job down.
            if self._recon().get("state") == "UPGRADING" and not self.cluster:
                target = copy.deepcopy(self.reconciled)
                if target.get("job"):
                    target["job"]["state"] = "running"
                self.desired = parse_deployment_spec(target)
                self._upgrade(DiffType.UPGRADE)
            return
        desired_json = spec_json(self.desired)
        diff, fields = classify(self.reconciled, desired_json)
        recon_state = self._recon().get("state")
        if self.jm_lost:
            if (diff != DiffType.IGNORE or recon_state == "UPGRADING") and self.desired.job is not None \
                    and self.desired.job.upgradeMode == "stateless":
                # Most likely our own stateless suspend whose status write was lost: carry on with the upgrade.
                self._stateless_suspend(self.desired.job.state, "stateless", cancel=False)
                return
            self._jm_missing(self.old_status.get("jobManagerDeploymentStatus"))
            if not self.cluster or diff == DiffType.IGNORE:
                return
        if diff == DiffType.IGNORE and recon_state != "UPGRADING":
            if self._should_roll_back():
                self._start_rollback()
                return
            self._other_changes()
            return
        if self.internal.get("manualRestore"):
            # Apache refuses to guess after "Manual restore required": only a savepoint redeploy (an explicit
            # initialSavepointPath) or a stateless job may start again.
            if diff != DiffType.SAVEPOINT_REDEPLOY and not (self.desired.job is not None
                                                            and self.desired.job.upgradeMode == "stateless"
                                                            and diff != DiffType.IGNORE):
                return
            self.internal.pop("manualRestore")
            if diff == DiffType.SAVEPOINT_REDEPLOY and self.desired.job is not None:
                self.internal["redeployFrom"] = self.desired.job.initialSavepointPath
        if diff != DiffType.IGNORE and self.internal.get("specChangedGeneration") != self.generation:
            self.internal["specChangedGeneration"] = self.generation
            self._event("SpecChanged", f"{diff.name} change(s) detected (Diff: FlinkDeploymentSpec["
                        + ", ".join(fields) + "]), starting reconciliation.")
        retry_at = self.internal.get("retryAt")
        if retry_at and self.now_ms < retry_at:
            self.waiting_progress = True
            return
        self.internal.pop("retryAt", None)
        if diff == DiffType.SCALE and self.cluster and self._can_scale_in_place():
            self._scale_in_place()
            return
        self._upgrade(diff)

    def _first_deploy(self) -> None:
        spec = self.desired
        assert spec is not None
        if spec.job is not None and spec.job.state == "suspended":
            return  # created suspended: nothing is deployed, lifecycle CREATED
        job_id = derive_id(self.uid, self.generation, 0) if spec.job is not None else None
        restore = spec.job.initialSavepointPath if spec.job is not None else None
        recorded = spec_json(spec)
        if spec.job is not None:
            recorded["job"]["upgradeMode"] = "savepoint" if restore else "stateless"
            job_status = self._job_status()
            job_status.update({"jobId": job_id, "jobName": self.name, "state": "RECONCILING"})
            if restore:
                job_status["upgradeSavepointPath"] = restore
        self._record_reconciled(recorded, first=True)
        recon = self._recon()
        recon["state"] = "DEPLOYED"
        recon["reconciliationTimestamp"] = self.now_ms
        self.internal["cluster"] = cluster_record(spec, job_id, restore, self.generation, seq=1)
        self.internal["deploys"] = 1
        self.status["jobManagerDeploymentStatus"] = "DEPLOYING"
        self.status.pop("error", None)
        self._event("Submit", "Starting deployment")

    def _deploy_next(self) -> None:
        seen = observed_record(self._observed_jm())
        ours = seen is not None and seen.get("seq") == self.internal["next"].get("seq")
        if self._old_cluster_present() and not ours:
            self.waiting_progress = True
            return
        nxt = self.internal.pop("next")
        mark_stable = nxt.pop("markStable", False)
        self.internal["cluster"] = nxt
        self.internal["jmSeen"] = False
        recon = self._recon()
        if recon.get("state") == "ROLLING_BACK":
            recon["state"] = "ROLLED_BACK"
        else:
            spec = copy.deepcopy(self.reconciled or {})
            if spec.get("job"):
                spec["job"]["state"] = "running"
            self._record_reconciled(spec)
            recon["state"] = "DEPLOYED"
            if mark_stable:
                self._mark_stable()
        recon["reconciliationTimestamp"] = self.now_ms
        job_status = self._job_status()
        if nxt.get("jobId"):
            job_status.update({"jobId": nxt["jobId"], "state": "RECONCILING"})
            job_status.pop("startTime", None)
        self.status["jobManagerDeploymentStatus"] = "DEPLOYING"
        if not self.invalid:
            self.status.pop("error", None)
        self._event("Submit", "Starting deployment")

    # ----------------------------------------------------------------- upgrades and suspend
    def _can_scale_in_place(self) -> bool:
        return (self._config_for(self._cluster_spec()).get("scheduler-mode") or "").lower() == "reactive"

    def _scale_in_place(self) -> None:
        assert self.desired is not None and self.cluster is not None
        self.internal["cluster"] = {**self.cluster, "spec": cluster_record(self.desired, None, None, 0)["spec"]}
        spec = spec_json(self.desired)
        if spec.get("job") and self.reconciled and self.reconciled.get("job"):
            spec["job"]["upgradeMode"] = self.reconciled["job"].get("upgradeMode")
            spec["job"]["savepointTriggerNonce"] = self.reconciled["job"].get("savepointTriggerNonce")
        self._record_reconciled(spec)
        self._recon()["state"] = "DEPLOYED"
        self._recon()["reconciliationTimestamp"] = self.now_ms

    def _target_spec(self, job_state: str, upgrade_mode: str | None) -> dict[str, Any]:
        """The desired spec as recorded: the given job state and restore mode, old snapshot nonces kept."""
        assert self.desired is not None
        spec = spec_json(self.desired)
        old_job = (self.reconciled or {}).get("job") or {}
        if spec.get("job") is not None:
            spec["job"]["state"] = job_state
            if upgrade_mode:
                spec["job"]["upgradeMode"] = upgrade_mode
            for nonce in ("savepointTriggerNonce", "checkpointTriggerNonce"):
                spec["job"][nonce] = old_job.get(nonce)
        return spec

    def _upgrade(self, diff: DiffType) -> None:
        assert self.desired is not None
        is_app = self.desired.job is not None
        recon_job = (self.reconciled or {}).get("job") or {}
        current = recon_job.get("state", "running") if is_app else ("running" if self.cluster else "suspended")
        wanted = self.desired.job.state if is_app else "running"
        if self.cluster and current == "running":
            self._suspend(diff)
            return
        if self.cluster and current == "suspended":
            # The stop or cancel finished and its savepoint path is already durable in status: remove the cluster.
            self._remove_cluster()
            self.status["jobManagerDeploymentStatus"] = "MISSING"
            self.waiting_progress = True
            return
        if wanted == "suspended":
            if self._recon().get("state") == "UPGRADING":
                self._recon()["state"] = "DEPLOYED"
            return
        if self._old_cluster_present():
            self.waiting_progress = True
            return
        self._prepare_deploy(diff)

    def _prepare_deploy(self, diff: DiffType) -> None:
        """Record the next deployment (job id, restore path) in status; the following sync creates it."""
        assert self.desired is not None
        job = self.desired.job
        job_status = self._job_status()
        recon_job = (self.reconciled or {}).get("job") or {}
        deploys = int(self.internal.get("deploys") or 1)
        mark_stable = bool(self.internal.pop("markStableOnDeploy", False))
        if job is None:
            restore_mode, path, job_id = None, None, None
        else:
            restore_mode = "stateless" if job.upgradeMode == "stateless" else (recon_job.get("upgradeMode") or "stateless")
            redeploy_from = self.internal.pop("redeployFrom", None)
            if diff == DiffType.SAVEPOINT_REDEPLOY or redeploy_from:
                restore_mode, mark_stable = "savepoint", True
                job_status["upgradeSavepointPath"] = redeploy_from or job.initialSavepointPath
            path = job_status.get("upgradeSavepointPath") if restore_mode == "savepoint" else None
            if restore_mode == "last-state" and job_status.get("jobId"):
                job_id = job_status["jobId"]  # HA checkpoints are keyed by job id
            else:
                job_id = derive_id(self.uid, self.generation, deploys)
            job_status["jobId"] = job_id
        self.internal["deploys"] = deploys + 1
        self.internal["next"] = cluster_record(self.desired, job_id, path, self.generation, mark_stable, seq=deploys + 1)
        self._record_reconciled(self._target_spec("suspended", restore_mode))
        recon = self._recon()
        recon["state"] = "UPGRADING"
        recon["reconciliationTimestamp"] = self.now_ms
        self.waiting_progress = True

    def _suspend(self, diff: DiffType) -> None:
        """Stop the running job the way its upgradeMode asks (behaviour doc §3.3/§3.4)."""
        assert self.desired is not None and self.cluster is not None
        wanted = self.desired.job.state if self.desired.job else "running"
        if self.desired.job is None:  # session cluster: delete, then deploy the new one
            self._remove_cluster()
            self._record_reconciled(self._target_spec("running", None))
            self._recon()["state"] = "UPGRADING"
            self.status["jobManagerDeploymentStatus"] = "MISSING"
            self._event("Suspended", "Suspending existing deployment.")
            self.waiting_progress = True
            return
        job_status = self._job_status()
        job_state = job_status.get("state")
        mode = self.desired.job.upgradeMode
        cluster_spec = self._cluster_spec()
        version_changed = cluster_spec is not None and cluster_spec.flinkVersion != self.desired.flinkVersion
        jm_ready = self.status.get("jobManagerDeploymentStatus") == "READY"
        if diff == DiffType.SAVEPOINT_REDEPLOY:
            # Redeploy from initialSavepointPath (already durable: it is in the spec); stable at once.
            job_status["upgradeSavepointPath"] = self.desired.job.initialSavepointPath
            self.internal["markStableOnDeploy"] = True
            self.internal["redeployFrom"] = self.desired.job.initialSavepointPath
            self._stateless_suspend(wanted, "savepoint", cancel=job_state not in TERMINAL_JOB_STATES)
            return
        if mode == "stateless":
            self._stateless_suspend(wanted, "stateless", cancel=job_state not in TERMINAL_JOB_STATES)
            return
        if job_state in TERMINAL_JOB_STATES:
            if (self.old_status.get("jobStatus") or {}).get("state") not in TERMINAL_JOB_STATES:
                self.waiting_progress = True  # the terminal state and its checkpoint path must be durable first
                return
            self._finish_suspend(wanted, "savepoint")
            return
        if job_state == "CANCELLING":
            self.waiting_progress = True
            return
        use_last_state = mode == "last-state"
        if mode == "savepoint":
            if job_state == "RUNNING" and jm_ready:
                self._start_stop(wanted)
                return
            if version_changed or flinkconf.is_true(self.config, OP + "job.upgrade.last-state-fallback.enabled", True):
                use_last_state = True
            else:
                self.waiting_progress = True
                return
        if use_last_state:
            savepoint_dir = snapshots.savepoint_dir(self.config)
            cancellable = jm_ready and job_state not in (None, "RECONCILING") and job_state not in TERMINAL_JOB_STATES
            if version_changed:
                if job_state == "RUNNING" and savepoint_dir and jm_ready:
                    self._start_stop(wanted)
                elif cancellable:
                    self._start_cancel(wanted)
                else:
                    self.waiting_progress = True
                return
            ha = is_kubernetes_ha(self._config_for(cluster_spec)) and is_kubernetes_ha(self.config)
            cancel_enabled = flinkconf.is_true(self.config, OP + "job.upgrade.last-state.job-cancel.enabled")
            if ha and not cancel_enabled:
                # Keep the HA metadata: delete the cluster, redeploy with the same job id; Flink resumes from HA.
                self._event("Suspended", "Suspending existing deployment.")
                self._record_reconciled(self._target_spec("suspended", "last-state"))
                self._recon()["state"] = "UPGRADING" if wanted == "running" else "DEPLOYED"
                if wanted != "running":
                    self._mark_stable()
                self._remove_cluster()
                self.status["jobManagerDeploymentStatus"] = "MISSING"
                self.waiting_progress = True
                return
            if cancellable:
                self._start_cancel(wanted)
                return
        self.waiting_progress = True

    def _stateless_suspend(self, wanted: str, restore_mode: str, cancel: bool) -> None:
        assert self.cluster is not None
        job_id = self.cluster.get("jobId")
        if cancel and job_id and self.status.get("jobManagerDeploymentStatus") == "READY":
            self.actions.append(Action("cancel", {"job_id": job_id}, required=False))
        self._event("Suspended", "Suspending existing deployment.")
        self._finish_suspend(wanted, restore_mode)
        # Nothing to keep: the cluster goes in this same sync.
        self._remove_cluster()
        self.status["jobManagerDeploymentStatus"] = "MISSING"
        self._job_status()["state"] = "CANCELED" if cancel else self._job_status().get("state")

    def _finish_suspend(self, wanted: str, restore_mode: str) -> None:
        """The job is stopped and the path to restore from is in status; record the suspended spec.
        The cluster itself is removed on the next sync (the path must be durable before children change)."""
        self._record_reconciled(self._target_spec("suspended", restore_mode))
        recon = self._recon()
        if wanted == "running":
            recon["state"] = "UPGRADING"
        else:
            recon["state"] = "DEPLOYED"
            self._mark_stable()
        self.waiting_progress = True

    def _start_stop(self, wanted: str, purpose: str | None = None) -> None:
        assert self.cluster is not None
        job_id = self.cluster["jobId"]
        attempt = int(self.internal.get("attempts") or 0)
        trigger_id = derive_id(self.uid, "stop", job_id, attempt)
        pending = records.stop_record(trigger_id, job_id, self.now_ms,
                                      purpose or ("upgrade" if wanted == "running" else "suspend"))
        # Intent first: the stop is issued on the next sync, once this record is durable in status.
        self.internal["pending"] = pending
        if pending["purpose"] != "delete":
            self._recon()["state"] = "UPGRADING"
            self._event("Suspended", "Suspending existing deployment.")
        self.waiting_progress = True

    def _start_cancel(self, wanted: str, purpose: str | None = None) -> None:
        assert self.cluster is not None
        job_id = self.cluster["jobId"]
        self.internal["pending"] = records.cancel_record(job_id, self.now_ms,
                                                         purpose or ("upgrade" if wanted == "running" else "suspend"))
        self._recon()["state"] = "UPGRADING"
        self._event("Suspended", "Suspending existing deployment.")
        self.waiting_progress = True

    # ----------------------------------------------------------------- in-flight operations
    def _wanted_state(self) -> str:
        if self.desired is not None and self.desired.job is not None:
            return self.desired.job.state
        return "running"

    # ----------------------------------------------------------------- snapshots and rollback
    def _job_running(self) -> bool:
        return (self.status.get("jobManagerDeploymentStatus") == "READY"
                and self._job_status().get("state") == "RUNNING" and self.cluster is not None)

    def _other_changes(self) -> None:
        if self.desired is None or self.desired.job is None or not self._job_running():
            return
        if ((self.reconciled or {}).get("job") or {}).get("state") != "running":
            return
        assert self.cluster is not None  # _job_running
        job_id = self.cluster["jobId"]
        nonce = self.desired.job.savepointTriggerNonce
        if nonce is not None and nonce != (self.reconciled or {}).get("job", {}).get("savepointTriggerNonce"):
            self._start_savepoint(job_id, "MANUAL", nonce, nonce)
            return
        due = self._periodic_due_in_ms()
        if due is not None and due <= 0:
            # Keyed by the due time, so a retried sync asks for the same savepoint.
            self._start_savepoint(job_id, "PERIODIC", None, self.now_ms + due)
            return
        checkpoint_nonce = self.desired.job.checkpointTriggerNonce
        if checkpoint_nonce is not None and checkpoint_nonce != (self.reconciled or {}).get("job", {}).get("checkpointTriggerNonce"):
            self.actions.append(Action("trigger_checkpoint", {
                "job_id": job_id, "checkpoint_type": _opt(self.config, "checkpoint.type", "FULL"),
                "trigger_id": derive_id(self.uid, "checkpoint", checkpoint_nonce)}))
            spec = copy.deepcopy(self.reconciled or {})
            spec["job"]["checkpointTriggerNonce"] = checkpoint_nonce
            was_stable = self._recon().get("lastReconciledSpec") == self._recon().get("lastStableSpec")
            self._record_reconciled(spec)
            if was_stable:
                self._mark_stable()

    def _should_roll_back(self) -> bool:
        recon = self._recon()
        if not flinkconf.is_true(self.config, OP + "deployment.rollback.enabled"):
            return False
        if recon.get("state") != "DEPLOYED" or recon.get("lastReconciledSpec") == recon.get("lastStableSpec"):
            return False
        stable, _ = deserialize_reconciled(recon.get("lastStableSpec"))
        if not stable or ((stable.get("job") or {}).get("state") == "suspended"):
            return False
        if self.desired is None or stable.get("flinkVersion") != self.desired.flinkVersion:
            return False
        timeout = _duration_ms(self.config, "deployment.readiness.timeout", "5 min")
        return self.now_ms - int(recon.get("reconciliationTimestamp") or self.now_ms) > timeout

    def _start_rollback(self) -> None:
        """Redeploy the last stable spec: remove the unstable cluster, then deploy from the upgrade savepoint."""
        recon = self._recon()
        stable, _ = deserialize_reconciled(recon.get("lastStableSpec"))
        assert stable is not None
        self._event("Rollback", "Rolling back failed deployment.")
        recon["state"] = "ROLLING_BACK"
        stable_spec = parse_deployment_spec(stable)
        job_status = self._job_status()
        recon_mode = ((self.reconciled or {}).get("job") or {}).get("upgradeMode")
        job_id = None
        path = None
        if stable_spec.job is not None:
            if recon_mode == "last-state" and is_kubernetes_ha(self.config):
                job_id = job_status.get("jobId")
            else:
                job_id = derive_id(self.uid, self.generation, "rollback", int(self.internal.get("deploys") or 1))
                if recon_mode != "stateless":
                    path = job_status.get("upgradeSavepointPath")
            if self.cluster and self.cluster.get("jobId") and self.status.get("jobManagerDeploymentStatus") == "READY":
                self.actions.append(Action("cancel", {"job_id": self.cluster["jobId"]}, required=False))
            job_status["jobId"] = job_id
        seq = int(self.internal.get("deploys") or 1) + 1
        self.internal["deploys"] = seq
        self._remove_cluster()
        self.internal["next"] = cluster_record(stable_spec, job_id, path, self.generation, seq=seq)
        self.status["jobManagerDeploymentStatus"] = "MISSING"
        self.waiting_progress = True

    # ----------------------------------------------------------------- deletion
    def _finalize(self) -> SyncResult:
        if self.old_status.get("lifecycleState") not in ("DELETING", "DELETED"):
            self._event("Cleanup", "Cleaning up FlinkDeployment", component="Operator")
        self.status["lifecycleState"] = "DELETING"
        if self.cluster and not self._is_app():
            blocking = sorted((job.get("metadata") or {}).get("name", "") for job in self.session_jobs)
            if blocking and flinkconf.is_true(self.config, OP + "session.deletion.block-on-session-jobs", True):
                message = f"The session jobs {blocking} should be deleted first"
                self.status["error"] = error_json("CleanupFailedException", message, "CleanupFailed")
                if error_message(self.old_status.get("error")) != message:
                    self._event("CleanupFailed", message, "Warning", "Operator")
                return self._result(keep_lifecycle=True, resync=5.0, finalized=False)
        if self.cluster and self._is_app() and not self.internal.get("deleteReady"):
            self._observe()
            if self.internal.get("pending"):
                self._progress_pending()
                if not self.internal.get("deleteReady"):
                    return self._result(keep_lifecycle=True, resync=self._progress_interval(), finalized=False)
            elif flinkconf.is_true(self.config, OP + "job.savepoint-on-deletion") and self._job_running() \
                    and snapshots.savepoint_dir(self.config):
                self._start_stop("suspended", purpose="delete")
                return self._result(keep_lifecycle=True, resync=self._progress_interval(), finalized=False)
            elif self.cluster.get("jobId") and self.status.get("jobManagerDeploymentStatus") == "READY" and \
                    self._job_status().get("state") not in TERMINAL_JOB_STATES:
                self.actions.append(Action("cancel", {"job_id": self.cluster["jobId"]}, required=False))
        if self.internal.get("deleteReady") and self.old_status.get("flinkSync", {}).get("deleteReady") is None:
            # The deletion savepoint is recorded in this response; remove the cluster on the next call.
            return self._result(keep_lifecycle=True, resync=0.5, finalized=False)
        self.actions.append(Action("delete_ha_data", {"name": self.name, "namespace": self.namespace}, required=False))
        self._remove_cluster()
        self.internal.pop("next", None)
        self.status["lifecycleState"] = "DELETED"
        self.status["jobManagerDeploymentStatus"] = "MISSING"
        return self._result(keep_lifecycle=True, finalized=True)

    # ----------------------------------------------------------------- result
    def _progress_interval(self) -> float:
        try:
            return parse_duration(self.config[OP + "observer.progress-check.interval"]) / 1000
        except (KeyError, DurationError):
            return self.settings.progress_interval_s

    def _reconcile_interval(self) -> float:
        try:
            return parse_duration(self.config[OP + "reconcile.interval"]) / 1000
        except (KeyError, DurationError):
            return self.settings.stable_interval_s

    def _children(self) -> list[dict[str, Any]]:
        if not self.cluster:
            return []
        record = self.cluster
        spec = self._cluster_spec()
        assert spec is not None
        plan = ClusterPlan(self.name, self.namespace, spec, int(record.get("generation") or 1), record.get("jobId"),
                           record.get("restorePath"), self.settings.operator_defaults)
        children = render_cluster(plan)
        for child in children:
            if child["kind"] == "Deployment" and child["metadata"]["name"] == self.name:
                child["metadata"].setdefault("annotations", {})[RECORD_ANNOTATION] = self._record_annotation(record)
        return children

    def _conditions(self) -> None:
        now = iso(self.now_ms)
        conditions = list(self.status.get("conditions") or [])
        jm_status = self.status.get("jobManagerDeploymentStatus") or "MISSING"
        job_state = self._job_status().get("state")
        lifecycle = self.status.get("lifecycleState")
        error = error_message(self.status.get("error"))
        if self._is_app():
            running = job_state == "RUNNING"
            conditions = set_condition(conditions, "Running", running, camel(job_state or "Reconciling"),
                                       f"Job status {job_state or 'RECONCILING'}", now, self.generation)
            ready = running and jm_status == "READY"
            ready_reason = "JobRunning" if ready else camel(job_state or "Reconciling")
        else:
            ready = jm_status == "READY"
            ready_reason = "JobManagerReady" if ready else camel(jm_status)
            conditions = set_condition(conditions, "Running", ready, ready_reason,
                                       "JobManager is running and ready to receive REST API calls" if ready
                                       else f"JobManager deployment status {jm_status}", now, self.generation)
        if lifecycle == "SUSPENDED":
            ready, ready_reason = False, "Suspended"
        # While an upgrade is in flight the old job may still run: Ready must not say the new spec is there,
        # or `kubectl wait --for=condition=Ready` would return before the upgrade happened.
        in_flight = lifecycle in ("UPGRADING", "ROLLING_BACK") or bool(self.internal.get("next")) or \
            (self.internal.get("pending") or {}).get("op") in ("stop", "cancel") or bool(self.internal.get("retryAt"))
        if in_flight and ready:
            ready, ready_reason = False, "UpgradeInProgress"
        conditions = set_condition(conditions, "Ready", ready, ready_reason,
                                   f"lifecycle {lifecycle}, JobManager {jm_status}" + (f", job {job_state}" if job_state else ""),
                                   now, self.generation)
        progressing = lifecycle in ("UPGRADING", "DEPLOYED", "ROLLING_BACK") or bool(self.internal.get("pending")) \
            or bool(self.internal.get("next")) or bool(self.internal.get("retryAt"))
        conditions = set_condition(conditions, "Progressing", progressing, camel(lifecycle or "Created"),
                                   f"lifecycle {lifecycle}", now, self.generation)
        degraded = bool(error) or lifecycle in ("FAILED", "ROLLED_BACK") or jm_status == "ERROR"
        conditions = set_condition(conditions, "Degraded", degraded,
                                   "ValidationError" if self.invalid else camel(lifecycle or "Created") if degraded else "AsExpected",
                                   error[:512] if error else f"lifecycle {lifecycle}", now, self.generation)
        self.status["conditions"] = conditions

    def _result(self, keep_lifecycle: bool = False, resync: float | None = None,
                finalized: bool | None = None) -> SyncResult:
        if not keep_lifecycle:
            self.status.pop("lifecycleState", None)
            self.status["lifecycleState"] = lifecycle_state(self.status)
        self.status["observedGeneration"] = self.generation
        spec = self._cluster_spec() or self.desired
        if spec is not None and spec.job is not None:
            config = self._config_for(spec)
            _, replicas = parallelism_and_replicas(spec, config)
            running = self._job_status().get("state") == "RUNNING"
            self.status["taskManager"] = {"labelSelector": f"component=taskmanager,app={self.name}",
                                          "replicas": replicas if running else 0}
        self._conditions()
        if not self.internal:
            self.status.pop("flinkSync", None)
        if resync is None:
            resync = self._progress_interval() if (self.waiting_progress or
                                                   self.status.get("jobManagerDeploymentStatus") not in ("READY", "MISSING")
                                                   or self.status.get("lifecycleState") in ("UPGRADING", "DEPLOYED", "ROLLING_BACK")) \
                else self._reconcile_interval()
            due = self._periodic_due_in_ms() if self.desired is not None and self.desired.job is not None else None
            if due is not None and due > 0:
                resync = min(resync, max(1.0, due / 1000))
        children = self._children() if finalized is not True else []
        return SyncResult(status=self.status, children=children, actions=self.actions, events=self.events,
                          resync_after_seconds=resync, finalized=finalized)


class UnaccountedChildren(StatusUnusable):
    """Observed children that a response would delete although no record of flink-sync explains why."""


def _refuse_unaccounted_removal(status: dict[str, Any], observed_children: dict[str, Any],
                                answered: list[dict[str, Any]], name: str) -> None:
    """The last line of defence: a response never leaves out an observed child (Metacontroller would delete it)
    unless a record of flink-sync in the incoming status decides the children. Those records are the cluster
    record (children are rendered from it), the next deployment, and a deliberate removal (`removed`) that
    covers the observed JobManager. Anything else, such as a status without its records next to a cluster
    whose JobManager carries no record, is refused as a 422: nothing is applied."""
    internal = status.get("flinkSync") or {}
    if internal.get("cluster") or internal.get("next"):
        return
    kept = {(child.get("kind"), (child.get("metadata") or {}).get("name")) for child in answered}
    dropped = sorted(f"{kind} {obj_name}" for kind, obj_name, obj in observed.all_objects(observed_children)
                     if (kind, obj_name) not in kept and not (obj.get("metadata") or {}).get("deletionTimestamp"))
    if not dropped:
        return
    if "removed" in internal:
        jm = observed.deployment(observed_children, name)
        seen = observed_record(jm) if jm is not None else None
        if jm is None or (seen is not None and seen["seq"] <= int(internal.get("removed") or 0)):
            return  # what a recorded removal left behind, still in Metacontroller's cache or being deleted
    elif internal and status.get("jobManagerDeploymentStatus") == "MISSING":
        return  # the same, in a status of a flink-sync from before `removed`: its removals left MISSING behind
    raise UnaccountedChildren(
        f"status.flinkSync: no record of the cluster whose children are observed ({', '.join(dropped[:6])}"
        + (", ..." if len(dropped) > 6 else "") + "); flink-sync will not delete children it cannot account for. "
        "If another operator created them, suspend the job there and delete them; flink-sync then deploys from the "
        "spec and restores status.jobStatus.upgradeSavepointPath.")


def sync_deployment(parent: dict[str, Any], children: dict[str, Any] | None, flink: FlinkObservation | None,
                    now_ms: int, settings: CoreSettings, finalizing: bool = False,
                    session_jobs: list[dict[str, Any]] | None = None) -> SyncResult:
    """One sync of a FlinkDeployment. Pure: everything it needs comes in as arguments."""
    labels = (parent.get("metadata") or {}).get("labels") or {}
    if str(labels.get("flink.apache.org/canary", "")).lower() == "true":
        return _canary(parent, finalizing)
    return _Sync(parent, children or {}, flink, now_ms, settings, list(session_jobs or [])).run(finalizing)


def _canary(parent: dict[str, Any], finalizing: bool) -> SyncResult:
    """Canary resources only prove the operator answers (Apache skips validation and deploys nothing)."""
    meta = parent.get("metadata") or {}
    status = {"lifecycleState": "DELETED" if finalizing else "CREATED", "observedGeneration": int(meta.get("generation") or 1),
              "jobManagerDeploymentStatus": "MISSING", "reconciliationStatus": {}}
    return SyncResult(status=status, children=[], finalized=True if finalizing else None, resync_after_seconds=None)
