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

Manual checkpoints (`trigger_checkpoint`, polled with `checkpoint_status`, their path read with
`checkpoint_path`) are kept by trigger id like savepoints; a trigger on a job that is not RUNNING fails.

Fault knobs: `down` (every call is refused), `up`/`start_ticks` (a JobManager still starting),
`fail_savepoints` (savepoints and manual checkpoints fail with `failure_message`), `refuse_triggers` (the trigger
call itself is answered with an HTTP 500), `savepoint_polls` (polls before a trigger reports its result), `stale_checkpoints` (the
checkpoint list is cached: after a stop it names a long-subsumed checkpoint), and `triggers.clear()` (the
JobManager forgot its operations: restart, or rest.async.store-duration passed).

The autoscaler's REST calls (`job_details`, `vertex_metric_names`, `vertex_metrics`, `resource_requirements`,
`set_resource_requirements`) are served from a `FakeLoad` per job (`loads`): a chain of vertices with a known
capacity per subtask, an offered source rate the test changes, and optionally a source backlog. Like Flink, a
metrics request naming a metric the vertex does not have is answered with nothing at all, and an in-place rescale
beyond a vertex's max parallelism is refused with 400 (and moves the job's RUNNING timestamp).

Disposed savepoints are recorded (`disposed`) but stay in `snapshots`, so a test can still check where a job
restored from. Ids are not validated as the REST client validates them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from sync.flinkconf import flatten

from .flink_rest import (
    CheckpointResult,
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
    parallelism: int | None = None  # as submitted (a session job)


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
    failure_message: str = "savepoint failed"
    refuse_triggers: bool = False
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
    checkpoint_operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_paths: dict[int, str] = field(default_factory=dict)
    target_dirs: list[str | None] = field(default_factory=list)
    loads: dict[str, FakeLoad] = field(default_factory=dict)
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
        if _still_in_progress(record):
            return SavepointResult("IN_PROGRESS")
        return SavepointResult(record["state"], record.get("location"), record.get("failure"))

    def checkpoint_status(self, job_id: str, trigger_id: str) -> CheckpointResult:
        self._answer()
        record = self.checkpoint_operations.get(trigger_id)
        if record is None:
            return CheckpointResult("UNKNOWN_TRIGGER")
        if _still_in_progress(record):
            return CheckpointResult("IN_PROGRESS")
        return CheckpointResult(record["state"], record.get("checkpoint_id"), record.get("failure"))

    def checkpoint_path(self, job_id: str, checkpoint_id: int) -> str | None:
        self._answer()
        self._job(job_id)
        if checkpoint_id not in self.checkpoint_paths:
            raise FlinkNotFound(f"Could not find checkpointing statistics for checkpoint {checkpoint_id}.",
                                status_code=404)
        return self.checkpoint_paths[checkpoint_id]

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
        self._refuse()
        self.target_dirs.append(target_dir)
        return self._savepoint(job_id, self._operation_id(trigger_id), stop=False)

    def _refuse(self) -> None:
        if self.refuse_triggers:
            raise FlinkRestError(self.failure_message, status_code=500)

    def stop_with_savepoint(self, job_id: str, target_dir: str | None, drain: bool = False,
                            format_type: str = "CANONICAL", trigger_id: str | None = None) -> str:
        return self._savepoint(job_id, self._operation_id(trigger_id), stop=True)

    def _savepoint(self, job_id: str, trigger_id: str, stop: bool) -> str:
        self._answer()
        if trigger_id in self.triggers:
            return trigger_id  # Flink answers a repeated trigger id with the first operation
        job = self.jobs.get(job_id)
        if job is None or job.state != "RUNNING" or self.fail_savepoints:
            self.triggers[trigger_id] = {"state": "FAILED", "failure": self.failure_message, "polls": 0}
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
        self._refuse()
        job = self._job(job_id)
        trigger_id = self._operation_id(trigger_id)
        if trigger_id in self.checkpoint_operations:
            return trigger_id  # the same operation, as for savepoints
        self.checkpoint_triggers.append(trigger_id)
        if job.state != "RUNNING" or self.fail_savepoints:
            self.checkpoint_operations[trigger_id] = {"state": "FAILED", "failure": self.failure_message, "polls": 0}
            return trigger_id
        checkpoint_id = 1000 + len(self.checkpoint_paths)  # apart from tick()'s chk-<value> checkpoints
        location = f"{self.checkpoint_dir}/{job.job_id}/chk-{checkpoint_id}"
        self.snapshots[location] = job.value
        self.checkpoint_paths[checkpoint_id] = location
        self.checkpoint_operations[trigger_id] = {"state": "COMPLETED", "checkpoint_id": checkpoint_id,
                                                  "polls": self.savepoint_polls}
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
                                 "parallelism": parallelism, "savepoint_path": savepoint_path,
                                 "flink_configuration": dict(flink_configuration or {})})
        if job_id in self.jobs:
            raise FlinkDuplicateJob("DuplicateJobSubmissionException: Job has already been submitted.",
                                    status_code=400)
        self.start_job(job_id, savepoint_path).parallelism = parallelism
        return job_id

    def delete_jar(self, jar_id: str) -> bool:
        self._answer()
        return self.jars.pop(jar_id, None) is not None

    # ------------------------------------------------------------------ FlinkApi: the autoscaler
    def _load(self, job_id: str) -> tuple[FakeJob, FakeLoad]:
        self._answer()
        job = self._job(job_id)
        load = self.loads.get(job_id)
        if load is None:
            raise FlinkNotFound(f"Job {job_id} has no vertices in this fake", status_code=404)
        return job, load

    def job_details(self, job_id: str) -> Mapping[str, Any]:
        job, load = self._load(job_id)
        return load.details(job)

    def vertex_metric_names(self, job_id: str, vertex_id: str) -> list[str]:
        return self._load(job_id)[1].metric_names(vertex_id)

    def vertex_metrics(self, job_id: str, vertex_id: str, names: Sequence[str]) -> dict[str, dict[str, float]]:
        return self._load(job_id)[1].metrics(vertex_id, names)

    def resource_requirements(self, job_id: str) -> Mapping[str, Any]:
        return self._load(job_id)[1].requirements()

    def set_resource_requirements(self, job_id: str, requirements: Mapping[str, Any]) -> None:
        self._load(job_id)[1].set_requirements(requirements)


@dataclass
class FakeVertex:
    """A job vertex of a `FakeLoad`: `capacity` records per second per subtask (None: never busy), `selectivity`
    records out per record in."""
    vertex_id: str
    parallelism: int
    max_parallelism: int = 128
    inputs: tuple[tuple[str, str], ...] = ()
    capacity: float | None = None
    selectivity: float = 1.0
    records_in: float = 0.0
    records_out: float = 0.0
    in_rate: float = 0.0
    busy_ms: float = 0.0


@dataclass
class FakeLoad:
    """A chain of vertices (sources first) under an offered load. The slowest vertex limits what the source
    passes (backpressure); with `backlog` set, the source reports pendingRecords and what it cannot pass piles up.
    `advance(seconds)` moves time and the counters."""
    vertices: list[FakeVertex]
    offered_rate: float = 0.0
    backlog: float | None = None
    now_ms: int = 1
    running_since: int = 1
    io_complete: bool = True

    def _limit(self) -> float:
        """The source rate the slowest vertex lets through."""
        limit, factor = math.inf, 1.0
        for vertex in self.vertices:
            if vertex.capacity is not None and factor > 0:
                limit = min(limit, vertex.capacity * vertex.parallelism / factor)
            factor *= vertex.selectivity
        return limit

    def advance(self, seconds: float) -> None:
        wanted = self.offered_rate + ((self.backlog or 0.0) / seconds if self.backlog else 0.0)
        rate = min(wanted, self._limit())
        if self.backlog is not None:
            self.backlog = max(0.0, self.backlog + (self.offered_rate - rate) * seconds)
        flowing = rate
        for vertex in self.vertices:
            vertex.in_rate = flowing if vertex.inputs else 0.0  # a source reads nothing from the network
            vertex.busy_ms = 50.0 if vertex.capacity is None else min(
                1000.0, 1000.0 * flowing / (vertex.capacity * vertex.parallelism))
            vertex.records_in += vertex.in_rate * seconds
            flowing *= vertex.selectivity
            vertex.records_out += flowing * seconds
        self.now_ms += int(seconds * 1000)

    def details(self, job: FakeJob) -> dict[str, Any]:
        """GET /jobs/{id}, the fields the autoscaler reads."""
        return {"jid": job.job_id, "state": job.state, "timestamps": {"RUNNING": self.running_since},
                "vertices": [{"id": v.vertex_id, "parallelism": v.parallelism, "maxParallelism": v.max_parallelism,
                              "status": "RUNNING", "tasks": {"RUNNING": v.parallelism},
                              "metrics": {"read-records": int(v.records_in), "write-records": int(v.records_out),
                                          "read-records-complete": self.io_complete,
                                          "write-records-complete": self.io_complete}} for v in self.vertices],
                "plan": {"nodes": [{"id": v.vertex_id, "parallelism": v.parallelism,
                                    "inputs": [{"id": u, "ship_strategy": s} for u, s in v.inputs]}
                                   for v in self.vertices]}}

    def _vertex(self, vertex_id: str) -> FakeVertex:
        vertex = next((v for v in self.vertices if v.vertex_id == vertex_id), None)
        if vertex is None:
            raise FlinkNotFound(f"JobVertex {vertex_id} not found", status_code=404)
        return vertex

    def _values(self, vertex: FakeVertex) -> dict[str, float]:
        values = {"busyTimeMsPerSecond": vertex.busy_ms, "backPressuredTimeMsPerSecond": 0.0,
                  "numRecordsInPerSecond": vertex.in_rate}
        if not vertex.inputs:
            values.update({"Source__Gen.numRecordsInPerSecond": 0.0, "Source__Gen.numRecordsIn": 0.0,
                           "Source__Gen.numRecordsOut": vertex.records_out})
            if self.backlog is not None:
                values["Source__Gen.pendingRecords"] = self.backlog
        return values

    def metric_names(self, vertex_id: str) -> list[str]:
        return sorted(self._values(self._vertex(vertex_id)))

    def metrics(self, vertex_id: str, names: Sequence[str]) -> dict[str, dict[str, float]]:
        vertex = self._vertex(vertex_id)
        values = self._values(vertex)
        if any(name not in values for name in names):
            return {}  # Flink's answer to one unknown name: nothing at all
        gauges = ("busyTimeMsPerSecond", "backPressuredTimeMsPerSecond")
        return {name: {"min": values[name] if name in gauges else values[name] / vertex.parallelism,
                       "max": values[name] if name in gauges else values[name] / vertex.parallelism,
                       "avg": values[name] if name in gauges else values[name] / vertex.parallelism,
                       "sum": values[name] * (vertex.parallelism if name in gauges else 1)} for name in names}

    def requirements(self) -> dict[str, Any]:
        return {v.vertex_id: {"parallelism": {"lowerBound": 1, "upperBound": v.parallelism}} for v in self.vertices}

    def set_requirements(self, body: Mapping[str, Any]) -> None:
        if set(body) != {v.vertex_id for v in self.vertices}:
            raise FlinkRestError("The request is incomplete, missing job vertices", status_code=400)
        for vertex in self.vertices:
            upper = int(body[vertex.vertex_id]["parallelism"]["upperBound"])
            if upper > vertex.max_parallelism:
                raise FlinkRestError(f"upper bound {upper} exceeds the max parallelism", status_code=400)
        for vertex in self.vertices:
            vertex.parallelism = int(body[vertex.vertex_id]["parallelism"]["upperBound"])
        self.running_since = self.now_ms  # an in-place rescale restarts the job: RUNNING moves

    def apply_overrides(self, text: str | None) -> None:
        """A job started with `pipeline.jobvertex-parallelism-overrides`: those vertices run at that parallelism."""
        for item in (text or "").split(","):
            vertex_id, _, value = item.partition(":")
            for vertex in self.vertices:
                if vertex.vertex_id == vertex_id.strip() and value.strip().isdigit():
                    vertex.parallelism = int(value)


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


def _still_in_progress(operation: dict[str, Any]) -> bool:
    """A triggered operation answers IN_PROGRESS for its remaining `polls`, one poll at a time."""
    if operation["polls"] > 0:
        operation["polls"] -= 1
        return True
    return False
