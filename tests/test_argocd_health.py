"""`deploy/argocd/health.lua` on statuses the core really writes.

Argo CD runs health checks in gopher-lua (Lua 5.1) with the resource as the global `obj`; here the same
script runs in Lua 5.1 through `lupa`. Statuses come from the simulated world of `tests/sim.py` (FlinkDeployment)
and from driving `sync_session_job` directly (FlinkSessionJob), so the script is tested against real output.
The script in docs/argocd-health.md must be this file, byte for byte.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from sync.sessionjob import sync_session_job

from .helpers import NOW_MS, SETTINGS, as_parent
from .sim import SessionCluster, World
from .test_kubectl_wait import _deployment

try:
    import lupa
except ImportError:  # the test extras install it
    lupa = None

pytestmark = pytest.mark.skipif(lupa is None, reason="lupa is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (ROOT / "deploy" / "argocd" / "health.lua").read_text()


def _runtime():
    try:
        from lupa import lua51  # Argo CD's gopher-lua implements Lua 5.1
        return lua51.LuaRuntime(unpack_returned_tuples=True)
    except ImportError:
        return lupa.LuaRuntime(unpack_returned_tuples=True)


def _to_lua(lua, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> dict[str, str]:
    lua = _runtime()
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}


def _snapshot(world: World) -> dict[str, Any]:
    return copy.deepcopy(world.parent)


def _stable(world: World) -> bool:
    return world.lifecycle() == "STABLE" and world.status.get("jobStatus", {}).get("state") == "RUNNING"


# ---------------------------------------------------------------- FlinkDeployment


def test_no_status_yet_is_progressing():
    assert health(_deployment())["status"] == "Progressing"


def test_first_sync_deployed_is_progressing_and_stable_running_is_healthy():
    world = World(_deployment())
    world.sync()
    assert world.lifecycle() == "DEPLOYED"
    assert health(_snapshot(world))["status"] == "Progressing"
    world.run_until(_stable)
    assert health(_snapshot(world)) == {"status": "Healthy", "message": "Job RUNNING"}


def test_unsynced_generation_is_progressing():
    world = World(_deployment())
    world.run_until(_stable)
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    got = health(_snapshot(world))
    assert got["status"] == "Progressing" and "generation 2" in got["message"]


@pytest.mark.parametrize("mode,ha", [("stateless", False), ("savepoint", False), ("last-state", True)])
def test_upgrading_is_progressing(mode, ha):
    world = World(_deployment(mode=mode, ha=ha))
    world.run_until(_stable)
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 3))
    world.run_until(lambda w: w.lifecycle() == "UPGRADING")
    assert health(_snapshot(world))["status"] == "Progressing"


def test_suspended_is_suspended():
    world = World(_deployment(mode="savepoint"))
    world.run_until(_stable)
    world.edit(lambda spec: spec["job"].__setitem__("state", "suspended"))
    world.run_until(lambda w: w.lifecycle() == "SUSPENDED")
    assert health(_snapshot(world))["status"] == "Suspended"


def test_created_suspended_is_suspended():
    parent = _deployment()
    parent["spec"]["job"]["state"] = "suspended"
    world = World(parent)
    world.sync()
    assert world.lifecycle() == "CREATED"
    assert health(_snapshot(world))["status"] == "Suspended"


def test_failed_job_is_degraded_with_the_failure_cause():
    world = World(_deployment())
    world.fail_new_jobs = True
    world.run_until(lambda w: w.lifecycle() == "FAILED")
    assert health(_snapshot(world)) == {"status": "Degraded", "message": "boom"}


def test_rejected_edit_is_degraded_and_names_the_field():
    world = World(_deployment())
    world.run_until(_stable)
    world.edit(lambda spec: spec["taskManager"].__setitem__("replicas", 0))
    world.sync()
    assert world.lifecycle() == "STABLE"  # the last good spec keeps running
    got = health(_snapshot(world))
    assert got["status"] == "Degraded" and got["message"].startswith("spec.taskManager.replicas:")


def test_rolling_back_is_progressing_and_rolled_back_running_is_healthy():
    parent = _deployment(mode="savepoint")
    parent["spec"]["flinkConfiguration"].update({"kubernetes.operator.deployment.rollback.enabled": "true",
                                                 "kubernetes.operator.deployment.readiness.timeout": "5 s"})
    world = World(parent)
    world.run_until(_stable)
    world.fail_new_jobs = True
    world.edit(lambda spec: spec["job"].__setitem__("parallelism", 4))
    world.run_until(lambda w: w.lifecycle() == "ROLLING_BACK")
    got = health(_snapshot(world))
    assert got["status"] == "Progressing" and got["message"] == "Rolling back to the last stable spec: boom"
    world.fail_new_jobs = False
    world.run_until(lambda w: w.lifecycle() == "ROLLED_BACK" and w.status["jobStatus"].get("state") == "RUNNING")
    got = health(_snapshot(world))
    assert got["status"] == "Healthy" and got["message"].startswith("Rolled back")


def test_session_cluster_is_healthy_when_the_jobmanager_is_ready():
    world = World(_deployment(name="basic-session-cluster", session=True))
    world.sync()
    assert health(_snapshot(world))["status"] == "Progressing"
    world.run_until(lambda w: w.status.get("jobManagerDeploymentStatus") == "READY")
    assert health(_snapshot(world)) == {"status": "Healthy", "message": "Session cluster READY"}


def test_deleting_is_progressing():
    world = World(_deployment())
    world.run_until(_stable)
    obj = _snapshot(world)
    obj["metadata"]["deletionTimestamp"] = "2025-11-24T16:00:00Z"
    assert health(obj)["status"] == "Progressing"


# ---------------------------------------------------------------- FlinkSessionJob

SESSION = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
           "metadata": {"name": "basic-session-deployment-example", "namespace": "default"},
           "spec": {"flinkVersion": "v1_20", "serviceAccount": "flink"},
           "status": {"jobManagerDeploymentStatus": "READY"}}


class SessionJobWorld:
    """A FlinkSessionJob, its READY session cluster, and the shared in-memory Flink (hooks/fake_flink.py) that runs
    what is submitted, reached through the hooks' own Flink I/O (tests/sim.SessionCluster). With
    `latest_checkpoint_path`, Flink reports that path as every job's latest checkpoint; `submitted_from` is each
    submission's restore path."""

    def __init__(self, jar: str = "https://repo1.maven.org/maven2/x/job.jar", session: dict | None = SESSION,
                 latest_checkpoint_path: str | None = None):
        self.parent = as_parent({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
                                 "metadata": {"name": "basic-session-job-example"},
                                 "spec": {"deploymentName": "basic-session-deployment-example",
                                          "job": {"jarURI": jar, "parallelism": 4, "upgradeMode": "stateless"}}})
        self.session = session
        self.cluster = SessionCluster()
        self.latest_checkpoint_path = latest_checkpoint_path
        self.now = NOW_MS

    @property
    def submitted_from(self) -> list[str | None]:
        return [submission["savepoint_path"] for submission in self.cluster.flink.submissions]

    def sync(self) -> None:
        observation = self.cluster.observe(self.parent, self.session)
        result = sync_session_job(copy.deepcopy(self.parent), self.session, observation, self.now, SETTINGS)
        self.cluster.execute(result.actions)
        status = copy.deepcopy(result.status)
        status["observedGeneration"] = self.parent["metadata"]["generation"]
        self.parent["status"] = status
        self.now += 1000
        self.cluster.flink.tick()
        for job in self.cluster.flink.jobs.values():
            job.checkpoint = self.latest_checkpoint_path or job.checkpoint

    def run_until(self, predicate, limit: int = 20) -> None:
        for _ in range(limit):
            self.sync()
            if predicate(self.parent["status"]):
                return
        raise AssertionError(self.parent["status"])


def test_session_job_waiting_for_its_session_cluster_is_progressing():
    world = SessionJobWorld(session=None)
    world.sync()
    got = health(world.parent)
    assert got["status"] == "Progressing" and "basic-session-deployment-example" in got["message"]


def test_session_job_running_is_healthy_and_suspended_is_suspended():
    world = SessionJobWorld()
    world.run_until(lambda s: s["lifecycleState"] == "STABLE" and s["jobStatus"]["state"] == "RUNNING")
    assert health(world.parent) == {"status": "Healthy", "message": "Job RUNNING"}
    world.parent["spec"]["job"]["state"] = "suspended"
    world.parent["metadata"]["generation"] += 1
    world.run_until(lambda s: s["lifecycleState"] == "SUSPENDED")
    assert health(world.parent)["status"] == "Suspended"


def test_session_job_with_a_refused_jar_is_degraded_and_names_the_field():
    world = SessionJobWorld(jar="http://10.0.0.5/job.jar")
    world.sync()
    got = health(world.parent)
    assert got["status"] == "Degraded" and got["message"].startswith("spec.job.jarURI:")


# ---------------------------------------------------------------- docs


def test_documented_script_is_the_deployed_script():
    doc = (ROOT / "docs" / "argocd-health.md").read_text()
    blocks = re.findall(r"```lua\n(.*?)```", doc, flags=re.S)
    assert blocks == [SCRIPT, (ROOT / "deploy" / "argocd" / "snapshot-health.lua").read_text()]


# ---------------------------------------------------------------- FlinkStateSnapshot
SNAPSHOT_SCRIPT = (ROOT / "deploy" / "argocd" / "snapshot-health.lua").read_text()


def _lua_function(script: str, name: str) -> str:
    match = re.search(rf"^local function {name}\(.*?^end$", script, flags=re.S | re.M)
    assert match, f"local function {name} not found"
    return match.group(0)


def test_the_two_scripts_share_their_helpers_word_for_word():
    """Argo CD runs each argocd-cm script on its own, so the helpers are in both; a fix to one must reach the
    other."""
    for name in ("result", "error_message"):
        assert _lua_function(SCRIPT, name) == _lua_function(SNAPSHOT_SCRIPT, name)


def snapshot_health(obj: dict[str, Any]) -> dict[str, str]:
    lua = _runtime()
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(SNAPSHOT_SCRIPT)
    return {"status": result["status"], "message": result["message"]}


def test_snapshot_health_follows_the_states_the_core_writes():
    from sync.statesnapshot import SnapshotPoll

    from .test_statesnapshot import SAVEPOINT, STOPPED, snapshot, step
    parent = snapshot({**SAVEPOINT, "backoffLimit": 1})
    assert snapshot_health(parent) == {"status": "Progressing", "message": "Waiting for flink-sync to sync the snapshot"}
    step(parent)
    step(parent)
    assert snapshot_health(parent) == {"status": "Progressing", "message": "IN_PROGRESS"}
    step(parent, poll=SnapshotPoll("FAILED", failure="IOException: disk full"))
    got = snapshot_health(parent)
    assert got["status"] == "Progressing" and "Retrying after 1 failure(s)" in got["message"]
    assert "disk full" in got["message"]
    done = copy.deepcopy(parent)
    step(done, now=NOW_MS + 20_000)
    step(done, now=NOW_MS + 20_000)
    step(done, poll=SnapshotPoll("COMPLETED", location="file:/sp/savepoint-1"), now=NOW_MS + 21_000)
    assert snapshot_health(done) == {"status": "Healthy", "message": "COMPLETED: file:/sp/savepoint-1"}
    step(parent, now=NOW_MS + 20_000)
    step(parent, now=NOW_MS + 20_000)
    step(parent, poll=SnapshotPoll("FAILED", failure="IOException: disk full"), now=NOW_MS + 21_000)
    assert snapshot_health(parent) == {"status": "Degraded", "message": "IOException: disk full"}
    abandoned = snapshot(SAVEPOINT)
    step(abandoned, target=STOPPED)
    got = snapshot_health(abandoned)
    assert got["status"] == "Degraded" and "is not running" in got["message"]
    invalid = snapshot({"savepoint": {}})
    step(invalid)
    got = snapshot_health(invalid)
    assert got["status"] == "Degraded" and got["message"].startswith("spec.jobReference:")
    deleting = copy.deepcopy(done)
    deleting["metadata"]["deletionTimestamp"] = "2025-11-24T16:00:00Z"
    assert snapshot_health(deleting)["status"] == "Progressing"
