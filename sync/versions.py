"""Flink versions as the CRD spells them (`v1_13` … `v2_x`) and their order."""
from __future__ import annotations

import re

#: Every value of the Apache CRD's flinkVersion enum we accept (we go below Apache's v1_15 floor).
FLINK_VERSIONS: tuple[str, ...] = (
    "v1_13", "v1_14", "v1_15", "v1_16", "v1_17", "v1_18", "v1_19", "v1_20",
    "v2_0", "v2_1", "v2_2", "v2_3", "v2_4",
)
_VERSION = re.compile(r"^v(\d+)_(\d+)$")


def version_key(version: str) -> tuple[int, int]:
    """(major, minor) of `v1_20`; raises ValueError for anything else."""
    match = _VERSION.match(version or "")
    if not match:
        raise ValueError(f"not a Flink version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def is_known(version: str | None) -> bool:
    return version in FLINK_VERSIONS


def at_least(version: str, other: str) -> bool:
    return version_key(version) >= version_key(other)


def uses_config_yaml(version: str) -> bool:
    """Flink 2 reads only `config.yaml`; the Apache operator keeps `flink-conf.yaml` for every 1.x."""
    return version_key(version)[0] >= 2
