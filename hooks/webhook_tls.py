"""The admission webhook's TLS without cert-manager: `flink-sync admission` makes its own certificate, keeps
it in a Secret that every replica shares, rotates it before it expires, and keeps the
ValidatingWebhookConfiguration's `caBundle` current (kopf does the same for its webhooks).

One pass (`CertKeeper.sync_once`, at start and then every FLINK_SYNC_WEBHOOK_CHECK_INTERVAL):
1. read the Secret (`kubernetes.io/tls`: tls.crt, tls.key, ca.crt);
2. when it is missing, unreadable, lacks one of the Service's DNS names, or expires within
   FLINK_SYNC_WEBHOOK_RENEW_DAYS: issue a new CA and a serving certificate signed by it, and store them with the
   Secret's resourceVersion as precondition (two replicas racing: one wins, the other reads the winner's);
   `ca.crt` holds the new CA *and* the previous CAs still valid, so a replica that still serves the old
   certificate stays trusted until it has read the new one;
3. set `caBundle` of every webhook in the configuration to the Secret's `ca.crt` (a JSON patch, only when it
   differs), before this replica serves the new certificate;
4. write certificate and key into one file, atomically: gunicorn loads it on every new connection, so a new
   certificate is served without a restart.

The CA's private key is never stored: a renewal makes a new CA. Every call to the API server has a timeout.
"""
from __future__ import annotations

import base64
import ipaddress
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .kube import kubernetes_api_client
from .settings import WebhookSettings

log = logging.getLogger("flink_sync.webhook_tls")
API_TIMEOUT = (5, 10)  # (connect, read) seconds of every call to the API server
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")


# ---------------------------------------------------------------------------------------------- certificates
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flink-sync"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(names: tuple[str, ...], now: datetime, days: int) -> dict[str, bytes]:
    """A new CA and a serving certificate for `names` (DNS names or IP addresses) signed by it, both valid
    `days` from `now`: {"tls.crt", "tls.key", "ca.crt"} as PEM."""
    start, end = now - timedelta(minutes=5), now + timedelta(days=days)  # 5 min of clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA: during a rotation the bundle holds two, and TLS finds a CA by its name.
    ca_name = _name(f"flink-sync webhook CA {now:%Y-%m-%d} {os.urandom(6).hex()}")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return {"tls.crt": cert.public_bytes(serialization.Encoding.PEM), "tls.key": _pem_key(key),
            "ca.crt": ca.public_bytes(serialization.Encoding.PEM)}


def _certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def renewal_reason(data: dict[str, bytes] | None, names: tuple[str, ...], now: datetime,
                   renew_before: timedelta) -> str | None:
    """Why the stored certificate must be replaced, or None while it is good."""
    if not data or any(not data.get(key) for key in TLS_KEYS):
        return "no certificate stored yet"
    try:
        cert = _certs(data["tls.crt"])[0]
        serialization.load_pem_private_key(data["tls.key"], password=None)
        cas = _certs(data["ca.crt"])
    except ValueError as exc:
        return f"the stored certificate is unreadable ({exc})"
    if cert.not_valid_after_utc - now < renew_before:
        return f"the certificate expires at {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    have |= {str(ip) for ip in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
             .value.get_values_for_type(x509.IPAddress)}
    missing = [name for name in names if name not in have]
    if missing:
        return f"the certificate does not name {', '.join(missing)}"
    if not any(_issued_by(cert, ca) for ca in cas):
        return "ca.crt does not hold the certificate's CA"
    return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def with_previous_cas(new: dict[str, bytes], old: dict[str, bytes] | None, now: datetime) -> dict[str, bytes]:
    """`new` with the CAs of `old` that are still valid appended to its ca.crt (rotation overlap)."""
    kept = b""
    try:
        for ca in _certs((old or {}).get("ca.crt") or b""):
            if ca.not_valid_after_utc > now:
                kept += ca.public_bytes(serialization.Encoding.PEM)
    except ValueError:
        pass  # an unreadable old bundle trusts nothing
    return {**new, "ca.crt": new["ca.crt"] + kept}


def service_names(settings: WebhookSettings) -> tuple[str, ...]:
    """The names the API server may use for the webhook Service, then the extra ones (e.g. 127.0.0.1)."""
    base = f"{settings.service_name}.{settings.namespace}"
    return (f"{base}.svc", base, f"{base}.svc.cluster.local", *settings.extra_sans)


def write_serving_file(directory: Path, data: dict[str, bytes]) -> Path:
    """Key and certificate in one PEM file, replaced atomically (a reader sees the old pair or the new one)."""
    path = directory / "webhook.pem"
    content = data["tls.key"] + data["tls.crt"]
    if path.exists() and path.read_bytes() == content:
        return path
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".webhook-")
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------- the keeper
class CertKeeper:
    """Keeps the Secret, the caBundle and the serving file in step (see the module docstring)."""

    def __init__(self, settings: WebhookSettings, directory: Path, now: Callable[[], datetime] | None = None,
                 api_client: Any = None) -> None:
        self.settings = settings
        self.directory = directory
        self.now = now or (lambda: datetime.now(UTC))
        self._api_client = api_client
        self.serving_file = directory / "webhook.pem"

    def _client(self) -> Any:
        if self._api_client is None:
            self._api_client = kubernetes_api_client()
        return self._api_client

    def _core(self) -> Any:
        from kubernetes import client
        return client.CoreV1Api(self._client())

    def _admission(self) -> Any:
        from kubernetes import client
        return client.AdmissionregistrationV1Api(self._client())

    def sync_once(self) -> None:
        """One pass; raises when the API server cannot be asked (the caller retries)."""
        data = self._stored_or_issued()
        self._ensure_ca_bundle(data["ca.crt"])
        write_serving_file(self.directory, data)

    def _read_secret(self) -> tuple[dict[str, bytes] | None, str | None]:
        from kubernetes.client.exceptions import ApiException
        try:
            secret = self._core().read_namespaced_secret(self.settings.secret_name, self.settings.namespace,
                                                         _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        raw = secret.data or {}
        return {k: base64.b64decode(v) for k, v in raw.items() if k in TLS_KEYS}, secret.metadata.resource_version

    def _stored_or_issued(self) -> dict[str, bytes]:
        from kubernetes.client.exceptions import ApiException
        names = service_names(self.settings)
        for _ in range(3):
            data, version = self._read_secret()
            now = self.now()
            reason = renewal_reason(data, names, now, timedelta(days=self.settings.renew_days))
            if reason is None and data is not None:
                return data
            log.info("issuing a new webhook certificate: %s", reason)
            fresh = with_previous_cas(issue(names, now, self.settings.cert_days), data, now)
            try:
                self._write_secret(fresh, version)
                return fresh
            except ApiException as exc:
                if exc.status not in (409, 422):  # 409: another replica stored one first (422: it created it)
                    raise
                log.info("another replica stored the webhook certificate first; reading it")
        raise RuntimeError("the webhook certificate Secret keeps changing; retrying on the next pass")

    def _write_secret(self, data: dict[str, bytes], version: str | None) -> None:
        from kubernetes import client
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=self.settings.secret_name, namespace=self.settings.namespace,
                                         resource_version=version,
                                         labels={"app.kubernetes.io/name": "flink-sync",
                                                 "app.kubernetes.io/component": "admission-webhook"}),
            type="kubernetes.io/tls", data={k: base64.b64encode(v).decode() for k, v in data.items()})
        if version is None:
            self._core().create_namespaced_secret(self.settings.namespace, body, _request_timeout=API_TIMEOUT)
        else:
            self._core().replace_namespaced_secret(self.settings.secret_name, self.settings.namespace, body,
                                                   _request_timeout=API_TIMEOUT)

    def _ensure_ca_bundle(self, bundle: bytes) -> None:
        from kubernetes.client.exceptions import ApiException
        name = self.settings.configuration_name
        try:
            config = self._admission().read_validating_webhook_configuration(name, _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                log.warning("ValidatingWebhookConfiguration %s not found; its caBundle is set once it exists", name)
                return
            raise
        wanted = base64.b64encode(bundle).decode()
        patch = []
        for index, webhook in enumerate(config.webhooks or []):
            if (webhook.client_config.ca_bundle or "") != wanted:
                patch += [{"op": "test", "path": f"/webhooks/{index}/name", "value": webhook.name},
                          {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": wanted}]
        if patch:
            self._admission().patch_validating_webhook_configuration(name, patch, _request_timeout=API_TIMEOUT)
            log.info("caBundle of ValidatingWebhookConfiguration %s updated", name)

    def run(self, stop: threading.Event) -> None:
        """Repeat `sync_once` until `stop` is set; a failed pass is retried after 10 s."""
        delay = self.settings.check_interval_s
        while not stop.wait(delay):
            try:
                self.sync_once()
                delay = self.settings.check_interval_s
            except Exception as exc:  # noqa: BLE001 - keep serving the current certificate and try again
                log.error("webhook certificate check failed: %s", exc)
                delay = min(10.0, self.settings.check_interval_s)

    def start(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self.run, args=(stop,), name="webhook-cert-keeper", daemon=True).start()
        return stop
