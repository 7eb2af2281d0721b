"""Reading Metacontroller's `children` map (v1 keys `name`, v2 keys `namespace/name`)."""
from __future__ import annotations

from typing import Any


def by_kind(children: dict[str, Any] | None, kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind keyed by name, whatever the group key version or object key format."""
    result: dict[str, dict[str, Any]] = {}
    for group_key, objects in (children or {}).items():
        if group_key.split(".", 1)[0] != kind or not isinstance(objects, dict):
            continue
        for key, obj in objects.items():
            if not isinstance(obj, dict):
                continue
            name = (obj.get("metadata") or {}).get("name") or key.rsplit("/", 1)[-1]
            result[name] = obj
    return result


def deployment(children: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return by_kind(children, "Deployment").get(name)


def is_available(obj: dict[str, Any] | None) -> bool:
    status = (obj or {}).get("status") or {}
    return int(status.get("availableReplicas") or 0) > 0


def replica_failure(obj: dict[str, Any] | None) -> str | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return condition.get("message") or condition.get("reason") or "ReplicaFailure"
    return None
