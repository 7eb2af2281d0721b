"""Best-effort Kubernetes API calls that are not children: Events on the CR and Flink's HA ConfigMaps.
They run on a small background pool, never on the path to a hook's response."""
from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sync.model import Event

log = logging.getLogger("flink_sync.kube")

# (connect, read) seconds of every Kubernetes API call: inside Metacontroller's 10 s hook timeout
KUBE_TIMEOUT = (2.0, 5.0)
# Data keys of the HA cluster ConfigMap that hold a job's graph (Flink 1.x) or execution plan (Flink 2.x)
JOB_GRAPH_PREFIXES = ("jobGraph-", "executionPlan-")


def kubernetes_api_client() -> Any:
    """A client of the Kubernetes API with the pod's ServiceAccount in a cluster, else the local kubeconfig. The
    `kubernetes` package is imported here, at the first call, so the hook server starts without a cluster."""
    from kubernetes import client, config
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class KubeSideEffects:
    """Posts Events and deletes HA ConfigMaps with the `kubernetes` client (in-cluster or kubeconfig)."""

    def __init__(self, enabled: bool):
        self._enabled = enabled
        self._api: Any = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kube") if enabled else None

    def _core(self):  # lazily, so the server starts without a cluster
        if self._api is None:
            from kubernetes import client
            self._api = client.CoreV1Api(kubernetes_api_client())
        return self._api

    def emit(self, parent: dict[str, Any], events: list[Event]) -> None:
        if not self._enabled or not events or self._pool is None:
            return
        self._pool.submit(self._post_events, parent, list(events))

    def delete_ha_data(self, name: str, namespace: str) -> None:
        if not self._enabled or self._pool is None:
            return
        self._pool.submit(self._delete_ha, name, namespace)

    def remove_ha_job_graphs(self, name: str, namespace: str) -> None:
        """Remove the stored job graphs from `<name>-cluster-config-map` (checkpoint pointers stay), so the next
        JobManager runs the job as the new spec says. Synchronous: an error raises (the hook answers 500)."""
        if not self._enabled:
            return
        from kubernetes.client.exceptions import ApiException
        try:
            cm = self._core().read_namespaced_config_map(f"{name}-cluster-config-map", namespace,
                                                         _request_timeout=KUBE_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return  # no HA data (yet): nothing to remove
            raise
        keys = [k for k in (cm.data or {}) if k.startswith(JOB_GRAPH_PREFIXES)]
        if keys:
            self._core().patch_namespaced_config_map(f"{name}-cluster-config-map", namespace,
                                                     {"data": dict.fromkeys(keys)}, _request_timeout=KUBE_TIMEOUT)
            log.info("removed %s from the HA ConfigMap of %s/%s", keys, namespace, name)

    def _post_events(self, parent: dict[str, Any], events: list[Event]) -> None:
        from kubernetes import client
        meta = parent.get("metadata") or {}
        now = datetime.now(UTC)
        for event in events:
            digest = int(hashlib.sha256(f"{event.reason}{event.message}{event.type}{parent.get('kind')}"
                                        f"{meta.get('name')}{meta.get('uid')}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
            body = client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=f"{event.component}.{digest}", namespace=meta.get("namespace")),
                involved_object=client.V1ObjectReference(api_version=parent.get("apiVersion"), kind=parent.get("kind"),
                                                         name=meta.get("name"), namespace=meta.get("namespace"),
                                                         uid=meta.get("uid")),
                reason=event.reason, message=event.message[:1024], type=event.type,
                source=client.V1EventSource(component=event.component), first_timestamp=now, last_timestamp=now,
                count=1)
            try:
                self._core().create_namespaced_event(meta.get("namespace"), body, _request_timeout=KUBE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - events are best effort (a 403 is fine)
                log.info("event %s not recorded: %s", event.reason, exc)

    def _delete_ha(self, name: str, namespace: str) -> None:
        try:
            maps = self._core().list_namespaced_config_map(namespace, label_selector=f"app={name},type=flink-native-kubernetes",
                                                           _request_timeout=KUBE_TIMEOUT)
            for item in maps.items:
                if (item.metadata.labels or {}).get("component") == "autoscaler":
                    continue
                self._core().delete_namespaced_config_map(item.metadata.name, namespace, _request_timeout=KUBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            log.warning("HA ConfigMaps of %s/%s not deleted: %s", namespace, name, exc)
