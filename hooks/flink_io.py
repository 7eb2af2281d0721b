"""The I/O around the pure core: make the REST calls an `ObservationPlan` asks for, and carry out
the core's `Action`s. Both run against any `FlinkApi` (the REST client, or the in-memory fake Flink).
Failures never raise: they become data the core (or the status) can report."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.model import Action, FlinkObservation, JobInfo, ObservationPlan, TriggerResult
from sync.statesnapshot import SnapshotPoll, SnapshotPollPlan
from sync.status import TERMINAL_JOB_STATES

from .autoscaler_io import rescale_in_place
from .flink_api import FlinkApi
from .flink_rest import FlinkNotFound, FlinkRestError

log = logging.getLogger("flink_sync.flink_io")

# Submits one session job (hooks/submit.py with the server's jar settings): None, or a one-line error.
Submitter = Callable[[FlinkApi, dict[str, Any]], "str | None"]
# Carries out an action on Kubernetes rather than Flink (`delete_ha_data`, `remove_ha_job_graphs`).
SideEffect = Callable[[Action], None]


def _jobs(client: FlinkApi) -> tuple[JobInfo, ...]:
    return tuple(JobInfo(job_id=j.jid, name=j.name, state=j.state, start_time=j.start_time,
                         end_time=j.end_time) for j in client.jobs_overview())


@dataclass
class _Details:
    """What the calls after GET /jobs/overview found (kept when a later one fails)."""
    version: str | None = None
    revision: str | None = None
    trigger: TriggerResult | None = None
    latest: str | None = None
    failure: str | None = None
    taskmanagers: int | None = None


def observe(client: FlinkApi, plan: ObservationPlan) -> FlinkObservation | None:
    """Run the planned calls. Unreachable Flink is an observation (`reachable=False`), not an error."""
    if not plan.query_cluster:
        return None
    try:
        jobs = _jobs(client)
    except FlinkRestError as exc:
        return FlinkObservation(reachable=False, error=str(exc))
    found = _Details()
    if plan.taskmanagers:
        found.taskmanagers = _taskmanager_count(client)
    try:
        _observe_details(client, plan, jobs, found)
    except FlinkRestError as exc:
        # The job list is good; the extra detail can wait for the next sync.
        log.warning("partial Flink observation: %s", exc)
        return FlinkObservation(reachable=True, error=str(exc), flink_version=found.version,
                                flink_revision=found.revision, jobs=jobs, trigger=None,
                                latest_checkpoint_path=found.latest, failure_cause=found.failure,
                                taskmanagers=found.taskmanagers)
    return FlinkObservation(reachable=True, flink_version=found.version, flink_revision=found.revision, jobs=jobs,
                            trigger=found.trigger, latest_checkpoint_path=found.latest, failure_cause=found.failure,
                            taskmanagers=found.taskmanagers)


def _taskmanager_count(client: FlinkApi) -> int | None:
    """Registered TaskManagers; unknown (None) when the call fails, which must not spoil the other details."""
    try:
        return client.taskmanager_count()
    except FlinkRestError as exc:
        log.warning("GET /overview failed: %s", exc)
        return None


def _observe_details(client: FlinkApi, plan: ObservationPlan, jobs: tuple[JobInfo, ...], found: _Details) -> None:
    if plan.cluster_info:
        info = client.cluster_config()
        found.version, found.revision = info.flink_version, info.flink_revision
    if plan.trigger_id and plan.trigger_job_id:
        result = client.savepoint_status(plan.trigger_job_id, plan.trigger_id)
        found.trigger = TriggerResult(state=result.state, location=result.location, failure=result.failure)
    job = next((j for j in jobs if j.job_id == plan.job_id), None) if plan.job_id else None
    if job is not None and job.state in TERMINAL_JOB_STATES and plan.latest_checkpoint:
        found.latest = client.latest_checkpoint_path(job.job_id)
    if job is not None and job.state == "FAILED" and plan.failure_cause:
        found.failure = client.execution_result(job.job_id) or _first_exception(client, job.job_id)


def poll_snapshot(client: FlinkApi, plan: SnapshotPollPlan) -> SnapshotPoll:
    """A FlinkStateSnapshot's trigger, as Flink reports it. A checkpoint's path comes from its details
    (GET /jobs/{id}/checkpoints/details/{checkpoint}); when they cannot be read it is "" (Apache does the same).
    No answer from Flink is `unreachable`; an answer (404 included) is Flink's."""
    try:
        if plan.kind == "savepoint":
            result = client.savepoint_status(plan.job_id, plan.trigger_id)
            return SnapshotPoll(result.state, result.location, result.failure)
        checkpoint = client.checkpoint_status(plan.job_id, plan.trigger_id)
    except FlinkRestError as exc:
        if exc.status_code is None:
            return SnapshotPoll("IN_PROGRESS", unreachable=str(exc))
        return SnapshotPoll("FAILED", failure=str(exc))
    if checkpoint.state != "COMPLETED" or checkpoint.checkpoint_id is None:
        return SnapshotPoll(checkpoint.state, failure=checkpoint.failure)
    try:
        path = client.checkpoint_path(plan.job_id, checkpoint.checkpoint_id)
    except FlinkRestError as exc:
        log.warning("checkpoint %s completed, its path not read: %s", checkpoint.checkpoint_id, exc)
        path = None
    return SnapshotPoll("COMPLETED", location=path or "")


def _first_exception(client: FlinkApi, job_id: str) -> str | None:
    entries = client.job_exceptions(job_id)
    return entries[0].summary if entries else None


@dataclass(frozen=True)
class ActionOutcome:
    action: Action
    ok: bool
    message: str = ""
    # No HTTP answer (timeout, connection reset): Flink may or may not have acted on the call.
    unanswered: bool = False


def execute(client: FlinkApi, actions: list[Action], side_effects: SideEffect | None = None,
            submitter: Submitter | None = None) -> list[ActionOutcome]:
    """Carry out the actions in order; each is idempotent, so a retried sync may repeat it safely.
    `submit_job` needs a `submitter`; `delete_ha_data` goes to `side_effects` (skipped without one)."""
    outcomes: list[ActionOutcome] = []
    for action in actions:
        unanswered = False
        try:
            message = _execute_one(client, action, side_effects, submitter)
        except FlinkRestError as exc:
            message, unanswered = str(exc), exc.status_code is None
        if message is not None:
            log.warning("action %s failed: %s", action.kind, message)
        outcomes.append(ActionOutcome(action, message is None, message or "", unanswered))
    return outcomes


def _execute_one(client: FlinkApi, action: Action, side_effects: SideEffect | None,
                 submitter: Submitter | None) -> str | None:
    """One action; a failure is returned as a one-line message (or raised as a FlinkRestError)."""
    p: dict[str, Any] = action.params
    if action.kind in ("delete_ha_data", "remove_ha_job_graphs"):
        if side_effects is not None:
            side_effects(action)
    elif action.kind == "submit_job":
        if submitter is None:
            raise ValueError("submit_job needs a submitter")
        return submitter(client, p)
    elif action.kind == "trigger_savepoint":
        client.trigger_savepoint(p["job_id"], p["target_dir"], format_type=p.get("format_type", "CANONICAL"),
                                 trigger_id=p["trigger_id"])
    elif action.kind == "stop_with_savepoint":
        client.stop_with_savepoint(p["job_id"], p["target_dir"], drain=bool(p.get("drain")),
                                   format_type=p.get("format_type", "CANONICAL"), trigger_id=p["trigger_id"])
    elif action.kind == "cancel":
        try:
            client.cancel(p["job_id"])
        except FlinkNotFound:
            pass  # already gone: the goal of a cancel
    elif action.kind == "dispose_savepoint":
        client.dispose_savepoint(p["path"])
    elif action.kind == "rescale_in_place":
        rescale_in_place(client, p["job_id"], p["overrides"])
    elif action.kind == "trigger_checkpoint":
        client.trigger_checkpoint(p["job_id"], checkpoint_type=p.get("checkpoint_type", "FULL"),
                                  trigger_id=p.get("trigger_id"))
    else:  # pragma: no cover - sync.model.Action lists every kind the core emits; all are handled above
        raise ValueError(f"unknown action {action.kind}")
    return None
