"""Regression tests of issue 12 (an adversarial run): each class of failure at its root.

1. a status without its records never deletes the observed cluster: it is adopted from the record the
   JobManager Deployment carries, or refused (422); the migration from the Apache operator included;
2. values no Flink or Kubernetes type can hold are invalid specs that keep the running cluster, and no spec
   whose children the API server would refuse tears a cluster down;
3. garbled statuses, metadata, observed children and related objects are 4xx, never 500;
4. body limits hold for chunked bodies (413), and a malformed chunked body is a 400 (real gunicorn).
"""
from __future__ import annotations

import copy
import json
import socket

import pytest

from hooks.app import create_app
from hooks.settings import Settings
from sync.deployment import RECORD_ANNOTATION, sync_deployment
from sync.kubelimits import children_error
from sync.spec import parse_deployment_spec, serialize_reconciled

from .helpers import SETTINGS
from .server import hook_server
from .sim import World
from .test_state_machine import BASE

DEPLOYMENT_GROUP = "Deployment.apps/v1"


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(rest_url_template="http://127.0.0.1:9/{namespace}/{name}", rest_connect_timeout_s=0.2,
                              rest_read_timeout_s=0.2))
    return app.test_client()


def stable_world(mode: str = "savepoint", **config: str) -> World:
    parent = copy.deepcopy(BASE)
    parent["spec"]["job"]["upgradeMode"] = mode
    parent["spec"]["flinkConfiguration"].update(config)
    world = World(parent)
    world.run_until(lambda w: w.lifecycle() == "STABLE" and w.status.get("jobStatus", {}).get("state") == "RUNNING")
    return world


def child_keys(children) -> set[tuple[str, str]]:
    if isinstance(children, dict):
        return {(group.split(".", 1)[0], name) for group, objects in children.items() for name in objects}
    return {(child["kind"], child["metadata"]["name"]) for child in children}


def post(client, parent, children, hook="sync", kind="flinkdeployment", related=None):
    response = client.post(f"/{hook}/{kind}", json={"parent": parent, "children": children, "related": related or {}})
    assert response.status_code < 500, response.get_data(as_text=True)
    return response.status_code, response.get_json()


# ------------------------------------------------------------------ 1. a status without its records

@pytest.mark.parametrize("lost", ["missing", None, {}, [], 0])
def test_a_lost_cluster_record_adopts_the_running_cluster(lost):
    world = stable_world()
    job_before = world.running_job()
    children_before = set(world.children)
    internal = world.parent["status"]["flinkSync"]
    if lost == "missing":
        del internal["cluster"]
    else:
        internal["cluster"] = lost
    result = world.sync()
    assert child_keys(result.children) == children_before
    assert result.status["flinkSync"]["cluster"]["seq"] == 1
    world.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"]["state"] == "RUNNING")
    assert world.running_job() is job_before, "the same job keeps running: adopted, not redeployed"
    assert world.jobs_started == [job_before.job_id]


@pytest.mark.parametrize("reconciled", ["apache", "legacy", "wrapper-without-metadata"])
def test_migration_from_an_apache_written_status_adopts_children_flink_sync_rendered(client, reconciled):
    """A resource moved over from the Apache operator: its status has Apache's records and no flinkSync."""
    world = stable_world()
    observed = world.request_children()
    parent = copy.deepcopy(world.parent)
    spec = parse_deployment_spec(parent["spec"])
    text = {"apache": serialize_reconciled(spec, False),
            "legacy": json.dumps(parent["spec"]),
            "wrapper-without-metadata": json.dumps({"spec": parent["spec"]})}[reconciled]
    parent["status"] = {"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY",
                        "jobStatus": {"state": "RUNNING", "jobId": world.running_job().job_id, "jobName": "wc"},
                        "reconciliationStatus": {"state": "DEPLOYED", "lastReconciledSpec": text,
                                                 "lastStableSpec": text}}
    code, body = post(client, parent, observed)
    assert code == 200
    assert child_keys(body["children"]) == child_keys(observed)
    assert body["status"]["flinkSync"]["cluster"]["jobId"] == world.running_job().job_id


def test_a_status_without_records_that_says_missing_still_adopts_the_running_cluster(client):
    """One rule decides "removed on purpose" for adoption and for the final check (issue 13): a status without any
    flinkSync record was not written by flink-sync, so its jobManagerDeploymentStatus MISSING is no removal of
    flink-sync's; the JobManager that carries flink-sync's record is adopted, not refused nor deleted."""
    world = stable_world()
    observed = world.request_children()
    parent = copy.deepcopy(world.parent)
    del parent["status"]["flinkSync"]
    parent["status"]["jobManagerDeploymentStatus"] = "MISSING"
    code, body = post(client, parent, observed)
    assert code == 200, body
    assert child_keys(body["children"]) == child_keys(observed)
    assert body["status"]["flinkSync"]["cluster"]["jobId"] == world.running_job().job_id


def test_migration_with_children_flink_sync_did_not_render_is_refused_not_deleted(client):
    world = stable_world()
    observed = world.request_children()
    for obj in observed[DEPLOYMENT_GROUP].values():
        obj["metadata"].get("annotations", {}).pop(RECORD_ANNOTATION, None)
    parent = copy.deepcopy(world.parent)
    del parent["status"]["flinkSync"]
    code, body = post(client, parent, observed)
    assert code == 422
    assert "Deployment wc" in body["error"] and "will not delete" in body["error"]


def test_migration_of_a_job_suspended_by_the_apache_operator_resumes_from_its_savepoint():
    parent = copy.deepcopy(BASE)
    suspended = copy.deepcopy(parent["spec"])
    suspended["job"]["state"] = "suspended"
    text = serialize_reconciled(parse_deployment_spec(suspended), False)
    parent["status"] = {"lifecycleState": "SUSPENDED", "jobManagerDeploymentStatus": "MISSING",
                        "jobStatus": {"state": "FINISHED", "jobId": "a" * 32, "upgradeSavepointPath": "file:/sp/apache"},
                        "reconciliationStatus": {"state": "DEPLOYED", "lastReconciledSpec": text, "lastStableSpec": text}}
    world = World(parent)
    world.savepoints["file:/sp/apache"] = 500
    world.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"]["state"] == "RUNNING")
    assert world.running_job().restored_from == "file:/sp/apache"
    assert world.running_job().value >= 500


def test_a_removal_in_flight_is_neither_adopted_nor_refused():
    """After a suspend, Metacontroller's cache may still show the deleted children for a while."""
    world = stable_world()
    stale = world.request_children()
    world.edit(lambda spec: spec["job"].update({"state": "suspended"}))
    world.run_until(lambda w: w.lifecycle() == "SUSPENDED" and not w.cluster_children())
    result = sync_deployment(copy.deepcopy(world.parent), stale, None, world.now_ms, SETTINGS)
    assert _cluster_kinds(result.children) == [] and "cluster" not in result.status["flinkSync"]


def test_a_status_from_before_the_removal_record_is_not_adopted_after_a_removal():
    world = stable_world()
    stale = world.request_children()
    world.edit(lambda spec: spec["job"].update({"state": "suspended"}))
    world.run_until(lambda w: w.lifecycle() == "SUSPENDED" and not w.cluster_children())
    parent = copy.deepcopy(world.parent)
    del parent["status"]["flinkSync"]["removed"]  # written by a flink-sync that did not record removals
    result = sync_deployment(parent, stale, None, world.now_ms, SETTINGS)
    assert _cluster_kinds(result.children) == []


def _cluster_kinds(children):
    """The cluster's children of an answer (its FlinkStateSnapshot children record the suspend's savepoint)."""
    return [child for child in children if child["kind"] != "FlinkStateSnapshot"]


@pytest.mark.parametrize("text,field", [
    ('{"spec": 5}', "lastReconciledSpec"),
    ("5", "lastReconciledSpec"),
    ('"x"', "lastReconciledSpec"),
])
def test_an_unreadable_reconciled_spec_is_a_422(client, text, field):
    world = stable_world()
    parent = copy.deepcopy(world.parent)
    parent["status"]["reconciliationStatus"]["lastReconciledSpec"] = text
    code, body = post(client, parent, world.request_children())
    assert code == 422 and "status" in body["error"]


def test_a_reconciled_spec_that_disagrees_with_the_cluster_record_is_a_422(client):
    world = stable_world()
    parent = copy.deepcopy(world.parent)
    session = {k: v for k, v in parent["spec"].items() if k != "job"}
    parent["status"]["reconciliationStatus"]["lastReconciledSpec"] = serialize_reconciled(
        parse_deployment_spec(session), False)
    code, body = post(client, parent, world.request_children())
    assert code == 422 and "session" in body["error"] and "flinkSync.cluster" in body["error"]


# ------------------------------------------------------------------ 2. values no type can hold

OUT_OF_RANGE = [
    ("job.parallelism", 2**31, "spec.job.parallelism"),
    ("job.parallelism", 2**63, "spec.job.parallelism"),
    ("job.parallelism", 40000, "spec.job.parallelism"),
    ("taskManager.replicas", 2**31, "spec.taskManager.replicas"),
    ("taskManager.replicas", 20000, "spec.taskManager.replicas"),
    ("taskManager.resource.memory", "99999999999999999999999g", "spec.taskManager.resource.memory"),
    ("taskManager.resource.memory", "1e999", "spec.taskManager.resource.memory"),
    ("taskManager.resource.memory", "99999999999999999999999Gi", "spec.taskManager.resource.memory"),
    ("jobManager.resource.cpu", 1e300, "spec.jobManager.resource.cpu"),
    ("restartNonce", 2**64, "spec.restartNonce"),
    ("flinkConfiguration.taskmanager.numberOfTaskSlots", "1e999", "taskmanager.numberOfTaskSlots"),
    ("podTemplate", {"metadata": {"labels": {"team": "x" * 64}}}, "label value"),
    ("podTemplate", {"spec": {"containers": [{"name": "side", "resources": {"limits": {"cpu": "1e30"}}}]}},
     "resources.limits.cpu"),
    ("logConfiguration", {"log4j-console.properties": "x" * (1024 * 1024 + 1)}, "ConfigMap"),
]


def _set(spec: dict, path: str, value) -> None:
    head, _, rest = path.partition(".")
    if head == "flinkConfiguration":
        spec["flinkConfiguration"][rest] = value
    elif rest:
        target = spec.setdefault(head, {})
        first, _, last = rest.partition(".")
        if last:
            target.setdefault(first, {})[last] = value
        else:
            target[first] = value
    else:
        spec[head] = value


# A session cluster has no job (and may have 20,000 TaskManagers): those cases do not apply to it.
OUT_OF_RANGE_CASES = [pytest.param(mode, path, value, field, id=f"{path}={str(value)[:20]}-{mode}")
                      for path, value, field in OUT_OF_RANGE
                      for mode in ("stateless", "savepoint", "last-state-ha", "session")
                      if not (mode == "session" and (path.startswith("job.") or value == 20000))]


@pytest.mark.parametrize("mode,path,value,field", OUT_OF_RANGE_CASES)
def test_an_out_of_range_value_keeps_the_running_cluster(client, mode, path, value, field):
    if mode == "last-state-ha":
        world = stable_world("last-state", **{"high-availability.type": "kubernetes",
                                              "high-availability.storageDir": "file:///ha"})
    elif mode == "session":
        parent = copy.deepcopy(BASE)
        del parent["spec"]["job"]
        world = World(parent)
        world.run_until(lambda w: w.lifecycle() == "STABLE")
    else:
        world = stable_world(mode)
    parent = copy.deepcopy(world.parent)
    observed = world.request_children()
    _set(parent["spec"], path, value)
    parent["metadata"]["generation"] += 1
    for _ in range(3):  # and on every later sync: never a 500, never a teardown
        code, body = post(client, parent, observed)
        assert code == 200
        assert child_keys(body["children"]) == child_keys(observed)
        assert children_error(body["children"]) is None
        assert field in json.loads(body["status"]["error"])["message"]
        parent["status"] = body["status"]


def test_children_error_names_what_the_api_server_refuses():
    deployment = {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 2**31, "template": {}}}
    assert "spec.replicas" in children_error([deployment])
    service = {"kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": 70000}]}}
    assert "spec.ports[0].port" in children_error([service])
    assert children_error([{"kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}]) is not None
    assert children_error([{"kind": "ConfigMap", "metadata": {"name": "ok", "labels": {"a": "b"}}}]) is None


# ------------------------------------------------------------------ 3. 4xx, never 500

def _garble(parent: dict, children: dict, what: str) -> None:
    status = parent["status"]
    if what == "flinkSync":
        status["flinkSync"] = "garbage"
    elif what.startswith("conditions"):
        status["conditions"] = [5] if what.endswith("5") else [None]
    elif what in ("reconciliationStatus", "jobStatus"):
        status[what] = 7
    elif what == "labels":
        parent["metadata"]["labels"] = "x"
    elif what == "namespace":
        parent["metadata"]["namespace"] = "flink\u202e\x00ä"
    elif what == "jm-conditions":
        children[DEPLOYMENT_GROUP]["wc"]["status"]["conditions"] = [0]
    elif what == "deep-configuration":
        parent["spec"]["flinkConfiguration"]["x"] = json.loads("[" * 900 + "]" * 900)


@pytest.mark.parametrize("what,codes", [
    ("flinkSync", {422}), ("conditions-5", {200}), ("conditions-null", {200}), ("reconciliationStatus", {422}),
    ("jobStatus", {422}), ("labels", {400}), ("namespace", {400}), ("jm-conditions", {200}),
    ("deep-configuration", {200}),
])
@pytest.mark.parametrize("hook", ["sync", "finalize"])
def test_garbled_input_is_a_4xx_or_answered_without_loss(client, what, codes, hook):
    world = stable_world()
    parent, observed = copy.deepcopy(world.parent), world.request_children()
    _garble(parent, observed, what)
    code, body = post(client, parent, observed, hook)
    assert code in codes, body
    if code == 200 and hook == "sync":
        assert child_keys(body["children"]) == child_keys(observed)


@pytest.mark.parametrize("part,value", [("flinkSync", "garbage"), ("jobStatus", 5), ("reconciliationStatus", "x")])
@pytest.mark.parametrize("hook", ["sync", "finalize"])
def test_a_session_jobs_garbled_status_is_a_422(client, part, value, hook):
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "j", "namespace": "default", "uid": "u", "generation": 1},
           "spec": {"deploymentName": "s", "job": {"jarURI": "https://h/j.jar", "parallelism": 1}},
           "status": {part: value}}
    code, body = post(client, job, {}, hook, "flinksessionjob")
    assert code == 422 and f"status.{part}" in body["error"]


def test_a_session_jobs_garbled_related_deployment_is_a_400(client):
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "j", "namespace": "default", "uid": "u", "generation": 1},
           "spec": {"deploymentName": "s", "job": {"jarURI": "https://h/j.jar", "parallelism": 1}}}
    related = {"FlinkDeployment.flink.apache.org/v1beta1": {"s": {"metadata": {"name": "s"}, "spec": "garbage"}}}
    code, body = post(client, job, {}, "sync", "flinksessionjob", related)
    assert code == 400 and "spec: must be an object" in body["error"]


@pytest.mark.parametrize("body", [
    b'{"parent":' + b"[" * 1200 + b"]" * 1200 + b"}",
    b'{"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x"}}, "children": {"a": {"b": '
    + b'{"x":' * 1100 + b"1" + b"}" * 1100 + b"}}}",
    b'{"parent": {"kind": "FlinkDeployment", "metadata": {"name": "x"}, "spec": {"job": {"parallelism": NaN}}}}',
])
def test_deep_or_non_json_bodies_are_a_400(client, body):
    response = client.post("/sync/flinkdeployment", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)


# ------------------------------------------------------------------ 4. body limits through gunicorn

def _raw_post(url: str, head: bytes, chunks: list[bytes]) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server may answer and close before the body is all sent
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


def test_chunked_bodies_over_the_limit_are_a_413_and_malformed_ones_a_400():
    head = (b"POST /sync/flinkdeployment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    piece = b"x" * (1024 * 1024)
    with hook_server() as url:
        parts = [b'{"parent": {"kind": "FlinkDeployment", "spec": {"pad": "', *([piece] * 9), b'"}}}']
        big = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]
        assert _raw_post(url, head, big) == 413
        assert _raw_post(url, head, [b"zz\r\n{}\r\n0\r\n\r\n"]) == 400


def test_a_session_cluster_with_a_null_status_is_answered(client):
    """Found by the fuzzing: a related session FlinkDeployment with `status: null` was a 500."""
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "j", "namespace": "default", "uid": "u", "generation": 1},
           "spec": {"deploymentName": "s", "job": {"jarURI": "https://h/j.jar", "parallelism": 1}}}
    related = {"FlinkDeployment.flink.apache.org/v1beta1": {"s": {"metadata": {"name": "s"}, "spec": {}, "status": None}}}
    code, body = post(client, job, {}, "sync", "flinksessionjob", related)
    assert code == 200 and "waiting for session cluster" in json.dumps(body["status"])
