"""Read and minimally edit a Flink configuration directory, the way Flink itself reads it.

Two file formats exist:

* ``flink-conf.yaml`` (Flink 1.x, "legacy YAML"): one ``key: value`` per line. Flink's legacy
  parser cuts every line at the first ``#`` (comment), splits at the first ``": "`` and trims;
  values are raw strings (lists as ``a;b``). Edited *textually*: overridden lines are dropped and
  the overrides appended, so everything else stays byte-identical to what the hook rendered.
* ``config.yaml`` (Flink 2.x, also read by 1.19+): standard YAML, flat dotted keys and/or nested
  maps, which Flink flattens to dotted keys. Flink reads it with snakeyaml-engine (YAML 1.2), so
  it is loaded here with a YAML 1.2 core-schema loader (``yes``/``on`` stay strings, ``017`` is 17)
  and written back with a dumper that quotes any string YAML 1.1 *or* 1.2 would read as another
  type. Overridden leaves are removed wherever they are nested; the overrides are added as flat
  top-level keys.

Which file wins: Flink 2.x reads only ``config.yaml``; Flink 1.x prefers ``flink-conf.yaml`` when
both exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LEGACY_CONF = "flink-conf.yaml"
STANDARD_CONF = "config.yaml"


# --- YAML 1.2 core schema for PyYAML (which implements YAML 1.1) ---------------------------------

_BOOL12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NULL12 = re.compile(r"^(?:~|null|Null|NULL|)$")


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader restricted to the YAML 1.2 core schema (what snakeyaml-engine, i.e. Flink 2, uses)."""


_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL12, list("tTfF"))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT12, list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT12, list("-+0123456789."))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL12, ["~", "n", "N", ""])


def _construct_int12(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    value = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if value.startswith("0x"):
        return int(value[2:], 16)
    if value.startswith("0o"):
        return int(value[2:], 8)
    return int(value, 10)  # "017" is 17 in YAML 1.2 (octal in 1.1)


def _construct_bool12(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int12)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool12)


class _SafeBothDumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings a YAML 1.2 reader would take for a number/bool/null."""


for _tag, _re, _first in (
    ("tag:yaml.org,2002:bool", _BOOL12, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT12, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT12, list("-+0123456789.")),
    ("tag:yaml.org,2002:null", _NULL12, ["~", "n", "N", ""]),
):
    _SafeBothDumper.add_implicit_resolver(_tag, _re, _first)


def load_yaml12(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_SafeBothDumper, sort_keys=False, default_flow_style=False, width=1 << 16)


# --- reading -------------------------------------------------------------------------------------


def _legacy_key_value(line: str) -> tuple[str, str] | None:
    """Flink's legacy ``flink-conf.yaml`` line rule (GlobalConfiguration.loadYAMLResource)."""
    conf = line.split("#", 1)[0].strip()
    if not conf:
        return None
    kv = conf.split(": ", 1)
    if len(kv) != 2:
        return None
    key, value = kv[0].strip(), kv[1].strip()
    return (key, value) if key and value else None


def parse_legacy(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        kv = _legacy_key_value(line)
        if kv:
            out[kv[0]] = kv[1]
    return out


def _scalar_to_flink_string(value: Any) -> str:
    """How a YAML value reads as a Flink option string (lists as ``a;b``, bools lower case). Written again here on
    purpose, apart from ``sync.flinkconf.flink_value``: the test bed reads the rendered config the way Flink does,
    so that it checks the renderer rather than repeating it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(_scalar_to_flink_string(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{_scalar_to_flink_string(v)}" for k, v in value.items())
    return str(value)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps → dotted keys (Flink's own rule for ``config.yaml``); lists stay values."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def parse_standard(text: str) -> dict[str, str]:
    data = load_yaml12(text) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{STANDARD_CONF} is not a YAML map")
    return {k: _scalar_to_flink_string(v) for k, v in flatten(data).items()}


def effective_conf_file(conf_dir: Path, flink_major: int) -> Path | None:
    """The file this Flink version reads from ``conf_dir`` (None when there is none)."""
    legacy, standard = conf_dir / LEGACY_CONF, conf_dir / STANDARD_CONF
    if flink_major >= 2:
        return standard if standard.is_file() else None
    if legacy.is_file():
        return legacy
    return standard if standard.is_file() else None


def read_flink_config(conf_dir: Path, flink_major: int) -> dict[str, str]:
    """The flat ``key -> string`` configuration Flink would read from ``conf_dir``."""
    path = effective_conf_file(conf_dir, flink_major)
    if path is None:
        return {}
    text = path.read_text()
    return parse_legacy(text) if path.name == LEGACY_CONF else parse_standard(text)


# --- editing -------------------------------------------------------------------------------------


def override_legacy(text: str, overrides: Mapping[str, str]) -> str:
    """Drop the lines whose key is overridden, append the overrides (everything else untouched)."""
    kept = []
    for line in text.splitlines():
        kv = _legacy_key_value(line)
        if kv and kv[0] in overrides:
            continue
        kept.append(line)
    block = [f"{k}: {v}" for k, v in overrides.items()]
    return "\n".join([*kept, "# --- flink-sync test bed: pod network overrides ---", *block]) + "\n"


def _remove_flat_keys(tree: dict[str, Any], keys: set[str], prefix: str = "") -> None:
    for k in list(tree):
        full = f"{prefix}{k}"
        v = tree[k]
        if isinstance(v, dict):
            _remove_flat_keys(v, keys, full + ".")
            if not v:  # an emptied sub-map would flatten to nothing: drop it
                del tree[k]
        elif full in keys:
            del tree[k]


def override_standard(text: str, overrides: Mapping[str, str]) -> str:
    """Remove every (possibly nested) leaf that is overridden; add the overrides flat."""
    data = load_yaml12(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{STANDARD_CONF} is not a YAML map")
    _remove_flat_keys(data, set(overrides))
    # plain integers as YAML ints (ports); everything else as strings
    data.update({k: int(v) if re.fullmatch(r"[0-9]+", v) else v for k, v in overrides.items()})
    return "# flink-sync test bed: rewritten with pod network overrides (flat keys at the end)\n" + dump_yaml(data)


def apply_overrides(conf_dir: Path, overrides: Mapping[str, str]) -> list[Path]:
    """Apply ``overrides`` to every Flink config file present in ``conf_dir``; returns them."""
    changed = []
    legacy, standard = conf_dir / LEGACY_CONF, conf_dir / STANDARD_CONF
    if legacy.is_file():
        legacy.write_text(override_legacy(legacy.read_text(), overrides))
        changed.append(legacy)
    if standard.is_file():
        standard.write_text(override_standard(standard.read_text(), overrides))
        changed.append(standard)
    return changed
