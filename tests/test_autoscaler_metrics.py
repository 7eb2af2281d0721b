"""The autoscaler's Prometheus metrics (hooks/metrics.py `AutoscalerMetrics`): what a cycle is summarised as
(`sync/autoscaler/deployment.apply`), how the counters and per-vertex gauges show it, and that a FlinkDeployment
sync through the app records them. Across gunicorn workers (the gauges' `mostrecent` mode) they are checked
against a real Flink in tests/test_e2e_autoscaler.py."""
from __future__ import annotations

import copy
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hooks.app import create_app
from hooks.fake_flink import FakeFlink, FakeLoad, FakeVertex
from hooks.metrics import Metrics
from hooks.settings import Settings
from sync.autoscaler import deployment as autoscaling
from sync.autoscaler.records import CycleSummary, JobMetrics, VertexMetrics
from sync.model import SyncResult

from .test_autoscaler_deployment import _parent

S, W = "a" * 32, "b" * 32
JOB = "f" * 32


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("flink_sync_autoscaler_") and not s.name.endswith("_created")}


def _key(name: str, vertex: str | None = None, deployment: str = "scaled") -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"namespace": "ns", "name": deployment, **({"vertex": vertex} if vertex else {})}
    return name, tuple(sorted(labels.items()))


def test_apply_summarises_the_cycle() -> None:
    job = JobMetrics(JOB, "RUNNING", 1, True, True, (VertexMetrics(S, 1, 128), VertexMetrics(W, 3, 128)))
    cycle = autoscaling.apply(_parent(**{"stabilization.interval": "1m"}), None, SyncResult(status={}, children=[]),
                              job, None, 5_000, {})
    assert cycle == CycleSummary("ns", "scaled", "collecting", parallelism={S: 1, W: 3})
    failed = autoscaling.apply(_parent(), None, SyncResult(status={}, children=[]), None, "HTTP 503", 5_000, {})
    assert failed is not None and failed.metrics_error and failed.phase == "not_sampled"
    off = _parent()
    off["spec"]["flinkConfiguration"]["job.autoscaler.enabled"] = "false"
    assert autoscaling.apply(off, None, SyncResult(status={}, children=[]), job, None, 5_000, {}) is None


def test_counters_count_outcomes_and_gauges_show_the_latest_cycle() -> None:
    metrics = Metrics()
    metrics.on_autoscaler_cycle(CycleSummary("ns", "scaled", "balanced", parallelism={W: 1}, recommended={W: 1},
                                             true_processing_rate={W: 1000.0}, target_data_rate={W: 500.0}))
    metrics.on_autoscaler_cycle(CycleSummary("ns", "scaled", "scaled", parallelism={W: 1}, recommended={W: 2},
                                             true_processing_rate={W: 900.0}, target_data_rate={W: 800.0}))
    metrics.on_autoscaler_cycle(CycleSummary("ns", "scaled", "recommended"))
    metrics.on_autoscaler_cycle(CycleSummary("ns", "scaled", "not_sampled", metrics_error=True))
    metrics.on_autoscaler_cycle(CycleSummary("ns", "other", "collecting", parallelism={S: 4}))
    samples = _samples(metrics.scrape().decode())
    assert samples[_key("flink_sync_autoscaler_scalings_total")] == 1
    assert samples[_key("flink_sync_autoscaler_balanced_total")] == 1
    assert samples[_key("flink_sync_autoscaler_recommendations_total")] == 1
    assert samples[_key("flink_sync_autoscaler_errors_total")] == 1
    assert samples[_key("flink_sync_autoscaler_parallelism", W)] == 1
    assert samples[_key("flink_sync_autoscaler_recommended_parallelism", W)] == 2
    assert samples[_key("flink_sync_autoscaler_true_processing_rate", W)] == 900
    assert samples[_key("flink_sync_autoscaler_target_data_rate", W)] == 800
    assert samples[_key("flink_sync_autoscaler_parallelism", S, deployment="other")] == 4
    assert _key("flink_sync_autoscaler_scalings_total", deployment="other") not in samples


def test_a_deployment_sync_records_its_cycle() -> None:
    flink = FakeFlink("scaled")
    flink.start_job(JOB)
    flink.loads[JOB] = FakeLoad([FakeVertex(S, 1), FakeVertex(W, 2, 128, ((S, "HASH"),), capacity=1000)],
                                offered_rate=500)
    client = create_app(Settings(rest_url_template="http://{name}-rest.{namespace}:8081"), flink=lambda url: flink,
                        clock=lambda: 1_764_000_000_000).test_client()
    parent: dict[str, Any] = copy.deepcopy(_parent(**{"stabilization.interval": "1m"}))
    parent["metadata"]["uid"] = "u-1"
    answer = client.post("/sync/flinkdeployment", json={"parent": parent, "children": {}})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert samples[_key("flink_sync_autoscaler_parallelism", S)] == 1
    assert samples[_key("flink_sync_autoscaler_parallelism", W)] == 2
