"""How a decision reaches Flink: `pipeline.jobvertex-parallelism-overrides` in the configuration the cluster is
rendered from, or, in place, the adaptive scheduler's resource requirements (`PUT /jobs/{id}/resource-requirements`).

In-place scaling needs Flink 1.18 or newer with `jobmanager.scheduler: adaptive` and
`kubernetes.operator.job.upgrade.inplace-scaling.enabled` (default true), as in Apache's `NativeFlinkService.scale`.
Otherwise the overrides are a spec change carried out by the job's upgrade mode.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .. import versions
from .records import overrides_text, parse_overrides

OVERRIDES_KEY = "pipeline.jobvertex-parallelism-overrides"
INPLACE_KEY = "kubernetes.operator.job.upgrade.inplace-scaling.enabled"


def merged_overrides(user_text: str | None, stored: Mapping[str, int], excluded: tuple[str, ...] = ()) -> str:
    """The user's own overrides with the autoscaler's on top; for an excluded vertex the user's value wins
    (FLINK-33027). Sorted, so an unchanged map is an unchanged string (FLINK-33710)."""
    merged = parse_overrides(user_text)
    for vertex, parallelism in stored.items():
        if vertex in excluded and vertex in merged:
            continue
        merged[vertex] = parallelism
    return overrides_text(merged)


def with_overrides(flink_configuration: Mapping[str, Any] | None, overrides: str) -> dict[str, Any]:
    """The CR's `flinkConfiguration` with the overrides set (a new dict; nested YAML keeps its shape)."""
    config = dict(flink_configuration or {})
    if overrides:
        config[OVERRIDES_KEY] = overrides
    else:
        config.pop(OVERRIDES_KEY, None)
    return config


def in_place_possible(flink_version: str | None, config: Mapping[str, str]) -> bool:
    """Flink 1.18+, the adaptive scheduler, and in-place scaling not switched off."""
    if not flink_version or not versions.is_known(flink_version):
        return False
    if versions.version_key(flink_version) < (1, 18):
        return False
    scheduler = str(config.get("jobmanager.scheduler") or "").strip().lower()
    enabled = str(config.get(INPLACE_KEY) or "true").strip().lower() != "false"
    return scheduler == "adaptive" and enabled


def requirements_body(current: Mapping[str, Any], overrides: Mapping[str, int]) -> dict[str, Any] | None:
    """The PUT body for `/jobs/{id}/resource-requirements`: every vertex Flink listed (it refuses a body that
    leaves one out), `upperBound` = the override and `lowerBound` = min(override, the old lower bound). None when
    nothing changes, or when a vertex with an override is not in Flink's list (then only a redeploy can do it)."""
    body: dict[str, Any] = {}
    changed = False
    for vertex, requirement in current.items():
        bounds = dict((requirement or {}).get("parallelism") or {})
        wanted = overrides.get(vertex)
        if wanted is not None:
            lower = min(wanted, int(bounds.get("lowerBound", 1)))
            changed |= (bounds.get("upperBound"), bounds.get("lowerBound")) != (wanted, lower)
            bounds = {"lowerBound": lower, "upperBound": wanted}
        body[vertex] = {"parallelism": bounds}
    if any(vertex not in current for vertex in overrides):
        return None
    return body if changed else None


def taskmanager_replicas(overrides: Mapping[str, int], slots_per_taskmanager: int) -> int:
    """The TaskManagers the slots need: one slot per subtask of the widest vertex (one slot-sharing group)."""
    widest = max(overrides.values(), default=1)
    return max(1, math.ceil(widest / max(1, slots_per_taskmanager)))
