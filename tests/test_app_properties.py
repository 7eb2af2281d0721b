"""Adversarial payloads against the app (Flask test client, same code gunicorn serves): never a 5xx for bad
input, never a traceback to the caller, and never fewer children than the recorded cluster for a deployed
resource, whatever happens to its spec."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.app import create_app
from hooks.settings import Settings
from sync.kubelimits import children_error

from .sim import World
from .test_state_machine import BASE

# Numbers no Flink (Java int/long) or Kubernetes type (int32, int64, resource.Quantity) can hold, and texts that
# parse as such numbers.
OUT_OF_RANGE = st.sampled_from([2**31, -2**31 - 1, 2**63, -2**63 - 1, 2**64, 10**30, 1e300, -1e300, 32769,
                                "1e999", "99999999999999999999999g", "99999999999999999999999Gi", "9e18", "-1",
                                "1e-999", "0.0000000001"])


def _nested(depth: int, as_dict: bool) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


DEEP = st.builds(_nested, st.integers(40, 1500), st.booleans())
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) |
                    st.text(max_size=20) | OUT_OF_RANGE,
                    lambda children: st.lists(children, max_size=4) |
                    st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=20) | DEEP
SPEC_KEYS = ["job", "restartNonce", "flinkConfiguration", "image", "imagePullPolicy", "serviceAccount", "flinkVersion",
             "ingress", "podTemplate", "jobManager", "taskManager", "logConfiguration", "mode"]
JOB_KEYS = ["jarURI", "parallelism", "entryClass", "args", "state", "savepointTriggerNonce", "upgradeMode",
            "initialSavepointPath", "allowNonRestoredState", "savepointRedeployNonce"]


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(rest_url_template="http://127.0.0.1:9/{namespace}/{name}", rest_connect_timeout_s=0.2,
                              rest_read_timeout_s=0.2))
    return app.test_client()


@pytest.fixture(scope="module")
def deployed_parent():
    w = World(copy.deepcopy(BASE))
    w.run_until(lambda w: w.lifecycle() == "STABLE")
    observed = w.request_children()
    return copy.deepcopy(w.parent), observed, len(w.children)


def check(response) -> dict:
    assert response.status_code < 500, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    body = response.get_json()
    if response.status_code == 200 and "children" in body:
        # No response ever asks for children the API server would refuse (they would replace running ones).
        assert children_error(body["children"]) is None, children_error(body["children"])
    return body


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into JSON data (to pick one to garble)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _garble(data: dict, path: tuple, value: object, delete: bool) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value


def _observed_keys(children: dict) -> set[tuple[str, str]]:
    return {(group.split(".", 1)[0], name) for group, objects in children.items() if isinstance(objects, dict)
            for name, obj in objects.items() if isinstance(obj, dict)}


def _answered_keys(body: dict) -> set[tuple[str, str]]:
    return {(child["kind"], child["metadata"]["name"]) for child in body["children"]}


# At least 10,000 generated requests per run (issues 7 and 12): 1,000 bodies x 5 endpoints, 1,500 specs x 2 kinds,
# 1,000 edits of a deployed resource, 1,000 garbled statuses, 1,000 garbled observed children, 1,000 garbled
# session jobs or related session clusters, plus the seed corpus in tests/corpus/ and test_hardening.py.
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON)
def test_any_json_body_is_answered_without_5xx(client, body):
    for path in ("/sync/flinkdeployment", "/finalize/flinkdeployment", "/sync/flinksessionjob",
                 "/customize/flinksessionjob", "/customize/flinkdeployment"):
        check(client.post(path, data=json.dumps(body), content_type="application/json"))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.fixed_dictionaries({}, optional={key: JSON for key in SPEC_KEYS}),
       job=st.fixed_dictionaries({}, optional={key: JSON for key in JOB_KEYS}),
       name=st.text(max_size=50), finalizing=st.booleans())
def test_generated_specs_never_crash(client, spec, job, name, finalizing):
    if job:
        spec["job"] = job
    parent = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
              "metadata": {"name": name or "x", "namespace": "default", "uid": "u", "generation": 1}, "spec": spec}
    check(client.post("/sync/flinkdeployment", json={"parent": parent, "children": {}, "finalizing": finalizing}))
    sj = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
          "metadata": {"name": name or "x", "namespace": "default", "uid": "u", "generation": 1},
          "spec": {**spec, "deploymentName": name}}
    check(client.post("/sync/flinksessionjob", json={"parent": sj, "related": {}}))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SPEC_KEYS + [f"job.{k}" for k in JOB_KEYS]), value=JSON)
def test_a_deployed_resource_never_loses_children_to_a_bad_edit(client, deployed_parent, key, value):
    parent, observed, count = copy.deepcopy(deployed_parent)
    parent["metadata"]["generation"] += 1
    if key.startswith("job."):
        parent["spec"]["job"][key[4:]] = value
    else:
        parent["spec"][key] = value
    body = check(client.post("/sync/flinkdeployment", json={"parent": parent, "children": observed}))
    job = parent["spec"].get("job")
    if isinstance(job, dict) and job.get("upgradeMode") == "stateless":
        return  # a stateless job is cancelled and redeployed by design
    if "children" in body:
        # An edit may start an upgrade (which first stops the job), but an edit can never remove the
        # children in the same sync: nothing is torn down before a savepoint path is recorded.
        assert len(body["children"]) >= count, (key, value, body["status"].get("error"))


@pytest.fixture(scope="module")
def status_paths(deployed_parent):
    return _paths(deployed_parent[0]["status"])


# Garbled statuses (issue 12): a deployed resource whose recorded status was rewritten, one field at a time, by a
# user, another operator or a restored backup. Never a 5xx; never a child of the running cluster deleted unless
# the status itself records a deliberate step (an in-flight stop or the next deployment).
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON, delete=st.booleans(), hook=st.sampled_from(["sync", "finalize"]))
def test_a_garbled_status_never_deletes_the_cluster(client, deployed_parent, status_paths, data, value, delete, hook):
    parent, observed, _ = copy.deepcopy(deployed_parent)
    path = data.draw(st.sampled_from([("status",)] + [("status", *p) for p in status_paths]))
    _garble(parent, path, value, delete)
    body = check(client.post(f"/{hook}/flinkdeployment", json={"parent": parent, "children": observed}))
    if hook == "sync" and "children" in body and path[1:3] not in (("flinkSync", "next"), ("flinkSync", "pending")):
        assert _observed_keys(observed) <= _answered_keys(body), (path, value, body["status"].get("error"))


# Garbled observed children: whatever Metacontroller's cache holds, never a 5xx and never a child dropped while the
# JobManager Deployment still carries the record of the running cluster.
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON, delete=st.booleans())
def test_garbled_observed_children_never_crash_or_delete(client, deployed_parent, data, value, delete):
    parent, observed, _ = copy.deepcopy(deployed_parent)
    path = data.draw(st.sampled_from(_paths(observed)))
    _garble(observed, path, value, delete)
    body = check(client.post("/sync/flinkdeployment", json={"parent": parent, "children": observed}))
    jm = (observed.get("Deployment.apps/v1") or {}).get("wc") if isinstance(observed.get("Deployment.apps/v1"), dict) else None
    intact = isinstance(jm, dict) and jm.get("metadata") == deployed_parent[1]["Deployment.apps/v1"]["wc"]["metadata"]
    if "children" in body and intact:
        # The running cluster's children stay; an object the garbling added is no child of its record.
        running = _observed_keys(deployed_parent[1]) & _observed_keys(observed)
        assert running <= _answered_keys(body), (path, value)


SESSION_JOB = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
               "metadata": {"name": "job", "namespace": "default", "uid": "u", "generation": 1},
               "spec": {"deploymentName": "sess", "job": {"jarURI": "https://h/j.jar", "parallelism": 2,
                                                          "upgradeMode": "savepoint"},
                        "flinkConfiguration": {"state.savepoints.dir": "file:///s", "state.checkpoints.dir": "file:///c"}},
               "status": {"jobStatus": {"state": "RUNNING", "jobId": "a" * 32}, "lifecycleState": "STABLE"}}
SESSION = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
           "metadata": {"name": "sess", "namespace": "default", "uid": "s"},
           "spec": {"flinkVersion": "v1_20", "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"}},
           "status": {"jobManagerDeploymentStatus": "READY", "lifecycleState": "STABLE"}}


# Garbled session jobs and related session clusters: never a 5xx.
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON, delete=st.booleans(), garble_related=st.booleans(),
       hook=st.sampled_from(["sync", "finalize"]))
def test_garbled_session_jobs_and_related_objects_never_crash(client, data, value, delete, garble_related, hook):
    job, session = copy.deepcopy(SESSION_JOB), copy.deepcopy(SESSION)
    target = session if garble_related else job
    path = data.draw(st.sampled_from(_paths(target)))
    _garble(target, path, value, delete)
    related = {"FlinkDeployment.flink.apache.org/v1beta1": {"sess": session}}
    check(client.post(f"/{hook}/flinksessionjob", json={"parent": job, "related": related}))


def test_internal_error_is_a_500_without_details(monkeypatch):
    import hooks.pipeline as app_module

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(app_module, "sync_deployment", broken)
    app = create_app(Settings(rest_url_template="http://127.0.0.1:9/{name}"))
    parent = {"kind": "FlinkDeployment", "metadata": {"name": "x", "namespace": "d", "uid": "u", "generation": 1}}
    response = app.test_client().post("/sync/flinkdeployment", json={"parent": parent})
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)
    assert set(response.get_json()) == {"error"}, "never a partial or empty children list"


def test_unreadable_recorded_status_is_a_422_not_a_deletion(client, deployed_parent):
    parent, observed, _ = copy.deepcopy(deployed_parent)
    parent["status"]["flinkSync"]["cluster"]["spec"] = "{broken"
    response = client.post("/sync/flinkdeployment", json={"parent": parent, "children": observed})
    assert response.status_code == 422 and "status" in response.get_json()["error"]


CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.json"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_seed_corpus(client, path):
    body = json.loads(path.read_text())
    kind = body["parent"].get("kind")
    route = "flinksessionjob" if kind == "FlinkSessionJob" else "flinkdeployment"
    for hook in ("sync", "finalize"):
        check(client.post(f"/{hook}/{route}", data=path.read_text(), content_type="application/json"))
