"""From the metric window to each vertex's rates (Apache's `ScalingMetricEvaluator`): the target data rate
propagated from the sources in topological order, the catch-up rate, the true processing rate (TPR: records
per busy second) and the utilization band, as `VertexEvaluation`s.

Rates are records per second; `math.nan` means "not known" and keeps the vertex where it is, `math.inf` "no limit"
(a vertex that processed nothing, or was never busy).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .config import AutoscalerConfig
from .records import JobMetrics, Sample, VertexMetrics, VertexSample


@dataclass(frozen=True)
class VertexEvaluation:
    vertex_id: str
    parallelism: int
    max_parallelism: int
    target_rate: float          # TARGET_DATA_RATE
    catch_up_rate: float        # CATCH_UP_DATA_RATE
    tpr: float                  # TRUE_PROCESSING_RATE of all subtasks together
    scale_up_threshold: float   # below it the vertex is too slow
    scale_down_threshold: float # above it the vertex is too fast
    target_capacity: float      # the processing rate that would run at the target utilization
    keyed: bool                 # has a HASH input: its parallelism is aligned to its key groups
    load: float                 # average busy ratio over the window (for the report)

    @property
    def outside_bound(self) -> bool:
        return self.tpr < self.scale_up_threshold or self.tpr > self.scale_down_threshold


def java_round(value: float) -> float:
    """Java's Math.round (half up), which Apache uses: Python's round() rounds half to even."""
    return value if math.isinf(value) or math.isnan(value) else float(math.floor(value + 0.5))


def _series(samples: tuple[Sample, ...], vertex: str, pick: Callable[[VertexSample], float | None]
            ) -> list[tuple[int, float]]:
    points = []
    for sample in samples:
        metrics = sample.vertices.get(vertex)
        value = pick(metrics) if metrics is not None else None
        if value is not None and not math.isnan(value):
            points.append((sample.at_ms, value))
    return points


def slope(samples: tuple[Sample, ...], vertex: str, pick: Callable[[VertexSample], float | None]) -> float:
    """Per second, between the first and the last sample that have the value (NaN with fewer than two)."""
    points = _series(samples, vertex, pick)
    if len(points) < 2:
        return math.nan
    (t0, x0), (t1, x1) = points[0], points[-1]
    return 1000.0 * (x1 - x0) / max(1, t1 - t0)


def average(samples: tuple[Sample, ...], vertex: str, pick: Callable[[VertexSample], float | None],
            min_count: int = 1) -> float:
    """Mean of the finite values; +inf when every value is infinite; NaN with fewer than `min_count` values."""
    values = [value for _, value in _series(samples, vertex, pick)]
    if len(values) < max(1, min_count):
        return math.nan
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else math.inf


def latest(samples: tuple[Sample, ...], vertex: str, pick: Callable[[VertexSample], float | None]) -> float:
    points = _series(samples, vertex, pick)
    return points[-1][1] if points else math.nan


def _in(m: VertexSample) -> float | None:
    return m.records_in


def _out(m: VertexSample) -> float | None:
    return m.records_out


def _lag(m: VertexSample) -> float | None:
    return m.lag


def _load(m: VertexSample) -> float | None:
    return m.load


def _outputs(job: JobMetrics) -> dict[str, list[str]]:
    outputs: dict[str, list[str]] = {v.vertex_id: [] for v in job.vertices}
    for vertex in job.vertices:
        for upstream, _ in vertex.inputs:
            outputs.setdefault(upstream, []).append(vertex.vertex_id)
    return outputs


def _edge_rate(samples: tuple[Sample, ...], job: JobMetrics, outputs: Mapping[str, list[str]], upstream: str,
               vertex: VertexMetrics) -> float:
    """The records per second from `upstream` into `vertex` (Apache's `computeEdgeDataRate`)."""
    inputs = [u for u, _ in vertex.inputs]
    if len(inputs) == 1:
        return slope(samples, vertex.vertex_id, _in)
    others = [u for u in inputs if u != upstream]
    if all(len(outputs.get(u, ())) == 1 for u in others):
        return slope(samples, vertex.vertex_id, _in) - sum(slope(samples, u, _out) for u in others)
    return slope(samples, upstream, _out)


def _rates(samples: tuple[Sample, ...], job: JobMetrics, settings: AutoscalerConfig
           ) -> dict[str, tuple[float, float]]:
    """(target rate, catch-up rate) of every vertex, propagated from the sources in topological order."""
    catch_up_s = settings.catch_up_ms / 1000.0
    outputs = _outputs(job)
    rates: dict[str, tuple[float, float]] = {}
    for vertex in job.vertices:
        vid = vertex.vertex_id
        if vertex.is_source:
            lag = latest(samples, vid, _lag)
            lag = 0.0 if math.isnan(lag) else lag
            growth = slope(samples, vid, _lag)
            target = max(0.0, slope(samples, vid, _in) + (0.0 if math.isnan(growth) else growth))
            rates[vid] = (target, lag / catch_up_s if catch_up_s > 0 else 0.0)
            continue
        target = catch_up = 0.0
        for upstream, _ in vertex.inputs:
            upstream_in = slope(samples, upstream, _in)
            edge = _edge_rate(samples, job, outputs, upstream, vertex)
            ratio = edge / upstream_in if upstream_in > 0 and edge > 0 else 0.0
            up_target, up_catch_up = rates.get(upstream, (0.0, 0.0))
            target += up_target * ratio
            catch_up += up_catch_up * ratio
        rates[vid] = (target, catch_up)
    return rates


def is_processing_backlog(samples: tuple[Sample, ...], job: JobMetrics, settings: AutoscalerConfig) -> bool:
    """Some source's backlog is more than `backlog-processing.lag-threshold` of its input."""
    for vertex in job.vertices:
        if not vertex.is_source:
            continue
        lag, rate = latest(samples, vertex.vertex_id, _lag), slope(samples, vertex.vertex_id, _in)
        if math.isnan(lag) or math.isnan(rate) or lag <= 0:
            continue
        seconds_of_input = lag / rate if rate != 0 else math.inf
        if seconds_of_input > settings.backlog_lag_threshold_ms / 1000.0:
            return True
    return False


def true_processing_rate(samples: tuple[Sample, ...], vertex: VertexMetrics, settings: AutoscalerConfig) -> float:
    """Records per busy second of all subtasks together (Apache's `computeTrueProcessingRate`)."""
    vid = vertex.vertex_id
    if settings.busy_time_aggregator == "AVG":
        busy_ms = slope(samples, vid, lambda m: m.accumulated_busy) / max(1, vertex.parallelism)
        records = slope(samples, vid, _in)
    else:
        busy_ms = average(samples, vid, _load) * 1000.0
        records = math.nan if vertex.is_source else average(samples, vid, lambda m: m.in_per_second)
        if math.isnan(records) or math.isinf(records):
            records = slope(samples, vid, _in)
    if math.isnan(busy_ms) or math.isnan(records):
        busy_rate = math.nan
    elif records == 0 or busy_ms <= 0:
        busy_rate = math.inf
    else:
        busy_rate = records / (busy_ms / 1000.0)
    if not vertex.is_source:
        return busy_rate
    observed = average(samples, vid, lambda m: m.observed_tpr, settings.observed_tpr_min_observations)
    if math.isnan(observed):
        return busy_rate
    if not math.isfinite(busy_rate) or busy_rate > observed * (1 + settings.observed_tpr_switch_threshold):
        return observed
    return busy_rate


def capacity(target: float, catch_up: float, utilization: float, with_restart: bool,
             settings: AutoscalerConfig) -> float:
    """The processing rate needed to run at `utilization`, catch up on the backlog and, with the restart,
    make up for the records that arrive while the job restarts (Apache's `getTargetProcessingCapacity`)."""
    if math.isnan(target) or math.isnan(catch_up):
        return math.nan
    utilization = min(1.0, max(0.0, utilization))
    if utilization == 0:
        return math.inf
    catch_up_s = settings.catch_up_ms / 1000.0
    restart = target * (settings.restart_ms / 1000.0) / catch_up_s if with_restart and catch_up_s > 0 else 0.0
    return java_round(catch_up + restart + target / utilization)


def evaluate(samples: tuple[Sample, ...], job: JobMetrics, settings: AutoscalerConfig
             ) -> dict[str, VertexEvaluation]:
    """Every vertex's rates over the window."""
    rates = _rates(samples, job, settings)
    backlog = is_processing_backlog(samples, job, settings)
    u_max, u_min = (1.0, 0.0) if backlog else (settings.utilization_max, settings.utilization_min)
    evaluations = {}
    for vertex in job.vertices:
        target, catch_up = rates[vertex.vertex_id]
        evaluations[vertex.vertex_id] = VertexEvaluation(
            vertex_id=vertex.vertex_id, parallelism=vertex.parallelism, max_parallelism=vertex.max_parallelism,
            target_rate=target, catch_up_rate=catch_up, tpr=true_processing_rate(samples, vertex, settings),
            scale_up_threshold=capacity(target, catch_up, u_max, False, settings),
            scale_down_threshold=capacity(target, catch_up, u_min, True, settings),
            target_capacity=capacity(target, catch_up, settings.target_utilization, True, settings),
            keyed=any(strategy.upper() == "HASH" for _, strategy in vertex.inputs),
            load=average(samples, vertex.vertex_id, _load))
    return evaluations
