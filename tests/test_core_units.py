"""Unit tests of the pure core's building blocks, each checked against the Apache/Flink behaviour docs."""
from __future__ import annotations

import json

import pytest
import yaml

from sync import flinkconf, podtemplate, quantity
from sync.diff import DiffType, classify
from sync.durations import DurationError, parse_duration
from sync.render import ClusterPlan, parallelism_and_replicas, render_cluster
from sync.spec import (
    SpecError,
    deserialize_reconciled,
    parse_deployment_spec,
    parse_session_job_spec,
    serialize_reconciled,
    spec_json,
)
from sync.status import lifecycle_state
from sync.validation import validate_deployment, validate_session_job

from .helpers import SETTINGS


def spec_of(**overrides):
    base = {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
            "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
            "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "job": {"jarURI": "local:///opt/flink/usrlib/app.jar", "parallelism": 4, "upgradeMode": "stateless"}}
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def children_of(spec: dict, name="wc", namespace="flink", job_id="a" * 32, restore=None):
    plan = ClusterPlan(name, namespace, parse_deployment_spec(spec), 3, job_id, restore, SETTINGS.operator_defaults)
    return {f"{c['kind']}/{c['metadata']['name']}": c for c in render_cluster(plan)}


def conf_of(children, name="wc"):
    data = children[f"ConfigMap/flink-config-{name}"]["data"]
    if "flink-conf.yaml" in data:
        return dict(line.split(": ", 1) for line in data["flink-conf.yaml"].splitlines())
    return flinkconf.flatten(yaml.safe_load(data["config.yaml"]))


# ------------------------------------------------------------------ quantities
@pytest.mark.parametrize("text,expected", [("2048m", 2048 * 2**20), ("2g", 2 * 2**30), ("2G", 2 * 2**30),
                                           ("2Gi", 2 * 2**30), ("1024", 1024), ("1.5Gi", 1536 * 2**20),
                                           ("512 mb", 512 * 2**20), ("2000M", 2000 * 2**20)])
def test_memory_is_parsed_with_flink_rules_first(text, expected):
    assert quantity.parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "2 parsecs", "-1Gi", ""])
def test_bad_memory_is_a_clear_error(bad):
    with pytest.raises(quantity.QuantityError):
        quantity.parse_memory(bad)


@pytest.mark.parametrize("value,text", [(1.0, "1"), (0.5, "500m"), (2.5, "2500m"), (0.001, "1m")])
def test_cpu_is_canonical(value, text):
    assert quantity.canonical_decimal(value) == text


@pytest.mark.parametrize("num,text", [(2048 * 2**20, "2Gi"), (1536 * 2**20, "1536Mi"), (2**30, "1Gi")])
def test_memory_is_canonical(num, text):
    assert quantity.canonical_binary(num) == text


def test_durations():
    assert parse_duration("5 min") == 300_000
    assert parse_duration("6h") == 21_600_000
    assert parse_duration("10 s") == 10_000
    assert parse_duration("1500") == 1500
    assert parse_duration("PT1M") == 60_000
    with pytest.raises(DurationError):
        parse_duration("0 0 */6 * * ?")


# ------------------------------------------------------------------ configuration
def test_flatten_nested_and_lists():
    flat = flinkconf.flatten({"state": {"savepoints.dir": "s3://sp"}, "a.b": 2, "l": ["x", "y"], "t": True})
    assert flat == {"state.savepoints.dir": "s3://sp", "a.b": "2", "l": "x;y", "t": "true"}


def test_operator_defaults_layering_version_plus_and_namespace():
    defaults = {"k": "global",
                "kubernetes.operator.default-configuration.namespace.team.k": "ns",
                "kubernetes.operator.default-configuration.flink-version.v1_18+.k": "v18+",
                "kubernetes.operator.default-configuration.flink-version.v1_20.k": "v20",
                "kubernetes.operator.default-configuration.flink-version.v2_0+.x": "two"}
    assert flinkconf.effective_user_config(defaults, "team", "v1_19")["k"] == "v18+"
    assert flinkconf.effective_user_config(defaults, "team", "v1_20")["k"] == "v20"
    assert flinkconf.effective_user_config(defaults, "team", "v1_17")["k"] == "ns"
    assert flinkconf.effective_user_config(defaults, "other", "v1_17")["k"] == "global"
    assert "x" not in flinkconf.effective_user_config(defaults, "other", "v1_20")
    assert flinkconf.effective_user_config(defaults, "other", "v1_20", {"k": "cr"})["k"] == "cr"


def test_config_yaml_is_nested_for_flink_2_and_flat_on_clash():
    nested = yaml.safe_load(flinkconf.render_config_yaml({"a.b": "1", "a.c": "2"}))
    assert nested == {"a": {"b": "1", "c": "2"}}
    clash = yaml.safe_load(flinkconf.render_config_yaml({"high-availability": "kubernetes",
                                                         "high-availability.type": "kubernetes"}))
    assert clash == {"high-availability": "kubernetes", "high-availability.type": "kubernetes"}


def test_configmap_file_name_follows_flink_version():
    assert "flink-conf.yaml" in children_of(spec_of())["ConfigMap/flink-config-wc"]["data"]
    two = children_of(spec_of(flinkVersion="v2_1"))["ConfigMap/flink-config-wc"]["data"]
    assert "config.yaml" in two and "flink-conf.yaml" not in two
    assert "log4j-console.properties" in two


def test_derived_config_keys_application_mode():
    conf = conf_of(children_of(spec_of(flinkConfiguration={"taskmanager.numberOfTaskSlots": "2",
                                                          "high-availability.type": "kubernetes",
                                                          "high-availability.storageDir": "s3://b/ha",
                                                          "kubernetes.operator.periodic.savepoint.interval": "1h"})))
    assert conf["execution.target"] == "remote"
    assert conf["kubernetes.internal.cluster-mode"] == "APPLICATION"
    assert conf["pipeline.classpaths"] == "file:///opt/flink/usrlib/app.jar"
    assert conf["$internal.pipeline.job-id"] == "a" * 32
    assert conf["parallelism.default"] == "4"
    assert conf["kubernetes.internal.taskmanager.replicas"] == "2"
    assert conf["jobmanager.memory.process.size"] == "2048m"
    assert conf["high-availability.cluster-id"] == "wc"
    assert conf["jobmanager.rpc.address"] == "wc.flink"
    assert conf["execution.shutdown-on-application-finish"] == "false"
    assert conf["job-result-store.storage-path"].startswith("s3://b/ha/job-result-store/wc/")
    assert not any(k.startswith("kubernetes.operator.") for k in conf), "operator keys never reach the cluster"


def test_tm_replicas_and_parallelism():
    spec = parse_deployment_spec(spec_of(job={"jarURI": "local:///a.jar", "parallelism": 10}))
    assert parallelism_and_replicas(spec, {"taskmanager.numberOfTaskSlots": "2"}) == (10, 5)
    spec = parse_deployment_spec(spec_of(taskManager={"replicas": 3, "resource": {"memory": "1g", "cpu": 1}}))
    assert parallelism_and_replicas(spec, {"taskmanager.numberOfTaskSlots": "2"}) == (6, 3)
    assert parallelism_and_replicas(parse_deployment_spec(spec_of(job={"jarURI": "local:///a.jar", "parallelism": 10})),
                                    {"taskmanager.numberOfTaskSlots": "2",
                                     "pipeline.jobvertex-parallelism-overrides": "v1:10,v2:20"}) == (20, 10)
    session = parse_deployment_spec(spec_of(job=None))
    assert parallelism_and_replicas(session, {}) == (None, 1)


def test_jobmanager_args_application_with_restore_and_ha():
    spec = spec_of(flinkConfiguration={"high-availability.type": "kubernetes"},
                   job={"jarURI": "local:///a.jar", "entryClass": "com.acme.Main", "args": ["--input", "s3://in"],
                        "parallelism": 2, "allowNonRestoredState": True})
    jm = children_of(spec, restore="s3://sp/savepoint-1")["Deployment/wc"]
    container = jm["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/docker-entrypoint.sh"]
    assert container["args"] == ["standalone-job", "--job-classname", "com.acme.Main", "--allowNonRestoredState",
                                 "--fromSavepoint", "s3://sp/savepoint-1", "-D",
                                 "jobmanager.rpc.address=$(_POD_IP_ADDRESS)", "--input", "s3://in"]


def test_session_mode_jobmanager_appends_to_template_args():
    spec = spec_of(job=None, podTemplate={"spec": {"containers": [{"name": "flink-main-container", "args": ["-x"]}]}})
    jm = children_of(spec)["Deployment/wc"]
    assert jm["spec"]["template"]["spec"]["containers"][0]["args"] == ["-x", "jobmanager"]
    tm = children_of(spec)["Deployment/wc-taskmanager"]
    assert tm["spec"]["template"]["spec"]["containers"][0]["args"] == ["taskmanager"]
    assert tm["spec"]["replicas"] == 1


def test_objects_names_labels_and_services():
    children = children_of(spec_of())
    assert set(children) == {"ConfigMap/flink-config-wc", "Service/wc", "Service/wc-rest", "Deployment/wc",
                             "Deployment/wc-taskmanager"}
    jm = children["Deployment/wc"]
    assert jm["spec"]["selector"]["matchLabels"] == {"type": "flink-standalone-kubernetes", "app": "wc",
                                                     "component": "jobmanager"}
    assert jm["metadata"]["annotations"]["flinkdeployment.flink.apache.org/generation"] == "3"
    assert children["Service/wc"]["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in children["Service/wc"]["spec"]["ports"]] == [6123, 6124]
    assert children["Service/wc-rest"]["spec"]["ports"][0]["port"] == 8081
    assert children["Service/wc-rest"]["spec"]["type"] == "ClusterIP"
    main = jm["spec"]["template"]["spec"]["containers"][0]
    assert main["name"] == "flink-main-container"
    assert main["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}}
    assert main["startupProbe"]["httpGet"] == {"path": "/config", "port": "rest"}
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/opt/flink/conf", "/opt/flink/usrlib"}


def test_resources_requirements_with_limit_factors():
    spec = spec_of(taskManager={"resources": {"requests": {"memory": "4Gi", "cpu": "2", "ephemeral-storage": "1Gi"},
                                              "limits": {"memory": "8Gi", "cpu": "4"}}})
    tm = children_of(spec)["Deployment/wc-taskmanager"]["spec"]["template"]["spec"]["containers"][0]
    assert tm["resources"] == {"limits": {"cpu": "4", "memory": "8Gi"},
                               "requests": {"cpu": "2", "ephemeral-storage": "1Gi", "memory": "4Gi"}}
    conf = conf_of(children_of(spec))
    assert conf["taskmanager.memory.process.size"] == "4096m"
    assert conf["kubernetes.taskmanager.cpu.limit-factor"] == "2.0"


def test_pod_template_layering_keeps_user_sidecars_and_operator_wins():
    spec = spec_of(podTemplate={"metadata": {"labels": {"team": "a"}},
                                "spec": {"securityContext": {"runAsUser": 9999},
                                         "containers": [{"name": "flink-main-container",
                                                         "env": [{"name": "X", "value": "1"}],
                                                         "volumeMounts": [{"name": "logs", "mountPath": "/opt/flink/log"}]},
                                                        {"name": "fluentbit", "image": "fluent/fluent-bit"}],
                                         "volumes": [{"name": "logs", "emptyDir": {}}]}},
                   taskManager={"resource": {"memory": "2g", "cpu": 1},
                                "podTemplate": {"spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                                                         "containers": [{"name": "flink-main-container",
                                                                         "image": "user/override"}]}}})
    tm = children_of(spec)["Deployment/wc-taskmanager"]["spec"]["template"]
    assert tm["metadata"]["labels"]["team"] == "a"
    assert tm["spec"]["securityContext"] == {"runAsUser": 9999}
    assert tm["spec"]["initContainers"][0]["name"] == "init"
    names = [c["name"] for c in tm["spec"]["containers"]]
    assert names == ["flink-main-container", "fluentbit"]
    main = tm["spec"]["containers"][0]
    assert main["image"] == "flink:1.20", "the operator's image wins over the template"
    assert {"name": "X", "value": "1"} in main["env"]
    assert {v["name"] for v in tm["spec"]["volumes"]} == {"logs", "flink-config-volume"}


def test_merge_by_position_and_by_name():
    base = {"containers": [{"name": "flink-main-container", "image": "a"}, {"name": "fluentbit"}]}
    override = {"containers": [{"name": "sidecar"}]}
    assert [c["name"] for c in podtemplate.merge(base, override)["containers"]] == ["sidecar", "fluentbit"]
    assert [c["name"] for c in podtemplate.merge(base, override, by_name=True)["containers"]] == \
        ["flink-main-container", "fluentbit", "sidecar"]


def test_ingress_from_template():
    spec = spec_of(ingress={"template": "/{{namespace}}/{{name}}(/|$)(.*)", "className": "nginx",
                            "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"}})
    ing = children_of(spec)["Ingress/wc"]
    path = ing["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/flink/wc(/|$)(.*)"
    assert path["backend"]["service"] == {"name": "wc-rest", "port": {"number": 8081}}
    assert ing["metadata"]["labels"]["component"] == "ingress"
    host = children_of(spec_of(ingress={"template": "{{name}}.{{namespace}}.flink.k8s.io"}))["Ingress/wc"]
    assert host["spec"]["rules"][0]["host"] == "wc.flink.flink.k8s.io"


# ------------------------------------------------------------------ validation
def check(spec: dict, name: str = "wc", reconciled=None, state=None) -> str | None:
    try:
        parsed = parse_deployment_spec(spec)
    except SpecError as exc:
        return str(exc)
    config = flinkconf.effective_user_config(SETTINGS.operator_defaults, "default", parsed.flinkVersion,
                                             parsed.flinkConfiguration)
    return validate_deployment(name, parsed, config, reconciled, state)


@pytest.mark.parametrize("spec,name,field,words", [
    (spec_of(), "Bad_Name", "metadata.name", "lower case"),
    (spec_of(flinkVersion=None), "wc", "spec.flinkVersion", "must be defined"),
    (spec_of(flinkVersion="v9_9"), "wc", "spec.flinkVersion", "not supported"),
    (spec_of(flinkConfiguration={"kubernetes.cluster-id": "x"}), "wc", "spec.flinkConfiguration.kubernetes.cluster-id", "Forbidden"),
    (spec_of(flinkConfiguration={"kubernetes.operator.deployment.rollback.enabled": "true"},
             job={"jarURI": "local:///a.jar", "parallelism": 1, "upgradeMode": "last-state"}), "wc",
     "spec.flinkConfiguration.kubernetes.operator.deployment.rollback.enabled", "HA must be enabled"),
    (spec_of(job={"jarURI": "local:///a.jar", "parallelism": 1, "upgradeMode": "last-state"}), "wc",
     "spec.job.upgradeMode", "Checkpoint directory"),
    (spec_of(ingress={"className": "x"}), "wc", "spec.ingress.template", "must be defined"),
    (spec_of(logConfiguration={"log4j.properties": "x"}), "wc", "spec.logConfiguration.log4j.properties", "Invalid log config key"),
    (spec_of(job={"jarURI": "local:///a.jar", "parallelism": 1, "upgradeMode": "savepoint"},
             flinkConfiguration={"state.checkpoints.dir": "file:///c"}), "wc", "spec.job.upgradeMode", "savepoint"),
    (spec_of(job={"jarURI": "local:///a.jar", "parallelism": 1, "savepointTriggerNonce": 1}), "wc",
     "spec.job.savepointTriggerNonce", "manually triggered"),
    (spec_of(job={"jarURI": "local:///a.jar", "parallelism": 0}), "wc", "spec.job.parallelism", "larger than 0"),
    (spec_of(job={"jarURI": "local:///a.jar", "parallelism": 1, "upgradeMode": "blue-green"}), "wc",
     "spec.job.upgradeMode", "blue-green"),
    (spec_of(jobManager={"resource": {"cpu": 1}}), "wc", "spec.jobManager.resource.memory", "must be defined"),
    (spec_of(jobManager={"resource": {"memory": "two gigs", "cpu": 1}}), "wc", "spec.jobManager.resource.memory", "parse error"),
    (spec_of(taskManager={"resources": {"requests": {"memory": "4Gi", "cpu": "2"}, "limits": {"cpu": "1"}}}), "wc",
     "spec.taskManager.resources.requests.cpu", "exceeds limit"),
    (spec_of(jobManager={"resource": {"memory": "1g", "cpu": 1}, "replicas": 2}), "wc", "spec.jobManager.replicas", "High availability"),
    (spec_of(serviceAccount=None), "wc", "spec.serviceAccount", "must be defined"),
    (spec_of(flinkConfiguration={"kubernetes.operator.periodic.savepoint.interval": "1h",
                                 "state.savepoints.dir": "file:///s"} | {"x": "y"}, job={"jarURI": "local:///a.jar",
                                                                                         "parallelism": 1}), "wc", None, None),
    (spec_of(imagePullPolicy="Sometimes"), "wc", "spec.imagePullPolicy", "Sometimes"),
])
def test_validation_names_the_field(spec, name, field, words):
    error = check(spec, name)
    if field is None:
        assert error is None
        return
    assert error is not None and error.startswith(field + ":"), error
    assert words in error


def test_all_flink_versions_are_accepted():
    for version in ("v1_13", "v1_14", "v1_15", "v1_20", "v2_0", "v2_4"):
        assert check(spec_of(flinkVersion=version)) is None


def test_spec_change_rules_need_the_reconciled_spec():
    reconciled = spec_json(parse_deployment_spec(spec_of()))
    assert "Cannot switch from job to session" in check(spec_of(job=None), reconciled=reconciled)
    redeploy = spec_of(job={"jarURI": "local:///a.jar", "parallelism": 1, "savepointRedeployNonce": 1})
    assert check(redeploy, reconciled=reconciled).startswith("spec.job.initialSavepointPath")


def test_session_job_validation():
    def sj(**job):
        return parse_session_job_spec({"deploymentName": "session", "job": {"jarURI": "https://x/a.jar", "parallelism": 1, **job}})
    assert validate_session_job("j", sj(), {}) is None
    assert validate_session_job("j", sj(upgradeMode="last-state"), {}).startswith("spec.job.upgradeMode")
    assert "application cluster" in validate_session_job("j", sj(), {}, session={"spec": {"job": {}}})


# ------------------------------------------------------------------ status, diff
def test_reconciled_spec_is_the_apache_json_string():
    spec = parse_deployment_spec(spec_of())
    text = serialize_reconciled(spec, first_deployment=True)
    data = json.loads(text)
    assert list(data) == ["spec", "resource_metadata"]
    assert list(data["spec"])[:4] == ["job", "restartNonce", "flinkConfiguration", "image"]
    assert data["resource_metadata"] == {"apiVersion": "flink.apache.org/v1beta1", "firstDeployment": True}
    assert deserialize_reconciled(text)[0] == spec_json(spec)
    legacy = json.dumps({**spec_json(spec), "apiVersion": "flink.apache.org/v1beta1"})
    assert deserialize_reconciled(legacy)[0] == spec_json(spec)


def test_diff_types():
    old = spec_json(parse_deployment_spec(spec_of()))
    def changed(**job):
        new = json.loads(json.dumps(old))
        new["job"].update(job)
        return classify(old, new)[0]
    assert changed(upgradeMode="savepoint", savepointTriggerNonce=3) == DiffType.IGNORE
    assert changed(parallelism=8) == DiffType.SCALE
    assert changed(state="suspended") == DiffType.UPGRADE
    assert changed(savepointRedeployNonce=1) == DiffType.SAVEPOINT_REDEPLOY
    new = json.loads(json.dumps(old))
    new["flinkConfiguration"]["kubernetes.operator.x"] = "1"
    assert classify(old, new)[0] == DiffType.IGNORE
    new["restartNonce"] = 5
    assert classify(old, new)[0] == DiffType.UPGRADE
    new = json.loads(json.dumps(old))
    new["flinkConfiguration"] = {"taskmanager": {"numberOfTaskSlots": "2"}}
    assert classify(old, new)[0] == DiffType.IGNORE, "nested and flat spellings are the same config"


@pytest.mark.parametrize("status,expected", [
    ({}, "CREATED"),
    ({"error": "x"}, "FAILED"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"running"}},"resource_metadata":{}}', "state": "UPGRADING"}}, "UPGRADING"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"suspended"}},"resource_metadata":{}}', "state": "DEPLOYED"}}, "SUSPENDED"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"running"}},"resource_metadata":{}}', "state": "DEPLOYED"},
      "jobStatus": {"state": "FAILED"}}, "FAILED"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"running"}},"resource_metadata":{}}', "state": "DEPLOYED"},
      "jobManagerDeploymentStatus": "MISSING", "error": "... Manual restore required."}, "FAILED"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"running"}},"resource_metadata":{}}', "state": "ROLLED_BACK"}}, "ROLLED_BACK"),
    ({"reconciliationStatus": {"lastReconciledSpec": "{}", "lastStableSpec": "{}", "state": "DEPLOYED"}}, "STABLE"),
    ({"reconciliationStatus": {"lastReconciledSpec": '{"spec":{"job":{"state":"running"}},"resource_metadata":{}}', "lastStableSpec": "B", "state": "DEPLOYED"}}, "DEPLOYED"),
])
def test_lifecycle_rule_order(status, expected):
    assert lifecycle_state(status) == expected


def test_upsert_by_name_replaces_in_place_or_appends() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    new = {"name": "A", "value": "x"}
    assert podtemplate.upsert_by_name(env, new) == [new, {"name": "B", "value": "2"}]  # repeats dropped
    assert podtemplate.upsert_by_name(env, {"name": "C"}) == [*env, {"name": "C"}]
    assert podtemplate.upsert_by_name(None, new) == [new]
    assert env[0] == {"name": "A", "value": "1"}  # the input is not modified


class TestOneRenderPerFirstDeployment:
    """The validity check renders the children a new spec would get; on the first deployment those are the
    answer's own (same job id, restore path and generation), so the sync renders once and hands them on."""

    def _first_sync(self, monkeypatch, spec):
        from sync.deployment import sync_deployment
        from sync.flinkdeployment import cluster

        renders = []
        real = cluster.render_cluster

        def counted(plan):
            renders.append(plan)
            return real(plan)

        monkeypatch.setattr(cluster, "render_cluster", counted)
        parent = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
                  "metadata": {"name": "app", "namespace": "ns", "uid": "u-1", "generation": 3}, "spec": spec}
        return sync_deployment(parent, {}, None, 1_700_000_000_000, SETTINGS), renders, real

    @pytest.mark.parametrize("job", [True, False])
    def test_rendered_once_and_as_the_record_says(self, monkeypatch, job):
        spec = spec_of(job=None) if not job else spec_of(
            flinkConfiguration={"taskmanager.numberOfTaskSlots": "2", "execution.checkpointing.dir": "s3://b/cp",
                                "execution.checkpointing.savepoint-dir": "s3://b/sp"},
            job={"jarURI": "local:///opt/flink/usrlib/app.jar", "parallelism": 4, "upgradeMode": "savepoint",
                 "initialSavepointPath": "s3://b/sp-1"})
        result, renders, real = self._first_sync(monkeypatch, spec)
        assert "error" not in result.status
        assert len(renders) == 1
        record = json.loads(next(c for c in result.children if c["kind"] == "Deployment"
                                 and c["metadata"]["name"] == "app")["metadata"]["annotations"]
                            ["flink-sync.io/cluster-record"])
        assert renders[0].job_id == record["jobId"] and renders[0].restore_path == record["restorePath"]
        # the answer is what a fresh render of the recorded plan gives (plus the record on the JobManager)
        fresh = real(ClusterPlan("app", "ns", parse_deployment_spec(json.loads(record["spec"])), 3,
                                 record["jobId"], record["restorePath"], SETTINGS.operator_defaults))
        for child in fresh:
            if child["kind"] == "Deployment" and child["metadata"]["name"] == "app":
                child["metadata"].setdefault("annotations", {})["flink-sync.io/cluster-record"] = json.dumps(
                    record, separators=(",", ":"), sort_keys=True)
        assert result.children == fresh
