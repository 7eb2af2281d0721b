"""`flink-sync explain`: what the next syncs will do to a resource, in plain words, and why.

It runs the same pure core and the same Flink I/O the hooks run, against a simulated world (the in-memory
Flink of hooks/fake_flink.py) in which every step succeeds (the cluster starts, Flink answers, savepoints
complete), and narrates the syncs until nothing changes. So
an upgrade can be reviewed in a pull request before it is applied.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from sync import flinkconf, statesnapshot
from sync.deployment import plan_observation, sync_deployment
from sync.diff import classify
from sync.model import Action, CoreSettings, FlinkObservation, SyncResult
from sync.records import FlinkSyncRecord
from sync.render import parallelism_and_replicas
from sync.spec import SpecError, deserialize_reconciled, parse_deployment_spec
from sync.status import error_message
from sync.validation import SAVEPOINT_DIR_KEYS

from . import flink_io
from .fake_flink import FakeFlink, boot

MAX_SYNCS = 14
STEP_SECONDS = 5


def _children_map(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {"ConfigMap.v1": {}, "Service.v1": {}, "Deployment.apps/v1": {},
                                         "Ingress.networking.k8s.io/v1": {},
                                         "FlinkStateSnapshot.flink.apache.org/v1beta1": {}}
    for child in children:
        obj = copy.deepcopy(child)
        if obj["kind"] == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {"replicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas}
        key = {"ConfigMap": "ConfigMap.v1", "Service": "Service.v1", "Deployment": "Deployment.apps/v1",
               "Ingress": "Ingress.networking.k8s.io/v1",
               "FlinkStateSnapshot": "FlinkStateSnapshot.flink.apache.org/v1beta1"}[obj["kind"]]
        groups[key][obj["metadata"]["name"]] = obj
    return groups


def _describe_cluster(children: list[dict[str, Any]], name: str) -> str:
    jm = next((c for c in children if c["kind"] == "Deployment" and c["metadata"]["name"] == name), None)
    tm = next((c for c in children if c["kind"] == "Deployment" and c["metadata"]["name"] == f"{name}-taskmanager"), None)
    if jm is None:
        return "no cluster"
    args = jm["spec"]["template"]["spec"]["containers"][0].get("args") or []
    words = [f"JobManager Deployment '{name}' ({' '.join(args[:1])})"]
    if "--fromSavepoint" in args:
        words.append(f"restoring from {args[args.index('--fromSavepoint') + 1]}")
    if tm is not None:
        words.append(f"{tm['spec']['replicas']} TaskManager(s)")
    image = jm["spec"]["template"]["spec"]["containers"][0].get("image")
    words.append(f"image {image}")
    return ", ".join(words)


class _World:
    """Kubernetes as Metacontroller shows it (every Deployment available at once) and the in-memory Flink of
    hooks/fake_flink.py, reached through the hooks' own Flink I/O, in which every step succeeds: a cluster answers
    as soon as it is created, its job runs, savepoints complete at once."""

    def __init__(self, parent: dict[str, Any], settings: CoreSettings, savepoint_dir: str, checkpoint_dir: str):
        self.parent = parent
        self.name: str = parent["metadata"]["name"]
        self.now = 1_800_000_000_000
        self.children: list[dict[str, Any]] = []
        self.savepoint_dir = savepoint_dir
        self.checkpoint_dir = checkpoint_dir
        self.snapshots: dict[str, int] = {}
        self.cluster: FakeFlink | None = None
        status = parent.get("status") or {}
        cluster = FlinkSyncRecord.from_json(status.get("flinkSync") or {}).cluster
        if cluster is not None:
            from sync.deployment import RECORD_ANNOTATION, record_annotation
            from sync.render import ClusterPlan, render_cluster
            spec = parse_deployment_spec(cluster.spec_json())
            self.children = render_cluster(ClusterPlan(self.name, parent["metadata"]["namespace"],
                                                       spec, int(cluster.generation or 1), cluster.job_id,
                                                       cluster.restore_path, settings.operator_defaults))
            for child in self.children:
                if child["kind"] == "Deployment" and child["metadata"]["name"] == self.name:
                    child["metadata"].setdefault("annotations", {})[RECORD_ANNOTATION] = record_annotation(cluster)
        self._kubelet()

    def _kubelet(self) -> None:
        """The Flink cluster the JobManager Deployment runs: started again when its pod template changes."""
        jm = next((c for c in self.children if c["kind"] == "Deployment" and c["metadata"]["name"] == self.name), None)
        if jm is None:
            self.cluster = None
            return
        marker = json.dumps(jm["spec"]["template"], sort_keys=True)
        if self.cluster is None or self.cluster.marker != marker:
            self.cluster = boot(self.name, self.children, self.snapshots, start_time=self.now - 60_000)
            self.cluster.marker = marker
            self.cluster.flink_version = "(cluster's version)"
            self.cluster.savepoint_dir = self.savepoint_dir
            self.cluster.checkpoint_dir = self.checkpoint_dir

    def flink(self) -> FakeFlink:
        return self.cluster if self.cluster is not None else FakeFlink(self.name, up=False)

    def observation(self) -> FlinkObservation | None:
        return flink_io.observe(self.flink(), plan_observation(self.parent, _children_map(self.children)))

    def apply(self, result: SyncResult) -> None:
        """Carry out the actions, apply the children and the status, and let time pass."""
        flink_io.execute(self.flink(), result.actions)
        self.children = result.children
        self.parent["status"] = copy.deepcopy(result.status)
        self._kubelet()

    def tick(self) -> None:
        self.now += STEP_SECONDS * 1000
        if self.cluster is not None:
            self.cluster.tick()


def _header(parent: dict[str, Any], settings: CoreSettings) -> tuple[list[str], Any, dict[str, str]]:
    """What the resource is now and what it asks for; raises SpecError for an invalid spec."""
    meta = parent["metadata"]
    lines: list[str] = []
    status = parent.get("status") or {}
    reconciled, _ = deserialize_reconciled((status.get("reconciliationStatus") or {}).get("lastReconciledSpec"))
    spec = parse_deployment_spec(parent.get("spec"))
    config = flinkconf.effective_user_config(settings.operator_defaults, meta.get("namespace") or "default",
                                             spec.flinkVersion, spec.flinkConfiguration)
    if reconciled is None:
        lines.append("Not deployed yet: the first sync creates it.")
    else:
        diff, fields = classify(reconciled, json.loads(json.dumps(spec.model_dump(mode="json"))))
        lines.append(f"Now: lifecycle {status.get('lifecycleState')}, job {(status.get('jobStatus') or {}).get('state')}.")
        if fields:
            lines.append(f"Spec change: {diff.name} ({', '.join(fields)}).")
        else:
            lines.append("No spec change that needs a redeploy.")
    if spec.job is not None:
        parallelism, replicas = parallelism_and_replicas(spec, config)
        lines.append(f"Wanted: job {spec.job.state}, parallelism {parallelism} on {replicas} TaskManager(s), "
                     f"upgradeMode {spec.job.upgradeMode}.")
    return lines, spec, config


def explain(resource: dict[str, Any], settings: CoreSettings) -> str:
    if resource.get("kind") == "FlinkStateSnapshot":
        return _explain_snapshot(resource, settings)
    if resource.get("kind") != "FlinkDeployment":
        return _explain_session_job(resource)
    meta = resource["metadata"]
    parent = copy.deepcopy(resource)
    lines: list[str] = [f"FlinkDeployment {meta.get('namespace')}/{meta['name']}"]
    try:
        header, spec, config = _header(parent, settings)
    except SpecError as exc:
        return "\n".join(lines + [f"The spec is invalid: {exc}.", "Nothing changes: the running cluster (if any) keeps "
                                  "running from the last reconciled spec until the spec is fixed."])
    lines.extend(header)
    savepoint_dir = flinkconf.get_first(config, *SAVEPOINT_DIR_KEYS)
    checkpoint_dir = flinkconf.get_first(config, "execution.checkpointing.dir", "state.checkpoints.dir")
    world = _World(parent, settings, savepoint_dir or "the savepoint directory",
                   checkpoint_dir or savepoint_dir or "the checkpoint directory")
    steps, down_from = _run(world, settings)
    if not steps:
        steps.append("Nothing to do: the cluster already runs this spec.")
    lines.append("What the next syncs will do:")
    lines.extend("  " + step for step in steps)
    final = parent.get("status") or {}
    lines.append(f"Then: lifecycle {final.get('lifecycleState')}.")
    if down_from is not None and spec.job is not None and spec.job.state == "running":
        lines.append("The job is down from the savepoint/cancel until the new JobManager has restored it: about the "
                     "restore time (cluster start, typically tens of seconds, plus state loading).")
    return "\n".join(lines)


def _run(world: _World, settings: CoreSettings) -> tuple[list[str], int | None]:
    """Sync until nothing changes (at most MAX_SYNCS); one narrated step per sync that does something."""
    parent = world.parent
    steps: list[str] = []
    down_from: int | None = None
    for index in range(MAX_SYNCS):
        before_children = json.dumps(world.children, sort_keys=True)
        before_status = json.dumps(parent.get("status"), sort_keys=True)
        result = sync_deployment(parent, _children_map(world.children), world.observation(), world.now, settings)
        said = _said_of_status(parent.get("status") or {}, result, world.savepoint_dir)
        said += [_said_of_action(action) for action in result.actions if action.kind in _ACTIONS_SAID]
        said += _said_of_restore(parent.get("status") or {}, result)
        after_children = json.dumps(result.children, sort_keys=True)
        cluster_before, cluster_after = _cluster_children(world.children), _cluster_children(result.children)
        if cluster_after != cluster_before:
            if not cluster_after:
                said.append("delete the cluster (JobManager and TaskManager Deployments, Services, ConfigMap)")
                down_from = index if down_from is None else down_from
            elif not cluster_before:
                said.append("create the cluster: " + _describe_cluster(cluster_after, world.name))
            else:
                said.append("update the cluster: " + _describe_cluster(cluster_after, world.name))
        said += _said_of_snapshots(world.children, result.children)
        world.apply(result)
        if said:
            steps.append(f"{len(steps) + 1}. " + "; ".join(said) + ".")
        if not result.actions and after_children == before_children and \
                json.dumps(parent.get("status"), sort_keys=True) == before_status:
            break
        world.tick()
    return steps, down_from


def _cluster_children(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [child for child in children if child["kind"] != "FlinkStateSnapshot"]


def _said_of_snapshots(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """FlinkStateSnapshot children created or left out (sync/snapshot_resources.py)."""
    names = {c["metadata"]["name"] for c in before if c["kind"] == "FlinkStateSnapshot"}
    now = {c["metadata"]["name"] for c in after if c["kind"] == "FlinkStateSnapshot"}
    return [f"record the savepoint as FlinkStateSnapshot {name}" for name in sorted(now - names)] + \
        [f"delete the FlinkStateSnapshot {name} (history limits)" for name in sorted(names - now)]


_ACTIONS_SAID = ("stop_with_savepoint", "cancel", "trigger_savepoint", "dispose_savepoint")


def _said_of_action(action: Action) -> str:
    if action.kind == "stop_with_savepoint":
        return "ask Flink to stop the job with a savepoint"
    if action.kind == "cancel":
        return "ask Flink to cancel the job"
    if action.kind == "trigger_savepoint":
        where = action.params.get("target_dir")
        return "ask Flink for a savepoint" + (f" into {where}" if where else "")
    if action.kind == "trigger_checkpoint":
        return f"ask Flink for a {action.params.get('checkpoint_type', 'FULL')} checkpoint"
    return f"dispose of the old savepoint {action.params['path']} (history limit)"


def _said_of_status(old_status: dict[str, Any], result: SyncResult, savepoint_dir: str) -> list[str]:
    said: list[str] = []
    error = error_message(result.status.get("error"))
    if error and error != error_message(old_status.get("error")):
        said.append(f"report an error: {error}")
    for event in result.events:
        if event.reason == "SpecChanged":
            said.append("notice the spec change")
        elif event.reason == "Rollback":
            said.append("roll back to the last stable spec")
    pending = FlinkSyncRecord.from_json(result.status.get("flinkSync") or {}).pending
    if pending is not None and FlinkSyncRecord.from_json(old_status.get("flinkSync") or {}).pending is None:
        what = {"stop": f"stop the job with a savepoint into {savepoint_dir}",
                "cancel": "cancel the job (its last checkpoint is kept for the restore)",
                "savepoint": f"take a {(pending.trigger_type or 'manual').lower()} savepoint into {savepoint_dir}"}
        said.append("record the intent to " + what.get(pending.op, pending.op) + " (carried out next sync)")
    return said


def _said_of_restore(old_status: dict[str, Any], result: SyncResult) -> list[str]:
    said: list[str] = []
    path = (result.status.get("jobStatus") or {}).get("upgradeSavepointPath")
    if path and path != (old_status.get("jobStatus") or {}).get("upgradeSavepointPath"):
        said.append(f"record the restore path {path} in status (before any child changes)")
    nxt = FlinkSyncRecord.from_json(result.status.get("flinkSync") or {}).next
    if nxt is not None and FlinkSyncRecord.from_json(old_status.get("flinkSync") or {}).next is None:
        said.append(f"record the next deployment (new job id {nxt.job_id})")
    return said


def _explain_session_job(resource: dict[str, Any]) -> str:
    spec = resource.get("spec") or {}
    job = spec.get("job") or {}
    return "\n".join([
        f"FlinkSessionJob {resource['metadata'].get('namespace')}/{resource['metadata'].get('name')}",
        f"Waits until the session cluster '{spec.get('deploymentName')}' is READY, records a job id in status, then "
        f"fetches {job.get('jarURI')} (through the server's jar allowlist), uploads it, runs it"
        + (f" from {job.get('initialSavepointPath')}" if job.get("initialSavepointPath") else "")
        + f" with parallelism {job.get('parallelism') or 'the cluster default'}, and deletes the upload.",
        f"Upgrades use upgradeMode {job.get('upgradeMode', 'stateless')}: "
        + ("stop with a savepoint, then resubmit from it." if job.get("upgradeMode") == "savepoint"
           else "cancel, then resubmit without state."),
    ])


SNAPSHOT_JOB_ID = "0" * 31 + "1"


def _explain_snapshot(resource: dict[str, Any], settings: CoreSettings) -> str:
    """The snapshot's next syncs against a simulated running job (the in-memory Flink), narrated."""
    meta = resource["metadata"]
    lines = [f"FlinkStateSnapshot {meta.get('namespace')}/{meta.get('name')}"]
    try:
        spec = statesnapshot.parse_snapshot_spec(resource.get("spec"))
    except SpecError as exc:
        return "\n".join(lines + [f"The spec is invalid: {exc}.", "Nothing is triggered until the spec is fixed."])
    ref = spec.jobReference
    if ref is not None and ref.name:
        lines.append(f"Takes a {spec.kind_word} of {ref.kind} '{ref.name}' through the Flink REST API of "
                     f"{'its session cluster' if ref.kind == 'FlinkSessionJob' else 'its cluster'}; if that job is not "
                     "RUNNING the snapshot is ABANDONED. Assuming it runs:")
    parent = copy.deepcopy(resource)
    flink = FakeFlink(ref.name if ref and ref.name else "job", savepoint_dir="file:/savepoints")
    flink.start_job(SNAPSHOT_JOB_ID)
    target = statesnapshot.SnapshotTarget(ref.kind if ref and ref.kind else "FlinkDeployment",
                                          ref.name if ref and ref.name else "job", SNAPSHOT_JOB_ID, True,
                                          ref.name if ref and ref.name else "job", "v1_20")
    for _ in range(6):
        before = (parent.get("status") or {}).get("state")
        plan = statesnapshot.plan_poll(parent)
        poll = flink_io.poll_snapshot(flink, plan) if plan else None
        result = statesnapshot.sync_snapshot(parent, target, poll, 0, progress_s=settings.progress_interval_s)
        flink_io.execute(flink, result.actions)
        lines.extend("  " + _said_of_action(action) for action in result.actions)
        if result.status.get("state") != before:
            path = result.status.get("path")
            lines.append(f"  state {result.status.get('state')}" + (f" (path {path})" if path else ""))
        parent["status"] = result.status
        if result.status.get("state") in statesnapshot.TERMINAL_STATES:
            break
    if spec.savepoint is not None and spec.savepoint.disposeOnDelete and ref is not None and ref.name:
        lines.append("Deleting it disposes of the savepoint through Flink while the job runs (otherwise the data "
                     "stays, and an Event says so).")
    else:
        lines.append("Deleting it leaves the data where it is.")
    return "\n".join(lines)
