"""Failures that surface (issue 16), on the sandbox with real Flink 1.20 JVMs: what the kubelet (the node agent)
and the scheduler report on the pods shows in the FlinkDeployment's status, conditions and Events, and an edit
that fixes the cause brings it back to normal. None of it deletes a child while failing or loses a savepoint.

One FlinkDeployment goes through the failures in order (cluster starts are the slow part):
healthy → JobManager OOMKilled → JobManager crash looping (a bad memory setting) → image flink:9.9 → fixed →
fewer TaskManagers than expected (one cannot be scheduled) → fixed."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flinkbed.dist import flink_dist
from tests.flinkbed.job import build_counter_jar

from .conftest import Sandbox
from .manifests import checkpointed, counter_deployment

pytestmark = [pytest.mark.sandbox, pytest.mark.flink, pytest.mark.timeout(900)]
NAME = "fails"
MAIN = "flink-main-container"


def deployment_yaml(jar: Path, state_dir: Path) -> str:
    return yaml.safe_dump(counter_deployment(NAME, jar, parallelism=2, config={
        **checkpointed(state_dir),
        # a cause that may be a cluster still starting is reported after this long
        "kubernetes.operator.deployment.readiness.timeout": "20 s",
    }, overrides={"jobManager": {
        # the kubelet puts the end of a failed container's log into its termination message
        "podTemplate": {"spec": {"containers": [{"name": MAIN, "terminationMessagePolicy": "FallbackToLogsOnError"}]}},
    }}))


@pytest.fixture(scope="module")
def jar() -> Path:
    return build_counter_jar(flink_dist("1.20"))


def status(sb: Sandbox) -> dict[str, Any]:
    return ((sb.get("flinkdeployment", NAME) or {}).get("status")) or {}


def condition(st: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == ctype), {})


def error(st: dict[str, Any]) -> dict[str, Any]:
    return json.loads(st["error"]) if st.get("error") else {}


def healthy(sb: Sandbox) -> dict[str, Any] | None:
    st = status(sb)
    ok = (st.get("lifecycleState") == "STABLE" and (st.get("jobStatus") or {}).get("state") == "RUNNING"
          and st.get("jobManagerDeploymentStatus") == "READY" and condition(st, "Ready").get("status") == "True"
          and condition(st, "Degraded").get("status") == "False" and not st.get("error")
          and "podCause" not in (st.get("flinkSync") or {}))
    return st if ok else None


def failing(sb: Sandbox, reason: str, component: str = "jobmanager") -> dict[str, Any] | None:
    """The cause is reported: in status.error with its reason, Degraded, and recorded as reported."""
    st = status(sb)
    record = (st.get("flinkSync") or {}).get("podCause") or {}
    ok = (record.get("reported") and record.get("component") == component and
          (error(st).get("additionalMetadata") or {}).get("reason") in _family(reason) and
          condition(st, "Degraded").get("status") == "True")
    return st if ok else None


def _family(reason: str) -> tuple[str, ...]:
    return ("ErrImagePull", "ImagePullBackOff") if reason == "ErrImagePull" else (reason,)


def patch(sb: Sandbox, spec: dict[str, Any]) -> None:
    sb.kubectl("patch", "flinkdeployment", NAME, "--type=merge", "-p", json.dumps({"spec": spec}))


def event_reasons(sb: Sandbox) -> list[str]:
    items = json.loads(sb.kubectl("get", "events", "--field-selector",
                                  f"involvedObject.kind=FlinkDeployment,involvedObject.name={NAME}",
                                  "-o", "json"))["items"]
    return [e["reason"] for e in items]


def children_uids(sb: Sandbox) -> dict[str, str]:
    out = {}
    for kind in ("deployment", "service", "configmap"):
        items = json.loads(sb.kubectl("get", kind, "-l", f"app={NAME}", "-o", "json"))["items"]
        out.update({f"{kind}/{o['metadata']['name']}": o["metadata"]["uid"] for o in items})
    return out


def still_failing_with_the_same_children(sb: Sandbox, reason: str, component: str = "jobmanager") -> None:
    """Resyncs while it fails (the pod keeps crashing, the hooks keep answering) delete or replace no child."""
    before = children_uids(sb)
    assert f"deployment/{NAME}" in before and f"deployment/{NAME}-taskmanager" in before, before
    time.sleep(10)
    assert failing(sb, reason, component), status(sb)
    assert children_uids(sb) == before


def free_cpus(sb: Sandbox) -> float:
    """The node's allocatable CPUs less the requests of the pods bound to it that are not this test's."""
    node = json.loads(sb.kubectl("get", "node", "sandbox-node", "-o", "json"))
    free = float(node["status"]["allocatable"]["cpu"])
    for pod in json.loads(sb.kubectl("get", "pods", "-A", "-o", "json"))["items"]:
        if pod["spec"].get("nodeName") != "sandbox-node" or (pod["metadata"].get("labels") or {}).get("app") == NAME \
                or pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        for c in pod["spec"]["containers"]:
            res = c.get("resources") or {}
            cpu = str({**(res.get("limits") or {}), **(res.get("requests") or {})}.get("cpu", "0"))
            free -= float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return free


def test_failures_surface_and_an_edit_fixes_them(sandbox: Sandbox, jar: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    sb = sandbox
    state_dir = tmp_path_factory.mktemp("failures-state")
    sb.kubectl("create", "-f", "-", input=deployment_yaml(jar, state_dir))
    sb.until("healthy at first", lambda: healthy(sb), timeout=300)

    # 1. The JobManager's JVM commits more memory than its container's limit (1Gi): the kernel (here the node
    #    agent) kills it; status says OOMKilled with the limit, Degraded, and one Event.
    patch(sb, {"flinkConfiguration": {"env.java.opts.jobmanager": "-Xms1400m -Xmx1400m -XX:+AlwaysPreTouch"}})
    st = sb.until("OOMKilled in status", lambda: failing(sb, "OOMKilled"), timeout=300)
    assert st["jobManagerDeploymentStatus"] == "ERROR"
    message = error(st)["message"]
    assert "OOMKilled" in message and "memory limit of 1Gi" in message and "exit code 137" in message, message
    assert condition(st, "Degraded")["reason"] == "OOMKilled" and condition(st, "Ready")["status"] == "False"
    pods = json.loads(sb.kubectl("get", "pods", "-l", f"app={NAME},component=jobmanager", "-o", "json"))["items"]
    last = [((c.get("lastState") or {}).get("terminated") or (c.get("state") or {}).get("terminated") or {})
            for p in pods for c in p["status"].get("containerStatuses") or []]
    assert any(t.get("reason") == "OOMKilled" and t.get("exitCode") == 137 for t in last), pods
    savepoint = st["jobStatus"]["upgradeSavepointPath"]
    assert savepoint and Path(savepoint.removeprefix("file:")).exists(), "the upgrade's savepoint is on disk"
    sb.until("the OOMKilled Event", lambda: "OOMKilled" in event_reasons(sb), timeout=60)
    still_failing_with_the_same_children(sb, "OOMKilled")
    assert event_reasons(sb).count("OOMKilled") == 1, "one Event per change of cause, not one per resync"

    # 2. A memory setting Flink refuses (metaspace larger than the process): the JobManager exits at start and
    #    crash-loops; status shows the exit code and the end of its log (terminationMessagePolicy
    #    FallbackToLogsOnError), the exception without its stack frames.
    patch(sb, {"flinkConfiguration": {"env.java.opts.jobmanager": None, "jobmanager.memory.jvm-metaspace.size": "2g"}})
    st = sb.until("crash looping in status", lambda: failing(sb, "CrashLoopBackOff"), timeout=300)
    message = error(st)["message"]
    assert "exit code 1" in message and "IllegalConfigurationException" in message, message
    assert st["jobStatus"]["upgradeSavepointPath"] == savepoint, "the savepoint to restore from is kept"

    # 3. An image the node cannot pull.
    patch(sb, {"image": "flink:9.9", "flinkConfiguration": {"jobmanager.memory.jvm-metaspace.size": None}})
    st = sb.until("image error in status", lambda: failing(sb, "ErrImagePull"), timeout=300)
    assert "flink:9.9" in error(st)["message"]
    still_failing_with_the_same_children(sb, "ErrImagePull")

    # 4. Fixed by an edit: back to normal, the job restored from the savepoint taken before the failures.
    patch(sb, {"image": "flink:1.20"})
    st = sb.until("healthy after the fix", lambda: healthy(sb), timeout=300)
    assert st["flinkSync"]["cluster"]["restorePath"] == savepoint
    assert condition(st, "Degraded")["reason"] == "AsExpected"
    assert {"OOMKilled", "CrashLoopBackOff"} <= set(event_reasons(sb))

    # 5. Two TaskManagers expected; the node has room for one: the other cannot be scheduled. Reported after the
    #    readiness timeout (20 s), with how many registered. In reactive mode the job runs on the one there is, at
    #    a lower parallelism: its job status alone would not show that anything is missing.
    # The JobManager (0.5) and one TaskManager fit, two do not.
    tm_cpu = round(0.75 * (free_cpus(sb) - 0.5), 1)
    patch(sb, {"flinkConfiguration": {"scheduler-mode": "reactive"},
               "taskManager": {"replicas": 2, "resource": {"cpu": tm_cpu}}})
    # (reported once it lasted 20 s; the count joins the message once the new JobManager answers)
    st = sb.until("a TaskManager unschedulable in status, with the count",
                  lambda: (st := failing(sb, "Unschedulable", "taskmanager")) and
                  "1 of 2 TaskManagers registered" in error(st)["message"] and st, timeout=300)
    message = error(st)["message"]
    assert "Insufficient cpu" in message and "1 of 2 TaskManagers registered" in message, message
    assert "0/1 nodes are available" in message

    # 6. Fixed: one TaskManager again.
    patch(sb, {"flinkConfiguration": {"scheduler-mode": None}, "taskManager": {"replicas": None, "resource": {"cpu": 0.5}}})
    sb.until("healthy after the second fix", lambda: healthy(sb), timeout=300)

    sb.kubectl("delete", "flinkdeployment", NAME, "--timeout=180s", timeout=240)
