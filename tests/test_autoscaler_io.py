"""The autoscaler's REST calls (hooks/autoscaler_io.py, the client's new operations): what is collected per
vertex, how the answers are bounded, the in-place rescale; against the fake Flink's load model (which follows the
REST shapes pinned by the real-Flink tests), and against a scripted HTTP server for what the client sends."""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from hooks import autoscaler_io
from hooks.fake_flink import FakeFlink, FakeLoad, FakeVertex
from hooks.flink_rest import FlinkBadResponse, FlinkRestClient, FlinkRestError
from sync.autoscaler.config import AutoscalerConfig
from sync.autoscaler.records import AutoscalerState
from sync.autoscaler.scaler import autoscale
from tests.http_stub import Reply, StubServer

JOB = "36da764f000000000000000000000001"
SOURCE, KEYED = "a" * 32, "b" * 32
MIN = 60_000


def _cluster(rate: float = 2000.0, parallelism: int = 1, backlog: float | None = None) -> tuple[FakeFlink, FakeLoad]:
    flink = FakeFlink("autoscaled")
    flink.start_job(JOB)
    load = FakeLoad([FakeVertex(SOURCE, 1), FakeVertex(KEYED, parallelism, 120, ((SOURCE, "HASH"),), capacity=2000)],
                    offered_rate=rate, backlog=backlog)
    flink.loads[JOB] = load
    return flink, load


def test_collects_topology_counters_and_metrics() -> None:
    flink, load = _cluster(rate=3000, backlog=0.0)
    load.advance(60)
    job = autoscaler_io.collect_job_metrics(flink, JOB)
    assert (job.state, job.running_since_ms, job.all_tasks_running, job.io_complete) == ("RUNNING", 1, True, True)
    source, keyed = job.vertices
    assert (source.vertex_id, source.is_source, keyed.inputs) == (SOURCE, True, ((SOURCE, "HASH"),))
    assert (keyed.parallelism, keyed.max_parallelism, keyed.busy_max) == (1, 120, 1000.0)
    assert keyed.records_in == 120_000 and keyed.in_per_second == 2000
    assert source.source_records_out == 120_000 and source.pending_records == 60_000  # 1000/s it cannot pass
    assert source.in_per_second is None or source.in_per_second == 0


def test_a_source_without_a_backlog_metric_reports_none() -> None:
    flink, load = _cluster()
    load.advance(10)
    source = autoscaler_io.collect_job_metrics(flink, JOB).vertices[0]
    assert source.pending_records is None


def test_incomplete_counters_and_restarting_tasks_are_seen() -> None:
    flink, load = _cluster()
    load.io_complete = False
    assert not autoscaler_io.collect_job_metrics(flink, JOB).io_complete


def test_the_plan_is_read_in_topological_order() -> None:
    nodes = {"c": (("b", "REBALANCE"),), "a": (), "b": (("a", "HASH"),), "d": (("a", "FORWARD"), ("c", "HASH"))}
    assert autoscaler_io._topological(nodes) == ["a", "b", "c", "d"]
    with pytest.raises(FlinkBadResponse, match="cycle"):
        autoscaler_io._topological({"a": (("b", "HASH"),), "b": (("a", "HASH"),)})


def test_in_place_rescale_sends_every_vertex_and_moves_running() -> None:
    flink, load = _cluster()
    load.now_ms = 5 * MIN
    assert autoscaler_io.rescale_in_place(flink, JOB, {SOURCE: 1, KEYED: 2})
    assert [v.parallelism for v in load.vertices] == [1, 2] and load.running_since == 5 * MIN
    assert not autoscaler_io.rescale_in_place(flink, JOB, {SOURCE: 1, KEYED: 2})  # nothing to change
    with pytest.raises(FlinkRestError, match="max parallelism"):
        autoscaler_io.rescale_in_place(flink, JOB, {KEYED: 121})


def test_collect_decide_rescale_loop_on_the_fake() -> None:
    """The load doubles past one subtask's capacity: the autoscaler (fast settings) rescales the keyed vertex
    to 2 in place, and at 3000/s two subtasks stay inside the band."""
    config = AutoscalerConfig(enabled=True, stabilization_ms=MIN, metrics_window_ms=3 * MIN, catch_up_ms=5 * MIN,
                              restart_ms=30_000, utilization_max=0.9, scale_down_interval_ms=2 * MIN)
    flink, load = _cluster(rate=3000)
    state = AutoscalerState()
    decisions = []
    for _ in range(60):
        load.advance(15)
        outcome = autoscale(config, state, autoscaler_io.collect_job_metrics(flink, JOB), load.now_ms)
        state = outcome.state
        if outcome.executed:
            decisions.append(dict(outcome.overrides))
            autoscaler_io.rescale_in_place(flink, JOB, outcome.overrides)
    assert decisions == [{SOURCE: 1, KEYED: 2}]
    assert load.vertices[1].parallelism == 2 and 600 < load.vertices[1].busy_ms < 900


# ------------------------------------------------------------------ what the REST client sends


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def test_the_client_lists_names_then_asks_for_them(stub: StubServer) -> None:
    base = f"/jobs/{JOB}/vertices/{KEYED}/subtasks/metrics"
    stub.route("GET", base, lambda r: Reply(200, [{"id": "busyTimeMsPerSecond"}, {"id": "numRecordsIn"}])
               if not r.query else Reply(200, [{"id": "busyTimeMsPerSecond", "min": 1, "max": 900.5, "avg": 400,
                                                "sum": 800, "skew": 3}]))
    client = FlinkRestClient(stub.url, connect_timeout=0.5, read_timeout=0.5)
    assert client.vertex_metric_names(JOB, KEYED) == ["busyTimeMsPerSecond", "numRecordsIn"]
    assert client.vertex_metrics(JOB, KEYED, ["busyTimeMsPerSecond"]) == {
        "busyTimeMsPerSecond": {"min": 1.0, "max": 900.5, "avg": 400.0, "sum": 800.0}}
    assert parse_qs(stub.requests[-1].query) == {"get": ["busyTimeMsPerSecond"]}


def test_the_client_puts_resource_requirements_and_reports_a_refusal(stub: StubServer) -> None:
    body = {KEYED: {"parallelism": {"lowerBound": 1, "upperBound": 2}}}
    stub.route("PUT", f"/jobs/{JOB}/resource-requirements",
               lambda r: Reply(200, {}) if r.json() == body else Reply(400, {"errors": ["missing vertices"]}))
    client = FlinkRestClient(stub.url, connect_timeout=0.5, read_timeout=0.5)
    client.set_resource_requirements(JOB, body)
    with pytest.raises(FlinkRestError, match="missing vertices"):
        client.set_resource_requirements(JOB, {})


def test_the_client_refuses_a_vertex_id_that_is_not_hex() -> None:
    client = FlinkRestClient("http://127.0.0.1:9", connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(ValueError, match="vertex id"):
        client.vertex_metric_names(JOB, "../../jars")


def test_a_huge_answer_is_cut_off(stub: StubServer) -> None:
    stub.route("GET", f"/jobs/{JOB}", Reply(200, {"vertices": [{"id": KEYED, "pad": "x" * 20_000}]}))
    client = FlinkRestClient(stub.url, connect_timeout=0.5, read_timeout=0.5, max_response_bytes=4096)
    with pytest.raises(FlinkRestError):
        client.job_details(JOB)
