"""The hook server's Prometheus metrics, counted across every gunicorn worker.

gunicorn forks N workers, each with its own memory: a registry per process would make every scrape report
the one worker that happened to answer it. prometheus_client's multi-process mode keeps each process's
values in memory-mapped files of one directory (PROMETHEUS_MULTIPROC_DIR) and sums them on a scrape.

`flink-sync serve` owns that directory (`prepare_multiprocess_dir`): a fresh private directory per server
start, so a restarted container never adds the last run's counts, removed when the server exits. A worker
that exits is marked dead (`worker_exited`, from gunicorn's child_exit hook): its counters and histograms
stay in the totals (a counter must never go down). The autoscaler's gauges are `mostrecent`: a scrape shows the
value of the latest sync of that deployment, whichever worker answered it, also after that worker exited.
Without the variable (the in-process app of the tests, `flink-sync render`), the metrics live in the
process's own registry.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values

if TYPE_CHECKING:
    from sync.autoscaler.records import CycleSummary

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The directory this process created (in the gunicorn master, before the workers fork); only it is removed.
_owned_dir: str | None = None

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "prepare_multiprocess_dir", "remove_multiprocess_dir", "worker_exited"]


def prepare_multiprocess_dir(parent: str | None = None) -> str:
    """Create the server's metrics directory and point prometheus_client at it (before any metric exists).
    `parent` defaults to the temporary directory (an emptyDir in the hook pod)."""
    global _owned_dir
    path = tempfile.mkdtemp(prefix="flink-sync-metrics-", dir=parent)
    os.environ[MULTIPROC_ENV] = path
    _owned_dir = path
    # prometheus_client picks the multi-process value class when it is first imported; it may have been
    # imported already (the CLI's own imports), so choose again. Metrics created afterwards use it.
    values.ValueClass = values.get_value_class()
    return path


def remove_multiprocess_dir() -> None:
    """At server exit: remove the directory this server created (never one it was handed)."""
    if _owned_dir and os.environ.get(MULTIPROC_ENV) == _owned_dir:
        shutil.rmtree(_owned_dir, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: the worker's gauge files go; its counters stay counted."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


class Metrics:
    """The counters and histograms of the hook server (the names are documented in docs/operations.md)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("flink_sync_hook_requests_total", "Hook requests", ["hook", "outcome"],
                                registry=self.registry)
        self.latency = Histogram("flink_sync_hook_duration_seconds", "Hook latency", ["hook"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.rest_calls = Counter("flink_sync_flink_rest_calls_total", "Flink REST calls", ["endpoint", "outcome"],
                                  registry=self.registry)
        self.rest_latency = Histogram("flink_sync_flink_rest_duration_seconds", "Flink REST latency", ["endpoint"],
                                      registry=self.registry)
        self.actions = Counter("flink_sync_actions_total", "Actions carried out", ["kind", "outcome"],
                               registry=self.registry)
        self.kept = Counter("flink_sync_kept_answers_total",
                            "FlinkDeployment resyncs answered from the record of an unchanged earlier one",
                            registry=self.registry)
        self.admission = Counter("flink_sync_admission_reviews_total", "Admission reviews answered",
                                 ["kind", "allowed"], registry=self.registry)
        self.autoscaler = AutoscalerMetrics(self.registry)

        # prometheus_client's labels() takes a lock and validates the labels on every call; the label sets
        # here are few and fixed, so each labelled child is looked up once and kept.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    def on_request(self, hook: str, outcome: str, seconds: float) -> None:
        self._child(self.requests, hook, outcome).inc()
        self._child(self.latency, hook).observe(seconds)

    def on_rest_call(self, endpoint: str, seconds: float, outcome: str) -> None:
        self._child(self.rest_calls, endpoint, outcome).inc()
        self._child(self.rest_latency, endpoint).observe(seconds)

    def on_kept_answer(self) -> None:
        self.kept.inc()

    def on_action(self, kind: str, ok: bool) -> None:
        self._child(self.actions, kind, "ok" if ok else "failed").inc()

    def on_admission(self, kind: str, allowed: bool) -> None:
        self._child(self.admission, kind, "true" if allowed else "false").inc()

    def on_autoscaler_cycle(self, cycle: CycleSummary) -> None:
        self.autoscaler.record(cycle)

    def scrape(self) -> bytes:
        """The text exposition: every worker's values summed in multi-process mode, this process's otherwise."""
        directory = os.environ.get(MULTIPROC_ENV)
        if directory and Path(directory).is_dir():
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


_PER_VERTEX = ["namespace", "name", "vertex"]
_PER_DEPLOYMENT = ["namespace", "name"]


class AutoscalerMetrics:
    """The autoscaler's metrics per FlinkDeployment, after Apache's `AutoScaler` metric group: the counters
    `scalings`, `balanced` and `errors` (plus the advisory reports of `scaling.enabled: false`), and per job vertex
    the gauges PARALLELISM, RECOMMENDED_PARALLELISM, TRUE_PROCESSING_RATE and TARGET_DATA_RATE (their current
    values). The label sets grow with the deployments and vertices (at most 100 per job), so no child is cached."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(f"flink_sync_autoscaler_{name}", doc, _PER_DEPLOYMENT, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"flink_sync_autoscaler_{name}", doc, _PER_VERTEX, registry=registry,
                         multiprocess_mode="mostrecent")

        self.scalings = counter("scalings_total", "Autoscaler decisions carried out (rescales)")
        self.recommendations = counter("recommendations_total",
                                       "Autoscaler cycles that recommended a change with scaling disabled")
        self.balanced = counter("balanced_total", "Autoscaler cycles that found every vertex within target")
        self.errors = counter("errors_total", "Autoscaler cycles whose job metrics could not be collected")
        self.parallelism = gauge("parallelism", "Parallelism of the job vertex, as Flink runs it")
        self.recommended = gauge("recommended_parallelism", "Parallelism the autoscaler recommends for the vertex")
        self.true_processing_rate = gauge("true_processing_rate",
                                          "Records per second the vertex could process at 100% busy (all subtasks)")
        self.target_data_rate = gauge("target_data_rate", "Records per second the vertex has to process")

    def record(self, cycle: CycleSummary) -> None:
        deployment = (cycle.namespace, cycle.name)
        if cycle.metrics_error:
            self.errors.labels(*deployment).inc()
        counter = {"scaled": self.scalings, "recommended": self.recommendations, "balanced": self.balanced}
        if cycle.phase in counter:
            counter[cycle.phase].labels(*deployment).inc()
        for gauge, values_by_vertex in ((self.parallelism, cycle.parallelism), (self.recommended, cycle.recommended),
                                        (self.true_processing_rate, cycle.true_processing_rate),
                                        (self.target_data_rate, cycle.target_data_rate)):
            for vertex, value in values_by_vertex.items():
                gauge.labels(*deployment, vertex).set(value)
