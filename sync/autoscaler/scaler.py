"""One autoscaler cycle, as Apache's `JobAutoScalerImpl.scale` runs it on every reconcile, as a pure function:
the stored state and what the REST API reported in, the new state, the recommendation and the events out.

1. A new non-null `job.autoscalerResetNonce` wipes the state.
2. Only a RUNNING job whose tasks all run is sampled (FLINK-34906); a sample whose IO counters Flink marks
   incomplete is skipped (right after a restart they read 0, FLINK-39925).
3. A decision is carried out by the next syncs (the upgrade starts, or Flink rescales in place): while the job
   still runs as it did before the last executed decision (it has not started RUNNING since, and some vertex
   does not run at its stored parallelism), for at most `restart.time` (the time a rescale is assumed to take),
   nothing is sampled or decided. Apache starts the upgrade in the reconcile that decides, so it never sees that
   job again; without this gate every sync in between would decide the same scaling again (another
   ScalingReport, another history entry). The bound keeps a decision Flink never carries out (no free slots, or
   Flink 2.x ignoring the overrides, FLINK-38770) from stopping the autoscaler.
   A job that started RUNNING after the oldest sample was restarted or rescaled: the window starts again.
4. Samples taken within `stabilization.interval` of RUNNING are kept but do not count; the window is full
   `metrics.window` after the first sample that counts. Until then nothing is decided.
5. Evaluate, decide per vertex, apply the job-level gate; execute (store the overrides, the history) unless
   `scaling.enabled` is false, in which case only the recommendation is reported.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..model import Event
from .config import AutoscalerConfig
from .decide import VertexDecision, VertexStep, report, step_vertex, worth_scaling
from .evaluate import evaluate
from .records import AutoscalerState, JobMetrics, Sample, ScalingEntry, overrides_text
from .sampling import take_sample


@dataclass(frozen=True)
class Outcome:
    """The result of one cycle. `overrides` are the parallelisms to run (empty: the user's own). `phase` is what
    the cycle came to: `not_sampled` (job not running, or its metrics incomplete), `rescaling` (the last decision
    is not carried out yet), `collecting` (stabilizing or filling the window), `balanced` (all within target), `recommended` (scaling disabled) or `scaled`."""
    state: AutoscalerState
    message: str
    decisions: Mapping[str, VertexDecision] = field(default_factory=dict)
    executed: bool = False
    events: tuple[Event, ...] = ()
    phase: str = "not_sampled"

    @property
    def overrides(self) -> Mapping[str, int]:
        return self.state.overrides

    @property
    def recommended(self) -> dict[str, int]:
        """The parallelism recommended per vertex in this cycle (every evaluated vertex)."""
        return {vertex: decision.new for vertex, decision in sorted(self.decisions.items())}


def _iso(ms: int) -> str:
    return f"{ms} ms"


def reset_if_asked(state: AutoscalerState, reset_nonce: int | None) -> tuple[AutoscalerState, bool]:
    """A new non-null reset nonce wipes everything, overrides included (Apache's `autoscaler.cleanup`)."""
    if reset_nonce is None or reset_nonce == state.reset_nonce:
        return state, False
    return AutoscalerState(reset_nonce=reset_nonce), state != AutoscalerState(reset_nonce=state.reset_nonce)


def _prune_history(state: AutoscalerState, job: JobMetrics, now_ms: int, settings: AutoscalerConfig
                   ) -> AutoscalerState:
    """Keep at most `history.max.count` entries per vertex, none older than `history.max.age`, and only the
    vertices of the current topology (the overrides too)."""
    vertices = {v.vertex_id for v in job.vertices}
    history = {}
    for vertex, entries in state.history.items():
        kept = tuple(e for e in entries if e.at_ms >= now_ms - settings.history_max_age_ms)
        kept = kept[-settings.history_max_count:] if settings.history_max_count > 0 else ()
        if vertex in vertices and kept:
            history[vertex] = kept
    delayed = {v: d for v, d in state.delayed.items() if v in vertices}
    overrides = {v: p for v, p in state.overrides.items() if v in vertices}
    return replace(state, history=history, delayed=delayed, overrides=overrides)


def _window(state: AutoscalerState, job: JobMetrics, now_ms: int, settings: AutoscalerConfig
            ) -> tuple[tuple[Sample, ...], str | None]:
    """The samples with this sync's added, and why they cannot be evaluated yet (None: they can)."""
    samples = state.samples
    running_since = job.running_since_ms if job.running_since_ms is not None else now_ms
    if samples and running_since > samples[0].at_ms:
        samples = ()  # restarted or rescaled since the oldest sample: its rates no longer apply
    stable_at = running_since + settings.stabilization_ms
    counted = [s for s in samples if s.at_ms >= stable_at]
    full_at = (counted[0].at_ms if counted else now_ms) + settings.metrics_window_ms
    samples = samples + (take_sample(job, settings, now_ms),)
    if now_ms < stable_at:
        return samples, f"stabilizing until {_iso(stable_at)}"
    if now_ms < full_at:
        return samples, f"collecting metrics until {_iso(full_at)}"
    samples = tuple(s for s in samples if s.at_ms >= now_ms - settings.metrics_window_ms)
    if len(samples) < 2:
        return samples, "collecting metrics: fewer than two samples in the window"
    return samples, None


def _decision_pending(state: AutoscalerState, job: JobMetrics, now_ms: int, settings: AutoscalerConfig) -> bool:
    """The last executed decision, taken less than `restart.time` ago, has not reached the job yet: the job has
    run since before it was taken, and some vertex does not run at its stored parallelism."""
    last = max((entry.at_ms for entries in state.history.values() for entry in entries), default=None)
    if last is None or now_ms - last >= settings.restart_ms:
        return False
    if job.running_since_ms is None or job.running_since_ms > last:
        return False
    running = {vertex.vertex_id: vertex.parallelism for vertex in job.vertices}
    return any(running.get(vertex, p) != p for vertex, p in state.overrides.items())


def autoscale(settings: AutoscalerConfig, state: AutoscalerState, job: JobMetrics | None, now_ms: int,
              reset_nonce: int | None = None) -> Outcome:
    """One cycle of the autoscaler (the caller checked `settings.enabled`)."""
    state, was_reset = reset_if_asked(state, reset_nonce)
    if job is None or job.state != "RUNNING" or not job.all_tasks_running:
        return Outcome(state, "job not running: no metrics collected")
    if not job.io_complete:
        return Outcome(state, "job metrics incomplete (just restarted): no sample taken")
    state = _prune_history(state, job, now_ms, settings)
    if _decision_pending(state, job, now_ms, settings):
        return Outcome(state, "rescaling: waiting for the job to run the last decision "
                       f"({overrides_text(state.overrides)})", phase="rescaling")
    samples, not_ready = _window(state, job, now_ms, settings)
    state = replace(state, samples=samples)
    if not_ready is not None:
        return Outcome(state, ("autoscaler state reset; " if was_reset else "") + not_ready, phase="collecting")
    return _decide(settings, state, job, now_ms)


def _decide(settings: AutoscalerConfig, state: AutoscalerState, job: JobMetrics, now_ms: int) -> Outcome:
    evaluations = evaluate(state.samples, job, settings)
    finished = {v.vertex_id for v in job.vertices if v.finished}
    steps: dict[str, VertexStep] = {
        vertex: step_vertex(evaluation, state.history.get(vertex, ()), state.delayed.get(vertex), now_ms, settings)
        for vertex, evaluation in evaluations.items()
        if vertex not in settings.excluded_vertices and vertex not in finished}
    decisions = {vertex: step.decision for vertex, step in steps.items()}
    delayed = {vertex: step.delayed for vertex, step in steps.items() if step.delayed is not None}
    state = replace(state, delayed=delayed)
    events = tuple(Event("IneffectiveScaling", f"Ineffective scaling detected for {vertex}: the last scale-up "
                         "did not raise the processing rate as expected" +
                         ("; the next scale-up is blocked" if settings.effectiveness_detection else ""))
                   for vertex, step in sorted(steps.items()) if step.ineffective)
    if not worth_scaling(decisions):
        return Outcome(state, "All vertex processing rates are within target.", decisions, False, events,
                       phase="balanced")
    overrides = {v.vertex_id: v.parallelism for v in job.vertices}
    overrides.update({vertex: d.new for vertex, d in decisions.items()})
    if not settings.scaling_enabled:
        return _advise(settings, state, decisions, overrides_text(overrides), now_ms, events)
    history = {vertex: tuple(entries) for vertex, entries in state.history.items()}
    for vertex, d in decisions.items():
        if d.changes:
            history[vertex] = history.get(vertex, ()) + (ScalingEntry(now_ms, d.current, d.new, d.tpr,
                                                                       d.expected_rate),)
    state = replace(state, overrides=overrides, history=history, delayed={})
    events += (Event("ScalingReport", report(decisions, executed=True)),)
    return Outcome(state, "scaling: " + _changes(decisions), decisions, True, events, phase="scaled")


def _advise(settings: AutoscalerConfig, state: AutoscalerState, decisions: Mapping[str, VertexDecision],
            advised: str, now_ms: int, events: tuple[Event, ...]) -> Outcome:
    """Scaling is disabled: report the recommendation, the same one at most once per `scaling.event.interval`."""
    repeated = state.advice is not None and state.advice[0] == advised and \
        now_ms - state.advice[1] < settings.event_interval_ms
    if not repeated:
        events += (Event("ScalingReport", report(decisions, executed=False)),)
        state = replace(state, advice=(advised, now_ms))
    return Outcome(state, "recommendation only (job.autoscaler.scaling.enabled: false): " + _changes(decisions),
                   decisions, False, events, phase="recommended")


def _changes(decisions: Mapping[str, VertexDecision]) -> str:
    return ", ".join(f"{d.vertex_id} {d.current} -> {d.new}" for d in sorted(decisions.values(),
                                                                             key=lambda d: d.vertex_id) if d.changes)

