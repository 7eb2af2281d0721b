"""The Helm chart (charts/flink-sync) with Helm's own engine (helm-python-sdk: Helm v4's Go library, no helm
binary): it is generated from manifests/ (scripts/gen_chart.py, checked here to be current), lints clean, and
renders the very objects of the kustomize build; values change what they say and nothing else. The install into
a real API server is in tests/sandbox/test_operations_sandbox.py."""
from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from .test_manifests import K8S_VERSION, ROOT, build

CHART = ROOT / "charts" / "flink-sync"


def render(values: dict[str, Any] | None = None, namespace: str = "flink-sync") -> list[dict[str, Any]]:
    out = helm.Chart.load(CHART).render(values or {}, name="flink-sync", namespace=namespace, is_install=True)
    return [doc for text in out.values() for doc in yaml.safe_load_all(text) if doc]


def keyed(objects) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    found = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    assert len(found) == len(list(objects)), "an object is rendered twice"
    return found


def kustomize(directory: str) -> list[dict[str, Any]]:
    # Helm installs into a namespace that exists (--create-namespace): the chart has no Namespace object.
    return [o for o in build(directory) if o["kind"] != "Namespace"] + list(build("manifests/flink-rbac"))


def test_the_chart_is_generated_from_the_manifests():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_chart.py"), "--check"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_the_chart_lints_clean():
    report = helm.lint(str(CHART), strict=True, kube_version="v1.30.0")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]


@pytest.mark.parametrize("values, directory", [({}, "manifests/install"),
                                               ({"webhook": {"enabled": True}}, "manifests/install-with-webhook")])
def test_default_values_render_the_kustomize_objects(values, directory):
    rendered, expected = keyed(render(values)), keyed(kustomize(directory))
    assert set(rendered) == set(expected)
    for key, obj in expected.items():
        assert rendered[key] == obj, key


def test_crds_are_kept_in_crds_and_never_templated():
    chart = helm.Chart.load(CHART)
    assert sorted(c["name"] for c in chart.crds) == ["crds/flinkdeployments.flink.apache.org.yaml",
                                                      "crds/flinksessionjobs.flink.apache.org.yaml",
                                                      "crds/flinkstatesnapshots.flink.apache.org.yaml"]
    for crd in chart.crds:  # the very files of crds/ (scripts/gen_chart.py copies them)
        assert (CHART / crd["name"]).read_bytes() == (ROOT / crd["name"]).read_bytes()
    assert not [o for o in render({"webhook": {"enabled": True}}) if o["kind"] == "CustomResourceDefinition"]


def test_values_change_what_they_name():
    values = {"image": {"repository": "registry.example/flink-sync", "tag": "1.2.3", "pullPolicy": "Always"},
              "replicas": 3, "workers": 4,
              "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
              "extraEnv": [{"name": "FLINK_SYNC_JAR_URI_ALLOWLIST", "value": "https://repo.example/"}],
              "defaultConfiguration": "kubernetes.operator.reconcile.interval: 30 s\n",
              "watchNamespaces": ["team-a", "team-b"],
              "parentLabelSelector": {"matchLabels": {"flink-sync.io/managed": "true"}},
              "podDisruptionBudget": {"enabled": False}, "autoscaling": {"enabled": False},
              "webhook": {"enabled": True, "namespaceSelector": {"matchLabels": {"flink": "on"}}}}
    objects = keyed(render(values, namespace="ops"))
    dep = objects[("Deployment", "ops", "flink-sync-hooks")]
    assert dep["spec"]["replicas"] == 3
    containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    hooks = containers["hooks"]
    assert hooks["image"] == containers["admission"]["image"] == "registry.example/flink-sync:1.2.3"
    assert hooks["imagePullPolicy"] == "Always"
    assert hooks["args"] == ["serve", "--bind", "0.0.0.0:8080", "--workers", "4"]
    assert hooks["resources"] == values["resources"]
    assert hooks["env"][-1] == values["extraEnv"][0]
    cm = objects[("ConfigMap", "ops", "flink-sync-defaults")]
    assert cm["data"]["defaults.yaml"] == values["defaultConfiguration"]
    for ns in ("team-a", "team-b"):
        assert objects[("RoleBinding", ns, "flink")]["subjects"] == [{"kind": "ServiceAccount", "name": "flink",
                                                                      "namespace": ns}]
    assert ("ServiceAccount", "default", "flink") not in objects
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert not [k for k in objects if k[0] == kind]
    for name in ("flink-sync-flinkdeployment", "flink-sync-flinksessionjob"):
        cc = objects[("CompositeController", None, name)]
        assert cc["spec"]["parentResource"]["labelSelector"] == values["parentLabelSelector"]
        assert {h["webhook"]["service"]["namespace"] for h in cc["spec"]["hooks"].values()} == {"ops"}
    webhook = objects[("ValidatingWebhookConfiguration", None, "flink-sync")]["webhooks"][0]
    assert webhook["namespaceSelector"] == {"matchLabels": {"flink": "on"}}
    assert webhook["clientConfig"]["service"]["namespace"] == "ops"
    for binding in ("flink-sync-hooks", "flink-sync-webhook"):
        assert objects[("ClusterRoleBinding", None, binding)]["subjects"][0]["namespace"] == "ops"
    for obj in objects.values():
        if not obj["apiVersion"].startswith("metacontroller.k8s.io/"):
            kubernetes_validate.validate(copy.deepcopy(obj), K8S_VERSION, strict=True)


def test_rbac_can_be_left_to_the_cluster_admin():
    kinds = {(o["kind"], o["metadata"]["name"]) for o in render({"rbac": {"create": False},
                                                                 "flinkRbac": {"create": False},
                                                                 "webhook": {"enabled": True}})}
    assert not [k for k in kinds if k[0] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    assert ("ServiceAccount", "flink-sync-hooks") in kinds and ("ServiceAccount", "flink") not in kinds
