"""A resync that would change nothing is answered from its record (sync/settled.py), and the time is followed
through every comparison a sync makes with it (sync/clock.py).

The property test is differential: in a simulated world whose children carry Metacontroller's last-applied
annotation, every sync is answered twice on the same inputs — with records kept (as the server does) and by the
whole sync with none — and the two answers must agree, but for the record itself. Random edits, faults, periodic
savepoints and time steps of up to ten minutes cross the thresholds the sync compares the time with."""
from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import settled
from sync.clock import NEVER, Now, Window
from sync.deployment import sync_deployment
from sync.model import SyncResult
from sync.records import without_settled

from .helpers import SETTINGS
from .metacontroller import LAST_APPLIED
from .sim import World
from .test_failures_status import jm_pod, tm_pod
from .test_state_machine import BASE
from .test_state_machine_properties import apply_op

KEPT = dataclasses.replace(SETTINGS, memo_key="test-core")


# ------------------------------------------------------------------------------------------------- the clock
class TestNow:
    def test_a_comparison_bounds_the_window_on_the_side_it_decided(self):
        now = Now.start(1_000)
        assert now >= 500 and now < 2_000 and not now > 1_500 and now <= 1_000
        window = now.window
        assert (window.low, window.high, window.escaped) == (500, 1_001, None)
        assert window.holds_at(500) and window.holds_at(1_000) and not window.holds_at(1_001)
        assert not window.holds_at(499)

    def test_the_time_shifted_by_a_number_still_reports(self):
        now = Now.start(10_000)
        since = 4_000
        assert not now - since >= 7_000      # the timeout is reached at 11,000
        assert now + 500 < 20_000            # ⇔ now < 19,500
        assert 12_000 > now                  # reflected: now < 12,000
        assert (now.window.low, now.window.high) == (-NEVER, 11_000)

    def test_the_time_minus_itself_is_a_constant(self):
        now = Now.start(9_000)
        since = now
        assert now - since == 0 and type(now - since) is int
        assert (now + 5) - now == 5
        assert now.window.escaped is None

    def test_equality_holds_for_one_millisecond(self):
        now = Now.start(7)
        assert now == 7 and now != 8 and not (now == 6.5)
        assert (now.window.low, now.window.high) == (7, 8)

    def test_fractions_are_rounded_to_whole_milliseconds(self):
        now = Now.start(1_000)
        assert now < 1_000.5
        assert now.window.high == 1_001

    @pytest.mark.parametrize("use", [lambda n: n / 1000, str, hash, lambda n: f"{n}", lambda n: 5_000 - n,
                                     lambda n: n * 2, int, lambda n: n // 60, float, lambda n: {n: 1}])
    def test_any_other_use_escapes(self, use):
        now = Now.start(1_000)
        use(now)
        assert now.window.escaped is not None
        assert not now.window.holds_at(1_000)

    def test_it_is_the_number_it_stands_for(self):
        now = Now.start(1_700_000_000_123)
        assert json.dumps({"t": now}) == '{"t": 1700000000123}'
        assert type(copy.deepcopy(now)) is int and copy.deepcopy(now) == 1_700_000_000_123
        assert isinstance(now, int) and bool(now)

    def test_comparing_with_none_or_text_is_never_true_and_stays_followed(self):
        now = Now.start(5)
        assert now != None and now != "5"  # noqa: E711
        assert now.window.escaped is None


def test_a_window_is_the_intersection_of_its_comparisons():
    window = Window(100)
    assert window.before(150) and not window.before(50) and window.before(120)
    assert (window.low, window.high) == (50, 120)


# ------------------------------------------------------------------------------------------------- the record
class SettledWorld(World):
    """The simulated world with Metacontroller's last-applied annotation on every observed child, and each sync
    answered twice: with records kept (the answer the world goes on with) and by the whole sync."""

    hits = 0
    syncs = 0

    def request_children(self) -> dict[str, dict[str, Any]]:
        groups = super().request_children()
        for objects in groups.values():
            for obj in objects.values():
                applied = self.children[(obj["kind"], obj["metadata"]["name"])]
                obj.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
                    applied, sort_keys=True)
        return groups

    def sync(self, finalizing: bool = False) -> SyncResult:
        observation = self._observe()
        children = self.request_children()
        parent = copy.deepcopy(self.parent)
        key = settled.digest(parent, children, observation, KEPT, None, self.pods)
        hit = key is not None and settled.answer(parent, children, key, self.now_ms) is not None
        kept = sync_deployment(copy.deepcopy(parent), copy.deepcopy(children), observation, self.now_ms, KEPT,
                               finalizing=finalizing, pods=copy.deepcopy(self.pods))
        whole = sync_deployment(copy.deepcopy(parent), copy.deepcopy(children), observation, self.now_ms, SETTINGS,
                                finalizing=finalizing, pods=copy.deepcopy(self.pods))
        assert _comparable(kept) == _comparable(whole), f"kept answer differs (hit={hit}): {self.summary()}"
        assert not _holds_the_clock([kept.status, kept.children, [a.params for a in kept.actions]]), \
            "an answer holds a Now (sync/clock.py) instead of a number"
        SettledWorld.syncs += 1
        SettledWorld.hits += hit
        return self.apply(kept)  # the world goes on with the kept answer, as the server's would


def _holds_the_clock(value: Any) -> bool:
    if isinstance(value, Now):
        return True
    if isinstance(value, dict):
        return any(_holds_the_clock(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_the_clock(v) for v in value)
    return False


def _comparable(result: SyncResult) -> dict[str, Any]:
    status = without_settled(copy.deepcopy(result.status))
    children = sorted(json.dumps(c, sort_keys=True) for c in result.children)
    return {"status": json.loads(json.dumps(status)), "children": children, "actions": result.actions,
            "events": result.events, "resync": result.resync_after_seconds, "finalized": result.finalized}


def _settled_world(**config: str) -> SettledWorld:
    parent = copy.deepcopy(BASE)
    parent["spec"]["flinkConfiguration"].update(config)
    world = SettledWorld(parent)
    world.run_until(lambda w: w.lifecycle() == "STABLE" and w.status.get("jobStatus", {}).get("state") == "RUNNING")
    return world


def _quiet_world() -> tuple[SettledWorld, dict[str, Any], Any, str]:
    """A settled world after a few quiet resyncs, with the inputs of its next sync and their digest."""
    w = _settled_world()
    for _ in range(3):
        w.tick()
        w.sync()
    children, observation = w.request_children(), w._observe()
    key = settled.digest(w.parent, children, observation, KEPT, None, w.pods)
    assert key is not None
    return w, children, observation, key


def test_a_stable_deployment_settles_with_one_write_and_is_then_answered_from_its_record():
    w = _settled_world()
    statuses = []
    for _ in range(5):
        w.tick()
        statuses.append(json.dumps(w.sync().status, sort_keys=True))
    assert "settled" in w.status["flinkSync"]
    assert len(set(statuses)) <= 2 and statuses[-1] == statuses[-2] == statuses[-3]
    children = w.request_children()
    key = settled.digest(w.parent, children, w._observe(), KEPT, None, w.pods)
    assert key == w.status["flinkSync"]["settled"]["digest"]
    assert settled.answer(w.parent, children, key, w.now_ms) is not None


def test_any_change_of_the_inputs_runs_the_whole_sync():
    w, children, observation, key = _quiet_world()
    edited = copy.deepcopy(w.parent)
    edited["spec"]["job"]["parallelism"] = 3
    assert settled.digest(edited, children, observation, KEPT, None, w.pods) != key
    assert settled.digest(w.parent, children, dataclasses.replace(observation, taskmanagers=0), KEPT, None,
                          w.pods) != key
    assert settled.digest(w.parent, children, observation, dataclasses.replace(KEPT, memo_key="other"), None,
                          w.pods) != key
    assert settled.digest(w.parent, children, observation, SETTINGS, None, w.pods) is None  # no memo_key: never
    moved = copy.deepcopy(w.parent)
    moved["metadata"]["resourceVersion"] = "999"   # what every status write changes is not an input
    assert settled.digest(moved, children, observation, KEPT, None, w.pods) == key


def test_a_child_without_its_last_applied_configuration_is_never_answered_from_a_record():
    w, children, _, key = _quiet_world()
    assert settled.answer(w.parent, children, key, w.now_ms) is not None
    first = next(iter(children["Deployment.apps/v1"].values()))
    del first["metadata"]["annotations"][LAST_APPLIED]
    assert settled.answer(w.parent, children, key, w.now_ms) is None


def test_a_periodic_savepoint_is_due_at_the_end_of_the_window():
    w = _settled_world(**{"kubernetes.operator.periodic.savepoint.interval": "5 min"})
    before, hits = len(w.savepoints), SettledWorld.hits
    for _ in range(40):
        w.now_ms += 29_000
        w.tick()
        w.sync()
    # the differential check ran on every sync: records were kept between savepoints, and held only until the
    # next one was due (20 minutes: 4 savepoints)
    assert len(w.savepoints) - before >= 3, w.summary()
    assert SettledWorld.hits - hits >= 10


def test_a_pod_cause_is_reported_when_it_outlasts_the_readiness_timeout():
    """The readiness timeout (5 min) is a comparison with the time: records hold until it, and not past it."""
    w = _settled_world()
    for _ in range(3):
        w.tick()
        w.sync()
    w.pods = [jm_pod(ready=True), tm_pod(scheduled="0/1 nodes are available: 1 Insufficient cpu.")]
    reported_at = None
    for step in range(30):
        w.now_ms += 20_000
        result = w.sync()
        if any(e.reason == "Unschedulable" for e in result.events):
            reported_at = step
    assert reported_at is not None and 13 <= reported_at <= 16, reported_at  # 5 min of 20 s steps


OPS = st.sampled_from(["parallelism", "suspend", "resume", "restart", "savepoint_nonce", "image", "invalid",
                       "flink_down", "flink_up", "lose_writes", "keep_writes", "forget_triggers", "tick", "tick",
                       "wait", "wait", "wait", "unschedulable", "healthy_pods"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["savepoint", "last-state", "stateless"]), ops=st.lists(OPS, min_size=1, max_size=20),
       waits=st.lists(st.integers(1, 600_000), min_size=20, max_size=20),
       periodic=st.sampled_from([None, "2 min", "*/30 * * * * ?"]))
def test_kept_answers_are_the_whole_syncs_answers(mode, ops, waits, periodic):
    config = {"kubernetes.operator.periodic.savepoint.interval": periodic} if periodic else {}
    parent = copy.deepcopy(BASE)
    parent["spec"]["job"]["upgradeMode"] = mode
    parent["spec"]["flinkConfiguration"].update(config)
    w = SettledWorld(parent)
    w.run_until(lambda w: w.lifecycle() == "STABLE")
    for index, op in enumerate(ops):
        apply_op(w, op, index, 1 + index % 4)
        if op == "wait":
            w.now_ms += waits[index]
        elif op == "unschedulable":
            w.pods = [jm_pod(ready=True), tm_pod(scheduled="0/1 nodes are available: 1 Insufficient cpu.")]
        elif op == "healthy_pods":
            w.pods = [jm_pod(ready=True), tm_pod(ready=True)]
        w.tick()
        w.sync()
        w.tick()
        w.sync()


def test_the_property_test_answered_from_records():
    """The differential test above is not vacuous: its worlds were answered from records."""
    before = SettledWorld.hits
    w = _settled_world()
    for _ in range(6):
        w.tick()
        w.sync()
    assert SettledWorld.hits - before >= 3


@pytest.mark.parametrize("record", [{"until": 5}, {"digest": 3}, {"digest": "a", "since": True},
                                    {"digest": "a", "resyncMs": 1.5}, "digest", None])
def test_a_record_this_version_cannot_read_runs_the_whole_sync(record):
    from sync.records import settled_of
    assert settled_of({"flinkSync": {"settled": record}}) is None
    assert settled_of({"flinkSync": {"settled": {"digest": "a", "until": 5, "resyncMs": 60_000}}}) is not None
