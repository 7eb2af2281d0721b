"""The autoscaler end to end against a real Flink: the real hook server (gunicorn) samples the job's metrics on
every sync and decides, the Metacontroller emulator applies its answers, the pod runner runs Flink 1.20 or 2.3.

The job is the test bed's CounterJob with a controllable load: its source rate is read from a file the test
rewrites (`--rate-file`), and the keyed counting operator costs a known time per record (`--cost-us`), so one
subtask processes about 10^6 / cost records per second. With cost 1000 µs:

* high load (800/s) at parallelism 1: busy ≈ 0.8, above `utilization.max` 0.6 → scale up to
  ceil(800/0.5 / 1000 · 1) = 2 (2 divides the 128 key groups; `vertex.max-parallelism` 2 keeps a slow machine's
  lower measured rate from asking for 3); at parallelism 2 busy ≈ 0.4, inside [0.2, 0.6];
* low load (60/s) at parallelism 2: busy ≈ 0.03, below `utilization.min` 0.2 → a scale-down to 1, after
  `scale-down.interval`.

One cluster per Flink version covers: recommend only (`scaling.enabled: false`: the recommendation in status and
the metrics, nothing changes), then scaling enabled (a job.autoscaler.* change is no spec change), the scale-up,
the load drop, the scale-down; the keyed state continues through both rescales (at parallelism 1 the counts in
state equal the records the source emitted). Flink 2.3 rescales in place (adaptive scheduler, the job keeps its
id); Flink 1.20 through a savepoint upgrade (a new job restored from the upgrade savepoint), in
tests/test_e2e_autoscaler_upgrade.py: a file of its own, so that `make test`'s workers (one file each at a time) run
the two clusters side by side; both spend most of their time waiting for metric windows.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args, read_counter_once
from tests.flinkbed.fixtures import JM_PROCESS_MEMORY, TM_PROCESS_MEMORY
from tests.flinkbed.job import COUNTER_OPERATOR
from tests.flinkbed.rest import same_path

from .metacontroller import create, update_spec
from .server import hook_server
from .test_e2e_flink import NAME, Bed

pytestmark = [pytest.mark.flink, pytest.mark.timeout(900)]

HIGH_RATE, LOW_RATE, COST_US, KEYS = 800, 60, 1000, 500
# Short windows, so a decision comes about a minute after RUNNING. Flink's rates and busy times are moving
# averages over about 60 s; the true processing rate is their ratio, which holds from the start.
AUTOSCALER = {
    "job.autoscaler.enabled": "true",
    "job.autoscaler.scaling.enabled": "false",
    "job.autoscaler.stabilization.interval": "10 s",
    "job.autoscaler.metrics.window": "30 s",
    "job.autoscaler.utilization.target": "0.5",
    "job.autoscaler.utilization.max": "0.6",
    "job.autoscaler.utilization.min": "0.2",
    "job.autoscaler.vertex.max-parallelism": "2",
    "job.autoscaler.scale-down.interval": "10 s",
    "job.autoscaler.restart.time": "1 min",  # also how long a decision may take to reach the job
    "job.autoscaler.catch-up.duration": "5 min",
    "kubernetes.operator.reconcile.interval": "5 s",
}
SYNC_PAUSE_S = 1.5  # between syncs while the autoscaler samples: the sampling interval


def load_deployment(version: str, jar: Path, state_dir: Path, rate_file: Path, in_place: bool) -> dict[str, Any]:
    config = {
        "taskmanager.numberOfTaskSlots": "2",
        "state.savepoints.dir": f"file://{state_dir}/savepoints",
        "state.checkpoints.dir": f"file://{state_dir}/checkpoints",
        "execution.checkpointing.interval": "1 s",
        **AUTOSCALER,
    }
    if in_place:
        config["jobmanager.scheduler"] = "adaptive"
    return {
        "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "image": f"flink:{version}", "flinkVersion": "v1_20" if version.startswith("1.20") else "v2_3",
            "serviceAccount": "flink", "flinkConfiguration": config,
            "jobManager": {"resource": {"memory": JM_PROCESS_MEMORY, "cpu": 0.5}},
            "taskManager": {"resource": {"memory": TM_PROCESS_MEMORY, "cpu": 0.5}},
            "job": {"jarURI": f"local://{jar}", "entryClass": COUNTER_JOB_CLASS, "parallelism": 1,
                    "args": counter_args(rate=HIGH_RATE, keys=KEYS, rate_file=rate_file, cost_us=COST_US),
                    "upgradeMode": "savepoint"},
        },
    }


def paced_until(bed: Bed, what: str, predicate: Callable[[Bed], bool], timeout: float = 300) -> None:
    """Sync every SYNC_PAUSE_S until the predicate holds (Bed.until syncs as fast as it can)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bed.sync()
        if predicate(bed):
            return
        time.sleep(SYNC_PAUSE_S)
    raise AssertionError(f"{what}: not reached in {timeout}s; autoscaler={bed.status.get('autoscaler')} "
                         f"job={bed.status.get('jobStatus')}")


def counter_vertex(bed: Bed) -> tuple[str, int]:
    """The keyed counting vertex of the running job: its id and the parallelism Flink runs it at."""
    for vertex in bed.runner.rest(NAME).get(f"/jobs/{bed.job_id()}").get("vertices", []):
        if COUNTER_OPERATOR in vertex.get("name", ""):
            return vertex["id"], int(vertex["parallelism"])
    raise AssertionError("no counting vertex")


def autoscaler(bed: Bed) -> dict[str, Any]:
    return bed.status.get("autoscaler") or {}


def running_at(bed: Bed, parallelism: int) -> bool:
    if not bed.running_stable():
        return False
    try:
        return counter_vertex(bed)[1] == parallelism and \
            bed.runner.rest(NAME).job_state(bed.job_id()) == "RUNNING"
    except (OSError, ValueError, KeyError):
        return False


def state_continued(bed: Bed, timeout: float = 60) -> None:
    """At parallelism 1 every record the source emitted (0..lastValue) is counted once in keyed state, restored
    counts included: nothing was lost or counted twice through the rescales."""
    deadline = time.monotonic() + timeout
    snap = None
    while time.monotonic() < deadline:
        snap = read_counter_once(bed.runner.rest(NAME), bed.job_id())
        if snap is not None and snap.restored_total > 0 and snap.consistent:
            return
        time.sleep(1)
    raise AssertionError(f"keyed state did not continue: {snap}")


@pytest.fixture
def scaling_bed(pod_runner):
    """The e2e bed, and the hook server's URL for its /metrics."""
    with hook_server({"FLINK_SYNC_REST_URL_TEMPLATE": f"http://127.0.0.1:{pod_runner._first_rest_port}",
                      "FLINK_SYNC_REST_READ_TIMEOUT": "5"}) as url:
        bed = Bed(url, pod_runner)
        bed.url = url  # type: ignore[attr-defined]
        yield bed


def metric(bed: Bed, name: str, **labels: str) -> float | None:
    """One sample of the hook server's /metrics (every gunicorn worker's values merged), None if absent."""
    text = requests.get(bed.url + "/metrics", timeout=5).text  # type: ignore[attr-defined]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"namespace": "default", "name": NAME, **labels}:
                return float(sample.value)
    return None


def parallelism_follows_the_load(bed: Bed, flink_version: str, in_place: bool, jar: Path, tmp_path: Path) -> None:
    """The whole scenario on one cluster (see the module's docstring)."""
    rate_file = tmp_path / "rate"
    rate_file.write_text(f"{HIGH_RATE}\n")
    create(bed.cluster, load_deployment(flink_version, jar, tmp_path / "state", rate_file, in_place))
    bed.until("deployed", Bed.running_stable, timeout=240)
    first_job = bed.job_id()
    vertex, _ = counter_vertex(bed)

    # Recommend only: the recommendation appears, nothing changes.
    paced_until(bed, "recommendation", lambda b: autoscaler(b).get("recommendedParallelism", {}).get(vertex) == 2
                and autoscaler(b)["message"].startswith("recommendation only"))
    assert autoscaler(bed)["parallelismOverrides"] == "" and autoscaler(bed)["scalingEnabled"] is False
    assert bed.job_id() == first_job and counter_vertex(bed)[1] == 1
    assert metric(bed, "flink_sync_autoscaler_recommended_parallelism", vertex=vertex) == 2
    assert metric(bed, "flink_sync_autoscaler_parallelism", vertex=vertex) == 1
    assert (metric(bed, "flink_sync_autoscaler_recommendations_total") or 0) >= 1
    assert metric(bed, "flink_sync_autoscaler_scalings_total") is None

    # Scaling on (a job.autoscaler.* change is no spec change): the full window decides at once, 1 -> 2.
    update_spec(bed.cluster, "FlinkDeployment", NAME,
                lambda s: s["flinkConfiguration"].update({"job.autoscaler.scaling.enabled": "true"}))
    paced_until(bed, "scaled up", lambda b: running_at(b, 2), timeout=300)
    assert autoscaler(bed)["parallelismOverrides"].count(f"{vertex}:2") == 1
    scaled_job = bed.job_id()
    if in_place:
        assert scaled_job == first_job, "rescaled in place: the same job"
    else:
        assert scaled_job != first_job
        assert same_path(bed.runner.rest(NAME).restored_from(scaled_job),
                         bed.status["jobStatus"]["upgradeSavepointPath"])
    assert metric(bed, "flink_sync_autoscaler_scalings_total") == 1

    # The load drops: back to 1 after the scale-down delay.
    rate_file.write_text(f"{LOW_RATE}\n")
    paced_until(bed, "scaled down", lambda b: running_at(b, 1), timeout=360)
    assert autoscaler(bed)["parallelismOverrides"].count(f"{vertex}:1") == 1
    assert (bed.job_id() == first_job) is in_place
    state_continued(bed)
    assert metric(bed, "flink_sync_autoscaler_scalings_total") == 2
    # The gauge follows from the first sync that samples the rescaled job (a redeployed job is sampled from the
    # sync after the one that saw it RUNNING).
    paced_until(bed, "parallelism gauge", lambda b: metric(b, "flink_sync_autoscaler_parallelism", vertex=vertex) == 1,
                timeout=60)


@pytest.mark.parametrize("flink_version", ["2.3"])
def test_parallelism_follows_the_load_in_place(scaling_bed, flink_version, counter_jar, tmp_path):
    parallelism_follows_the_load(scaling_bed, flink_version, True, counter_jar, tmp_path)
