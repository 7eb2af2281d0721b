"""Server settings, from the environment only (a CR can never choose where the hooks connect)."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sync import flinkconf
from sync.defaults import BUILTIN_OPERATOR_DEFAULTS

log = logging.getLogger("flink_sync.settings")
MIB = 1024 * 1024


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(env.get(key, default))
    except ValueError:
        raise SystemExit(f"{key}: '{env.get(key)}' is not a number") from None


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(env.get(key, default))
    except ValueError:
        raise SystemExit(f"{key}: '{env.get(key)}' is not a whole number") from None


@dataclass(frozen=True)
class Settings:
    """Every knob of the hook server; see the README's settings table."""
    rest_url_template: str = "http://{name}-rest.{namespace}.svc:8081"
    max_request_bytes: int = 8 * MIB
    max_response_bytes: int = 8 * MIB
    max_children: int = 50
    rest_connect_timeout_s: float = 1.0
    rest_read_timeout_s: float = 3.0
    rest_max_response_bytes: int = 4 * MIB
    rest_max_idle_connections: int = 128
    defaults_file: str | None = None
    jar_uri_allowlist: tuple[str, ...] = ("https://",)
    jar_max_bytes: int = 256 * MIB
    jar_timeout_s: float = 5.0
    auth_token: str | None = None
    events_enabled: bool = False
    progress_interval_s: float = 5.0
    reconcile_interval_s: float = 60.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        allowlist = tuple(p.strip() for p in env.get("FLINK_SYNC_JAR_URI_ALLOWLIST", "https://").split(",") if p.strip())
        template = env.get("FLINK_SYNC_REST_URL_TEMPLATE", cls.rest_url_template)
        try:
            template.format(name="n", namespace="ns")
        except (KeyError, IndexError, ValueError):
            raise SystemExit("FLINK_SYNC_REST_URL_TEMPLATE: only {name} and {namespace} may be used") from None
        token_file = env.get("FLINK_SYNC_AUTH_TOKEN_FILE")
        token = env.get("FLINK_SYNC_AUTH_TOKEN") or (Path(token_file).read_text().strip() if token_file else None)
        return cls(
            rest_url_template=template,
            max_request_bytes=_int(env, "FLINK_SYNC_MAX_REQUEST_BYTES", 8 * MIB),
            max_response_bytes=_int(env, "FLINK_SYNC_MAX_RESPONSE_BYTES", 8 * MIB),
            max_children=_int(env, "FLINK_SYNC_MAX_CHILDREN", 50),
            rest_connect_timeout_s=_float(env, "FLINK_SYNC_REST_CONNECT_TIMEOUT", 1.0),
            rest_read_timeout_s=_float(env, "FLINK_SYNC_REST_READ_TIMEOUT", 3.0),
            rest_max_response_bytes=_int(env, "FLINK_SYNC_REST_MAX_RESPONSE_BYTES", 4 * MIB),
            rest_max_idle_connections=_int(env, "FLINK_SYNC_REST_MAX_IDLE_CONNECTIONS", 128),
            defaults_file=env.get("FLINK_SYNC_DEFAULTS_FILE") or None,
            jar_uri_allowlist=allowlist,
            jar_max_bytes=_int(env, "FLINK_SYNC_JAR_MAX_BYTES", 256 * MIB),
            jar_timeout_s=_float(env, "FLINK_SYNC_JAR_TIMEOUT", 5.0),
            auth_token=token or None,
            events_enabled=env.get("FLINK_SYNC_EVENTS", "false").lower() == "true",
            progress_interval_s=_float(env, "FLINK_SYNC_PROGRESS_INTERVAL", 5.0),
            reconcile_interval_s=_float(env, "FLINK_SYNC_RECONCILE_INTERVAL", 60.0),
        )

    def rest_url(self, name: str, namespace: str) -> str:
        return self.rest_url_template.format(name=name, namespace=namespace).rstrip("/")


def _pod_namespace(env: Mapping[str, str]) -> str:
    """The namespace the server runs in: FLINK_SYNC_WEBHOOK_NAMESPACE, the pod's ServiceAccount namespace file,
    or flink-sync (the install's namespace)."""
    if env.get("FLINK_SYNC_WEBHOOK_NAMESPACE"):
        return env["FLINK_SYNC_WEBHOOK_NAMESPACE"]
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE_FILE).read_text().strip() or "flink-sync"
    except OSError:
        return "flink-sync"


SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class WebhookSettings:
    """The admission webhook's certificate (`flink-sync admission`, hooks/webhook_tls.py)."""
    namespace: str = "flink-sync"
    secret_name: str = "flink-sync-webhook-tls"
    configuration_name: str = "flink-sync"
    service_name: str = "flink-sync-hooks"
    extra_sans: tuple[str, ...] = ()
    cert_days: int = 365
    renew_days: int = 30
    check_interval_s: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        settings = cls(
            namespace=_pod_namespace(env),
            secret_name=env.get("FLINK_SYNC_WEBHOOK_SECRET", cls.secret_name),
            configuration_name=env.get("FLINK_SYNC_WEBHOOK_CONFIGURATION", cls.configuration_name),
            service_name=env.get("FLINK_SYNC_WEBHOOK_SERVICE", cls.service_name),
            extra_sans=tuple(n.strip() for n in env.get("FLINK_SYNC_WEBHOOK_EXTRA_SANS", "").split(",") if n.strip()),
            cert_days=_int(env, "FLINK_SYNC_WEBHOOK_CERT_DAYS", cls.cert_days),
            renew_days=_int(env, "FLINK_SYNC_WEBHOOK_RENEW_DAYS", cls.renew_days),
            check_interval_s=_float(env, "FLINK_SYNC_WEBHOOK_CHECK_INTERVAL", cls.check_interval_s),
        )
        if not 0 < settings.renew_days < settings.cert_days:
            raise SystemExit("FLINK_SYNC_WEBHOOK_RENEW_DAYS: must be above 0 and below FLINK_SYNC_WEBHOOK_CERT_DAYS")
        if settings.check_interval_s <= 0:
            raise SystemExit("FLINK_SYNC_WEBHOOK_CHECK_INTERVAL: must be above 0")
        return settings


class OperatorDefaults:
    """The operator default configuration: built-in defaults overlaid by a mounted YAML file (flat or nested
    keys, `kubernetes.operator.default-configuration.{namespace,flink-version}.*` included). The file is
    re-read when its modification time changes, so a ConfigMap update applies without a restart."""

    def __init__(self, path: str | None):
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._value: dict[str, str] = dict(BUILTIN_OPERATOR_DEFAULTS)

    def current(self) -> dict[str, str]:
        if self._path is None:
            return self._value
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime, stat.st_size)
        except OSError:
            return self._value
        if stamp == self._stamp:
            return self._value
        with self._lock:
            if stamp != self._stamp:
                try:
                    loaded = yaml.safe_load(self._path.read_text()) or {}
                    if not isinstance(loaded, dict):
                        raise ValueError("the file must hold a mapping of Flink config keys")
                    self._value = {**BUILTIN_OPERATOR_DEFAULTS, **flinkconf.flatten(loaded)}
                    log.info("loaded operator defaults from %s (%d keys)", self._path, len(self._value))
                except (OSError, ValueError, yaml.YAMLError) as exc:
                    # Keep the last good defaults; a broken file must not take the hooks down.
                    log.error("ignoring unreadable defaults file %s: %s", self._path, exc)
                self._stamp = stamp
        return self._value
