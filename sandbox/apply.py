"""Metacontroller's "dynamic apply" three-way merge (metacontroller.md §3.2, `pkg/dynamic/apply/apply.go`).

`merge(observed, last_applied, desired)`:
* object fields in last-applied but absent from desired are removed; desired fields are set; fields nobody
  listed are kept (server defaults, other writers);
* lists whose items (observed, last-applied and desired) are all objects sharing one of the conventional keys
  `containerPort, port, mountPath, name, uid, ip, path` (first that fits) are merged as maps on that key:
  existing items keep their order, new desired items are appended, items in last-applied but not desired are
  removed; any other list is replaced by the desired one;
* scalars: desired wins.
Then system metadata and the whole `.status` are restored from the observed object.
"""
from __future__ import annotations

import copy
import json
from typing import Any

LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"
LIST_MAP_KEYS = ("containerPort", "port", "mountPath", "name", "uid", "ip", "path")
RESTORED_METADATA = ("selfLink", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "managedFields")


def last_applied_json(desired: dict[str, Any]) -> str:
    """What goes into the annotation: the desired object as Go's encoding/json writes it (sorted, compact)."""
    return json.dumps(desired, sort_keys=True, separators=(",", ":"))


def get_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _list_map_key(*lists: Any) -> str | None:
    items = [i for lst in lists if isinstance(lst, list) for i in lst]
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in LIST_MAP_KEYS:
        if all(key in i for i in items):
            return key
    return None


def _merge_value(observed: Any, last: Any, desired: Any) -> Any:
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return copy.deepcopy(desired)
        return _merge_object(observed, last if isinstance(last, dict) else {}, desired)
    if isinstance(desired, list):
        key = _list_map_key(observed, last, desired)
        if key is None or not isinstance(observed, list):
            return copy.deepcopy(desired)
        return _merge_list_map(observed, last if isinstance(last, list) else [], desired, key)
    return copy.deepcopy(desired)


def _merge_object(observed: dict[str, Any], last: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(observed)
    for k in last:
        if k not in desired:
            out.pop(k, None)
    for k, dv in desired.items():
        out[k] = _merge_value(observed.get(k), last.get(k), dv)
    return out


def _merge_list_map(observed: list[Any], last: list[Any], desired: list[Any], key: str) -> list[Any]:
    last_by = {i[key]: i for i in last}
    desired_by = {i[key]: i for i in desired}
    out = []
    seen = set()
    for item in observed:
        k = item[key]
        if k in desired_by:
            out.append(_merge_object(item, last_by.get(k, {}), desired_by[k]))
            seen.add(k)
        elif k in last_by:
            continue  # we applied it before and no longer want it
        else:
            out.append(copy.deepcopy(item))
    for item in desired:
        if item[key] not in seen:
            out.append(copy.deepcopy(item))
            seen.add(item[key])
    return out


def merge(observed: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The object an InPlace update would PUT (the last-applied annotation rewritten to `desired`)."""
    last = get_last_applied(observed)
    desired = strip_last_applied(desired)
    annotated = copy.deepcopy(desired)
    annotated.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = last_applied_json(desired)
    merged = _merge_object(observed, last, annotated)
    meta = merged.setdefault("metadata", {})
    ometa = observed.get("metadata") or {}
    for f in RESTORED_METADATA:
        if f in ometa:
            meta[f] = copy.deepcopy(ometa[f])
        else:
            meta.pop(f, None)
    if "status" in observed:
        merged["status"] = copy.deepcopy(observed["status"])
    else:
        merged.pop("status", None)
    return merged


def strip_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
        if not annotations:
            del obj["metadata"]["annotations"]
    return obj


def for_create(desired: dict[str, Any]) -> dict[str, Any]:
    """The object a create POSTs (before the ownerReference): desired plus the last-applied annotation."""
    desired = strip_last_applied(desired)
    out = copy.deepcopy(desired)
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = last_applied_json(desired)
    return out
