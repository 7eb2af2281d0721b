"""What `kubectl apply -k manifests/install` installs: every kustomization builds, every object is valid for
Kubernetes 1.30 (strict: unknown fields are errors), the CompositeControllers are valid for Metacontroller's own
CRD schema, the Apache examples are valid for our CRDs, the status our hooks write survives our CRDs' schema
(no field pruned, no enum broken), and the pieces fit together (hook paths exist in the app, the Service the
controllers call is the one installed, the hook pod is locked down).

Needs `kubectl` (with its built-in kustomize; no cluster is contacted): on PATH, next to the venv's python, or
in $FLINK_SYNC_KUBECTL. `scripts/ensure-kubectl.sh` installs one. No network is used.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
APACHE_EXAMPLES = TESTS / "data" / "apache-examples"
METACONTROLLER_CRDS = TESTS / "schemas" / "metacontroller-crds-v1.yaml"
K8S_VERSION = "1.30"
GROUP_VERSION = "flink.apache.org/v1beta1"
HOOK_SERVICE = {"name": "flink-sync-hooks", "namespace": "flink-sync", "port": 80}
FD_CHILDREN = {("apps/v1", "deployments"), ("v1", "services"), ("v1", "configmaps"),
               ("networking.k8s.io/v1", "ingresses")}
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")

KUSTOMIZATIONS = sorted(
    str(path.parent.relative_to(ROOT))
    for top in ("manifests", "crds", "metacontroller")
    for path in (ROOT / top).rglob("kustomization.yaml")
    if yaml.safe_load(path.read_text()).get("kind") != "Component"  # built only as part of a kustomization
)


# ---------------------------------------------------------------------------------------------- helpers
@functools.cache
def kubectl() -> str:
    candidates = [os.environ.get("FLINK_SYNC_KUBECTL"), shutil.which("kubectl"),
                  str(Path(sys.executable).parent / "kubectl")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("kubectl not found (looked at $FLINK_SYNC_KUBECTL, PATH and the venv's bin/). These tests build the "
                "kustomizations with `kubectl kustomize`; install it with scripts/ensure-kubectl.sh", pytrace=False)


@functools.cache
def build(directory: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run([kubectl(), "kustomize", str(ROOT / directory)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KUBECONFIG": os.devnull})
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    objects = tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None)
    assert objects, f"kubectl kustomize {directory} built nothing"
    return objects


def install() -> tuple[dict[str, Any], ...]:
    return build("manifests/install")


def find(objects, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def strict_json_schema(node: Any) -> Any:
    """A Kubernetes structural (OpenAPI v3) schema as a JSON schema that rejects what the API server would drop:
    an object with `properties` accepts no other keys unless it has x-kubernetes-preserve-unknown-fields or
    additionalProperties. Types, enums and required keys are checked as the API server checks them."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not"):
            out[key] = strict_json_schema(value)
        elif key == "additionalProperties":
            out[key] = strict_json_schema(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict_json_schema(sub) for sub in value]
        elif key.startswith("x-") or key in ("nullable", "format", "description", "example", "externalDocs"):
            continue
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for implicit in ("apiVersion", "kind"):
            props.setdefault(implicit, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if "properties" in node and "additionalProperties" not in node and \
            not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def root_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    schema = strict_json_schema(openapi)
    props = schema.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props.setdefault("metadata", {"type": "object"})
    return schema


def errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]


@functools.cache
def our_crd(kind: str) -> dict[str, Any]:
    name = {"FlinkDeployment": "flinkdeployments", "FlinkSessionJob": "flinksessionjobs",
            "FlinkStateSnapshot": "flinkstatesnapshots"}[kind]
    return find(build("crds"), "CustomResourceDefinition", f"{name}.flink.apache.org")


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    openapi = our_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema = root_schema(openapi)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@functools.cache
def status_validator(kind: str) -> jsonschema.protocols.Validator:
    openapi = our_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return jsonschema.Draft7Validator(strict_json_schema(openapi))


@functools.cache
def composite_controller_validator() -> jsonschema.protocols.Validator:
    docs = [d for d in yaml.safe_load_all(METACONTROLLER_CRDS.read_text()) if d]
    crd = next(d for d in docs if d["metadata"]["name"] == "compositecontrollers.metacontroller.k8s.io")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = root_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def apache_examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(APACHE_EXAMPLES.rglob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("kind") in ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"):
                found.append((f"{path.relative_to(APACHE_EXAMPLES)}#{index}", doc))
    return found


def controllers() -> dict[str, dict[str, Any]]:
    return {cc["spec"]["parentResource"]["resource"]: cc
            for cc in build("metacontroller") if cc["kind"] == "CompositeController"}


def hook_deployment() -> dict[str, Any]:
    return find(install(), "Deployment", "flink-sync-hooks")


def hook_container() -> dict[str, Any]:
    containers = hook_deployment()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# ---------------------------------------------------------------------------------------------- build + validate
def test_the_expected_kustomizations_exist():
    expected = {"manifests/base", "manifests/flink-rbac", "manifests/flink-rbac-namespace", "manifests/install",
                "manifests/install-with-webhook", "crds", "metacontroller"}
    assert expected <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_builds_and_every_object_is_valid(directory):
    for obj in build(directory):
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj.get("metadata")
        where = f"{directory}: {obj['kind']} {obj['metadata']['name']}"
        if obj["apiVersion"].startswith("metacontroller.k8s.io/"):
            assert obj["kind"] == "CompositeController", where
            problems = errors(composite_controller_validator(), obj)
            assert not problems, f"{where} is not valid for Metacontroller's CRD:\n" + "\n".join(problems)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not valid for Kubernetes {K8S_VERSION}: {exc}", pytrace=False)


def test_install_installs_everything_once():
    objects = install()
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "an object is built twice"
    # The CRDs are not part of it (`kubectl delete -k manifests/install` must leave every FlinkDeployment), nor
    # the `flink` ServiceAccount of the jobs' namespace (deleting it would break running jobs' HA).
    assert set(keys) == {
        ("Namespace", None, "flink-sync"),
        ("CompositeController", None, "flink-sync-flinkdeployment"),
        ("CompositeController", None, "flink-sync-flinksessionjob"),
        ("CompositeController", None, "flink-sync-flinkstatesnapshot"),
        ("ServiceAccount", "flink-sync", "flink-sync-hooks"),
        ("ClusterRole", None, "flink-sync-hooks"),
        ("ClusterRoleBinding", None, "flink-sync-hooks"),
        ("ConfigMap", "flink-sync", "flink-sync-defaults"),
        ("Deployment", "flink-sync", "flink-sync-hooks"),
        ("Service", "flink-sync", "flink-sync-hooks"),
        ("PodDisruptionBudget", "flink-sync", "flink-sync-hooks"),
        ("HorizontalPodAutoscaler", "flink-sync", "flink-sync-hooks"),
    }
    # kubectl applies in this order: the namespace before what lives in it, the controllers last.
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Namespace") < kinds.index("Deployment") < kinds.index("CompositeController")


# ---------------------------------------------------------------------------------------------- CRDs
@pytest.mark.parametrize("kind, plural, short", [("FlinkDeployment", "flinkdeployments", "flinkdep"),
                                                 ("FlinkSessionJob", "flinksessionjobs", "sessionjob"),
                                                 ("FlinkStateSnapshot", "flinkstatesnapshots", "flinksnp")])
def test_crd_names_match_apache(kind, plural, short):
    crd = our_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "flink.apache.org" and crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"], names["shortNames"]) == \
        (kind, plural, kind.lower(), [short])
    assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [("v1beta1", True, True)]


def test_crds_have_the_subresources_metacontroller_and_kubectl_scale_need():
    for kind in ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"):
        assert our_crd(kind)["spec"]["versions"][0]["subresources"]["status"] == {}, kind
    scale = our_crd("FlinkDeployment")["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {"specReplicasPath": ".spec.taskManager.replicas",
                     "statusReplicasPath": ".status.taskManager.replicas",
                     "labelSelectorPath": ".status.taskManager.labelSelector"}
    assert "scale" not in our_crd("FlinkSessionJob")["spec"]["versions"][0]["subresources"]


def test_the_flink_state_snapshot_crd_keeps_apaches_schema_and_columns():
    crd = our_crd("FlinkStateSnapshot")
    version = crd["spec"]["versions"][0]
    assert "scale" not in version["subresources"]
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [("Path", ".status.path"), ("Result Timestamp", ".status.resultTimestamp"),
                       ("Snapshot State", ".status.state"), ("Age", ".metadata.creationTimestamp")]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert schema["spec"]["properties"]["savepoint"]["properties"]["formatType"]["enum"] == \
        ["CANONICAL", "NATIVE", "UNKNOWN"]
    status = schema["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True and "conditions" not in status["properties"]
    assert status["properties"]["state"]["enum"] == ["ABANDONED", "COMPLETED", "FAILED", "IN_PROGRESS",
                                                     "TRIGGER_PENDING"]
    assert status["properties"]["path"]["nullable"] is True  # ABANDONED writes a null path


def test_statuses_the_snapshot_hook_writes_survive_the_crd():
    from tests.test_statesnapshot import SAVEPOINT, STOPPED, snapshot, step
    statuses = [step(snapshot(SAVEPOINT)).status, step(snapshot(SAVEPOINT), target=STOPPED).status,
                step(snapshot({"savepoint": {}})).status]
    for status in statuses:
        assert not errors(status_validator("FlinkStateSnapshot"), status), status


@pytest.mark.parametrize("kind", ["FlinkDeployment", "FlinkSessionJob"])
def test_crd_printer_columns(kind):
    columns = {c["name"]: c for c in our_crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Job Status"]["jsonPath"] == ".status.jobStatus.state"
    assert columns["Lifecycle State"]["jsonPath"] == ".status.lifecycleState"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    assert [c["name"] for c in columns.values() if c.get("priority", 0) == 0] == \
        ["Job Status", "Lifecycle State", "Ready", "Age"]


@pytest.mark.parametrize("kind", ["FlinkDeployment", "FlinkSessionJob"])
def test_crd_status_keeps_what_the_hooks_write(kind):
    schema = our_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status = schema["properties"]["status"]
    assert status["type"] == "object" and status["x-kubernetes-preserve-unknown-fields"] is True
    props = status["properties"]
    for apache_field in ("jobStatus", "lifecycleState", "observedGeneration", "reconciliationStatus", "error"):
        assert apache_field in props, apache_field
    assert props["flinkSync"]["type"] == "object" and props["flinkSync"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "properties" not in props["flinkSync"]
    condition = props["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(condition)
    assert condition["observedGeneration"]["type"] == "integer"
    # The spec keeps Apache's shape: flinkConfiguration free-form, the rest typed.
    spec = schema["properties"]["spec"]["properties"]
    assert spec["flinkConfiguration"] == {"x-kubernetes-preserve-unknown-fields": True}


def test_crds_fit_in_the_client_side_apply_annotation():
    # `kubectl apply` (client-side) stores the whole object in an annotation; annotations are capped at 256 KiB.
    for kind in ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"):
        size = len(json.dumps(our_crd(kind), separators=(",", ":")))
        assert size < 240 * 1024, f"{kind} CRD is {size} bytes; `kubectl apply` would need --server-side"


def test_crds_say_where_they_come_from():
    for name in ("flinkdeployments.flink.apache.org.yaml", "flinksessionjobs.flink.apache.org.yaml",
                 "flinkstatesnapshots.flink.apache.org.yaml"):
        head = (ROOT / "crds" / name).read_text()[:1200]
        assert "Generated by scripts/gen_crds.py" in head and "Apache License, Version 2.0" in head, name


@pytest.mark.parametrize("name, example", apache_examples(), ids=[n for n, _ in apache_examples()])
def test_every_apache_example_is_valid_for_our_crd(name, example):
    assert example["apiVersion"] == GROUP_VERSION
    problems = errors(crd_validator(example["kind"]), example)
    assert not problems, f"{name} would be rejected or pruned:\n" + "\n".join(problems)


def test_our_own_examples_are_valid_for_our_crd():
    found = 0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"):
                found += 1
                problems = errors(crd_validator(doc["kind"]), doc)
                assert not problems, f"examples/{path.name} would be rejected or pruned:\n" + "\n".join(problems)
    assert found, "no examples/*.yaml"


def test_the_apache_examples_are_all_there():
    examples = apache_examples()
    kinds = [doc["kind"] for _, doc in examples]
    assert kinds.count("FlinkDeployment") >= 15 and kinds.count("FlinkSessionJob") >= 3, kinds
    assert kinds.count("FlinkStateSnapshot") == 5, kinds
    assert (APACHE_EXAMPLES / "NOTICE").is_file()


def test_the_strict_schema_check_does_reject_and_prune():
    """The checker above is only worth something if it fails on bad input."""
    good = copy.deepcopy(dict(apache_examples())["basic.yaml#0"])
    assert not errors(crd_validator("FlinkDeployment"), good)
    typo = copy.deepcopy(good)
    typo["spec"]["jobManager"]["resourcez"] = {"memory": "1g"}
    assert errors(crd_validator("FlinkDeployment"), typo), "an unknown spec field must be reported"
    bad_enum = copy.deepcopy(good)
    bad_enum["spec"]["job"]["upgradeMode"] = "sometimes"
    assert errors(crd_validator("FlinkDeployment"), bad_enum), "an enum must be checked"
    assert not errors(status_validator("FlinkDeployment"), {"flinkSync": {"anything": [1, {"x": None}]},
                                                            "somethingNew": 1})
    assert errors(status_validator("FlinkDeployment"), {"jobStatus": {"state": "RUNNING", "extra": 1}})
    assert errors(status_validator("FlinkDeployment"), {"lifecycleState": "HAPPY"})


def _schema_nodes(schema: dict[str, Any], path: str = ""):
    yield path or "<root>", schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _schema_nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schema_nodes(schema[key], f"{path}[{key}]")
    for key in ("allOf", "anyOf", "oneOf"):
        for index, sub in enumerate(schema.get(key) or []):
            yield from _schema_nodes(sub, f"{path}<{key}{index}>")


@pytest.mark.parametrize("kind", ["FlinkDeployment", "FlinkSessionJob"])
def test_crd_schemas_are_structural(kind):
    """The rules kubernetes-validate does not check (it validates the CRD object, not its schema)."""
    schema = our_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _schema_nodes(schema):
        assert "$ref" not in node, path
        assert not ("properties" in node and isinstance(node.get("additionalProperties"), dict)), path
        inside_logic = "<" in path.rsplit(".", 1)[-1]
        if not inside_logic:
            assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields") or \
                node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if "enum" in node:
            assert not node.get("nullable"), f"{path}: a nullable enum would accept null only if null were listed"


def test_the_validators_reject_typos():
    cc = copy.deepcopy(controllers()["flinkdeployments"])
    cc["spec"]["childResources"][0]["updateStratgy"] = cc["spec"]["childResources"][0].pop("updateStrategy")
    assert errors(composite_controller_validator(), cc), "an unknown CompositeController field must be reported"
    cc = copy.deepcopy(controllers()["flinkdeployments"])
    cc["spec"]["childResources"][0]["updateStrategy"]["method"] = "Inplace"
    assert errors(composite_controller_validator(), cc)
    deployment = copy.deepcopy(hook_deployment())
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# ---------------------------------------------------------------------------------------------- status round trip
def _deployment_statuses() -> list[dict[str, Any]]:
    from .sim import World
    parent = {"apiVersion": GROUP_VERSION, "kind": "FlinkDeployment",
              "metadata": {"name": "wc", "namespace": "flink", "uid": "uid-wc", "generation": 1},
              "spec": {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
                       "flinkConfiguration": {"state.savepoints.dir": "file:///sp",
                                              "state.checkpoints.dir": "file:///cp",
                                              "kubernetes.operator.deployment.rollback.enabled": "true",
                                              "kubernetes.operator.deployment.readiness.timeout": "5 s"},
                       "jobManager": {"resource": {"memory": "1g", "cpu": 1}},
                       "taskManager": {"resource": {"memory": "1g", "cpu": 1}},
                       "job": {"jarURI": "local:///opt/app.jar", "parallelism": 2, "upgradeMode": "savepoint"}}}
    w = World(parent)
    w.step(12)
    w.edit(lambda s: s["job"].__setitem__("savepointTriggerNonce", 7))
    w.step(6)
    w.edit(lambda s: s["job"].__setitem__("parallelism", 3))
    w.step(12)
    w.edit(lambda s: s["job"].__setitem__("state", "suspended"))
    w.step(8)
    w.edit(lambda s: s["job"].__setitem__("state", "running"))
    w.step(10)
    w.fail_new_jobs = True
    w.edit(lambda s: s["job"].__setitem__("parallelism", 4))
    w.step(15)
    w.fail_new_jobs = False
    w.flink_down = True
    w.step(3)
    w.flink_down = False
    w.step(3)
    w.sync(finalizing=True)
    w.step(5)
    return [result.status | {"observedGeneration": 1} for result in w.history]


def _session_job_statuses() -> list[dict[str, Any]]:
    from . import test_sessionjob_core as core
    session, parent, statuses = core.Session(), copy.deepcopy(core.JOB), []
    for edit in (None, ("savepointTriggerNonce", 5), ("parallelism", 2), ("state", "suspended"), ("state", "running")):
        if edit:
            parent["spec"]["job"][edit[0]] = edit[1]
            parent["metadata"]["generation"] += 1
        for _ in range(6):
            statuses.append(copy.deepcopy(core.run(session, parent).status))
    core.run(session, parent, fail_submit=True)
    statuses.append(copy.deepcopy(parent["status"]))
    statuses.append(copy.deepcopy(core.run(session, parent, finalizing=True).status))
    return statuses


@pytest.mark.parametrize("kind", ["FlinkDeployment", "FlinkSessionJob"])
def test_status_written_by_the_hooks_survives_our_crd(kind):
    """Metacontroller writes the hooks' status through the /status subresource: a field the schema does not
    keep is pruned (and every sync then looks like a change), a value outside an enum is rejected."""
    statuses = _deployment_statuses() if kind == "FlinkDeployment" else _session_job_statuses()
    golden = [yaml.safe_load(p.read_text()).get("status") for p in sorted((TESTS / "golden" / "render").glob("*.yaml"))]
    if kind == "FlinkDeployment":
        statuses += [s for s in golden if s]
    seen_lifecycles = {s.get("lifecycleState") for s in statuses}
    assert len(seen_lifecycles) >= 3, seen_lifecycles  # the scenario did reach several states
    for index, status in enumerate(statuses):
        problems = errors(status_validator(kind), status)
        assert not problems, f"status #{index} ({status.get('lifecycleState')}) would be pruned or rejected:\n" + \
            "\n".join(problems)


# ---------------------------------------------------------------------------------------------- controllers
def test_controllers_watch_our_crds_which_have_a_status_subresource():
    crds = {(c["spec"]["group"], c["spec"]["names"]["plural"]): c for c in build("crds")}
    ccs = controllers()
    assert set(ccs) == {"flinkdeployments", "flinksessionjobs", "flinkstatesnapshots"}
    for plural, cc in ccs.items():
        spec = cc["spec"]
        assert spec["parentResource"]["apiVersion"] == GROUP_VERSION
        crd = crds[("flink.apache.org", plural)]
        assert "status" in crd["spec"]["versions"][0]["subresources"], "Metacontroller ignores parents without it"
        assert spec["generateSelector"] is True  # the Apache CRs have no spec.selector
        assert 10 <= spec["resyncPeriodSeconds"] <= 600


SNAPSHOT_CHILDREN = {("flink.apache.org/v1beta1", "flinkstatesnapshots")}


def test_flinkdeployment_children_are_updated_in_place():
    """The cluster's children are updated in place; its savepoint records (FlinkStateSnapshots) never change."""
    children = controllers()["flinkdeployments"]["spec"]["childResources"]
    assert {(c["apiVersion"], c["resource"]) for c in children} == FD_CHILDREN | SNAPSHOT_CHILDREN
    for child in children:
        if (child["apiVersion"], child["resource"]) in FD_CHILDREN:
            assert child["updateStrategy"]["method"] == "InPlace", child


def test_a_session_jobs_only_children_are_its_snapshots_and_a_snapshot_has_none():
    children = controllers()["flinksessionjobs"]["spec"].get("childResources", [])
    assert {(c["apiVersion"], c["resource"]) for c in children} == SNAPSHOT_CHILDREN
    assert controllers()["flinkstatesnapshots"]["spec"].get("childResources", []) == []


def test_every_child_kind_the_hooks_render_is_a_declared_child():
    plural = {"Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps", "Ingress": "ingresses",
              "FlinkStateSnapshot": "flinkstatesnapshots"}
    rendered = set()
    for path in sorted((TESTS / "golden" / "render").glob("*.yaml")):
        for child in yaml.safe_load(path.read_text()).get("children") or []:
            rendered.add((child["apiVersion"], plural.get(child["kind"], child["kind"])))
    assert rendered, "no golden renders found"
    assert rendered <= FD_CHILDREN | SNAPSHOT_CHILDREN, rendered - FD_CHILDREN
    assert ("networking.k8s.io/v1", "ingresses") in rendered


@pytest.mark.parametrize("resource, hooks", [
    ("flinkdeployments", {"sync": "/sync/flinkdeployment", "finalize": "/finalize/flinkdeployment",
                          "customize": "/customize/flinkdeployment"}),
    ("flinksessionjobs", {"sync": "/sync/flinksessionjob", "finalize": "/finalize/flinksessionjob",
                          "customize": "/customize/flinksessionjob"}),
    ("flinkstatesnapshots", {"sync": "/sync/flinkstatesnapshot", "finalize": "/finalize/flinkstatesnapshot",
                             "customize": "/customize/flinkstatesnapshot"}),
])
def test_hooks_point_at_the_hook_service(resource, hooks):
    configured = controllers()[resource]["spec"]["hooks"]
    assert set(configured) == set(hooks)
    for name, path in hooks.items():
        hook = configured[name]
        assert hook["version"] == "v1"
        webhook = hook["webhook"]
        assert "url" not in webhook
        assert webhook["service"] == HOOK_SERVICE and webhook["path"] == path
        assert GO_DURATION.match(webhook["timeout"]) and webhook["timeout"] == "10s"


def test_hook_paths_exist_in_the_app_and_the_service_reaches_the_pod():
    from hooks.app import create_app
    from hooks.kube import KubeSideEffects
    from hooks.settings import Settings

    env = {e["name"]: e["value"] for e in hook_container()["env"]}
    env["FLINK_SYNC_DEFAULTS_FILE"] = str(ROOT / "manifests" / "base" / "defaults.yaml")
    app = create_app(Settings.from_env(env), side_effects=KubeSideEffects(False))
    routes = {rule.rule: rule.methods for rule in app.url_map.iter_rules()}
    for cc in controllers().values():
        for hook in cc["spec"]["hooks"].values():
            assert "POST" in routes.get(hook["webhook"]["path"], set()), hook["webhook"]["path"]
    # The Service named in the controllers exists, on that port, and selects the hook pods' http port.
    service = find(install(), "Service", HOOK_SERVICE["name"])
    assert service["metadata"]["namespace"] == HOOK_SERVICE["namespace"]
    port = next(p for p in service["spec"]["ports"] if p["port"] == HOOK_SERVICE["port"])
    container_ports = {p["name"]: p["containerPort"] for p in hook_container()["ports"]}
    assert container_ports.get(port["targetPort"]) == 8080 or port["targetPort"] == 8080
    pod_labels = hook_deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


# ---------------------------------------------------------------------------------------------- hook server
def test_hook_pod_runs_non_root_with_a_read_only_root_filesystem():
    pod = hook_deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = hook_container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert sc.get("privileged") is not True
    mounts = {m["mountPath"]: m["name"] for m in hook_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "gunicorn needs a writable /tmp"


def test_hook_container_command_probes_and_resources():
    c = hook_container()
    assert c["image"] == "ghcr.io/flink-sync/flink-sync:0.1.0"
    assert c["command"] + c["args"] == ["flink-sync", "serve", "--bind", "0.0.0.0:8080", "--workers", "2"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz"
        assert c[probe]["httpGet"]["port"] in (8080, "http")
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}
    assert hook_deployment()["spec"]["replicas"] == 2


def test_hook_environment_and_operator_defaults():
    from hooks.settings import OperatorDefaults
    env = {e["name"]: e.get("value") for e in hook_container()["env"]}
    assert env["FLINK_SYNC_REST_URL_TEMPLATE"] == "http://{name}-rest.{namespace}.svc:8081"
    assert env["FLINK_SYNC_DEFAULTS_FILE"] == "/etc/flink-sync/defaults.yaml"
    mounts = {m["mountPath"]: m for m in hook_container()["volumeMounts"]}
    assert "subPath" not in mounts["/etc/flink-sync"], "a subPath mount never sees ConfigMap updates"
    volume = next(v for v in hook_deployment()["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mounts["/etc/flink-sync"]["name"])
    assert volume["configMap"]["name"] == "flink-sync-defaults"
    cm = find(install(), "ConfigMap", "flink-sync-defaults")
    text = cm["data"]["defaults.yaml"]
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict) and all(isinstance(v, (str, int, float, bool)) for v in loaded.values())
    path = ROOT / "manifests" / "base" / "defaults.yaml"
    assert path.read_text() == text
    effective = OperatorDefaults(str(path)).current()
    assert effective["taskmanager.numberOfTaskSlots"] == "1"
    assert effective["kubernetes.operator.reconcile.interval"] == "15 s"


def test_pdb_and_hpa_target_the_hook_deployment():
    objects = install()
    labels = hook_deployment()["spec"]["template"]["metadata"]["labels"]
    pdb = find(objects, "PodDisruptionBudget", "flink-sync-hooks")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = find(objects, "HorizontalPodAutoscaler", "flink-sync-hooks")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "flink-sync-hooks"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert "cpu" in hook_container()["resources"]["requests"], "a CPU utilization target needs a CPU request"


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_hook_rbac_is_events_and_ha_configmaps_only():
    objects = install()
    sa = hook_deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    assert find(objects, "ServiceAccount", sa)["metadata"]["namespace"] == "flink-sync"
    binding = find(objects, "ClusterRoleBinding", "flink-sync-hooks")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "flink-sync"}]
    role = find(objects, "ClusterRole", binding["roleRef"]["name"])
    rules = _rules(role)
    assert {("", "events", "create"), ("", "events", "patch"),
            ("", "configmaps", "get"), ("", "configmaps", "list"), ("", "configmaps", "delete")} <= rules
    assert not [r for r in rules if "*" in r], "no wildcards"
    assert {resource for _, resource, _ in rules} == {"events", "configmaps"}, "the hooks never write children"


def test_flink_service_account_can_use_kubernetes_ha():
    objects = build("manifests/flink-rbac")
    sa = find(objects, "ServiceAccount", "flink")
    assert sa["metadata"]["namespace"] == "default"
    role = find(objects, "Role", "flink")
    assert role["metadata"]["namespace"] == "default"
    assert {("", "configmaps", v) for v in ("get", "list", "watch", "create", "update", "patch", "delete")} <= \
        _rules(role)
    binding = find(objects, "RoleBinding", "flink")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flink"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flink", "namespace": "default"}]
    # The Apache examples run as this ServiceAccount.
    accounts = {doc["spec"].get("serviceAccount") for _, doc in apache_examples()
                if doc["kind"] == "FlinkDeployment" and "spec" in doc}  # canary.yaml has no spec
    assert accounts == {"flink"}, accounts


def test_dockerfile_builds_a_non_root_image_of_this_package():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) > 0, user
    run_as = hook_deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert int(user[-1].split(":")[0]) == run_as
    assert any("pip install ." in line for line in lines)
    assert 'ENTRYPOINT ["flink-sync"]' in lines
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
    assert 'flink-sync = "hooks.cli:main"' in (ROOT / "pyproject.toml").read_text()
