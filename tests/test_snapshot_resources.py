"""flink-sync's own savepoints as FlinkStateSnapshot children (sync/snapshot_resources.py): names and labels as
Apache's, records that are never triggered again, the path in status before the child, Apache's history retention
by leaving out, the key off. Unit and property tests of the pure module, then the FlinkDeployment and
FlinkSessionJob state machines in the simulated world (tests/sim.py)."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from sync import snapshot_resources as sr
from sync.model import SyncResult
from sync.sessionjob import sync_session_job
from sync.spec import deserialize_reconciled
from sync.statesnapshot import parse_snapshot_spec, sync_snapshot

from .test_sessionjob_core import JOB as SESSION_JOB
from .test_sessionjob_core import SESSION, SETTINGS, Session, run
from .test_state_machine import deployed, stable, world

JOB = sr.JobRef("FlinkDeployment", "wc", "flink")
GROUP = "FlinkStateSnapshot.flink.apache.org/v1beta1"
HOUR = 3_600_000


def entry(ts: int, trigger: str = "PERIODIC", location: str | None = None) -> dict:
    return {"timeStamp": ts, "location": location or f"file:/sp/savepoint-{ts}", "triggerType": trigger,
            "formatType": "CANONICAL", "triggerNonce": None}


def status_with(history: list[dict]) -> dict:
    return {"jobStatus": {"savepointInfo": {"savepointHistory": copy.deepcopy(history)}}}


def children_of(history: list[dict], config: dict | None = {}, now: int = 10 * HOUR,  # noqa: B006 - never changed
                observed: dict | None = None, incoming: list[dict] | None = None) -> tuple[list[dict], dict, bool]:
    status = status_with(history)
    old = status_with(history if incoming is None else incoming)
    children, waiting = sr.snapshot_children(JOB, old, status, observed, config, now, checkpoint_asked_at=None)
    return children, status, waiting


def names(children: list[dict]) -> list[str]:
    return sorted(c["metadata"]["name"] for c in children)


# ---------------------------------------------------------------------------------------------- one resource
def test_a_savepoint_is_recorded_with_apaches_name_labels_and_an_existing_path():
    [child], _, _ = children_of([entry(1_700_000_000_123, "MANUAL")])
    assert child["apiVersion"] == "flink.apache.org/v1beta1" and child["kind"] == "FlinkStateSnapshot"
    assert child["metadata"]["name"] == "wc-savepoint-manual-1700000000123"
    assert child["metadata"]["namespace"] == "flink"
    assert child["metadata"]["labels"] == {"snapshot.type": "SAVEPOINT", "snapshot.trigger-type": "MANUAL",
                                           "snapshot.state": "COMPLETED", "job-reference.kind": "FlinkDeployment",
                                           "job-reference.name": "wc"}
    assert child["spec"] == {"jobReference": {"kind": "FlinkDeployment", "name": "wc"},
                             "savepoint": {"path": "file:/sp/savepoint-1700000000123", "formatType": "CANONICAL",
                                           "disposeOnDelete": False, "alreadyExists": True}}


def test_the_snapshot_controller_completes_the_record_without_triggering_anything():
    [child], _, _ = children_of([entry(5, "UPGRADE")])
    spec = parse_snapshot_spec(child["spec"])
    assert spec.savepoint is not None and spec.savepoint.alreadyExists
    result = sync_snapshot({**child, "metadata": {**child["metadata"], "uid": "u"}}, None, None, 1_000)
    assert result.status["state"] == "COMPLETED" and result.status["path"] == "file:/sp/savepoint-5"
    assert result.actions == []


def test_dispose_on_delete_follows_the_operator_key():
    [child], _, _ = children_of([entry(5)], {"kubernetes.operator.savepoint.dispose-on-delete": "true"})
    assert child["spec"]["savepoint"]["disposeOnDelete"] is True


def test_a_very_long_job_name_still_gives_a_valid_stable_name():
    job = sr.JobRef("FlinkDeployment", "j" * 250, "ns")
    name = sr.snapshot_name(job.name, "PERIODIC", 1_700_000_000_000)
    assert len(name) <= 253 and name == sr.snapshot_name(job.name, "PERIODIC", 1_700_000_000_000)


def test_unusable_history_entries_are_passed_over():
    history = [{"location": 5}, {"timeStamp": "x", "location": "file:/a"}, "junk", entry(7)]
    children, _, _ = children_of(history)  # type: ignore[arg-type]
    assert names(children) == ["wc-savepoint-periodic-7"]


# ---------------------------------------------------------------------------------------------- status first
def test_an_entry_recorded_in_this_sync_becomes_a_child_on_the_next():
    children, _, waiting = children_of([entry(1), entry(2)], incoming=[entry(1)])
    assert names(children) == ["wc-savepoint-periodic-1"] and waiting
    result = sr.attach(SyncResult(status=status_with([entry(1), entry(2)]), children=[], resync_after_seconds=60),
                       JOB, status_with([entry(1)]), None, {}, 10 * HOUR, 5.0, checkpoint_asked_at=None)
    assert result.resync_after_seconds == 5.0, "the next sync comes soon to create it"


# ---------------------------------------------------------------------------------------------- retention
def test_max_count_leaves_out_the_oldest_periodic_and_upgrade_ones_never_manual():
    history = [entry(1, "MANUAL"), entry(2, "UPGRADE"), entry(3), entry(4, "MANUAL"), entry(5), entry(6)]
    children, status, _ = children_of(history, {"kubernetes.operator.savepoint.history.max.count": "2"}, now=7)
    assert names(children) == ["wc-savepoint-manual-1", "wc-savepoint-manual-4", "wc-savepoint-periodic-5",
                               "wc-savepoint-periodic-6"]
    kept = status["jobStatus"]["savepointInfo"]["savepointHistory"]
    assert [e["timeStamp"] for e in kept] == [1, 4, 5, 6], "the history and the children agree"


def test_max_age_leaves_out_old_ones_but_always_keeps_the_newest():
    history = [entry(1), entry(2, "UPGRADE")]
    children, _, _ = children_of(history, {"kubernetes.operator.savepoint.history.max.age": "1 h"}, now=10 * HOUR)
    assert names(children) == ["wc-savepoint-upgrade-2"]


def test_the_thresholds_cap_the_limits_and_cleanup_can_be_turned_off():
    history = [entry(t) for t in range(1, 6)]
    capped, _, _ = children_of(history, {"kubernetes.operator.savepoint.history.max.count": "4",
                                         "kubernetes.operator.savepoint.history.max.count.threshold": "2"}, now=9)
    assert names(capped) == ["wc-savepoint-periodic-4", "wc-savepoint-periodic-5"]
    off, _, _ = children_of(history, {"kubernetes.operator.savepoint.history.max.count": "1",
                                      "kubernetes.operator.savepoint.cleanup.enabled": "false"}, now=9)
    assert len(off) == 5


def test_a_resource_a_user_deletes_leaves_the_history_and_is_not_created_again():
    observed = {GROUP: {"wc-savepoint-manual-1": {"metadata": {"name": "wc-savepoint-manual-1",
                                                               "deletionTimestamp": "2026-01-01T00:00:00Z"}}}}
    children, status, _ = children_of([entry(1, "MANUAL"), entry(2, "MANUAL")], observed=observed)
    assert names(children) == ["wc-savepoint-manual-2"]
    assert [e["timeStamp"] for e in status["jobStatus"]["savepointInfo"]["savepointHistory"]] == [2]


# ---------------------------------------------------------------------------------------------- key off, unknown
def test_with_the_key_off_nothing_is_created_and_existing_ones_are_kept_as_they_are():
    observed = {GROUP: {"old": {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot",
                                "metadata": {"name": "old", "namespace": "flink", "uid": "x", "labels": {"a": "b"},
                                             "annotations": {"metacontroller.k8s.io/last-applied-configuration": "{}"}},
                                "spec": {"savepoint": {"path": "p", "alreadyExists": True}},
                                "status": {"state": "COMPLETED"}}}}
    children, status, waiting = children_of([entry(1), entry(2)], {"kubernetes.operator.snapshot.resource.enabled":
                                                                  "false"}, observed=observed)
    assert children == [{"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot",
                         "metadata": {"name": "old", "namespace": "flink", "labels": {"a": "b"}},
                         "spec": {"savepoint": {"path": "p", "alreadyExists": True}}}]
    assert len(status["jobStatus"]["savepointInfo"]["savepointHistory"]) == 2 and not waiting
    unknown, _, _ = children_of([entry(1)], None, observed=observed)
    assert unknown == children, "a sync that cannot read its configuration decides nothing"


def test_a_finalized_answer_has_no_children():
    result = sr.attach(SyncResult(status=status_with([entry(1)]), children=[], finalized=True), JOB,
                       status_with([entry(1)]), None, {}, 5, 5.0, checkpoint_asked_at=None)
    assert result.children == []


# ---------------------------------------------------------------------------------------------- properties
entries = st.lists(st.tuples(st.integers(0, 48 * HOUR), st.sampled_from(["MANUAL", "PERIODIC", "UPGRADE"])),
                   max_size=12)
configs = st.fixed_dictionaries({}, optional={
    "kubernetes.operator.savepoint.history.max.count": st.integers(0, 5).map(str),
    "kubernetes.operator.savepoint.history.max.age": st.sampled_from(["1 h", "12 h", "24 h"])})


def _history(raw: list[tuple[int, str]]) -> list[dict]:
    seen, history = set(), []
    for ts, trigger in sorted(raw):
        if ts not in seen:
            seen.add(ts)
            history.append(entry(ts, trigger))
    return history


@settings(max_examples=300, deadline=None)
@given(entries, configs, st.integers(0, 72 * HOUR))
def test_retention_keeps_manual_and_the_newest_and_is_stable(raw, config, now):
    history = _history(raw)
    picked = sr.expired(history, config, now)
    assert all(e["triggerType"] != "MANUAL" for e in picked)
    cleaned = [e for e in history if e["triggerType"] != "MANUAL"]
    if cleaned:
        assert cleaned[-1] not in picked, "the newest is always kept"
    kept = [e for e in history if e not in picked]
    assert sr.expired(kept, config, now) == [], "a second pass (a lost status write) picks nothing more"


@settings(max_examples=300, deadline=None)
@given(entries, entries, configs, st.integers(0, 72 * HOUR), st.integers(0, 24 * HOUR))
def test_a_picked_entry_stays_picked_as_entries_come_and_time_passes(raw, more, config, now, later):
    """So a lost status write never brings a deleted (and disposed of) snapshot back."""
    history = _history(raw)
    newest = max((e["timeStamp"] for e in history), default=0)
    grown = history + [e for e in _history([(newest + 1 + ts, t) for ts, t in more])]
    picked = {e["timeStamp"] for e in sr.expired(history, config, now)}
    assert picked <= {e["timeStamp"] for e in sr.expired(grown, config, now + later)}


@settings(max_examples=200, deadline=None)
@given(entries, entries, configs, st.integers(0, 72 * HOUR))
def test_a_child_is_only_ever_made_from_an_entry_the_incoming_status_holds(raw, recorded_now, config, now):
    incoming = _history(raw)
    newest = max((e["timeStamp"] for e in incoming), default=0)
    current = incoming + _history([(newest + 1 + ts, t) for ts, t in recorded_now])
    children, _, _ = children_of(current, config, now, incoming=incoming)
    durable = {e["location"] for e in incoming}
    assert all(c["spec"]["savepoint"]["path"] in durable for c in children)
    assert len(names(children)) == len(set(names(children)))


# ---------------------------------------------------------------------------------------------- the state machines
def test_periodic_savepoints_become_resources_and_the_history_limits_delete_the_old_ones():
    w = deployed(world("savepoint", **{"kubernetes.operator.periodic.savepoint.interval": "3 s",
                                       "kubernetes.operator.savepoint.history.max.count": "2",
                                       "kubernetes.operator.savepoint.dispose-on-delete": "true"}))
    made: set[str] = set()
    for _ in range(20):
        w.tick()
        w.sync()
        made |= set(w.snapshots())
    w.sync()  # the savepoint recorded last becomes a resource once its record is durable
    history = w.status["jobStatus"]["savepointInfo"]["savepointHistory"]
    assert len(history) == 2 and len(made) > 2
    assert sorted(w.snapshots()) == sorted(f"wc-savepoint-periodic-{e['timeStamp']}" for e in history)
    assert all(s["spec"]["savepoint"]["disposeOnDelete"] for s in w.snapshots().values())
    assert not [a for r in w.history for a in r.actions if a.kind == "dispose_savepoint"], \
        "the resources' finalize disposes of the data, not the job's sync"


def test_manual_and_upgrade_savepoints_become_resources_and_the_restore_uses_the_upgrade_one():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(savepointTriggerNonce=1))
    w.run_until(lambda w: any("manual" in name for name in w.snapshots()))
    w.edit(lambda s: s["job"].update(parallelism=4))
    w.run_until(lambda w: stable(w) and any("upgrade" in name for name in w.snapshots()), limit=80)
    upgrade = next(s for name, s in w.snapshots().items() if "upgrade" in name)
    assert upgrade["metadata"]["labels"]["snapshot.trigger-type"] == "UPGRADE"
    path = upgrade["spec"]["savepoint"]["path"]
    assert w.status["jobStatus"]["upgradeSavepointPath"] == path
    assert w.running_job().restored_from == path


def test_savepoints_survive_lost_status_writes_without_a_child_the_status_forgot():
    w = deployed(world("savepoint", **{"kubernetes.operator.periodic.savepoint.interval": "3 s"}))
    for index in range(24):
        w.lose_status_writes = index % 3 == 1
        before = {e["location"] for e in (w.status["jobStatus"].get("savepointInfo") or {}).get("savepointHistory", [])}
        w.tick()
        result = w.sync()
        made = {c["spec"]["savepoint"]["path"] for c in result.children if c["kind"] == "FlinkStateSnapshot"}
        assert made <= before, "a snapshot child only for a savepoint the incoming status holds"
    w.lose_status_writes = False
    w.run_until(lambda w: len(w.snapshots()) >= 2)


# ---------------------------------------------------------------------------------------------- checkpoint nonce
def test_a_checkpoint_nonce_becomes_a_checkpoint_resource_the_snapshot_controller_takes():
    w = deployed(world("savepoint"))
    w.edit(lambda s: s["job"].update(checkpointTriggerNonce=7))
    first = w.sync()
    asked_at = w.status["flinkSync"]["checkpointSnapshotAt"]
    assert not [a for a in first.actions if a.kind == "trigger_checkpoint"], "the resource triggers it, not the job"
    assert not w.snapshots(), "created once the record is durable"
    spec, _ = deserialize_reconciled(w.status["reconciliationStatus"]["lastReconciledSpec"])
    assert spec["job"]["checkpointTriggerNonce"] == 7
    w.sync()
    [(name, child)] = w.snapshots().items()
    assert name == f"wc-checkpoint-manual-{asked_at}"
    assert child["spec"] == {"jobReference": {"kind": "FlinkDeployment", "name": "wc"}, "checkpoint": {}}
    assert child["metadata"]["labels"] == {"snapshot.type": "CHECKPOINT", "snapshot.trigger-type": "MANUAL",
                                           "job-reference.kind": "FlinkDeployment", "job-reference.name": "wc"}
    w.edit(lambda s: s["job"].update(checkpointTriggerNonce=8))
    for _ in range(3):
        w.tick()
        w.sync()
    assert len(w.snapshots()) == 2, "an observed manual checkpoint resource is kept when the next one is asked for"


def test_a_checkpoint_nonce_without_snapshot_resources_or_before_flink_1_17_triggers_directly():
    for config, version in (({"kubernetes.operator.snapshot.resource.enabled": "false"}, "v1_20"), ({}, "v1_16")):
        w = world("savepoint", **config)
        w.parent["spec"]["flinkVersion"] = version
        w.parent["spec"]["image"] = "flink:1.16" if version == "v1_16" else "flink:1.20"
        deployed(w)
        w.edit(lambda s: s["job"].update(checkpointTriggerNonce=1))
        result = w.sync()
        assert [a.kind for a in result.actions if a.kind == "trigger_checkpoint"] == ["trigger_checkpoint"], version
        assert "checkpointSnapshotAt" not in w.status.get("flinkSync", {})


def test_a_session_jobs_savepoints_are_its_children_and_the_key_off_keeps_what_exists():
    session, parent = Session(), copy.deepcopy(SESSION_JOB)
    run(session, parent, syncs=4)
    parent["spec"]["job"]["savepointTriggerNonce"] = 5
    run(session, parent, syncs=3)
    result = run(session, parent)
    [child] = result.children
    assert child["metadata"]["name"].startswith(f"{parent['metadata']['name']}-savepoint-manual-")
    assert child["spec"]["jobReference"] == {"kind": "FlinkSessionJob", "name": parent["metadata"]["name"]}
    assert child["metadata"]["labels"]["job-reference.kind"] == "FlinkSessionJob"
    observed = {GROUP: {child["metadata"]["name"]: child}}
    parent["spec"]["flinkConfiguration"] = {"kubernetes.operator.snapshot.resource.enabled": "false"}
    off = sync_session_job(copy.deepcopy(parent), SESSION, session.observe(parent), session.now, SETTINGS,
                           children=observed)
    assert off.children == [sr.kept_as_is(child)]
