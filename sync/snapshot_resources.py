"""flink-sync's own savepoints as FlinkStateSnapshot resources (`kubernetes.operator.snapshot.resource.enabled`,
default true, as in the Apache operator since 1.10).

The job state machines (sync/pending.py) take manual, periodic, upgrade and deletion savepoints as they always
did and record each completed one in `status.jobStatus.savepointInfo.savepointHistory`. This module turns that
history into children of the FlinkDeployment or FlinkSessionJob:

* **One child per history entry**, named as Apache names them (`<job>-savepoint-<trigger type>-<ms>`, the
  entry's time) and labelled as Apache labels them (`snapshot.type`, `snapshot.trigger-type`, `snapshot.state`,
  `job-reference.kind`, `job-reference.name`), so the same `kubectl get flinksnp -l ...` works.
* **Never triggered twice.** The savepoint is already taken when its child is created, so the child records it
  with `alreadyExists: true` and its `path` (Apache records its upgrade savepoints the same way): the
  FlinkStateSnapshot controller marks it COMPLETED and triggers nothing.
* **Path in status first.** A child is returned only for an entry the *incoming* status already holds. An entry
  recorded in this sync becomes a child on the next one, so a lost status write never leaves a child behind
  whose savepoint the status forgot (its deletion would dispose of the data, then the still-recorded trigger
  would bring the child back pointing at nothing).
* **Retention is leaving out.** Apache's history rules (`savepoint.history.max.count`, `.max.age`, their
  `.threshold` caps, `savepoint.cleanup.enabled`) pick old PERIODIC and UPGRADE entries, never MANUAL ones, and
  always keep the newest. A picked entry leaves the history and, in the same answer, the children: Metacontroller
  deletes the resource and its finalize hook disposes of the savepoint when `disposeOnDelete`
  (`kubernetes.operator.savepoint.dispose-on-delete`, default false, as in Apache). The rules only ever pick more
  entries as time passes and entries are added, so a lost status write never brings a picked one back.
* **A resource a user deletes** is observed with its deletionTimestamp: its entry leaves the history, so it is
  not created again.

A `checkpointTriggerNonce` (Flink 1.17+) is done Apache's way instead: the job's sync records when it was asked
for (`status.flinkSync.checkpointSnapshotAt`), the next sync creates a `checkpoint: {}` resource named
`<job>-checkpoint-manual-<ms>`, and the FlinkStateSnapshot controller takes the checkpoint. Observed checkpoint
resources are kept (MANUAL ones are never deleted by the limits).

With the key false nothing is created; snapshot children that exist (made while the key was true) are kept as
they are, never deleted, and the history is today's (`sync/snapshots.py` disposes of old entries itself).
Everything here is read from the status and the observed children of the request: nothing is kept in the process.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import flinkconf, observed, versions
from .durations import DurationError, parse_duration
from .model import SyncResult

OP = "kubernetes.operator."
ENABLED_KEY = OP + "snapshot.resource.enabled"
API_VERSION = "flink.apache.org/v1beta1"
KIND = "FlinkStateSnapshot"
#: Apache's label keys (CrdConstants).
LABEL_TYPE = "snapshot.type"
LABEL_TRIGGER_TYPE = "snapshot.trigger-type"
LABEL_STATE = "snapshot.state"
LABEL_JOB_KIND = "job-reference.kind"
LABEL_JOB_NAME = "job-reference.name"
#: Trigger types the history rules may delete; MANUAL snapshots stay until a user deletes them (Apache's tests).
CLEANED_TRIGGER_TYPES = ("PERIODIC", "UPGRADE")
MAX_NAME = 253
#: The first Flink with `POST /jobs/{id}/checkpoints` (FLINK-27101); Apache makes checkpoint resources only there.
CHECKPOINT_TRIGGER_SINCE = "v1_17"


@dataclass(frozen=True)
class JobRef:
    """The FlinkDeployment or FlinkSessionJob the snapshots belong to."""
    kind: str
    name: str
    namespace: str


def enabled(config: dict[str, str]) -> bool:
    return flinkconf.is_true(config, ENABLED_KEY, True)


# ---------------------------------------------------------------------------------------------- history entries
def _timestamp(entry: Any) -> int | None:
    stamp = entry.get("timeStamp") if isinstance(entry, dict) else None
    if isinstance(stamp, bool) or not isinstance(stamp, (int, str)):
        return None
    try:
        return int(stamp)
    except ValueError:
        return None


def _usable(entry: Any) -> bool:
    """An entry a resource can be made from: a location and a time (the status is anyone's to edit)."""
    return isinstance(entry, dict) and isinstance(entry.get("location"), str) and bool(entry["location"]) \
        and _timestamp(entry) is not None


def _trigger_type(entry: dict[str, Any]) -> str:
    value = entry.get("triggerType")
    return value if value in ("MANUAL", "PERIODIC", "UPGRADE") else "MANUAL"


def snapshot_name(job_name: str, trigger_type: str, timestamp: int, snapshot_type: str = "savepoint") -> str:
    """Apache's name, `<job>-<savepoint|checkpoint>-<trigger type>-<ms>`; stable across syncs (the time is the
    recorded one)."""
    name = f"{job_name}-{snapshot_type}-{trigger_type.lower()}-{timestamp}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{job_name[:MAX_NAME - 50]}-{snapshot_type}-{trigger_type.lower()}-{digest}-{timestamp}"[:MAX_NAME]


def checkpoint_as_resource(config: dict[str, str], flink_version: str | None) -> bool:
    """Whether a checkpointTriggerNonce becomes a checkpoint resource (the snapshot controller takes it), as in
    Apache: snapshot resources on, and a Flink with the checkpoint trigger."""
    return enabled(config) and versions.is_known(flink_version) and \
        versions.at_least(str(flink_version), CHECKPOINT_TRIGGER_SINCE)


# ---------------------------------------------------------------------------------------------- retention
def _int_opt(config: dict[str, str], key: str) -> int | None:
    try:
        return int(str(config.get(OP + key)).strip()) if config.get(OP + key) not in (None, "") else None
    except ValueError:
        return None


def _duration_opt(config: dict[str, str], key: str) -> int | None:
    value = config.get(OP + key)
    if value in (None, ""):
        return None
    try:
        return parse_duration(str(value))
    except DurationError:
        return None


def history_limits(config: dict[str, str]) -> tuple[int, int]:
    """(max count, max age ms) of savepoint resources: Apache's `max(1, min(max.count, threshold))` and
    `min(max.age, threshold)`, defaults 10 and 24 h."""
    count = _int_opt(config, "savepoint.history.max.count")
    count = 10 if count is None else count
    count_cap = _int_opt(config, "savepoint.history.max.count.threshold")
    if count_cap is not None:
        count = min(count, count_cap)
    age = _duration_opt(config, "savepoint.history.max.age")
    age = 24 * 3_600_000 if age is None else age
    age_cap = _duration_opt(config, "savepoint.history.max.age.threshold")
    if age_cap is not None:
        age = min(age, age_cap)
    return max(1, count), age


def expired(history: list[Any], config: dict[str, str], now_ms: int) -> list[Any]:
    """The entries Apache's cleanup picks (SnapshotObserver.cleanupSavepointHistory): PERIODIC and UPGRADE
    entries, oldest first, while more than max count are left or older than max age; the newest always stays."""
    if not flinkconf.is_true(config, OP + "savepoint.cleanup.enabled", True):
        return []
    max_count, max_age = history_limits(config)
    candidates = sorted((e for e in history if _usable(e) and _trigger_type(e) in CLEANED_TRIGGER_TYPES),
                        key=lambda e: _timestamp(e) or 0)
    picked: list[Any] = []
    for entry in candidates[:-1]:
        left = len(candidates) - len(picked)
        if left > max_count or now_ms - (_timestamp(entry) or 0) > max_age:
            picked.append(entry)
    return picked


# ---------------------------------------------------------------------------------------------- the children
def savepoint_resource(job: JobRef, entry: dict[str, Any], config: dict[str, str]) -> dict[str, Any]:
    """The FlinkStateSnapshot recording one completed savepoint of the job (`alreadyExists`: never triggered)."""
    trigger_type = _trigger_type(entry)
    stamp = _timestamp(entry)
    assert stamp is not None  # _usable
    format_type = entry.get("formatType") if entry.get("formatType") in ("CANONICAL", "NATIVE") else "CANONICAL"
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": snapshot_name(job.name, trigger_type, stamp), "namespace": job.namespace,
                     "labels": {LABEL_TYPE: "SAVEPOINT", LABEL_TRIGGER_TYPE: trigger_type,
                                # alreadyExists: the snapshot controller's first pass makes it COMPLETED
                                LABEL_STATE: "COMPLETED", LABEL_JOB_KIND: job.kind, LABEL_JOB_NAME: job.name}},
        "spec": {"jobReference": {"kind": job.kind, "name": job.name},
                 "savepoint": {"path": entry["location"], "formatType": format_type,
                               "disposeOnDelete": flinkconf.is_true(config, OP + "savepoint.dispose-on-delete"),
                               "alreadyExists": True}},
    }


def checkpoint_resource(job: JobRef, asked_at: int) -> dict[str, Any]:
    """The checkpoint a checkpointTriggerNonce asks for: a resource the snapshot controller triggers (Apache's
    way), so its path and state are the resource's. No `snapshot.state` label: its state is not known here."""
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": snapshot_name(job.name, "MANUAL", asked_at, "checkpoint"), "namespace": job.namespace,
                     "labels": {LABEL_TYPE: "CHECKPOINT", LABEL_TRIGGER_TYPE: "MANUAL", LABEL_JOB_KIND: job.kind,
                                LABEL_JOB_NAME: job.name}},
        "spec": {"jobReference": {"kind": job.kind, "name": job.name}, "checkpoint": {}},
    }


def _checkpoint_children(job: JobRef, asked_at: int | None,
                         seen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Manual checkpoint resources: the one the incoming status records (`asked_at`, its checkpointSnapshotAt),
    until it is observed, and every observed one (MANUAL snapshots are never deleted by the limits)."""
    children = [kept_as_is(obj) for obj in seen.values()
                if ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_TYPE) == "CHECKPOINT"]
    if isinstance(asked_at, int) and not isinstance(asked_at, bool):
        child = checkpoint_resource(job, asked_at)
        if child["metadata"]["name"] not in seen:
            children.append(child)
    return children


def kept_as_is(obj: dict[str, Any]) -> dict[str, Any]:
    """An observed snapshot child answered back unchanged (only what a child's desired state holds)."""
    meta = obj.get("metadata") or {}
    keep_meta = {key: meta[key] for key in ("name", "namespace", "labels") if meta.get(key)}
    # Metacontroller's own bookkeeping (its last-applied annotation) is not part of what we want applied.
    annotations = {key: value for key, value in (meta.get("annotations") or {}).items()
                   if not str(key).startswith("metacontroller.k8s.io/")}
    if annotations:
        keep_meta["annotations"] = annotations
    return {"apiVersion": obj.get("apiVersion") or API_VERSION, "kind": KIND, "metadata": keep_meta,
            "spec": obj.get("spec") or {}}


def _history(status: dict[str, Any] | None) -> list[Any]:
    info = ((status or {}).get("jobStatus") or {}).get("savepointInfo") or {}
    history = info.get("savepointHistory") if isinstance(info, dict) else None
    return list(history) if isinstance(history, list) else []


def _deleted_by_someone(job: JobRef, history: Iterable[Any], seen: dict[str, dict[str, Any]]) -> list[Any]:
    """History entries whose resource is observed being deleted (a user's `kubectl delete flinksnp`)."""
    gone = []
    for entry in history:
        if not _usable(entry):
            continue
        obj = seen.get(snapshot_name(job.name, _trigger_type(entry), _timestamp(entry) or 0))
        if obj is not None and (obj.get("metadata") or {}).get("deletionTimestamp"):
            gone.append(entry)
    return gone


def snapshot_children(job: JobRef, old_status: dict[str, Any] | None, status: dict[str, Any],
                      observed_children: dict[str, Any] | None, config: dict[str, str] | None,
                      now_ms: int, *, checkpoint_asked_at: int | None) -> tuple[list[dict[str, Any]], bool]:
    """The snapshot children of this answer, and whether an entry waits to become one (the next sync makes it).
    Edits `status`'s history: the expired entries and those a user deleted leave it. `config` None: the job's
    configuration is unknown this sync (an unreadable spec, a session cluster not found), so the observed
    snapshots are kept as they are and nothing is decided."""
    seen = observed.by_kind(observed_children, KIND)
    if config is None or not enabled(config):
        return [kept_as_is(obj) for obj in seen.values()], False
    history = _history(status)
    dropped = expired(history, config, now_ms) + _deleted_by_someone(job, history, seen)
    if dropped:
        kept = [entry for entry in history if all(entry is not gone for gone in dropped)]
        status["jobStatus"]["savepointInfo"]["savepointHistory"] = kept
        history = kept
    durable = {(e.get("location"), _timestamp(e)) for e in _history(old_status) if _usable(e)}
    children: dict[str, dict[str, Any]] = {}
    waiting = False
    for entry in history:
        if not _usable(entry):
            continue
        if (entry["location"], _timestamp(entry)) not in durable:
            waiting = True  # recorded in this sync: its resource comes with the next one
            continue
        child = savepoint_resource(job, entry, config)
        children[child["metadata"]["name"]] = child
    for child in _checkpoint_children(job, checkpoint_asked_at, seen):
        children.setdefault(child["metadata"]["name"], child)
    return list(children.values()), waiting


def attach(result: SyncResult, job: JobRef, old_status: dict[str, Any] | None,
           observed_children: dict[str, Any] | None, config: dict[str, str] | None, now_ms: int,
           progress_s: float, *, checkpoint_asked_at: int | None) -> SyncResult:
    """Add the job's snapshot children to a sync's answer (and its history cleanup to the status).
    `checkpoint_asked_at`: the incoming records' checkpointSnapshotAt (the sync has read them already)."""
    if not isinstance(result.status, dict) or result.finalized is True:
        return result  # a finalized job has no children: its snapshots go with it (docs/snapshots.md)
    snapshots, waiting = snapshot_children(job, old_status, result.status, observed_children, config, now_ms,
                                           checkpoint_asked_at=checkpoint_asked_at)
    result.children = list(result.children) + snapshots
    if waiting and (result.resync_after_seconds is None or result.resync_after_seconds > progress_s):
        result.resync_after_seconds = progress_s
    return result
