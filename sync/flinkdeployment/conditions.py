"""Conditions: Running, Ready, Progressing and Degraded, from the lifecycle state and the observation."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..status import camel, error_message, set_condition
from .cluster import iso

if TYPE_CHECKING:
    from ..deployment import _Sync as DeploymentSync


def conditions(s: DeploymentSync) -> None:
    now = iso(s.now_ms)
    conditions = list(s.status.get("conditions") or [])
    jm_status = s.status.get("jobManagerDeploymentStatus") or "MISSING"
    job_state = s._job_status().get("state")
    lifecycle = s.status.get("lifecycleState")
    error = error_message(s.status.get("error"))
    if s._is_app():
        running = job_state == "RUNNING"
        conditions = set_condition(conditions, "Running", running, camel(job_state or "Reconciling"),
                                   f"Job status {job_state or 'RECONCILING'}", now, s.generation)
        ready = running and jm_status == "READY"
        ready_reason = "JobRunning" if ready else camel(job_state or "Reconciling")
    else:
        ready = jm_status == "READY"
        ready_reason = "JobManagerReady" if ready else camel(jm_status)
        conditions = set_condition(conditions, "Running", ready, ready_reason,
                                   "JobManager is running and ready to receive REST API calls" if ready
                                   else f"JobManager deployment status {jm_status}", now, s.generation)
    if lifecycle == "SUSPENDED":
        ready, ready_reason = False, "Suspended"
    # While an upgrade is in flight the old job may still run: Ready must not say the new spec is there,
    # or `kubectl wait --for=condition=Ready` would return before the upgrade happened.
    in_flight = lifecycle in ("UPGRADING", "ROLLING_BACK") or bool(s.internal.get("next")) or \
        (s.internal.get("pending") or {}).get("op") in ("stop", "cancel") or bool(s.internal.get("retryAt"))
    if in_flight and ready:
        ready, ready_reason = False, "UpgradeInProgress"
    conditions = set_condition(conditions, "Ready", ready, ready_reason,
                               f"lifecycle {lifecycle}, JobManager {jm_status}" + (f", job {job_state}" if job_state else ""),
                               now, s.generation)
    progressing = lifecycle in ("UPGRADING", "DEPLOYED", "ROLLING_BACK") or bool(s.internal.get("pending")) \
        or bool(s.internal.get("next")) or bool(s.internal.get("retryAt"))
    conditions = set_condition(conditions, "Progressing", progressing, camel(lifecycle or "Created"),
                               f"lifecycle {lifecycle}", now, s.generation)
    degraded = bool(error) or lifecycle in ("FAILED", "ROLLED_BACK") or jm_status == "ERROR"
    conditions = set_condition(conditions, "Degraded", degraded,
                               "ValidationError" if s.invalid else camel(lifecycle or "Created") if degraded else "AsExpected",
                               error[:512] if error else f"lifecycle {lifecycle}", now, s.generation)
    s.status["conditions"] = conditions
