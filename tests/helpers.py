"""Shared test helpers: example CRs, a fixed clock, parent objects as Metacontroller sends them."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from sync.defaults import BUILTIN_OPERATOR_DEFAULTS
from sync.model import CoreSettings

TESTS = Path(__file__).parent
EXAMPLES = TESTS / "data" / "apache-examples"
GOLDEN = TESTS / "golden"
NOW_MS = 1_764_000_000_000  # a fixed clock: 2025-11-24T16:00:00Z
SETTINGS = CoreSettings(operator_defaults=dict(BUILTIN_OPERATOR_DEFAULTS), progress_interval_s=1.0,
                        stable_interval_s=60.0)


def example_resources(kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(relative path, resource) for every FlinkDeployment/FlinkSessionJob in the copied Apache examples."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("kind") in ("FlinkDeployment", "FlinkSessionJob"):
                if kind is None or doc["kind"] == kind:
                    rel = str(path.relative_to(EXAMPLES))
                    found.append((rel if index == 0 else f"{rel}#{index}", doc))
    return found


def as_parent(resource: dict[str, Any], namespace: str = "default", generation: int = 1,
              status: dict[str, Any] | None = None) -> dict[str, Any]:
    parent = copy.deepcopy(resource)
    meta = parent.setdefault("metadata", {})
    meta.setdefault("namespace", namespace)
    meta["generation"] = generation
    meta.setdefault("uid", f"uid-{meta.get('name')}")
    if status is not None:
        parent["status"] = copy.deepcopy(status)
    return parent


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=1)
