"""What a sync reads before it decides anything: the recorded status and observed objects, checked for shape.

Metacontroller passes objects it read from the API server. Their schema allows what flink-sync never writes
(`status` is `x-kubernetes-preserve-unknown-fields`), and users, other operators or a restored backup may have
written it. The core reads them only after these checks:

* a status part the core cannot continue from (a non-object `flinkSync`, `reconciliationStatus`,
  `jobStatus`; a field of `flinkSync` of another type than `sync/records.py` gives it; a record without a
  field it cannot be continued from without, such as a cluster record without its spec) is a `StatusUnusable`
  naming the field: the hook answers 422 and Metacontroller applies nothing, so no child is lost;
* what can be rebuilt without losing anything is rebuilt: conditions that are not objects are dropped
  (flink-sync rewrites them every sync); an empty cluster record (`null`, `{}`, `[]`, `0`) is no record,
  and the cluster is then adopted from what is observed, or refused (`sync.deployment`);
* a spec nested deeper than any pod template is a validation error naming the field (`sync.spec`); the hook
  refuses bodies its parser cannot read (past 1,024 levels) and statuses too deep to copy.
"""
from __future__ import annotations

from typing import Any

from .records import FlinkSyncRecord, required_keys, types_of

#: The status fields a sync reads, with the JSON type each must have (null is always allowed: "not set").
#: A field of another type was not written by an operator of these CRDs; the sync answers 422 naming it.
STATUS_FIELDS: dict[str, Any] = {
    "lifecycleState": str, "jobManagerDeploymentStatus": str, "error": str, "observedGeneration": int,
    "clusterInfo": dict, "taskManager": dict, "conditions": list,
    "jobStatus": {"state": str, "jobId": str, "jobName": str, "startTime": str, "updateTime": str,
                  "upgradeSavepointPath": str,
                  "savepointInfo": {"lastSavepoint": dict, "savepointHistory": list, "triggerId": str,
                                    "triggerTimestamp": int, "triggerType": str, "formatType": str,
                                    "lastPeriodicSavepointTimestamp": int}},
    "reconciliationStatus": {"state": str, "lastReconciledSpec": str, "lastStableSpec": str,
                             "reconciliationTimestamp": int},
    "flinkSync": types_of(FlinkSyncRecord),
}
#: The records of `flinkSync` (nested objects) and the fields each must have.
RECORD_REQUIRED = required_keys(FlinkSyncRecord)
#: The records an empty value (`null`, `{}`, `[]`, `0`) means "no record" for.
RECORD_KEYS = tuple(RECORD_REQUIRED)
_JSON_TYPE = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


class StatusUnusable(ValueError):
    """A recorded status the core cannot continue from, naming the field (answered 422: nothing is applied)."""


def too_deep(value: Any, limit: int) -> bool:
    """Whether JSON data nests deeper than `limit` containers (iterative: deep data cannot overflow the stack).
    It visits containers only, so a spec costs a few microseconds."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        children = item.values() if type(item) is dict else item if type(item) is list else ()
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= limit:
                    return True
                push((child, depth + 1))
    return False


def deepest_path(value: Any, limit: int, prefix: str) -> str | None:
    """The dotted path of the first container nested deeper than `limit` below `value`, or None."""
    stack: list[tuple[Any, int, str]] = [(value, 1, prefix)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            pairs: Any = ((f"{path}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            pairs = ((f"{path}[{index}]", child) for index, child in enumerate(item))
        else:
            continue
        if depth > limit:
            return path
        stack.extend((child, depth + 1, where) for where, child in pairs if isinstance(child, (dict, list)))
    return None


def usable_status(status: Any) -> dict[str, Any]:
    """The recorded status as the core may read it: shape-checked, with what is safely rebuildable rebuilt.
    Returns the given dict when nothing needed rebuilding (the steady case costs no copy)."""
    if status is None:
        return {}
    if not isinstance(status, dict):
        raise StatusUnusable("status: must be an object")
    _check_types(status, STATUS_FIELDS, "status")
    internal = status.get("flinkSync") or {}
    for key, required in RECORD_REQUIRED.items():
        if internal.get(key):
            _check_required(internal[key], required, f"status.flinkSync.{key}")
    rebuilt = _rebuild(status, internal)
    return rebuilt if rebuilt is not None else status


def _check_types(data: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    for key, expected in fields.items():
        value = data.get(key)
        if value is None:
            continue
        if where == "status.flinkSync" and key in RECORD_KEYS and not value:
            continue  # an empty record is rebuilt as no record
        kind = dict if isinstance(expected, dict) else expected
        # bool is an int in Python, not in JSON: a flag is never a number and a number never a flag.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or \
                (kind is bool and not isinstance(value, bool)):
            raise StatusUnusable(f"{where}.{key}: must be {_JSON_TYPE[kind]}, not {type(value).__name__}")
        if isinstance(expected, dict):
            _check_types(value, expected, f"{where}.{key}")


def _check_required(record: dict[str, Any], required: tuple[str, ...], where: str) -> None:
    """A record has the fields a sync continues from (a stop or savepoint also its trigger id)."""
    if record.get("op") in ("stop", "savepoint"):
        required = (*required, "triggerId")
    for key in required:
        if record.get(key) is None:
            what = "the recorded spec as a JSON string" if key == "spec" else "set"
            raise StatusUnusable(f"{where}.{key}: must be {what}")


def _usable_condition(condition: Any) -> bool:
    # set_condition matches and sorts conditions by their type: one without a string type cannot be kept.
    return isinstance(condition, dict) and isinstance(condition.get("type"), str)


def _rebuild(status: dict[str, Any], internal: dict[str, Any]) -> dict[str, Any] | None:
    """A copy with empty records and null objects removed and unusable conditions dropped, or None when none of
    that applies (the steady case)."""
    empty_records = [key for key in RECORD_KEYS if key in internal and not internal[key]]
    conditions = status.get("conditions") or []
    bad_conditions = not all(_usable_condition(c) for c in conditions)
    if not empty_records and not bad_conditions and not _has_null_object(status, STATUS_FIELDS):
        return None
    rebuilt = _without_null_objects(status, STATUS_FIELDS)
    if empty_records:
        rebuilt["flinkSync"] = {k: v for k, v in internal.items() if k not in empty_records}
    if bad_conditions:
        rebuilt["conditions"] = [c for c in conditions if _usable_condition(c)]
    return rebuilt


def _has_null_object(data: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether an object field is present as null (`flinkSync: null`): the core would write into it."""
    for key, expected in fields.items():
        if expected is dict or isinstance(expected, dict):
            if key in data and data[key] is None:
                return True
            if isinstance(expected, dict) and isinstance(data.get(key), dict) and _has_null_object(data[key], expected):
                return True
    return False


def _without_null_objects(data: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    copy = {key: value for key, value in data.items()
            if not (value is None and (fields.get(key) is dict or isinstance(fields.get(key), dict)))}
    for key, expected in fields.items():
        if isinstance(expected, dict) and isinstance(copy.get(key), dict):
            copy[key] = _without_null_objects(copy[key], expected)
    return copy
