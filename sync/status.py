"""Status helpers: lifecycle state (Apache's ResourceLifecycleState rules), conditions, the error JSON."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .spec import deserialize_reconciled

TERMINAL_JOB_STATES = {"FINISHED", "CANCELED", "FAILED"}
FAILED_ERROR_MARKERS = ("Manual restore required.",
                        "It is possible that the job has finished or terminally failed, or the configmaps have been deleted.",
                        "HA metadata is not available")
ERROR_FIELD_MAX = 2048


def error_json(kind: str, message: str, reason: str | None = None) -> str:
    """`status.error` as the Apache operator writes it: a JSON string with type and message."""
    body: dict[str, Any] = {"type": f"org.apache.flink.kubernetes.operator.exception.{kind}",
                            "message": message[:ERROR_FIELD_MAX], "additionalMetadata": {}, "throwableList": []}
    if reason:
        body["additionalMetadata"] = {"reason": reason}
    return json.dumps(body, separators=(",", ":"))


def error_message(error: str | None) -> str:
    if not error:
        return ""
    try:
        data = json.loads(error)
        return str(data.get("message", error)) if isinstance(data, dict) else error
    except ValueError:
        return error


def lifecycle_state(status: dict[str, Any], is_deployment: bool = True) -> str:
    """Derive `lifecycleState` by the Apache rule order."""
    current = status.get("lifecycleState")
    if current in ("DELETING", "DELETED"):
        return str(current)
    reconciliation = status.get("reconciliationStatus") or {}
    last_reconciled = reconciliation.get("lastReconciledSpec")
    error = status.get("error") or ""
    if not last_reconciled:
        return "FAILED" if error else "CREATED"
    state = reconciliation.get("state")
    if state in ("UPGRADING", "ROLLING_BACK"):
        return str(state)
    if _reconciled_suspended(last_reconciled):
        return "SUSPENDED"
    if _failed(status, error, is_deployment):
        return "FAILED"
    if state == "ROLLED_BACK":
        return "ROLLED_BACK"
    if last_reconciled == reconciliation.get("lastStableSpec"):
        return "STABLE"
    return "DEPLOYED"


def _reconciled_suspended(last_reconciled: Any) -> bool:
    """Whether the last reconciled spec has `job.state: suspended`."""
    spec, _ = deserialize_reconciled(last_reconciled)
    return ((spec or {}).get("job") or {}).get("state") == "suspended"


def _failed(status: dict[str, Any], error: str, is_deployment: bool) -> bool:
    """The job FAILED, or (deployments) the JobManager deployment is MISSING or ERROR and the error carries one of
    `FAILED_ERROR_MARKERS`."""
    if (status.get("jobStatus") or {}).get("state") == "FAILED":
        return True
    return is_deployment and status.get("jobManagerDeploymentStatus") in ("MISSING", "ERROR") and \
        any(marker in error for marker in FAILED_ERROR_MARKERS)


def set_condition(conditions: list[dict[str, Any]], ctype: str, value: bool, reason: str, message: str,
                  now_iso: str | Callable[[], str], generation: int) -> list[dict[str, Any]]:
    """Upsert a condition; `lastTransitionTime` moves only when the status flips (no hot loops). `now_iso` may be
    a function, called only on a flip (a sync that flips nothing does not read the time: sync/clock.py)."""
    text = "True" if value else "False"
    previous = next((c for c in conditions if c.get("type") == ctype), None)
    if previous and previous.get("status") == text:
        transition = previous.get("lastTransitionTime")
    else:
        transition = now_iso() if callable(now_iso) else now_iso
    new = {"type": ctype, "status": text, "reason": reason, "message": message,
           "lastTransitionTime": transition, "observedGeneration": generation}
    others = [c for c in conditions if c.get("type") != ctype]
    return sorted([*others, new], key=lambda c: c["type"])


def camel(state: str) -> str:
    return "".join(part.capitalize() for part in state.lower().split("_"))
