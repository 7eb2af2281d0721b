"""The cluster record: the deployment a FlinkDeployment's children are rendered from, and the copy of it the
JobManager Deployment carries (`flink-sync.io/cluster-record`) so that a lost status write is recognised."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..spec import FlinkDeploymentSpec, SpecError, parse_deployment_spec, spec_json

RECORD_ANNOTATION = "flink-sync.io/cluster-record"


def iso(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_record(spec: FlinkDeploymentSpec, job_id: str | None, restore_path: str | None, generation: int,
                   mark_stable: bool = False, seq: int = 1) -> dict[str, Any]:
    record: dict[str, Any] = {"spec": json.dumps(spec_json(spec), separators=(",", ":"), sort_keys=True),
                              "jobId": job_id, "restorePath": restore_path, "generation": generation, "seq": seq}
    if mark_stable:
        record["markStable"] = True
    return record


def record_annotation(record: dict[str, Any]) -> str:
    """The record a JobManager Deployment was rendered from, kept on it so that a sync whose status write was
    lost can be recognised later (the role of Apache's generation annotation)."""
    keep = {k: record.get(k) for k in ("seq", "jobId", "restorePath", "generation", "spec")}
    return json.dumps(keep, separators=(",", ":"), sort_keys=True)


def observed_record(jm: dict[str, Any] | None) -> dict[str, Any] | None:
    text = (((jm or {}).get("metadata") or {}).get("annotations") or {}).get(RECORD_ANNOTATION)
    if not text:
        return None
    try:
        record = json.loads(text)
        parse_deployment_spec(json.loads(record["spec"]))
        return record if isinstance(record.get("seq"), int) else None
    except (ValueError, KeyError, TypeError, SpecError):
        return None
