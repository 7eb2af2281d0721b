"""End to end against a real Flink: the real hook server (gunicorn) decides, the Metacontroller emulator applies
its responses, and the pod runner runs the rendered Deployments as real Flink JVMs from the PyPI jars. Runs on
Flink 1.20 and 2.3.

One lifecycle per Flink version (cluster starts are the slow part): deploy → RUNNING/STABLE; manual savepoint;
savepoint upgrade (parallelism) with state continuing; last-state upgrade (no HA: cancel + latest checkpoint)
with state continuing; stateless upgrade via restartNonce (fresh state); suspend → resume from the savepoint;
a failing upgrade rolled back to the last stable spec; delete with a savepoint.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args, read_counter, read_counter_past
from tests.flinkbed.fixtures import JM_PROCESS_MEMORY, TM_PROCESS_MEMORY
from tests.flinkbed.rest import same_path

from .metacontroller import Cluster, controllers, create, delete, update_spec
from .server import hook_server

pytestmark = [pytest.mark.flink, pytest.mark.timeout(600)]
NAME = "counter"


def counter_deployment(version: str, jar: Path, state_dir: Path, mode: str = "savepoint") -> dict[str, Any]:
    flink_version = "v1_20" if version.startswith("1.20") else "v2_3"
    return {
        "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "image": f"flink:{version}", "flinkVersion": flink_version, "serviceAccount": "flink",
            "flinkConfiguration": {
                "taskmanager.numberOfTaskSlots": "2",
                "state.savepoints.dir": f"file://{state_dir}/savepoints",
                "state.checkpoints.dir": f"file://{state_dir}/checkpoints",
                "execution.checkpointing.interval": "1 s",
                "kubernetes.operator.job.savepoint-on-deletion": "true",
            },
            "jobManager": {"resource": {"memory": JM_PROCESS_MEMORY, "cpu": 0.5}},
            "taskManager": {"resource": {"memory": TM_PROCESS_MEMORY, "cpu": 0.5}},
            "job": {"jarURI": f"local://{jar}", "entryClass": COUNTER_JOB_CLASS, "parallelism": 1,
                    "args": counter_args(rate=20, keys=4), "upgradeMode": mode},
        },
    }


def local_path(location: str) -> Path:
    """`file:/x/y` or `file:///x/y` as a local path."""
    return Path("/" + location.split(":", 1)[1].lstrip("/"))


class Bed:
    """The hook server + emulator + pod runner, driven sync by sync."""

    def __init__(self, url: str, runner: Any):
        self.cluster = Cluster()
        self.runner = runner
        self.fd, _ = controllers(url, self.cluster, kubelet=lambda d: runner.deployment_status(d["metadata"]["name"]))

    @property
    def parent(self) -> dict[str, Any] | None:
        return self.cluster.get("FlinkDeployment", "default", NAME)

    @property
    def status(self) -> dict[str, Any]:
        return (self.parent or {}).get("status") or {}

    def sync(self) -> dict[str, Any]:
        response = self.fd.sync(NAME)
        self.runner.apply([c for c in self.cluster.objects.values() if c["kind"] in ("Deployment", "ConfigMap", "Service")])
        return response

    def until(self, what: str, predicate: Callable[[Bed], bool], timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.parent is None:
                if predicate(self):
                    return
            else:
                self.sync()
                if predicate(self):
                    return
            time.sleep(0.4)
        raise AssertionError(f"{what}: not reached in {timeout}s; status={ {k: v for k, v in self.status.items() if k != 'conditions'} }\n"
                             f"{self.runner.logs(NAME) if NAME in self.runner.deployments() else ''}")

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        update_spec(self.cluster, "FlinkDeployment", NAME, change)

    def job_id(self) -> str:
        return self.status["jobStatus"]["jobId"]

    def running_stable(self) -> bool:
        return self.status.get("lifecycleState") == "STABLE" and self.status.get("jobStatus", {}).get("state") == "RUNNING"


@pytest.fixture
def bed(pod_runner, free_port):
    rest_port = pod_runner._first_rest_port
    with hook_server({"FLINK_SYNC_REST_URL_TEMPLATE": f"http://127.0.0.1:{rest_port}",
                      "FLINK_SYNC_REST_READ_TIMEOUT": "5"}) as url:
        yield Bed(url, pod_runner)


def test_application_lifecycle_on_real_flink(bed, flink_version, counter_jar, tmp_path):
    create(bed.cluster, counter_deployment(flink_version, counter_jar, tmp_path / "state"))

    # Deploy: RUNNING and STABLE, the job id we recorded is the one Flink runs.
    bed.until("deployed", Bed.running_stable)
    rest = bed.runner.rest(NAME)
    first_job = bed.job_id()
    assert rest.job_state(first_job) == "RUNNING"
    assert bed.status["clusterInfo"]["flink-version"].startswith(flink_version)
    before = read_counter(rest, first_job, min_last_value=20)

    # Manual savepoint by nonce: a real savepoint path in status.
    bed.edit(lambda s: s["job"].update(savepointTriggerNonce=1))
    bed.until("manual savepoint", lambda b: (b.status["jobStatus"].get("savepointInfo") or {})
              .get("lastSavepoint", {}).get("triggerNonce") == 1)
    manual = bed.status["jobStatus"]["savepointInfo"]["lastSavepoint"]["location"]
    assert local_path(manual).is_dir(), f"savepoint {manual} exists on disk"
    assert bed.job_id() == first_job, "a savepoint nonce does not restart the job"

    # Savepoint upgrade (parallelism 1 -> 2): stop with savepoint, restore, state continues.
    bed.edit(lambda s: s["job"].update(parallelism=2))
    bed.until("savepoint upgrade", lambda b: b.running_stable() and b.job_id() != first_job)
    second_job = bed.job_id()
    path = bed.status["jobStatus"]["upgradeSavepointPath"]
    assert same_path(rest.restored_from(second_job), path)
    after = read_counter_past(bed.runner.rest(NAME), second_job, before)
    assert after.restored_total > 0 and after.state_total > before.state_total, "keyed state continued"

    # last-state upgrade without HA: cancel, restore from the latest checkpoint, state continues. (Until the job
    # completes a checkpoint of its own, the newest snapshot is the savepoint it started from: wait for one.)
    bed.runner.rest(NAME).wait_completed_checkpoint(second_job)
    bed.edit(lambda s: (s["job"].update(upgradeMode="last-state"), s.update(restartNonce=1)))
    bed.until("last-state upgrade", lambda b: b.running_stable() and b.job_id() not in (first_job, second_job))
    third_job = bed.job_id()
    restored = bed.runner.rest(NAME).restored_from(third_job)
    assert restored and "chk-" in restored, f"restored from a checkpoint, got {restored}"
    assert read_counter(bed.runner.rest(NAME), third_job, min_last_value=after.last_value).restored_total > 0

    # Stateless upgrade: fresh state.
    bed.edit(lambda s: (s["job"].update(upgradeMode="stateless"), s.update(restartNonce=2)))
    bed.until("stateless upgrade", lambda b: b.running_stable() and b.job_id() not in (first_job, second_job, third_job))
    fourth_job = bed.job_id()
    assert bed.runner.rest(NAME).restored_from(fourth_job) is None
    assert read_counter(bed.runner.rest(NAME), fourth_job).restored_total == 0

    # Suspend with a savepoint, then resume from it.
    bed.edit(lambda s: s["job"].update(upgradeMode="savepoint"))
    bed.edit(lambda s: s["job"].update(state="suspended"))
    bed.until("suspended", lambda b: b.status.get("lifecycleState") == "SUSPENDED" and not b.runner.pids())
    suspend_path = bed.status["jobStatus"]["upgradeSavepointPath"]
    bed.edit(lambda s: s["job"].update(state="running"))
    bed.until("resumed", lambda b: b.running_stable() and b.job_id() != fourth_job)
    assert same_path(bed.runner.rest(NAME).restored_from(bed.job_id()), suspend_path)
    stable_job = bed.job_id()

    # A failing upgrade (the new job always fails) is rolled back to the last stable spec. (Rollback is enabled
    # here, in a savepoint-mode job: without HA it restores the upgrade savepoint. kubernetes.operator.* keys are
    # not spec changes.)
    bed.edit(lambda s: s["flinkConfiguration"].update({"kubernetes.operator.deployment.rollback.enabled": "true",
                                                       "kubernetes.operator.deployment.readiness.timeout": "25 s"}))
    bed.until("rollback enabled", lambda b: b.running_stable())
    bed.edit(lambda s: s["job"].update(args=counter_args(rate=20, keys=4, fail_always=True)))
    bed.until("rolled back", lambda b: b.status.get("lifecycleState") == "ROLLED_BACK"
              and b.status["jobStatus"].get("state") == "RUNNING", timeout=240)
    rolled = bed.job_id()
    assert rolled != stable_job
    jm = bed.cluster.get("Deployment", "default", NAME)
    assert "--fail-always" not in jm["spec"]["template"]["spec"]["containers"][0]["args"]

    # Delete with a savepoint: the path is recorded, then the cluster goes and the finalizer is released.
    history_before = len(bed.status["jobStatus"]["savepointInfo"]["savepointHistory"])
    delete(bed.cluster, "FlinkDeployment", NAME)
    last_status: dict[str, Any] = {}
    deadline = time.monotonic() + 90
    while bed.parent is not None and time.monotonic() < deadline:
        last_status = copy.deepcopy(bed.status)
        bed.sync()
        time.sleep(0.4)
    assert bed.parent is None, "finalized"
    assert len(last_status["jobStatus"]["savepointInfo"]["savepointHistory"]) > history_before
    bed.until("cluster gone", lambda b: not b.runner.pids(), timeout=60)
