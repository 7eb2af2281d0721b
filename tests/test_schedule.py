"""Periodic snapshot schedules (`kubernetes.operator.periodic.savepoint.interval`): Flink durations and the
Quartz cron expressions the Apache operator takes, with Quartz's day-of-week numbering (1 = Sunday)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.schedule import Schedule, ScheduleError, parse_schedule, quartz_to_croniter
from sync.snapshots import periodic_due_at
from sync.spec import parse_deployment_spec
from sync.validation import validate_deployment

from .test_state_machine import BASE


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


WED = ms(2026, 11, 25, 10, 0, 0)  # Wednesday 25 November 2026, 10:00 UTC


@pytest.mark.parametrize("text, expected", [
    ("6h", Schedule(interval_ms=6 * 3_600_000)),
    ("30 min", Schedule(interval_ms=30 * 60_000)),
    ("0", Schedule(interval_ms=0)),
    ("", Schedule()),
])
def test_durations(text: str, expected: Schedule) -> None:
    assert parse_schedule(text) == expected
    assert parse_schedule(text).enabled is bool(expected.interval_ms)


@pytest.mark.parametrize("quartz, first, second", [
    ("0 0 */6 * * ?", ms(2026, 11, 25, 12), ms(2026, 11, 25, 18)),           # every 6 hours
    ("0 30 2 ? * MON-FRI", ms(2026, 11, 26, 2, 30), ms(2026, 11, 27, 2, 30)),  # weekdays 02:30
    ("0 0 3 ? * 2-6", ms(2026, 11, 26, 3), ms(2026, 11, 27, 3)),              # Quartz 2-6 = MON-FRI
    ("0 0 0 ? * 1", ms(2026, 11, 29), ms(2026, 12, 6)),                       # Quartz 1 = Sunday
    ("0 0 0 ? * 7", ms(2026, 11, 28), ms(2026, 12, 5)),                       # Quartz 7 = Saturday
    ("0 0 12 ? * 6#3", ms(2026, 12, 18, 12), ms(2027, 1, 15, 12)),            # third Friday
    ("0 0 0 ? * 6L", ms(2026, 11, 27), ms(2026, 12, 25)),                     # last Friday of the month
    ("0 0 0 L * ?", ms(2026, 11, 30), ms(2026, 12, 31)),                      # last day of the month
    ("0 0 0 13W * ?", ms(2026, 12, 14), ms(2027, 1, 13)),                     # weekday nearest the 13th
    ("0 15 10 * * ? 2027", ms(2027, 1, 1, 10, 15), ms(2027, 1, 2, 10, 15)),   # with a year
])
def test_quartz_cron_fire_times(quartz: str, first: int, second: int) -> None:
    schedule = parse_schedule(quartz)
    assert schedule.cron is not None and schedule.enabled
    assert schedule.next_after(WED) == first
    assert schedule.next_after(first) == second


def test_a_cron_schedule_that_never_fires_again_is_off() -> None:
    assert parse_schedule("0 0 0 1 1 ? 2025").next_after(WED) is None


@pytest.mark.parametrize("text, reason", [
    ("every day", "6 or 7 fields"),
    ("0 0 12 1 * MON", "set one of them to '?'"),
    ("0 0 0 ? * 8", "out of range"),
    ("0 0 0 LW * ?", "day-of-month 'LW' is not supported"),
    ("0 0 25 * * ?", "not a valid cron expression"),
    ("5 minutes and a bit", "neither a duration"),
])
def test_bad_schedules_say_why(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse_schedule(text)


def test_translation_keeps_names_and_shifts_numbers() -> None:
    assert quartz_to_croniter("0 0 0 ? * SUN,3,5-7") == "0 0 0 * * SUN,2,4-6"


def test_periodic_savepoint_due_by_cron() -> None:
    config = {"kubernetes.operator.periodic.savepoint.interval": "0 0 */6 * * ?"}
    status = {"startTime": WED - 86_400_000, "savepointInfo": {"lastPeriodicSavepointTimestamp": ms(2026, 11, 25, 6)}}
    assert periodic_due_at(config, status) == ms(2026, 11, 25, 12)
    status["savepointInfo"]["lastPeriodicSavepointTimestamp"] = ms(2026, 11, 25, 5, 59)
    assert periodic_due_at(config, status) <= WED  # overdue: take it now


def test_validation_accepts_cron_and_names_the_key_when_wrong() -> None:
    spec = dict(BASE["spec"])
    spec["flinkConfiguration"] = {**spec.get("flinkConfiguration", {}),
                                  "state.savepoints.dir": "file:///sp",
                                  "kubernetes.operator.periodic.savepoint.interval": "0 0 */6 * * ?"}
    parsed = parse_deployment_spec(spec)
    assert validate_deployment("wc", parsed, parsed.flinkConfiguration or {}) is None
    spec["flinkConfiguration"]["kubernetes.operator.periodic.savepoint.interval"] = "0 */6 * * *"  # unix cron
    parsed = parse_deployment_spec(spec)
    error = validate_deployment("wc", parsed, parsed.flinkConfiguration or {})
    assert error is not None and error.startswith(
        "spec.flinkConfiguration.kubernetes.operator.periodic.savepoint.interval: '0 */6 * * *' is neither")
    assert "6 or 7 fields" in error
