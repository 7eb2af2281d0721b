"""The records in `status.flinkSync`: the contract between one sync and the next, written once here.

Metacontroller applies children before it writes status, and may lose the status write, so every step that
depends on a value runs only on a sync whose incoming status already holds that value (docs/architecture.md,
"Intent goes into status first"). These records are those values. Each field has one JSON type and one meaning;
`sync/intake.py` checks the types of what comes in, `docs/architecture.md` lists every field (a test keeps the
two in step), and the records that several places build (`stop`, `cancel`) are built here.
"""
from __future__ import annotations

from typing import Any

#: A deployment (`cluster`, `next`) or a session job's submission: what children or a submission are made from.
DEPLOYMENT_RECORD: dict[str, tuple[type, str]] = {
    "spec": (str, "the spec the children are rendered from, as sorted compact JSON"),
    "jobId": (str, "the Flink job id the cluster runs (null for a session cluster)"),
    "restorePath": (str, "the savepoint or checkpoint the job starts from (null: from nothing, or from HA)"),
    "generation": (int, "the resource generation the record was made for"),
    "seq": (int, "the deploy sequence number; also on the JobManager Deployment (flink-sync.io/cluster-record)"),
    "markStable": (bool, "the deployment is stable once deployed (a savepoint redeploy)"),
}

#: An operation in flight in Flink.
PENDING_RECORD: dict[str, tuple[type, str]] = {
    "op": (str, "stop (stop-with-savepoint), cancel, or savepoint"),
    "triggerId": (str, "the deterministic trigger id sent to Flink; a repeated trigger returns the first result"),
    "jobId": (str, "the job the operation is for"),
    "startedAt": (int, "when the intent was recorded (ms since the epoch)"),
    "issuedAt": (int, "when the REST call was first made (ms); before that the call has not been sent"),
    "purpose": (str, "upgrade, suspend or delete: what happens once the job stopped"),
    "triggerType": (str, "MANUAL, PERIODIC or UPGRADE, as in savepointInfo"),
    "nonce": (int, "the savepointTriggerNonce a manual savepoint answers"),
    "restoreMode": (str, "a session job's restore mode after the cancel (savepoint or stateless)"),
    "checkpointRecorded": (bool, "the job's latest checkpoint was recorded as the restore path"),
}

#: What is wrong with the cluster's pods (sync/podhealth.py), as the last sync saw it.
POD_CAUSE_RECORD: dict[str, tuple[type, str]] = {
    "reason": (str, "the cause: a Kubernetes reason (OOMKilled, CrashLoopBackOff, ...) or RestNotAnswering, TaskManagersMissing"),
    "component": (str, "jobmanager or taskmanager"),
    "since": (int, "when this cause was first seen (ms); the readiness timeout counts from here"),
    "reported": (bool, "reported in status.error with one Warning Event (a new cause, or one that outlasted the timeout)"),
}

#: Every field of `status.flinkSync`: (JSON type or nested record, meaning).
FLINK_SYNC_FIELDS: dict[str, tuple[Any, str]] = {
    "cluster": (DEPLOYMENT_RECORD, "the deployment the children are rendered from; children change only with it"),
    "next": (DEPLOYMENT_RECORD, "the deployment to create once the old cluster's Deployments are gone"),
    "pending": (PENDING_RECORD, "a stop, cancel or savepoint in flight, recorded one sync before the REST call"),
    "deploys": (int, "the highest deploy sequence number used; new job ids are derived from it"),
    "removed": (int, "the seq of the last cluster record removed on purpose; its children may still be observed"),
    "jmSeen": (bool, "the current cluster's JobManager Deployment was observed at least once"),
    "retryAt": (int, "a failed upgrade step is retried at this time (ms)"),
    "attempts": (int, "failed stop attempts so far; part of the next trigger id"),
    "specChangedGeneration": (int, "the generation whose SpecChanged event was emitted (one event per change)"),
    "checkpointOf": (str, "the terminal job whose latest checkpoint was recorded as upgradeSavepointPath"),
    "redeployFrom": (str, "the initialSavepointPath of a savepoint redeploy, until the next deployment uses it"),
    "manualRestore": (bool, "'Manual restore required': only a savepoint redeploy or a stateless job starts again"),
    "markStableOnDeploy": (bool, "the next deployment is stable as soon as it is deployed"),
    "deleteReady": (bool, "deletion: the savepoint on deletion is recorded; the cluster goes on the next sync"),
    "haCleanupAt": (int, "deletion with Kubernetes HA: the HA ConfigMaps go at this time (ms), once the cluster's "
                         "pods had their grace period to stop (a running JobManager re-creates them)"),
    "submission": (DEPLOYMENT_RECORD, "a session job: the job that should run, recorded before it is submitted"),
    "submitted": (bool, "a session job: the submission succeeded"),
    "submittedAt": (int, "a session job: when the submission was made (ms)"),
    "podCause": (POD_CAUSE_RECORD, "what is wrong with the cluster's pods; a change of it is one Event"),
    "checkpointSnapshotAt": (int, "when the newest checkpointTriggerNonce asked for a checkpoint resource (ms); the "
                                  "resource `<name>-checkpoint-manual-<ms>` is created once this is durable"),
}


def types_of(fields: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """The field → JSON type table intake checks (nested records as nested tables)."""
    return {key: types_of(kind) if isinstance(kind, dict) else kind for key, (kind, _) in fields.items()}


def stop_record(trigger_id: str, job_id: str, now_ms: int, purpose: str | None = None) -> dict[str, Any]:
    """A stop-with-savepoint to issue on the next sync, once this record is durable."""
    record: dict[str, Any] = {"op": "stop", "triggerId": trigger_id, "jobId": job_id, "startedAt": now_ms}
    if purpose is not None:
        record["purpose"] = purpose
    return record


def cancel_record(job_id: str, now_ms: int, purpose: str | None = None,
                  restore_mode: str | None = None) -> dict[str, Any]:
    """A cancel to issue on the next sync, once this record is durable."""
    record: dict[str, Any] = {"op": "cancel", "jobId": job_id, "startedAt": now_ms}
    if purpose is not None:
        record["purpose"] = purpose
    if restore_mode is not None:
        record["restoreMode"] = restore_mode
    return record


#: Every field of a FlinkStateSnapshot's `status.flinkSync` (sync/statesnapshot.py); the Apache fields beside it
#: (`state`, `triggerId`, `path`, ...) are Apache's meaning only.
SNAPSHOT_SYNC_FIELDS: dict[str, tuple[Any, str]] = {
    "triggerId": (str, "the trigger id of the next attempt, recorded one sync before the REST call that sends it"),
    "jobId": (str, "the Flink job the snapshot is taken of (recorded with the trigger id)"),
    "cluster": (str, "the FlinkDeployment whose REST API the trigger went to (a session job's session cluster)"),
    "retryAt": (int, "after a failure: the next attempt is not made before this time (ms)"),
}


def pod_cause_record(reason: str, component: str, since: int, reported: bool) -> dict[str, Any]:
    """The cause of the cluster's pods as the next sync needs it: which one, since when, and whether reported."""
    return {"reason": reason, "component": component, "since": since, "reported": reported}
