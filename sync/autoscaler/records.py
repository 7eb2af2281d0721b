"""The autoscaler's typed records: what the hook observed of a job (`JobMetrics`), one sample of the metric window
(`VertexSample`), and the state kept between syncs (`AutoscalerState`) with its ConfigMap encoding.

The state lives in the ConfigMap child `autoscaler-<name>` (Apache's name and labels), never in the hook process:
every sync reads it from the observed children and returns it, updated, as a child. Its data keys:

| key | content |
|---|---|
| `collectedMetrics` | JSON list of samples `[time ms, {vertex: [recordsIn, recordsOut, load, accumulatedBusy, inPerSecond, lag, observedTpr]}]`, oldest first |
| `scalingHistory` | JSON `{vertex: [[time ms, from, to, tpr, expectedRate], ...]}` (at most `history.max.count`, none older than `history.max.age`) |
| `delayedScaleDown` | JSON `{vertex: {"first": time ms, "recommendations": [[time ms, parallelism, outsideBound], ...]}}` |
| `parallelismOverrides` | Apache's `vertex:parallelism,...` of every vertex, after the last executed decision |
| `resetNonce` | the `job.autoscalerResetNonce` the state was last wiped for |
| `lastAdvice` | JSON `[overrides, time ms]` of the last advisory report (repeated only after `scaling.event.interval`) |

The encoded data is bounded (`MAX_STATE_CHARS`, below the API server's 1 MiB per object): the oldest samples are
dropped first, as Apache's `trimHistoryToMaxCmSize` does. A value that cannot be read is treated as absent (Apache
deletes it), so a damaged ConfigMap costs at most one metric window, never a sync.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MAX_STATE_CHARS = 900_000
#: The fields of a `VertexSample`, in their encoded order.
SAMPLE_FIELDS = ("records_in", "records_out", "load", "accumulated_busy", "in_per_second", "lag", "observed_tpr")


@dataclass(frozen=True)
class VertexMetrics:
    """One job vertex as the REST API reports it on one sync (None: Flink did not report the metric)."""
    vertex_id: str
    parallelism: int
    max_parallelism: int
    inputs: tuple[tuple[str, str], ...] = ()   # (upstream vertex id, ship strategy: HASH, REBALANCE, FORWARD, ...)
    finished: bool = False
    records_in: float | None = None            # `read-records` of GET /jobs/{id} (accumulated)
    records_out: float | None = None           # `write-records`
    accumulated_busy_ms: float | None = None   # `accumulated-busy-time`
    busy_max: float | None = None              # busyTimeMsPerSecond over the subtasks: max, min, avg
    busy_min: float | None = None
    busy_avg: float | None = None
    backpressure_avg: float | None = None      # backPressuredTimeMsPerSecond, avg over the subtasks
    in_per_second: float | None = None         # numRecordsInPerSecond, summed over the subtasks
    source_in_per_second: float | None = None  # Source__*.numRecordsInPerSecond, summed
    source_records_in: float | None = None     # Source__*.numRecordsIn, summed
    source_records_out: float | None = None    # Source__*.numRecordsOut, summed
    pending_records: float | None = None       # *.pendingRecords, summed (None: the source reports no backlog)

    @property
    def is_source(self) -> bool:
        return not self.inputs


@dataclass(frozen=True)
class JobMetrics:
    """What one sync learnt about a running job for the autoscaler (GET /jobs/{id} and the subtask metrics)."""
    job_id: str
    state: str
    running_since_ms: int | None            # timestamps.RUNNING: moves on every restart and rescale
    all_tasks_running: bool                 # every task RUNNING or FINISHED (Apache's effective RUNNING)
    io_complete: bool                       # read/write-records-complete: false right after a restart
    vertices: tuple[VertexMetrics, ...]     # in topological order

    def vertex(self, vertex_id: str) -> VertexMetrics | None:
        return next((v for v in self.vertices if v.vertex_id == vertex_id), None)


@dataclass(frozen=True)
class VertexSample:
    """One vertex in one sample of the metric window (Apache's `ScalingMetric`s, rounded to 3 decimals)."""
    records_in: float | None = None
    records_out: float | None = None
    load: float | None = None               # busy time per second / 1000 by the configured aggregator
    accumulated_busy: float | None = None
    in_per_second: float | None = None      # non-sources: numRecordsInPerSecond
    lag: float | None = None                # sources: pending records
    observed_tpr: float | None = None       # sources: the rate observed while the source had a backlog


@dataclass(frozen=True)
class Sample:
    at_ms: int
    vertices: Mapping[str, VertexSample]


@dataclass(frozen=True)
class ScalingEntry:
    """One executed scaling of one vertex (Apache's `ScalingSummary`)."""
    at_ms: int
    current: int
    new: int
    tpr: float
    expected_rate: float


@dataclass(frozen=True)
class DelayedScaleDown:
    """The scale-downs a vertex has asked for since `first_ms` (Apache's `DelayedScaleDown`)."""
    first_ms: int
    recommendations: tuple[tuple[int, int, bool], ...]   # (time ms, parallelism, outside its utilization bound)


@dataclass(frozen=True)
class AutoscalerState:
    samples: tuple[Sample, ...] = ()
    history: Mapping[str, tuple[ScalingEntry, ...]] = field(default_factory=dict)
    delayed: Mapping[str, DelayedScaleDown] = field(default_factory=dict)
    overrides: Mapping[str, int] = field(default_factory=dict)
    reset_nonce: int | None = None
    advice: tuple[str, int] | None = None   # the last advisory report (its overrides, when) for deduplication


# --------------------------------------------------------------------------- overrides (Flink map syntax)


def overrides_text(overrides: Mapping[str, int]) -> str:
    """`vertex:parallelism,...` sorted by vertex, so the same map always gives the same string (FLINK-33710)."""
    return ",".join(f"{vertex}:{overrides[vertex]}" for vertex in sorted(overrides))


def parse_overrides(text: str | None) -> dict[str, int]:
    """The map of a `pipeline.jobvertex-parallelism-overrides` value; entries that are not `id:positive int` are
    left out."""
    parsed: dict[str, int] = {}
    for item in (text or "").split(","):
        vertex, _, value = item.partition(":")
        if vertex.strip() and value.strip().isdigit() and int(value.strip()) > 0:
            parsed[vertex.strip().lower()] = int(value.strip())
    return parsed


# --------------------------------------------------------------------------- ConfigMap encoding


def _number(value: float | None) -> Any:
    """JSON has no infinity: +inf is "inf", NaN and None are null; rounded as Apache rounds its metrics."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    rounded = round(value, 3)
    return rounded if rounded != 0 or value == 0 else math.copysign(0.001, value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def encode_samples(samples: tuple[Sample, ...]) -> str:
    return _dumps([[s.at_ms, {v: [_number(getattr(m, f)) for f in SAMPLE_FIELDS] for v, m in s.vertices.items()}]
                   for s in samples])


def _decode_samples(text: str) -> tuple[Sample, ...]:
    samples = []
    for at_ms, vertices in json.loads(text):
        decoded = {str(v): VertexSample(*(_float(x) for x in values[:len(SAMPLE_FIELDS)]))
                   for v, values in dict(vertices).items()}
        samples.append(Sample(int(at_ms), decoded))
    return tuple(sorted(samples, key=lambda s: s.at_ms))


def _encode_history(history: Mapping[str, tuple[ScalingEntry, ...]]) -> str:
    return _dumps({v: [[e.at_ms, e.current, e.new, _number(e.tpr), _number(e.expected_rate)] for e in entries]
                   for v, entries in history.items() if entries})


def _decode_history(text: str) -> dict[str, tuple[ScalingEntry, ...]]:
    return {str(v): tuple(ScalingEntry(int(at), int(cur), int(new), _float(tpr) or 0.0, _float(exp) or 0.0)
                          for at, cur, new, tpr, exp in entries)
            for v, entries in dict(json.loads(text)).items()}


def _encode_delayed(delayed: Mapping[str, DelayedScaleDown]) -> str:
    return _dumps({v: {"first": d.first_ms, "recommendations": [list(r) for r in d.recommendations]}
                   for v, d in delayed.items()})


def _decode_delayed(text: str) -> dict[str, DelayedScaleDown]:
    return {str(v): DelayedScaleDown(int(d["first"]), tuple((int(t), int(p), bool(o)) for t, p, o in
                                                            d["recommendations"]))
            for v, d in dict(json.loads(text)).items()}


def _decode_advice(text: str) -> tuple[str, int]:
    overrides, at_ms = json.loads(text)
    return str(overrides), int(at_ms)


def encode_state(state: AutoscalerState, max_chars: int = MAX_STATE_CHARS) -> dict[str, str]:
    """The ConfigMap data of a state, the oldest samples dropped until it fits in `max_chars`."""
    data = {"scalingHistory": _encode_history(state.history), "delayedScaleDown": _encode_delayed(state.delayed),
            "parallelismOverrides": overrides_text(state.overrides)}
    if state.reset_nonce is not None:
        data["resetNonce"] = str(state.reset_nonce)
    if state.advice is not None:
        data["lastAdvice"] = _dumps(list(state.advice))
    fixed = sum(len(key) + len(value) for key, value in data.items())
    samples = state.samples
    encoded = encode_samples(samples)
    while samples and fixed + len(encoded) > max_chars:
        # Drop a tenth at a time: one sample at a time would encode the window hundreds of times.
        samples = samples[max(1, len(samples) // 10):]
        encoded = encode_samples(samples)
    data["collectedMetrics"] = encoded
    return data


_DECODERS: dict[str, Any] = {"collectedMetrics": ("samples", _decode_samples),
                             "scalingHistory": ("history", _decode_history),
                             "delayedScaleDown": ("delayed", _decode_delayed),
                             "parallelismOverrides": ("overrides", parse_overrides),
                             "resetNonce": ("reset_nonce", int),
                             "lastAdvice": ("advice", _decode_advice)}


def decode_state(data: Mapping[str, Any] | None) -> AutoscalerState:
    """The state in a ConfigMap's data; a key that cannot be read is left out (it starts again empty)."""
    state = AutoscalerState()
    for key, (attribute, decode) in _DECODERS.items():
        text = (data or {}).get(key)
        if not isinstance(text, str) or not text:
            continue
        try:
            state = replace(state, **{attribute: decode(text)})
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return state


@dataclass(frozen=True)
class CycleSummary:
    """What one autoscaler cycle of a FlinkDeployment came to, for the hook server's Prometheus metrics (Apache's
    `AutoScaler` metric group): the outcome (`Outcome.phase`, or `metrics_error` when the REST calls failed) and
    per vertex the parallelism Flink runs, the recommended one, the true processing rate and the target rate."""
    namespace: str
    name: str
    phase: str
    metrics_error: bool = False
    parallelism: Mapping[str, int] = field(default_factory=dict)
    recommended: Mapping[str, int] = field(default_factory=dict)
    true_processing_rate: Mapping[str, float] = field(default_factory=dict)
    target_data_rate: Mapping[str, float] = field(default_factory=dict)
