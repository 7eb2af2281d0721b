"""Operations on the sandbox's real API server (kube-apiserver 1.20): the validating admission webhook
(`flink-sync admission`, switched on by the sandbox like manifests/install-with-webhook), its certificate
rotation and failure policy; then, in a sandbox of their own (they remove the operator), `kubectl delete -k` of the
operator leaving the CRDs and a running FlinkDeployment in place, and the Helm chart installed and uninstalled
with Helm's own engine, the CRDs kept."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess

import pytest
import requests
import yaml

from .conftest import ROOT, Sandbox

pytestmark = pytest.mark.sandbox

EXAMPLE = ROOT / "examples" / "sandbox.yaml"


def _example(name: str, **changes) -> dict:
    doc = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d.get("kind") == "FlinkDeployment")
    doc["metadata"]["name"] = name
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


def _apply(sandbox: Sandbox, obj: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "apply", "-f", "-", *extra], input=yaml.safe_dump(obj), env=sandbox.env,
                          capture_output=True, text=True, timeout=120)


def _admission_port(sandbox: Sandbox) -> int:
    return json.loads((sandbox.state / "ports.json").read_text())["admission"]


def _served_certificate(port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only to read what is served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        return tls.getpeercert(binary_form=True)


def _secret_certificate(sandbox: Sandbox) -> bytes:
    secret = sandbox.get("secret", "flink-sync-webhook-tls", "flink-sync")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    return ssl.PEM_cert_to_DER_cert(base64.b64decode(secret["data"]["tls.crt"]).decode())


def test_kubectl_apply_of_an_invalid_resource_is_refused_naming_the_field(sandbox: Sandbox):
    res = _apply(sandbox, _example("no-account", serviceAccount=None))
    assert res.returncode != 0
    assert 'admission webhook "validate.flink-sync.flink.apache.org" denied the request' in res.stderr, res.stderr
    assert "spec.serviceAccount" in res.stderr
    assert sandbox.get("flinkdeployment", "no-account") is None
    forbidden = _apply(sandbox, _example("forbidden-key", flinkConfiguration={"kubernetes.cluster-id": "x"}),
                       "--dry-run=server")
    assert forbidden.returncode != 0 and "kubernetes.cluster-id" in forbidden.stderr, forbidden.stderr
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "bad-jar", "namespace": "default"},
           "spec": {"deploymentName": "some-session", "job": {"jarURI": "ftp://jars.example/app.jar", "parallelism": 1}}}
    res = _apply(sandbox, job, "--dry-run=server")
    assert res.returncode != 0 and "jarURI" in res.stderr, res.stderr


def test_a_valid_resource_passes(sandbox: Sandbox):
    res = _apply(sandbox, _example("valid-example"), "--dry-run=server")
    assert res.returncode == 0, res.stderr
    assert "created (server dry run)" in res.stdout


def test_the_certificate_rotates_and_the_api_server_keeps_trusting_the_webhook(sandbox: Sandbox):
    """Another keeper (as a replica with one more Service name would) finds that the stored certificate does not
    name it and replaces it; the running server picks the new one up without a restart, and caBundle holds the
    old and the new CA. (Renewal by age is the same path; its clock cannot be moved for the API server.)"""
    from kubernetes import config

    from hooks.settings import WebhookSettings
    from hooks.webhook_tls import CertKeeper

    before = _secret_certificate(sandbox)
    assert _served_certificate(_admission_port(sandbox)) == before
    api = config.new_client_from_config(str(sandbox.state / "kubeconfig"))
    settings = WebhookSettings(namespace="flink-sync", extra_sans=("127.0.0.1", "flink-sync-webhook.example"))
    keeper = CertKeeper(settings, sandbox.state, api_client=api)
    keeper.sync_once()
    after = _secret_certificate(sandbox)
    assert after != before
    bundle = base64.b64decode(sandbox.get("validatingwebhookconfiguration", "flink-sync", "")["webhooks"][0]
                              ["clientConfig"]["caBundle"]).decode()
    assert bundle.count("BEGIN CERTIFICATE") == 2, "the new CA and the previous one while replicas catch up"
    sandbox.until("the admission server serves the new certificate",
                  lambda: _served_certificate(_admission_port(sandbox)) == after, timeout=120)
    res = _apply(sandbox, _example("after-rotation", serviceAccount=None), "--dry-run=server")
    assert res.returncode != 0 and "spec.serviceAccount" in res.stderr, res.stderr


def test_with_the_webhook_server_down_the_failure_policy_ignore_lets_applies_through(sandbox: Sandbox):
    port = _admission_port(sandbox)
    os.kill(sandbox.pid_of("admission"), signal.SIGTERM)
    sandbox.until("the admission server stopped", lambda: _refused_connection(port), timeout=60)
    try:
        res = _apply(sandbox, _example("while-down", serviceAccount=None), "--dry-run=server")
        assert res.returncode == 0, f"failurePolicy Ignore: the API server accepts it\n{res.stderr}"
    finally:
        sandbox.restart("admission")
        sandbox.until("the admission server back", lambda: requests.get(f"https://127.0.0.1:{port}/healthz",
                                                                         timeout=2, verify=False).ok, timeout=120)
    res = _apply(sandbox, _example("after-restart", serviceAccount=None), "--dry-run=server")
    assert res.returncode != 0 and "spec.serviceAccount" in res.stderr, res.stderr


def _refused_connection(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------- uninstall, Helm
def _job_running(sandbox: Sandbox, name: str) -> bool:
    jobs = requests.get(f"{sandbox.proxy}/default/{name}-rest/jobs/overview", timeout=5).json()["jobs"]
    return any(j["state"] == "RUNNING" for j in jobs)


def _uids(sandbox: Sandbox, name: str) -> dict[str, str]:
    found = {"FlinkDeployment": sandbox.get("flinkdeployment", name)["metadata"]["uid"]}
    for kind in ("deployment", "service", "configmap"):
        items = json.loads(sandbox.kubectl("get", kind, "-n", "default", "-o", "json"))["items"]
        for item in items:
            owners = item["metadata"].get("ownerReferences") or []
            if any(o["uid"] == found["FlinkDeployment"] for o in owners):
                found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["uid"]
    return found


def test_deleting_the_operator_leaves_the_crds_and_running_jobs(own_sandbox: Sandbox):
    sandbox = own_sandbox
    sandbox.kubectl("apply", "-f", str(EXAMPLE))
    sandbox.kubectl("wait", "--for=condition=Ready", "flinkdeployment/sandbox-example", "--timeout=300s", timeout=320)
    sandbox.until("the job RUNNING", lambda: _job_running(sandbox, "sandbox-example"), timeout=120)
    before = _uids(sandbox, "sandbox-example")
    assert len(before) >= 4, before

    res = subprocess.run(["kubectl", "delete", "-k", str(ROOT / "manifests/install-with-webhook"), "--ignore-not-found",
                          "--wait=false"], env=sandbox.env, capture_output=True, text=True, timeout=180)
    # What Kubernetes 1.20 does not know (policy/v1 PDB, autoscaling/v2 HPA) is all kubectl may complain about.
    problems = [line for line in res.stderr.splitlines() if line.strip() and "ensure CRDs are installed first" not in line
                and not any(kind in line for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"))]
    assert not problems, res.stderr
    assert "compositecontroller.metacontroller.k8s.io \"flink-sync-flinkdeployment\" deleted" in res.stdout, res.stdout
    sandbox.until("namespace flink-sync gone", lambda: sandbox.get("namespace", "flink-sync", "") is None, timeout=180)
    assert sandbox.get("validatingwebhookconfiguration", "flink-sync", "") is None
    for crd in ("flinkdeployments.flink.apache.org", "flinksessionjobs.flink.apache.org"):
        assert sandbox.get("crd", crd, "") is not None, crd
    assert _uids(sandbox, "sandbox-example") == before, "the FlinkDeployment and its children are the same objects"
    assert _job_running(sandbox, "sandbox-example")


def test_the_helm_chart_installs_and_its_uninstall_keeps_the_crds(own_sandbox: Sandbox):
    """A fresh Helm install (the CRDs from the chart's crds/, so that Helm owns them), a FlinkDeployment, then
    `helm uninstall`: the CRDs and the FlinkDeployment stay. (In the sandbox the previous test left without the
    operator; the two run in this order, in the same module.)"""
    sandbox = own_sandbox
    import helm_python as helm

    sandbox.until("namespace flink-sync gone", lambda: sandbox.get("namespace", "flink-sync", "") is None, timeout=180)
    sandbox.kubectl("delete", "flinkdeployment", "sandbox-example", "--ignore-not-found", "--timeout=300s", timeout=320)
    sandbox.kubectl("delete", "-k", str(ROOT / "crds"), "--timeout=180s", timeout=200)
    # Helm does not adopt objects another tool made: the flink ServiceAccount of manifests/flink-rbac goes first.
    sandbox.kubectl("delete", "-k", str(ROOT / "manifests" / "flink-rbac"), timeout=120)
    # Kubernetes 1.20 has neither policy/v1 nor autoscaling/v2; no hook pod runs (the sandbox runs the hook server
    # as a local process, and the node would run the image's command on the host).
    values = {"podDisruptionBudget": {"enabled": False}, "autoscaling": {"enabled": False}, "replicas": 0,
              "webhook": {"enabled": True}}
    with helm.Config(kubeconfig_path=str(sandbox.state / "kubeconfig"), namespace="flink-sync") as cfg:
        release = cfg.install(str(ROOT / "charts" / "flink-sync"), "flink-sync", values, namespace="flink-sync",
                              create_namespace=True, timeout=120)
        assert release["status"] == "deployed", {k: v for k, v in release.items() if k != "manifest"}
        for kind, name, ns in (("deployment", "flink-sync-hooks", "flink-sync"), ("configmap", "flink-sync-defaults",
                               "flink-sync"), ("compositecontroller", "flink-sync-flinkdeployment", ""),
                               ("validatingwebhookconfiguration", "flink-sync", ""), ("rolebinding", "flink", "default"),
                               ("crd", "flinkdeployments.flink.apache.org", "")):
            assert sandbox.get(kind, name, ns) is not None, (kind, name)
        sandbox.kubectl("wait", "--for=condition=Established", "crd/flinkdeployments.flink.apache.org", "--timeout=60s")
        suspended = _example("kept-by-helm-uninstall")
        suspended["spec"]["job"]["state"] = "suspended"  # a resource, no Flink cluster needed
        res = _apply(sandbox, suspended)
        assert res.returncode == 0, res.stderr
        uid = sandbox.get("flinkdeployment", "kept-by-helm-uninstall")["metadata"]["uid"]
        assert [r["name"] for r in cfg.list()] == ["flink-sync"]
        cfg.uninstall("flink-sync", timeout=120)
    assert sandbox.get("compositecontroller", "flink-sync-flinkdeployment", "") is None
    assert sandbox.get("deployment", "flink-sync-hooks", "flink-sync") is None
    for crd in ("flinkdeployments.flink.apache.org", "flinksessionjobs.flink.apache.org"):
        assert sandbox.get("crd", crd, "") is not None, f"helm uninstall must keep {crd}"
    assert sandbox.get("flinkdeployment", "kept-by-helm-uninstall")["metadata"]["uid"] == uid


def test_namespaced_flink_rbac_overlay_applies(sandbox: Sandbox):
    sandbox.kubectl("create", "namespace", "flink-jobs")
    sandbox.kubectl("apply", "-k", str(ROOT / "manifests/flink-rbac-namespace"))
    for verb in ("create", "update", "delete"):
        assert sandbox.kubectl("auth", "can-i", verb, "configmaps", "-n", "flink-jobs",
                               "--as", "system:serviceaccount:flink-jobs:flink").strip() == "yes"
    assert sandbox.kubectl("auth", "can-i", "create", "configmaps", "-n", "default",
                           "--as", "system:serviceaccount:flink-jobs:flink", check=False).strip() == "no"
