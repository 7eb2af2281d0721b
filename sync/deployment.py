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
import dataclasses
import json
from typing import Any

from . import flinkconf, observed, settled, snapshot_resources
from .clock import Now
from .diff import DiffType
from .durations import DurationError, parse_duration
from .flinkdeployment import cluster, conditions, finalize, health, observe, recovery, savepoints, upgrade
from .flinkdeployment.cluster import RECORD_ANNOTATION, cluster_record, observed_record, record_annotation
from .flinkdeployment.guard import UnaccountedChildren, refuse_unaccounted_removal
from .intake import usable_status
from .jobsync import JobSync, ReadSpec
from .model import CoreSettings, FlinkObservation, ObservationPlan, SyncResult
from .podhealth import PodCause
from .podtemplate import json_copy
from .records import DeploymentRecord, FlinkSyncRecord
from .render import parallelism_and_replicas
from .snapshots import OP
from .spec import (
    FlinkDeploymentSpec,
    parse_deployment_spec,
)
from .status import error_message
from .validation import validate_deployment


def plan_observation(parent: dict[str, Any], children: dict[str, Any] | None) -> ObservationPlan:
    """Which Flink REST calls this sync needs (pure: decided from the recorded status and observed children)."""
    meta = parent.get("metadata") or {}
    status = usable_status(parent.get("status"))
    records = FlinkSyncRecord.from_json(status.get("flinkSync") or {})
    cluster, pending = records.cluster, records.pending
    if cluster is None:
        return ObservationPlan()
    jm = observed.deployment(children, meta.get("name", ""))
    if jm is None and pending is None:
        return ObservationPlan()
    job_id = cluster.job_id if cluster.spec_json().get("job") is not None else None
    trigger = pending.trigger_id if pending is not None and pending.op in ("stop", "savepoint") else None
    return ObservationPlan(
        query_cluster=True,
        cluster_info=not status.get("clusterInfo") or status.get("jobManagerDeploymentStatus") != "READY",
        job_id=job_id,
        trigger_job_id=pending.job_id if trigger and pending is not None else None,
        trigger_id=trigger,
        latest_checkpoint=job_id is not None,
        failure_cause=job_id is not None,
        taskmanagers=True,
    )


# What hooks/, tests and tools import from here.
__all__ = ["RECORD_ANNOTATION", "UnaccountedChildren", "cluster_record", "observed_record", "plan_observation",
           "record_annotation", "sync_deployment"]


class DeploymentSync(JobSync):
    """One sync of a FlinkDeployment: the shared job state machine (`sync/jobsync.py`) with a cluster rendered
    from the cluster record. Each concern is a module of `sync/flinkdeployment/`."""

    SPEC_KIND = "FlinkDeploymentSpec"
    EVENT_COMPONENT = "JobManagerDeployment"
    IS_DEPLOYMENT = True

    def __init__(self, parent: dict[str, Any], children_in: dict[str, Any], flink: FlinkObservation | None,
                 now_ms: int, settings: CoreSettings, session_jobs: list[dict[str, Any]],
                 pods: list[dict[str, Any]]) -> None:
        super().__init__(parent, flink, now_ms, settings)
        self.children_in = children_in
        self.session_jobs = session_jobs
        self.pods = pods  # the cluster's pods (customize: related)
        self.desired: FlinkDeploymentSpec | None = None
        self.jm_lost = False
        self.pod_cause: PodCause | None = None
        self._parsed_cluster_spec: tuple[str, FlinkDeploymentSpec] | None = None
        self._annotation: tuple[tuple[Any, ...], str] | None = None
        self._checked_render = cluster.CheckedRender()  # what the validity check rendered
        cluster.check_records_agree(self)

    def _remove_cluster(self) -> DeploymentRecord | None:
        """Take the cluster record out of status, so this response leaves its children out, and record that
        this was deliberate (`removed`): a later sync that still observes them knows they are going."""
        record = self.flink_sync.cluster
        self._set_records(cluster=None)
        if record is not None and record.seq is not None:
            self._set_records(removed=max(record.seq, self.flink_sync.removed or 0))
        return record

    # ----------------------------------------------------------------- small accessors
    @property
    def cluster(self) -> DeploymentRecord | None:
        return self.flink_sync.cluster

    def _cluster_spec(self) -> FlinkDeploymentSpec | None:
        if self.cluster is None:
            return None
        text = self.cluster.spec
        if self._parsed_cluster_spec is None or self._parsed_cluster_spec[0] != text:
            # Parsed once per sync (it is asked for several times); callers only read it.
            self._parsed_cluster_spec = (text, parse_deployment_spec(json.loads(text)))
        return self._parsed_cluster_spec[1]

    def _record_annotation(self, record: DeploymentRecord) -> str:
        """record_annotation(record), computed once per sync for the same record values."""
        key = (record.seq, record.job_id, record.restore_path, record.generation, record.spec)
        if self._annotation is None or self._annotation[0] != key:
            self._annotation = (key, record_annotation(record))
        return self._annotation[1]

    def _is_app(self) -> bool:
        spec = self.desired or self._cluster_spec()
        if spec is not None:
            return spec.job is not None
        return (self.reconciled or {}).get("job") is not None

    def _observed_jm(self) -> dict[str, Any] | None:
        return observed.deployment(self.children_in, self.name)

    def _old_cluster_present(self) -> bool:
        return bool(self._observed_jm() or observed.deployment(self.children_in, f"{self.name}-taskmanager"))

    def _config_for(self, spec: FlinkDeploymentSpec | None) -> dict[str, str]:
        if spec is None:
            return {}
        return flinkconf.effective_user_config(self.settings.operator_defaults, self.namespace, spec.flinkVersion,
                                               spec.flinkConfiguration)

    def _job_running(self) -> bool:
        return (self.status.get("jobManagerDeploymentStatus") == "READY"
                and self._job_status().get("state") == "RUNNING" and self.cluster is not None)

    # ----------------------------------------------------------------- reading the spec
    def _before_validation(self) -> None:
        # Adoption first: the record it finds also decides what "the last reconciled spec" is for validation.
        observe.adopt_newer_cluster(self)

    def _parse_spec(self, spec: Any) -> FlinkDeploymentSpec:
        return parse_deployment_spec(spec)

    def _read_spec(self) -> ReadSpec:
        spec = parse_deployment_spec(self.parent.get("spec"))
        config = self._config_for(spec)
        recon_state = ((self.reconciled or {}).get("job") or {}).get("state")
        error = validate_deployment(self.name, spec, config, self.reconciled, recon_state, self.settings.validators,
                                    self.parent) or cluster.refused_children(self, spec)
        return spec, config, error

    def _config_when_invalid(self, read_config: dict[str, str]) -> dict[str, str]:
        return self._config_for(self.desired)

    def _validation_error_fixed(self, old_error: str) -> bool:
        return error_message(old_error).startswith("spec") and "ValidationException" in old_error

    # ----------------------------------------------------------------- the state machine
    def _finalize(self) -> SyncResult:
        return finalize.finalize(self)

    def _observe(self) -> None:
        self.pod_cause = health.classify(self)
        observe.observe(self)
        health.report(self)

    def _continue_recorded_step(self) -> bool:
        """A next deployment, an operation in flight, or a stopped job whose cluster is still there."""
        if self.flink_sync.next is not None:
            upgrade.deploy_next(self)
            return True
        if self.flink_sync.pending is not None:
            self._progress_pending()
            return True
        if self.cluster and self.reconciled is not None and self._reconciled_job().get("state") == "suspended":
            # The job was stopped and the path to restore from is durable in status: remove the cluster.
            self._drop_stopped_deployment()
            self.waiting_progress = True
            return True
        return False

    def _without_a_valid_change(self) -> None:
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
        self._upgrade(DiffType.UPGRADE)

    def _decided_by_a_loss(self, diff: DiffType) -> bool:
        """The JobManager Deployment is gone. Returns whether that decided this sync."""
        if not self.jm_lost:
            return False
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

    def _change_refused(self, diff: DiffType) -> bool:
        """Apache refuses to guess after "Manual restore required": only a savepoint redeploy (an explicit
        initialSavepointPath) or a change of a stateless job may start again."""
        if not self.flink_sync.manual_restore:
            return False
        assert self.desired is not None
        job = self.desired.job
        if diff != DiffType.SAVEPOINT_REDEPLOY and not (job is not None and job.upgradeMode == "stateless"
                                                        and diff != DiffType.IGNORE):
            return True
        self._set_records(manual_restore=None)
        if diff == DiffType.SAVEPOINT_REDEPLOY and job is not None:
            self._set_records(redeploy_from=job.initialSavepointPath)
        return False

    def _changed_in_place(self, diff: DiffType) -> bool:
        if diff == DiffType.SCALE and self.cluster and upgrade.can_scale_in_place(self):
            upgrade.scale_in_place(self)
            return True
        return False

    def _deployed_state(self) -> str | None:
        if self.cluster is None:
            return None
        return self._reconciled_job().get("state", "running") if self._is_app() else "running"

    def _suspend(self, diff: DiffType) -> None:
        upgrade.suspend(self, diff)

    def _drop_stopped_deployment(self) -> None:
        self._remove_cluster()
        self.status["jobManagerDeploymentStatus"] = "MISSING"

    def _old_deployment_present(self) -> bool:
        return self._old_cluster_present()

    def _prepare_deployment(self, diff: DiffType) -> None:
        upgrade.prepare_deploy(self, diff)

    # ----------------------------------------------------------------- the answer
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

    def _kind_status(self) -> None:
        """`status.taskManager` (the scale subresource's view of a job cluster): replicas while the job runs."""
        spec = self._cluster_spec() or self.desired
        if spec is None or spec.job is None:
            return
        _, replicas = parallelism_and_replicas(spec, self._config_for(spec))
        running = self._job_status().get("state") == "RUNNING"
        self.status["taskManager"] = {"labelSelector": f"component=taskmanager,app={self.name}",
                                      "replicas": replicas if running else 0}

    def _conditions(self) -> None:
        conditions.conditions(self)

    def _busy(self) -> bool:
        return self.status.get("jobManagerDeploymentStatus") not in ("READY", "MISSING") or \
            self.status.get("lifecycleState") in ("UPGRADING", "DEPLOYED", "ROLLING_BACK")

    def _resync_after(self) -> float:
        """A pod cause waiting for the readiness timeout caps the resync (`sync/flinkdeployment/health.py`)."""
        resync = super()._resync_after()
        cap = health.resync_cap_s(self)
        return min(resync, cap) if cap is not None else resync

    def _takes_periodic_savepoints(self) -> bool:
        return self.desired is not None and self.desired.job is not None

    def _children(self) -> list[dict[str, Any]]:
        return cluster.children(self)

    def _checked(self, result: SyncResult) -> SyncResult:
        refuse_unaccounted_removal(self.old_status, self.incoming_records, self.children_in, result.children,
                                   self.name)
        return result


def sync_deployment(parent: dict[str, Any], children: dict[str, Any] | None, flink: FlinkObservation | None,
                    now_ms: int, settings: CoreSettings, finalizing: bool = False,
                    session_jobs: list[dict[str, Any]] | None = None,
                    pods: list[dict[str, Any]] | None = None) -> SyncResult:
    """One sync of a FlinkDeployment. Pure: everything it needs comes in as arguments (`pods`: the cluster's
    pods, which the customize hook relates)."""
    labels = (parent.get("metadata") or {}).get("labels") or {}
    if str(labels.get("flink.apache.org/canary", "")).lower() == "true":
        return _canary(parent, finalizing)
    # A resync with the inputs of an earlier one that changed nothing gets that answer (sync/settled.py). A parent
    # without a status has no record to answer from, and its answer (a status) is no fixed point to keep.
    keeps = not finalizing and isinstance(parent.get("status"), dict)
    key = settled.digest(parent, children, flink, settings, session_jobs, pods) if keeps else None
    if key is not None:
        kept = settled.answer(parent, children, key, now_ms)
        if kept is not None:
            return kept
    now = Now.start(now_ms)  # notes every comparison made with the time (sync/clock.py)
    sync = DeploymentSync(parent, children or {}, flink, now, settings, list(session_jobs or []),
                          list(pods or []))
    result = sync.run(finalizing)
    # The savepoint history as FlinkStateSnapshot children (kubernetes.operator.snapshot.resource.enabled).
    result = snapshot_resources.attach(result, snapshot_resources.JobRef("FlinkDeployment", sync.name, sync.namespace),
                                       parent.get("status"), children,
                                       sync.config if sync.desired is not None else None, now,
                                       settings.progress_interval_s,
                                       checkpoint_asked_at=sync.incoming_records.checkpoint_snapshot_at)
    result = _without_the_clock(result)
    return settled.keep(parent, children, key, now.window, result) if key is not None else result


def _without_the_clock(result: SyncResult) -> SyncResult:
    """The answer as plain JSON data: where the sync wrote the time (`Now`) it becomes the number it stands for
    (json_copy copies a `Now` as its plain value)."""
    result.status = json_copy(result.status)
    result.actions = [dataclasses.replace(action, params=json_copy(action.params)) for action in result.actions]
    return result


def _canary(parent: dict[str, Any], finalizing: bool) -> SyncResult:
    """Canary resources only prove the operator answers (Apache skips validation and deploys nothing)."""
    meta = parent.get("metadata") or {}
    status: dict[str, Any] = {"lifecycleState": "DELETED" if finalizing else "CREATED", "observedGeneration": int(meta.get("generation") or 1),
              "jobManagerDeploymentStatus": "MISSING", "reconciliationStatus": {}}
    return SyncResult(status=status, children=[], finalized=True if finalizing else None, resync_after_seconds=None)
