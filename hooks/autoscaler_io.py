"""The autoscaler's REST calls: what one sync collects of a running job (`collect_job_metrics`) and the in-place
rescale through the adaptive scheduler (`rescale_in_place`). Both go through the `FlinkApi` port, so they run
against real Flink (every call with the client's timeouts and size limit) and the in-memory fake alike.

Per sync: GET /jobs/{id} (topology, max parallelism, IO counters, task states), then for each vertex that has not
finished the names of its subtask metrics and the aggregated values of the ones the autoscaler reads (Flink answers
[] for a whole request that names an unknown metric, so the names are listed first, as Apache's collector does).
The number of vertices and of metric names per request are bounded.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sync.autoscaler.realize import requirements_body
from sync.autoscaler.records import JobMetrics, VertexMetrics

from .flink_api import FlinkApi
from .flink_rest import FlinkBadResponse

MAX_VERTICES = 100
MAX_NAMES_PER_REQUEST = 40
_SOURCE_IN_RATE = re.compile(r"^Source__.+\.numRecordsInPerSecond$")
_SOURCE_IN = re.compile(r"^Source__.+\.numRecordsIn$")
_SOURCE_OUT = re.compile(r"^Source__.+\.numRecordsOut$")
_PENDING = re.compile(r"^.+\.pendingRecords$")
_RUNNING_OR_DONE = {"RUNNING", "FINISHED"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _topological(nodes: Mapping[str, tuple[tuple[str, str], ...]]) -> list[str]:
    """Kahn's algorithm over the plan's edges; ties in id order, so the order is deterministic."""
    remaining = {vertex: {upstream for upstream, _ in inputs if upstream in nodes} for vertex, inputs in nodes.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(vertex for vertex, upstreams in remaining.items() if not upstreams)
        if not ready:
            raise FlinkBadResponse("the job plan has a cycle", endpoint="GET /jobs/{id}")
        for vertex in ready:
            order.append(vertex)
            del remaining[vertex]
        for upstreams in remaining.values():
            upstreams.difference_update(ready)
    return order


def _plan_inputs(details: Mapping[str, Any]) -> dict[str, tuple[tuple[str, str], ...]]:
    nodes = (details.get("plan") or {}).get("nodes") or []
    inputs: dict[str, tuple[tuple[str, str], ...]] = {}
    for node in nodes:
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            inputs[node["id"].lower()] = tuple(
                (str(edge.get("id", "")).lower(), str(edge.get("ship_strategy", "")).upper())
                for edge in node.get("inputs") or [] if isinstance(edge, Mapping))
    return inputs


def _all_tasks_running(vertices: Sequence[Mapping[str, Any]]) -> bool:
    """Apache's effective RUNNING (FLINK-34906): no task in any state but RUNNING or FINISHED."""
    for vertex in vertices:
        tasks = vertex.get("tasks") or {}
        if any(count for state, count in tasks.items() if state.upper() not in _RUNNING_OR_DONE
               and isinstance(count, int)):
            return False
    return True


def _io_complete(vertices: Sequence[Mapping[str, Any]]) -> bool:
    for vertex in vertices:
        metrics = vertex.get("metrics") or {}
        if metrics.get("read-records-complete") is False or metrics.get("write-records-complete") is False:
            return False
    return True


def _sum(values: Mapping[str, Mapping[str, float]], pattern: re.Pattern[str]) -> float | None:
    found = [aggregates.get("sum") for name, aggregates in values.items() if pattern.match(name)]
    numbers = [value for value in found if value is not None]
    return sum(numbers) if numbers else None


def _wanted(names: Sequence[str], is_source: bool) -> list[str]:
    wanted = [name for name in names if name in ("busyTimeMsPerSecond", "numRecordsInPerSecond")]
    if is_source:
        wanted += [name for name in names if name == "backPressuredTimeMsPerSecond"
                   or _SOURCE_IN_RATE.match(name) or _SOURCE_IN.match(name) or _SOURCE_OUT.match(name)
                   or _PENDING.match(name)]
    return wanted[:MAX_NAMES_PER_REQUEST]


def _vertex_values(flink: FlinkApi, job_id: str, vertex_id: str, is_source: bool) -> dict[str, dict[str, float]]:
    names = _wanted(flink.vertex_metric_names(job_id, vertex_id), is_source)
    return flink.vertex_metrics(job_id, vertex_id, names)


def _vertex(flink: FlinkApi, job_id: str, info: Mapping[str, Any], inputs: tuple[tuple[str, str], ...]
            ) -> VertexMetrics:
    vertex_id = str(info["id"]).lower()
    io = info.get("metrics") or {}
    finished = str(info.get("status", "")).upper() == "FINISHED"
    values = {} if finished else _vertex_values(flink, job_id, vertex_id, not inputs)
    busy = values.get("busyTimeMsPerSecond", {})
    parallelism = int(info.get("parallelism") or 1)
    return VertexMetrics(
        vertex_id=vertex_id, parallelism=parallelism,
        max_parallelism=int(info.get("maxParallelism") or parallelism), inputs=inputs, finished=finished,
        records_in=_number(io.get("read-records")), records_out=_number(io.get("write-records")),
        accumulated_busy_ms=_number(io.get("accumulated-busy-time")),
        busy_max=busy.get("max"), busy_min=busy.get("min"), busy_avg=busy.get("avg"),
        backpressure_avg=values.get("backPressuredTimeMsPerSecond", {}).get("avg"),
        in_per_second=values.get("numRecordsInPerSecond", {}).get("sum"),
        source_in_per_second=_sum(values, _SOURCE_IN_RATE), source_records_in=_sum(values, _SOURCE_IN),
        source_records_out=_sum(values, _SOURCE_OUT), pending_records=_sum(values, _PENDING))


def collect_job_metrics(flink: FlinkApi, job_id: str) -> JobMetrics:
    """One sync's view of a job for the autoscaler. Raises `FlinkRestError` (the caller reports it)."""
    details = flink.job_details(job_id)
    vertices = [v for v in details.get("vertices") or [] if isinstance(v, Mapping) and isinstance(v.get("id"), str)]
    if len(vertices) > MAX_VERTICES:
        raise FlinkBadResponse(f"{len(vertices)} job vertices: more than the autoscaler reads ({MAX_VERTICES})",
                               endpoint="GET /jobs/{id}")
    inputs = _plan_inputs(details)
    by_id = {str(v["id"]).lower(): v for v in vertices}
    order = _topological({vertex: inputs.get(vertex, ()) for vertex in by_id})
    state = str(details.get("state", ""))
    running = (details.get("timestamps") or {}).get("RUNNING")
    collected = tuple(_vertex(flink, job_id, by_id[vertex], inputs.get(vertex, ())) for vertex in order) \
        if state == "RUNNING" else ()
    return JobMetrics(job_id=job_id, state=state,
                      running_since_ms=int(running) if isinstance(running, int) and running > 0 else None,
                      all_tasks_running=_all_tasks_running(vertices), io_complete=_io_complete(vertices),
                      vertices=collected)


def rescale_in_place(flink: FlinkApi, job_id: str, overrides: Mapping[str, int]) -> bool:
    """Set the adaptive scheduler's upper bounds to the overrides. False when nothing had to change (or Flink
    does not list a vertex the overrides name); raises `FlinkRestError` when Flink refuses."""
    body = requirements_body(flink.resource_requirements(job_id), overrides)
    if body is None:
        return False
    flink.set_resource_requirements(job_id, body)
    return True
