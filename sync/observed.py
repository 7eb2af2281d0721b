"""Reading Metacontroller's `children` map (v1 keys `name`, v2 keys `namespace/name`)."""
from __future__ import annotations

from typing import Any


def by_kind(children: dict[str, Any] | None, kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind keyed by name, whatever the group key version or object key format."""
    # only the groups of that kind are read (a sync asks this several times; the other groups are most of the map)
    return {name: obj for _kind, name, obj in all_objects(children, kind)}


def all_objects(children: dict[str, Any] | None, only_kind: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, object) of every observed object (of `only_kind`, when given); entries that are not objects
    are passed over."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for group_key, objects in (children or {}).items():
        if not isinstance(objects, dict):
            continue
        kind = str(group_key).split(".", 1)[0]
        if only_kind is not None and kind != only_kind:
            continue
        for key, obj in objects.items():
            if not isinstance(obj, dict):
                continue
            meta = obj.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            if not isinstance(name, str):
                name = str(key).rsplit("/", 1)[-1]
            found.append((kind, name, obj))
    return found


def _status(obj: dict[str, Any] | None) -> dict[str, Any]:
    status = (obj or {}).get("status")
    return status if isinstance(status, dict) else {}


def deployment(children: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return by_kind(children, "Deployment").get(name)


def is_available(obj: dict[str, Any] | None) -> bool:
    available = _status(obj).get("availableReplicas")
    return isinstance(available, int) and available > 0


def replica_failure(obj: dict[str, Any] | None) -> str | None:
    conditions = _status(obj).get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == "ReplicaFailure" and \
                condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "ReplicaFailure")
    return None
