"""The user-facing examples in `examples/` work with the CLI a user would run on them.

Every resource passes `flink-sync validate`; every FlinkDeployment renders (`flink-sync render`) to children
that are valid Kubernetes 1.30 objects (strict); every FlinkSessionJob renders with no children. A broken
copy fails validation with one stderr line naming the field. The CLI reads the first resource of a file, so
files with several resources are checked one document at a time.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# One file per scenario of the user's notes (quick start, session, HA, pod templates, savepoints, restart).
EXPECTED = {"basic.yaml", "session-cluster.yaml", "session-cluster-and-job.yaml", "last-state-ha.yaml",
            "pod-template-sidecar.yaml", "savepoint-nonce.yaml", "periodic-savepoints.yaml", "restart-nonce.yaml"}


def _cli() -> str:
    local = Path(sys.executable).parent / "flink-sync"
    found = str(local) if local.exists() else shutil.which("flink-sync")
    if not found:
        pytest.skip("the flink-sync console script is not installed (pip install -e .)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # The outcome must not depend on the caller's hook settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINK_SYNC_")}
    return subprocess.run([_cli(), *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for index, doc in enumerate(docs):
            found.append((f"{path.name}#{index}" if len(docs) > 1 else path.name, doc))
    return found


DOCUMENTS = _documents()


@pytest.fixture
def as_file(tmp_path):
    def write(name: str, resource: dict) -> str:
        target = tmp_path / name.replace("#", "_")
        target.write_text(yaml.safe_dump(resource, sort_keys=False))
        return str(target)
    return write


def test_every_seed_scenario_has_an_example():
    assert EXPECTED <= {p.name for p in EXAMPLES.glob("*.yaml")}


@pytest.mark.parametrize("name,resource", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_example_is_a_flink_resource(name, resource):
    assert resource.get("apiVersion") == "flink.apache.org/v1beta1", name
    assert resource.get("kind") in ("FlinkDeployment", "FlinkSessionJob"), name


@pytest.mark.parametrize("name,resource", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_example_passes_flink_sync_validate(name, resource, as_file):
    done = _run("validate", "-f", as_file(name, resource))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{resource['kind']} {resource['metadata']['name']}: valid"


@pytest.mark.parametrize("name,resource", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_example_renders_valid_kubernetes_children(name, resource, as_file):
    done = _run("render", "-f", as_file(name, resource))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert "error" not in body["status"], body["status"]["error"]
    if resource["kind"] == "FlinkSessionJob":
        # Submitted to the session cluster through REST; a session job has no Kubernetes children.
        assert body["children"] == []
        return
    kinds = sorted(child["kind"] for child in body["children"])
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service", "Service"], kinds
    for child in body["children"]:
        kubernetes_validate.validate(child, "1.30", strict=True)


def test_whole_examples_directory_passes_validate_as_files():
    """The files exactly as a user passes them (the CLI checks the first resource of each)."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        done = _run("validate", "-f", str(path))
        assert done.returncode == 0, f"{path.name}: {done.stderr}"


def test_broken_upgrade_mode_is_refused_with_one_line_naming_the_field(tmp_path):
    broken = (EXAMPLES / "basic.yaml").read_text().replace("upgradeMode: stateless", "upgradeMode: blue-green")
    assert "blue-green" in broken
    target = tmp_path / "broken.yaml"
    target.write_text(broken)
    done = _run("validate", "-f", str(target))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "spec.job.upgradeMode" in lines[0]
    assert "Traceback" not in done.stderr


def test_seed_style_pod_template_with_apiversion_and_kind_renders_valid_children(as_file):
    """The user's notes write `podTemplate: {apiVersion: v1, kind: Pod, metadata: {name: ...}, spec: ...}`."""
    resource = yaml.safe_load((EXAMPLES / "pod-template-sidecar.yaml").read_text())
    resource["spec"]["podTemplate"] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-template"},
                                       **resource["spec"]["podTemplate"]}
    done = _run("render", "-f", as_file("seed-pod-template.yaml", resource))
    assert done.returncode == 0, done.stderr
    for child in json.loads(done.stdout)["children"]:
        kubernetes_validate.validate(child, "1.30", strict=True)
