"""The autoscaler in a FlinkDeployment sync: what the pipeline asks of it before and after the core.

* Before: `metrics_job` names the job whose metrics this sync collects (autoscaler on, job RUNNING), and
  `with_stored_overrides` lays the stored overrides onto the spec the core sees, as Apache's reconciler does in
  memory: a change of them is then an ordinary spec change, carried out by the job's upgrade mode. When the job
  can be rescaled in place (Flink 1.18+, adaptive scheduler) the spec is left alone and `rescale_in_place` is
  an action instead.
* After: `apply` runs one cycle, returns the state as the ConfigMap child `autoscaler-<name>`, and writes what it
  decided into `status.autoscaler` and Events.

Nothing is kept in the process: the state comes back with the observed children on the next sync.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .. import flinkconf, observed
from ..model import Action, SyncResult
from .config import AutoscalerConfig, AutoscalerConfigError, is_enabled, read_config
from .realize import OVERRIDES_KEY, in_place_possible, merged_overrides
from .records import AutoscalerState, CycleSummary, JobMetrics, decode_state, encode_state, overrides_text
from .scaler import Outcome, autoscale


def configmap_name(name: str) -> str:
    return f"autoscaler-{name}"


def _mapping(value: Any) -> Mapping[str, Any]:
    """This runs before validation and intake: anything that is not an object reads as an empty one."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _effective_config(parent: Mapping[str, Any], operator_defaults: Mapping[str, str]) -> dict[str, str]:
    spec = _mapping(parent.get("spec"))
    namespace = _text(_mapping(parent.get("metadata")).get("namespace")) or "default"
    return flinkconf.effective_user_config(operator_defaults, namespace, _text(spec.get("flinkVersion")),
                                           _mapping(spec.get("flinkConfiguration")))


def settings_of(parent: Mapping[str, Any], operator_defaults: Mapping[str, str]) -> AutoscalerConfig | None:
    """The autoscaler settings of an application cluster with the autoscaler on; None otherwise (a bad value or a
    spec that is not one is reported by validation)."""
    if not isinstance(_mapping(parent.get("spec")).get("job"), Mapping):
        return None
    try:
        config = _effective_config(parent, operator_defaults)
        return read_config(config) if is_enabled(config) else None
    except (AutoscalerConfigError, ValueError, TypeError, RecursionError):
        return None


def stored_state(parent: Mapping[str, Any], children: Mapping[str, Any] | None) -> AutoscalerState:
    name = _text(_mapping(parent.get("metadata")).get("name")) or ""
    configmap = _mapping(observed.by_kind(dict(_mapping(children)), "ConfigMap").get(configmap_name(name)))
    return decode_state(_mapping(configmap.get("data")))


def metrics_job(parent: Mapping[str, Any], operator_defaults: Mapping[str, str]) -> str | None:
    """The job id whose metrics this sync needs: the autoscaler is on and the recorded job is RUNNING."""
    if settings_of(parent, operator_defaults) is None:
        return None
    job_status = _mapping(_mapping(parent.get("status")).get("jobStatus"))
    job_id = job_status.get("jobId")
    return job_id if job_status.get("state") == "RUNNING" and isinstance(job_id, str) and job_id else None


def _in_place(parent: Mapping[str, Any], operator_defaults: Mapping[str, str]) -> bool:
    return in_place_possible(_text(_mapping(parent.get("spec")).get("flinkVersion")),
                             _effective_config(parent, operator_defaults))


def with_stored_overrides(parent: dict[str, Any], children: Mapping[str, Any] | None,
                          operator_defaults: Mapping[str, str]) -> dict[str, Any]:
    """The parent with the stored overrides in `spec.flinkConfiguration` (a copy), unless the job is rescaled in
    place or nothing is stored."""
    settings = settings_of(parent, operator_defaults)
    if settings is None or _in_place(parent, operator_defaults):
        return parent
    state = stored_state(parent, children)
    if not state.overrides:
        return parent
    spec = parent["spec"]
    user = flinkconf.flatten(_mapping(spec.get("flinkConfiguration"))).get(OVERRIDES_KEY)
    merged = merged_overrides(user, state.overrides, settings.excluded_vertices)
    if merged == user:
        return parent
    changed = copy.copy(parent)
    changed["spec"] = {**spec, "flinkConfiguration": {**(spec.get("flinkConfiguration") or {}), OVERRIDES_KEY: merged}}
    return changed


def _configmap(parent: Mapping[str, Any], state: AutoscalerState) -> dict[str, Any]:
    meta = _mapping(parent.get("metadata"))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap_name(meta.get("name", "")), "namespace": meta.get("namespace") or "default",
                         "labels": {"component": "autoscaler", "app": meta.get("name", "")}},
            "data": encode_state(state)}


def apply(parent: Mapping[str, Any], children: Mapping[str, Any] | None, result: SyncResult,
          job: JobMetrics | None, metrics_error: str | None, now_ms: int,
          operator_defaults: Mapping[str, str]) -> CycleSummary | None:
    """One autoscaler cycle folded into the sync's result (children, status.autoscaler, events, actions); what it
    came to (None: the autoscaler is off)."""
    settings = settings_of(parent, operator_defaults)
    if settings is None:
        return None  # off: the state ConfigMap is left out, so it is deleted (Apache wipes the state)
    state = stored_state(parent, children)
    nonce = _mapping(_mapping(parent.get("spec")).get("job")).get("autoscalerResetNonce")
    outcome = autoscale(settings, state, job, now_ms, nonce if isinstance(nonce, int) and
                        not isinstance(nonce, bool) else None)
    result.children.append(_configmap(parent, outcome.state))
    result.events.extend(outcome.events)
    message = outcome.message if metrics_error is None else f"metrics not collected: {metrics_error}"
    result.status["autoscaler"] = {"message": message, "recommendedParallelism": outcome.recommended,
                                   "parallelismOverrides": overrides_text(outcome.overrides),
                                   "scalingEnabled": settings.scaling_enabled}
    if job is not None and outcome.overrides and _in_place(parent, operator_defaults):
        running = {v.vertex_id: v.parallelism for v in job.vertices}
        if any(running.get(v) != p for v, p in outcome.overrides.items()):
            result.actions.append(Action("rescale_in_place", {"job_id": job.job_id,
                                                              "overrides": dict(outcome.overrides)}, required=False))
    return _summary(parent, outcome, job, metrics_error is not None)


def _summary(parent: Mapping[str, Any], outcome: Outcome, job: JobMetrics | None, metrics_error: bool
             ) -> CycleSummary:
    meta = _mapping(parent.get("metadata"))
    decisions = outcome.decisions.values()
    return CycleSummary(
        namespace=_text(meta.get("namespace")) or "default", name=_text(meta.get("name")) or "",
        phase=outcome.phase, metrics_error=metrics_error,
        parallelism={v.vertex_id: v.parallelism for v in job.vertices} if job is not None else {},
        recommended=outcome.recommended,
        true_processing_rate={d.vertex_id: d.tpr for d in decisions},
        target_data_rate={d.vertex_id: d.target_rate for d in decisions})
