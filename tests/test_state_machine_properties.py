"""Property tests of the state machine: random edits, faults and orderings, then recovery.

Invariants (docs/safety.md):
* a stateful job (savepoint / last-state) is never torn down while it is RUNNING;
* no job id of a stateful job is ever started twice; every restore path is a savepoint or checkpoint that exists;
* keyed state never goes backwards across restores of a stateful job;
* once faults stop and the spec is valid, the resource settles to what the spec asks.
"""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .sim import World
from .test_state_machine import BASE

OPS = st.sampled_from(["parallelism", "suspend", "resume", "restart", "savepoint_nonce", "image", "invalid",
                       "flink_down", "flink_up", "lose_writes", "keep_writes", "forget_triggers", "tick", "tick"])


def apply_op(w: World, op: str, index: int, parallelism: int) -> None:
    """One generated operation on the world: an edit of the spec (a new generation) or a fault; others do
    nothing here. `index` makes each nonce, restart and image new."""
    edits = {"parallelism": lambda s: s["job"].update(parallelism=parallelism),
             "suspend": lambda s: s["job"].update(state="suspended"),
             "resume": lambda s: s["job"].update(state="running"),
             "restart": lambda s: s.update(restartNonce=index),
             "savepoint_nonce": lambda s: s["job"].update(savepointTriggerNonce=index + 1),
             "image": lambda s: s.update(image=f"flink:1.20.{index}"),
             "invalid": lambda s: s["job"].update(parallelism=0)}
    faults = {"flink_down": ("flink_down", True), "flink_up": ("flink_down", False),
              "lose_writes": ("lose_status_writes", True), "keep_writes": ("lose_status_writes", False)}
    if op in edits:
        w.edit(edits[op])
    elif op in faults:
        setattr(w, *faults[op])
    elif op == "forget_triggers" and w.cluster is not None:
        # The JobManager restarted (or rest.async.store-duration passed): savepoint/stop results are gone.
        w.cluster.triggers.clear()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["savepoint", "last-state", "stateless"]), ops=st.lists(OPS, min_size=1, max_size=25),
       parallelism=st.lists(st.integers(1, 4), min_size=25, max_size=25))
def test_random_operations_keep_the_invariants_and_settle(mode, ops, parallelism):
    parent = copy.deepcopy(BASE)
    parent["spec"]["job"]["upgradeMode"] = mode
    w = World(parent)
    w.run_until(lambda w: w.lifecycle() == "STABLE")
    valid_parallelism = [2]
    final_values: dict[str, int] = {}

    def check_sync():
        before = w.running_job()
        had_jm = ("Deployment", "wc") in w.children
        w.sync()
        if mode != "stateless" and had_jm and before is not None and ("Deployment", "wc") not in w.children:
            raise AssertionError(f"stateful job {before.job_id[:6]} torn down while RUNNING: {w.summary()}")
        if mode != "stateless":
            # (A stateless cluster whose own teardown's status write was lost may be re-created from the same
            # record: the same job id starting again from nothing, which is what a stateless job means.)
            assert len(set(w.jobs_started)) == len(w.jobs_started), "a job id was started twice"
        if w.cluster is not None:
            for job in w.cluster.jobs.values():
                if job.restored_from is not None:
                    assert job.restored_from in w.savepoints, "restored from a path that does not exist"
                final_values[job.job_id] = job.value

    for index, op in enumerate(ops):
        if op == "parallelism":
            valid_parallelism[0] = parallelism[index]
        apply_op(w, op, index, parallelism[index])
        w.tick()
        check_sync()

    # Faults end; the spec is made valid and running.
    w.flink_down = False
    w.lose_status_writes = False
    w.edit(lambda s: s["job"].update(parallelism=valid_parallelism[0], state="running"))
    for _ in range(80):
        w.tick()
        check_sync()
        if w.lifecycle() == "STABLE" and w.status.get("jobStatus", {}).get("state") == "RUNNING" and \
                f"parallelism.default: {valid_parallelism[0]}" in \
                w.children[("ConfigMap", "flink-config-wc")]["data"]["flink-conf.yaml"]:
            break
    else:
        raise AssertionError(f"did not settle: {w.summary()}")
    assert "error" not in w.status, w.status.get("error")
    job = w.running_job()
    assert job is not None and job.job_id == w.status["jobStatus"]["jobId"]
    if mode != "stateless" and job.restored_from is not None:
        assert w.savepoints[job.restored_from] >= max(v for j, v in final_values.items() if j != job.job_id) - 1 \
            if len(final_values) > 1 else True
