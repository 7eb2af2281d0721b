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
