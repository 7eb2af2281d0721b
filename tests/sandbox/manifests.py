"""The FlinkDeployment the sandbox tests run: the counter job (tests/flinkbed/job.py) on a small cluster.

Each test file states only what its case needs (slots, upgrade mode, configuration, a pod template) on top of
this one manifest."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.flinkbed import COUNTER_JOB_CLASS, counter_args


def flink_version_name(version: str) -> str:
    """`1.20` -> `v1_20`, the spec's flinkVersion."""
    return "v" + version.replace(".", "_")


def checkpointed(state_dir: Path, interval: str = "2 s") -> dict[str, str]:
    """Savepoints and checkpoints in a directory of the test's, checkpoints every `interval`."""
    return {"state.savepoints.dir": f"file://{state_dir}/savepoints",
            "state.checkpoints.dir": f"file://{state_dir}/checkpoints",
            "execution.checkpointing.interval": interval}


def counter_deployment(name: str, jar: Path, *, version: str = "1.20", slots: int = 2, parallelism: int = 1,
                       upgrade_mode: str = "savepoint", config: dict[str, str] | None = None,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The counter job as a FlinkDeployment; `overrides` is merged into the spec (dictionaries key by key)."""
    spec = {
        "image": f"flink:{version}", "flinkVersion": flink_version_name(version), "serviceAccount": "flink",
        "flinkConfiguration": {"taskmanager.numberOfTaskSlots": str(slots), **(config or {})},
        "jobManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
        "taskManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
        "job": {"jarURI": f"local://{jar}", "entryClass": COUNTER_JOB_CLASS, "parallelism": parallelism,
                "args": counter_args(rate=20, keys=4), "upgradeMode": upgrade_mode},
    }
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment", "metadata": {"name": name},
            "spec": _merged(spec, overrides or {})}


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
