"""The `job.autoscaler.*` keys, read once into a typed `AutoscalerConfig` with Apache's defaults.

Every key is also read from its pre-1.7 spelling `kubernetes.operator.job.autoscaler.*` (FLIP-334), and the
deprecated aliases Apache still reads (`target.utilization`, `scale-up.grace-period`) come after the current
name. Range checks follow Apache's `AutoscalerValidator`, with its messages, so a bad value names its key.
Defaults are those of `AutoScalerOptions` in the Apache operator (release 1.15 and main).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..durations import DurationError, parse_duration

PREFIX = "job.autoscaler."
OLD_PREFIX = "kubernetes.operator.job.autoscaler."
ALIGNMENT_MODES = ("BALANCED", "EVENLY_SPREAD", "OFF")
LEGACY_ALIGNMENT_MODES = {"EVENLY_SPREAD": "EVENLY_SPREAD", "MAXIMIZE_UTILISATION": "BALANCED"}
BUSY_TIME_AGGREGATORS = ("MAX", "AVG", "MIN")
_T = TypeVar("_T")


class AutoscalerConfigError(ValueError):
    """A `job.autoscaler.*` value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class AutoscalerConfig:
    """The autoscaler settings of one resource (times in milliseconds)."""
    enabled: bool = False
    scaling_enabled: bool = True
    metrics_window_ms: int = 15 * 60_000
    stabilization_ms: int = 5 * 60_000
    target_utilization: float = 0.7
    utilization_max: float = 1.0
    utilization_min: float = 0.4
    scale_down_interval_ms: int = 60 * 60_000
    min_parallelism: int = 1
    max_parallelism: int = 200
    scale_up_max_factor: float = 100000.0
    scale_down_max_factor: float = 0.6
    catch_up_ms: int = 30 * 60_000
    restart_ms: int = 5 * 60_000
    backlog_lag_threshold_ms: int = 5 * 60_000
    observed_tpr_lag_threshold_ms: int = 30_000
    observed_tpr_switch_threshold: float = 0.15
    observed_tpr_min_observations: int = 2
    effectiveness_detection: bool = False
    effectiveness_threshold: float = 0.1
    busy_time_aggregator: str = "MAX"
    excluded_vertices: tuple[str, ...] = ()
    history_max_count: int = 3
    history_max_age_ms: int = 24 * 60 * 60_000
    alignment_mode: str = "BALANCED"
    event_interval_ms: int = 30 * 60_000

    @property
    def scaling_enabled_key_text(self) -> str:
        """How Apache names the switch in its advisory report header."""
        return f"{PREFIX}scaling.enabled:{str(self.scaling_enabled).lower()}"


def _raw(config: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """(key, value) of the first spelling that is set: each name under the current prefix, then the old one."""
    for name in names:
        for prefix in (PREFIX, OLD_PREFIX):
            value = config.get(prefix + name)
            if value is not None and str(value).strip() != "":
                return prefix + name, str(value).strip()
    return None


def _read(config: Mapping[str, str], default: _T, parse: Callable[[str], _T], *names: str) -> _T:
    found = _raw(config, *names)
    if found is None:
        return default
    key, text = found
    try:
        return parse(text)
    except (ValueError, DurationError):
        raise AutoscalerConfigError(f"Invalid value in the autoscaler config {key}: '{text}'") from None


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _duration(text: str) -> int:
    return parse_duration(text)


def _int(text: str) -> int:
    value = int(text)
    if not -2**31 <= value < 2**31:
        raise ValueError(text)
    return value


def _ids(text: str) -> tuple[str, ...]:
    # A Flink list option: `;`-separated (a YAML list flattens to the same), `,` accepted as well.
    return tuple(sorted({part.strip().lower() for part in text.replace(",", ";").split(";") if part.strip()}))


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        upper = text.upper()
        if upper not in choices:
            raise ValueError(text)
        return upper
    return parse


def is_enabled(config: Mapping[str, str]) -> bool:
    """`job.autoscaler.enabled` (false when unparseable: validation reports it)."""
    try:
        return _read(config, False, _bool, "enabled")
    except AutoscalerConfigError:
        return False


def read_config(config: Mapping[str, str], reconcile_interval_ms: int | None = None) -> AutoscalerConfig:
    """The autoscaler settings of a flattened Flink configuration; `AutoscalerConfigError` names a bad key."""
    target = _read(config, 0.7, _finite, "utilization.target", "target.utilization")
    boundary = _read(config, 0.3, _finite, "target.utilization.boundary")
    settings = AutoscalerConfig(
        enabled=_read(config, False, _bool, "enabled"),
        scaling_enabled=_read(config, True, _bool, "scaling.enabled"),
        metrics_window_ms=_read(config, 15 * 60_000, _duration, "metrics.window"),
        stabilization_ms=_read(config, 5 * 60_000, _duration, "stabilization.interval"),
        target_utilization=target,
        utilization_max=_read(config, target + boundary, _finite, "utilization.max"),
        utilization_min=_read(config, target - boundary, _finite, "utilization.min"),
        scale_down_interval_ms=_read(config, 60 * 60_000, _duration, "scale-down.interval", "scale-up.grace-period"),
        min_parallelism=_read(config, 1, _int, "vertex.min-parallelism"),
        max_parallelism=_read(config, 200, _int, "vertex.max-parallelism"),
        scale_up_max_factor=_read(config, 100000.0, _finite, "scale-up.max-factor"),
        scale_down_max_factor=_read(config, 0.6, _finite, "scale-down.max-factor"),
        catch_up_ms=_read(config, 30 * 60_000, _duration, "catch-up.duration"),
        restart_ms=_read(config, 5 * 60_000, _duration, "restart.time"),
        backlog_lag_threshold_ms=_read(config, 5 * 60_000, _duration, "backlog-processing.lag-threshold"),
        observed_tpr_lag_threshold_ms=_read(config, 30_000, _duration, "observed-true-processing-rate.lag-threshold"),
        observed_tpr_switch_threshold=_read(config, 0.15, _finite, "observed-true-processing-rate.switch-threshold"),
        observed_tpr_min_observations=_read(config, 2, _int, "observed-true-processing-rate.min-observations"),
        effectiveness_detection=_read(config, False, _bool, "scaling.effectiveness.detection.enabled"),
        effectiveness_threshold=_read(config, 0.1, _finite, "scaling.effectiveness.threshold"),
        busy_time_aggregator=_read(config, "MAX", _choice(BUSY_TIME_AGGREGATORS), "metrics.busy-time.aggregator"),
        excluded_vertices=_read(config, (), _ids, "vertex.exclude.ids"),
        history_max_count=_read(config, 3, _int, "history.max.count"),
        history_max_age_ms=_read(config, 24 * 60 * 60_000, _duration, "history.max.age"),
        alignment_mode=_alignment_mode(config),
        event_interval_ms=_read(config, 30 * 60_000, _duration, "scaling.event.interval"),
    )
    _check_ranges(settings, config, boundary)
    if reconcile_interval_ms is not None and settings.enabled and settings.metrics_window_ms < reconcile_interval_ms:
        raise AutoscalerConfigError(
            f"The autoscaler metric window ({PREFIX}metrics.window={settings.metrics_window_ms} ms) must not be "
            f"smaller than the operator reconcile interval ({reconcile_interval_ms} ms)")
    return settings


def _alignment_mode(config: Mapping[str, str]) -> str:
    """The new key (main, FLIP-586) wins; the legacy key (1.11-1.15) maps onto the same upward scan."""
    if _raw(config, "scaling.parallelism-alignment.mode") is not None:
        return _read(config, "BALANCED", _choice(ALIGNMENT_MODES), "scaling.parallelism-alignment.mode")
    legacy = _read(config, "", _choice(tuple(LEGACY_ALIGNMENT_MODES)), "scaling.key-group.partitions.adjust.mode")
    return LEGACY_ALIGNMENT_MODES.get(legacy, "BALANCED")


def _range_error(name: str, low: float, high: float) -> AutoscalerConfigError:
    return AutoscalerConfigError(
        f"The AutoScalerOption {PREFIX}{name} is invalid, it should be a value within the range [{low}, {high}]")


def _check_ranges(settings: AutoscalerConfig, config: Mapping[str, str], boundary: float) -> None:
    """Apache's `AutoscalerValidator` ranges, plus the ones without which the decision is meaningless."""
    checks: list[tuple[str, float, float, float]] = [
        ("scale-down.max-factor", settings.scale_down_max_factor, 0.0, math.inf),
        ("scale-up.max-factor", settings.scale_up_max_factor, 0.0, math.inf),
        ("utilization.target", settings.target_utilization, 0.0, 1.0),
        ("target.utilization.boundary", boundary, 0.0, math.inf),
        ("vertex.min-parallelism", settings.min_parallelism, 1, 2**15),
        ("vertex.max-parallelism", settings.max_parallelism, 1, 2**15),
        ("history.max.count", settings.history_max_count, 0, 1000),
        ("observed-true-processing-rate.min-observations", settings.observed_tpr_min_observations, 1, 1000),
    ]
    if _raw(config, "utilization.max") is not None:
        checks.append(("utilization.max", settings.utilization_max, settings.target_utilization, 1.0))
    if _raw(config, "utilization.min") is not None:
        checks.append(("utilization.min", settings.utilization_min, 0.0, settings.target_utilization))
    if settings.effectiveness_detection:
        checks.append(("scaling.effectiveness.threshold", settings.effectiveness_threshold, 0.0, 1.0))
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise _range_error(name, low, high)
