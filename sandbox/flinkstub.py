"""A Flink REST stub for the node agent's `--flink-rest-stub` mode (env SANDBOX_FLINK_REST_STUB=1): the control
plane at scale (`python -m bench sandbox`) without a JVM per pod. A STAND-IN for Flink, not Flink.

In this mode the node agent starts no process for a pod of a `flink:X.Y` image: once bound, the pod is Running and
Ready (its main container `running` since admission), and the agent's REST proxy answers the Flink REST calls of
every such cluster itself, from the pods it holds, as one shared stub:

* `GET /config`: the version of the image tag (`flink-version`), so `status.clusterInfo` fills in;
* `GET /overview`: the cluster's stub TaskManager pods (labels `app=<cluster>`, `component=taskmanager`) as registered
  TaskManagers, one slot each, all taken;
* `GET /jobs/overview`: an application cluster's job RUNNING since the JobManager pod was admitted, its id the
  `$internal.pipeline.job-id` of the JobManager's Flink configuration (the ConfigMap the pod mounts, read until
  found, then kept per pod); a session cluster has no jobs;
* anything else: 404 with Flink's error body. So a savepoint, a cancel or a job submission fails as against a
  cluster that lacks the endpoint: the mode is for creating, reaching STABLE and resyncing, not for upgrades.

The node offers the scheduler `STUB_ALLOCATABLE` (stub pods take no memory or CPU of the host), and Services get no
TCP forwarders (there is no process to forward to).
"""
from __future__ import annotations

import calendar
import re
import threading
import time
from typing import Any

from .kube import Kube

STUB_ALLOCATABLE = {"cpu": "100000", "memory": "1000Ti", "pods": "100000"}
_JOB_ID = re.compile(r"job-id:\s*[\"']?([0-9a-fA-F]{32})")


def running_container(name: str, image: str, started: str) -> dict[str, Any]:
    return {"name": name, "ready": True, "started": True, "restartCount": 0, "image": image, "imageID": "",
            "containerID": "local-stub://flink-rest-stub", "state": {"running": {"startedAt": started}}}


def job_id_of(config_text: str) -> str | None:
    """The job id the hooks put into an application cluster's configuration (flat or nested YAML)."""
    found = _JOB_ID.search(config_text)
    return found.group(1).lower() if found else None


def epoch_ms(timestamp: str) -> int:
    return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")) * 1000


class FlinkRestStub:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.cm_res = kube.resource("v1", "configmaps")
        self._job_ids: dict[str, str | None] = {}  # JobManager pod uid -> its job id
        self._lock = threading.Lock()
        self.answered = 0

    def answer(self, path: str, jobmanager: dict[str, Any], version: str, started: str,
               taskmanagers: int) -> tuple[int, dict[str, Any]]:
        self.answered += 1
        route = path.split("?", 1)[0].rstrip("/")
        if route == "/config":
            return 200, {"flink-version": version, "flink-revision": "flink-rest-stub", "refresh-interval": 3000,
                         "timezone-name": "UTC", "timezone-offset": 0,
                         "features": {"web-submit": False, "web-cancel": False, "web-rescale": False,
                                      "web-history": False}}
        if route == "/overview":
            return 200, {"taskmanagers": taskmanagers, "slots-total": taskmanagers, "slots-available": 0,
                         "jobs-running": 1 if self._job_id(jobmanager) else 0, "jobs-finished": 0,
                         "jobs-cancelled": 0, "jobs-failed": 0, "flink-version": version,
                         "flink-commit": "flink-rest-stub"}
        if route == "/jobs/overview":
            job_id = self._job_id(jobmanager)
            if job_id is None:
                return 200, {"jobs": []}
            start = epoch_ms(started)
            return 200, {"jobs": [{"jid": job_id, "name": jobmanager["metadata"].get("labels", {}).get("app", ""),
                                   "state": "RUNNING", "start-time": start, "end-time": -1,
                                   "duration": max(0, int(time.time() * 1000) - start), "last-modification": start,
                                   "tasks": {"running": 1, "canceling": 0, "canceled": 0, "total": 1, "created": 0,
                                             "scheduled": 0, "deploying": 0, "reconciling": 0, "finished": 0,
                                             "initializing": 0, "failed": 0}}]}
        return 404, {"errors": [f"Not found: {route} (the sandbox's Flink REST stub serves /config, /overview and "
                                f"/jobs/overview only)"]}

    def _job_id(self, pod: dict[str, Any]) -> str | None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._job_ids:
                return self._job_ids[uid]
        found = None
        for volume in pod["spec"].get("volumes") or []:
            name = (volume.get("configMap") or {}).get("name")
            if not name:
                continue
            cm = self.kube.get(self.cm_res, pod["metadata"]["namespace"], name) or {}
            found = next((job_id_of(text) for text in (cm.get("data") or {}).values() if job_id_of(text)), None)
            if found:
                break
        if found is not None:  # not yet (the ConfigMap not there): asked again next time
            with self._lock:
                self._job_ids[uid] = found
        return found

    def forget(self, uid: str) -> None:
        with self._lock:
            self._job_ids.pop(uid, None)
