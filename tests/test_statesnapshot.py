"""FlinkStateSnapshot: the pure state machine (sync/statesnapshot.py), a property test over random Flink answers,
and the hooks through the real app with the in-memory Flink (hooks/fake_flink.py) behind the Flink port.
The same flows against real Flink 1.20 and 2.x on the sandbox: tests/sandbox/test_snapshot_sandbox.py."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.app import create_app
from hooks.fake_flink import FakeFlink
from hooks.settings import Settings
from sync.spec import SpecError
from sync.statesnapshot import (
    SnapshotPoll,
    SnapshotTarget,
    backoff_ms,
    parse_snapshot_spec,
    plan_poll,
    sync_snapshot,
)

from .helpers import EXAMPLES, NOW_MS

JOB_ID = "a" * 32
SNAPSHOT_GROUP = "FlinkDeployment.flink.apache.org/v1beta1"


def snapshot(spec: dict[str, Any], status: dict[str, Any] | None = None, name: str = "snap") -> dict[str, Any]:
    parent: dict[str, Any] = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot",
                              "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "generation": 1},
                              "spec": spec}
    if status is not None:
        parent["status"] = status
    return parent


SAVEPOINT = {"jobReference": {"kind": "FlinkDeployment", "name": "job"}, "savepoint": {}}
CHECKPOINT = {"jobReference": {"kind": "FlinkDeployment", "name": "job"}, "checkpoint": {}}
RUNNING = SnapshotTarget("FlinkDeployment", "job", JOB_ID, True, "job", "v1_20",
                         {"state.savepoints.dir": "file:///sp"})
STOPPED = SnapshotTarget("FlinkDeployment", "job", JOB_ID, False, "job", "v1_20")


def step(parent: dict[str, Any], target: SnapshotTarget | None = RUNNING, poll: SnapshotPoll | None = None,
         now: int = NOW_MS, finalizing: bool = False) -> Any:
    result = sync_snapshot(parent, target, poll, now, finalizing=finalizing)
    parent["status"] = result.status
    return result


# ---------------------------------------------------------------------------------------------- the spec
@pytest.mark.parametrize("spec, field", [
    ({"jobReference": {"kind": "FlinkDeployment", "name": "x"}}, "spec"),
    ({**SAVEPOINT, "checkpoint": {}}, "spec"),
    ({"savepoint": {}}, "spec.jobReference"),
    ({"jobReference": {"name": "x"}, "checkpoint": {}}, "spec.jobReference.kind"),
    ({"jobReference": {"kind": "Job", "name": "x"}, "checkpoint": {}}, "spec.jobReference.kind"),
    ({**SAVEPOINT, "savepoint": {"formatType": "UNKNOWN"}}, "spec.savepoint.formatType"),
    ({**SAVEPOINT, "backoffLimit": "many"}, "spec.backoffLimit"),
])
def test_invalid_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_snapshot_spec(spec)
    assert raised.value.field == field


def test_apache_defaults() -> None:
    spec = parse_snapshot_spec(SAVEPOINT)
    assert spec.backoffLimit == -1 and spec.savepoint is not None
    assert (spec.savepoint.formatType, spec.savepoint.disposeOnDelete, spec.savepoint.alreadyExists) == \
        ("CANONICAL", True, False)
    assert parse_snapshot_spec({"savepoint": {"alreadyExists": True, "path": "/x"}}).jobReference is None


def test_an_invalid_spec_is_reported_in_status_and_nothing_is_triggered() -> None:
    parent = snapshot({"savepoint": {}, "checkpoint": {}})
    result = step(parent)
    assert not result.actions and result.status["state"] == "TRIGGER_PENDING"
    assert "exactly one of savepoint or checkpoint" in result.status["error"]
    assert [e.reason for e in result.events] == ["ValidationError"]
    assert not step(parent).events, "the same error is not announced again"


# ---------------------------------------------------------------------------------------------- the happy paths
def test_a_savepoint_records_its_trigger_id_before_sending_it_then_completes() -> None:
    parent = snapshot(SAVEPOINT)
    first = step(parent)
    assert not first.actions and first.status["state"] == "TRIGGER_PENDING"
    trigger_id = first.status["flinkSync"]["triggerId"]
    assert first.status["flinkSync"] == {"triggerId": trigger_id, "jobId": JOB_ID, "cluster": "job"}
    second = step(parent)
    assert [(a.kind, a.params) for a in second.actions] == [("trigger_savepoint", {
        "job_id": JOB_ID, "trigger_id": trigger_id, "target_dir": "file:///sp", "format_type": "CANONICAL"})]
    assert second.status["state"] == "IN_PROGRESS" and second.status["triggerId"] == trigger_id
    assert plan_poll(parent) is not None and plan_poll(parent).kind == "savepoint"  # type: ignore[union-attr]
    assert step(parent, poll=SnapshotPoll("IN_PROGRESS")).status["state"] == "IN_PROGRESS"
    done = step(parent, poll=SnapshotPoll("COMPLETED", location="file:/sp/savepoint-1"))
    assert done.status["state"] == "COMPLETED" and done.status["path"] == "file:/sp/savepoint-1"
    assert "flinkSync" not in done.status and done.resync_after_seconds is None
    assert step(parent).status == done.status, "a completed snapshot stays as it is"


def test_a_lost_status_write_sends_the_same_trigger_id_again() -> None:
    parent = snapshot(SAVEPOINT)
    step(parent)
    recorded = copy.deepcopy(parent)
    first = step(parent)
    again = step(recorded)  # the IN_PROGRESS write was lost: the recorded intent comes back
    assert first.actions == again.actions


def test_the_savepoint_path_of_the_spec_wins_over_the_jobs_directory() -> None:
    parent = snapshot({**SAVEPOINT, "savepoint": {"path": "file:///elsewhere", "formatType": "NATIVE"}})
    step(parent)
    action = step(parent).actions[0]
    assert action.params["target_dir"] == "file:///elsewhere" and action.params["format_type"] == "NATIVE"


def test_already_exists_completes_at_once_without_a_job() -> None:
    parent = snapshot({"savepoint": {"alreadyExists": True, "path": "file:///sp/x"}})
    result = step(parent, target=None)
    assert not result.actions and result.status["state"] == "COMPLETED" and result.status["path"] == "file:///sp/x"
    assert result.status["triggerTimestamp"] == result.status["resultTimestamp"] == "2025-11-24T16:00:00Z"


def test_a_checkpoint_completes_with_its_external_path() -> None:
    parent = snapshot(CHECKPOINT)
    step(parent)
    action = step(parent).actions[0]
    assert action.kind == "trigger_checkpoint" and action.params["checkpoint_type"] == "FULL"
    assert plan_poll(parent).kind == "checkpoint"  # type: ignore[union-attr]
    done = step(parent, poll=SnapshotPoll("COMPLETED", location="file:/cp/chk-3"))
    assert done.status["state"] == "COMPLETED" and done.status["path"] == "file:/cp/chk-3"


def test_a_checkpoint_whose_path_cannot_be_read_completes_with_an_empty_path_and_a_warning() -> None:
    parent = snapshot(CHECKPOINT)
    step(parent)
    step(parent)
    done = step(parent, poll=SnapshotPoll("COMPLETED", location=""))
    assert done.status["state"] == "COMPLETED" and done.status["path"] == ""
    assert [e.reason for e in done.events] == ["CheckpointError"]


def test_a_checkpoint_on_flink_before_1_17_fails() -> None:
    parent = snapshot({**CHECKPOINT, "backoffLimit": 0})
    result = step(parent, target=SnapshotTarget("FlinkDeployment", "job", JOB_ID, True, "job", "v1_16"))
    assert result.status["state"] == "FAILED" and "1.17" in result.status["error"] and not result.actions


# ---------------------------------------------------------------------------------------------- failures
def test_a_failure_is_retried_with_backoff_and_a_new_trigger_id_then_fails_for_good() -> None:
    parent = snapshot({**SAVEPOINT, "backoffLimit": 1})
    step(parent)
    first_id = step(parent).actions[0].params["trigger_id"]
    failed = step(parent, poll=SnapshotPoll("FAILED", failure="IOException: disk full"))
    assert failed.status["state"] == "TRIGGER_PENDING" and failed.status["failures"] == 1
    assert "disk full" in failed.status["error"] and failed.resync_after_seconds == 10
    assert [e.reason for e in failed.events] == ["SavepointError"]
    assert not step(parent, now=NOW_MS + 9_000).actions, "not before the backoff"
    assert step(parent, now=NOW_MS + 10_000).status["flinkSync"]["triggerId"] != first_id
    retry = step(parent, now=NOW_MS + 10_000)
    assert retry.actions[0].params["trigger_id"] != first_id
    final = step(parent, poll=SnapshotPoll("FAILED", failure="IOException: disk full"), now=NOW_MS + 11_000)
    assert final.status["state"] == "FAILED" and final.status["failures"] == 2 and final.resync_after_seconds is None
    assert step(parent, now=NOW_MS + 99_000).status == final.status


def test_a_refused_trigger_call_follows_the_failure_rule() -> None:
    from sync.statesnapshot import trigger_failed
    parent = snapshot({**SAVEPOINT, "backoffLimit": 0})
    step(parent)
    result = sync_snapshot(parent, RUNNING, None, NOW_MS)
    trigger_failed(result, parent, "POST /jobs/{id}/savepoints: HTTP 500: boom", NOW_MS)
    assert result.status["state"] == "FAILED" and "boom" in result.status["error"]
    assert "triggerId" not in result.status, "Apache writes the trigger id only for a call that succeeded"


def test_backoff_doubles_from_ten_seconds() -> None:
    assert [backoff_ms(n) for n in (1, 2, 3, 4)] == [10_000, 20_000, 40_000, 80_000]
    assert backoff_ms(60) == 3_600_000


def test_a_job_that_is_not_running_abandons_the_snapshot_before_and_during_it() -> None:
    before = step(snapshot(SAVEPOINT), target=STOPPED)
    assert before.status["state"] == "ABANDONED" and before.status["path"] is None and not before.actions
    assert "job (FlinkDeployment) is not running" in before.status["error"]
    parent = snapshot(SAVEPOINT)
    step(parent)
    step(parent)
    during = step(parent, target=STOPPED)
    assert during.status["state"] == "ABANDONED" and [e.reason for e in during.events] == ["SnapshotAbandoned"]


def test_a_missing_target_keeps_the_snapshot_pending_with_the_field_named() -> None:
    result = step(snapshot(SAVEPOINT), target=None)
    assert result.status["state"] == "TRIGGER_PENDING" and "spec.jobReference" in result.status["error"]
    assert "default/job was not found" in result.status["error"]


def test_an_unreachable_flink_while_in_progress_is_asked_again() -> None:
    parent = snapshot(SAVEPOINT)
    step(parent)
    step(parent)
    result = step(parent, poll=SnapshotPoll("IN_PROGRESS", unreachable="connection refused"))
    assert result.status["state"] == "IN_PROGRESS" and result.status.get("failures") == 0


# ---------------------------------------------------------------------------------------------- deletion
def completed(spec: dict[str, Any]) -> dict[str, Any]:
    return snapshot(spec, {"state": "COMPLETED", "path": "file:/sp/savepoint-1", "failures": 0})


def test_deleting_a_completed_savepoint_disposes_of_it_through_flink() -> None:
    result = step(completed(SAVEPOINT), finalizing=True)
    assert result.finalized and [(a.kind, a.params) for a in result.actions] == \
        [("dispose_savepoint", {"path": "file:/sp/savepoint-1"})]


@pytest.mark.parametrize("spec", [CHECKPOINT, {**SAVEPOINT, "savepoint": {"disposeOnDelete": False}},
                                  {"savepoint": {"alreadyExists": True, "path": "file:/sp/savepoint-1"}}])
def test_deleting_keeps_the_data_of_checkpoints_kept_savepoints_and_unreferenced_records(spec: dict[str, Any]) -> None:
    result = step(completed(spec), finalizing=True)
    assert result.finalized and not result.actions and not result.events


def test_deleting_while_the_job_is_not_running_releases_with_an_event_saying_the_data_stays() -> None:
    result = step(completed(SAVEPOINT), target=STOPPED, finalizing=True)
    assert result.finalized and not result.actions
    assert [e.reason for e in result.events] == ["CleanupFailed"]
    assert "file:/sp/savepoint-1 was not disposed of and stays" in result.events[0].message


def test_deleting_an_in_progress_savepoint_waits_for_it_then_disposes() -> None:
    parent = snapshot(SAVEPOINT)
    step(parent)
    step(parent)
    waiting = step(parent, poll=SnapshotPoll("IN_PROGRESS"), finalizing=True)
    assert waiting.finalized is False and not waiting.actions
    done = step(parent, poll=SnapshotPoll("COMPLETED", location="file:/sp/s"), finalizing=True)
    assert done.finalized and [a.kind for a in done.actions] == ["dispose_savepoint"]


# ---------------------------------------------------------------------------------------------- a property
answers = st.sampled_from([SnapshotPoll("IN_PROGRESS"), SnapshotPoll("COMPLETED", location="file:/sp/x"),
                           SnapshotPoll("FAILED", failure="boom"), SnapshotPoll("UNKNOWN_TRIGGER"),
                           SnapshotPoll("IN_PROGRESS", unreachable="refused"), None])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polls=st.lists(answers, min_size=1, max_size=30), running=st.lists(st.booleans(), min_size=30, max_size=30),
       limit=st.integers(-1, 3), lose_writes=st.lists(st.booleans(), min_size=30, max_size=30))
def test_any_run_follows_the_states_and_never_sends_an_unrecorded_trigger(polls: list[SnapshotPoll | None],
                                                                        running: list[bool], limit: int,
                                                                        lose_writes: list[bool]) -> None:
    parent = snapshot({**SAVEPOINT, "backoffLimit": limit})
    order = ["TRIGGER_PENDING", "IN_PROGRESS"]
    now = NOW_MS
    for i, poll in enumerate(polls):
        before = copy.deepcopy(parent.get("status") or {})
        target = RUNNING if running[i] else STOPPED
        result = sync_snapshot(parent, target, poll, now)
        state = result.status["state"]
        assert state in order + ["COMPLETED", "FAILED", "ABANDONED"]
        if before.get("state") in ("COMPLETED", "FAILED", "ABANDONED"):
            assert result.status == before and not result.actions, "terminal states are final"
        for action in result.actions:
            assert action.params["trigger_id"] == (before.get("flinkSync") or {}).get("triggerId"), \
                "a trigger id is sent only once it came back from the status"
        failures = result.status.get("failures", 0)
        assert failures >= before.get("failures", 0)
        if state == "FAILED":
            assert 0 <= limit < failures
        json.dumps(result.status)  # the status is JSON
        if not lose_writes[i]:
            parent["status"] = result.status
        now += 15_000


# ---------------------------------------------------------------------------------------------- the hooks
class Kube:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def emit(self, parent: dict[str, Any], events: list[Any]) -> None:
        self.events += [(event.reason, event.message) for event in events]

    def delete_ha_data(self, name: str, namespace: str) -> None:
        raise AssertionError("not for snapshots")


def deployment(name: str = "job", state: str = "RUNNING", version: str = "v1_20") -> dict[str, Any]:
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"flinkVersion": version, "flinkConfiguration": {"state.savepoints.dir": "file:///sp"}},
            "status": {"jobStatus": {"jobId": JOB_ID, "state": state}}}


class Hooks:
    def __init__(self, flink: FakeFlink, clock: list[int] | None = None) -> None:
        self.flink, self.kube, self.urls = flink, Kube(), []  # type: list[str]
        self.clock = clock or [NOW_MS]

        def connect(url: str) -> FakeFlink:
            self.urls.append(url)
            return flink
        app = create_app(Settings(rest_url_template="http://{name}-rest.{namespace}:8081"), flink=connect,
                         clock=lambda: self.clock[0], side_effects=self.kube)
        self.client = app.test_client()

    def call(self, path: str, parent: dict[str, Any], related: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(path, json={"parent": parent, "related": related, "children": {}})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body: dict[str, Any] = answer.get_json()
        parent["status"] = body["status"]
        return body

    def sync(self, parent: dict[str, Any], related: dict[str, Any]) -> dict[str, Any]:
        return self.call("/sync/flinkstatesnapshot", parent, related)


def related(*objects: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for obj in objects:
        out.setdefault(f"{obj['kind']}.flink.apache.org/v1beta1", {})[obj["metadata"]["name"]] = obj
    return out


def test_the_hooks_take_a_savepoint_through_the_flink_port_and_dispose_of_it_on_deletion() -> None:
    flink = FakeFlink("job")
    flink.start_job(JOB_ID)
    hooks, parent, rel = Hooks(flink), snapshot(SAVEPOINT), related(deployment())
    for _ in range(3):
        body = hooks.sync(parent, rel)
    assert body["status"]["state"] == "COMPLETED" and body["status"]["path"] in flink.snapshots
    assert body["children"] == [] and "resyncAfterSeconds" not in body
    assert flink.target_dirs == ["file:///sp"] and len(flink.triggers) == 1
    assert set(hooks.urls) == {"http://job-rest.default:8081"}
    final = hooks.call("/finalize/flinkstatesnapshot", parent, rel)
    assert final["finalized"] is True and flink.disposed == [body["status"]["path"]]


def test_the_hooks_take_a_checkpoint() -> None:
    flink = FakeFlink("job")
    flink.start_job(JOB_ID)
    hooks, parent, rel = Hooks(flink), snapshot(CHECKPOINT), related(deployment())
    for _ in range(3):
        status = hooks.sync(parent, rel)["status"]
    assert status["state"] == "COMPLETED" and status["path"].startswith("file:/cp/") and "/chk-" in status["path"]


def test_a_failed_disposal_keeps_the_resource() -> None:
    flink = FakeFlink("job", down=True)
    hooks, parent = Hooks(flink), completed(SAVEPOINT)
    body = hooks.call("/finalize/flinkstatesnapshot", parent, related(deployment()))
    assert body["finalized"] is False and "savepoint disposal failed" in body["status"]["error"]


def test_a_refused_trigger_is_retried_after_the_backoff_then_failed_with_flinks_error() -> None:
    flink = FakeFlink("job", refuse_triggers=True, failure_message="Savepoint directory not writable")
    flink.start_job(JOB_ID)
    clock = [NOW_MS]
    hooks, parent, rel = Hooks(flink, clock), snapshot({**SAVEPOINT, "backoffLimit": 1}), related(deployment())
    hooks.sync(parent, rel)
    status = hooks.sync(parent, rel)["status"]
    assert status["state"] == "TRIGGER_PENDING" and status["failures"] == 1
    clock[0] += 10_000
    hooks.sync(parent, rel)
    status = hooks.sync(parent, rel)["status"]
    assert status["state"] == "FAILED" and status["failures"] == 2
    assert "Savepoint directory not writable" in status["error"]
    assert [reason for reason, _ in hooks.kube.events] == ["SavepointError", "SavepointError"]


def test_a_session_jobs_snapshot_goes_to_its_session_cluster() -> None:
    flink = FakeFlink("session")
    flink.start_job(JOB_ID)
    session_job = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob",
                   "metadata": {"name": "sj", "namespace": "default"},
                   "spec": {"deploymentName": "session",
                            "flinkConfiguration": {"state.savepoints.dir": "file:///sj-sp"}},
                   "status": {"jobStatus": {"jobId": JOB_ID, "state": "RUNNING"}}}
    cluster = deployment("session")
    hooks = Hooks(flink)
    parent = snapshot({"jobReference": {"kind": "FlinkSessionJob", "name": "sj"}, "savepoint": {}})
    for _ in range(3):
        status = hooks.sync(parent, related(cluster, session_job))["status"]
    assert status["state"] == "COMPLETED" and flink.target_dirs == ["file:///sj-sp"]
    assert set(hooks.urls) == {"http://session-rest.default:8081"}


def test_customize_relates_the_referenced_job() -> None:
    client = Hooks(FakeFlink("x")).client

    def rules(spec: dict[str, Any]) -> Any:
        answer = client.post("/customize/flinkstatesnapshot", json={"parent": snapshot(spec)})
        assert answer.status_code == 200
        return answer.get_json()["relatedResources"]
    assert rules(SAVEPOINT) == [{"apiVersion": "flink.apache.org/v1beta1", "resource": "flinkdeployments",
                                 "names": ["job"]}]
    assert [r["resource"] for r in rules({"jobReference": {"kind": "FlinkSessionJob", "name": "sj"},
                                          "checkpoint": {}})] == ["flinksessionjobs", "flinkdeployments"]
    assert rules({"savepoint": {"alreadyExists": True, "path": "/x"}}) == []


def test_the_hooks_refuse_another_kind() -> None:
    client = Hooks(FakeFlink("x")).client
    answer = client.post("/sync/flinkstatesnapshot", json={"parent": {**deployment(), "kind": "FlinkDeployment"}})
    assert answer.status_code == 400 and "parent.kind" in answer.get_json()["error"]


@pytest.mark.parametrize("path", sorted(p.name for p in (EXAMPLES / "snapshot").glob("*.yaml")))
def test_every_apache_snapshot_example_completes_against_a_running_job(path: str) -> None:
    flink = FakeFlink("example-deployment")
    flink.start_job(JOB_ID)
    hooks = Hooks(flink)
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "snapshot" / path).read_text()) if d]
    for doc in (d for d in docs if d["kind"] == "FlinkStateSnapshot"):
        parent = snapshot(doc["spec"], name=doc["metadata"]["name"])
        for _ in range(3):
            status = hooks.sync(parent, related(deployment("example-deployment")))["status"]
        assert status["state"] == "COMPLETED", (path, status)
