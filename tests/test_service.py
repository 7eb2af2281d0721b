"""The hook service as Metacontroller sees it: real requests to a real gunicorn server on 127.0.0.1, applied
by the Metacontroller emulator. Bad input never yields a 5xx or a lost child."""
from __future__ import annotations

import copy
import json

import pytest
import requests
import yaml

from .helpers import EXAMPLES, example_resources
from .metacontroller import Cluster, HookError, controllers, create, delete, post_json, update_spec
from .server import hook_server

DEPLOYMENTS = example_resources("FlinkDeployment")
SESSION_EXAMPLES = ["basic-session-deployment-and-job.yaml"]


@pytest.fixture(scope="module")
def server():
    with hook_server() as url:
        yield url


def test_health_and_metrics(server):
    assert requests.get(server + "/healthz", timeout=5).json() == {"status": "ok"}
    post_json(server + "/sync/flinkdeployment", {"parent": example_resources("FlinkDeployment")[0][1] | {
        "metadata": {"name": "m", "namespace": "default", "uid": "u", "generation": 1}}})
    metrics = requests.get(server + "/metrics", timeout=5).text
    assert "flink_sync_hook_requests_total" in metrics and "flink_sync_hook_duration_seconds" in metrics


@pytest.mark.parametrize("path,resource", DEPLOYMENTS, ids=[p for p, _ in DEPLOYMENTS])
def test_every_example_converges_through_the_server(server, path, resource):
    cluster = Cluster()
    fd, _ = controllers(server, cluster)
    create(cluster, resource)
    syncs = fd.settle(resource["metadata"]["name"], max_syncs=6)
    assert syncs <= 6
    # Then nothing changes, and the response is byte-identical (no hot loop).
    request = fd.request_for(cluster.get("FlinkDeployment", "default", resource["metadata"]["name"]))
    first = requests.post(fd.sync_url, data=json.dumps(request), timeout=10).text
    second = requests.post(fd.sync_url, data=json.dumps(request), timeout=10).text
    assert first == second
    parent = cluster.get("FlinkDeployment", "default", resource["metadata"]["name"])
    canary = (resource["metadata"].get("labels") or {}).get("flink.apache.org/canary") == "true"
    assert canary or cluster.children_of(parent), "children exist"
    assert parent["status"]["observedGeneration"] == 1


def test_session_cluster_and_session_job_example(server):
    cluster = Cluster()
    fd, sj = controllers(server, cluster)
    docs = list(yaml.safe_load_all((EXAMPLES / "basic-session-deployment-and-job.yaml").read_text()))
    session, job = docs[0], docs[1]
    create(cluster, session)
    create(cluster, job)
    fd.settle(session["metadata"]["name"])
    sj.settle(job["metadata"]["name"])
    status = cluster.get("FlinkSessionJob", "default", job["metadata"]["name"])["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    # The hooks cannot reach a Flink REST API in this test, so the session job waits for its cluster.
    assert ready["status"] == "False" and "session cluster" in ready["message"]
    # A session cluster is not deleted under its session jobs.
    delete(cluster, "FlinkDeployment", session["metadata"]["name"])
    response = fd.sync(session["metadata"]["name"])
    assert response["finalized"] is False and response["children"]
    assert "should be deleted first" in cluster.get("FlinkDeployment", "default", session["metadata"]["name"])["status"]["error"]


def test_v2_children_keys(server):
    cluster = Cluster()
    fd, _ = controllers(server, cluster, "v2")
    resource = DEPLOYMENTS[0][1]
    create(cluster, resource)
    assert fd.settle(resource["metadata"]["name"]) <= 6


def test_invalid_spec_keeps_the_children_of_the_last_reconciled_spec(server):
    cluster = Cluster()
    fd, _ = controllers(server, cluster)
    resource = dict(DEPLOYMENTS[0][1])
    name = resource["metadata"]["name"]
    create(cluster, resource)
    fd.settle(name)
    before = fd.children_snapshot(name)
    update_spec(cluster, "FlinkDeployment", name, lambda s: s["job"].update(upgradeMode="blue-green"))
    fd.sync(name)
    parent = cluster.get("FlinkDeployment", "default", name)
    assert "spec.job.upgradeMode" in parent["status"]["error"]
    assert fd.children_snapshot(name) == before, "children are re-rendered from the last reconciled spec"
    assert parent["status"]["observedGeneration"] == 2


def test_finalize_deletes_and_releases(server):
    cluster = Cluster()
    fd, _ = controllers(server, cluster)
    resource = DEPLOYMENTS[0][1]
    name = resource["metadata"]["name"]
    create(cluster, resource)
    fd.settle(name)
    first = fd.sync(name)
    assert "finalized" not in first, "a sync response never says finalized"
    delete(cluster, "FlinkDeployment", name)
    for _ in range(5):
        response = fd.sync(name)
        if response.get("finalized"):
            break
    assert response["finalized"] is True and response["children"] == []
    assert cluster.get("FlinkDeployment", "default", name) is None


@pytest.mark.parametrize("body,status", [
    (b"{not json", 400), (b"[]", 400), (b"{}", 400), (b'{"parent": 3}', 400),
    (b'{"parent": {"kind": "Pod", "metadata": {"name": "x"}}}', 400),
    (b'{"parent": {"kind": "FlinkDeployment", "metadata": {}}}', 400),
    (b'{"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x", "generation": "one"}}}', 400),
    (b'{"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x"}, "spec": []}}', 400),
    (b'{"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x"}}, "children": []}', 400),
    (b'\xff\xfe', 400),
])
def test_bad_requests_are_4xx_with_a_clear_message(server, body, status):
    response = requests.post(server + "/sync/flinkdeployment", data=body, timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and "error" in response.json()


def test_limits_methods_and_unknown_paths():
    with hook_server({"FLINK_SYNC_MAX_REQUEST_BYTES": "2000"}) as url:
        big = json.dumps({"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x"}, "spec": {"pad": "x" * 5000}}})
        response = requests.post(url + "/sync/flinkdeployment", data=big, timeout=5)
        assert response.status_code == 413 and "2000" in response.json()["error"]
        assert requests.get(url + "/sync/flinkdeployment", timeout=5).status_code == 405
        assert requests.post(url + "/nope", data="{}", timeout=5).status_code == 404


def test_bearer_token():
    with hook_server({"FLINK_SYNC_AUTH_TOKEN": "s3cret"}) as url:
        body = {"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x", "namespace": "d", "uid": "u"}}}
        with pytest.raises(HookError) as denied:
            post_json(url + "/sync/flinkdeployment", body)
        assert denied.value.status == 401
        with pytest.raises(HookError):
            post_json(url + "/sync/flinkdeployment", body, headers={"Authorization": "Bearer wrong"})
        assert "status" in post_json(url + "/sync/flinkdeployment", body, headers={"Authorization": "Bearer s3cret"})


def test_operator_defaults_file_is_reloaded_without_restart(tmp_path):
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("kubernetes.operator.default-configuration.namespace.default.metrics.reporters: one\n")
    with hook_server({"FLINK_SYNC_DEFAULTS_FILE": str(defaults)}, workers=1) as url:
        resource = copy.deepcopy(DEPLOYMENTS[0][1])
        resource["metadata"].update(namespace="default", uid="u", generation=1)

        def conf() -> str:
            response = post_json(url + "/sync/flinkdeployment", {"parent": resource})
            data = next(c for c in response["children"] if c["kind"] == "ConfigMap")["data"]
            return data.get("flink-conf.yaml") or data["config.yaml"]
        assert "one" in conf()
        defaults.write_text("kubernetes.operator.default-configuration.namespace.default.metrics.reporters: two\n"
                            "# changed\n")
        assert "two" in conf()


def test_a_killed_worker_is_replaced_and_the_retry_gets_the_same_answer():
    import os
    import signal
    import time

    from .server import worker_pids
    resource = copy.deepcopy(DEPLOYMENTS[0][1])
    resource["metadata"].update(namespace="default", uid="u", generation=1)
    with hook_server(workers=2) as url:
        first = post_json(url + "/sync/flinkdeployment", {"parent": resource})
        deadline = time.monotonic() + 20
        while len(worker_pids(url.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # gunicorn starts its workers one after the other
        workers = worker_pids(url.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # a hook process dies (mid-request for whoever was being served)
        deadline = time.monotonic() + 20
        while True:
            try:
                again = post_json(url + "/sync/flinkdeployment", {"parent": resource}, timeout=2)
                break
            except (requests.RequestException, HookError):
                assert time.monotonic() < deadline, "gunicorn did not replace its workers"
                time.sleep(0.2)
        # Metacontroller's retry of the same request gets the same children (deterministic, stateless hooks).
        assert again["children"] == first["children"]
        while not (set(worker_pids(url.pid)).isdisjoint(workers) and len(worker_pids(url.pid)) == 2):
            assert time.monotonic() < deadline, f"workers not replaced: {worker_pids(url.pid)} (killed {workers})"
            time.sleep(0.2)
