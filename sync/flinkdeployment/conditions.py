"""Conditions: Running, Ready, Progressing and Degraded, from the lifecycle state and the observation."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..status import camel, error_message, set_condition
from .cluster import iso
from .health import pending_cause

if TYPE_CHECKING:
    from ..deployment import DeploymentSync


@dataclass(frozen=True)
class _View:
    """What the conditions are computed from."""
    jm_status: str
    job_state: str | None
    lifecycle: str | None
    error: str
    is_app: bool
    in_flight: bool        # an upgrade, stop or cancel, or a retry, is under way
    progressing: bool
    cause_reason: str | None = None     # what is wrong with the pods (sync/podhealth.py), if anything
    cause_message: str = ""
    cause_reported: bool = False


def _view(s: DeploymentSync) -> _View:
    lifecycle = s.status.get("lifecycleState")
    pending_op = s.flink_sync.pending.op if s.flink_sync.pending is not None else None
    waiting = s.flink_sync.next is not None or bool(s.flink_sync.retry_at)
    cause = pending_cause(s)
    return _View(jm_status=s.status.get("jobManagerDeploymentStatus") or "MISSING",
                 job_state=s._job_status().get("state"), lifecycle=lifecycle,
                 error=error_message(s.status.get("error")), is_app=s._is_app(),
                 in_flight=lifecycle in ("UPGRADING", "ROLLING_BACK") or waiting or pending_op in ("stop", "cancel"),
                 progressing=lifecycle in ("UPGRADING", "DEPLOYED", "ROLLING_BACK") or bool(pending_op) or waiting,
                 cause_reason=cause[0] if cause else None, cause_message=cause[1] if cause else "",
                 cause_reported=bool(cause and cause[2]))


def _running(v: _View) -> tuple[bool, str, str]:
    """Running: the job runs (job clusters), or the JobManager answers REST calls (session clusters)."""
    if v.is_app:
        return v.job_state == "RUNNING", camel(v.job_state or "Reconciling"), f"Job status {v.job_state or 'RECONCILING'}"
    ready = v.jm_status == "READY"
    return (ready, "JobManagerReady" if ready else camel(v.jm_status),
            "JobManager is running and ready to receive REST API calls" if ready
            else f"JobManager deployment status {v.jm_status}")


def _ready(v: _View) -> tuple[bool, str]:
    """Ready: running on a ready JobManager, not suspended, and no upgrade in flight. While an upgrade is in flight
    the old job may still run: Ready must not say the new spec is there, or `kubectl wait --for=condition=Ready`
    would return before the upgrade happened."""
    if v.is_app:
        ready = v.job_state == "RUNNING" and v.jm_status == "READY"
        reason = "JobRunning" if ready else camel(v.job_state or "Reconciling")
    else:
        ready = v.jm_status == "READY"
        reason = "JobManagerReady" if ready else camel(v.jm_status)
    if v.lifecycle == "SUSPENDED":
        return False, "Suspended"
    if v.in_flight and ready:
        return False, "UpgradeInProgress"
    if v.cause_reason and v.cause_reported:
        return False, v.cause_reason  # e.g. TaskManagersMissing: the job runs, but not as specified
    if v.cause_reason and not ready:
        return False, v.cause_reason
    return ready, reason


def _degraded(s: DeploymentSync, v: _View) -> tuple[bool, str, str]:
    degraded = bool(v.error) or v.lifecycle in ("FAILED", "ROLLED_BACK") or v.jm_status == "ERROR" or \
        v.cause_reported
    if s.invalid:
        reason = "ValidationError"
    elif v.cause_reported and v.cause_reason:
        reason = v.cause_reason
    else:
        reason = camel(v.lifecycle or "Created") if degraded else "AsExpected"
    return degraded, reason, v.error[:512] if v.error else f"lifecycle {v.lifecycle}"


def conditions(s: DeploymentSync) -> None:
    """Running, Ready, Progressing and Degraded, each moving its lastTransitionTime only when it flips."""
    now, generation = functools.partial(iso, s.now_ms), s.generation
    v = _view(s)
    found = list(s.status.get("conditions") or [])
    value, reason, message = _running(v)
    found = set_condition(found, "Running", value, reason, message, now, generation)
    ready, ready_reason = _ready(v)
    found = set_condition(found, "Ready", ready, ready_reason,
                          f"lifecycle {v.lifecycle}, JobManager {v.jm_status}"
                          + (f", job {v.job_state}" if v.job_state else "")
                          + (f"; {v.cause_message[:512]}" if v.cause_reason else ""), now, generation)
    found = set_condition(found, "Progressing", v.progressing, camel(v.lifecycle or "Created"),
                          f"lifecycle {v.lifecycle}", now, generation)
    value, reason, message = _degraded(s, v)
    found = set_condition(found, "Degraded", value, reason, message, now, generation)
    s.status["conditions"] = found
