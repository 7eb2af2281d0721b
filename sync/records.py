"""The records in `status.flinkSync`: the contract between one sync and the next, written once here.

Metacontroller applies children before it writes status, and may lose the status write, so every step that
depends on a value runs only on a sync whose incoming status already holds that value (docs/architecture.md,
"Intent goes into status first"). These records are those values. Each is a frozen dataclass: a field's Python
name is its JSON key in snake case, its annotation its JSON type, and its `meaning` the one sentence that says
what it holds. Everything else is derived from these definitions: `from_json`/`to_json` (the wire format),
the type table `sync/intake.py` checks incoming statuses against (`types_of`, `required_keys`), and the tables
in docs/architecture.md (tests/test_records.py keeps them in step). The core reads and writes
`status.flinkSync` only through these classes.

The wire format: a field that is None is not written, except where a field says `null_written` (a recorded
`null` is part of the format there). A record read from a status is written back as it came, but for what the
sync changed: its key order, its nulls and keys this version does not know (`extra`).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self


def _meaning(text: str, *, required: bool = False, null_written: bool = False) -> Any:
    """A record field: its meaning; `required`: a record without it cannot be continued from; `null_written`:
    None is written as null (it is part of the wire format)."""
    metadata = {"meaning": text, "required": required, "null_written": null_written}
    return field(metadata=metadata) if required else field(default=None, metadata=metadata)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class _Slot:
    """How one field is read and written: its attribute, JSON key, JSON type (or nested record) and meaning."""
    name: str
    key: str
    kind: Any
    meaning: str
    required: bool
    null_written: bool


_SLOTS: dict[str, tuple[_Slot, ...]] = {}


def _slots(cls: type[Record]) -> tuple[_Slot, ...]:
    """The fields of a record class, read once from its definition."""
    found = _SLOTS.get(cls.__qualname__)
    if found is None:
        found = _SLOTS[cls.__qualname__] = _read_slots(cls)
    return found


def _read_slots(cls: type[Record]) -> tuple[_Slot, ...]:
    hints = typing.get_type_hints(cls)
    slots = []
    for f in dataclasses.fields(cls):
        if "meaning" not in f.metadata:
            continue
        kinds = [k for k in typing.get_args(hints[f.name]) or (hints[f.name],) if k is not type(None)]
        assert len(kinds) == 1, f"{cls.__name__}.{f.name}: one JSON type"
        slots.append(_Slot(f.name, _camel(f.name), kinds[0], f.metadata["meaning"], f.metadata["required"],
                           f.metadata["null_written"]))
    return tuple(slots)


def _nested(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Record)


@dataclass(frozen=True, kw_only=True)
class Record:
    """A record of `status.flinkSync`: typed fields and the JSON wire format.

    A record read from a status is written back as it came (its key order, the nulls it held, keys another
    version wrote), with the keys the sync set after it in the order they were set, as a JSON object edited in
    place would be. A record the sync builds is written in field order."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: None: built by the sync. Otherwise the order its keys are written in, and the keys whose null is written.
    key_order: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    kept_nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The record of a status that `sync/intake.py` checked (types and required keys)."""
        values: dict[str, Any] = {}
        for slot in _slots(cls):
            value = data.get(slot.key)
            if _nested(slot.kind):
                value = slot.kind.from_json(value) if value else None
            values[slot.name] = value
        known = {slot.key for slot in _slots(cls)}
        return cls(**values, extra={key: value for key, value in data.items() if key not in known},
                   key_order=tuple(data), kept_nulls=frozenset(key for key, value in data.items() if value is None))

    def to_json(self) -> dict[str, Any]:
        written: dict[str, Any] = {}
        for slot in _slots(type(self)):
            value = getattr(self, slot.name)
            if value is None and not self._null_written(slot):
                continue
            written[slot.key] = value.to_json() if isinstance(value, Record) else value
        written.update(self.extra)
        if self.key_order is None:
            return written
        return {key: written[key] for key in self.key_order if key in written}

    def _null_written(self, slot: _Slot) -> bool:
        """Whether a None field is written as null: as its definition says for a record the sync built,
        otherwise as it was read or set."""
        return self._null_by_definition(slot) if self.key_order is None else slot.key in self.kept_nulls

    def _null_by_definition(self, slot: _Slot) -> bool:
        return slot.null_written

    def replace(self, **changes: Any) -> Self:
        """This record with the given fields changed (None: the field is no longer written, unless its definition
        writes null)."""
        changed = dataclasses.replace(self, **changes)
        if self.key_order is None:
            return changed
        slots = {slot.name: slot for slot in _slots(type(self))}
        keys = [slots[name].key for name in changes]
        nulls = {slots[name].key for name, value in changes.items()
                 if value is None and changed._null_by_definition(slots[name])}
        return dataclasses.replace(changed, key_order=self.key_order + tuple(k for k in keys if k not in self.key_order),
                                   kept_nulls=(self.kept_nulls - set(keys)) | nulls)


@dataclass(frozen=True, kw_only=True)
class DeploymentRecord(Record):
    """A deployment (`cluster`, `next`) or a session job's submission: what children or a submission are made
    from. The job id and restore path are written even when null: "no job" and "from nothing" are recorded."""
    spec: str = _meaning("the spec the children are rendered from, as sorted compact JSON", required=True)
    job_id: str | None = _meaning("the Flink job id the cluster runs (null for a session cluster)",
                                  null_written=True)
    restore_path: str | None = _meaning(
        "the savepoint or checkpoint the job starts from (null: from nothing, or from HA)", null_written=True)
    generation: int | None = _meaning("the resource generation the record was made for")
    seq: int | None = _meaning(
        "the deploy sequence number; also on the JobManager Deployment (flink-sync.io/cluster-record)")
    mark_stable: bool | None = _meaning("the deployment is stable once deployed (a savepoint redeploy)")

    @classmethod
    def submission(cls, spec: str, job_id: str, restore_path: str | None, generation: int) -> DeploymentRecord:
        """A session job's submission, in the key order session jobs have always recorded it."""
        return cls(spec=spec, job_id=job_id, restore_path=restore_path, generation=generation,
                   key_order=("jobId", "restorePath", "generation", "spec"),
                   kept_nulls=frozenset() if restore_path is not None else frozenset({"restorePath"}))

    def spec_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = json.loads(self.spec)
        return spec


def spec_text(spec: Mapping[str, Any]) -> str:
    """A spec as a deployment record holds it: sorted compact JSON, so equal specs are equal strings."""
    return json.dumps(spec, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class PendingRecord(Record):
    """An operation in flight in Flink, recorded one sync before its REST call is made."""
    op: str = _meaning("stop (stop-with-savepoint), cancel, or savepoint", required=True)
    trigger_id: str | None = _meaning(
        "the deterministic trigger id sent to Flink; a repeated trigger returns the first result")
    job_id: str = _meaning("the job the operation is for", required=True)
    started_at: int = _meaning("when the intent was recorded (ms since the epoch)", required=True)
    purpose: str | None = _meaning("upgrade, suspend or delete: what happens once the job stopped")
    trigger_type: str | None = _meaning("MANUAL, PERIODIC or UPGRADE, as in savepointInfo")
    nonce: int | None = _meaning("the savepointTriggerNonce a manual savepoint answers (null for a periodic one)")
    restore_mode: str | None = _meaning("a session job's restore mode after the cancel (savepoint or stateless)")
    issued_at: int | None = _meaning("when the REST call was first made (ms); before that the call has not been sent")
    checkpoint_recorded: bool | None = _meaning("the job's latest checkpoint was recorded as the restore path")

    def _null_by_definition(self, slot: _Slot) -> bool:
        # A savepoint records the nonce it answers, null for a periodic one.
        return slot.name == "nonce" and self.op == "savepoint"

    @classmethod
    def stop(cls, trigger_id: str, job_id: str, now_ms: int, purpose: str | None = None) -> PendingRecord:
        """A stop-with-savepoint to issue on the next sync, once this record is durable."""
        return cls(op="stop", trigger_id=trigger_id, job_id=job_id, started_at=now_ms, purpose=purpose)

    @classmethod
    def cancel(cls, job_id: str, now_ms: int, purpose: str | None = None,
               restore_mode: str | None = None) -> PendingRecord:
        """A cancel to issue on the next sync, once this record is durable."""
        return cls(op="cancel", job_id=job_id, started_at=now_ms, purpose=purpose, restore_mode=restore_mode)

    @classmethod
    def savepoint(cls, trigger_id: str, job_id: str, now_ms: int, trigger_type: str,
                  nonce: int | None) -> PendingRecord:
        """A savepoint (MANUAL for `nonce`, or PERIODIC) to trigger on the next sync, once this record is durable."""
        return cls(op="savepoint", trigger_id=trigger_id, job_id=job_id, started_at=now_ms,
                   trigger_type=trigger_type, nonce=nonce)


@dataclass(frozen=True, kw_only=True)
class PodCauseRecord(Record):
    """What is wrong with the cluster's pods (sync/podhealth.py), as the last sync saw it."""
    reason: str | None = _meaning(
        "the cause: a Kubernetes reason (OOMKilled, CrashLoopBackOff, ...) or RestNotAnswering, TaskManagersMissing")
    component: str | None = _meaning("jobmanager or taskmanager")
    since: int | None = _meaning("when this cause was first seen (ms); the readiness timeout counts from here")
    reported: bool | None = _meaning(
        "reported in status.error with one Warning Event (a new cause, or one that outlasted the timeout)")


@dataclass(frozen=True, kw_only=True)
class SettledRecord(Record):
    """A kept answer (sync/settled.py): a resync with these inputs, inside this window, changes nothing."""
    digest: str = _meaning("SHA-256 of every input of the sync but the time (the record itself left out)",
                           required=True)
    since: int | None = _meaning("the answer holds from this time on (ms; absent: from any time)")
    until: int | None = _meaning("the answer holds until this time (ms, not included; absent: with no end)")
    resync_ms: int | None = _meaning("the answer's resync interval (ms), before it is shortened to wakeAt")
    wake_at: int | None = _meaning("the next periodic savepoint's due time (ms): the resync never passes it")


@dataclass(frozen=True, kw_only=True)
class FlinkSyncRecord(Record):
    """`status.flinkSync` as a whole. An empty one is not written (`to_json` returns {})."""
    cluster: DeploymentRecord | None = _meaning(
        "the deployment the children are rendered from; children change only with it")
    next: DeploymentRecord | None = _meaning("the deployment to create once the old cluster's Deployments are gone")
    pending: PendingRecord | None = _meaning(
        "a stop, cancel or savepoint in flight, recorded one sync before the REST call")
    deploys: int | None = _meaning("the highest deploy sequence number used; new job ids are derived from it")
    removed: int | None = _meaning(
        "the seq of the last cluster record removed on purpose; its children may still be observed")
    jm_seen: bool | None = _meaning("the current cluster's JobManager Deployment was observed at least once")
    retry_at: int | None = _meaning("a failed upgrade step is retried at this time (ms)")
    attempts: int | None = _meaning("failed stop attempts so far; part of the next trigger id")
    spec_changed_generation: int | None = _meaning(
        "the generation whose SpecChanged event was emitted (one event per change)")
    checkpoint_of: str | None = _meaning(
        "the terminal job whose latest checkpoint was recorded as upgradeSavepointPath")
    redeploy_from: str | None = _meaning(
        "the initialSavepointPath of a savepoint redeploy, until the next deployment uses it")
    manual_restore: bool | None = _meaning(
        "'Manual restore required': only a savepoint redeploy or a stateless job starts again")
    mark_stable_on_deploy: bool | None = _meaning("the next deployment is stable as soon as it is deployed")
    delete_ready: bool | None = _meaning(
        "deletion: the savepoint on deletion is recorded; the cluster goes on the next sync")
    ha_cleanup_at: int | None = _meaning(
        "deletion with Kubernetes HA: the HA ConfigMaps go at this time (ms), once the cluster's pods had their "
        "grace period to stop (a running JobManager re-creates them)")
    submission: DeploymentRecord | None = _meaning(
        "a session job: the job that should run, recorded before it is submitted")
    submitted: bool | None = _meaning("a session job: the submission succeeded")
    submitted_at: int | None = _meaning("a session job: when the submission was made (ms)")
    pod_cause: PodCauseRecord | None = _meaning(
        "what is wrong with the cluster's pods; a change of it is one Event")
    checkpoint_snapshot_at: int | None = _meaning(
        "when the newest checkpointTriggerNonce asked for a checkpoint resource (ms); the resource "
        "`<name>-checkpoint-manual-<ms>` is created once this is durable")
    settled: SettledRecord | None = _meaning(
        "a resync with the same inputs changes nothing: its answer is kept (the whole sync does not run)")


def table(cls: type[Record]) -> dict[str, tuple[Any, str]]:
    """JSON key → (JSON type, or the nested record's table; meaning), in wire order: what the docs list."""
    return {slot.key: (table(slot.kind) if _nested(slot.kind) else slot.kind, slot.meaning) for slot in _slots(cls)}


def types_of(cls: type[Record]) -> dict[str, Any]:
    """JSON key → JSON type (nested records as nested tables): what intake checks a recorded status against."""
    return {slot.key: types_of(slot.kind) if _nested(slot.kind) else slot.kind for slot in _slots(cls)}


def required_keys(cls: type[Record]) -> dict[str, tuple[str, ...]]:
    """For each nested record of `cls` (by its key), the keys a recorded one must have."""
    return {slot.key: tuple(s.key for s in _slots(slot.kind) if s.required)
            for slot in _slots(cls) if _nested(slot.kind)}


@dataclass(frozen=True, kw_only=True)
class SnapshotSyncRecord(Record):
    """A FlinkStateSnapshot's `status.flinkSync` (sync/statesnapshot.py); the Apache fields beside it (`state`,
    `triggerId`, `path`, ...) are Apache's meaning only."""
    trigger_id: str | None = _meaning(
        "the trigger id of the next attempt, recorded one sync before the REST call that sends it")
    job_id: str | None = _meaning("the Flink job the snapshot is taken of (recorded with the trigger id)")
    cluster: str | None = _meaning(
        "the FlinkDeployment whose REST API the trigger went to (a session job's session cluster)")
    retry_at: int | None = _meaning("after a failure: the next attempt is not made before this time (ms)")


def settled_of(status: Any) -> SettledRecord | None:
    """The kept answer's record of an incoming status, read before `sync/intake.py` has checked it: None when
    it is absent or not a record this version reads (then the whole sync runs, and intake has its say)."""
    records = status.get("flinkSync") if isinstance(status, dict) else None
    raw = records.get("settled") if isinstance(records, dict) else None
    if not isinstance(raw, dict):
        return None
    for slot in _slots(SettledRecord):
        value = raw.get(slot.key)
        if (value is None and slot.required) or (value is not None and type(value) is not slot.kind):
            return None
    return SettledRecord.from_json(raw)


def without_settled(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the kept answer's record (what the record is a record of)."""
    records = status.get("flinkSync")
    if not isinstance(records, dict) or "settled" not in records:
        return status
    return {**status, "flinkSync": {key: value for key, value in records.items() if key != "settled"}}


def with_settled(status: dict[str, Any], record: SettledRecord) -> dict[str, Any]:
    """The status with this kept answer's record (in place of an older one)."""
    records = status.get("flinkSync")
    return {**status, "flinkSync": {**(records if isinstance(records, dict) else {}), "settled": record.to_json()}}


DEPLOYMENT_RECORD = table(DeploymentRecord)
PENDING_RECORD = table(PendingRecord)
POD_CAUSE_RECORD = table(PodCauseRecord)
SETTLED_RECORD = table(SettledRecord)
FLINK_SYNC_FIELDS = table(FlinkSyncRecord)
SNAPSHOT_SYNC_FIELDS = table(SnapshotSyncRecord)

__all__ = ["DEPLOYMENT_RECORD", "FLINK_SYNC_FIELDS", "PENDING_RECORD", "POD_CAUSE_RECORD", "SETTLED_RECORD",
           "SNAPSHOT_SYNC_FIELDS",
           "DeploymentRecord", "FlinkSyncRecord", "PendingRecord", "PodCauseRecord", "Record", "SettledRecord",
           "SnapshotSyncRecord", "required_keys", "settled_of", "spec_text", "table", "types_of", "with_settled",
           "without_settled"]
