"""Savepoint bookkeeping shared by FlinkDeployments and FlinkSessionJobs (Apache's savepoint info and history):
the savepoint history with its max count/age and disposal, and when a periodic savepoint is due."""
from __future__ import annotations

from typing import Any

from . import flinkconf, snapshot_resources
from .durations import DurationError, parse_duration
from .model import Action
from .records import PendingRecord
from .schedule import ScheduleError, parse_schedule
from .validation import SAVEPOINT_DIR_KEYS

OP = "kubernetes.operator."


def _opt(config: dict[str, str], key: str, default: str) -> str:
    value = config.get(OP + key)
    return value if value not in (None, "") else default


def _duration_ms(config: dict[str, str], key: str, default: str) -> int:
    try:
        return parse_duration(_opt(config, key, default))
    except DurationError:
        return parse_duration(default)


def savepoint_dir(config: dict[str, str]) -> str | None:
    return flinkconf.get_first(config, *SAVEPOINT_DIR_KEYS)


def savepoint_on_deletion(config: dict[str, str]) -> bool:
    """kubernetes.operator.job.savepoint-on-deletion, with a savepoint directory to take it into."""
    return flinkconf.is_true(config, OP + "job.savepoint-on-deletion") and bool(savepoint_dir(config))


def stop_action(pending: PendingRecord, config: dict[str, str]) -> Action:
    """Stop-with-savepoint for a recorded `pending` stop (its trigger id makes a repeat idempotent)."""
    return Action("stop_with_savepoint", {
        "job_id": pending.job_id, "trigger_id": pending.trigger_id, "target_dir": savepoint_dir(config),
        "drain": flinkconf.is_true(config, OP + "job.drain-on-savepoint-deletion"),
        "format_type": _opt(config, "savepoint.format.type", "CANONICAL")})


def savepoint_action(pending: PendingRecord, config: dict[str, str]) -> Action:
    """Savepoint trigger for a recorded `pending` savepoint."""
    return Action("trigger_savepoint", {
        "job_id": pending.job_id, "trigger_id": pending.trigger_id, "target_dir": savepoint_dir(config),
        "format_type": _opt(config, "savepoint.format.type", "CANONICAL")})


def add_savepoint(info: dict[str, Any], config: dict[str, str], now_ms: int, location: str, timestamp: int,
                  trigger_type: str, nonce: int | None) -> list[Action]:
    """Record a completed savepoint as `lastSavepoint` and in the history; returns the disposals the history
    limits ask for (`savepoint.history.max.count`, default 10; `max.age`, default 24 h; the newest is kept).
    With snapshot resources on, the history is the record of the job's FlinkStateSnapshot children and nothing
    is disposed of here."""
    entry = {"timeStamp": timestamp, "location": location, "triggerType": trigger_type,
             "formatType": _opt(config, "savepoint.format.type", "CANONICAL"), "triggerNonce": nonce}
    info["lastSavepoint"] = entry
    history = list(info.get("savepointHistory") or [])
    if not history or history[-1].get("location") != location:
        history.append(entry)
    if snapshot_resources.enabled(config):
        # Each entry is a FlinkStateSnapshot resource: its retention and disposal are the resource's
        # (sync/snapshot_resources.py), decided on every sync.
        info["savepointHistory"] = history
        return []
    try:
        max_count = max(1, int(_opt(config, "savepoint.history.max.count", "10")))
    except ValueError:
        max_count = 10
    max_age = _duration_ms(config, "savepoint.history.max.age", "24 h")
    dispose = flinkconf.is_true(config, OP + "savepoint.cleanup.enabled", True)
    removed = history[:-max_count] if len(history) > max_count else []
    kept = history[len(removed):]
    aged = [e for e in kept[:-1] if now_ms - int(e.get("timeStamp") or 0) > max_age]
    info["savepointHistory"] = [e for e in kept if e not in aged]
    return [Action("dispose_savepoint", {"path": e["location"]}, required=False)
            for e in removed + aged if dispose and e.get("location")]


def periodic_due_at(config: dict[str, str], job_status: dict[str, Any]) -> int | None:
    """When (epoch ms) the next periodic savepoint is due, or None when periodic savepoints are off. The interval
    is a duration or a Quartz cron expression (sync/schedule.py), counted from the later of the last periodic
    savepoint and the job's start."""
    try:
        schedule = parse_schedule(config.get(OP + "periodic.savepoint.interval"))
    except ScheduleError:
        return None  # validation reports it
    info = job_status.get("savepointInfo") or {}
    last = max(int(info.get("lastPeriodicSavepointTimestamp") or 0), int(job_status.get("startTime") or 0))
    return schedule.next_after(last)
