"""A session cluster with a FlinkSessionJob on the sandbox: the jar is served over HTTP from 127.0.0.1 (named in the
hook server's jar allowlist by sandbox-up), the hook uploads it to the session cluster and runs it."""
from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args
from tests.flinkbed.dist import flink_dist
from tests.flinkbed.job import build_counter_jar

from .conftest import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.flink, pytest.mark.timeout(600)]
SESSION = "session"
JOB = "session-counter"


@pytest.fixture
def jar_url(sandbox: Sandbox) -> str:
    """The counter jar on the sandbox's jar server (the origin the hook server's allowlist names)."""
    (sandbox.state / "jars" / "session-counter.jar").write_bytes(build_counter_jar(flink_dist("1.20")).read_bytes())
    port = json.loads((sandbox.state / "ports.json").read_text())["jars"]
    return f"http://127.0.0.1:{port}/session-counter.jar"


def resources(jar: str) -> str:
    return yaml.safe_dump_all([
        {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment", "metadata": {"name": SESSION},
         "spec": {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
                  "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
                  "jobManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
                  "taskManager": {"replicas": 1, "resource": {"memory": "1024m", "cpu": 0.5}}}},
        {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob", "metadata": {"name": JOB},
         "spec": {"deploymentName": SESSION,
                  "job": {"jarURI": jar, "entryClass": COUNTER_JOB_CLASS, "parallelism": 1,
                          "args": counter_args(rate=20, keys=4), "upgradeMode": "stateless"}}},
    ])


def job_status(sb: Sandbox) -> dict[str, Any]:
    return ((sb.get("flinksessionjob", JOB) or {}).get("status")) or {}


def test_session_cluster_runs_a_session_job(sandbox: Sandbox, jar_url: str) -> None:
    sandbox.kubectl("apply", "-f", "-", input=resources(jar_url))
    sandbox.until("session job RUNNING", lambda: (job_status(sandbox).get("jobStatus") or {}).get("state") == "RUNNING"
                  and job_status(sandbox).get("lifecycleState") == "STABLE", timeout=300, interval=2)
    job_id = job_status(sandbox)["jobStatus"]["jobId"]
    import requests
    overview = requests.get(f"{sandbox.proxy}/default/{SESSION}-rest/jobs/overview", timeout=10).json()
    assert [j["state"] for j in overview["jobs"] if j["jid"] == job_id] == ["RUNNING"]
    sandbox.kubectl("delete", "flinksessionjob", JOB, "--wait=false")
    sandbox.until("session job deleted", lambda: sandbox.get("flinksessionjob", JOB) is None, timeout=120, interval=2)
    sandbox.kubectl("delete", "flinkdeployment", SESSION, "--wait=false")
    sandbox.until("session cluster deleted", lambda: sandbox.get("flinkdeployment", SESSION) is None, timeout=180,
                  interval=2)
    sandbox.until("pods gone", lambda: not json.loads(
        sandbox.kubectl("get", "pods", "-l", f"app={SESSION}", "-o", "json"))["items"], timeout=120, interval=2)
