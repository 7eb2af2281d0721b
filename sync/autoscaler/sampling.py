"""One sample of the metric window from what the REST API reported (Apache's `ScalingMetrics`)."""
from __future__ import annotations

import math

from .config import AutoscalerConfig
from .records import JobMetrics, Sample, VertexMetrics, VertexSample


def _records_in(vertex: VertexMetrics) -> float | None:
    """`read-records`; a source reads nothing from the network, so its own counters count (a DataGen source
    reports numRecordsIn 0 and only numRecordsOut)."""
    if not vertex.is_source:
        return vertex.records_in
    for value in (vertex.records_in, vertex.source_records_in, vertex.source_records_out):
        if value:
            return value
    return vertex.records_in if vertex.records_in is not None else vertex.source_records_in


def _load(vertex: VertexMetrics, aggregator: str) -> float | None:
    if vertex.finished:
        return 0.0
    busy = {"MAX": vertex.busy_max, "MIN": vertex.busy_min, "AVG": vertex.busy_avg}[aggregator]
    if busy is None or not math.isfinite(busy):
        return None
    return max(0.0, busy) / 1000.0


def _observed_tpr(vertex: VertexMetrics, lag: float, settings: AutoscalerConfig) -> float | None:
    """The rate a source really reached while it had a backlog of more than the lag threshold. Without such a
    backlog Apache stores the average of the earlier observations, which leaves the average unchanged: here the
    sample simply carries none."""
    rate = vertex.source_in_per_second
    if rate is None:
        return None
    if rate == 0:
        return math.inf
    if lag < settings.observed_tpr_lag_threshold_ms / 1000.0 * rate:
        return None
    backpressure = vertex.backpressure_avg or 0.0
    return rate / (1 - backpressure / 1000.0) if backpressure < 1000 else None


def vertex_sample(vertex: VertexMetrics, settings: AutoscalerConfig) -> VertexSample:
    lag = (vertex.pending_records or 0.0) if vertex.is_source else None
    return VertexSample(
        records_in=_records_in(vertex), records_out=vertex.records_out,
        load=_load(vertex, "MAX" if settings.busy_time_aggregator == "AVG" else settings.busy_time_aggregator),
        accumulated_busy=vertex.accumulated_busy_ms,
        in_per_second=None if vertex.is_source else vertex.in_per_second,
        lag=lag, observed_tpr=_observed_tpr(vertex, lag, settings) if lag is not None else None)


def take_sample(job: JobMetrics, settings: AutoscalerConfig, now_ms: int) -> Sample:
    return Sample(now_ms, {vertex.vertex_id: vertex_sample(vertex, settings) for vertex in job.vertices})
