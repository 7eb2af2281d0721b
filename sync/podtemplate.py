"""Layered pod templates, merged as the Apache operator does (FlinkUtils.mergePodTemplates).

Base `spec.podTemplate`, then `jobManager.podTemplate` / `taskManager.podTemplate`: objects merge
key by key, scalars are replaced, arrays merge by position — or by `name` when
`kubernetes.operator.pod-template.merge-arrays-by-name` is true and every element has a name.
"""
from __future__ import annotations

import copy
from typing import Any

MAIN_CONTAINER = "flink-main-container"


def json_copy(value: Any) -> Any:
    """Deep copy of JSON data (pod templates, statuses); much faster than copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    if kind in (str, int, float, bool, type(None)):
        return value
    return copy.deepcopy(value)


def merge(base: Any, override: Any, by_name: bool = False) -> Any:
    """Deep merge `override` into `base` (neither is modified)."""
    if override is None:
        return json_copy(base)
    if base is None:
        return json_copy(override)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = json_copy(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value, by_name) if key in base else json_copy(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if by_name and _all_named(base) and _all_named(override):
            return _merge_by_name(base, override, by_name)
        merged_list = [merge(b, o, by_name) for b, o in zip(base, override, strict=False)]  # the longer one's tail is added below
        merged_list.extend(json_copy(base[len(override):]))
        merged_list.extend(json_copy(override[len(base):]))
        return merged_list
    return json_copy(override)


def _all_named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _merge_by_name(base: list[dict[str, Any]], override: list[dict[str, Any]], by_name: bool) -> list[dict[str, Any]]:
    overrides = {item["name"]: item for item in override}
    merged = [merge(item, overrides[item["name"]], by_name) if item["name"] in overrides else json_copy(item)
              for item in base]
    base_names = {item["name"] for item in base}
    merged.extend(json_copy(item) for item in override if item["name"] not in base_names)
    return merged


def component_template(base: dict[str, Any] | None, component: dict[str, Any] | None,
                       by_name: bool) -> dict[str, Any]:
    """The merged template of one component (JM or TM); `{}` when neither is given."""
    merged: dict[str, Any] = merge(base or {}, component, by_name) if component else json_copy(base or {})
    return merged


def upsert_by_name(items: list[dict[str, Any]] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the element with the same `name` (at the first one's place, dropping repeats), else append
    (used for the operator's own env/ports/volumes)."""
    name = new.get("name")
    result: list[dict[str, Any]] = []
    placed = False
    for item in items or ():
        if item.get("name") != name:
            result.append(item)
        elif not placed:
            result.append(new)
            placed = True
    if not placed:
        result.append(new)
    return result
