"""The cluster's pods in status: the cause sync/podhealth.py names, reported as the Apache operator reports a
deployment failure (status.error with the Kubernetes reason, a Warning Event with that reason, the JobManager
deployment status ERROR for a JobManager container failure), and remembered in `status.flinkSync.podCause` so
that the Event goes out once per change of cause, never on every resync, with no state in the process.

A cause that can be a cluster still starting (a pod waiting for capacity, a JobManager still booting,
TaskManagers still registering) is reported only once it lasted `kubernetes.operator.deployment.readiness.timeout`
(the time Apache gives a deployment to become ready); until then it is only named in the Ready condition.
"""
from __future__ import annotations

import calendar
import json
import re
from typing import TYPE_CHECKING, Any

from .. import observed, podhealth
from ..durations import DurationError, parse_duration
from ..podhealth import ClusterView, PodCause
from ..records import PodCauseRecord
from ..snapshots import OP
from ..status import error_json, error_message

if TYPE_CHECKING:
    from ..deployment import DeploymentSync

DEFAULT_READINESS_TIMEOUT_MS = 5 * 60 * 1000
ERROR_TYPE = "DeploymentFailedException"


def readiness_timeout_ms(config: dict[str, str]) -> int:
    try:
        return parse_duration(config.get(OP + "deployment.readiness.timeout") or "5 min")
    except DurationError:
        return DEFAULT_READINESS_TIMEOUT_MS


def classify(s: DeploymentSync) -> PodCause | None:
    """The cause for the current cluster's pods, or None (no cluster, or nothing wrong)."""
    if not s.cluster:
        return None
    jm = s._observed_jm()
    tm = observed.deployment(s.children_in, f"{s.name}-taskmanager")
    if jm is None and tm is None:
        return None
    flink = s.flink
    replicas = ((tm or {}).get("spec") or {}).get("replicas")
    view = ClusterView(pods=tuple(s.pods),
                       rest_reachable=flink.reachable if flink is not None else None,
                       rest_error=flink.error if flink is not None and not flink.reachable else None,
                       registered_taskmanagers=flink.taskmanagers if flink is not None else None,
                       expected_taskmanagers=replicas if isinstance(replicas, int) else None)
    return podhealth.classify(view)


def jobmanager_failed(s: DeploymentSync) -> bool:
    """A JobManager container that will not start by itself: Apache's JobManager deployment status ERROR."""
    cause = s.pod_cause
    return cause is not None and cause.component == "jobmanager" and cause.definitive


def report(s: DeploymentSync) -> None:
    """Record the cause, report it (error, Event) once it is definitive or outlasted the readiness timeout, and
    take back what it reported once it is gone."""
    cause = s.pod_cause
    old = s.flink_sync.pod_cause
    same = old is not None and cause is not None and podhealth.same_cause(str(old.reason), cause.reason) and \
        old.component == cause.component
    if old is not None and old.reported and not same:
        _withdraw(s, old, cause)
    if cause is None:
        s._set_records(pod_cause=None)
        return
    since = int(old.since or s.now_ms) if old is not None and same else s.now_ms
    reported = cause.definitive or s.now_ms - since >= readiness_timeout_ms(s.config)
    reason = str(old.reason) if old is not None and same else cause.reason
    s._set_records(pod_cause=PodCauseRecord(reason=reason, component=cause.component, since=since, reported=reported))
    if not reported:
        return
    continuing = same and old is not None and bool(old.reported)
    if not s.invalid:  # a validation error stays the error; the cause still shows in the conditions
        # The kubelet alternates ErrImagePull and ImagePullBackOff for one image: the error written first is kept,
        # so its retries do not rewrite the status. Other messages hold nothing that changes on every restart.
        previous = s.old_status.get("error")
        kept = continuing and cause.reason in podhealth.IMAGE_FAILURES and _is_our_error(previous, reason)
        s.status["error"] = previous if kept else error_json(ERROR_TYPE, cause.message, cause.reason)
    if not continuing:
        s._event(cause.reason, cause.message, "Warning")


def _withdraw(s: DeploymentSync, old: PodCauseRecord, cause: PodCause | None) -> None:
    """The reported cause is gone: its error goes (unless something else replaced it), and when no other cause
    follows, one Normal Event says so."""
    if _is_our_error(s.status.get("error"), str(old.reason)):
        s.status.pop("error", None)
    if cause is None and s.cluster and (s._observed_jm() or s.flink is not None):
        # (a cluster taken away on purpose, by an upgrade or a suspend, is not a recovery)
        s._event("PodsRecovered", f"{old.reason} of the {old.component} is over")


def _is_our_error(error: Any, reason: str) -> bool:
    if not isinstance(error, str) or ERROR_TYPE not in error:
        return False
    try:
        data = json.loads(error)
    except ValueError:
        return False
    found = (data.get("additionalMetadata") or {}).get("reason") if isinstance(data, dict) else None
    return isinstance(found, str) and podhealth.same_cause(found, reason)


def pending_cause(s: DeploymentSync) -> tuple[str, str, bool] | None:
    """The cause's reason, its message and whether it is reported (for the conditions). A reported cause reads
    as its error, which stays the same while the cause lasts."""
    record = s.flink_sync.pod_cause
    if s.pod_cause is None or record is None:
        return None
    reason, reported = str(record.reason), bool(record.reported)
    error = s.status.get("error")
    message = error_message(error) if reported and _is_our_error(error, reason) else s.pod_cause.message
    return reason, message, reported


def resync_cap_s(s: DeploymentSync) -> float | None:
    """A cause waiting for the readiness timeout: the sync that reports it must come on time, even while the
    cluster is otherwise steady (the reconcile interval may be longer)."""
    record = s.flink_sync.pod_cause
    if record is None or record.reported:
        return None
    remaining_ms = int(record.since or s.now_ms) + readiness_timeout_ms(s.config) - s.now_ms
    return max(1.0, remaining_ms / 1000)


def jobmanager_never_started(s: DeploymentSync) -> bool:
    """Apache's test that the JobManager of this deployment never started (ApplicationReconciler): its
    Deployment's Available condition has been False since the Deployment was created. A job cannot have run on
    it, so the restore path recorded before it was deployed is still the one to restore from.

    Apache compares the condition's lastTransitionTime with creationTimestamp for equality; the deployment
    controller's first sync can land a second or more later (seen on the sandbox), so a transition within
    NEVER_STARTED_SLACK_S of the creation counts: no JobManager becomes available and unavailable again that fast."""
    jm = s._observed_jm()
    if jm is None or s.status.get("jobManagerDeploymentStatus") == "MISSING":
        return False
    created = _epoch_s((jm.get("metadata") or {}).get("creationTimestamp"))
    conditions = (jm.get("status") or {}).get("conditions") or []
    available = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Available"), None)
    if created is None or available is None or available.get("status") != "False":
        return False
    since = _epoch_s(available.get("lastTransitionTime"))
    return since is not None and 0 <= since - created <= NEVER_STARTED_SLACK_S


NEVER_STARTED_SLACK_S = 10


def _epoch_s(timestamp: Any) -> int | None:
    """Seconds of an RFC 3339 UTC timestamp as the API server writes them (2026-01-02T03:04:05Z), no clock read."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z", str(timestamp or ""))
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
