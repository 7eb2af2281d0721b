"""When a periodic snapshot is due: `kubernetes.operator.periodic.{savepoint,checkpoint}.interval`.

The Apache operator takes either a Flink duration (`6h`, `30 min`; `0` turns it off) or a Quartz cron
expression (`0 0 */6 * * ?`: second minute hour day-of-month month day-of-week [year]). With a duration a
snapshot is due `interval` after the last one; with a cron expression at the first fire time after the last
one (as the Apache operator reads `kubernetes.operator.periodic.savepoint.interval`). Fire times are in UTC, the zone of an operator pod.

Quartz cron is evaluated with croniter after a translation: its day-of-week numbers run 1-7 from Sunday
(croniter's 0-6), `xL` (last x-day of the month) is croniter's `L(x-1)`, and `?` is `*`. What croniter cannot
evaluate the Quartz way is refused with a message, never guessed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from croniter import CroniterError, croniter

from .durations import DurationError, parse_duration


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    """Every `interval_ms`, or at the fire times of `cron` (croniter syntax, seconds first)."""
    interval_ms: int | None = None
    cron: str | None = None

    @property
    def enabled(self) -> bool:
        return self.cron is not None or bool(self.interval_ms and self.interval_ms > 0)

    def next_after(self, last_ms: int) -> int | None:
        """The first time after `last_ms` a snapshot is due (ms), or None when the schedule is off."""
        if self.cron is not None:
            return _next_fire_ms(self.cron, last_ms)
        if self.interval_ms and self.interval_ms > 0:
            return last_ms + self.interval_ms
        return None


_DAY_NAMES = "SUN|MON|TUE|WED|THU|FRI|SAT"
_DOW_ITEM = re.compile(rf"^(?:\*|\?|L|(?:\d+|{_DAY_NAMES})(?:-(?:\d+|{_DAY_NAMES}))?(?:/\d+)?|\*/\d+|"
                       rf"(?:\d+|{_DAY_NAMES})#[1-5]|(?:\d+|{_DAY_NAMES})L)$", re.IGNORECASE)


def _quartz_day(token: str) -> str:
    """A Quartz day-of-week number (1 = Sunday … 7 = Saturday) as croniter's (0 … 6); names stay."""
    if not token.isdigit():
        return token.upper()
    day = int(token)
    if not 1 <= day <= 7:
        raise ScheduleError(f"day-of-week {day} is out of range (Quartz counts 1-7 from Sunday)")
    return str(day - 1)


def _dow_item(item: str) -> str:
    if not _DOW_ITEM.match(item):
        raise ScheduleError(f"day-of-week '{item}' is not supported")
    upper = item.upper()
    if upper in ("*", "?"):
        return "*"
    if upper == "L":  # alone, the last day of the week: Saturday
        return "6"
    if upper.startswith("*/"):
        return upper
    if upper.endswith("L"):
        return "L" + _quartz_day(upper[:-1])
    if "#" in upper:
        day, nth = upper.split("#")
        return f"{_quartz_day(day)}#{nth}"
    span, _, step = upper.partition("/")
    start, _, end = span.partition("-")
    text = _quartz_day(start) + (f"-{_quartz_day(end)}" if end else "")
    return text + (f"/{step}" if step else "")


def quartz_to_croniter(text: str) -> str:
    """Translate a Quartz cron expression (6 or 7 fields) into croniter's seconds-first syntax."""
    fields = text.split()
    if len(fields) not in (6, 7):
        raise ScheduleError(f"a Quartz cron expression has 6 or 7 fields (second minute hour day-of-month month "
                            f"day-of-week [year]), got {len(fields)}")
    dom, dow = fields[3], fields[5]
    if dom not in ("?", "*") and dow not in ("?", "*"):
        raise ScheduleError("day-of-month and day-of-week cannot both be given: set one of them to '?'")
    if re.search(r"LW|L-\d", dom.upper()):
        raise ScheduleError(f"day-of-month '{dom}' is not supported")
    fields[3] = "*" if dom == "?" else dom
    fields[5] = ",".join(_dow_item(item) for item in dow.split(","))
    expression = " ".join(fields)
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise ScheduleError("not a valid cron expression")
    return expression


def parse_schedule(text: str | int | None) -> Schedule:
    """A duration, or else a Quartz cron expression; raises ScheduleError naming what is wrong."""
    raw = str(text if text is not None else "").strip()
    if raw == "":
        return Schedule()
    try:
        return Schedule(interval_ms=parse_duration(raw))
    except DurationError:
        pass
    try:
        return Schedule(cron=_translate(raw))
    except ScheduleError as exc:
        raise ScheduleError(f"'{raw}' is neither a duration (e.g. 30 min, 6h) nor a Quartz cron expression "
                            f"(e.g. 0 0 */6 * * ?): {exc}") from None


@lru_cache(maxsize=256)
def _translate(raw: str) -> str:
    return quartz_to_croniter(raw)


def _next_fire_ms(expression: str, after_ms: int) -> int | None:
    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    try:
        fire = croniter(expression, start, second_at_beginning=True, max_years_between_matches=50).get_next(datetime)
    except (CroniterError, ValueError):  # e.g. a year field that has passed: never fires again
        return None
    return int(fire.timestamp() * 1000)
