"""Flink's Kubernetes HA for real, on the sandbox: the JobManagers run as the `flink` ServiceAccount of
manifests/flink-rbac (its token, not admin, from the node agent: sandbox/podaccess.py), Flink's own HA services keep
their leader and checkpoint pointers in ConfigMaps of the real kube-apiserver, and the hook server and the sandbox's
controllers do the rest (docs/upgrade-modes.md, docs/lifecycle.md).

One FlinkDeployment per Flink version, the cases in order on it (cluster starts are the slow part):
* Flink 1.20 (one JobManager): the JobManager process killed, its pod deleted, a last-state upgrade, the
  JobManager Deployment deleted (recovered), the same with JM deployment recovery off (reported, not recovered; a
  spec change restores from HA), suspend and resume, delete;
* Flink 2.3 (two JobManagers, a standby): a last-state upgrade, the leader's process killed (the standby takes
  over), suspend and resume, delete.
Short leader-election leases (5 s / 5 s / 1 s, as measured in the shared notes) keep failovers short."""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flinkbed import read_counter, read_counter_past
from tests.flinkbed.dist import flink_dist
from tests.flinkbed.job import CounterSnapshot, build_counter_jar
from tests.flinkbed.rest import FlinkRest

from .conftest import Sandbox
from .manifests import counter_deployment

pytestmark = [pytest.mark.sandbox, pytest.mark.flink, pytest.mark.timeout(900)]
HA_LABELS = "type=flink-native-kubernetes"
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class HaCluster:
    sb: Sandbox
    name: str
    version: str
    jm_replicas: int
    data: Path

    @property
    def rest(self) -> FlinkRest:
        return FlinkRest(f"{self.sb.proxy}/default/{self.name}-rest")

    def status(self) -> dict[str, Any]:
        return ((self.sb.get("flinkdeployment", self.name) or {}).get("status")) or {}

    def job_id(self) -> str:
        return str(self.status()["jobStatus"]["jobId"])

    def ready(self) -> bool:
        st = self.status()
        return (st.get("lifecycleState") == "STABLE" and (st.get("jobStatus") or {}).get("state") == "RUNNING"
                and st.get("jobManagerDeploymentStatus") == "READY")

    def patch(self, spec: dict[str, Any]) -> None:
        self.sb.kubectl("patch", "flinkdeployment", self.name, "--type", "merge", "-p", json.dumps({"spec": spec}))

    def pods(self, component: str = "jobmanager") -> list[dict[str, Any]]:
        out = self.sb.kubectl("get", "pods", "-l", f"app={self.name},component={component}", "-o", "json")
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    def ha_configmaps(self) -> dict[str, dict[str, Any]]:
        out = self.sb.kubectl("get", "configmaps", "-l", f"app={self.name},{HA_LABELS}", "-o", "json")
        return {c["metadata"]["name"]: c for c in json.loads(out)["items"]}

    def counter(self, job: str, after: CounterSnapshot | None = None) -> CounterSnapshot:
        if after is not None:
            return read_counter_past(self.rest, job, after, timeout_s=90)
        return read_counter(self.rest, job, min_last_value=10, timeout_s=90)


def ha_yaml(name: str, version: str, jar: Path, data: Path, jm_replicas: int) -> str:
    return yaml.safe_dump(counter_deployment(name, jar, version=version, upgrade_mode="last-state", config={
        "high-availability.type": "kubernetes",
        "high-availability.storageDir": f"file://{data}/ha",
        "high-availability.kubernetes.leader-election.lease-duration": "5 s",
        "high-availability.kubernetes.leader-election.renew-deadline": "5 s",
        "high-availability.kubernetes.leader-election.retry-period": "1 s",
        # the key names Flink 1.20 and 2.x both read
        "execution.checkpointing.dir": f"file://{data}/checkpoints",
        "execution.checkpointing.savepoint-dir": f"file://{data}/savepoints",
        "execution.checkpointing.interval": "2 s",
    }, overrides={
        # the JobManager pods stop at once on SIGTERM; deletion waits this long before the HA ConfigMaps go
        "podTemplate": {"spec": {"terminationGracePeriodSeconds": 5}},
        "jobManager": {"replicas": jm_replicas},
    }))


def start(sb: Sandbox, data: Path, version: str, jm_replicas: int) -> HaCluster:
    name = f"ha-v{version.split('.')[0]}"
    cluster = HaCluster(sb, name, version, jm_replicas, data)
    jar = build_counter_jar(flink_dist(version))
    started = time.monotonic()
    sb.kubectl("create", "-f", "-", input=ha_yaml(name, version, jar, data, jm_replicas))
    sb.until(f"{name} STABLE and RUNNING", cluster.ready, timeout=300, interval=2)
    print(f"{name}: Ready with HA in {time.monotonic() - started:.0f}s")
    return cluster


@pytest.fixture(scope="module")
def ha_v1(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> HaCluster:
    """Flink 1.20, one JobManager."""
    return start(sandbox, tmp_path_factory.mktemp("ha-v1"), "1.20", 1)


@pytest.fixture(scope="module")
def ha_v2(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> HaCluster:
    """Flink 2.3, two JobManagers (a leader and a standby)."""
    return start(sandbox, tmp_path_factory.mktemp("ha-v2"), "2.3", 2)


def recovered(ha: HaCluster, job: str, seen: set[str]) -> Callable[[], bool]:
    """A poll for "the same job RUNNING again, started anew, and the resource STABLE" that records every lifecycle
    state, job state and JobManager status it saw on the way (so a test can assert the recovery never showed a
    failure)."""
    started_before = (ha.status().get("jobStatus") or {}).get("startTime")

    def check() -> bool:
        st = ha.status()
        seen.update({f"lifecycle:{st.get('lifecycleState')}", f"job:{(st.get('jobStatus') or {}).get('state')}",
                     f"jm:{st.get('jobManagerDeploymentStatus')}"})
        if st.get("error"):
            seen.add(f"error:{st['error']}")
        if (st.get("jobStatus") or {}).get("startTime") == started_before:
            return False  # still the job as it ran before
        return ha.ready() and ha.job_id() == job
    return check


def restored_from_ha(ha: HaCluster, job: str, before: CounterSnapshot) -> CounterSnapshot:
    """The job restored from a checkpoint of its own (the pointer in its HA ConfigMap) and its keyed state went on."""
    restored = ha.sb.until("the job restored from a checkpoint", lambda: ha.rest.restored_from(job), timeout=180)
    assert f"/checkpoints/{job}/chk-" in restored, f"restored from {restored}, not from the job's own checkpoint"
    after = ha.counter(job, before)
    assert after.restored_total > 0 and after.state_total > before.state_total, "keyed state continued"
    return after


def jvm_pid(pod: dict[str, Any]) -> int:
    cid = pod["status"]["containerStatuses"][0]["containerID"]  # local-process://<pid> (the node agent)
    return int(cid.rsplit("/", 1)[1])


def listening_pid(port: int, pids: list[int]) -> int | None:
    """Which of these processes listens on 127.0.0.1:port (its socket inode among the process's descriptors)."""
    inodes = set()
    # a JVM's socket is usually an IPv6 one (bound to ::ffff:127.0.0.1), so both tables
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # local address, state LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None


def leader_pod(ha: HaCluster) -> dict[str, Any]:
    """The JobManager pod that runs the RPC endpoint the HA ConfigMap names as the dispatcher's leader."""
    def find() -> dict[str, Any] | None:
        data = ha.ha_configmaps().get(f"{ha.name}-cluster-config-map", {}).get("data") or {}
        address = str(data.get("org.apache.flink.k8s.leader.dispatcher", ""))
        if "127.0.0.1:" not in address:
            return None
        port = int(address.split("127.0.0.1:", 1)[1].split("/", 1)[0])
        pods = {jvm_pid(p): p for p in ha.pods() if (p.get("status") or {}).get("containerStatuses")
                and "containerID" in p["status"]["containerStatuses"][0]}
        pid = listening_pid(port, list(pods))
        return pods.get(pid) if pid else None
    return ha.sb.until("the leading JobManager pod", find, timeout=90)


# ------------------------------------------------------------------------------------------------ both versions


def check_jobmanager_runs_as_the_flink_service_account(ha: HaCluster) -> None:
    """The JobManager reaches the API server with the `flink` ServiceAccount's token (no admin credentials, no
    kubeconfig), and Flink's HA ConfigMaps exist, made under manifests/flink-rbac's Role."""
    pods = ha.pods()
    assert len(pods) == ha.jm_replicas and all(p["spec"]["serviceAccountName"] == "flink" for p in pods)
    sa = ha.sb.get("serviceaccount", "flink")
    secret = ha.sb.get("secret", sa["secrets"][0]["name"])
    import base64
    flink_token = base64.b64decode(secret["data"]["token"]).decode()
    for pod in pods:
        mounts = pod["spec"]["containers"][0]["volumeMounts"]
        assert any(m["mountPath"] == SERVICE_ACCOUNT_MOUNT for m in mounts), "the ServiceAccount volume is mounted"
        environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{jvm_pid(pod)}/environ").read_bytes().decode()
                       .split("\0") if "=" in kv)
        assert "KUBECONFIG" not in environ and environ["KUBERNETES_AUTH_TRYKUBECONFIG"] == "false"
        assert environ["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
        assert Path(environ["KUBERNETES_AUTH_SERVICEACCOUNT_TOKEN"]).read_text() == flink_token
    maps = ha.sb.until("HA ConfigMaps", lambda: len(ha.ha_configmaps()) >= 2 and ha.ha_configmaps(), timeout=60)
    assert f"{ha.name}-cluster-config-map" in maps and f"{ha.name}-{ha.job_id()}-config-map" in maps
    # what the JobManager may do as `flink`: ConfigMaps in its namespace, nothing else
    as_flink = ["--as", "system:serviceaccount:default:flink", "-n", "default"]
    assert ha.sb.kubectl("auth", "can-i", "update", "configmaps", *as_flink).strip() == "yes"
    assert ha.sb.kubectl("auth", "can-i", "create", "pods", *as_flink, check=False).strip() == "no"


def check_last_state_upgrade_keeps_the_job_id_and_restores_from_ha(ha: HaCluster) -> None:
    """A spec change in last-state mode: the same job id, the checkpoint the HA ConfigMap points to, the keyed
    state continuing, and the new spec in effect (the stored job graph was removed before the new cluster)."""
    job = ha.job_id()
    before = ha.counter(job)
    seen: set[str] = set()
    done = recovered(ha, job, seen)
    ha.patch({"job": {"parallelism": 2}})
    started = time.monotonic()
    ha.sb.until("upgraded", lambda: done() and ha.status().get("observedGeneration") ==
                ha.sb.get("flinkdeployment", ha.name)["metadata"]["generation"], timeout=300, interval=1)
    print(f"{ha.name}: last-state upgrade done in {time.monotonic() - started:.0f}s, seen {sorted(seen)}")
    assert "lifecycle:FAILED" not in seen and not [s for s in seen if s.startswith("error:")], seen
    after = restored_from_ha(ha, job, before)
    assert after.subtasks == 2, "the new parallelism took effect"


def check_jobmanager_process_killed_recovers_from_ha(ha: HaCluster) -> None:
    """SIGKILL the (leading) JobManager JVM: the node agent restarts the container (or, with a standby, the standby
    takes over); the same job id comes back from the latest checkpoint and the status shows a recovery, no
    failure."""
    job = ha.job_id()
    before = ha.counter(job)
    victim = leader_pod(ha) if ha.jm_replicas > 1 else ha.pods()[0]
    seen: set[str] = set()
    done = recovered(ha, job, seen)
    started = time.monotonic()
    os.kill(jvm_pid(victim), signal.SIGKILL)  # a JVM of the sandbox this test session started
    ha.sb.until("recovered", lambda: done() and ha.rest.restored_from(job) and
                ha.counter(job, before), timeout=240, interval=1)
    print(f"{ha.name}: job RUNNING again {time.monotonic() - started:.0f}s after the JobManager was killed")
    assert "lifecycle:FAILED" not in seen and "job:FAILED" not in seen, seen
    restored_from_ha(ha, job, before)
    if ha.jm_replicas > 1:
        assert leader_pod(ha)["metadata"]["name"] != victim["metadata"]["name"], "the standby took over"
    else:
        pod = ha.sb.get("pod", victim["metadata"]["name"])
        assert pod["status"]["containerStatuses"][0]["restartCount"] >= 1, "the container was restarted"


def check_suspend_keeps_ha_configmaps_and_resume_recovers_from_them(ha: HaCluster) -> None:
    job = ha.job_id()
    before = ha.counter(job)
    ha.patch({"job": {"state": "suspended"}})
    ha.sb.until("SUSPENDED, pods gone", lambda: ha.status().get("lifecycleState") == "SUSPENDED" and not ha.pods()
                and not ha.pods("taskmanager"), timeout=180, interval=1)
    assert ha.status()["jobStatus"]["state"] == "FINISHED"
    maps = ha.ha_configmaps()
    pointers = (maps.get(f"{ha.name}-{job}-config-map") or {}).get("data") or {}
    assert any(k.startswith("checkpointID-") for k in pointers), f"the job's checkpoint pointers stay: {maps.keys()}"
    done = recovered(ha, job, set())
    ha.patch({"job": {"state": "running"}})
    ha.sb.until("resumed", done, timeout=300, interval=1)
    restored_from_ha(ha, job, before)


def check_delete_removes_the_ha_configmaps(ha: HaCluster) -> None:
    """`kubectl delete`: the hooks delete the HA ConfigMaps with their own ServiceAccount (manifests/ RBAC) once the
    JobManagers are gone, so that no running JobManager re-creates its leader ConfigMap: none is left behind."""
    assert ha.ha_configmaps()
    ha.sb.kubectl("delete", "flinkdeployment", ha.name, "--wait=false")
    ha.sb.until("deleted", lambda: ha.sb.get("flinkdeployment", ha.name) is None, timeout=180, interval=1)
    ha.sb.until("no HA ConfigMap", lambda: not ha.ha_configmaps(), timeout=60, interval=1)
    time.sleep(8)  # longer than a lease renewal: nothing re-creates them
    assert not ha.ha_configmaps() and not ha.pods()
    assert "Forbidden" not in (ha.sb.state / "logs" / "hooks.log").read_text(errors="replace"), "an RBAC gap"


# ------------------------------------------------------------------------------------------------ single JobManager


def check_jobmanager_pod_deleted_recovers_from_ha(ha: HaCluster) -> None:
    job = ha.job_id()
    before = ha.counter(job)
    old = ha.pods()[0]["metadata"]["name"]
    seen: set[str] = set()
    done = recovered(ha, job, seen)
    started = time.monotonic()
    ha.sb.kubectl("delete", "pod", old, "--wait=false")
    ha.sb.until("recovered on a new pod", lambda: ha.pods() and ha.pods()[0]["metadata"]["name"] != old and
                done() and ha.counter(job, before), timeout=240, interval=1)
    print(f"{ha.name}: job RUNNING again {time.monotonic() - started:.0f}s after the JobManager pod was deleted")
    assert "lifecycle:FAILED" not in seen and "job:FAILED" not in seen and "jm:MISSING" not in seen, seen
    restored_from_ha(ha, job, before)


def check_jobmanager_deployment_deleted_is_recovered(ha: HaCluster) -> None:
    """Apache's JM deployment recovery: the JobManager Deployment deleted, flink-sync redeploys it with the same job
    id and the job resumes from HA."""
    job = ha.job_id()
    before = ha.counter(job)
    seen: set[str] = set()
    done = recovered(ha, job, seen)
    ha.sb.kubectl("delete", "deployment", ha.name, "--wait=false")
    ha.sb.until("recovered", lambda: done() and ha.counter(job, before), timeout=300, interval=1)
    assert "lifecycle:FAILED" not in seen, seen  # MISSING lasts one sync: the events below show it
    restored_from_ha(ha, job, before)
    reasons = ha.sb.kubectl("get", "events", "--field-selector", f"involvedObject.name={ha.name}", "-o",
                            "jsonpath={.items[*].reason}").split()
    assert "Missing" in reasons and "RecoverDeployment" in reasons


def check_jobmanager_deployment_deleted_with_recovery_off(ha: HaCluster) -> None:
    """`kubernetes.operator.jm-deployment-recovery.enabled: false`: as Apache, the loss is reported (MISSING,
    "Missing JobManager deployment", not FAILED) and nothing is redeployed; the next spec change restores the job
    from HA with the same job id."""
    job = ha.job_id()
    before = ha.counter(job)
    ha.patch({"flinkConfiguration": {"kubernetes.operator.jm-deployment-recovery.enabled": "false"}})
    ha.sb.until("the change seen", lambda: ha.status().get("observedGeneration") ==
                ha.sb.get("flinkdeployment", ha.name)["metadata"]["generation"], timeout=60)
    ha.sb.kubectl("delete", "deployment", ha.name, "--wait=false")
    ha.sb.until("reported missing", lambda: ha.status().get("jobManagerDeploymentStatus") == "MISSING",
                timeout=60, interval=1)
    time.sleep(10)  # several syncs: nothing comes back
    st = ha.status()
    assert st["jobManagerDeploymentStatus"] == "MISSING" and st["lifecycleState"] == "STABLE", st
    assert "Missing JobManager deployment" in st["error"] and st["jobStatus"]["state"] == "RECONCILING"
    assert ha.sb.get("deployment", ha.name) is None, "not redeployed"
    done = recovered(ha, job, set())
    ha.patch({"restartNonce": 1})
    ha.sb.until("restored", done, timeout=300, interval=1)
    restored_from_ha(ha, job, before)


# ------------------------------------------------------------------------------------------------ the tests, in order


class TestFlink120:
    """Flink 1.20, one JobManager: every case."""

    def test_runs_as_the_flink_service_account(self, ha_v1: HaCluster) -> None:
        check_jobmanager_runs_as_the_flink_service_account(ha_v1)

    def test_last_state_upgrade(self, ha_v1: HaCluster) -> None:
        check_last_state_upgrade_keeps_the_job_id_and_restores_from_ha(ha_v1)

    def test_jobmanager_process_killed(self, ha_v1: HaCluster) -> None:
        check_jobmanager_process_killed_recovers_from_ha(ha_v1)

    def test_jobmanager_pod_deleted(self, ha_v1: HaCluster) -> None:
        check_jobmanager_pod_deleted_recovers_from_ha(ha_v1)

    def test_jobmanager_deployment_deleted(self, ha_v1: HaCluster) -> None:
        check_jobmanager_deployment_deleted_is_recovered(ha_v1)

    def test_jobmanager_deployment_deleted_with_recovery_off(self, ha_v1: HaCluster) -> None:
        check_jobmanager_deployment_deleted_with_recovery_off(ha_v1)

    def test_suspend_and_resume(self, ha_v1: HaCluster) -> None:
        check_suspend_keeps_ha_configmaps_and_resume_recovers_from_them(ha_v1)

    def test_delete(self, ha_v1: HaCluster) -> None:
        check_delete_removes_the_ha_configmaps(ha_v1)


class TestFlink23Standby:
    """Flink 2.3 with a standby JobManager: the main cases, and the leader handing over."""

    def test_runs_as_the_flink_service_account(self, ha_v2: HaCluster) -> None:
        check_jobmanager_runs_as_the_flink_service_account(ha_v2)

    def test_last_state_upgrade(self, ha_v2: HaCluster) -> None:
        check_last_state_upgrade_keeps_the_job_id_and_restores_from_ha(ha_v2)

    def test_leader_killed_standby_takes_over(self, ha_v2: HaCluster) -> None:
        check_jobmanager_process_killed_recovers_from_ha(ha_v2)

    def test_suspend_and_resume(self, ha_v2: HaCluster) -> None:
        check_suspend_keeps_ha_configmaps_and_resume_recovers_from_them(ha_v2)

    def test_delete(self, ha_v2: HaCluster) -> None:
        check_delete_removes_the_ha_configmaps(ha_v2)
