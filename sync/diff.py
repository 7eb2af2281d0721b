"""Spec change classification (Apache's DiffType and its spec diff): IGNORE < SCALE < UPGRADE < SAVEPOINT_REDEPLOY."""
from __future__ import annotations

from enum import IntEnum
from typing import Any

from . import flinkconf


class DiffType(IntEnum):
    IGNORE = 0
    SCALE = 1
    UPGRADE = 2
    SAVEPOINT_REDEPLOY = 3


_JOB_IGNORED = {"savepointTriggerNonce", "checkpointTriggerNonce", "initialSavepointPath", "upgradeMode",
                "allowNonRestoredState", "autoscalerResetNonce"}
_CONFIG_IGNORED_PREFIXES = ("job.autoscaler", "parallelism.default", "kubernetes.operator")


def _config_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, DiffType]]:
    old_flat, new_flat = flinkconf.flatten(old), flinkconf.flatten(new)
    changes = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if old_flat.get(key) == new_flat.get(key) or key.startswith(_CONFIG_IGNORED_PREFIXES):
            continue
        kind = DiffType.UPGRADE  # pipeline.jobvertex-parallelism-overrides is UPGRADE in standalone too
        changes.append((f"flinkConfiguration.{key}", kind))
    return changes


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, DiffType]]:
    """Every changed field of `new` against the last reconciled `old`, with its type."""
    changes: list[tuple[str, DiffType]] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if key == "flinkConfiguration":
            changes += _config_diff(before, after)
        elif key == "restartNonce":
            changes += _restart_nonce_diff(before, after)
        elif key == "job":
            changes += _job_field_diff(before, after)
        elif key == "taskManager":
            changes += _task_manager_diff(before, after)
        elif before != after:
            changes.append((key, DiffType.UPGRADE))
    return changes


def _restart_nonce_diff(before: Any, after: Any) -> list[tuple[str, DiffType]]:
    """A changed or added `restartNonce` is an UPGRADE; removing it is not a change."""
    return [("restartNonce", DiffType.UPGRADE)] if after is not None and after != before else []


def _job_field_diff(before: Any, after: Any) -> list[tuple[str, DiffType]]:
    """`job` field by field when both specs have one; adding or removing it is an UPGRADE."""
    if before is not None and after is not None:
        return _job_diff(before or {}, after or {})
    return [("job", DiffType.UPGRADE)] if before != after else []


def _task_manager_diff(before: Any, after: Any) -> list[tuple[str, DiffType]]:
    """`taskManager.replicas` is a SCALE; any other `taskManager` field an UPGRADE."""
    before, after = before or {}, after or {}
    return [(f"taskManager.{sub}", DiffType.SCALE if sub == "replicas" else DiffType.UPGRADE)
            for sub in sorted(set(before) | set(after)) if before.get(sub) != after.get(sub)]


def _job_diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, DiffType]]:
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after or key in _JOB_IGNORED:
            continue
        if key == "parallelism":
            changes.append(("job.parallelism", DiffType.SCALE))
        elif key == "savepointRedeployNonce":
            if after is not None:
                changes.append(("job.savepointRedeployNonce", DiffType.SAVEPOINT_REDEPLOY))
        elif key == "args" and not before and not after:
            continue
        else:
            changes.append((f"job.{key}", DiffType.UPGRADE))
    return changes


def classify(old: dict[str, Any], new: dict[str, Any]) -> tuple[DiffType, list[str]]:
    changes = diff_specs(old, new)
    kind = max((kind for _, kind in changes), default=DiffType.IGNORE)
    return kind, [name for name, _ in changes]
