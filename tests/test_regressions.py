"""Regression tests for bugs found while writing the docs (savepoint redeploys, manual restore, retries)."""
from __future__ import annotations

import pytest

from .sim import World
from .test_argocd_health import SessionJobWorld
from .test_kubectl_wait import _deployment, kubectl_wait_satisfied

STATE_DIRS = {"state.checkpoints.dir": "file:///c", "state.savepoints.dir": "file:///s"}


def _stable(world: World) -> bool:
    return world.lifecycle() == "STABLE" and world.status.get("jobStatus", {}).get("state") == "RUNNING"


def test_savepoint_redeploy_of_a_stateless_deployment_starts_from_initial_savepoint_path():
    world = World(_deployment(mode="stateless"))
    world.run_until(_stable)
    world.savepoints["file:/sp/wanted"] = 1000
    world.edit(lambda spec: spec["job"].update({"initialSavepointPath": "file:/sp/wanted", "savepointRedeployNonce": 1}))
    world.run_until(lambda w: _stable(w) and len(w.jobs_started) == 2)
    assert world.running_job().restored_from == "file:/sp/wanted"


@pytest.mark.parametrize("mode", ["stateless", "savepoint"])
def test_savepoint_redeploy_of_a_session_job_submits_from_initial_savepoint_path(mode):
    world = SessionJobWorld(latest_checkpoint_path="file:/cp/latest")
    world.parent["spec"]["flinkConfiguration"] = dict(STATE_DIRS)
    world.parent["spec"]["job"]["upgradeMode"] = mode
    world.run_until(lambda s: s["lifecycleState"] == "STABLE" and s["jobStatus"]["state"] == "RUNNING")
    world.parent["spec"]["job"].update({"initialSavepointPath": "file:/sp/wanted", "savepointRedeployNonce": 1})
    world.parent["metadata"]["generation"] += 1
    world.run_until(lambda s: len(world.submitted_from) == 2)
    assert world.submitted_from[-1] == "file:/sp/wanted"


def test_after_manual_restore_required_a_plain_spec_change_does_not_start_without_state():
    world = World(_deployment(mode="savepoint"))
    world.run_until(_stable)
    for _ in range(3):
        world.tick()
        world.sync()
    del world.children[("Deployment", world.name)]  # someone deletes the JobManager Deployment
    world._kubelet()
    world.sync()
    assert world.lifecycle() == "FAILED" and "Manual restore required" in world.status["error"]
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    for _ in range(8):
        world.sync()
        world.tick()
    job = world.running_job()
    assert job is None or job.restored_from is not None, "the job was started without any state"


def test_progressing_stays_true_while_a_failed_upgrade_savepoint_is_retried():
    world = World(_deployment(mode="savepoint"))
    world.run_until(_stable)
    world.fail_savepoints = True
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    world.run_until(lambda w: "retryAt" in w.status.get("flinkSync", {}))
    world.tick()
    world.sync()
    obj = {"metadata": world.parent["metadata"], "status": world.status}
    assert not kubectl_wait_satisfied(obj, "Progressing", "False")


def test_a_stale_checkpoint_view_never_replaces_the_savepoint_of_our_own_stop():
    """Flink caches /jobs/{id}/checkpoints for ~3 s: right after a stop-with-savepoint it may still name an older
    (already subsumed) checkpoint. The savepoint path recorded from the stop must survive later observations."""
    world = World(_deployment(mode="savepoint"))
    world.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"].get("state") == "RUNNING")
    world.stale_checkpoints = True
    world.edit(lambda spec: spec["job"].update(state="suspended"))
    world.run_until(lambda w: w.lifecycle() == "SUSPENDED" and not w.cluster_children())
    for _ in range(3):
        world.tick()
        world.sync()
    path = world.status["jobStatus"]["upgradeSavepointPath"]
    assert path.startswith("file:/sp/"), path
    world.edit(lambda spec: spec["job"].update(state="running"))
    world.run_until(lambda w: w.running_job() is not None)
    assert world.running_job().restored_from == path
