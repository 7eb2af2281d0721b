"""`hooks.flink_rest` against a real Flink session cluster (1.20.3 and 2.3.0 from the PyPI jars).

The cluster is the test bed's operator-shaped session deployment (`tests/test_flinkbed.py`'s
`flink_config`/`standalone_children`, run by `pod_runner`); the job is the bed's `CounterJob`. One test
per version walks the whole session-job lifecycle the hooks drive, so one cluster start covers it."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from hooks.flink_rest import (
    CheckpointResult,
    FlinkDuplicateJob,
    FlinkNotFound,
    FlinkRestClient,
    SavepointResult,
    normalise_path,
    same_location,
)
from tests.flinkbed.dist import FlinkDist
from tests.flinkbed.job import COUNTER_JOB_CLASS, counter_args
from tests.flinkbed.podrunner import PodRunner
from tests.test_flinkbed import flink_config, standalone_children

pytestmark = pytest.mark.flink

NAME = "session"
JOB = "5e55100b000000000000000000000001"
RESTORED_JOB = "5e55100b000000000000000000000002"
SAVEPOINT_TRIGGER = "7a1c0000000000000000000000000001"
CHECKPOINT_TRIGGER = "7a1c0000000000000000000000000002"
STOP_TRIGGER = "7a1c0000000000000000000000000003"
LATE_TRIGGER = "7a1c0000000000000000000000000004"
T = TypeVar("T")


def poll(what: str, probe: Callable[[], T | None], timeout_s: float = 20.0) -> T:
    """Call `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not after {timeout_s} s")


def job_state(rest: FlinkRestClient, job_id: str, states: set[str], all_running: bool = False) -> str | None:
    job = rest.job(job_id)
    if job is None or job.state not in states:
        return None
    tasks = job.tasks
    if all_running and not (tasks.get("total", 0) > 0 and tasks.get("running", 0) == tasks.get("total")):
        return None
    return job.state


def savepoint_done(rest: FlinkRestClient, job_id: str, trigger: str) -> SavepointResult:
    return poll(f"savepoint {trigger}", lambda: (r if (r := rest.savepoint_status(job_id, trigger)).state
                                                  != "IN_PROGRESS" else None))


def test_session_job_lifecycle(pod_runner: PodRunner, flink_dist: FlinkDist, counter_jar: Path,
                               tmp_path: Path) -> None:
    pod_runner.apply(standalone_children(NAME, flink_dist, flink_config(NAME, flink_dist, tmp_path, application=False),
                                         ["jobmanager"]))
    pod_runner.wait_available(NAME, timeout_s=90)
    calls: list[tuple[str, float, str]] = []
    rest = FlinkRestClient(pod_runner.rest_url(NAME), on_call=lambda *a: calls.append(a))
    assert rest.cluster_config().flink_version == flink_dist.version
    poll("a TaskManager with a slot", lambda: (o if (o := rest.overview()).slots_total >= 1 else None), 60)
    savepoints = tmp_path / "sp"
    target = f"file://{savepoints}"

    # upload + run with a fixed job id; a second submission of the id is a typed duplicate
    jar_id = rest.upload_jar("counter", counter_jar.read_bytes())
    assert jar_id.endswith("_counter.jar")
    assert rest.run_jar(jar_id, job_id=JOB, entry_class=COUNTER_JOB_CLASS, args=counter_args(rate=200),
                        parallelism=1, flink_version=flink_dist.version) == JOB
    with pytest.raises(FlinkDuplicateJob) as dup:
        rest.run_jar(jar_id, job_id=JOB, entry_class=COUNTER_JOB_CLASS, args=counter_args())
    # 1.20: "Job has already been submitted.", 2.3: "Application has already been submitted."
    assert "has already been submitted" in dup.value.message and "\tat " not in str(dup.value)
    poll("job RUNNING", lambda: job_state(rest, JOB, {"RUNNING"}, all_running=True))
    (entry,) = [j for j in rest.jobs_overview() if j.jid == JOB]
    assert entry.state == "RUNNING" and entry.end_time is None and entry.start_time

    # savepoint with a client trigger id: the retry returns the same id and takes no second savepoint
    assert rest.trigger_savepoint(JOB, target, trigger_id=SAVEPOINT_TRIGGER) == SAVEPOINT_TRIGGER
    assert rest.trigger_savepoint(JOB, target, trigger_id=SAVEPOINT_TRIGGER) == SAVEPOINT_TRIGGER
    first = savepoint_done(rest, JOB, SAVEPOINT_TRIGGER)
    assert first.state == "COMPLETED" and first.location and first.location.startswith("file:/")
    assert rest.trigger_savepoint(JOB, target, trigger_id=SAVEPOINT_TRIGGER) == SAVEPOINT_TRIGGER  # after completion
    assert rest.savepoint_status(JOB, SAVEPOINT_TRIGGER) == first
    assert len(list(savepoints.iterdir())) == 1
    assert same_location(first.location, f"file://{savepoints}/{Path(first.location).name}")

    # Flink caches operations by (job, trigger id): a stop with the savepoint's trigger id answers with the
    # savepoint's result and does NOT stop the job (so stop trigger ids must differ from savepoint ones)
    assert rest.stop_with_savepoint(JOB, target, trigger_id=SAVEPOINT_TRIGGER) == SAVEPOINT_TRIGGER
    assert rest.savepoint_status(JOB, SAVEPOINT_TRIGGER) == first
    time.sleep(0.3)
    assert rest.job(JOB).state == "RUNNING"  # type: ignore[union-attr]

    # manual checkpoint, idempotent by trigger id as well
    assert rest.trigger_checkpoint(JOB, trigger_id=CHECKPOINT_TRIGGER) == CHECKPOINT_TRIGGER
    assert rest.trigger_checkpoint(JOB, trigger_id=CHECKPOINT_TRIGGER) == CHECKPOINT_TRIGGER
    checkpoint = poll("checkpoint", lambda: (r if (r := rest.checkpoint_status(JOB, CHECKPOINT_TRIGGER)).state
                                             != "IN_PROGRESS" else None))
    assert checkpoint.state == "COMPLETED" and checkpoint.checkpoint_id is not None
    assert rest.checkpoint_status(JOB, "0" * 32) == CheckpointResult(state="UNKNOWN_TRIGGER")
    assert rest.savepoint_status(JOB, "0" * 32) == SavepointResult(state="UNKNOWN_TRIGGER")

    # stop with a savepoint: the job ends FINISHED
    assert rest.stop_with_savepoint(JOB, target, trigger_id=STOP_TRIGGER) == STOP_TRIGGER
    stopped = savepoint_done(rest, JOB, STOP_TRIGGER)
    assert stopped.state == "COMPLETED" and stopped.location and stopped.location != first.location
    poll("job FINISHED", lambda: job_state(rest, JOB, {"FINISHED"}))
    assert rest.execution_result(JOB) is None  # finished without a failure
    # GET /jobs/{id}/checkpoints is cached (web.refresh-interval): the stop savepoint shows up late
    stats = poll("stop savepoint in checkpoint stats",
                 lambda: s if same_location((s := rest.checkpoints(JOB)).latest_path(), stopped.location) else None)
    assert not stats.in_progress and stats.savepoint is not None and stats.savepoint.is_savepoint
    assert same_location(rest.latest_checkpoint_path(JOB), stopped.location)
    # a savepoint of a finished job is accepted (202) and then reported COMPLETED with a failure-cause
    rest.trigger_savepoint(JOB, target, trigger_id=LATE_TRIGGER)
    late = savepoint_done(rest, JOB, LATE_TRIGGER)
    assert late.state == "FAILED" and late.location is None and "FlinkJobNotFoundException" in (late.failure or "")
    with pytest.raises(FlinkDuplicateJob):  # a finished job id is a duplicate too
        rest.run_jar(jar_id, job_id=JOB, entry_class=COUNTER_JOB_CLASS, args=counter_args())

    # restore from the stop savepoint under a new job id (claimMode), then cancel
    assert rest.run_jar(jar_id, job_id=RESTORED_JOB, entry_class=COUNTER_JOB_CLASS, args=counter_args(), parallelism=1,
                        savepoint_path=stopped.location, allow_non_restored_state=False, claim_mode="NO_CLAIM",
                        flink_configuration={"pipeline.name": "restored-counter"},
                        flink_version=flink_dist.version) == RESTORED_JOB
    poll("restored job RUNNING", lambda: job_state(rest, RESTORED_JOB, {"RUNNING"}, all_running=True))
    assert rest.job(RESTORED_JOB).name == "restored-counter"  # type: ignore[union-attr]  # flinkConfiguration applied
    restored = poll("restored path", lambda: rest.checkpoints(RESTORED_JOB).restored)
    assert same_location(restored.external_path, stopped.location) and restored.is_savepoint
    assert rest.cancel(RESTORED_JOB) is True
    poll("restored job CANCELED", lambda: job_state(rest, RESTORED_JOB, {"CANCELED"}))
    assert rest.cancel(RESTORED_JOB) is True  # cancelling a CANCELED job again is acknowledged (202)
    assert rest.cancel(JOB) is False  # a FINISHED job: 409 "already reached another terminal state"
    with pytest.raises(FlinkNotFound):
        rest.cancel("f" * 32)

    # dispose the first savepoint; delete the jar (twice: the second time it is already gone)
    disposal = rest.dispose_savepoint(first.location)
    result = poll("disposal", lambda: (r if (r := rest.disposal_status(disposal)).state != "IN_PROGRESS" else None))
    assert result.state == "COMPLETED", result
    assert not Path(normalise_path(first.location)[len("file://"):]).exists()  # type: ignore[index]
    assert rest.delete_jar(jar_id) is True
    assert rest.delete_jar(jar_id) is False

    outcomes = {outcome for _endpoint, _seconds, outcome in calls}
    assert outcomes <= {"ok", "http_error", "not_found"}, calls
    assert all(seconds < rest.connect_timeout + rest.submit_read_timeout for _e, seconds, _o in calls)
