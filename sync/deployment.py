"""The FlinkDeployment sync: parent + observed children + observed Flink state + clock in; desired
children, status, actions and events out (the Apache operator's observe → reconcile → status loop).

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
from typing import Any

from . import flinkconf, jobsync, observed, snapshot_resources
from .diff import DiffType, classify
from .durations import DurationError, parse_duration
from .flinkdeployment import cluster, conditions, finalize, health, observe, recovery, savepoints, upgrade
from .flinkdeployment.cluster import RECORD_ANNOTATION, cluster_record, observed_record, record_annotation
from .flinkdeployment.guard import UnaccountedChildren, refuse_unaccounted_removal
from .intake import usable_status
from .model import Action, CoreSettings, Event, FlinkObservation, ObservationPlan, SyncResult
from .pending import PendingOperations
from .podhealth import PodCause
from .podtemplate import json_copy
from .render import parallelism_and_replicas
from .snapshots import OP
from .spec import (
    FlinkDeploymentSpec,
    SpecError,
    deserialize_reconciled,
    parse_deployment_spec,
    serialize_reconciled,
    spec_json,
)
from .status import error_json, error_message, lifecycle_state
from .validation import validate_deployment


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
        taskmanagers=True,
    )


# What hooks/, tests and tools import from here.
__all__ = ["RECORD_ANNOTATION", "UnaccountedChildren", "cluster_record", "observed_record", "plan_observation",
           "record_annotation", "sync_deployment"]


@dataclass
class _Sync(PendingOperations):
    parent: dict[str, Any]
    children_in: dict[str, Any]
    flink: FlinkObservation | None
    now_ms: int
    settings: CoreSettings
    session_jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)  # the cluster's pods (customize: related)

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
        self.waiting_progress = False
        self.jm_lost = False
        self.pod_cause: PodCause | None = None
        self._parsed_cluster_spec: tuple[str, FlinkDeploymentSpec] | None = None
        self._annotation: tuple[tuple[Any, ...], str] | None = None
        cluster.check_records_agree(self)

    def _remove_cluster(self) -> dict[str, Any]:
        """Take the cluster record out of status, so this response leaves its children out, and record that
        this was deliberate (`removed`): a later sync that still observes them knows they are going."""
        record = self.internal.pop("cluster", None) or {}
        seq = record.get("seq")
        if isinstance(seq, int):
            self.internal["removed"] = max(seq, int(self.internal.get("removed") or 0))
        return record

    # ----------------------------------------------------------------- small accessors

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
        observe.adopt_newer_cluster(self)
        self._parse_and_validate()
        if finalizing:
            return finalize.finalize(self)
        self.pod_cause = health.classify(self)
        observe.observe(self)
        health.report(self)
        self._step()
        result = self._result()
        refuse_unaccounted_removal(self.old_status, self.children_in, result.children, self.name)
        return result

    def _parse_and_validate(self) -> None:
        spec_raw = self.parent.get("spec")
        error: str | None
        try:
            spec = parse_deployment_spec(spec_raw)
            config = self._config_for(spec)
            recon_state = ((self.reconciled or {}).get("job") or {}).get("state")
            error = validate_deployment(self.name, spec, config, self.reconciled, recon_state,
                                        self.settings.validators, self.parent) or cluster.refused_children(self, spec)
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

    # ----------------------------------------------------------------- the state machine
    def _step(self) -> None:
        """One decision: first finish what the status records as in flight, then act on the spec."""
        if self._continue_recorded_step() or self.desired is None:
            return
        if self.reconciled is None or self.invalid:
            self._first_deploy_or_finish_upgrade()
            return
        diff, fields = classify(self.reconciled, spec_json(self.desired))
        if self.jm_lost and self._lost_jobmanager(diff):
            return
        if diff == DiffType.IGNORE and self._recon().get("state") != "UPGRADING":
            self._steady()
            return
        if self.internal.get("manualRestore") and not self._leave_manual_restore(diff):
            return
        jobsync.announce_spec_change(self, diff, fields, "FlinkDeploymentSpec")
        if jobsync.retry_later(self):
            return
        if diff == DiffType.SCALE and self.cluster and upgrade.can_scale_in_place(self):
            upgrade.scale_in_place(self)
            return
        upgrade.upgrade(self, diff)

    def _continue_recorded_step(self) -> bool:
        """A next deployment, an operation in flight, or a stopped job whose cluster is still there."""
        if self.internal.get("next"):
            upgrade.deploy_next(self)
            return True
        if self.internal.get("pending"):
            self._progress_pending()
            return True
        if self.cluster and self.reconciled is not None and \
                ((self.reconciled.get("job") or {}).get("state")) == "suspended":
            # The job was stopped and the path to restore from is durable in status: remove the cluster.
            self._remove_cluster()
            self.status["jobManagerDeploymentStatus"] = "MISSING"
            self.waiting_progress = True
            return True
        return False

    def _first_deploy_or_finish_upgrade(self) -> None:
        """Nothing reconciled yet: deploy a valid spec. An invalid spec only finishes what is in flight: an
        upgrade whose old cluster is already gone is completed with the recorded target spec, so that an invalid
        edit never leaves the job down."""
        if self.reconciled is None:
            if not self.invalid:
                upgrade.first_deploy(self)
            return
        if self._recon().get("state") != "UPGRADING" or self.cluster:
            return
        target = copy.deepcopy(self.reconciled)
        if target.get("job"):
            target["job"]["state"] = "running"
        self.desired = parse_deployment_spec(target)
        upgrade.upgrade(self, DiffType.UPGRADE)

    def _lost_jobmanager(self, diff: DiffType) -> bool:
        """The JobManager Deployment is gone. Returns whether that decided this sync."""
        assert self.desired is not None
        if (diff != DiffType.IGNORE or self._recon().get("state") == "UPGRADING") and self.desired.job is not None \
                and self.desired.job.upgradeMode == "stateless":
            # Most likely our own stateless suspend whose status write was lost: carry on with the upgrade.
            upgrade.stateless_suspend(self, self.desired.job.state, "stateless", cancel=False)
            return True
        recovery.jm_missing(self, self.old_status.get("jobManagerDeploymentStatus"))
        return not self.cluster or diff == DiffType.IGNORE

    def _steady(self) -> None:
        """The spec is what runs: roll back an upgrade that did not become stable, or take snapshots."""
        if recovery.should_roll_back(self):
            recovery.start_rollback(self)
        else:
            savepoints.other_changes(self)

    def _leave_manual_restore(self, diff: DiffType) -> bool:
        """Apache refuses to guess after "Manual restore required": only a savepoint redeploy (an explicit
        initialSavepointPath) or a change of a stateless job may start again."""
        assert self.desired is not None
        job = self.desired.job
        if diff != DiffType.SAVEPOINT_REDEPLOY and not (job is not None and job.upgradeMode == "stateless"
                                                        and diff != DiffType.IGNORE):
            return False
        self.internal.pop("manualRestore")
        if diff == DiffType.SAVEPOINT_REDEPLOY and job is not None:
            self.internal["redeployFrom"] = job.initialSavepointPath
        return True

    # ----------------------------------------------------------------- hooks for sync/pending.py

    # ----------------------------------------------------------------- in-flight operations

    # ----------------------------------------------------------------- snapshots and rollback
    def _target_spec(self, job_state: str, upgrade_mode: str | None) -> dict[str, Any]:
        return upgrade.target_spec(self, job_state, upgrade_mode)

    def _job_running(self) -> bool:
        return (self.status.get("jobManagerDeploymentStatus") == "READY"
                and self._job_status().get("state") == "RUNNING" and self.cluster is not None)

    # ----------------------------------------------------------------- deletion

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

    def _task_manager_status(self) -> None:
        """`status.taskManager` (the scale subresource's view of a job cluster): replicas while the job runs."""
        spec = self._cluster_spec() or self.desired
        if spec is None or spec.job is None:
            return
        _, replicas = parallelism_and_replicas(spec, self._config_for(spec))
        running = self._job_status().get("state") == "RUNNING"
        self.status["taskManager"] = {"labelSelector": f"component=taskmanager,app={self.name}",
                                      "replicas": replicas if running else 0}

    def _resync_after(self) -> float:
        """Soon while something is in flight or not ready, otherwise the reconcile interval; never past the
        next periodic savepoint."""
        busy = self.waiting_progress or \
            self.status.get("jobManagerDeploymentStatus") not in ("READY", "MISSING") or \
            self.status.get("lifecycleState") in ("UPGRADING", "DEPLOYED", "ROLLING_BACK")
        resync = self._progress_interval() if busy else self._reconcile_interval()
        due = self._periodic_due_in_ms() if self.desired is not None and self.desired.job is not None else None
        if due is not None and due > 0:
            resync = min(resync, max(1.0, due / 1000))
        cap = health.resync_cap_s(self)
        return min(resync, cap) if cap is not None else resync

    def _result(self, keep_lifecycle: bool = False, resync: float | None = None,
                finalized: bool | None = None) -> SyncResult:
        if not keep_lifecycle:
            self.status.pop("lifecycleState", None)
            self.status["lifecycleState"] = lifecycle_state(self.status)
        self.status["observedGeneration"] = self.generation
        self._task_manager_status()
        conditions.conditions(self)
        if not self.internal:
            self.status.pop("flinkSync", None)
        if resync is None:
            resync = self._resync_after()
        children = cluster.children(self) if finalized is not True else []
        return SyncResult(status=self.status, children=children, actions=self.actions, events=self.events,
                          resync_after_seconds=resync, finalized=finalized)


def sync_deployment(parent: dict[str, Any], children: dict[str, Any] | None, flink: FlinkObservation | None,
                    now_ms: int, settings: CoreSettings, finalizing: bool = False,
                    session_jobs: list[dict[str, Any]] | None = None,
                    pods: list[dict[str, Any]] | None = None) -> SyncResult:
    """One sync of a FlinkDeployment. Pure: everything it needs comes in as arguments (`pods`: the cluster's
    pods, which the customize hook relates)."""
    labels = (parent.get("metadata") or {}).get("labels") or {}
    if str(labels.get("flink.apache.org/canary", "")).lower() == "true":
        return _canary(parent, finalizing)
    sync = _Sync(parent, children or {}, flink, now_ms, settings, list(session_jobs or []), list(pods or []))
    result = sync.run(finalizing)
    # The savepoint history as FlinkStateSnapshot children (kubernetes.operator.snapshot.resource.enabled).
    return snapshot_resources.attach(result, snapshot_resources.JobRef("FlinkDeployment", sync.name, sync.namespace),
                                     parent.get("status"), children, sync.config if sync.desired is not None else None,
                                     now_ms, settings.progress_interval_s)


def _canary(parent: dict[str, Any], finalizing: bool) -> SyncResult:
    """Canary resources only prove the operator answers (Apache skips validation and deploys nothing)."""
    meta = parent.get("metadata") or {}
    status: dict[str, Any] = {"lifecycleState": "DELETED" if finalizing else "CREATED", "observedGeneration": int(meta.get("generation") or 1),
              "jobManagerDeploymentStatus": "MISSING", "reconciliationStatus": {}}
    return SyncResult(status=status, children=[], finalized=True if finalizing else None, resync_after_seconds=None)
