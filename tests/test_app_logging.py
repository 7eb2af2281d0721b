"""What the app logs and counts per request: one JSON line at INFO for a sync that did something, DEBUG only
for a resync that changed nothing (the steady state of every running cluster), and the Prometheus counters."""
from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator

import pytest

from hooks.app import create_app
from hooks.settings import Settings

from .http_stub import Reply, StubServer
from .sim import World
from .test_state_machine import BASE


@pytest.fixture()
def stable_world() -> Iterator[tuple[World, StubServer]]:
    world = World(copy.deepcopy(BASE))
    world.run_until(lambda w: w.lifecycle() == "STABLE")
    for _ in range(3):
        world.tick()
        world.sync()
    jobs = [{"jid": job.job_id, "name": world.parent["metadata"]["name"], "state": job.state,
             "start-time": 1, "end-time": -1} for job in world.cluster.jobs.values()]
    with StubServer() as stub:
        stub.route("GET", "/jobs/overview", Reply(200, {"jobs": jobs}))
        yield world, stub


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, dict]]:
    return [(r.levelno, json.loads(r.getMessage())) for r in caplog.records if r.name == "flink_sync.hooks"]


def test_a_quiet_resync_logs_at_debug_and_a_change_at_info(stable_world, caplog) -> None:
    world, stub = stable_world
    app = create_app(Settings(rest_url_template=stub.url), clock=lambda: world.now_ms).test_client()
    request = {"parent": world.parent, "children": world.request_children()}
    caplog.set_level(logging.DEBUG, logger="flink_sync")

    answer = app.post("/sync/flinkdeployment", json=request)
    assert answer.status_code == 200
    assert answer.get_json()["status"] == world.parent["status"]  # a fixed point: nothing to do
    [(level, line)] = _records(caplog)
    assert level == logging.DEBUG
    assert line["outcome"] == "ok" and line["lifecycle"] == "STABLE" and line["actions"] == []
    assert "quiet" not in line

    caplog.clear()
    edited = copy.deepcopy(request)
    edited["parent"]["metadata"]["generation"] += 1
    edited["parent"]["spec"]["job"]["parallelism"] = 3
    assert app.post("/sync/flinkdeployment", json=edited).status_code == 200
    [(level, line)] = _records(caplog)
    assert level == logging.INFO
    assert line["parent"] == f"{world.parent['metadata']['namespace']}/{world.parent['metadata']['name']}"

    caplog.clear()
    assert app.post("/sync/flinkdeployment", json={"parent": "nope"}).status_code == 400
    [(level, line)] = _records(caplog)
    assert (level, line["outcome"], line["status"]) == (logging.INFO, "bad_request", 400)

    metrics = app.get("/metrics").get_data(as_text=True)
    assert 'flink_sync_hook_requests_total{hook="sync_flinkdeployment",outcome="ok"} 2.0' in metrics
    assert 'flink_sync_hook_requests_total{hook="sync_flinkdeployment",outcome="bad_request"} 1.0' in metrics
    assert 'flink_sync_flink_rest_calls_total{endpoint="GET /jobs/overview",outcome="ok"}' in metrics
