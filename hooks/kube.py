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


class KubeSideEffects:
    """Posts Events and deletes HA ConfigMaps with the `kubernetes` client (in-cluster or kubeconfig)."""

    def __init__(self, enabled: bool):
        self._enabled = enabled
        self._api: Any = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kube") if enabled else None

    def _core(self):  # lazily, so the server starts without a cluster
        if self._api is None:
            from kubernetes import client, config
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.CoreV1Api()
        return self._api

    def emit(self, parent: dict[str, Any], events: list[Event]) -> None:
        if not self._enabled or not events or self._pool is None:
            return
        self._pool.submit(self._post_events, parent, list(events))

    def delete_ha_data(self, name: str, namespace: str) -> None:
        if not self._enabled or self._pool is None:
            return
        self._pool.submit(self._delete_ha, name, namespace)

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
                self._core().create_namespaced_event(meta.get("namespace"), body)
            except Exception as exc:  # noqa: BLE001 - events are best effort (a 403 is fine)
                log.info("event %s not recorded: %s", event.reason, exc)

    def _delete_ha(self, name: str, namespace: str) -> None:
        try:
            maps = self._core().list_namespaced_config_map(namespace, label_selector=f"app={name},type=flink-native-kubernetes")
            for item in maps.items:
                if (item.metadata.labels or {}).get("component") == "autoscaler":
                    continue
                self._core().delete_namespaced_config_map(item.metadata.name, namespace)
        except Exception as exc:  # noqa: BLE001
            log.warning("HA ConfigMaps of %s/%s not deleted: %s", namespace, name, exc)
