"""From the evaluated rates to new parallelisms (Apache's `JobVertexScaler` and `ScalingExecutor`).

Per vertex: the scale factor capacity / TPR within the max factors, the bounds (min/max parallelism, widened to
include the current one, and the vertex's key-group count), the alignment to key groups, the scale-down delay and
the ineffective scale-up check. Then the job-level gate: nothing changes unless some vertex that would change is
outside its utilization band, and then every vertex with a change is rescaled.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .config import AutoscalerConfig
from .evaluate import VertexEvaluation
from .records import DelayedScaleDown, ScalingEntry


@dataclass(frozen=True)
class VertexDecision:
    """What the autoscaler recommends for one vertex."""
    vertex_id: str
    current: int
    new: int
    outside_bound: bool
    tpr: float
    expected_rate: float
    target_rate: float

    @property
    def changes(self) -> bool:
        return self.new != self.current


@dataclass(frozen=True)
class VertexStep:
    """One vertex's decision and what it leaves for the next cycle."""
    decision: VertexDecision
    delayed: DelayedScaleDown | None        # None: no scale-down is waiting
    ineffective: bool = False               # the last scale-up of this vertex did not help


def scale_factor(evaluation: VertexEvaluation, settings: AutoscalerConfig) -> float:
    """capacity / TPR within [1 - scale-down.max-factor, 1 + scale-up.max-factor] (NaN stays NaN)."""
    factor = evaluation.target_capacity / evaluation.tpr if evaluation.tpr != 0 else math.inf
    if math.isnan(factor) or (math.isinf(evaluation.target_capacity) and math.isinf(evaluation.tpr)):
        return math.nan
    return min(1 + settings.scale_up_max_factor, max(1 - settings.scale_down_max_factor, factor))


def bounded_parallelism(evaluation: VertexEvaluation, settings: AutoscalerConfig) -> int:
    """ceil(factor · p) within [min, max] (both widened to include p) and the vertex's max parallelism."""
    current = evaluation.parallelism
    factor = scale_factor(evaluation, settings)
    if math.isnan(factor) or math.isnan(evaluation.target_capacity):
        return current  # an unknown rate (or infinity over infinity) leaves the vertex where it is
    low, high = min(current, settings.min_parallelism), max(current, settings.max_parallelism)
    wanted = math.ceil(factor * current)
    return min(max(low, wanted), evaluation.max_parallelism, high)


def align(new: int, current: int, key_groups: int, upper: int, mode: str) -> int:
    """The first parallelism from `new` upwards that spreads `key_groups` evenly (EVENLY_SPREAD: divides it;
    BALANCED: also the first that gives a subtask fewer key groups); a scale-down never passes `current`.
    Apache's `BuiltInAlignmentMode`; N = 120, new = 7 gives 8; N = 128, new = 24 gives 26 (BALANCED) or 32."""
    if mode == "OFF" or key_groups <= 0 or new <= 0:
        return new
    bound = min(key_groups, upper)
    if new < current:
        bound = min(current, bound)
    groups_at_new = key_groups // new
    for candidate in range(new, bound + 1):
        if key_groups % candidate == 0:
            return candidate
        if mode == "BALANCED" and key_groups // candidate < groups_at_new:
            return candidate
    return new


def recommend(evaluation: VertexEvaluation, settings: AutoscalerConfig) -> int:
    """The parallelism the vertex's rates ask for, aligned to its key groups when it has a keyed input."""
    current = evaluation.parallelism
    new = bounded_parallelism(evaluation, settings)
    if new == current or not evaluation.keyed:
        return new
    upper = min(evaluation.max_parallelism, max(current, settings.max_parallelism))
    return align(new, current, evaluation.max_parallelism, upper, settings.alignment_mode)


def is_ineffective(evaluation: VertexEvaluation, history: tuple[ScalingEntry, ...],
                   settings: AutoscalerConfig) -> bool:
    """The vertex's last scale-up gained less than `scaling.effectiveness.threshold` of what it was expected to."""
    if not history:
        return False
    last = history[-1]
    if last.new <= last.current or evaluation.parallelism != last.new:
        return False
    expected_gain = last.expected_rate - last.tpr
    if expected_gain <= 0 or not math.isfinite(evaluation.tpr):
        return False
    return (evaluation.tpr - last.tpr) / expected_gain < settings.effectiveness_threshold


def _delay_scale_down(new: int, outside: bool, waiting: DelayedScaleDown | None, now_ms: int,
                      settings: AutoscalerConfig) -> tuple[int | None, bool, DelayedScaleDown]:
    """A scale-down waits `scale-down.interval` from the first time it was asked for, then takes the largest
    recommendation of the last interval. (None, ...) while it waits."""
    interval = settings.scale_down_interval_ms
    first = waiting.first_ms if waiting is not None else now_ms
    kept = tuple(r for r in (waiting.recommendations if waiting else ()) if r[0] >= now_ms - interval)
    record = DelayedScaleDown(first, kept + ((now_ms, new, outside),))
    if now_ms - interval < first:
        return None, False, record
    _, largest, largest_outside = max(record.recommendations, key=lambda r: (r[1], r[0]))
    return largest, largest_outside, record


def step_vertex(evaluation: VertexEvaluation, history: tuple[ScalingEntry, ...], waiting: DelayedScaleDown | None,
                now_ms: int, settings: AutoscalerConfig) -> VertexStep:
    current = evaluation.parallelism
    new = recommend(evaluation, settings)
    outside = evaluation.outside_bound
    delayed: DelayedScaleDown | None = None
    ineffective = False
    if new > current:
        ineffective = is_ineffective(evaluation, history, settings)
        if ineffective and settings.effectiveness_detection:
            new = current
    elif new < current and settings.scale_down_interval_ms > 0:
        delayed_new, outside, delayed = _delay_scale_down(new, outside, waiting, now_ms, settings)
        new = current if delayed_new is None else delayed_new
    expected = evaluation.tpr / current * new if current > 0 else math.nan
    decision = VertexDecision(evaluation.vertex_id, current, new, outside, evaluation.tpr, expected,
                              evaluation.target_rate)
    return VertexStep(decision, delayed, ineffective)


def worth_scaling(decisions: Mapping[str, VertexDecision]) -> bool:
    """Apache scales only when a vertex that would change is outside its utilization band."""
    return any(d.changes and d.outside_bound for d in decisions.values())


def _vertex_line(decision: VertexDecision) -> str:
    return (f"{{ Vertex ID {decision.vertex_id} | Parallelism {decision.current} -> {decision.new} | "
            f"Processing capacity {_java_float(decision.tpr)} -> {_java_float(decision.expected_rate)} | "
            f"Target data rate {_java_float(decision.target_rate)}}}")


def _java_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.2f}"


def report(decisions: Mapping[str, VertexDecision], executed: bool) -> str:
    """Apache's ScalingReport message: its header, then one line per vertex that changes."""
    header = ("Scaling execution enabled, begin scaling vertices:" if executed else
              "Scaling execution disabled by config job.autoscaler.scaling.enabled:false, "
              "recommended parallelism change:")
    return header + "".join(_vertex_line(d) for d in sorted(decisions.values(), key=lambda d: d.vertex_id)
                            if d.changes)
