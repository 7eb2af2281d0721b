"""FlinkSessionJob state machine against a modelled session cluster: the job id is recorded before the
submission, submissions are idempotent, savepoint upgrades continue state, suspend/resume, deletion."""
from __future__ import annotations

import copy

from sync.sessionjob import submission_failed, sync_session_job

from .helpers import SETTINGS
from .sim import FakeFlink, SessionCluster

SESSION = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
           "metadata": {"name": "session", "namespace": "default"},
           "spec": {"flinkVersion": "v1_20", "flinkConfiguration": {"state.savepoints.dir": "file:///sp",
                                                                    "state.checkpoints.dir": "file:///cp"}},
           "status": {"jobManagerDeploymentStatus": "READY"}}
JOB = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
       "metadata": {"name": "counter", "namespace": "default", "uid": "uid-counter", "generation": 1},
       "spec": {"deploymentName": "session",
                "job": {"jarURI": "https://jars.example.com/counter.jar", "parallelism": 1, "upgradeMode": "savepoint",
                        "entryClass": "probe.Counter", "args": ["--rate", "10"]}}}


class _JobView:
    """A job of the fake session cluster as these tests read it: its state, what it restored from, its latest
    checkpoint (a test may set it: the snapshot Flink reports), the parallelism it was submitted with."""
    _ATTRIBUTES = {"state": "state", "restored": "restored_from", "checkpoint": "checkpoint",
                   "parallelism": "parallelism"}

    def __init__(self, job):
        self._job = job

    def __getitem__(self, key):
        return getattr(self._job, self._ATTRIBUTES[key])

    def __setitem__(self, key, value):
        setattr(self._job, self._ATTRIBUTES[key], value)


class Session:
    """The session cluster: the shared in-memory Flink (hooks/fake_flink.py, behind FlinkApi) reached through the
    hooks' own Flink I/O (tests/sim.SessionCluster): submitted jobs (a job id only once), savepoint and stop
    triggers (a repeated trigger id is the same operation; on a job that is not RUNNING the operation fails),
    cancel, and the latest checkpoint. `down` makes it unreachable; a submission must restore from a snapshot
    that exists."""

    def __init__(self):
        self.cluster = SessionCluster(FakeFlink("session", savepoint_dir="file:/sp", checkpoint_dir="file:/cp"))
        self.now = 1_764_000_000_000

    @property
    def jobs(self):
        return {job_id: _JobView(job) for job_id, job in self.cluster.flink.jobs.items()}

    @property
    def triggers(self):
        return self.cluster.flink.triggers

    @property
    def submissions(self):
        return self.cluster.flink.submissions

    @property
    def down(self):
        return self.cluster.flink.down

    @down.setter
    def down(self, value):
        self.cluster.flink.down = value

    def observe(self, parent):
        return self.cluster.observe(parent, SESSION)

    def act(self, action):
        restored = action.params.get("savepoint_path") if action.kind == "submit_job" else None
        assert restored is None or restored in self.cluster.flink.snapshots, \
            f"restored from {restored}, which does not exist"
        self.cluster.execute([action])

    def tick(self):
        self.now += 1000
        self.cluster.flink.tick()


def run(session: Session, parent: dict, syncs: int = 1, finalizing: bool = False, fail_submit: bool = False):
    result = None
    for _ in range(syncs):
        result = sync_session_job(copy.deepcopy(parent), SESSION, session.observe(parent), session.now, SETTINGS,
                                  finalizing=finalizing)
        for action in result.actions:
            if action.kind == "submit_job" and fail_submit:
                result.status = submission_failed(result.status, "jar upload failed")
                continue
            session.act(action)
        parent["status"] = result.status
        session.tick()
    return result


def test_job_id_is_recorded_before_the_submission_and_retries_reuse_it():
    session, parent = Session(), copy.deepcopy(JOB)
    first = run(session, parent)
    job_id = first.status["jobStatus"]["jobId"]
    assert first.actions == [] and session.submissions == [], "nothing is submitted before the id is in status"
    run(session, parent, fail_submit=True)
    assert "jar upload failed" in parent["status"]["error"]
    run(session, parent, syncs=3)
    assert [s["job_id"] for s in session.submissions] == [job_id]
    assert parent["status"]["jobStatus"]["state"] == "RUNNING"
    assert parent["status"]["lifecycleState"] == "STABLE"
    submitted = session.submissions[0]
    assert submitted["entry_class"] == "probe.Counter" and submitted["args"] == ["--rate", "10"]
    assert submitted["flink_configuration"]["pipeline.name"] == "counter"
    assert "error" not in parent["status"]


def test_waits_for_the_session_cluster():
    parent = copy.deepcopy(JOB)
    not_ready = copy.deepcopy(SESSION)
    not_ready["status"]["jobManagerDeploymentStatus"] = "DEPLOYING"
    result = sync_session_job(parent, not_ready, None, 0, SETTINGS)
    ready = {c["type"]: c for c in result.status["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "WaitingForSessionCluster"
    assert result.actions == []


def test_savepoint_upgrade_continues_state():
    session, parent = Session(), copy.deepcopy(JOB)
    run(session, parent, syncs=4)
    old = parent["status"]["jobStatus"]["jobId"]
    parent["spec"]["job"]["parallelism"] = 2
    parent["metadata"]["generation"] = 2
    run(session, parent, syncs=8)
    new = parent["status"]["jobStatus"]["jobId"]
    assert new != old and session.jobs[old]["state"] == "FINISHED"
    assert session.jobs[new]["state"] == "RUNNING" and session.jobs[new]["restored"] == parent["status"]["jobStatus"]["upgradeSavepointPath"]
    assert session.submissions[-1]["parallelism"] == 2
    assert parent["status"]["lifecycleState"] == "STABLE"


def test_suspend_resume_and_manual_savepoint():
    session, parent = Session(), copy.deepcopy(JOB)
    run(session, parent, syncs=4)
    parent["spec"]["job"]["savepointTriggerNonce"] = 5
    run(session, parent, syncs=3)
    assert parent["status"]["jobStatus"]["savepointInfo"]["lastSavepoint"]["triggerNonce"] == 5
    parent["spec"]["job"]["state"] = "suspended"
    run(session, parent, syncs=5)
    assert parent["status"]["lifecycleState"] == "SUSPENDED"
    assert not [j for j in session.jobs.values() if j["state"] == "RUNNING"]
    parent["spec"]["job"]["state"] = "running"
    run(session, parent, syncs=5)
    running = [j for j in session.jobs.values() if j["state"] == "RUNNING"]
    assert len(running) == 1 and running[0]["restored"]


def test_delete_cancels_then_releases():
    session, parent = Session(), copy.deepcopy(JOB)
    run(session, parent, syncs=4)
    results = [run(session, parent, finalizing=True) for _ in range(4)]
    assert results[-1].finalized is True
    assert all(j["state"] != "RUNNING" for j in session.jobs.values())


def test_bad_jar_uri_is_a_clear_error_and_nothing_runs():
    session, parent = Session(), copy.deepcopy(JOB)
    parent["spec"]["job"]["jarURI"] = "ftp://jars.example.com/counter.jar"
    result = run(session, parent, syncs=2)
    assert "spec.job.jarURI" in result.status["error"] and session.submissions == []
    parent["spec"]["job"]["jarURI"] = "http://10.0.0.5/counter.jar"
    result = run(session, parent)
    assert "spec.job.jarURI" in result.status["error"]


def test_a_stop_whose_result_flink_forgot_completes_from_the_jobs_last_checkpoint():
    """The JobManager restarted (or 5 min passed) after the stop-with-savepoint: Flink no longer knows the
    trigger, but the job did stop. Its latest savepoint/checkpoint is the restore point; re-issuing the stop on
    a finished job would only fail, again and again, with the job down."""
    session, parent = Session(), copy.deepcopy(JOB)
    run(session, parent, syncs=4)
    old = parent["status"]["jobStatus"]["jobId"]
    parent["spec"]["job"]["parallelism"] = 2
    parent["metadata"]["generation"] = 2
    for _ in range(6):
        run(session, parent)
        if session.triggers:
            break
    assert session.jobs[old]["state"] == "FINISHED" and session.triggers, "the stop was issued"
    location = next(iter(session.triggers.values()))["location"]
    session.triggers.clear()  # the JobManager forgot the operation
    session.jobs[old]["checkpoint"] = location
    stops = []
    for _ in range(8):
        result = run(session, parent)
        stops += [a for a in result.actions if a.kind == "stop_with_savepoint"]
    assert stops == []
    assert parent["status"]["jobStatus"]["upgradeSavepointPath"] == location
    new = parent["status"]["jobStatus"]["jobId"]
    assert new != old and session.jobs[new]["state"] == "RUNNING" and session.jobs[new]["restored"] == location
    assert "error" not in parent["status"]
