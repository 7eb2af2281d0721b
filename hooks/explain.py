"""`flink-sync explain`: what the next syncs will do to a resource, in plain words, and why.

It runs the same pure core the hooks run, against a simulated world in which every step succeeds (the
cluster starts, Flink answers, savepoints complete), and narrates the syncs until nothing changes. So
an upgrade can be reviewed in a pull request before it is applied.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from sync import flinkconf
from sync.deployment import plan_observation, sync_deployment
from sync.diff import classify
from sync.model import CoreSettings, FlinkObservation, JobInfo, TriggerResult
from sync.render import parallelism_and_replicas
from sync.spec import SpecError, deserialize_reconciled, parse_deployment_spec
from sync.status import error_message
from sync.validation import SAVEPOINT_DIR_KEYS

MAX_SYNCS = 14
STEP_SECONDS = 5


def _children_map(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {"ConfigMap.v1": {}, "Service.v1": {}, "Deployment.apps/v1": {},
                                         "Ingress.networking.k8s.io/v1": {}}
    for child in children:
        obj = copy.deepcopy(child)
        if obj["kind"] == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {"replicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas}
        key = {"ConfigMap": "ConfigMap.v1", "Service": "Service.v1", "Deployment": "Deployment.apps/v1",
               "Ingress": "Ingress.networking.k8s.io/v1"}[obj["kind"]]
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
    """Just enough of Kubernetes and Flink for the core to move forward as if everything succeeds."""

    def __init__(self, parent: dict[str, Any], settings: CoreSettings):
        self.parent = parent
        self.settings = settings
        self.now = 1_800_000_000_000
        self.children: list[dict[str, Any]] = []
        self.job_state = "RUNNING"
        self.finished_jobs: set[str] = set()
        self.cancelled_jobs: set[str] = set()
        self.savepoint_dir = "the savepoint directory"
        self.issued: set[str] = set()
        status = parent.get("status") or {}
        cluster = (status.get("flinkSync") or {}).get("cluster")
        if cluster:
            from sync.deployment import RECORD_ANNOTATION, record_annotation
            from sync.render import ClusterPlan, render_cluster
            spec = parse_deployment_spec(json.loads(cluster["spec"]))
            self.children = render_cluster(ClusterPlan(parent["metadata"]["name"], parent["metadata"]["namespace"],
                                                       spec, int(cluster.get("generation") or 1), cluster.get("jobId"),
                                                       cluster.get("restorePath"), settings.operator_defaults))
            for child in self.children:
                if child["kind"] == "Deployment" and child["metadata"]["name"] == parent["metadata"]["name"]:
                    child["metadata"].setdefault("annotations", {})[RECORD_ANNOTATION] = record_annotation(cluster)

    def observation(self) -> FlinkObservation | None:
        plan = plan_observation(self.parent, _children_map(self.children))
        if not plan.query_cluster:
            return None
        jobs = []
        if plan.job_id:
            state = "FINISHED" if plan.job_id in self.finished_jobs else \
                "CANCELED" if plan.job_id in self.cancelled_jobs else "RUNNING"
            jobs.append(JobInfo(plan.job_id, self.parent["metadata"]["name"], state, self.now - 60_000))
        trigger = None
        if plan.trigger_id:
            trigger = TriggerResult("COMPLETED", f"{self.savepoint_dir}/savepoint-{plan.trigger_id[:6]}") \
                if plan.trigger_id in self.issued else TriggerResult("UNKNOWN_TRIGGER")
        latest = f"{self.savepoint_dir}/chk-latest" if plan.job_id in self.cancelled_jobs else None
        return FlinkObservation(reachable=True, flink_version="(cluster's version)", jobs=tuple(jobs),
                                trigger=trigger, latest_checkpoint_path=latest)


def explain(resource: dict[str, Any], settings: CoreSettings) -> str:
    if resource.get("kind") != "FlinkDeployment":
        return _explain_session_job(resource)
    meta = resource["metadata"]
    name = meta["name"]
    parent = copy.deepcopy(resource)
    lines: list[str] = [f"FlinkDeployment {meta.get('namespace')}/{name}"]
    status = parent.get("status") or {}
    reconciled, _ = deserialize_reconciled((status.get("reconciliationStatus") or {}).get("lastReconciledSpec"))
    try:
        spec = parse_deployment_spec(parent.get("spec"))
        config = flinkconf.effective_user_config(settings.operator_defaults, meta.get("namespace") or "default",
                                                 spec.flinkVersion, spec.flinkConfiguration)
    except SpecError as exc:
        return "\n".join(lines + [f"The spec is invalid: {exc}.", "Nothing changes: the running cluster (if any) keeps "
                                  "running from the last reconciled spec until the spec is fixed."])
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
    world = _World(parent, settings)
    world.savepoint_dir = flinkconf.get_first(config, *SAVEPOINT_DIR_KEYS) or "the savepoint directory"
    steps: list[str] = []
    down_from: int | None = None
    for index in range(MAX_SYNCS):
        before_children = json.dumps(world.children, sort_keys=True)
        before_status = json.dumps(parent.get("status"), sort_keys=True)
        old_internal = (parent.get("status") or {}).get("flinkSync") or {}
        result = sync_deployment(parent, _children_map(world.children), world.observation(), world.now, settings)
        said: list[str] = []
        error = error_message(result.status.get("error"))
        if error and error != error_message((parent.get("status") or {}).get("error")):
            said.append(f"report an error: {error}")
        for event in result.events:
            if event.reason == "SpecChanged":
                said.append("notice the spec change")
            elif event.reason == "Rollback":
                said.append("roll back to the last stable spec")
        internal = result.status.get("flinkSync") or {}
        pending, old_pending = internal.get("pending"), old_internal.get("pending")
        if pending and not old_pending:
            what = {"stop": f"stop the job with a savepoint into {world.savepoint_dir}",
                    "cancel": "cancel the job (its last checkpoint is kept for the restore)",
                    "savepoint": f"take a {pending.get('triggerType', 'manual').lower()} savepoint into {world.savepoint_dir}"}
            said.append("record the intent to " + what.get(pending["op"], pending["op"]) + " (carried out next sync)")
        for action in result.actions:
            if action.kind == "stop_with_savepoint":
                said.append("ask Flink to stop the job with a savepoint")
                world.finished_jobs.add(action.params["job_id"])
                world.issued.add(action.params["trigger_id"])
            elif action.kind == "cancel":
                said.append("ask Flink to cancel the job")
                world.cancelled_jobs.add(action.params["job_id"])
            elif action.kind == "trigger_savepoint":
                said.append("ask Flink for a savepoint")
                world.issued.add(action.params["trigger_id"])
            elif action.kind == "dispose_savepoint":
                said.append(f"dispose of the old savepoint {action.params['path']} (history limit)")
        job_status = result.status.get("jobStatus") or {}
        old_path = ((parent.get("status") or {}).get("jobStatus") or {}).get("upgradeSavepointPath")
        if job_status.get("upgradeSavepointPath") and job_status.get("upgradeSavepointPath") != old_path:
            said.append(f"record the restore path {job_status['upgradeSavepointPath']} in status (before any child changes)")
        if internal.get("next") and not old_internal.get("next"):
            said.append(f"record the next deployment (new job id {internal['next'].get('jobId')})")
        after_children = json.dumps(result.children, sort_keys=True)
        if after_children != before_children:
            if not result.children:
                said.append("delete the cluster (JobManager and TaskManager Deployments, Services, ConfigMap)")
                down_from = index if down_from is None else down_from
            elif not world.children:
                said.append("create the cluster: " + _describe_cluster(result.children, name))
            else:
                said.append("update the cluster: " + _describe_cluster(result.children, name))
        world.children = result.children
        parent["status"] = copy.deepcopy(result.status)
        if said:
            steps.append(f"{len(steps) + 1}. " + "; ".join(said) + ".")
        if json.dumps(parent.get("status"), sort_keys=True) == before_status and after_children == before_children:
            break
        world.now += STEP_SECONDS * 1000
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
