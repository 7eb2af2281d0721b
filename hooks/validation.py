"""One entry point to the core's validation for everything outside a sync: `flink-sync validate`/`render`
and the validating admission webhook (hooks/admission.py) ask the same rules, in the same order, with the
same messages as the sync writes into `status.error`.

A kind is validated when it is in `VALIDATORS`; adding a kind is one entry there and
one resource in the webhook's rules (manifests/components/admission-webhook).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync import flinkconf
from sync.jaruri import check_jar_uri
from sync.model import CoreSettings
from sync.sessionjob_submission import session_config
from sync.spec import SpecError, deserialize_reconciled, parse_deployment_spec, parse_session_job_spec
from sync.statesnapshot import parse_snapshot_spec
from sync.validation import validate_deployment, validate_session_job

CANARY_LABEL = "flink.apache.org/canary"


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs besides the resource: the operator defaults and plugin validators (CoreSettings),
    the server's jar allowlist, and the FlinkDeployments known with it (`flink-sync validate`'s input): a session
    job whose session cluster is among them is checked with that cluster's configuration, as the hook does."""
    core: CoreSettings
    jar_uri_allowlist: tuple[str, ...]
    session_clusters: tuple[Mapping[str, Any], ...] = ()


def _meta(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = resource.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _reconciled(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last reconciled spec in the resource's status, for the spec-change rules (an update of a deployed
    resource carries its status along)."""
    status = resource.get("status")
    recon = (status or {}).get("reconciliationStatus") if isinstance(status, Mapping) else None
    text = recon.get("lastReconciledSpec") if isinstance(recon, Mapping) else None
    try:
        spec, _ = deserialize_reconciled(text if isinstance(text, str) else None)
    except ValueError:
        return None  # the sync reports an unusable status itself; the spec alone is still checked
    return spec


def _deployment(resource: Mapping[str, Any], ctx: ValidationContext) -> str | None:
    meta = _meta(resource)
    spec = parse_deployment_spec(resource.get("spec"))
    config = flinkconf.effective_user_config(ctx.core.operator_defaults, meta.get("namespace") or "default",
                                             spec.flinkVersion, spec.flinkConfiguration)
    reconciled = _reconciled(resource)
    reconciled_state = ((reconciled or {}).get("job") or {}).get("state")
    return validate_deployment(meta.get("name"), spec, config, reconciled, reconciled_state,
                               extra=ctx.core.validators, resource=resource)


def _namespace(resource: Mapping[str, Any]) -> str:
    return _meta(resource).get("namespace") or "default"


def session_cluster(job: Mapping[str, Any], resources: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The FlinkDeployment a FlinkSessionJob names (spec.deploymentName, same namespace), if `resources` hold it."""
    wanted = (job.get("spec") or {}).get("deploymentName")
    return next((dict(r) for r in resources if r.get("kind") == "FlinkDeployment"
                 and _namespace(r) == _namespace(job) and _meta(r).get("name") == wanted), None)


def _session_job(resource: Mapping[str, Any], ctx: ValidationContext) -> str | None:
    meta = _meta(resource)
    spec = parse_session_job_spec(resource.get("spec"))
    session = session_cluster(resource, ctx.session_clusters)
    if session is not None:
        config = session_config(ctx.core, _namespace(resource), session, spec)
    else:
        config = flinkconf.effective_user_config(ctx.core.operator_defaults, _namespace(resource), None,
                                                 spec.flinkConfiguration)
    error = validate_session_job(meta.get("name"), spec, config, _reconciled(resource), session,
                                 extra=ctx.core.validators, resource=resource)
    if error is None and spec.job is not None and spec.job.jarURI:
        error = check_jar_uri(spec.job.jarURI, ctx.jar_uri_allowlist)
    return error


def _snapshot(resource: Mapping[str, Any], ctx: ValidationContext) -> str | None:
    parse_snapshot_spec(resource.get("spec"))  # raises SpecError naming the field
    return None


Validator = Callable[[Mapping[str, Any], ValidationContext], "str | None"]
# kind -> its validation. The admission webhook allows kinds not listed here.
VALIDATORS: dict[str, Validator] = {
    "FlinkDeployment": _deployment,
    "FlinkSessionJob": _session_job,
    "FlinkStateSnapshot": _snapshot,
}


def validation_error(resource: Mapping[str, Any], ctx: ValidationContext) -> str | None:
    """The first problem of a resource, naming the field, or None (also for kinds that are not validated and
    for canary resources, which Apache never validates either)."""
    validate = VALIDATORS.get(str(resource.get("kind")))
    if validate is None:
        return None
    if str((_meta(resource).get("labels") or {}).get(CANARY_LABEL, "")).lower() == "true":
        return None
    try:
        return validate(resource, ctx)
    except SpecError as exc:
        return str(exc)
