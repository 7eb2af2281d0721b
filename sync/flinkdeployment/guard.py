"""The last check of every FlinkDeployment sync: a response never deletes children that no record explains."""
from __future__ import annotations

from typing import Any

from .. import observed
from ..intake import StatusUnusable
from ..records import FlinkSyncRecord
from .cluster import observed_record, removed_on_purpose

MAX_NAMED = 6


class UnaccountedChildren(StatusUnusable):
    """Observed children that a response would delete although no record of flink-sync explains why."""


def refuse_unaccounted_removal(status: dict[str, Any], records: FlinkSyncRecord, observed_children: dict[str, Any],
                               answered: list[dict[str, Any]], name: str) -> None:
    """A response never leaves out an observed child (Metacontroller would delete it) unless a record of
    flink-sync in the incoming status decides the children. Those records are the cluster record (children are
    rendered from it), the next deployment, and a deliberate removal (`removed`) that covers the observed
    JobManager. Anything else, such as a status without its records next to a cluster whose JobManager carries
    no record, is refused as a 422: nothing is applied."""
    if records.cluster is not None or records.next is not None:
        return
    dropped = _dropped(observed_children, answered)
    if not dropped or _left_by_a_removal(status, records, observed_children, name):
        return
    raise UnaccountedChildren(
        f"status.flinkSync: no record of the cluster whose children are observed ({', '.join(dropped[:MAX_NAMED])}"
        + (", ..." if len(dropped) > MAX_NAMED else "") + "); flink-sync will not delete children it cannot account "
        "for. If another operator created them, suspend the job there and delete them; flink-sync then deploys "
        "from the spec and restores status.jobStatus.upgradeSavepointPath.")


def _dropped(observed_children: dict[str, Any], answered: list[dict[str, Any]]) -> list[str]:
    """The observed children of the cluster (not already being deleted) the answer leaves out. FlinkStateSnapshot
    children are not the cluster's: the savepoint history accounts for them (sync/snapshot_resources.py)."""
    kept = {(child.get("kind"), (child.get("metadata") or {}).get("name")) for child in answered}
    return sorted(f"{kind} {obj_name}" for kind, obj_name, obj in observed.all_objects(observed_children)
                  if (kind, obj_name) not in kept and kind != "FlinkStateSnapshot"
                  and not (obj.get("metadata") or {}).get("deletionTimestamp"))


def _left_by_a_removal(status: dict[str, Any], records: FlinkSyncRecord, observed_children: dict[str, Any],
                       name: str) -> bool:
    """What a recorded removal left behind, still in Metacontroller's cache or being deleted."""
    jm = observed.deployment(observed_children, name)
    if jm is None and records.removed is not None:
        return True  # the removed JobManager is gone; the rest of its cluster follows
    return removed_on_purpose(status, records, observed_record(jm) if jm is not None else None)
