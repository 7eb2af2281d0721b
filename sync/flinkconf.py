"""Flink configuration: flattening the CR's `flinkConfiguration`, layering operator defaults, and
writing `flink-conf.yaml` (Flink 1.x) or nested `config.yaml` (Flink 2.x).

Effective configuration order (the Apache operator's FlinkConfigManager): operator defaults, namespace defaults,
Flink-version defaults (`vX_Y` exact, `vX_Y+` this and newer, ascending so newer wins), then the CR.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import yaml

from . import versions
from .kubelimits import INT32_MAX

DEFAULTS_PREFIX = "kubernetes.operator.default-configuration."
NAMESPACE_PREFIX = DEFAULTS_PREFIX + "namespace."
VERSION_PREFIX = DEFAULTS_PREFIX + "flink-version."


def flink_value(value: Any) -> str:
    """Flink's legacy string form of a JSON value: lists joined by `;`, maps as `k:v,k:v`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(value)
    if isinstance(value, list):
        return ";".join(flink_value(item) for item in value)
    if isinstance(value, Mapping):
        return ",".join(f"{key}:{flink_value(item)}" for key, item in value.items())
    return str(value)


def flatten(config: Mapping[str, Any] | None, prefix: str = "") -> dict[str, str]:
    """Flatten nested `flinkConfiguration` into dotted keys with string values (ConfigObjectNode)."""
    flat: dict[str, str] = {}
    for key, value in (config or {}).items():
        full = f"{prefix}{key}"
        if type(value) is str:  # the common case, without the Mapping ABC checks
            flat[full] = value
        elif isinstance(value, Mapping) and value:
            flat.update(flatten(value, full + "."))
        else:
            flat[full] = flink_value(value)
    return flat


def split_operator_defaults(defaults: Mapping[str, str], namespace: str, flink_version: str | None) -> dict[str, str]:
    """Resolve the operator default file into the plain keys that apply to one resource (a new dict)."""
    try:
        return dict(_split_cached(tuple(defaults.items()), namespace, flink_version))
    except TypeError:  # an unhashable value: resolve without the cache
        return _split(defaults, namespace, flink_version)


@functools.lru_cache(maxsize=256)
def _split_cached(items: tuple[tuple[str, str], ...], namespace: str, flink_version: str | None) -> dict[str, str]:
    # Several times per sync, with the same few inputs: memoised (callers get a copy, never this dict).
    return _split(dict(items), namespace, flink_version)


def _split(defaults: Mapping[str, str], namespace: str, flink_version: str | None) -> dict[str, str]:
    plain = {k: v for k, v in defaults.items() if not k.startswith(DEFAULTS_PREFIX)}
    plain.update(_namespace_defaults(defaults, namespace))
    if flink_version and versions.is_known(flink_version):
        plain.update(_version_defaults(defaults, versions.version_key(flink_version)))
    return plain


def _namespace_defaults(defaults: Mapping[str, str], namespace: str) -> list[tuple[str, str]]:
    """The `<NAMESPACE_PREFIX><namespace>.<option>` entries of this namespace, as (option, value)."""
    ns_prefix = f"{NAMESPACE_PREFIX}{namespace}."
    return [(key[len(ns_prefix):], value) for key, value in defaults.items() if key.startswith(ns_prefix)]


def _version_defaults(defaults: Mapping[str, str], current: tuple[int, int]) -> list[tuple[str, str]]:
    """The `<VERSION_PREFIX><vX_Y>[+].<option>` entries that apply to the version `current`, as (option, value),
    in the order they apply: ascending version, and for one version the `+` range before the exact match."""
    scoped: list[tuple[tuple[int, int], int, str, str]] = []
    for key, value in defaults.items():
        scope = _version_scope(key)
        if scope is None:
            continue
        base_key, plus, option = scope
        if (plus and current >= base_key) or (not plus and current == base_key):
            # Exact matches sort after "+" ranges of the same version, so they win.
            scoped.append((base_key, 0 if plus else 1, option, value))
    return [(option, value) for _, _, option, value in sorted(scoped, key=lambda item: (item[0], item[1]))]


def _version_scope(key: str) -> tuple[tuple[int, int], bool, str] | None:
    """(version, whether it is a `+` range, option) of a `<VERSION_PREFIX><vX_Y>[+].<option>` key; None for any
    other key, or when the version or the option is missing or malformed."""
    if not key.startswith(VERSION_PREFIX):
        return None
    version_part, _, option = key[len(VERSION_PREFIX):].partition(".")
    if not option:
        return None
    try:
        base_key = versions.version_key(version_part.rstrip("+"))
    except ValueError:
        return None
    return base_key, version_part.endswith("+"), option


def effective_user_config(operator_defaults: Mapping[str, str], namespace: str, flink_version: str | None,
                          *user_configs: Mapping[str, Any] | None) -> dict[str, str]:
    """Operator defaults (resolved for this namespace and version) overlaid by the CR config(s)."""
    config = split_operator_defaults(operator_defaults, namespace, flink_version)
    for user in user_configs:
        config.update(flatten(user))
    return config


def task_slots(config: Mapping[str, str]) -> int | None:
    """`taskmanager.numberOfTaskSlots` as Flink reads it (a Java int of at least 1; unset: 1), or None when it
    is unusable (validation names it; what renders a valid spec never sees it)."""
    try:
        count = int(float(config.get("taskmanager.numberOfTaskSlots") or 1))
    except (ValueError, OverflowError):
        return None
    return count if 1 <= count <= INT32_MAX else None


def get_first(config: Mapping[str, str], *keys: str) -> str | None:
    """The first key that is set and non-empty (new Flink spellings first, deprecated ones after)."""
    for key in keys:
        value = config.get(key)
        if value not in (None, ""):
            return value
    return None


def is_true(config: Mapping[str, str], key: str, default: bool = False) -> bool:
    value = config.get(key)
    if value is None or value == "":
        return default
    return str(value).strip().lower() == "true"


def render_flink_conf_yaml(config: Mapping[str, str]) -> str:
    """`flink-conf.yaml`: one `key: value` line per key, sorted so the output is deterministic."""
    lines = []
    for key in sorted(config):
        lines.append(f"{key}: {config[key]}")
    return "\n".join(lines) + "\n"


# Flink 2 option types that are lists; written as YAML lists in config.yaml.
_LIST_KEYS = {"pipeline.classpaths", "pipeline.jars"}


def render_config_yaml(config: Mapping[str, str]) -> str:
    """Nested standard-YAML `config.yaml` for Flink 2. When one key is a dotted prefix of another
    (`high-availability` and `high-availability.type`) nesting would clash, so we write flat keys,
    which Flink 2's parser also accepts."""
    keys = sorted(config)
    clash = any(other.startswith(key + ".") for key in keys for other in keys if other != key)
    if clash:
        return str(yaml.safe_dump({key: _yaml_value(key, config[key]) for key in keys}, sort_keys=True,
                                  default_flow_style=False, width=1_000_000))
    nested: dict[str, Any] = {}
    for key in keys:
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _yaml_value(key, config[key])
    return str(yaml.safe_dump(nested, sort_keys=True, default_flow_style=False, width=1_000_000))


def _yaml_value(key: str, value: str) -> Any:
    if key in _LIST_KEYS and value:
        return value.split(";")
    return value
