"""`kubectl wait --for=condition=Ready flinkdeployment/NAME` on the status flink-sync writes.

kubectl's condition wait (k8s.io/kubectl pkg/cmd/wait, `ConditionalWait.checkCondition`) looks for the
condition by type in `.status.conditions`. If that condition's `observedGeneration` (or, without one,
`.status.observedGeneration`) is lower than `.metadata.generation` it keeps waiting; otherwise it compares
`status` with the wanted value (default "True"), case-insensitively. `kubectl_wait_satisfied` below is that
check. No API server is needed: the pure core is driven through the simulated world of `tests/sim.py`,
and every status a sync writes is checked the way kubectl would see it.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from .helpers import as_parent
from .sim import World

STATE_DIRS = {"state.checkpoints.dir": "file:///flink-data/checkpoints",
              "state.savepoints.dir": "file:///flink-data/savepoints"}
KUBERNETES_HA = {"high-availability.type": "kubernetes", "high-availability.storageDir": "file:///flink-data/ha"}


def kubectl_wait_satisfied(obj: dict[str, Any], condition: str, want: str = "True") -> bool:
    """True when `kubectl wait --for=condition=<condition>=<want>` would return for this object."""
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if str(cond.get("type", "")).casefold() != condition.casefold() or "status" not in cond:
            continue
        generation = (obj.get("metadata") or {}).get("generation")
        if generation is not None:
            observed = cond.get("observedGeneration", status.get("observedGeneration"))
            if observed is not None and observed < generation:
                return False
        return str(cond["status"]).casefold() == want.casefold()
    return False


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


def _deployment(name: str = "basic-example", mode: str = "stateless", ha: bool = False,
                session: bool = False) -> dict[str, Any]:
    config: dict[str, str] = {"taskmanager.numberOfTaskSlots": "2"}
    if mode != "stateless":
        config.update(STATE_DIRS)
    if ha:
        config.update(KUBERNETES_HA)
    spec: dict[str, Any] = {"image": "flink:1.20", "flinkVersion": "v1_20", "flinkConfiguration": config,
                            "serviceAccount": "flink",
                            "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
                            "taskManager": {"resource": {"memory": "2048m", "cpu": 1}}}
    if not session:
        spec["job"] = {"jarURI": "local:///opt/flink/examples/streaming/StateMachineExample.jar",
                       "parallelism": 2, "upgradeMode": mode}
    return as_parent({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
                      "metadata": {"name": name}, "spec": spec})


def _run_recording(world: World, until, limit: int = 60) -> list[dict[str, Any]]:
    """Sync until `until(world)`, returning the object (metadata + status) as written after every sync."""
    seen = []
    for _ in range(limit):
        world.sync()
        seen.append(copy.deepcopy({"metadata": world.parent["metadata"], "status": world.status}))
        if until(world):
            return seen
        world.tick()
    raise AssertionError(f"not reached after {limit} syncs: {world.summary()}")


def _stable_and_running(world: World) -> bool:
    return world.lifecycle() == "STABLE" and world.status.get("jobStatus", {}).get("state") == "RUNNING"


def test_kubectl_wait_ready_returns_once_the_new_job_is_running_and_stable():
    world = World(_deployment())
    seen = _run_recording(world, _stable_and_running)
    *before, last = seen
    assert before, "the first sync cannot already have a running job"
    for obj in before:
        assert not kubectl_wait_satisfied(obj, "Ready"), obj["status"].get("lifecycleState")
    assert kubectl_wait_satisfied(last, "Ready")
    ready = _condition(last, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "JobRunning"
    assert ready["observedGeneration"] == last["metadata"]["generation"] == last["status"]["observedGeneration"]
    assert last["status"]["lifecycleState"] == "STABLE"


def test_kubectl_wait_ready_ignores_a_ready_condition_from_the_previous_generation():
    world = World(_deployment())
    world.run_until(_stable_and_running)
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    # Applied, not yet synced: the old Ready=True belongs to generation 1, so kubectl keeps waiting.
    before_sync = {"metadata": world.parent["metadata"], "status": world.status}
    assert _condition(before_sync, "Ready")["status"] == "True"
    assert not kubectl_wait_satisfied(before_sync, "Ready")


@pytest.mark.parametrize("mode,ha", [
    pytest.param("stateless", False, id="stateless"),
    pytest.param("last-state", True, id="last-state-kubernetes-ha"),
    pytest.param("savepoint", False, id="savepoint"),
    pytest.param("last-state", False, id="last-state-without-ha"),
])
def test_kubectl_wait_ready_blocks_while_upgrading(mode, ha):
    world = World(_deployment(mode=mode, ha=ha))
    world.run_until(_stable_and_running)
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    seen = _run_recording(world, lambda w: _stable_and_running(w) and w.parent["metadata"]["generation"] == 2)
    upgrading = [obj for obj in seen if obj["status"]["lifecycleState"] == "UPGRADING"]
    assert upgrading, "the change must go through UPGRADING"
    for obj in upgrading:
        assert _condition(obj, "Ready")["status"] == "False", _condition(obj, "Ready")
        assert not kubectl_wait_satisfied(obj, "Ready")
        assert kubectl_wait_satisfied(obj, "Progressing")
    last = seen[-1]
    assert kubectl_wait_satisfied(last, "Ready")
    assert _condition(last, "Ready")["observedGeneration"] == 2
    assert kubectl_wait_satisfied(last, "Progressing", "False")


def test_kubectl_wait_progressing_false_then_ready_after_a_successful_upgrade_in_every_mode():
    """The wait docs/lifecycle.md recommends after an edit: Progressing=False for this generation, then Ready."""
    for mode, ha in (("stateless", False), ("savepoint", False), ("last-state", True), ("last-state", False)):
        world = World(_deployment(mode=mode, ha=ha))
        world.run_until(_stable_and_running)
        world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
        seen = _run_recording(world, lambda w: _stable_and_running(w) and w.parent["metadata"]["generation"] == 2)
        first_done = next(i for i, obj in enumerate(seen) if kubectl_wait_satisfied(obj, "Progressing", "False"))
        assert seen[first_done]["status"]["lifecycleState"] == "STABLE", mode
        assert kubectl_wait_satisfied(seen[first_done], "Ready"), mode


def test_kubectl_wait_ready_is_false_while_suspended():
    world = World(_deployment(mode="savepoint"))
    world.run_until(_stable_and_running)
    world.edit(lambda spec: spec["job"].__setitem__("state", "suspended"))
    seen = _run_recording(world, lambda w: w.lifecycle() == "SUSPENDED" and not w.cluster_children())
    last = seen[-1]
    assert _condition(last, "Ready")["reason"] == "Suspended"
    assert kubectl_wait_satisfied(last, "Ready", "False")
    assert not kubectl_wait_satisfied(last, "Ready")


def test_kubectl_wait_ready_on_a_session_cluster_means_the_jobmanager_answers():
    world = World(_deployment(name="basic-session-cluster", session=True))
    seen = _run_recording(world, lambda w: w.status.get("jobManagerDeploymentStatus") == "READY")
    for obj in seen[:-1]:
        assert not kubectl_wait_satisfied(obj, "Ready")
    last = seen[-1]
    assert kubectl_wait_satisfied(last, "Ready")
    assert _condition(last, "Ready")["reason"] == "JobManagerReady"
    assert last["status"]["lifecycleState"] == "STABLE"


def test_kubectl_wait_ready_never_returns_for_a_failed_job_and_degraded_does():
    world = World(_deployment())
    world.fail_new_jobs = True
    seen = _run_recording(world, lambda w: w.lifecycle() == "FAILED")
    assert not any(kubectl_wait_satisfied(obj, "Ready") for obj in seen)
    assert kubectl_wait_satisfied(seen[-1], "Degraded")
    assert kubectl_wait_satisfied(seen[-1], "Ready", "False")
