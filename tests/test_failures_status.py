"""Failures that surface (issue 16): what the cluster's pods say goes into status, conditions and one Event per
change of cause, through the state machine of the simulated world (tests/sim.py). The same flows run with
real Flink JVMs on the sandbox's API server in tests/sandbox/test_failures_sandbox.py."""
from __future__ import annotations

import json
from typing import Any

from .test_podhealth import BACKOFF, error, oom, pod
from .test_state_machine import deployed, world


def conditions(w: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in w.status["conditions"]}


def error_of(w: Any) -> dict[str, Any]:
    return json.loads(w.status["error"])


def events(result: Any) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in result.events]


def children_of(result: Any) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True) for c in result.children)


def jm_pod(**kwargs: Any) -> dict[str, Any]:
    return {**pod("wc-jm", "jobmanager", **kwargs),
            "metadata": {"name": "wc-jm", "labels": {"app": "wc", "component": "jobmanager"}}}


def tm_pod(name: str = "wc-tm", **kwargs: Any) -> dict[str, Any]:
    return {**pod(name, "taskmanager", **kwargs),
            "metadata": {"name": name, "labels": {"app": "wc", "component": "taskmanager"}}}


def test_jobmanager_oomkilled_is_error_and_degraded_on_the_next_sync_with_one_event() -> None:
    w = deployed(world())
    before = w.sync()
    savepoint_info = json.dumps(w.status["jobStatus"].get("savepointInfo"), sort_keys=True)
    # The kernel kills the JobManager: the pod crash-loops, the Deployment is unavailable, REST refuses.
    w.cluster.up = False
    w.pods = [jm_pod(state=BACKOFF, last=oom(), restarts=1, memory="1Gi"), tm_pod(ready=True)]
    result = w.sync()
    assert w.status["jobManagerDeploymentStatus"] == "ERROR"
    assert error_of(w)["additionalMetadata"]["reason"] == "OOMKilled"
    assert "memory limit of 1Gi" in error_of(w)["message"] and "exit code 137" in error_of(w)["message"]
    degraded = conditions(w)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "OOMKilled")
    assert conditions(w)["Ready"]["status"] == "False"
    assert events(result) == [("Warning", "OOMKilled")]
    assert children_of(result) == children_of(before), "a failure never changes or deletes a child"
    assert json.dumps(w.status["jobStatus"].get("savepointInfo"), sort_keys=True) == savepoint_info
    # Resyncs while it lasts (the restart count grows): no new Event, no status change.
    status = json.dumps(w.status, sort_keys=True)
    w.pods = [jm_pod(state=BACKOFF, last=oom(), restarts=4, memory="1Gi"), tm_pod(ready=True)]
    for _ in range(3):
        w.tick()
        assert events(w.sync()) == []
    assert json.dumps(w.status, sort_keys=True) == status
    # The pod comes back: READY again, the error goes, one Normal Event.
    w.cluster.up = True
    w.pods = [jm_pod(ready=True, last=oom(), restarts=4), tm_pod(ready=True)]
    result = w.sync()
    assert w.status["jobManagerDeploymentStatus"] == "READY" and "error" not in w.status
    assert conditions(w)["Degraded"]["status"] == "False"
    assert ("Normal", "PodsRecovered") in events(result)
    assert "podCause" not in w.status.get("flinkSync", {})


def test_crash_loop_on_first_deploy_names_the_exit_code_and_an_edit_recovers() -> None:
    w = world(mode="stateless")
    w.sync()
    w.cluster.up = False
    w.cluster.start_ticks = 10_000  # the JobManager never comes up
    w.pods = [jm_pod(state=BACKOFF, last=error(1, "ERROR ... IllegalConfigurationException: bad"), restarts=2)]
    result = w.sync()
    assert w.status["jobManagerDeploymentStatus"] == "ERROR"
    message = error_of(w)["message"]
    assert "CrashLoopBackOff" in message and "exit code 1" in message and "IllegalConfigurationException" in message
    assert events(result) == [("Warning", "CrashLoopBackOff")]
    assert w.lifecycle() == "DEPLOYED" and conditions(w)["Degraded"]["status"] == "True"
    # The user fixes the configuration: the new cluster's pods are healthy.
    w.edit(lambda spec: spec["flinkConfiguration"].update({"pipeline.name": "fixed"}))
    w.pods = []
    w.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobManagerDeploymentStatus"] == "READY")
    assert "error" not in w.status and conditions(w)["Degraded"]["status"] == "False"


def test_fewer_taskmanagers_are_reported_after_the_readiness_timeout() -> None:
    w = deployed(world(**{"kubernetes.operator.deployment.readiness.timeout": "30 s"}))
    w.cluster.taskmanagers = 0
    first = w.sync()
    record = w.status["flinkSync"]["podCause"]
    assert (record["reason"], record["reported"]) == ("TaskManagersMissing", False)
    # Named at once, but not yet held against the job: TaskManagers may still be registering.
    assert (conditions(w)["Ready"]["status"], conditions(w)["Ready"]["reason"]) == ("True", "JobRunning")
    assert "0 of 1 TaskManagers registered" in conditions(w)["Ready"]["message"]
    assert conditions(w)["Degraded"]["status"] == "False" and events(first) == []
    assert first.resync_after_seconds is not None and first.resync_after_seconds <= 30
    w.now_ms += 31_000
    result = w.sync()
    assert events(result) == [("Warning", "TaskManagersMissing")]
    assert error_of(w)["message"] == "0 of 1 TaskManagers registered with the JobManager"
    assert conditions(w)["Degraded"]["reason"] == "TaskManagersMissing"
    assert (conditions(w)["Ready"]["status"], conditions(w)["Ready"]["reason"]) == ("False", "TaskManagersMissing")
    w.cluster.taskmanagers = 1
    result = w.sync()
    assert "error" not in w.status and events(result) == [("Normal", "PodsRecovered")]
    assert conditions(w)["Ready"]["status"] == "True"


def test_a_cause_shorter_than_the_readiness_timeout_reports_nothing() -> None:
    w = deployed(world())  # the default timeout: 5 min
    tm = tm_pod(scheduled="0/1 nodes are available: 1 Insufficient cpu.")
    w.pods = [jm_pod(ready=True), tm]
    assert events(w.sync()) == []
    assert w.status["flinkSync"]["podCause"]["reason"] == "Unschedulable"
    w.pods = [jm_pod(ready=True), tm_pod(ready=True)]
    assert events(w.sync()) == [] and "podCause" not in w.status["flinkSync"]


def test_a_validation_error_stays_the_error_while_the_pods_fail() -> None:
    w = deployed(world())
    w.edit(lambda spec: spec["job"].update({"parallelism": -1}))
    w.cluster.up = False
    w.pods = [jm_pod(state={"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}})]
    result = w.sync()
    assert "ValidationException" in w.status["error"]
    assert w.status["jobManagerDeploymentStatus"] == "ERROR"
    assert ("Warning", "ImagePullBackOff") in events(result)
    assert w.status["flinkSync"]["podCause"]["reported"] is True


def test_an_image_that_cannot_be_pulled_is_one_cause_through_the_kubelets_retries() -> None:
    w = world()
    w.sync()
    w.cluster.up = False
    w.cluster.start_ticks = 10_000
    pull = {"waiting": {"reason": "ErrImagePull", "message": 'failed to pull image "flink:9.9"'}}
    back_off = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "flink:9.9"'}}
    w.pods = [jm_pod(state=pull)]
    assert events(w.sync()) == [("Warning", "ErrImagePull")]
    assert w.status["jobManagerDeploymentStatus"] == "ERROR" and 'flink:9.9' in error_of(w)["message"]
    status = json.dumps(w.status, sort_keys=True)
    for state in (back_off, pull, back_off):
        w.pods = [jm_pod(state=state)]
        w.tick()
        assert events(w.sync()) == []
        assert json.dumps(w.status, sort_keys=True) == status, "the kubelet's retries do not rewrite the status"


def test_the_customize_hooks_relate_the_clusters_pods() -> None:
    from hooks.app import create_app
    from hooks.pipeline import cluster_pods
    from hooks.settings import Settings

    client = create_app(Settings()).test_client()
    parent = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
              "metadata": {"name": "wc", "namespace": "flink", "uid": "u", "generation": 1}, "spec": {}}
    rules = client.post("/customize/flinkdeployment", json={"parent": parent}).get_json()["relatedResources"]
    pods_rule = {"apiVersion": "v1", "resource": "pods",
                 "labelSelector": {"matchLabels": {"type": "flink-standalone-kubernetes", "app": "wc"}}}
    assert pods_rule in rules
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "j", "namespace": "flink", "uid": "u2", "generation": 1},
           "spec": {"deploymentName": "wc"}}
    rules = client.post("/customize/flinksessionjob", json={"parent": job}).get_json()["relatedResources"]
    assert pods_rule in rules, "a session job sees its session cluster's pods"
    mine = {"metadata": {"name": "wc-jm", "labels": {"type": "flink-standalone-kubernetes", "app": "wc"}}}
    other = {"metadata": {"name": "x-jm", "labels": {"type": "flink-standalone-kubernetes", "app": "x"}}}
    assert cluster_pods({"Pod.v1": {"wc-jm": mine, "x-jm": other}}, "wc") == [mine]


def test_a_jobmanager_that_never_became_available_never_started() -> None:
    from types import SimpleNamespace

    from sync.flinkdeployment.health import jobmanager_never_started

    def sync_with(created: str, transition: str, status: str = "False") -> Any:
        jm = {"metadata": {"creationTimestamp": created}, "status": {"conditions": [
            {"type": "Available", "status": status, "lastTransitionTime": transition}]}}
        return SimpleNamespace(_observed_jm=lambda: jm, status={"jobManagerDeploymentStatus": "ERROR"})

    assert jobmanager_never_started(sync_with("2026-12-02T04:42:31Z", "2026-12-02T04:42:31Z"))
    assert jobmanager_never_started(sync_with("2026-12-02T04:42:31Z", "2026-12-02T04:42:32Z")), "a late first sync"
    assert not jobmanager_never_started(sync_with("2026-12-02T04:42:31Z", "2026-12-02T04:45:00Z")), "it was up once"
    assert not jobmanager_never_started(sync_with("2026-12-02T04:42:31Z", "2026-12-02T04:42:31Z", "True"))
