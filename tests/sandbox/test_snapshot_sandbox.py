"""FlinkStateSnapshot end to end on the sandbox: the real API server (the CRD, server-side apply, finalizers), the
real hook server, real Flink 1.20 and 2.3 JVMs; the Metacontroller stand-in runs the third CompositeController
(metacontroller/flinkstatesnapshot-controller.yaml).

One running FlinkDeployment per Flink version carries every case of that version (cluster starts are the slow part):
the snapshots are created together and Flink takes them one after another."""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args
from tests.flinkbed.dist import flink_dist
from tests.flinkbed.job import build_counter_jar

from .conftest import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.flink, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "data" / "apache-examples" / "snapshot"
FINALIZER = "metacontroller.io/compositecontroller-flink-sync-flinkstatesnapshot"


def local_path(location: str) -> Path:
    """`file:/x/y` or `file:///x/y` (or a plain path) as a local path."""
    return Path("/" + location.split(":", 1)[1].lstrip("/")) if location.startswith("file:") else Path(location)


def deployment(name: str, version: str, jar: Path, state_dir: Path, job_state: str = "running") -> dict[str, Any]:
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment", "metadata": {"name": name},
            "spec": {"image": f"flink:{version}", "flinkVersion": "v" + version.replace(".", "_"),
                     "serviceAccount": "flink",
                     "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "1",
                                            "state.savepoints.dir": f"file://{state_dir}/savepoints",
                                            "state.checkpoints.dir": f"file://{state_dir}/checkpoints",
                                            "execution.checkpointing.interval": "10 s"},
                     "jobManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
                     "taskManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
                     "job": {"jarURI": f"local://{jar}", "entryClass": COUNTER_JOB_CLASS, "parallelism": 1,
                             "args": counter_args(rate=20, keys=4), "upgradeMode": "stateless",
                             "state": job_state}}}


def all_tasks_running(sb: Sandbox, name: str) -> bool:
    jobs = requests.get(f"{sb.proxy}/default/{name}-rest/jobs/overview", timeout=10).json()["jobs"]
    return bool(jobs) and all(j["state"] == "RUNNING" and j["tasks"]["running"] == j["tasks"]["total"] for j in jobs)


def snapshot(name: str, target: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot", "metadata": {"name": name},
            "spec": {"jobReference": {"kind": "FlinkDeployment", "name": target}, **spec}}


def snap_status(sb: Sandbox, name: str) -> dict[str, Any]:
    return ((sb.get("flinkstatesnapshot", name) or {}).get("status")) or {}


def events(sb: Sandbox, name: str) -> list[str]:
    items = json.loads(sb.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"))
    return [f"{e['reason']}: {e['message']}" for e in items["items"]]


def state_of(sb: Sandbox, name: str, *states: str) -> dict[str, Any] | None:
    st = snap_status(sb, name)
    return st if st.get("state") in states else None


@pytest.fixture(scope="module", params=["1.20", "2.3"])
def running_job(request: pytest.FixtureRequest, sandbox: Sandbox,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    version = request.param
    name = "snap-v" + version.replace(".", "-")
    state_dir = tmp_path_factory.mktemp(f"snapshot-state-{version}")
    jar = build_counter_jar(flink_dist(version))
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump(deployment(name, version, jar, state_dir)))
    out = sandbox.kubectl("wait", "--for=condition=Ready", f"flinkdeployment/{name}", "--timeout=300s", timeout=330,
                          check=False)
    assert "condition met" in out, f"{out}\n{sandbox.get('flinkdeployment', name)}\n{sandbox.logs()}"
    # A job is RUNNING before its tasks are; until they are, Flink refuses snapshots ("Not all required tasks are
    # currently running"), which the snapshot would count as a failure and retry.
    sandbox.until("all tasks running", lambda: all_tasks_running(sandbox, name), timeout=120)
    yield version, name, state_dir
    sandbox.kubectl("delete", "flinkstatesnapshot", "--all", "--wait=false")
    sandbox.kubectl("delete", "flinkdeployment", name, "--wait=false")
    sandbox.until("deployment deleted", lambda: sandbox.get("flinkdeployment", name) is None, timeout=180, interval=2)


def test_snapshots_of_a_running_job(sandbox: Sandbox, running_job: tuple[str, str, Path]) -> None:
    """A savepoint (path from the job's config) and a checkpoint complete; a savepoint into a directory Flink cannot
    create is retried once after the 10 s backoff, then FAILED with Flink's error; deleting the completed savepoint
    disposes of it through Flink (its directory goes) before the finalizer is released."""
    version, name, state_dir = running_job
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump_all([
        snapshot(f"{name}-sp", name, savepoint={}),
        snapshot(f"{name}-cp", name, checkpoint={}),
        snapshot(f"{name}-bad", name, savepoint={"path": "file:///proc/flink-sync-cannot-write-here"},
                 backoffLimit=1),
    ]))
    sp = sandbox.until("savepoint COMPLETED", lambda: state_of(sandbox, f"{name}-sp", "COMPLETED", "FAILED"),
                       timeout=180, interval=1)
    assert sp["state"] == "COMPLETED", sp
    assert local_path(sp["path"]).is_dir() and str(local_path(sp["path"])).startswith(str(state_dir / "savepoints"))
    assert sp["triggerId"] and sp["triggerTimestamp"] and sp["resultTimestamp"], sp
    assert sp["failures"] == 0, (sp, events(sandbox, f"{name}-sp"))
    assert FINALIZER in sandbox.get("flinkstatesnapshot", f"{name}-sp")["metadata"]["finalizers"]
    table = sandbox.kubectl("get", "flinksnp", f"{name}-sp")
    assert table.splitlines()[0].split()[:6] == ["NAME", "PATH", "RESULT", "TIMESTAMP", "SNAPSHOT", "STATE"], table
    assert "COMPLETED" in table, table

    cp = sandbox.until("checkpoint COMPLETED", lambda: state_of(sandbox, f"{name}-cp", "COMPLETED", "FAILED"),
                       timeout=180, interval=1)
    assert cp["state"] == "COMPLETED" and cp["path"] and "chk-" in cp["path"], cp

    bad = sandbox.until("failing savepoint FAILED", lambda: state_of(sandbox, f"{name}-bad", "FAILED", "COMPLETED"),
                        timeout=240, interval=1)
    assert bad["state"] == "FAILED" and bad["failures"] == 2, bad
    message = json.loads(bad["error"])["message"]
    assert "flink-sync-cannot-write-here" in message or "savepoint" in message.lower(), message

    savepoint_dir = local_path(sp["path"])
    sandbox.kubectl("delete", "flinkstatesnapshot", f"{name}-sp", "--wait=false")
    sandbox.until("snapshot deleted", lambda: sandbox.get("flinkstatesnapshot", f"{name}-sp") is None, timeout=120)
    sandbox.until("savepoint directory disposed of", lambda: not savepoint_dir.exists(), timeout=60)
    sandbox.kubectl("delete", "flinkstatesnapshot", f"{name}-cp", f"{name}-bad")

    if version == "1.20":
        apache_examples_complete(sandbox, name, state_dir)


def own_snapshots(sb: Sandbox, job: str, trigger_type: str, kind: str = "SAVEPOINT") -> dict[str, dict[str, Any]]:
    """flink-sync's own snapshots of `job`, found the way a user finds Apache's: by their labels."""
    out = sb.kubectl("get", "flinksnp", "-l", f"snapshot.trigger-type={trigger_type},job-reference.name={job},"
                     f"job-reference.kind=FlinkDeployment,snapshot.type={kind}", "-o", "json")
    return {item["metadata"]["name"]: item for item in json.loads(out)["items"]}


def completed(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: obj for name, obj in items.items() if (obj.get("status") or {}).get("state") == "COMPLETED"}


def patch_job(sb: Sandbox, name: str, patch: dict[str, Any]) -> None:
    sb.kubectl("patch", "flinkdeployment", name, "--type=merge", "-p", json.dumps({"spec": patch}))


def test_the_jobs_own_savepoints_are_snapshot_resources(sandbox: Sandbox, running_job: tuple[str, str, Path]) -> None:
    """kubernetes.operator.snapshot.resource.enabled (default true): a savepointTriggerNonce savepoint, periodic
    savepoints and an upgrade savepoint appear as COMPLETED FlinkStateSnapshots with Apache's labels; a
    checkpointTriggerNonce becomes a checkpoint snapshot the snapshot controller takes; with history
    max.count 2 the old periodic ones are deleted and disposed of (their directories go), the newest kept and the
    manual one never deleted; the upgrade restores from the upgrade snapshot's savepoint."""
    version, name, state_dir = running_job
    patch_job(sandbox, name, {"job": {"savepointTriggerNonce": 1}, "flinkConfiguration": {
        "kubernetes.operator.savepoint.history.max.count": "2",
        "kubernetes.operator.savepoint.dispose-on-delete": "true"}})
    manual = sandbox.until("manual snapshot COMPLETED", lambda: completed(own_snapshots(sandbox, name, "MANUAL")),
                           timeout=180, interval=1)
    [(manual_name, manual_obj)] = manual.items()
    assert manual_name.startswith(f"{name}-savepoint-manual-"), manual_name
    assert manual_obj["spec"]["savepoint"]["alreadyExists"] is True
    assert manual_obj["metadata"]["labels"]["snapshot.state"] == "COMPLETED"
    assert local_path(manual_obj["status"]["path"]).is_dir()
    assert manual_obj["metadata"]["ownerReferences"][0]["name"] == name

    patch_job(sandbox, name, {"job": {"checkpointTriggerNonce": 1}})
    checkpoint = sandbox.until("manual checkpoint snapshot COMPLETED", lambda: completed(
        own_snapshots(sandbox, name, "MANUAL", "CHECKPOINT")), timeout=180, interval=1)
    [(checkpoint_name, checkpoint_obj)] = checkpoint.items()
    assert checkpoint_name.startswith(f"{name}-checkpoint-manual-") and "chk-" in checkpoint_obj["status"]["path"]

    patch_job(sandbox, name, {"flinkConfiguration": {"kubernetes.operator.periodic.savepoint.interval": "4 s"}})
    seen: dict[str, str] = {}

    def an_old_one_disposed_of() -> bool:
        now = own_snapshots(sandbox, name, "PERIODIC")
        seen.update({n: obj["spec"]["savepoint"]["path"] for n, obj in now.items()})
        gone = [n for n in seen if n not in now]
        return len(seen) >= 3 and len(now) <= 2 and any(not local_path(seen[n]).exists() for n in gone)
    sandbox.until("old periodic snapshots deleted and disposed of", an_old_one_disposed_of, timeout=240, interval=1)
    patch_job(sandbox, name, {"flinkConfiguration": {"kubernetes.operator.periodic.savepoint.interval": None}})

    def settled_history() -> dict[str, dict[str, Any]] | None:
        now = completed(own_snapshots(sandbox, name, "PERIODIC"))
        history = (sandbox.get("flinkdeployment", name) or {}).get("status", {}).get("jobStatus", {}) \
            .get("savepointInfo", {}).get("savepointHistory") or []
        periodic = {f"{name}-savepoint-periodic-{e['timeStamp']}" for e in history if e["triggerType"] == "PERIODIC"}
        return now if len(now) == 2 and set(now) == periodic else None
    kept = sandbox.until("two periodic snapshots, as the history", settled_history, timeout=120, interval=1)
    newest = max(seen, key=lambda n: int(n.rsplit("-", 1)[1]))
    assert newest in kept, (newest, sorted(kept))
    assert all(local_path(obj["status"]["path"]).is_dir() for obj in kept.values())
    assert manual_name in own_snapshots(sandbox, name, "MANUAL"), "a manual snapshot is never deleted by the limits"

    old_job = sandbox.get("flinkdeployment", name)["status"]["jobStatus"]["jobId"]
    patch_job(sandbox, name, {"restartNonce": 1, "job": {"upgradeMode": "savepoint"}})
    upgrade = sandbox.until("upgrade snapshot COMPLETED", lambda: completed(own_snapshots(sandbox, name, "UPGRADE")),
                            timeout=300, interval=1)
    [(upgrade_name, upgrade_obj)] = upgrade.items()
    path = upgrade_obj["status"]["path"]
    assert upgrade_name.startswith(f"{name}-savepoint-upgrade-") and local_path(path).is_dir(), upgrade_obj

    def restored_job() -> str | None:
        status = (sandbox.get("flinkdeployment", name) or {}).get("status") or {}
        job = status.get("jobStatus") or {}
        return job["jobId"] if job.get("state") == "RUNNING" and job.get("jobId") != old_job else None
    new_job = sandbox.until("job running again after the upgrade", restored_job, timeout=300, interval=2)
    status = sandbox.get("flinkdeployment", name)["status"]
    assert status["jobStatus"]["upgradeSavepointPath"] == path
    assert status["flinkSync"]["cluster"]["restorePath"] == path
    restored = sandbox.until("Flink reports the restore", lambda: (requests.get(
        f"{sandbox.proxy}/default/{name}-rest/jobs/{new_job}/checkpoints", timeout=10).json().get("latest") or {})
        .get("restored"), timeout=60, interval=2)
    assert local_path(restored["external_path"]) == local_path(path), (restored, path)


def apache_examples_complete(sandbox: Sandbox, target: str, state_dir: Path) -> None:
    """The five Apache examples apply server-side as they are; pointed at the running job (its name, and a
    savepoint directory that exists here), each snapshot completes."""
    docs: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        sandbox.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(path))
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc["kind"] == "FlinkStateSnapshot":
                doc = copy.deepcopy(doc)
                doc["metadata"]["name"] = "apache-" + path.stem
                if "jobReference" in doc["spec"]:
                    doc["spec"]["jobReference"]["name"] = target
                savepoint = doc["spec"].get("savepoint") or {}
                if savepoint.get("path") and not savepoint.get("alreadyExists"):
                    savepoint["path"] = f"file://{state_dir}/savepoints-custom"
                docs.append(doc)
    assert len(docs) == 5
    sandbox.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs))
    for doc in docs:
        st = sandbox.until(f"{doc['metadata']['name']} COMPLETED",
                           lambda d=doc: state_of(sandbox, d["metadata"]["name"], "COMPLETED", "FAILED", "ABANDONED"),
                           timeout=180, interval=1)
        assert st["state"] == "COMPLETED", (doc["metadata"]["name"], st)
    custom = snap_status(sandbox, "apache-savepoint-job-full-spec")["path"]
    assert str(local_path(custom)).startswith(str(state_dir / "savepoints-custom")) and local_path(custom).is_dir()
    sandbox.kubectl("delete", "flinkstatesnapshot", *[d["metadata"]["name"] for d in docs])


def test_a_snapshot_of_a_job_that_is_not_running_is_abandoned(sandbox: Sandbox, tmp_path: Path) -> None:
    """A FlinkDeployment created suspended runs no job (and no JVM): its snapshot is ABANDONED."""
    jar = build_counter_jar(flink_dist("1.20"))
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump(deployment("parked", "1.20", jar, tmp_path,
                                                                           job_state="suspended")))
    sandbox.until("parked deployment synced", lambda: ((sandbox.get("flinkdeployment", "parked") or {})
                                                       .get("status") or {}).get("lifecycleState"), timeout=60)
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump(snapshot("parked-sp", "parked", savepoint={})))
    st = sandbox.until("ABANDONED", lambda: state_of(sandbox, "parked-sp", "ABANDONED", "COMPLETED", "FAILED"),
                       timeout=60)
    assert st["state"] == "ABANDONED" and "not running" in st["error"] and st.get("path") is None
    sandbox.kubectl("delete", "flinkstatesnapshot", "parked-sp")
    sandbox.kubectl("delete", "flinkdeployment", "parked")
