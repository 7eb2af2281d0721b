"""Property tests of the FlinkSessionJob state machine: random edits and faults (Flink unreachable, the
JobManager forgetting savepoint/stop results), then recovery. Invariants on every sync:

* never two RUNNING copies of the job at once;
* a job is only ever restored from a savepoint or checkpoint that exists;
* once faults stop, the job settles RUNNING with the spec's parallelism, STABLE, with no error.
"""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings, strategies as st

from sync.model import FlinkObservation, JobInfo, TriggerResult
from sync.sessionjob import plan_observation, sync_session_job

from .helpers import SETTINGS
from .test_sessionjob_core import JOB, SESSION


class Flink:
    """A session cluster as its REST API behaves, with the faults the tests inject."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.triggers: dict[str, dict] = {}
        self.snapshots: set[str] = set()
        self.down = False
        self.now = 1_764_000_000_000

    def observe(self, parent: dict) -> FlinkObservation | None:
        plan = plan_observation(parent, SESSION)
        if not plan.query_cluster:
            return None
        if self.down:
            return FlinkObservation(reachable=False, error="connection refused")
        trigger = None
        if plan.trigger_id:
            t = self.triggers.get(plan.trigger_id)
            trigger = (TriggerResult("UNKNOWN_TRIGGER") if t is None else
                       TriggerResult("FAILED", failure="job not running") if t["location"] is None else
                       TriggerResult("COMPLETED", t["location"]))
        job = self.jobs.get(plan.job_id or "")
        ended = job is not None and job["state"] in ("FINISHED", "CANCELED", "FAILED")
        return FlinkObservation(reachable=True,
                                jobs=tuple(JobInfo(j, "counter", v["state"], 1) for j, v in self.jobs.items()),
                                trigger=trigger, latest_checkpoint_path=job.get("checkpoint") if ended else None)

    def act(self, action) -> None:
        if self.down:
            return
        p = action.params
        if action.kind == "submit_job":
            if p["job_id"] in self.jobs:
                return  # Flink refuses a second job with the same id
            restored = p.get("savepoint_path")
            assert restored is None or restored in self.snapshots, f"restored from {restored}, which does not exist"
            value = int(restored.rsplit("-", 1)[1]) if restored else 0
            self.jobs[p["job_id"]] = {"state": "RUNNING", "value": value, "restored": restored,
                                      "parallelism": p.get("parallelism")}
        elif action.kind in ("stop_with_savepoint", "trigger_savepoint"):
            if p["trigger_id"] in self.triggers:
                return  # a repeated trigger id is the same operation
            job = self.jobs.get(p["job_id"])
            if job is None or job["state"] != "RUNNING":
                self.triggers[p["trigger_id"]] = {"location": None}
                return
            location = f"file:/sp/savepoint-{job['value']}"
            self.snapshots.add(location)
            self.triggers[p["trigger_id"]] = {"location": location}
            if action.kind == "stop_with_savepoint":
                job["state"] = "FINISHED"
                job["checkpoint"] = location
        elif action.kind == "cancel":
            job = self.jobs.get(p["job_id"])
            if job is not None and job["state"] == "RUNNING":
                job["state"] = "CANCELED"
                location = f"file:/cp/chk-{job['value']}"
                self.snapshots.add(location)
                job["checkpoint"] = location

    def tick(self) -> None:
        self.now += 1000
        for job in self.jobs.values():
            if job["state"] == "RUNNING":
                job["value"] += 1


def sync(flink: Flink, parent: dict):
    result = sync_session_job(copy.deepcopy(parent), SESSION, flink.observe(parent), flink.now, SETTINGS)
    for action in result.actions:
        flink.act(action)
    parent["status"] = result.status
    running = [j for j, v in flink.jobs.items() if v["state"] == "RUNNING"]
    assert len(running) <= 1, f"two copies of the job running: {running}"
    flink.tick()
    return result


OPS = st.sampled_from(["parallelism", "suspend", "resume", "savepoint_nonce", "flink_down", "flink_up",
                       "forget_triggers", "tick", "tick"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=25), parallelism=st.lists(st.integers(1, 4), min_size=25, max_size=25))
def test_random_operations_keep_one_job_and_settle(ops, parallelism):
    flink, parent = Flink(), copy.deepcopy(JOB)
    for _ in range(4):
        sync(flink, parent)
    assert parent["status"]["lifecycleState"] == "STABLE"
    wanted = {"parallelism": 1, "nonce": 0}
    for index, op in enumerate(ops):
        spec_job = parent["spec"]["job"]
        if op == "parallelism":
            wanted["parallelism"] = spec_job["parallelism"] = parallelism[index]
        elif op == "suspend":
            spec_job["state"] = "suspended"
        elif op == "resume":
            spec_job["state"] = "running"
        elif op == "savepoint_nonce":
            wanted["nonce"] += 1
            spec_job["savepointTriggerNonce"] = wanted["nonce"]
        elif op == "flink_down":
            flink.down = True
        elif op == "flink_up":
            flink.down = False
        elif op == "forget_triggers":
            flink.triggers.clear()  # the JobManager restarted: savepoint/stop results are gone
        if op in ("parallelism", "suspend", "resume", "savepoint_nonce"):
            parent["metadata"]["generation"] += 1
        sync(flink, parent)

    flink.down = False
    parent["spec"]["job"]["state"] = "running"
    parent["metadata"]["generation"] += 1
    for _ in range(40):  # a fixed number: "STABLE" alone can still be the old spec before its upgrade starts
        sync(flink, parent)
        flink.now += 15_000  # past retry back-offs
    status = parent["status"]
    running = [v for v in flink.jobs.values() if v["state"] == "RUNNING"]
    assert len(running) == 1, (ops, status)
    assert running[0]["parallelism"] == wanted["parallelism"], (ops, running[0])
    assert status["lifecycleState"] == "STABLE" and "error" not in status, (ops, status)
    assert not (status.get("flinkSync") or {}).get("pending"), (ops, status)
