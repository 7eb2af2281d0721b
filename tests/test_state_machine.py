"""The FlinkDeployment state machine, driven through the simulated world (tests/sim.py): deploy, upgrades in
every mode, suspend/resume, savepoints, restartNonce, rollback, deletion, faults. Real-Flink versions of these
flows live in test_e2e_flink.py."""
from __future__ import annotations

import copy
import json

from sync.spec import deserialize_reconciled

from .sim import World

BASE = {
    "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
    "metadata": {"name": "wc", "namespace": "flink", "uid": "uid-wc", "generation": 1},
    "spec": {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
             "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2", "state.savepoints.dir": "file:///sp",
                                    "state.checkpoints.dir": "file:///cp"},
             "jobManager": {"resource": {"memory": "1g", "cpu": 1}},
             "taskManager": {"resource": {"memory": "1g", "cpu": 1}},
             "job": {"jarURI": "local:///opt/app.jar", "parallelism": 2, "upgradeMode": "savepoint"}},
}


def world(mode: str = "savepoint", **config) -> World:
    parent = copy.deepcopy(BASE)
    parent["spec"]["job"]["upgradeMode"] = mode
    parent["spec"]["flinkConfiguration"].update(config)
    return World(parent)


def stable(w: World) -> bool:
    return w.lifecycle() == "STABLE" and w.status.get("jobStatus", {}).get("state") == "RUNNING"


def deployed(w: World) -> World:
    w.run_until(stable)
    for _ in range(3):
        w.tick()
        w.sync()
    return w


def test_first_deploy_becomes_stable():
    w = world()
    first = w.sync()
    assert {c["kind"] for c in first.children} == {"ConfigMap", "Service", "Deployment"}
    assert w.lifecycle() == "DEPLOYED"
    w.run_until(stable)
    assert w.status["jobManagerDeploymentStatus"] == "READY"
    assert w.status["jobStatus"]["jobId"] == w.running_job().job_id
    assert w.status["clusterInfo"]["flink-version"] == "1.20.3"
    ready = {c["type"]: c for c in w.status["conditions"]}["Ready"]
    assert ready["status"] == "True"


def test_steady_state_response_is_identical():
    w = deployed(world())
    a = w.sync().response(False)
    b = w.sync().response(False)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert w.sync().resync_after_seconds == 60.0


def test_savepoint_upgrade_continues_state_and_records_path_before_children_change():
    w = deployed(world("savepoint"))
    old_job = w.running_job()
    w.edit(lambda s: s["job"].update(parallelism=4))
    statuses_before = []
    while True:
        statuses_before.append(copy.deepcopy(w.status))
        had_jm = ("Deployment", "wc") in w.children
        w.sync()
        if had_jm and ("Deployment", "wc") not in w.children:
            # The JM was removed in this sync: the savepoint path must already be in the incoming status.
            incoming = statuses_before[-1]
            assert incoming["jobStatus"]["upgradeSavepointPath"].startswith("file:/sp/"), incoming["jobStatus"]
            break
        w.tick()
    w.run_until(stable)
    new_job = w.running_job()
    assert new_job.job_id != old_job.job_id
    assert new_job.restored_from == w.status["jobStatus"]["upgradeSavepointPath"]
    assert new_job.value >= w.savepoints[new_job.restored_from] > 0, "state continued from the savepoint"
    conf = w.children[("ConfigMap", "flink-config-wc")]["data"]["flink-conf.yaml"]
    assert "parallelism.default: 4" in conf
    spec, _ = deserialize_reconciled(w.status["reconciliationStatus"]["lastReconciledSpec"])
    assert spec["job"]["parallelism"] == 4 and spec["job"]["upgradeMode"] == "savepoint"
    history = w.status["jobStatus"]["savepointInfo"]["savepointHistory"]
    assert history[-1]["triggerType"] == "UPGRADE"


def test_stateless_upgrade_starts_fresh():
    w = deployed(world("stateless"))
    w.edit(lambda s: s.update(restartNonce=7))
    w.run_until(lambda w: stable(w) and w.running_job() is not None and w.running_job().restored_from is None
                and w.status["jobStatus"]["jobId"] != w.jobs_started[0])
    assert w.running_job().value < 5


def test_last_state_without_ha_cancels_and_restores_the_latest_checkpoint():
    w = deployed(world("last-state"))
    value_before = w.running_job().value
    w.edit(lambda s: s["job"].update(parallelism=3))
    w.run_until(lambda w: stable(w) and len(w.jobs_started) == 2)
    job = w.running_job()
    assert job.restored_from and job.restored_from.startswith("file:/cp/")
    assert job.value >= value_before


def test_suspend_and_resume_from_the_savepoint():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(state="suspended"))
    w.run_until(lambda w: w.lifecycle() == "SUSPENDED" and not w.cluster_children())
    path = w.status["jobStatus"]["upgradeSavepointPath"]
    assert path in w.savepoints
    assert w.status["jobManagerDeploymentStatus"] == "MISSING"
    w.edit(lambda s: s["job"].update(state="running"))
    w.run_until(stable)
    assert w.running_job().restored_from == path
    assert w.running_job().value >= w.savepoints[path]


def test_manual_savepoint_by_nonce():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(savepointTriggerNonce=1))
    w.run_until(lambda w: (w.status["jobStatus"].get("savepointInfo") or {}).get("lastSavepoint", {}).get("triggerNonce") == 1)
    info = w.status["jobStatus"]["savepointInfo"]
    assert info["lastSavepoint"]["triggerType"] == "MANUAL"
    assert info["lastSavepoint"]["location"] in w.savepoints
    assert "triggerId" not in info
    w.run_until(stable)
    assert len(w.jobs_started) == 1, "a savepoint nonce never restarts the job"
    spec, _ = deserialize_reconciled(w.status["reconciliationStatus"]["lastReconciledSpec"])
    assert spec["job"]["savepointTriggerNonce"] == 1


def test_periodic_savepoints_and_history_limits():
    """Without snapshot resources (Apache's legacy history): the history disposes of old savepoints itself."""
    w = deployed(world("savepoint", **{"kubernetes.operator.periodic.savepoint.interval": "3 s",
                                       "kubernetes.operator.savepoint.history.max.count": "2",
                                       "kubernetes.operator.snapshot.resource.enabled": "false"}))
    for _ in range(20):
        w.tick()
        w.sync()
    info = w.status["jobStatus"]["savepointInfo"]
    assert info["lastSavepoint"]["triggerType"] == "PERIODIC"
    assert len(info["savepointHistory"]) == 2
    assert info["lastPeriodicSavepointTimestamp"] > 0
    disposed = [a for r in w.history for a in r.actions if a.kind == "dispose_savepoint"]
    assert disposed, "savepoints beyond the history limit are disposed"


def test_periodic_savepoints_on_a_quartz_cron_schedule():
    """Every 10 s by the clock (`*/10` seconds): a savepoint per fire time, and the resync is shortened to it."""
    w = deployed(world("savepoint", **{"kubernetes.operator.periodic.savepoint.interval": "*/10 * * * * ?"}))
    w.now_ms = (w.now_ms // 10_000 + 1) * 10_000 + 1_000  # one second past a fire time
    taken = []
    for _ in range(35):
        result = w.sync()
        taken += [w.now_ms for a in result.actions if a.kind == "trigger_savepoint"]
        assert result.resync_after_seconds is not None and result.resync_after_seconds <= 10
        w.tick()
    assert len(taken) >= 3 and all(b - a >= 9_000 for a, b in zip(taken, taken[1:], strict=False)), taken
    info = w.status["jobStatus"]["savepointInfo"]
    assert info["lastSavepoint"]["triggerType"] == "PERIODIC"


def test_savepoint_failure_keeps_the_cluster_and_retries():
    w = deployed(world("savepoint"))
    job = w.running_job()
    w.fail_savepoints = True
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.run_until(lambda w: "SavepointError" in (w.status.get("error") or ""))
    assert ("Deployment", "wc") in w.children
    assert w.running_job() is job, "the running job was not touched"
    w.fail_savepoints = False
    w.now_ms += 20_000
    w.run_until(lambda w: stable(w) and len(w.jobs_started) == 2)
    assert w.running_job().value >= job.value


def test_invalid_spec_keeps_the_deployed_children():
    w = deployed(world("savepoint"))
    before = json.dumps(sorted(w.children.items()), sort_keys=True, default=str)
    w.edit(lambda s: s["job"].update(upgradeMode="blue-green"))
    result = w.sync()
    assert "spec.job.upgradeMode" in w.status["error"]
    assert json.dumps(sorted(w.children.items()), sort_keys=True, default=str) == before
    assert any(e.reason == "ValidationError" for e in result.events)
    w.edit(lambda s: s["job"].update(upgradeMode="savepoint"))
    w.sync()
    assert "error" not in w.status


def test_restart_nonce_restarts_through_a_savepoint():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s.update(restartNonce=1))
    w.run_until(lambda w: stable(w) and len(w.jobs_started) == 2)
    assert w.running_job().restored_from is not None


def test_rollback_of_an_upgrade_that_never_becomes_stable():
    w = deployed(world("savepoint", **{"kubernetes.operator.deployment.rollback.enabled": "true",
                                       "kubernetes.operator.deployment.readiness.timeout": "5 s"}))
    stable_value = w.running_job().value
    w.fail_new_jobs = True
    w.edit(lambda s: s.update(image="flink:broken"))
    w.run_until(lambda w: w.status["reconciliationStatus"].get("state") == "ROLLING_BACK", limit=80)
    w.fail_new_jobs = False
    w.run_until(lambda w: w.lifecycle() == "ROLLED_BACK" and w.status["jobStatus"].get("state") == "RUNNING", limit=80)
    jm = w.children[("Deployment", "wc")]
    assert jm["spec"]["template"]["spec"]["containers"][0]["image"] == "flink:1.20", "the stable spec runs again"
    assert w.running_job().value >= stable_value, "state restored from the upgrade savepoint"
    for _ in range(5):
        w.tick()
        w.sync()
    assert w.lifecycle() == "ROLLED_BACK"
    w.edit(lambda s: s.update(image="flink:1.20.1"))
    w.run_until(lambda w: stable(w) and w.children[("Deployment", "wc")]["spec"]["template"]["spec"]["containers"][0]["image"] == "flink:1.20.1", limit=80)


def test_flink_down_during_upgrade_loses_nothing():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.sync()  # stop-with-savepoint asked
    w.flink_down = True
    for _ in range(5):
        w.tick()
        w.sync()
        assert ("Deployment", "wc") in w.children, "nothing is removed while Flink cannot be asked"
    w.flink_down = False
    w.run_until(lambda w: stable(w) and len(w.jobs_started) == 2)


def test_lost_status_writes_never_submit_twice_or_lose_a_savepoint():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(parallelism=4))
    for i in range(60):
        w.lose_status_writes = i % 3 == 1  # every third status write is lost after children were applied
        w.sync()
        w.tick()
    w.lose_status_writes = False
    w.run_until(lambda w: stable(w) and w.children[("ConfigMap", "flink-config-wc")]["data"]["flink-conf.yaml"].count("parallelism.default: 4"))
    assert len(set(w.jobs_started)) == len(w.jobs_started), "a job id was started twice"
    assert w.running_job().restored_from in w.savepoints


def test_delete_with_savepoint_on_deletion():
    w = deployed(world("savepoint", **{"kubernetes.operator.job.savepoint-on-deletion": "true"}))
    results = []
    for _ in range(10):
        result = w.sync(finalizing=True)
        results.append(result)
        if result.finalized:
            break
        w.tick()
    assert results[-1].finalized and results[-1].children == []
    assert not any(r.finalized for r in results[:-1])
    last = w.status["jobStatus"]["savepointInfo"]["lastSavepoint"]
    assert last["location"] in w.savepoints
    # The path was recorded while the cluster still existed.
    recorded_with_children = [r for r in results if r.children and
                              (r.status["jobStatus"].get("savepointInfo") or {}).get("lastSavepoint", {}).get("location") == last["location"]]
    assert recorded_with_children


def test_created_suspended_deploys_nothing():
    w = world()
    w.parent["spec"]["job"]["state"] = "suspended"
    result = w.sync()
    assert result.children == [] and w.lifecycle() == "CREATED"


def test_missing_jobmanager_of_a_stateless_job_is_recovered():
    w = deployed(world("stateless"))
    old_job = w.status["jobStatus"]["jobId"]
    w.children.pop(("Deployment", "wc"))  # someone deletes the JM Deployment
    result = w.sync()
    assert any(e.reason == "Missing" for e in result.events)
    assert any(e.reason == "RecoverDeployment" for e in result.events)
    w.run_until(stable)
    assert w.status["jobStatus"]["jobId"] != old_job, "recovered with a new job id, as Apache does without HA"


def test_missing_jobmanager_of_a_stateful_job_without_ha_needs_manual_restore():
    w = deployed(world("savepoint"))
    w.children.pop(("Deployment", "wc"))
    w.sync()
    assert w.lifecycle() == "FAILED"
    assert "Manual restore required" in w.status["error"]


def test_session_cluster_upgrade_redeploys():
    w = world()
    del w.parent["spec"]["job"]
    w.run_until(lambda w: w.lifecycle() == "STABLE")
    w.edit(lambda s: s["flinkConfiguration"].update({"taskmanager.numberOfTaskSlots": "4"}))
    w.run_until(lambda w: w.lifecycle() == "STABLE" and "taskmanager.numberOfTaskSlots: 4" in
                w.children[("ConfigMap", "flink-config-wc")]["data"]["flink-conf.yaml"])


def test_savepoint_redeploy_nonce():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(initialSavepointPath="file:/sp/manual", savepointRedeployNonce=1))
    w.savepoints["file:/sp/manual"] = 1000
    w.run_until(lambda w: stable(w) and w.running_job() is not None and w.running_job().restored_from == "file:/sp/manual")
    assert w.running_job().value >= 1000


def test_a_retried_sync_decides_the_same_actions():
    """Metacontroller retries a request whose response was lost: same input, same actions and trigger ids."""
    import copy as _copy

    from sync.deployment import sync_deployment

    from .helpers import SETTINGS
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.sync()  # records the stop intent
    w.tick()
    parent = _copy.deepcopy(w.parent)
    children = w.request_children()
    observation = w._observe()
    first = sync_deployment(_copy.deepcopy(parent), children, observation, w.now_ms, SETTINGS)
    second = sync_deployment(_copy.deepcopy(parent), children, observation, w.now_ms, SETTINGS)
    assert [a.kind for a in first.actions] == ["stop_with_savepoint"]
    assert first.actions == second.actions and first.status == second.status and first.children == second.children
