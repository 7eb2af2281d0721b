"""Every Apache example FlinkDeployment renders; every child is valid Kubernetes 1.30 (strict); the
children match the golden files; output is byte-for-byte deterministic. UPDATE_GOLDEN=1 rewrites goldens."""
from __future__ import annotations

import json
import os

import kubernetes_validate
import pytest
import yaml

from sync.deployment import sync_deployment
from sync.sessionjob import sync_session_job

from .helpers import GOLDEN, NOW_MS, SETTINGS, as_parent, example_resources

DEPLOYMENTS = example_resources("FlinkDeployment")
SESSION_JOBS = example_resources("FlinkSessionJob")


def test_examples_were_found():
    assert len(DEPLOYMENTS) >= 15 and len(SESSION_JOBS) >= 2


@pytest.mark.parametrize("path,resource", DEPLOYMENTS, ids=[p for p, _ in DEPLOYMENTS])
def test_example_renders_valid_children_matching_golden(path, resource):
    result = sync_deployment(as_parent(resource), {}, None, NOW_MS, SETTINGS)
    canary = (resource["metadata"].get("labels") or {}).get("flink.apache.org/canary") == "true"
    assert result.children or canary, f"{path}: no children on the first sync ({result.status.get('error')})"
    assert "error" not in result.status, result.status.get("error")
    for child in result.children:
        kubernetes_validate.validate(child, "1.30", strict=True)
    golden = GOLDEN / "render" / (path.replace("/", "__").replace("#", "_") + ".yaml")
    rendered = yaml.safe_dump({"children": result.children, "status": result.status}, sort_keys=True, width=120)
    if os.environ.get("UPDATE_GOLDEN") or not golden.exists():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
        if not os.environ.get("UPDATE_GOLDEN"):
            pytest.fail(f"golden file {golden.name} was missing and has been written; re-run")
    assert rendered == golden.read_text(), f"{path}: rendered children differ from {golden} (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("path,resource", DEPLOYMENTS, ids=[p for p, _ in DEPLOYMENTS])
def test_rendering_is_deterministic(path, resource):
    first = sync_deployment(as_parent(resource), {}, None, NOW_MS, SETTINGS).response(False)
    second = sync_deployment(as_parent(resource), {}, None, NOW_MS, SETTINGS).response(False)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("path,resource", SESSION_JOBS, ids=[p for p, _ in SESSION_JOBS])
def test_session_job_examples_wait_for_their_session_cluster(path, resource):
    result = sync_session_job(as_parent(resource), None, None, NOW_MS, SETTINGS)
    assert result.children == []
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and resource["spec"]["deploymentName"] in ready["message"]
