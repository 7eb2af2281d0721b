"""Typed models of the `flink.apache.org/v1beta1` specs, field for field as the Apache CRDs declare them.

Field declaration order follows the Apache Java classes, because `lastReconciledSpec` is a JSON string
in that order (apache-operator-api.md §2.4) and STABLE is decided by string equality.
"""
from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

API_VERSION = "flink.apache.org/v1beta1"


class _Model(BaseModel):
    # Unknown fields are ignored, as the API server prunes them from a CR anyway.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Resource(_Model):
    cpu: float | None = None
    memory: str | None = None
    ephemeralStorage: str | None = None


class JobManagerSpec(_Model):
    resource: Resource | None = None
    resources: dict[str, Any] | None = None
    replicas: int = 1
    podTemplate: dict[str, Any] | None = None


class TaskManagerSpec(_Model):
    resource: Resource | None = None
    resources: dict[str, Any] | None = None
    replicas: int | None = None
    podTemplate: dict[str, Any] | None = None


class JobSpec(_Model):
    jarURI: str | None = None
    parallelism: int = 0
    entryClass: str | None = None
    args: list[str] = Field(default_factory=list)
    state: Literal["running", "suspended"] = "running"
    savepointTriggerNonce: int | None = None
    initialSavepointPath: str | None = None
    checkpointTriggerNonce: int | None = None
    upgradeMode: Literal["stateless", "savepoint", "last-state"] = "stateless"
    allowNonRestoredState: bool | None = None
    savepointRedeployNonce: int | None = None
    autoscalerResetNonce: int | None = None


class IngressSpec(_Model):
    template: str | None = None
    className: str | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    tls: list[dict[str, Any]] | None = None


class FlinkDeploymentSpec(_Model):
    job: JobSpec | None = None
    restartNonce: int | None = None
    flinkConfiguration: dict[str, Any] | None = None
    image: str | None = None
    imagePullPolicy: str | None = None
    serviceAccount: str | None = None
    flinkVersion: str | None = None
    ingress: IngressSpec | None = None
    podTemplate: dict[str, Any] | None = None
    jobManager: JobManagerSpec | None = None
    taskManager: TaskManagerSpec | None = None
    logConfiguration: dict[str, str] | None = None
    mode: Literal["native", "standalone"] | None = None


class FlinkSessionJobSpec(_Model):
    job: JobSpec | None = None
    restartNonce: int | None = None
    flinkConfiguration: dict[str, Any] | None = None
    deploymentName: str | None = None


class SpecError(ValueError):
    """A spec that cannot be used, with the field it is about (`spec.job.upgradeMode`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _describe(error: ValidationError) -> SpecError:
    first = error.errors()[0]
    field = "spec" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    message = first["msg"]
    if first.get("type") == "literal_error" and "input" in first:
        message = f"{first['input']!r} is not allowed; {message[0].lower()}{message[1:]}"
    return SpecError(field, message)


_Spec = TypeVar("_Spec", FlinkDeploymentSpec, FlinkSessionJobSpec)


def _parse(model: type[_Spec], raw: Any) -> _Spec:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SpecError("spec", "must be an object")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise _describe(error) from None


def parse_deployment_spec(raw: Any) -> FlinkDeploymentSpec:
    return _parse(FlinkDeploymentSpec, raw)


def parse_session_job_spec(raw: Any) -> FlinkSessionJobSpec:
    return _parse(FlinkSessionJobSpec, raw)


def spec_json(spec: FlinkDeploymentSpec | FlinkSessionJobSpec) -> dict[str, Any]:
    """The spec as a JSON-ready dict with every known field (nulls included), in Apache order."""
    return spec.model_dump(mode="json")


def serialize_reconciled(spec: FlinkDeploymentSpec | FlinkSessionJobSpec, first_deployment: bool) -> str:
    """`lastReconciledSpec` / `lastStableSpec`: `{"spec": …, "resource_metadata": …}` as one JSON string."""
    wrapper = {"spec": spec_json(spec),
               "resource_metadata": {"apiVersion": API_VERSION, "firstDeployment": first_deployment}}
    return json.dumps(wrapper, separators=(",", ":"), ensure_ascii=False)


def deserialize_reconciled(text: str | None) -> tuple[dict[str, Any] | None, bool]:
    """(spec dict, firstDeployment) from a recorded spec; accepts the legacy form without the wrapper."""
    if not text:
        return None, False
    data = json.loads(text)
    if isinstance(data, dict) and "resource_metadata" in data:
        return data.get("spec") or {}, bool((data.get("resource_metadata") or {}).get("firstDeployment"))
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "apiVersion"}
        return data, False
    return None, False
