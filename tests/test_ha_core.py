"""The core's side of Kubernetes HA, in the simulated world (tests/sim.py): what the sandbox's real HA revealed
(tests/sandbox/test_ha_sandbox.py runs the same flows against Flink's own HA services)."""
from __future__ import annotations

import copy

from .sim import World
from .test_state_machine import BASE, deployed

HA = {"high-availability.type": "kubernetes", "high-availability.storageDir": "file:///ha"}


def ha_world(**config: str) -> World:
    parent = copy.deepcopy(BASE)
    parent["spec"]["job"]["upgradeMode"] = "last-state"
    parent["spec"]["flinkConfiguration"].update({**HA, **config})
    return World(parent)


def actions(w: World) -> list[str]:
    return [a.kind for r in w.history for a in r.actions]


def test_a_redeploy_with_ha_removes_the_stored_job_graph_before_the_new_cluster():
    """Otherwise the new JobManager runs the old job graph from HA (the new parallelism silently ignored)."""
    w = deployed(ha_world())
    job = w.status["jobStatus"]["jobId"]
    w.history.clear()
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.run_until(lambda w: w.lifecycle() == "DEPLOYED")
    creating = [r for r in w.history if any(c["kind"] == "Deployment" for c in r.children)]
    assert [a.kind for a in creating[0].actions] == ["remove_ha_job_graphs"]
    assert creating[0].actions[0].required and creating[0].actions[0].params == {"name": "wc", "namespace": "flink"}
    assert w.status["jobStatus"]["jobId"] == job, "last-state with HA keeps the job id"


def test_without_ha_no_job_graph_is_removed():
    w = deployed(World(copy.deepcopy(BASE)))
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"]["state"] == "RUNNING")
    assert "remove_ha_job_graphs" not in actions(w)


def test_last_state_suspend_with_ha_records_the_job_finished():
    w = deployed(ha_world())
    w.edit(lambda s: s["job"].update(state="suspended"))
    w.run_until(lambda w: w.lifecycle() == "SUSPENDED")
    assert w.status["jobStatus"]["state"] == "FINISHED" and w.status["jobManagerDeploymentStatus"] == "MISSING"
    assert "delete_ha_data" not in actions(w), "the HA ConfigMaps stay while suspended"


def test_deletion_with_ha_deletes_the_ha_data_after_the_jobmanager_had_its_grace_period():
    """A JobManager still running re-creates its leader ConfigMap: the HA data goes only once the cluster's
    Deployments are gone and the pods' grace period (30 s by default) has passed."""
    w = deployed(ha_world())
    w.history.clear()
    first = w.sync(finalizing=True)
    assert first.children == [] and first.finalized is False
    assert "delete_ha_data" not in [a.kind for a in first.actions]
    removed_at = w.now_ms
    assert w.status["flinkSync"]["haCleanupAt"] == removed_at + 30_000
    while True:
        w.tick()
        result = w.sync(finalizing=True)
        if result.finalized:
            break
        assert "delete_ha_data" not in [a.kind for a in result.actions]
    assert w.now_ms >= removed_at + 30_000
    assert [a.kind for a in result.actions] == ["delete_ha_data"]


def test_deletion_waits_the_jobmanagers_own_grace_period():
    w = deployed(ha_world())
    w.children[("Deployment", "wc")]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 5
    w.sync(finalizing=True)
    assert w.status["flinkSync"]["haCleanupAt"] == w.now_ms + 5_000


def test_deletion_without_ha_finishes_at_once():
    w = deployed(World(copy.deepcopy(BASE)))
    w.parent["spec"]["flinkConfiguration"]["kubernetes.operator.job.savepoint-on-deletion"] = "false"
    result = w.sync(finalizing=True)
    assert result.finalized and [a.kind for a in result.actions] == ["cancel", "delete_ha_data"]


def test_lost_jobmanager_with_recovery_off_is_reported_as_apache_does():
    """Missing JobManager deployment, MISSING, not FAILED, nothing redeployed; a later spec change restores from
    HA with the same job id."""
    w = deployed(ha_world(**{"kubernetes.operator.jm-deployment-recovery.enabled": "false"}))
    job = w.status["jobStatus"]["jobId"]
    w.children.pop(("Deployment", "wc"))
    result = w.sync()
    assert any(e.reason == "Missing" for e in result.events)
    assert not any(e.reason == "RecoverDeployment" for e in result.events)
    for _ in range(3):
        w.tick()
        result = w.sync()
    assert not any(c["kind"] == "Deployment" for c in result.children), "not redeployed"
    assert w.lifecycle() == "STABLE" and w.status["jobManagerDeploymentStatus"] == "MISSING"
    assert "Missing JobManager deployment" in w.status["error"]
    assert w.status["jobStatus"]["state"] == "RECONCILING"
    w.edit(lambda s: s.update(restartNonce=1))
    w.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"]["state"] == "RUNNING")
    assert w.status["jobStatus"]["jobId"] == job, "restored from HA: the same job id"


def test_lost_jobmanager_with_ha_is_recovered_with_the_same_job_id():
    w = deployed(ha_world())
    job = w.status["jobStatus"]["jobId"]
    w.children.pop(("Deployment", "wc"))
    result = w.sync()
    assert any(e.reason == "RecoverDeployment" for e in result.events)
    w.run_until(lambda w: w.lifecycle() == "STABLE" and w.status["jobStatus"]["state"] == "RUNNING")
    assert w.status["jobStatus"]["jobId"] == job
