"""The autoscaler's decision (sync/autoscaler), against cases computed by hand, the worked examples of Apache's
autoscaler (the §4.10 example and the test plan's scale-up of the reference notes, which follow Apache's code), and
properties: bounds always hold, a constant load does not oscillate, the state survives its ConfigMap."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.autoscaler import decide, evaluate, realize, records, scaler
from sync.autoscaler.config import AutoscalerConfig, AutoscalerConfigError, read_config
from sync.autoscaler.records import (
    AutoscalerState,
    JobMetrics,
    Sample,
    ScalingEntry,
    VertexMetrics,
    VertexSample,
)
from sync.flinkconf import flatten

S, W, K = "a" * 32, "b" * 32, "c" * 32
MIN = 60_000


# ------------------------------------------------------------------ configuration


def test_defaults_are_apaches() -> None:
    config = read_config({})
    assert config == replace(AutoscalerConfig(), utilization_min=0.7 - 0.3)  # computed, as Apache computes it
    assert (config.metrics_window_ms, config.stabilization_ms) == (15 * MIN, 5 * MIN)
    assert (config.target_utilization, config.utilization_max) == (0.7, 1.0)
    assert math.isclose(config.utilization_min, 0.4)
    assert (config.scale_down_interval_ms, config.catch_up_ms, config.restart_ms) == (60 * MIN, 30 * MIN, 5 * MIN)
    assert (config.min_parallelism, config.max_parallelism) == (1, 200)
    assert (config.scale_up_max_factor, config.scale_down_max_factor) == (100000.0, 0.6)
    assert (config.history_max_count, config.alignment_mode, config.busy_time_aggregator) == (3, "BALANCED", "MAX")


def test_old_prefix_and_deprecated_names_are_read_after_the_current_ones() -> None:
    config = read_config({"kubernetes.operator.job.autoscaler.enabled": "true",
                          "job.autoscaler.target.utilization": "0.6",
                          "kubernetes.operator.job.autoscaler.scale-up.grace-period": "10 min",
                          "job.autoscaler.metrics.window": "3m",
                          "kubernetes.operator.job.autoscaler.metrics.window": "9m"})
    assert config.enabled and config.target_utilization == 0.6
    assert config.scale_down_interval_ms == 10 * MIN and config.metrics_window_ms == 3 * MIN
    assert math.isclose(config.utilization_max, 0.9) and math.isclose(config.utilization_min, 0.3)


def test_apaches_nested_example_configuration() -> None:
    nested = {"job.autoscaler": {"enabled": True, "stabilization.interval": "1m", "metrics.window": "15m",
                                 "utilization.target": 0.5, "target.utilization.boundary": 0.3}}
    config = read_config(flatten(nested))
    assert config.enabled and config.stabilization_ms == MIN and config.metrics_window_ms == 15 * MIN
    assert config.target_utilization == 0.5
    assert math.isclose(config.utilization_max, 0.8) and math.isclose(config.utilization_min, 0.2)


@pytest.mark.parametrize("key, value, message", [
    ("job.autoscaler.utilization.target", "1.5", "job.autoscaler.utilization.target is invalid"),
    ("job.autoscaler.scale-down.max-factor", "-1", "job.autoscaler.scale-down.max-factor is invalid"),
    ("job.autoscaler.metrics.window", "soon", "Invalid value in the autoscaler config job.autoscaler.metrics.window"),
    ("kubernetes.operator.job.autoscaler.enabled", "yes",
     "Invalid value in the autoscaler config kubernetes.operator.job.autoscaler.enabled"),
    ("job.autoscaler.utilization.max", "0.5", "job.autoscaler.utilization.max is invalid"),
    ("job.autoscaler.vertex.max-parallelism", "0", "job.autoscaler.vertex.max-parallelism is invalid"),
    ("job.autoscaler.scaling.parallelism-alignment.mode", "MOST", "scaling.parallelism-alignment.mode"),
])
def test_a_bad_value_names_its_key(key: str, value: str, message: str) -> None:
    with pytest.raises(AutoscalerConfigError, match=message.replace(".", r"\.")):
        read_config({key: value})


def test_the_window_may_not_be_shorter_than_the_reconcile_interval() -> None:
    with pytest.raises(AutoscalerConfigError, match="metrics.window"):
        read_config({"job.autoscaler.enabled": "true", "job.autoscaler.metrics.window": "30s"}, 60_000)
    read_config({"job.autoscaler.metrics.window": "30s"}, 60_000)  # only checked when enabled


# ------------------------------------------------------------------ the worked example (three vertices)


def _three_vertices(parallelism: tuple[int, int, int] = (2, 4, 2)) -> JobMetrics:
    return JobMetrics("f" * 32, "RUNNING", running_since_ms=-100 * MIN, all_tasks_running=True, io_complete=True,
                      vertices=(VertexMetrics(S, parallelism[0], 128),
                                VertexMetrics(W, parallelism[1], 120, inputs=((S, "HASH"),)),
                                VertexMetrics(K, parallelism[2], 128, inputs=((W, "REBALANCE"),))))


def _example_samples() -> tuple[Sample, ...]:
    """Two samples a minute apart: S reads 9000/s with a backlog of 180,000 growing 200/s and is 45 % busy;
    W reads 9000/s, writes 3000/s and is always busy; K reads 3000/s at 30 % busy."""
    first = {S: VertexSample(records_in=0, records_out=0, load=0.45, lag=168_000),
             W: VertexSample(records_in=0, records_out=0, load=1.0, in_per_second=9000),
             K: VertexSample(records_in=0, records_out=0, load=0.3, in_per_second=3000)}
    second = {S: VertexSample(records_in=540_000, records_out=540_000, load=0.45, lag=180_000),
              W: VertexSample(records_in=540_000, records_out=180_000, load=1.0, in_per_second=9000),
              K: VertexSample(records_in=180_000, records_out=0, load=0.3, in_per_second=3000)}
    return Sample(0, first), Sample(MIN, second)


def test_the_worked_example_rates() -> None:
    rates = evaluate.evaluate(_example_samples(), _three_vertices(), AutoscalerConfig())
    s, w, k = rates[S], rates[W], rates[K]
    assert (s.target_rate, s.catch_up_rate, s.tpr) == (9200, 100, 20000)
    assert (s.scale_up_threshold, s.scale_down_threshold, s.target_capacity) == (9300, 24633, 14776)
    assert not s.outside_bound
    assert (w.target_rate, w.tpr, w.scale_up_threshold) == (9200, 9000, 9300) and w.outside_bound
    assert math.isclose(k.target_rate, 3066.667, rel_tol=1e-6) and k.tpr == 10000
    assert (k.scale_down_threshold, k.target_capacity) == (8211, 4925) and k.outside_bound


def test_the_worked_example_decision() -> None:
    state = AutoscalerState(samples=_example_samples()[:1])
    job = _three_vertices()
    job = replace(job, vertices=tuple(replace(v, records_in=None) for v in job.vertices))
    config = AutoscalerConfig(enabled=True, stabilization_ms=0, metrics_window_ms=MIN)
    # The cycle's own sample is taken from `job`; feed the example's second sample through the window instead.
    evaluations = evaluate.evaluate(_example_samples(), job, config)
    steps = {v: decide.step_vertex(e, (), None, MIN, config) for v, e in evaluations.items()}
    assert {v: s.decision.new for v, s in steps.items()} == {S: 2, W: 8, K: 2}  # K: its scale-down waits
    assert steps[K].delayed is not None and steps[K].delayed.recommendations == ((MIN, 1, True),)
    assert steps[W].decision.expected_rate == 18000
    text = decide.report({v: s.decision for v, s in steps.items()}, executed=True)
    assert text == ("Scaling execution enabled, begin scaling vertices:{ Vertex ID " + W + " | Parallelism 4 -> 8 | "
                    "Processing capacity 9000.00 -> 18000.00 | Target data rate 9200.00}")
    assert state.samples


def _cycle(config: AutoscalerConfig, state: AutoscalerState, job: JobMetrics, now: int,
           nonce: int | None = None) -> scaler.Outcome:
    return scaler.autoscale(config, state, job, now, nonce)


def _load_job(p_keyed: int, rate: float, total: float, cost_per_record_s: float, at_ms: int,
              running_since: int = -100 * MIN) -> JobMetrics:
    """DataGen -> keyed operator: the keyed operator is busy `rate * cost / p` of each second."""
    busy = min(1000.0, rate * cost_per_record_s * 1000 / p_keyed)
    return JobMetrics("f" * 32, "RUNNING", running_since, True, True, (
        VertexMetrics(S, 1, 128, records_in=0, records_out=total, source_records_out=total, busy_max=50.0,
                      source_in_per_second=0.0),
        VertexMetrics(W, p_keyed, 120, inputs=((S, "HASH"),), records_in=total, records_out=0, busy_max=busy,
                      in_per_second=rate)))


FAST = AutoscalerConfig(enabled=True, stabilization_ms=MIN, metrics_window_ms=3 * MIN, catch_up_ms=5 * MIN,
                        restart_ms=30_000, utilization_max=0.9, scale_down_interval_ms=2 * MIN)


def _run(config: AutoscalerConfig, state: AutoscalerState, p: int, rate: float, start: int, end: int,
         step: int = 15_000, running_since: int = 0, total: float = 0.0) -> tuple[AutoscalerState, list[scaler.Outcome]]:
    outcomes = []
    for now in range(start, end + 1, step):
        total += rate * step / 1000
        outcome = _cycle(config, state, _load_job(p, rate, total, 0.0005, now, running_since), now)
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes


def test_scale_up_under_load_then_no_further_decision() -> None:
    """The reference notes' scale-up: 500 µs per record, 3000 records/s offered to one keyed subtask that can do
    2000 (so it passes 2000, saturated); capacity round(2000·30/300 + 2000/0.7) = 3057, f = 1.53, p = 2."""
    state, outcomes = _run(FAST, AutoscalerState(), 1, 2000, 0, 4 * MIN)
    assert [o.executed for o in outcomes].count(True) == 1 and outcomes[-1].executed
    assert not any(o.executed for o in outcomes if o is not outcomes[-1])
    assert outcomes[0].message.startswith("stabilizing")
    assert state.overrides == {S: 1, W: 2}
    assert state.history[W][-1].current == 1 and state.history[W][-1].new == 2
    assert [e.reason for e in outcomes[-1].events] == ["ScalingReport"]
    # Rescaled: RUNNING moves; at 3000/s two subtasks are 75 % busy: inside [0.4, 0.9], nothing more.
    state, outcomes = _run(FAST, state, 2, 3000, 5 * MIN, 12 * MIN, running_since=5 * MIN)
    assert not any(o.executed for o in outcomes)
    assert outcomes[-1].message == "All vertex processing rates are within target."


def test_scale_down_waits_for_its_interval_and_takes_the_largest_recommendation() -> None:
    state, outcomes = _run(FAST, AutoscalerState(), 4, 200, 0, 4 * MIN)
    assert not any(o.executed for o in outcomes) and W in state.delayed
    first = state.delayed[W].first_ms
    state, outcomes = _run(FAST, state, 4, 200, 4 * MIN + 15_000, 7 * MIN)
    executed = [o for o in outcomes if o.executed]
    assert len(executed) == 1 and executed[0].state.overrides[W] == 2  # 4·0.4 = 1.6 -> 2 (divides 120)
    at = max(e.at_ms for e in executed[0].state.history[W])
    assert at >= first + FAST.scale_down_interval_ms and not executed[0].state.delayed


def test_scaling_disabled_only_recommends_once_per_event_interval() -> None:
    config = replace(FAST, scaling_enabled=False)
    state, outcomes = _run(config, AutoscalerState(), 1, 2000, 0, 6 * MIN)
    assert not any(o.executed for o in outcomes) and state.overrides == {} and not state.history
    reports = [e for o in outcomes for e in o.events if e.reason == "ScalingReport"]
    assert len(reports) == 1 and reports[0].message.startswith(
        "Scaling execution disabled by config job.autoscaler.scaling.enabled:false, recommended parallelism change:")
    assert outcomes[-1].recommended[W] == 2


def test_an_ineffective_scale_up_is_reported_and_blocked_when_detection_is_on() -> None:
    history = {W: (ScalingEntry(0, 1, 2, tpr=2000, expected_rate=4000),)}
    # After the scale-up the two subtasks still manage only 2100/s together (a shared bottleneck).
    evaluation = evaluate.VertexEvaluation(W, 2, 120, 3000, 0, 2100, 2333, 6000, 4586, True, 1.0)
    step = decide.step_vertex(evaluation, history[W], None, MIN, FAST)
    assert step.ineffective and step.decision.new > 2
    blocked = decide.step_vertex(evaluation, history[W], None, MIN, replace(FAST, effectiveness_detection=True))
    assert blocked.ineffective and blocked.decision.new == 2
    helped = replace(evaluation, tpr=3900)
    assert not decide.step_vertex(helped, history[W], None, MIN, FAST).ineffective


def test_a_restart_starts_the_window_again() -> None:
    state, _ = _run(FAST, AutoscalerState(), 1, 2000, 0, 2 * MIN)
    assert len(state.samples) == 9
    state, outcomes = _run(FAST, state, 1, 2000, 2 * MIN + 15_000, 2 * MIN + 15_000, running_since=2 * MIN)
    assert len(state.samples) == 1 and outcomes[0].message.startswith("stabilizing")


def test_no_sample_while_restarting_or_with_incomplete_counters() -> None:
    job = _load_job(1, 2000, 10, 0.0005, MIN)
    assert _cycle(FAST, AutoscalerState(), replace(job, all_tasks_running=False), MIN).state.samples == ()
    assert _cycle(FAST, AutoscalerState(), replace(job, io_complete=False), MIN).state.samples == ()
    assert _cycle(FAST, AutoscalerState(), replace(job, state="RESTARTING"), MIN).state.samples == ()


def test_the_reset_nonce_wipes_the_state_once() -> None:
    state = AutoscalerState(overrides={W: 4}, history={W: (ScalingEntry(0, 2, 4, 1, 2),)}, reset_nonce=1)
    job = _load_job(4, 2000, 10, 0.0005, MIN)
    wiped = _cycle(FAST, state, job, MIN, nonce=2).state
    assert wiped.overrides == {} and wiped.history == {} and wiped.reset_nonce == 2
    kept = _cycle(FAST, state, job, MIN, nonce=1).state
    assert kept.overrides == {W: 4}


def test_excluded_vertices_keep_their_parallelism() -> None:
    config = replace(FAST, excluded_vertices=(W,))
    state, outcomes = _run(config, AutoscalerState(), 1, 2000, 0, 5 * MIN)
    assert not any(o.executed for o in outcomes) and W not in outcomes[-1].decisions


# ------------------------------------------------------------------ alignment and bounds


@pytest.mark.parametrize("key_groups, new, mode, aligned", [
    (120, 7, "BALANCED", 8), (128, 24, "BALANCED", 26), (128, 24, "EVENLY_SPREAD", 32), (128, 24, "OFF", 24),
    (120, 121, "BALANCED", 121), (7, 5, "EVENLY_SPREAD", 7),
])
def test_alignment_to_key_groups(key_groups: int, new: int, mode: str, aligned: int) -> None:
    assert decide.align(new, 1, key_groups, 10_000, mode) == aligned


def test_a_scale_down_scan_never_passes_the_current_parallelism() -> None:
    assert decide.align(5, 6, 120, 200, "EVENLY_SPREAD") == 5  # 6 would be "no change"; 5 divides 120 anyway
    assert decide.align(7, 9, 120, 200, "EVENLY_SPREAD") == 8
    assert decide.align(9, 10, 128, 200, "EVENLY_SPREAD") == 9    # 10 would be no change: nothing divides, keep 9


rates = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(p=st.integers(1, 300), max_par=st.integers(1, 400), tpr=rates, capacity=rates,
       lo=st.integers(1, 50), hi=st.integers(1, 400), keyed=st.booleans(),
       up=st.floats(0, 10), down=st.floats(0, 1))
def test_bounds_always_hold(p: int, max_par: int, tpr: float, capacity: float, lo: int, hi: int, keyed: bool,
                            up: float, down: float) -> None:
    p = min(p, max_par)
    config = AutoscalerConfig(min_parallelism=lo, max_parallelism=hi, scale_up_max_factor=up,
                              scale_down_max_factor=down)
    evaluation = evaluate.VertexEvaluation("v", p, max_par, 1.0, 0.0, tpr, 0.0, math.inf, capacity, keyed, 0.5)
    new = decide.recommend(evaluation, config)
    assert min(p, lo) <= new <= min(max_par, max(p, hi))
    if not keyed and new != p:
        assert math.floor((1 - down) * p) <= new <= math.ceil((1 + up) * p)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(100, 50_000), cost_us=st.floats(20, 2000), p=st.integers(1, 16))
def test_a_constant_load_settles(rate: float, cost_us: float, p: int) -> None:
    """Under a constant load, with a TPR that grows with the parallelism, the parallelism moves in one direction
    only (a scale-down is limited to 60 % per step, a saturated first reading may need a second scale-up) and
    then stays: no oscillation."""
    config = replace(FAST, scale_down_interval_ms=0)
    per_subtask = 1e6 / cost_us
    path = [p]
    for _ in range(12):
        passed = min(rate, per_subtask * p)  # a saturated vertex passes only what it can
        ev = evaluate.VertexEvaluation(
            "v", p, 120, passed, 0.0, per_subtask * p,
            evaluate.capacity(passed, 0.0, config.utilization_max, False, config),
            evaluate.capacity(passed, 0.0, config.utilization_min, True, config),
            evaluate.capacity(passed, 0.0, config.target_utilization, True, config), True, passed / per_subtask / p)
        if ev.outside_bound:
            p = decide.step_vertex(ev, (), None, 0, config).decision.new
        path.append(p)
    steps = [b - a for a, b in zip(path, path[1:], strict=False) if b != a]
    assert all(s > 0 for s in steps) or all(s < 0 for s in steps), path
    assert path[-1] == path[-2] == path[-3], path


# ------------------------------------------------------------------ the state in its ConfigMap


def test_the_state_survives_its_configmap() -> None:
    state, _ = _run(FAST, AutoscalerState(), 1, 2000, 0, 5 * MIN)
    state = replace(state, reset_nonce=7, advice=(f"{W}:2", 5))
    data = records.encode_state(state)
    assert set(data) == {"collectedMetrics", "scalingHistory", "delayedScaleDown", "parallelismOverrides",
                         "resetNonce", "lastAdvice"}
    assert data["parallelismOverrides"] == f"{S}:1,{W}:2"
    assert records.decode_state(data) == state


def test_infinite_rates_survive_their_configmap() -> None:
    state = AutoscalerState(samples=(Sample(1, {S: VertexSample(observed_tpr=math.inf, lag=0.0)}),))
    assert records.decode_state(records.encode_state(state)) == state


def test_the_state_stays_bounded() -> None:
    """A 60-minute window sampled every 15 s on a 30-vertex job: within the bound; a tight bound drops the
    oldest samples first."""
    vertices = {f"{i:032x}": VertexSample(1e9 + i, 2e9, 0.123, 1e7, 1234.567, 9e6, 4321.5) for i in range(30)}
    samples = tuple(Sample(i * 15_000, vertices) for i in range(240))
    data = records.encode_state(AutoscalerState(samples=samples))
    assert sum(len(v) for v in data.values()) <= records.MAX_STATE_CHARS
    small = records.encode_state(AutoscalerState(samples=samples), max_chars=100_000)
    kept = records.decode_state(small).samples
    assert sum(len(v) for v in small.values()) <= 100_000 and kept and kept[-1].at_ms == samples[-1].at_ms


@pytest.mark.parametrize("data", [
    {"collectedMetrics": "not json"}, {"collectedMetrics": "[[1, {\"v\": [\"x\"]}]]"},
    {"scalingHistory": "{\"v\": 3}"}, {"delayedScaleDown": "[]"}, {"resetNonce": "many"}, None, {},
])
def test_a_damaged_configmap_starts_that_part_again(data: dict[str, str] | None) -> None:
    assert records.decode_state(data) == AutoscalerState()


# ------------------------------------------------------------------ realization


def test_overrides_merge_with_the_users_own() -> None:
    assert realize.merged_overrides(f"{W}:3,{K}:5", {S: 2, W: 8}) == f"{S}:2,{W}:8,{K}:5"
    assert realize.merged_overrides(f"{W}:3", {W: 8}, excluded=(W,)) == f"{W}:3"
    assert realize.merged_overrides(None, {}) == ""


def test_the_resource_requirements_body_lists_every_vertex() -> None:
    current = {S: {"parallelism": {"lowerBound": 1, "upperBound": 1}},
               W: {"parallelism": {"lowerBound": 2, "upperBound": 2}}}
    assert realize.requirements_body(current, {S: 1, W: 4}) == {
        S: {"parallelism": {"lowerBound": 1, "upperBound": 1}}, W: {"parallelism": {"lowerBound": 2, "upperBound": 4}}}
    assert realize.requirements_body(current, {W: 1})[W] == {"parallelism": {"lowerBound": 1, "upperBound": 1}}
    assert realize.requirements_body(current, {S: 1, W: 2}) is None   # nothing changes
    assert realize.requirements_body(current, {K: 3}) is None          # Flink does not know the vertex


@pytest.mark.parametrize("version, scheduler, inplace, possible", [
    ("v1_20", "adaptive", None, True), ("v2_3", "adaptive", "true", True), ("v1_17", "adaptive", None, False),
    ("v1_20", "default", None, False), ("v1_20", "adaptive", "false", False), (None, "adaptive", None, False),
])
def test_in_place_scaling_needs_118_and_the_adaptive_scheduler(version: str | None, scheduler: str,
                                                               inplace: str | None, possible: bool) -> None:
    config = {"jobmanager.scheduler": scheduler}
    if inplace is not None:
        config[realize.INPLACE_KEY] = inplace
    assert realize.in_place_possible(version, config) is possible


def test_taskmanagers_follow_the_widest_vertex() -> None:
    assert realize.taskmanager_replicas({S: 2, W: 9}, 4) == 3
    assert realize.taskmanager_replicas({}, 4) == 1


def test_a_decision_is_not_taken_again_while_it_is_carried_out() -> None:
    """The syncs between a decision and the job running it (the upgrade's savepoint, Flink's in-place rescale)
    still see the old job RUNNING with a full window: for up to `restart.time` they wait, no second ScalingReport,
    no second history entry. Once the job runs the decision (RUNNING moved) a new window starts."""
    config = replace(FAST, restart_ms=60_000)
    state, outcomes = _run(config, AutoscalerState(), 1, 2000, 0, 4 * MIN)
    assert outcomes[-1].executed and state.overrides[W] == 2
    waiting_state, waiting = _run(config, state, 1, 2000, 4 * MIN + 15_000, 4 * MIN + 45_000)
    assert not any(o.executed or o.events for o in waiting)
    assert {o.phase for o in waiting} == {"rescaling"} and waiting[0].message.startswith("rescaling")
    assert len(waiting_state.history[W]) == 1 and waiting_state.overrides[W] == 2
    # Restarted at the new parallelism: the window starts again.
    _, outcomes = _run(config, waiting_state, 2, 3000, 5 * MIN, 5 * MIN, running_since=5 * MIN - 5_000)
    assert outcomes[0].phase == "collecting" and outcomes[0].message.startswith("stabilizing")
    # Rescaled in place without a new RUNNING time (Flink reports the new parallelism): sampling goes on.
    _, outcomes = _run(config, waiting_state, 2, 3000, 4 * MIN + 45_000, 4 * MIN + 45_000)
    assert outcomes[0].phase != "rescaling"


def test_a_decision_flink_never_carries_out_stops_the_wait_after_the_restart_time() -> None:
    """No free slots, or Flink 2.x ignoring the overrides (FLINK-38770): the job never runs the decision. After
    `restart.time` the autoscaler samples and decides again instead of waiting for ever."""
    config = replace(FAST, restart_ms=30_000)
    state, outcomes = _run(config, AutoscalerState(), 1, 2000, 0, 4 * MIN)
    assert outcomes[-1].executed
    _, outcomes = _run(config, state, 1, 2000, 4 * MIN + 15_000, 5 * MIN)
    assert [o.phase for o in outcomes][:1] == ["rescaling"] and outcomes[-1].phase != "rescaling"
