"""The sync's "now", kept track of: until when does a sync's answer hold?

A sync reads the time only by comparing it: a retry is due (`now >= retryAt`), a readiness timeout has passed
(`now - since >= timeout`), a periodic savepoint is due. So the answer a sync gave at time t is the answer it
would give at any time that leaves every one of those comparisons as it was. `Now` is the sync's `now_ms` (an
int, so every caller works unchanged) that notes each comparison made with it, or with `now ± x`, as the
interval of times over which that comparison keeps its outcome; `Window` is their intersection.

Any other use of the time (dividing it, formatting it, hashing it, subtracting it from something) cannot be
followed this way; it marks the window `escaped`, and an escaped sync's answer is not known to hold at any other
time. `sync/settled.py` keeps an answer only for a sync that did not escape.

One limit, kept by the core's own code: C functions that read an int's value directly (indexing and slicing,
`%d` formatting, `datetime.fromtimestamp(now)` of the int itself) do not pass through these methods. The core
turns the time into anything else only by arithmetic (`now_ms / 1000`, followed as an escape); a new use of the
time must do the same. Writing the time into the answer needs no care: the status then differs from the one the
sync was given, and such an answer is never kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NEVER = 2**63 - 1  # no comparison bounds the window on that side


@dataclass
class Window:
    """The times (ms) over which every comparison made so far keeps its outcome: [low, high)."""

    at: int
    low: int = -NEVER
    high: int = NEVER
    escaped: str | None = None  # the first use of the time that could not be followed

    def before(self, bound: int | float) -> bool:
        """`now < bound` at `at`; the window shrinks to the side of `bound` that `at` is on."""
        edge = math.ceil(bound)  # now is whole milliseconds: now < 5.5 ⇔ now < 6
        if self.at < edge:
            self.high = min(self.high, edge)
            return True
        self.low = max(self.low, edge)
        return False

    def escape(self, how: str) -> None:
        if self.escaped is None:
            self.escaped = how

    def holds_at(self, time_ms: int) -> bool:
        return self.escaped is None and self.low <= time_ms < self.high


def plain(now_ms: int) -> int:
    """The time as a plain number, not followed: only for a use the caller accounts for itself."""
    return int.__int__(now_ms)


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, (bool, Now))


class Now(int):
    """`now_ms + offset` as an int that reports every comparison to its window (offset 0: the time itself)."""

    window: Window
    offset: int

    def __new__(cls, window: Window, offset: int = 0) -> Now:
        value = super().__new__(cls, window.at + offset)
        value.window, value.offset = window, offset
        return value

    @classmethod
    def start(cls, now_ms: int) -> Now:
        return cls(Window(int(now_ms)))

    # now + offset < x  ⇔  now < x - offset
    def __lt__(self, other: Any) -> bool:
        if not _plain(other):
            return self._escape("<", other)
        return self.window.before(other - self.offset)

    def __ge__(self, other: Any) -> bool:
        if not _plain(other):
            return self._escape(">=", other)
        return not self.window.before(other - self.offset)

    def __le__(self, other: Any) -> bool:  # now + offset <= x  ⇔  now < floor(x) - offset + 1
        if not _plain(other):
            return self._escape("<=", other)
        return self.window.before(math.floor(other) + 1 - self.offset)

    def __gt__(self, other: Any) -> bool:
        if not _plain(other):
            return self._escape(">", other)
        return not self.window.before(math.floor(other) + 1 - self.offset)

    def __eq__(self, other: Any) -> bool:
        if not _plain(other):
            if other is None or isinstance(other, str):
                return False  # never equal, at any time
            return self._escape("==", other)
        if other != math.floor(other):
            return False
        at_least = not self.window.before(other - self.offset)
        below_next = self.window.before(other - self.offset + 1)
        return at_least and below_next

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    # now + a, now - a: still the time, shifted; anything else leaves the window's view
    def __add__(self, other: Any) -> Any:
        if isinstance(other, int) and not isinstance(other, (bool, Now)):
            return Now(self.window, self.offset + other)
        return self._escaped_value("+", int(self) + other if _plain(other) else NotImplemented)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, int) and not isinstance(other, (bool, Now)):
            return Now(self.window, self.offset - other)
        if isinstance(other, Now):
            if other.window is self.window:
                return self.offset - other.offset  # the same time on both sides: a constant
            return self._escaped_value("- another now", int.__int__(self) - int.__int__(other))
        if _plain(other):
            return self._escaped_value("-", int.__int__(self) - other)
        return NotImplemented

    def __rsub__(self, other: Any) -> Any:
        return self._escaped_value("x - now", other - int.__int__(self))

    def _escape(self, how: str, other: Any) -> bool:
        self.window.escape(f"now {how} {type(other).__name__}")
        value = int.__int__(self)
        if how == "<":
            return bool(value < other)
        if how == ">=":
            return bool(value >= other)
        if how == "<=":
            return bool(value <= other)
        if how == ">":
            return bool(value > other)
        return bool(value == other)

    def _escaped_value(self, how: str, value: Any) -> Any:
        self.window.escape(f"now {how}")
        return value

    # A copy (of a status the time was written into) is the plain number: answers carry no window.
    def __copy__(self) -> int:
        return int.__int__(self)

    def __deepcopy__(self, memo: Any) -> int:
        return int.__int__(self)

    def __reduce__(self) -> Any:
        return int, (int.__int__(self),)

    def __hash__(self) -> int:
        self.window.escape("hash(now)")
        return int.__hash__(self)

    def __bool__(self) -> bool:
        return int.__int__(self) != 0

    def __repr__(self) -> str:
        self.window.escape("repr(now)")
        return int.__repr__(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        self.window.escape("format(now)")
        return int.__int__(self).__format__(spec)


def _escaping(name: str) -> Any:
    method = getattr(int, name)

    def escaping(self: Now, *args: Any) -> Any:
        self.window.escape(f"now.{name}")
        return method(int.__int__(self), *args)

    escaping.__name__ = name
    return escaping


for _name in ("__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
              "__rmod__", "__divmod__", "__rdivmod__", "__pow__", "__rpow__", "__neg__", "__abs__", "__int__",
              "__float__", "__index__", "__round__", "__trunc__", "__floor__", "__ceil__", "__and__", "__or__",
              "__xor__", "__lshift__", "__rshift__", "__invert__", "__pos__"):
    setattr(Now, _name, _escaping(_name))
