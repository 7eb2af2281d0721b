"""FlinkSessionJob end to end on a real Flink session cluster: the real hook server, the Metacontroller emulator
(with the customize hook relating the session FlinkDeployment), the pod runner running the session cluster, and
the counter jar served over HTTP from 127.0.0.1 (named in the jar allowlist).

Submit → RUNNING; savepoint by nonce; savepoint upgrade with state continuing; suspend/resume; delete. Bad jar URIs
(refused scheme, private address, too large, 404) give a clear error in status and change nothing on the cluster.
"""
from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args, read_counter, read_counter_past
from tests.flinkbed.fixtures import JM_PROCESS_MEMORY, TM_PROCESS_MEMORY
from tests.flinkbed.rest import same_path

from .metacontroller import Cluster, controllers, create, delete, update_spec
from .server import free_port, hook_server

pytestmark = [pytest.mark.flink, pytest.mark.timeout(600)]
SESSION = "session"


@pytest.fixture
def jar_server(counter_jar, tmp_path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "counter.jar").write_bytes(counter_jar.read_bytes())
    (root / "huge.jar").write_bytes(b"\0" * 600_000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def session_cluster(version: str, state_dir: Path) -> dict[str, Any]:
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment", "metadata": {"name": SESSION},
            "spec": {"image": f"flink:{version}", "flinkVersion": "v1_20" if version.startswith("1.") else "v2_3",
                     "serviceAccount": "flink",
                     "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4",
                                            "state.savepoints.dir": f"file://{state_dir}/savepoints",
                                            "state.checkpoints.dir": f"file://{state_dir}/checkpoints"},
                     "jobManager": {"resource": {"memory": JM_PROCESS_MEMORY, "cpu": 0.5}},
                     "taskManager": {"resource": {"memory": TM_PROCESS_MEMORY, "cpu": 0.5}}}}


def session_job(name: str, jar_uri: str, mode: str = "savepoint") -> dict[str, Any]:
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob", "metadata": {"name": name},
            "spec": {"deploymentName": SESSION,
                     "job": {"jarURI": jar_uri, "entryClass": COUNTER_JOB_CLASS, "parallelism": 1,
                             "args": counter_args(rate=20, keys=4, checkpoint_interval_ms=1000), "upgradeMode": mode}}}


class SessionBed:
    def __init__(self, url: str, runner: Any):
        self.cluster = Cluster()
        self.runner = runner
        self.fd, self.sj = controllers(url, self.cluster,
                                       kubelet=lambda d: runner.deployment_status(d["metadata"]["name"]))

    def status(self, name: str) -> dict[str, Any]:
        obj = self.cluster.get("FlinkSessionJob", "default", name)
        return (obj or {}).get("status") or {}

    def sync_all(self) -> None:
        if self.cluster.get("FlinkDeployment", "default", SESSION) is not None:
            self.fd.sync(SESSION)
            self.runner.apply([c for c in self.cluster.objects.values()
                               if c["kind"] in ("Deployment", "ConfigMap", "Service")])
        for (kind, _, name) in list(self.cluster.objects):
            if kind == "FlinkSessionJob":
                self.sj.sync(name)

    def until(self, what: str, predicate: Callable[[SessionBed], bool], timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sync_all()
            if predicate(self):
                return
            time.sleep(0.4)
        raise AssertionError(f"{what}: not reached in {timeout}s; "
                             f"{ {n: self.status(n) for (k, _, n) in self.cluster.objects if k == 'FlinkSessionJob'} }")

    def running(self, name: str) -> bool:
        st = self.status(name)
        return st.get("lifecycleState") == "STABLE" and (st.get("jobStatus") or {}).get("state") == "RUNNING"


@pytest.mark.parametrize("flink_version", ["1.20"], indirect=True)
def test_session_jobs_on_a_real_session_cluster(pod_runner, jar_server, flink_version, tmp_path):
    rest_port = pod_runner._first_rest_port
    env = {"FLINK_SYNC_REST_URL_TEMPLATE": f"http://127.0.0.1:{rest_port}",
           "FLINK_SYNC_JAR_URI_ALLOWLIST": f"https://,{jar_server}", "FLINK_SYNC_JAR_MAX_BYTES": "300000",
           "FLINK_SYNC_REST_READ_TIMEOUT": "6"}
    with hook_server(env) as url:
        bed = SessionBed(url, pod_runner)
        create(bed.cluster, session_cluster(flink_version, tmp_path / "state"))
        create(bed.cluster, session_job("counter", jar_server + "counter.jar"))
        bed.until("session job running", lambda b: b.running("counter"))
        rest = pod_runner.rest(SESSION)
        first = bed.status("counter")["jobStatus"]["jobId"]
        assert rest.job_state(first) == "RUNNING"
        before = read_counter(rest, first, min_last_value=20)

        # A jar URI that is refused, private, too large or missing: a clear error, nothing submitted.
        jobs_before = len(rest.get("/jobs/overview")["jobs"])
        bad = {"ftp": "ftp://127.0.0.1/counter.jar", "private": "http://10.1.2.3/counter.jar",
               "huge": jar_server + "huge.jar", "missing": jar_server + "nope.jar"}
        for name, uri in bad.items():
            create(bed.cluster, session_job(f"bad-{name}", uri))
        bed.until("bad jar URIs reported", lambda b: all("jarURI" in (b.status(f"bad-{n}").get("error") or "")
                                                         or "404" in (b.status(f"bad-{n}").get("error") or "")
                                                         for n in bad), timeout=60)
        for name in bad:
            error = bed.status(f"bad-{name}")["error"]
            assert "Traceback" not in error
        assert len(rest.get("/jobs/overview")["jobs"]) == jobs_before, "nothing was submitted"
        for name in bad:
            delete(bed.cluster, "FlinkSessionJob", f"bad-{name}")
        bed.until("bad jobs deleted", lambda b: all(b.cluster.get("FlinkSessionJob", "default", f"bad-{n}") is None
                                                    for n in bad), timeout=60)

        # Savepoint by nonce.
        update_spec(bed.cluster, "FlinkSessionJob", "counter", lambda s: s["job"].update(savepointTriggerNonce=1))
        bed.until("manual savepoint", lambda b: ((b.status("counter")["jobStatus"].get("savepointInfo") or {})
                                                 .get("lastSavepoint") or {}).get("triggerNonce") == 1)

        # Savepoint upgrade: state continues in the new job.
        update_spec(bed.cluster, "FlinkSessionJob", "counter", lambda s: s["job"].update(parallelism=2))
        bed.until("savepoint upgrade", lambda b: b.running("counter") and b.status("counter")["jobStatus"]["jobId"] != first)
        second = bed.status("counter")["jobStatus"]["jobId"]
        assert rest.job_state(first) == "FINISHED"
        assert same_path(rest.restored_from(second), bed.status("counter")["jobStatus"]["upgradeSavepointPath"])
        after = read_counter_past(rest, second, before)
        assert after.restored_total > 0, "keyed state continued"

        # Suspend and resume.
        update_spec(bed.cluster, "FlinkSessionJob", "counter", lambda s: s["job"].update(state="suspended"))
        bed.until("suspended", lambda b: b.status("counter").get("lifecycleState") == "SUSPENDED")
        assert rest.job_state(second) == "FINISHED"
        update_spec(bed.cluster, "FlinkSessionJob", "counter", lambda s: s["job"].update(state="running"))
        bed.until("resumed", lambda b: b.running("counter") and b.status("counter")["jobStatus"]["jobId"] != second)
        third = bed.status("counter")["jobStatus"]["jobId"]
        assert rest.restored_from(third) is not None

        # The session cluster is not deleted under its session job.
        delete(bed.cluster, "FlinkDeployment", SESSION)
        bed.fd.sync(SESSION)
        assert bed.cluster.get("FlinkDeployment", "default", SESSION) is not None
        assert rest.job_state(third) == "RUNNING"

        # Delete the session job: the job is cancelled and the finalizer released; then the session cluster goes.
        delete(bed.cluster, "FlinkSessionJob", "counter")
        bed.until("session job deleted", lambda b: b.cluster.get("FlinkSessionJob", "default", "counter") is None, timeout=60)
        assert rest.job_state(third) in ("CANCELED", "FINISHED")
        bed.until("session cluster deleted", lambda b: b.cluster.get("FlinkDeployment", "default", SESSION) is None, timeout=60)
