"""The autoscaler in a FlinkDeployment sync (sync/autoscaler/deployment.py): the stored overrides become part of
the reconciled spec (an upgrade by the job's mode) unless the job is rescaled in place, the state is returned as
the `autoscaler-<name>` ConfigMap, the decision goes into status and Events, and a bad key is a validation error
naming it. The examples of the Apache operator validate and render unchanged."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sync.autoscaler import deployment as autoscaling
from sync.autoscaler.records import AutoscalerState, JobMetrics, VertexMetrics, encode_state
from sync.model import SyncResult
from sync.spec import parse_deployment_spec
from sync.validation import DeploymentCheck, _rule_autoscaler

EXAMPLES = Path("/work/shared/reference/apache-flink-kubernetes-operator/examples/autoscaling")
S, W = "a" * 32, "b" * 32


def _parent(version: str = "v1_20", scheduler: str | None = None, **autoscaler: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"job.autoscaler.enabled": "true", **{f"job.autoscaler.{k}": v for k, v in autoscaler.items()}}
    if scheduler:
        config["jobmanager.scheduler"] = scheduler
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
            "metadata": {"name": "scaled", "namespace": "ns", "generation": 1},
            "spec": {"flinkVersion": version, "flinkConfiguration": config,
                     "job": {"jarURI": "local:///x.jar", "parallelism": 1, "upgradeMode": "savepoint"}},
            "status": {"jobStatus": {"state": "RUNNING", "jobId": "f" * 32}}}


def _children(state: AutoscalerState) -> dict[str, Any]:
    return {"ConfigMap.v1": {"autoscaler-scaled": {"metadata": {"name": "autoscaler-scaled"},
                                                   "data": encode_state(state)}}}


def test_stored_overrides_become_part_of_the_spec() -> None:
    parent = _parent()
    changed = autoscaling.with_stored_overrides(parent, _children(AutoscalerState(overrides={S: 1, W: 4})), {})
    assert changed["spec"]["flinkConfiguration"]["pipeline.jobvertex-parallelism-overrides"] == f"{S}:1,{W}:4"
    assert "pipeline.jobvertex-parallelism-overrides" not in parent["spec"]["flinkConfiguration"]  # a copy
    assert autoscaling.with_stored_overrides(parent, None, {}) is parent


def test_in_place_jobs_keep_their_spec_and_get_an_action() -> None:
    parent = _parent(scheduler="adaptive")
    state = AutoscalerState(overrides={S: 1, W: 4})
    assert autoscaling.with_stored_overrides(parent, _children(state), {}) is parent
    job = JobMetrics("f" * 32, "RUNNING", 1, True, True, (VertexMetrics(S, 1, 128), VertexMetrics(W, 2, 128)))
    result = SyncResult(status={}, children=[])
    autoscaling.apply(parent, _children(state), result, job, None, 10, {})
    assert [a.kind for a in result.actions] == ["rescale_in_place"]
    assert result.actions[0].params == {"job_id": "f" * 32, "overrides": {S: 1, W: 4}}


def test_apply_returns_the_state_configmap_and_the_status() -> None:
    parent = _parent(**{"stabilization.interval": "1m"})
    job = JobMetrics("f" * 32, "RUNNING", 1, True, True, (VertexMetrics(S, 1, 128),))
    result = SyncResult(status={}, children=[])
    autoscaling.apply(parent, None, result, job, None, 5_000, {})
    configmap = result.children[0]
    assert configmap["metadata"] == {"name": "autoscaler-scaled", "namespace": "ns",
                                     "labels": {"component": "autoscaler", "app": "scaled"}}
    assert result.status["autoscaler"]["message"].startswith("stabilizing")
    again = SyncResult(status={}, children=[])
    autoscaling.apply(parent, {"ConfigMap.v1": {"autoscaler-scaled": configmap}}, again, job, None, 20_000, {})
    assert '"' in again.children[0]["data"]["collectedMetrics"] or again.children[0]["data"]["collectedMetrics"]


def test_off_means_no_configmap_and_no_metrics() -> None:
    parent = _parent()
    parent["spec"]["flinkConfiguration"]["job.autoscaler.enabled"] = "false"
    result = SyncResult(status={}, children=[])
    autoscaling.apply(parent, None, result, None, None, 1, {})
    assert result.children == [] and "autoscaler" not in result.status
    assert autoscaling.metrics_job(parent, {}) is None
    assert autoscaling.metrics_job(_parent(), {}) == "f" * 32


def test_a_bad_key_is_a_validation_error_naming_it() -> None:
    parent = _parent(**{"utilization.target": "2"})
    spec = parse_deployment_spec(parent["spec"])
    check = DeploymentCheck("scaled", spec, {k: str(v) for k, v in parent["spec"]["flinkConfiguration"].items()},
                            None, None)
    assert "job.autoscaler.utilization.target" in (_rule_autoscaler(check) or "")


def test_apaches_autoscaling_examples_validate_and_take_effect() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        resource = yaml.safe_load(path.read_text())
        settings = autoscaling.settings_of(resource, {})
        assert settings is not None and settings.enabled, path.name
        assert settings.stabilization_ms == 60_000
    example = yaml.safe_load((EXAMPLES / "autoscaling.yaml").read_text())
    settings = autoscaling.settings_of(example, {})
    assert settings is not None and settings.metrics_window_ms == 180_000
    assert abs(settings.utilization_max - 0.8) < 1e-9 and abs(settings.utilization_min - 0.6) < 1e-9
    running = copy.deepcopy(example)
    running["status"] = {"jobStatus": {"state": "RUNNING", "jobId": "f" * 32}}
    assert autoscaling._in_place(running, {})  # Flink 1.20 with the adaptive scheduler: rescaled in place
