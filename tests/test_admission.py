"""The admission webhook's decisions (hooks/admission.py), its certificate (hooks/webhook_tls.py: issued,
renewed, verified by a real TLS handshake), and its configuration (the component's rules cover exactly the
validated kinds). On a real API server: tests/sandbox/test_operations_sandbox.py."""
from __future__ import annotations

import copy
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from hooks.admission import BadReview, create_admission_app, review
from hooks.settings import WebhookSettings
from hooks.validation import VALIDATORS, ValidationContext
from hooks.webhook_tls import issue, renewal_reason, service_names, with_previous_cas, write_serving_file
from sync.defaults import BUILTIN_OPERATOR_DEFAULTS
from sync.model import CoreSettings

from .test_manifests import ROOT, build

CTX = ValidationContext(CoreSettings(operator_defaults=dict(BUILTIN_OPERATOR_DEFAULTS)), ("https://",))
VALID = next(d for d in yaml.safe_load_all((ROOT / "examples" / "basic.yaml").read_text())
             if d and d.get("kind") == "FlinkDeployment")


def _review(obj, operation="CREATE", old=None, **extra):
    req = {"uid": "u-1", "kind": {"group": "flink.apache.org", "version": "v1beta1", "kind": obj.get("kind")},
           "operation": operation, "namespace": "default", "name": obj["metadata"]["name"], "object": obj,
           "oldObject": old, **extra}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def _invalid():
    bad = copy.deepcopy(VALID)
    bad["spec"].pop("serviceAccount")
    return bad


def test_an_invalid_create_is_refused_naming_the_field():
    answer, kind, allowed = review(_review(_invalid()), CTX)
    assert (kind, allowed) == ("FlinkDeployment", False)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "u-1" and response["allowed"] is False
    assert response["status"]["code"] == 422 and response["status"]["message"].startswith("spec.serviceAccount")


def test_a_valid_create_is_allowed():
    answer, _, allowed = review(_review(VALID), CTX)
    assert allowed and answer["response"] == {"uid": "u-1", "allowed": True}


def test_what_is_never_refused():
    bad = _invalid()
    # An update that leaves the spec alone (Metacontroller's finalizer, a label): a resource that was accepted
    # before a rule changed can still be released and deleted.
    relabelled = copy.deepcopy(bad)
    relabelled["metadata"]["finalizers"] = ["metacontroller.io/compositecontroller-flink-sync-flinkdeployment"]
    assert review(_review(relabelled, "UPDATE", old=bad), CTX)[2]
    deleting = copy.deepcopy(bad)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    assert review(_review(deleting, "UPDATE", old=VALID), CTX)[2]
    assert review(_review(bad, "DELETE"), CTX)[2]
    assert review(_review(bad, "UPDATE", old=VALID, subResource="status"), CTX)[2]
    canary = copy.deepcopy(bad)
    canary["metadata"]["labels"] = {"flink.apache.org/canary": "true"}
    assert review(_review(canary), CTX)[2]
    other = {"apiVersion": "flink.apache.org/v1beta1", "kind": "SomethingNew", "metadata": {"name": "x"}, "spec": {}}
    assert review(_review(other), CTX)[2]
    # An update that changes the spec is checked.
    assert not review(_review(bad, "UPDATE", old=VALID), CTX)[2]


def test_a_session_job_jar_outside_the_allowlist_is_refused():
    job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
           "metadata": {"name": "j", "namespace": "default"},
           "spec": {"deploymentName": "session", "job": {"jarURI": "ftp://jars.example/a.jar", "parallelism": 1}}}
    answer, _, allowed = review(_review(job), CTX)
    assert not allowed and "jarURI" in answer["response"]["status"]["message"]


@pytest.mark.parametrize("body", [None, [], {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"},
                                  {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}])
def test_what_is_not_a_review_is_a_400(body):
    with pytest.raises(BadReview):
        review(body, CTX)
    client = create_admission_app(lambda: CTX, 1024 * 1024).test_client()
    assert client.post("/validate", json=body).status_code == 400


def test_the_app_answers_and_counts_and_refuses_large_bodies():
    client = create_admission_app(lambda: CTX, 64 * 1024).test_client()
    res = client.post("/validate", json=_review(_invalid()))
    assert res.status_code == 200 and res.get_json()["response"]["allowed"] is False
    assert client.post("/validate", json=_review(VALID)).get_json()["response"]["allowed"] is True
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'flink_sync_admission_reviews_total{allowed="false",kind="FlinkDeployment"} 1.0' in metrics
    assert client.post("/validate", data=b"x" * (64 * 1024 + 1), content_type="application/json").status_code == 400
    assert client.get("/healthz").status_code == 200


def test_the_webhook_rules_cover_exactly_the_validated_kinds():
    """Adding a kind is one entry in hooks.validation.VALIDATORS and one resource in the rules."""
    config = next(o for o in build("manifests/install-with-webhook") if o["kind"] == "ValidatingWebhookConfiguration")
    plural = {kind: kind.lower() + "s" for kind in VALIDATORS}
    for webhook in config["webhooks"]:
        assert webhook["failurePolicy"] == "Ignore" and webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"] and webhook["clientConfig"]["service"]["path"] == "/validate"
        assert "caBundle" not in webhook["clientConfig"], "the server sets it; an applied one would be stale"
        (rule,) = webhook["rules"]
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        assert sorted(rule["resources"]) == sorted(plural.values()), "no subresources (status), every kind"


# ---------------------------------------------------------------------------------------------- certificate
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SETTINGS = WebhookSettings(namespace="ops", extra_sans=("127.0.0.1",))


def test_a_fresh_certificate_is_good_until_its_renewal_window():
    names = service_names(SETTINGS)
    assert names[:3] == ("flink-sync-hooks.ops.svc", "flink-sync-hooks.ops", "flink-sync-hooks.ops.svc.cluster.local")
    data = issue(names, NOW, 365)
    assert renewal_reason(data, names, NOW, timedelta(days=30)) is None
    assert renewal_reason(data, names, NOW + timedelta(days=340), timedelta(days=30)).startswith("the certificate expires")
    assert "does not name" in renewal_reason(data, (*names, "other.example"), NOW, timedelta(days=30))
    assert renewal_reason(None, names, NOW, timedelta(days=30)) == "no certificate stored yet"
    assert "unreadable" in renewal_reason({**data, "tls.crt": b"garbage"}, names, NOW, timedelta(days=30))
    other = issue(names, NOW, 365)
    assert renewal_reason({**data, "ca.crt": other["ca.crt"]}, names, NOW, timedelta(days=30)) == \
        "ca.crt does not hold the certificate's CA"


def test_a_renewal_keeps_the_previous_ca_while_it_is_valid():
    names = service_names(SETTINGS)
    old, new = issue(names, NOW, 365), issue(names, NOW + timedelta(days=340), 365)
    merged = with_previous_cas(new, old, NOW + timedelta(days=340))
    assert merged["ca.crt"] == new["ca.crt"] + old["ca.crt"]
    assert with_previous_cas(new, old, NOW + timedelta(days=400))["ca.crt"] == new["ca.crt"]


def _handshake(tmp_path, served: dict[str, bytes], trusted_ca: bytes) -> None:
    path = write_serving_file(tmp_path, served)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(path))  # as gunicorn loads it: key and certificate from one file
    client_ctx = ssl.create_default_context(cadata=trusted_ca.decode())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def accept(ctx: ssl.SSLContext = server_ctx, sock: socket.socket = listener) -> None:
            conn, _ = sock.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except ssl.SSLError:
                pass  # the client refused us: its side of the test says so

        thread = threading.Thread(target=accept)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname="flink-sync-hooks.ops.svc") as tls:
                tls.sendall(b"x")
        finally:
            thread.join(timeout=5)


def test_a_client_trusting_the_bundle_verifies_the_served_certificate(tmp_path):
    """Real TLS handshakes on 127.0.0.1, the host name checked: across a rotation, a client with the new bundle
    trusts the old certificate and the new one; a client trusting another CA does not."""
    names = service_names(SETTINGS)
    now = datetime.now(UTC)
    old = issue(names, now, 365)
    new = with_previous_cas(issue(names, now, 365), old, now)
    _handshake(tmp_path, old, new["ca.crt"])
    _handshake(tmp_path, new, new["ca.crt"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, new, issue(names, now, 365)["ca.crt"])


def test_webhook_settings_from_the_environment():
    settings = WebhookSettings.from_env({"FLINK_SYNC_WEBHOOK_NAMESPACE": "ops", "FLINK_SYNC_WEBHOOK_EXTRA_SANS": "127.0.0.1, a.b",
                                         "FLINK_SYNC_WEBHOOK_CERT_DAYS": "90", "FLINK_SYNC_WEBHOOK_RENEW_DAYS": "10"})
    assert (settings.namespace, settings.extra_sans, settings.cert_days, settings.renew_days) == \
        ("ops", ("127.0.0.1", "a.b"), 90, 10)
    with pytest.raises(SystemExit, match="FLINK_SYNC_WEBHOOK_RENEW_DAYS"):
        WebhookSettings.from_env({"FLINK_SYNC_WEBHOOK_CERT_DAYS": "10", "FLINK_SYNC_WEBHOOK_RENEW_DAYS": "30"})
