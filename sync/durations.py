"""Flink duration strings (`10 s`, `5 min`, `6h`, `1d`, `PT1M`, plain milliseconds)."""
from __future__ import annotations

import re


class DurationError(ValueError):
    pass


_UNITS = {
    "ms": 1, "milli": 1, "millis": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_duration(text: str | int) -> int:
    """Milliseconds of a Flink Duration option value (for cron expressions see sync/schedule.py)."""
    raw = str(text).strip()
    match = _DURATION.match(raw)
    if match:
        unit = match.group(2).lower()
        if unit == "":
            return int(match.group(1))
        if unit in _UNITS:
            return int(match.group(1)) * _UNITS[unit]
    iso = _ISO.match(raw)
    if iso and any(iso.groups()):
        days, hours, minutes, seconds = iso.groups()
        return int((int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
                    + float(seconds or 0)) * 1000)
    raise DurationError(f"'{text}' is not a duration (e.g. 30 s, 5 min, 6h, 1d)")
