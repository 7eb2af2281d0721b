"""Typed models of the `flink.apache.org/v1beta1` specs, field for field as the Apache CRDs declare them.

Field declaration order follows the Apache Java classes, because `lastReconciledSpec` is a JSON string
in that order (Apache's ReconciliationUtils) and STABLE is decided by string equality.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .intake import deepest_path
from .intake import too_deep as nests_too_deep

API_VERSION = "flink.apache.org/v1beta1"
#: The Apache CRD's Java types: `int` fields hold a 32-bit integer, `Long` fields a 64-bit one. A value past
#: them is refused here, naming the field, as the Apache operator's deserialisation refuses it.
Int32 = Annotated[int, Field(ge=-2**31, le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-2**63, le=2**63 - 1)]
#: Deeper than any pod template; `flinkConfiguration` values may nest (the CRD allows it), but not without end.
SPEC_MAX_DEPTH = 64


class _Model(BaseModel):
    # Unknown fields are ignored, as the API server prunes them from a CR anyway.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Resource(_Model):
    cpu: float | None = Field(default=None, allow_inf_nan=False)
    memory: str | None = None
    ephemeralStorage: str | None = None


class JobManagerSpec(_Model):
    resource: Resource | None = None
    resources: dict[str, Any] | None = None
    replicas: Int32 = 1
    podTemplate: dict[str, Any] | None = None


class TaskManagerSpec(_Model):
    resource: Resource | None = None
    resources: dict[str, Any] | None = None
    replicas: Int32 | None = None
    podTemplate: dict[str, Any] | None = None


class JobSpec(_Model):
    jarURI: str | None = None
    parallelism: Int32 = 0
    entryClass: str | None = None
    args: list[str] = Field(default_factory=list)
    state: Literal["running", "suspended"] = "running"
    savepointTriggerNonce: Int64 | None = None
    initialSavepointPath: str | None = None
    checkpointTriggerNonce: Int64 | None = None
    upgradeMode: Literal["stateless", "savepoint", "last-state"] = "stateless"
    allowNonRestoredState: bool | None = None
    savepointRedeployNonce: Int64 | None = None
    autoscalerResetNonce: Int64 | None = None


class IngressSpec(_Model):
    template: str | None = None
    className: str | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    tls: list[dict[str, Any]] | None = None


class FlinkDeploymentSpec(_Model):
    job: JobSpec | None = None
    restartNonce: Int64 | None = None
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
    restartNonce: Int64 | None = None
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
    elif first.get("type") in ("less_than_equal", "greater_than_equal") and "input" in first:
        bits = 32 if abs(int((first.get("ctx") or {}).get("le", (first.get("ctx") or {}).get("ge", 0)))) < 2**32 else 64
        message = f"{first['input']} does not fit a {bits}-bit integer ({message[0].lower()}{message[1:]})"
    return SpecError(field, message)


_Spec = TypeVar("_Spec", FlinkDeploymentSpec, FlinkSessionJobSpec)


def _parse(model: type[_Spec], raw: Any) -> _Spec:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SpecError("spec", "must be an object")
    too_deep = deepest_path(raw, SPEC_MAX_DEPTH, "spec") if nests_too_deep(raw, SPEC_MAX_DEPTH) else None
    if too_deep:
        field = ".".join(too_deep.split("[", 1)[0].split(".")[:3])  # the field, not the whole way down
        raise SpecError(field, f"nested deeper than {SPEC_MAX_DEPTH} levels")
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
    """(spec dict, firstDeployment) from a recorded spec; accepts the legacy form without the wrapper.
    A text that is no spec at all raises ValueError: reading it as "nothing reconciled" would deploy anew."""
    if not text:
        return None, False
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the recorded spec is not a JSON object")
    if "resource_metadata" in data or set(data) <= {"spec", "apiVersion"} and "spec" in data:
        spec = data.get("spec")
        if spec is not None and not isinstance(spec, dict):
            raise ValueError("the recorded spec's 'spec' is not an object")
        return spec or {}, bool((data.get("resource_metadata") or {}).get("firstDeployment"))
    data = {k: v for k, v in data.items() if k != "apiVersion"}
    return data, False
