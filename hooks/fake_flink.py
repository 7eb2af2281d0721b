"""An in-memory Flink cluster behind `FlinkApi`: the one fake Flink of the simulation tests (tests/sim.py),
`flink-sync explain` (hooks/explain.py) and the benchmark (bench/workload.py).

The pipeline's own code (hooks/flink_io.observe and execute, hooks/submit.py) runs against it, so what a
simulated sync observes and does goes through the same calls as against a real JobManager.

Flink behaviours modelled (the real ones are pinned by the `flink`-marked tests against real Flink):
* a fixed job id from `$internal.pipeline.job-id` and a restore from `execution.savepoint.path`
  (`boot`, from the rendered ConfigMap); a submitted job id runs only once (`FlinkDuplicateJob`);
* savepoint and stop-with-savepoint triggers identified by the client's trigger id: a repeated trigger id
  is the same operation; on a job that is not RUNNING the operation fails; stop ends the job FINISHED;
* cancel ends a job CANCELED (404 for a job the cluster does not know); the latest checkpoint of an ended
  job (`GET /jobs/{id}/checkpoints`) is the last one taken while it ran (`tick`);
* the JobManager stays up after the job ends (shutdown-on-application-finish=false).

Fault knobs: `down` (every call is refused), `up`/`start_ticks` (a JobManager still starting),
`fail_savepoints`, `savepoint_polls` (polls before a trigger reports its result), `stale_checkpoints` (the
checkpoint list is cached: after a stop it names a long-subsumed checkpoint), and `triggers.clear()` (the
JobManager forgot its operations: restart, or rest.async.store-duration passed).

Disposed savepoints are recorded (`disposed`) but stay in `snapshots`, so a test can still check where a job
restored from. Ids are not validated as the REST client validates them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from sync.flinkconf import flatten

from .flink_rest import (
    ClusterConfig,
    FlinkDuplicateJob,
    FlinkNotFound,
    FlinkRestError,
    FlinkUnreachable,
    JobException,
    JobOverview,
    SavepointResult,
)

_ENDED = ("FINISHED", "CANCELED", "FAILED")


@dataclass
class FakeJob:
    job_id: str
    state: str = "RUNNING"
    value: int = 0            # the keyed counter: proves state continues across restores
    restored_from: str | None = None
    checkpoint: str | None = None
    start_time: int = 1
    failure: str | None = None  # the failure cause of a FAILED job


@dataclass
class FakeFlink:
    """One Flink cluster's REST API. `snapshots` (location → counter value) may be shared by the clusters of
    one deployment: savepoints and retained checkpoints outlive the cluster that wrote them."""
    name: str
    snapshots: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    up: bool = True
    start_ticks: int = 0
    down: bool = False
    fail_savepoints: bool = False
    savepoint_polls: int = 0
    stale_checkpoints: bool = False
    flink_version: str = "1.20.3"
    savepoint_dir: str = "file:/sp"
    checkpoint_dir: str = "file:/cp"
    marker: str = ""          # what the cluster was started from (the simulation's kubelet compares it)
    jars: dict[str, bytes] = field(default_factory=dict)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    disposed: list[str] = field(default_factory=list)
    checkpoint_triggers: list[str] = field(default_factory=list)
    taskmanagers: int | None = None  # registered TaskManagers (None: not modelled, as when boot() sees no TMs)

    # ------------------------------------------------------------------ the simulation's side
    def start_job(self, job_id: str, restore: str | None = None, failure: str | None = None) -> FakeJob:
        """A job starts (from `restore`, whose counter it continues), or fails at once with `failure`."""
        job = FakeJob(job_id, "FAILED" if failure else "RUNNING", self.snapshots.get(restore, 0) if restore else 0,
                      restore, failure=failure)
        self.jobs[job_id] = job
        return job

    def tick(self) -> None:
        """Time passes: a starting JobManager comes up; running jobs count and checkpoint."""
        if self.start_ticks > 0:
            self.start_ticks -= 1
            if self.start_ticks == 0:
                self.up = True
            return
        for job in self.jobs.values():
            if job.state == "RUNNING":
                job.value += 1
                location = f"{self.checkpoint_dir}/{job.job_id}/chk-{job.value}"
                self.snapshots[location] = job.value
                job.checkpoint = location

    def running_job(self) -> FakeJob | None:
        return next((j for j in self.jobs.values() if j.state == "RUNNING"), None)

    def _answer(self) -> None:
        if self.down or not self.up:
            raise FlinkUnreachable("connection refused")

    def _job(self, job_id: str) -> FakeJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise FlinkNotFound(f"Job {job_id} not found", status_code=404)
        return job

    def _operation_id(self, trigger_id: str | None) -> str:
        return trigger_id or f"{len(self.triggers) + len(self.disposed) + len(self.checkpoint_triggers):032x}"

    # ------------------------------------------------------------------ FlinkApi: observe
    def jobs_overview(self) -> list[JobOverview]:
        self._answer()
        return [JobOverview.model_validate({"jid": j.job_id, "name": self.name, "state": j.state,
                                            "start-time": j.start_time, "end-time": -1})
                for j in self.jobs.values()]

    def cluster_config(self) -> ClusterConfig:
        self._answer()
        return ClusterConfig.model_validate({"flink-version": self.flink_version})

    def taskmanager_count(self) -> int | None:
        self._answer()
        return self.taskmanagers

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointResult:
        self._answer()
        record = self.triggers.get(trigger_id)
        if record is None:
            return SavepointResult("UNKNOWN_TRIGGER")
        if record["polls"] > 0:
            record["polls"] -= 1
            return SavepointResult("IN_PROGRESS")
        return SavepointResult(record["state"], record.get("location"), record.get("failure"))

    def latest_checkpoint_path(self, job_id: str) -> str | None:
        self._answer()
        latest = self._job(job_id).checkpoint
        if latest and self.stale_checkpoints:
            return f"{self.checkpoint_dir}/stale/chk-1"  # subsumed long ago: restoring from it fails
        return latest

    def execution_result(self, job_id: str) -> str | None:
        self._answer()
        job = self._job(job_id)
        return job.failure if job.state == "FAILED" else None

    def job_exceptions(self, job_id: str, max_exceptions: int = 5) -> list[JobException]:
        self._answer()
        job = self._job(job_id)
        if not job.failure:
            return []
        return [JobException(timestamp=None, name="JobException", first_line=job.failure, root_cause=None)]

    # ------------------------------------------------------------------ FlinkApi: act
    def trigger_savepoint(self, job_id: str, target_dir: str | None, format_type: str = "CANONICAL",
                          trigger_id: str | None = None) -> str:
        return self._savepoint(job_id, self._operation_id(trigger_id), stop=False)

    def stop_with_savepoint(self, job_id: str, target_dir: str | None, drain: bool = False,
                            format_type: str = "CANONICAL", trigger_id: str | None = None) -> str:
        return self._savepoint(job_id, self._operation_id(trigger_id), stop=True)

    def _savepoint(self, job_id: str, trigger_id: str, stop: bool) -> str:
        self._answer()
        if trigger_id in self.triggers:
            return trigger_id  # Flink answers a repeated trigger id with the first operation
        job = self.jobs.get(job_id)
        if job is None or job.state != "RUNNING" or self.fail_savepoints:
            self.triggers[trigger_id] = {"state": "FAILED", "failure": "savepoint failed", "polls": 0}
            return trigger_id
        location = f"{self.savepoint_dir}/savepoint-{job.job_id[:6]}-{len(self.snapshots)}"
        self.snapshots[location] = job.value
        self.triggers[trigger_id] = {"state": "COMPLETED", "location": location, "polls": self.savepoint_polls}
        if stop:
            job.state = "FINISHED"
            job.checkpoint = location
        return trigger_id

    def cancel(self, job_id: str) -> bool:
        self._answer()
        job = self._job(job_id)
        if job.state in _ENDED:
            return job.state == "CANCELED"
        job.state = "CANCELED"
        return True

    def dispose_savepoint(self, path: str) -> str:
        self._answer()
        trigger_id = self._operation_id(None)
        self.disposed.append(path)
        return trigger_id

    def trigger_checkpoint(self, job_id: str, checkpoint_type: str = "FULL", trigger_id: str | None = None) -> str:
        self._answer()
        self._job(job_id)
        trigger_id = self._operation_id(trigger_id)
        self.checkpoint_triggers.append(trigger_id)
        return trigger_id

    # ------------------------------------------------------------------ FlinkApi: submit a session job
    def upload_jar(self, filename: str, data: bytes) -> str:
        self._answer()
        jar_id = f"{len(self.jars):08x}_{filename.rsplit('/', 1)[-1]}"
        self.jars[jar_id] = data
        return jar_id

    def run_jar(self, jar_id: str, *, job_id: str | None = None, entry_class: str | None = None,
                args: Sequence[str] = (), parallelism: int | None = None, savepoint_path: str | None = None,
                allow_non_restored_state: bool | None = None, claim_mode: str | None = None,
                flink_configuration: Mapping[str, Any] | None = None, flink_version: str | None = None) -> str:
        self._answer()
        if jar_id not in self.jars:
            raise FlinkRestError(f"Jar file {jar_id} does not exist", status_code=400)
        job_id = job_id or f"{len(self.jobs):032x}"
        self.submissions.append({"job_id": job_id, "entry_class": entry_class, "args": list(args),
                                 "parallelism": parallelism, "savepoint_path": savepoint_path})
        if job_id in self.jobs:
            raise FlinkDuplicateJob("DuplicateJobSubmissionException: Job has already been submitted.",
                                    status_code=400)
        self.start_job(job_id, savepoint_path)
        return job_id

    def delete_jar(self, jar_id: str) -> bool:
        self._answer()
        return self.jars.pop(jar_id, None) is not None


def flink_conf(children: Iterable[dict[str, Any]], name: str) -> dict[str, str]:
    """The Flink configuration a JobManager of cluster `name` reads: its rendered ConfigMap
    `flink-config-<name>` (`flink-conf.yaml` for Flink 1.x, `config.yaml` for 2.x), flattened."""
    cm = next((c for c in children if c.get("kind") == "ConfigMap"
               and c["metadata"]["name"] == f"flink-config-{name}"), None)
    if cm is None:
        return {}
    data = cm["data"]
    if "flink-conf.yaml" in data:
        return dict(line.split(": ", 1) for line in data["flink-conf.yaml"].splitlines() if ": " in line)
    return flatten(yaml.safe_load(data["config.yaml"]))


def _taskmanager_replicas(children: Iterable[dict[str, Any]], name: str) -> int | None:
    """Every TaskManager the rendered Deployment asks for registers (the simulation's kubelet starts them all)."""
    tm = next((c for c in children if c.get("kind") == "Deployment"
               and c["metadata"]["name"] == f"{name}-taskmanager"), None)
    replicas = ((tm or {}).get("spec") or {}).get("replicas")
    return replicas if isinstance(replicas, int) else None


def boot(name: str, children: Iterable[dict[str, Any]], snapshots: dict[str, int], *, start_ticks: int = 0,
         failure: str | None = None, start_time: int = 1) -> FakeFlink:
    """The cluster a rendered JobManager starts: its fixed job id (if any) runs, restored from
    `execution.savepoint.path`, from `start_time` on (epoch ms). With `start_ticks`, the REST API answers only
    after that many ticks; with `failure`, the job fails at once."""
    children = list(children)
    conf = flink_conf(children, name)
    cluster = FakeFlink(name, snapshots=snapshots, up=start_ticks == 0, start_ticks=start_ticks,
                        taskmanagers=_taskmanager_replicas(children, name))
    job_id = conf.get("$internal.pipeline.job-id")
    if job_id:
        cluster.start_job(job_id, conf.get("execution.savepoint.path"), failure=failure).start_time = start_time
    return cluster
