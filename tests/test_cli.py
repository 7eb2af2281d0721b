"""The `flink-sync` CLI as a user runs it: render, validate, explain. No traceback ever reaches a user."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from .helpers import EXAMPLES
from .sim import World
from .test_state_machine import BASE

ROOT = Path(__file__).resolve().parent.parent
CLI = [str(Path(sys.executable).parent / "flink-sync")]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_render_prints_the_first_sync_response_as_json_and_yaml():
    out = run("render", "-f", str(EXAMPLES / "basic.yaml"))
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert set(body) == {"status", "children", "resyncAfterSeconds"}
    assert {c["kind"] for c in body["children"]} == {"ConfigMap", "Service", "Deployment"}
    for child in body["children"]:
        kubernetes_validate.validate(child, "1.30", strict=True)
    as_yaml = run("render", "-f", str(EXAMPLES / "basic.yaml"), "--format", "yaml")
    assert as_yaml.returncode == 0
    assert yaml.safe_load(as_yaml.stdout)["children"] == body["children"]  # (the status carries the wall clock)


def test_validate_ok_and_invalid(tmp_path):
    assert run("validate", "-f", str(EXAMPLES / "basic.yaml")).returncode == 0
    bad = yaml.safe_load((EXAMPLES / "basic.yaml").read_text())
    bad["spec"]["job"]["upgradeMode"] = "blue-green"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    for command in ("validate", "render"):
        out = run(command, "-f", str(path))
        assert out.returncode == 2
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "spec.job.upgradeMode" in lines[0] and "Traceback" not in out.stderr


def test_garbage_input_is_one_clear_line(tmp_path):
    for text in ("{{{ not yaml", "kind: Pod\n", ""):
        path = tmp_path / "x.yaml"
        path.write_text(text)
        out = run("render", "-f", str(path))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    missing = run("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_explain_a_savepoint_upgrade(tmp_path):
    parent = copy.deepcopy(BASE)
    w = World(parent)
    w.run_until(lambda w: w.lifecycle() == "STABLE")
    cr = copy.deepcopy(w.parent)
    cr["spec"]["job"]["parallelism"] = 4
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(cr))
    out = run("explain", "-f", str(path), "--status", str(path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Spec change: SCALE (job.parallelism)" in text
    assert "stop the job with a savepoint into file:///sp" in text
    assert text.index("record the restore path") < text.index("delete the cluster") < text.index("create the cluster")
    assert "restoring from" in text and "parallelism 4 on 2 TaskManager(s)" in text


def test_explain_first_deploy():
    out = run("explain", "-f", str(EXAMPLES / "basic.yaml"))
    assert out.returncode == 0 and "create the cluster" in out.stdout


SNAPSHOTS = Path(__file__).resolve().parent / "data" / "apache-examples" / "snapshot"


def test_the_apache_snapshot_examples_validate_render_and_explain():
    for path in sorted(SNAPSHOTS.glob("*.yaml")):
        out = run("validate", "-f", str(path))
        assert out.returncode == 0 and "FlinkStateSnapshot" in out.stdout and "valid" in out.stdout, out.stderr
        rendered = run("render", "-f", str(path))
        assert rendered.returncode == 0, rendered.stderr
        bodies = json.loads(rendered.stdout)
        for body in bodies if isinstance(bodies, list) else [bodies]:
            assert set(body) >= {"status", "children"}
        explained = run("explain", "-f", str(path))
        assert explained.returncode == 0 and "FlinkStateSnapshot" in explained.stdout, explained.stderr
    out = run("explain", "-f", str(SNAPSHOTS / "checkpoint.yaml")).stdout
    assert "ask Flink for a FULL checkpoint" in out and "state COMPLETED" in out and "leaves the data" in out
    already = json.loads(run("render", "-f", str(SNAPSHOTS / "savepoint-already-exists.yaml")).stdout)
    assert already["children"] == [] and already["status"]["state"] == "COMPLETED"


def test_an_invalid_snapshot_names_the_field(tmp_path):
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot",
                                    "metadata": {"name": "s"},
                                    "spec": {"jobReference": {"kind": "FlinkDeployment", "name": "x"},
                                             "savepoint": {"formatType": "UNKNOWN"}}}))
    for command in ("validate", "render"):
        out = run(command, "-f", str(path))
        assert out.returncode == 2 and "spec.savepoint.formatType" in out.stderr and "Traceback" not in out.stderr


def _session_files(tmp_path, cluster_conf: dict, job_mode: str = "savepoint", application: bool = False):
    cluster, job = list(yaml.safe_load_all((ROOT / "examples" / "session-cluster-and-job.yaml").read_text()))
    cluster["spec"]["flinkConfiguration"].update(cluster_conf)
    if application:
        cluster["spec"]["job"] = {"jarURI": "local:///opt/flink/examples/streaming/StateMachineExample.jar"}
    job["spec"]["job"]["upgradeMode"] = job_mode
    cluster_path, job_path = tmp_path / "cluster.yaml", tmp_path / "job.yaml"
    cluster_path.write_text(yaml.safe_dump(cluster))
    job_path.write_text(yaml.safe_dump(job))
    return str(cluster_path), str(job_path)


def test_validate_checks_a_session_job_with_its_session_clusters_configuration(tmp_path):
    """As the hook does (issue 13): the session cluster's flinkConfiguration is the job's too, so a savepoint job
    whose savepoint directory the cluster sets is valid, and one the cluster does not set it for is not."""
    cluster, job = _session_files(tmp_path, {"state.savepoints.dir": "file:///savepoints",
                                             "state.checkpoints.dir": "file:///checkpoints"})
    both = run("validate", "-f", cluster, "-f", job)
    assert both.returncode == 0, both.stderr
    assert "FlinkSessionJob basic-session-job-example: valid\n" in both.stdout
    alone = run("validate", "-f", job)
    assert alone.returncode == 2 and "spec.job.upgradeMode" in alone.stderr and "Traceback" not in alone.stderr

    cluster, job = _session_files(tmp_path, {})
    out = run("validate", "-f", cluster, "-f", job)
    assert out.returncode == 2 and "spec.job.upgradeMode" in out.stderr


def test_validate_refuses_a_session_job_on_an_application_cluster_of_the_input(tmp_path):
    cluster, job = _session_files(tmp_path, {}, job_mode="stateless", application=True)
    out = run("validate", "-f", cluster, "-f", job)
    assert out.returncode == 2
    assert "spec.deploymentName: Can not submit session job to application cluster" in out.stderr


def test_validate_says_what_it_could_not_check_without_the_session_cluster(tmp_path):
    _, job = _session_files(tmp_path, {}, job_mode="stateless")
    out = run("validate", "-f", job)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "FlinkSessionJob basic-session-job-example: valid"
    note = out.stderr.strip()
    assert note.startswith("note: FlinkSessionJob basic-session-job-example: not checked against its session cluster")
    assert "basic-session-deployment-example" in note and "-f" in note
