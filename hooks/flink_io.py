"""The I/O around the pure core: make the REST calls an `ObservationPlan` asks for, and carry out
the core's `Action`s. Failures never raise: they become data the core (or the status) can report."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.model import Action, FlinkObservation, JobInfo, ObservationPlan, TriggerResult

from . import flink_rest
from .flink_rest import FlinkRestClient, FlinkRestError

log = logging.getLogger("flink_sync.flink_io")
TERMINAL = {"FINISHED", "CANCELED", "FAILED"}


def _jobs(client: FlinkRestClient) -> tuple[JobInfo, ...]:
    return tuple(JobInfo(job_id=j.jid, name=j.name, state=j.state, start_time=j.start_time,
                         end_time=j.end_time) for j in client.jobs_overview())


def observe(client: FlinkRestClient, plan: ObservationPlan) -> FlinkObservation | None:
    """Run the planned calls. Unreachable Flink is an observation (`reachable=False`), not an error."""
    if not plan.query_cluster:
        return None
    try:
        jobs = _jobs(client)
    except FlinkRestError as exc:
        return FlinkObservation(reachable=False, error=str(exc))
    version = revision = None
    trigger = None
    latest = None
    failure = None
    try:
        if plan.cluster_info:
            info = client.cluster_config()
            version, revision = info.flink_version, info.flink_revision
        if plan.trigger_id and plan.trigger_job_id:
            result = client.savepoint_status(plan.trigger_job_id, plan.trigger_id)
            trigger = TriggerResult(state=result.state, location=result.location, failure=result.failure)
        job = next((j for j in jobs if j.job_id == plan.job_id), None) if plan.job_id else None
        if job is not None and job.state in TERMINAL and plan.latest_checkpoint:
            latest = client.latest_checkpoint_path(job.job_id)
        if job is not None and job.state == "FAILED" and plan.failure_cause:
            failure = client.execution_result(job.job_id) or _first_exception(client, job.job_id)
    except FlinkRestError as exc:
        # The job list is good; the extra detail can wait for the next sync.
        log.warning("partial Flink observation: %s", exc)
        return FlinkObservation(reachable=True, error=str(exc), flink_version=version, flink_revision=revision,
                                jobs=jobs, trigger=None, latest_checkpoint_path=latest, failure_cause=failure)
    return FlinkObservation(reachable=True, flink_version=version, flink_revision=revision, jobs=jobs,
                            trigger=trigger, latest_checkpoint_path=latest, failure_cause=failure)


def _first_exception(client: FlinkRestClient, job_id: str) -> str | None:
    entries = client.job_exceptions(job_id)
    return entries[0].summary if entries else None


@dataclass(frozen=True)
class ActionOutcome:
    action: Action
    ok: bool
    message: str = ""


def execute(client_for: Callable[[], FlinkRestClient], actions: list[Action],
            side_effects: Callable[[Action], None] | None = None) -> list[ActionOutcome]:
    """Carry out the actions in order; each is idempotent, so a retried sync may repeat it safely."""
    outcomes: list[ActionOutcome] = []
    for action in actions:
        try:
            _execute_one(client_for, action, side_effects)
            outcomes.append(ActionOutcome(action, True))
        except FlinkRestError as exc:
            log.warning("action %s failed: %s", action.kind, exc)
            outcomes.append(ActionOutcome(action, False, str(exc)))
    return outcomes


def _execute_one(client_for: Callable[[], FlinkRestClient], action: Action,
                 side_effects: Callable[[Action], None] | None) -> None:
    p: dict[str, Any] = action.params
    if action.kind == "delete_ha_data":
        if side_effects is not None:
            side_effects(action)
        return
    client = client_for()
    if action.kind == "trigger_savepoint":
        client.trigger_savepoint(p["job_id"], p["target_dir"], format_type=p.get("format_type", "CANONICAL"),
                                 trigger_id=p["trigger_id"])
    elif action.kind == "stop_with_savepoint":
        client.stop_with_savepoint(p["job_id"], p["target_dir"], drain=bool(p.get("drain")),
                                   format_type=p.get("format_type", "CANONICAL"), trigger_id=p["trigger_id"])
    elif action.kind == "cancel":
        try:
            client.cancel(p["job_id"])
        except flink_rest.FlinkNotFound:
            pass  # already gone: the goal of a cancel
    elif action.kind == "dispose_savepoint":
        client.dispose_savepoint(p["path"])
    elif action.kind == "trigger_checkpoint":
        client.trigger_checkpoint(p["job_id"], checkpoint_type=p.get("checkpoint_type", "FULL"),
                                  trigger_id=p.get("trigger_id"))
    else:  # pragma: no cover - the core only emits the kinds above
        raise ValueError(f"unknown action {action.kind}")
