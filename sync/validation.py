"""Spec validation: the Apache DefaultValidator rules (in that order) plus the
mistakes users make most, each answered with one message that names the field. Never raises for bad
input: `validate_deployment` returns the first error or None."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import flinkconf, versions
from .autoscaler.config import AutoscalerConfigError, is_enabled, read_config
from .durations import DurationError, parse_duration
from .quantity import QuantityError, parse_k8s_quantity, parse_memory
from .render import ingress_url, is_ha_enabled
from .schedule import ScheduleError, parse_schedule
from .spec import FlinkDeploymentSpec, FlinkSessionJobSpec, JobManagerSpec, JobSpec, TaskManagerSpec

NAME_PATTERN = re.compile(r"^[a-z]([-a-z\d]{0,43}[a-z\d])?$")
FORBIDDEN_KEYS = ("kubernetes.namespace", "kubernetes.cluster-id", "high-availability.cluster-id")
# Keys flink-sync derives itself; a CR setting them would break the rendered cluster.
OPERATOR_OWNED_KEYS = ("execution.target", "kubernetes.internal.cluster-mode", "kubernetes.internal.taskmanager.replicas",
                       "$internal.flink.version", "jobmanager.rpc.address")
LOG_KEYS = ("log4j-console.properties", "logback-console.xml")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
CHECKPOINT_DIR_KEYS = ("execution.checkpointing.dir", "state.checkpoints.dir")
SAVEPOINT_DIR_KEYS = ("execution.checkpointing.savepoint-dir", "state.savepoints.dir")
#: Flink's upper bound of (max) parallelism (KeyGroupRangeAssignment.UPPER_BOUND_MAX_PARALLELISM = 2^15):
#: a job asking for more can never run.
MAX_PARALLELISM = 32768
INT32_MAX = 2**31 - 1
#: Kubernetes keeps CPU in millicores within an int64.
MAX_CPU = (2**63 - 1) // 1000

#: A custom validator (entry-point group `flink_sync.validators`): (kind, resource, spec, effective config) -> error or None.
Validator = Callable[[str, Mapping[str, Any], Any, Mapping[str, str]], "str | None"]


def validate_name(name: str | None, field: str = "metadata.name") -> str | None:
    if not name or not NAME_PATTERN.match(name):
        return (f"{field}: '{name}' is invalid: it must consist of lower case letters, digits and '-', start with a "
                "letter, end with a letter or digit, and be at most 45 characters")
    return None


def _first(*errors: Iterable[str | None]) -> str | None:
    """The first error of several lazily evaluated checks, or None."""
    for group in errors:
        for error in group:
            if error:
                return error
    return None


# ----------------------------------------------------------------- JobManager and TaskManager resources

@dataclass(frozen=True)
class _Component:
    """The resource fields of spec.jobManager or spec.taskManager, as one memory rule reads them."""
    name: str                   # jobmanager | taskmanager
    field: str                  # spec.jobManager | spec.taskManager
    spec: JobManagerSpec | TaskManagerSpec | None

    @property
    def title(self) -> str:
        return "JobManager" if self.name == "jobmanager" else "TaskManager"

    @property
    def requests(self) -> dict[str, Any]:
        return ((self.spec.resources if self.spec else None) or {}).get("requests") or {}

    @property
    def limits(self) -> dict[str, Any]:
        return ((self.spec.resources if self.spec else None) or {}).get("limits") or {}


def _amount(key: str, value: Any) -> Any:
    return parse_memory(value) if key == "memory" else parse_k8s_quantity(str(value))


def _memory_source(component: _Component) -> tuple[Any, str]:
    """The memory amount and the field it is written in: resources first, then resource.memory."""
    requests, limits = component.requests, component.limits
    if requests or limits:
        return requests.get("memory", limits.get("memory")), f"{component.field}.resources.requests.memory"
    resource = component.spec.resource if component.spec else None
    return (resource.memory if resource and resource.memory else None), f"{component.field}.resource.memory"


def _memory_defined(component: _Component, config: Mapping[str, str]) -> str | None:
    """Apache: memory from resource(s) or `<component>.memory.process.size`, which must parse."""
    memory, field = _memory_source(component)
    process_key = f"{component.name}.memory.process.size"
    if memory is None:
        if config.get(process_key):
            try:
                parse_memory(config[process_key])
            except QuantityError as exc:
                return f"flinkConfiguration.{process_key}: {exc}"
            return None
        return (f"{component.field}.resource.memory: {component.title} resource memory must be defined using "
                f"'{component.field}.resource.memory' or '{component.field}.resources.requests.memory'")
    try:
        parse_memory(memory)
    except QuantityError as exc:
        return f"{field}: {component.title} resource memory parse error: {exc}"
    return None


def _resource_fields(component: _Component) -> str | None:
    """resource.ephemeralStorage parses; resource.cpu is positive and fits a Kubernetes quantity."""
    resource = component.spec.resource if component.spec else None
    if resource is None:
        return None
    if resource.ephemeralStorage:
        try:
            parse_k8s_quantity(resource.ephemeralStorage)
        except QuantityError as exc:
            return (f"{component.field}.resource.ephemeralStorage: {component.title} ephemeral storage parse error: "
                    f"{exc}")
    if resource.cpu is not None and resource.cpu <= 0:
        return f"{component.field}.resource.cpu: {component.title} cpu must be positive"
    if resource.cpu is not None and resource.cpu > MAX_CPU:
        return f"{component.field}.resource.cpu: {resource.cpu} is more than a Kubernetes quantity can hold"
    return None


def _resources_amounts(component: _Component) -> str | None:
    """Every resources.requests/limits amount parses; cpu and memory are positive, nothing is negative."""
    for section, values in (("requests", component.requests), ("limits", component.limits)):
        for key, value in values.items():
            try:
                amount = _amount(key, value)
            except QuantityError as exc:
                return f"{component.field}.resources.{section}.{key}: {exc}"
            if key in ("cpu", "memory") and amount <= 0:
                return f"{component.field}.resources.{section}.{key}: must be positive"
            if amount < 0:
                return f"{component.field}.resources.{section}.{key}: must not be negative"
    return None


def _requests_within_limits(component: _Component) -> str | None:
    requests, limits = component.requests, component.limits
    for key in ("cpu", "memory"):
        if key in requests and key in limits and _amount(key, requests[key]) > _amount(key, limits[key]):
            return (f"{component.field}.resources.requests.{key}: request {requests[key]} exceeds limit "
                    f"{limits[key]}")
    return None


def _memory_error(component_name: str, field_prefix: str, spec: JobManagerSpec | TaskManagerSpec | None,
                  config: Mapping[str, str]) -> str | None:
    """The resource rules of one component, in order."""
    component = _Component(component_name.lower(), field_prefix, spec)
    error = _memory_defined(component, config)
    if error or _memory_source(component)[0] is None:
        return error
    return _first((rule(component) for rule in (_resource_fields, _resources_amounts, _requests_within_limits)),)


# ----------------------------------------------------------------- pod templates

_LIST_OF_NAMED = ("containers", "initContainers", "volumes", "ephemeralContainers")
_CONTAINER_LISTS = ("env", "ports", "volumeMounts", "envFrom", "volumeDevices")


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _template_shape(field: str, template: dict[str, Any]) -> Iterable[str | None]:
    for key in ("metadata", "spec"):
        if template.get(key) is not None and not isinstance(template[key], dict):
            yield f"{field}.{key}: must be an object"
            return
    meta = template.get("metadata") or {}
    for key in ("labels", "annotations"):
        if meta.get(key) is not None and not _string_map(meta[key]):
            yield f"{field}.metadata.{key}: must map strings to strings"


def _container_shape(where: str, container: dict[str, Any]) -> Iterable[str | None]:
    yield from _container_fields(where, container)
    yield from _container_resources(where, container)


def _container_fields(where: str, container: dict[str, Any]) -> Iterable[str | None]:
    for sub in _CONTAINER_LISTS:
        value = container.get(sub)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
            yield f"{where}.{sub}: must be a list of objects"
    for sub in ("resources", "startupProbe", "securityContext"):
        if container.get(sub) is not None and not isinstance(container[sub], dict):
            yield f"{where}.{sub}: must be an object"
    for sub in ("args", "command"):
        value = container.get(sub)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            yield f"{where}.{sub}: must be a list of strings"


def _container_resources(where: str, container: dict[str, Any]) -> Iterable[str | None]:
    found = container.get("resources")
    resources: dict[str, Any] = found if isinstance(found, dict) else {}
    for section in ("requests", "limits"):
        if resources.get(section) is not None and not isinstance(resources[section], dict):
            yield f"{where}.resources.{section}: must be an object"


def _named_items(field: str, spec: dict[str, Any]) -> Iterable[str | None]:
    for key in _LIST_OF_NAMED:
        items = spec.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            yield f"{field}.spec.{key}: must be a list"
            return
        for index, item in enumerate(items):
            where = f"{field}.spec.{key}[{index}]"
            if not isinstance(item, dict):
                yield f"{where}: must be an object"
            elif not isinstance(item.get("name"), str) or not item["name"]:
                yield f"{where}.name: required"
            elif key in ("containers", "initContainers"):
                yield from _container_shape(where, item)


def pod_template_error(field: str, template: Any) -> str | None:
    """The shape checks a pod template must pass before it can be merged and rendered (the API server's
    schema checks the rest when the Deployment is applied)."""
    if template is None:
        return None
    if not isinstance(template, dict):
        return f"{field}: must be an object (a PodTemplateSpec)"
    error = _first(_template_shape(field, template))
    if error:
        return error
    spec = template.get("spec") or {}
    node_selector = ([f"{field}.spec.nodeSelector: must be an object"]
                     if spec.get("nodeSelector") is not None and not isinstance(spec["nodeSelector"], dict) else [])
    return _first(_named_items(field, spec), node_selector)


# ----------------------------------------------------------------- the job

def _job_state_dirs(job: JobSpec, config: Mapping[str, str], field: str) -> str | None:
    """Checkpoint and savepoint directories for what the job asks (Apache's validateJobSpec)."""
    if job.upgradeMode != "stateless" and not flinkconf.get_first(config, *CHECKPOINT_DIR_KEYS):
        return (f"{field}.upgradeMode: Checkpoint directory[{CHECKPOINT_DIR_KEYS[0]}] must be defined for last-state "
                "and savepoint upgrade modes (set it, or the deprecated state.checkpoints.dir, in spec.flinkConfiguration)")
    if flinkconf.get_first(config, *SAVEPOINT_DIR_KEYS):
        return None
    key = SAVEPOINT_DIR_KEYS[0]
    if job.upgradeMode == "savepoint":
        return f"{field}.upgradeMode: Job could not be upgraded with savepoint while config key[{key}] is not set"
    if job.savepointTriggerNonce is not None:
        return (f"{field}.savepointTriggerNonce: Savepoint could not be manually triggered for the running job "
                f"while config key[{key}] is not set")
    if config.get("kubernetes.operator.periodic.savepoint.interval") not in (None, "", "0"):
        return (f"spec.flinkConfiguration.kubernetes.operator.periodic.savepoint.interval: Periodic savepoints "
                f"cannot be enabled when config key[{key}] is not set")
    if config.get("kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age"):
        return (f"spec.flinkConfiguration.kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age: "
                f"In order to use max-checkpoint age functionality config key[{key}] must be set to allow "
                "triggering savepoint upgrades.")
    return None


def _job_schedules(config: Mapping[str, str]) -> str | None:
    """Periodic snapshot schedules and the durations the operator reads parse."""
    for key in ("kubernetes.operator.periodic.savepoint.interval", "kubernetes.operator.periodic.checkpoint.interval"):
        try:
            parse_schedule(config.get(key))  # a duration or a Quartz cron expression
        except ScheduleError as exc:
            return f"spec.flinkConfiguration.{key}: {exc}"
    for key in ("kubernetes.operator.savepoint.history.max.age", "kubernetes.operator.deployment.readiness.timeout"):
        if config.get(key):
            try:
                parse_duration(config[key])
            except DurationError as exc:
                return f"spec.flinkConfiguration.{key}: {exc}"
    return None


def _job_parallelism(job: JobSpec, config: Mapping[str, str], tm_replicas: int | None, field: str) -> str | None:
    if job.parallelism > MAX_PARALLELISM:
        return f"{field}.parallelism: {job.parallelism} is over Flink's largest parallelism ({MAX_PARALLELISM})"
    if tm_replicas is not None:
        if tm_replicas < 1:
            return "spec.taskManager.replicas: TaskManager replicas must be larger than 0"
        total = tm_replicas * (flinkconf.task_slots(config) or 1)
        if total > MAX_PARALLELISM:
            return (f"spec.taskManager.replicas: {tm_replicas} TaskManagers give the job a parallelism of {total}, over "
                    f"Flink's largest parallelism ({MAX_PARALLELISM})")
    elif job.parallelism < 1:
        return f"{field}.parallelism: Job parallelism must be larger than 0"
    return None


def _job_errors(job: JobSpec, config: Mapping[str, str], tm_replicas: int | None, field: str = "spec.job") -> str | None:
    return (_job_state_dirs(job, config, field) or _job_schedules(config)
            or _job_parallelism(job, config, tm_replicas, field))


# ----------------------------------------------------------------- FlinkDeployment: one rule each, Apache's order

@dataclass(frozen=True)
class DeploymentCheck:
    """What a FlinkDeployment rule reads: the spec, its effective config and the last reconciled spec."""
    name: str | None
    spec: FlinkDeploymentSpec
    config: Mapping[str, str]
    reconciled: Mapping[str, Any] | None
    reconciled_job_state: str | None

    @property
    def tm_replicas(self) -> int | None:
        return self.spec.taskManager.replicas if self.spec.taskManager else None

    @property
    def jm_replicas(self) -> int:
        return self.spec.jobManager.replicas if self.spec.jobManager else 1


def _rule_name(c: DeploymentCheck) -> str | None:
    return validate_name(c.name)


def _rule_flink_version(c: DeploymentCheck) -> str | None:
    if not c.spec.flinkVersion:
        return "spec.flinkVersion: Flink Version must be defined."
    if not versions.is_known(c.spec.flinkVersion):
        return (f"spec.flinkVersion: Flink version {c.spec.flinkVersion} is not supported; use one of "
                + ", ".join(versions.FLINK_VERSIONS))
    return None


def _rule_version_after_last_state_suspend(c: DeploymentCheck) -> str | None:
    if not c.reconciled or c.reconciled_job_state != "suspended":
        return None
    old_job = c.reconciled.get("job") or {}
    if (old_job.get("upgradeMode") == "last-state" and c.spec.job and c.spec.job.upgradeMode != "stateless"
            and c.reconciled.get("flinkVersion") not in (None, c.spec.flinkVersion)):
        return ("spec.flinkVersion: Changing flinkVersion after last-state suspend is not allowed. Restore your "
                "cluster with the current flinkVersion and perform the version upgrade afterwards.")
    return None


def _rule_pod_templates(c: DeploymentCheck) -> str | None:
    spec = c.spec
    return _first(pod_template_error(field, template) for field, template in (
        ("spec.podTemplate", spec.podTemplate),
        ("spec.jobManager.podTemplate", spec.jobManager.podTemplate if spec.jobManager else None),
        ("spec.taskManager.podTemplate", spec.taskManager.podTemplate if spec.taskManager else None)))


def _rule_resources_shape(c: DeploymentCheck) -> str | None:
    for field, component in (("spec.jobManager.resources", c.spec.jobManager),
                             ("spec.taskManager.resources", c.spec.taskManager)):
        resources = (component.resources if component else None) or {}
        for section in ("requests", "limits"):
            if resources.get(section) is not None and not isinstance(resources[section], dict):
                return f"{field}.{section}: must be an object"
    return None


def _rule_forbidden_keys(c: DeploymentCheck) -> str | None:
    user_keys = flinkconf.flatten(c.spec.flinkConfiguration)
    for key in FORBIDDEN_KEYS + OPERATOR_OWNED_KEYS:
        if key in user_keys:
            return f"spec.flinkConfiguration.{key}: Forbidden Flink config key: {key} (flink-sync sets it)"
    return None


def _rule_rollback_needs_ha(c: DeploymentCheck) -> str | None:
    # Apache requires HA. Without HA a rollback can only restore from the upgrade savepoint, so we
    # also allow it for savepoint and stateless jobs.
    if flinkconf.is_true(c.config, "kubernetes.operator.deployment.rollback.enabled") and not is_ha_enabled(c.config) \
            and (not c.spec.job or c.spec.job.upgradeMode == "last-state"):
        return ("spec.flinkConfiguration.kubernetes.operator.deployment.rollback.enabled: HA must be enabled for "
                "rollback support (or use upgradeMode savepoint or stateless).")
    return None


def _rule_health_check_needs_recovery(c: DeploymentCheck) -> str | None:
    if flinkconf.is_true(c.config, "kubernetes.operator.cluster.health-check.enabled") and \
            not flinkconf.is_true(c.config, "kubernetes.operator.jm-deployment-recovery.enabled", True):
        return ("spec.flinkConfiguration.kubernetes.operator.cluster.health-check.enabled: Deployment recovery "
                "(kubernetes.operator.jm-deployment-recovery.enabled) must be enabled for job health check "
                "(kubernetes.operator.cluster.health-check.enabled) support.")
    return None


def _rule_image_pull_policy(c: DeploymentCheck) -> str | None:
    if c.spec.imagePullPolicy is not None and c.spec.imagePullPolicy not in PULL_POLICIES:
        return f"spec.imagePullPolicy: '{c.spec.imagePullPolicy}' is not one of {', '.join(PULL_POLICIES)}"
    return None


def _rule_ingress(c: DeploymentCheck) -> str | None:
    if c.spec.ingress is None:
        return None
    if not c.spec.ingress.template:
        return "spec.ingress.template: Ingress template must be defined"
    url = ingress_url(c.spec.ingress.template, c.name or "", "ns")
    try:
        parts = urlsplit(url)
        if not parts.hostname and not parts.path:
            raise ValueError("no host or path")
        _ = parts.port
    except ValueError as exc:
        return f"spec.ingress.template: Unable to process the Ingress template({c.spec.ingress.template}). Error: {exc}"
    return None


def _rule_log_configuration(c: DeploymentCheck) -> str | None:
    for key in (c.spec.logConfiguration or {}):
        if key not in LOG_KEYS:
            return f"spec.logConfiguration.{key}: Invalid log config key: {key}. Allowed keys are [{', '.join(LOG_KEYS)}]"
    return None


def _rule_job(c: DeploymentCheck) -> str | None:
    return _job_errors(c.spec.job, c.config, c.tm_replicas) if c.spec.job is not None else None


def _rule_jobmanager_memory(c: DeploymentCheck) -> str | None:
    return _memory_error("jobmanager", "spec.jobManager", c.spec.jobManager, c.config)


def _rule_jobmanager_replicas(c: DeploymentCheck) -> str | None:
    if c.jm_replicas < 1:
        return "spec.jobManager.replicas: JobManager replicas should not be configured less than one."
    if c.jm_replicas > 1 and not is_ha_enabled(c.config):
        return "spec.jobManager.replicas: High availability should be enabled when starting standby JobManagers."
    return None


def _rule_taskmanager_memory(c: DeploymentCheck) -> str | None:
    return _memory_error("taskmanager", "spec.taskManager", c.spec.taskManager, c.config)


def _rule_taskmanager_replicas(c: DeploymentCheck) -> str | None:
    if c.tm_replicas is not None and c.tm_replicas < 1:
        return "spec.taskManager.replicas: TaskManager replicas should not be configured less than one."
    return None


def _rule_task_slots(c: DeploymentCheck) -> str | None:
    key = "taskmanager.numberOfTaskSlots"
    if key in c.config and flinkconf.task_slots(c.config) is None:
        return f"spec.flinkConfiguration.{key}: must be a whole number from 1 to {INT32_MAX}, got '{c.config[key]}'"
    return None


def _rule_cluster_kind_unchanged(c: DeploymentCheck) -> str | None:
    if not c.reconciled:
        return None
    was_session = c.reconciled.get("job") is None
    if was_session and c.spec.job is not None:
        return "spec.job: Cannot switch from session to job cluster"
    if not was_session and c.spec.job is None:
        return "spec.job: Cannot switch from job to session cluster"
    return None


def _rule_savepoint_redeploy_path(c: DeploymentCheck) -> str | None:
    if not c.reconciled or not c.spec.job or c.spec.job.savepointRedeployNonce is None:
        return None
    old_job = c.reconciled.get("job") or {}
    if c.spec.job.savepointRedeployNonce != old_job.get("savepointRedeployNonce") and \
            not (c.spec.job.initialSavepointPath or "").strip():
        return "spec.job.initialSavepointPath: InitialSavepointPath must not be empty for savepoint redeployment"
    return None


def _rule_service_account(c: DeploymentCheck) -> str | None:
    if not c.spec.serviceAccount:
        return ("spec.serviceAccount: spec.serviceAccount must be defined. If you use helm, its value should be the "
                "same with the name of jobServiceAccount.")
    return None


#: The FlinkDeployment rules, in the order of Apache's DefaultValidator: the first
#: error is the one reported.
def _rule_autoscaler(check: DeploymentCheck) -> str | None:
    """Apache's AutoscalerValidator, only when the autoscaler is enabled; the message names the key."""
    if check.spec.job is None or not is_enabled(check.config):
        return None
    try:
        read_config(check.config)
    except AutoscalerConfigError as exc:
        return f"spec.flinkConfiguration: {exc}"
    return None


DEPLOYMENT_RULES: tuple[Callable[[DeploymentCheck], str | None], ...] = (
    _rule_name, _rule_flink_version, _rule_version_after_last_state_suspend, _rule_pod_templates,
    _rule_resources_shape, _rule_forbidden_keys, _rule_rollback_needs_ha, _rule_health_check_needs_recovery,
    _rule_image_pull_policy, _rule_ingress, _rule_log_configuration, _rule_job, _rule_jobmanager_memory,
    _rule_jobmanager_replicas, _rule_taskmanager_memory, _rule_taskmanager_replicas, _rule_task_slots,
    _rule_cluster_kind_unchanged, _rule_savepoint_redeploy_path, _rule_service_account, _rule_autoscaler,
)


def validate_deployment(name: str | None, spec: FlinkDeploymentSpec, config: Mapping[str, str],
                        reconciled: Mapping[str, Any] | None = None, reconciled_job_state: str | None = None,
                        extra: Iterable[Validator] = (), resource: Mapping[str, Any] | None = None) -> str | None:
    """The first problem of a FlinkDeployment, naming the field, or None.

    `config` is the effective user config (operator defaults + the CR's flinkConfiguration).
    `reconciled` is the last reconciled spec (a dict), for the spec-change rules."""
    check = DeploymentCheck(name, spec, config, reconciled, reconciled_job_state)
    error = _first(rule(check) for rule in DEPLOYMENT_RULES)
    return error or _run_extra("FlinkDeployment", resource, spec, config, extra)


def validate_session_job(name: str | None, spec: FlinkSessionJobSpec, config: Mapping[str, str],
                         reconciled: Mapping[str, Any] | None = None, session: Mapping[str, Any] | None = None,
                         extra: Iterable[Validator] = (), resource: Mapping[str, Any] | None = None) -> str | None:
    """The first problem of a FlinkSessionJob (Apache's DefaultValidator for session jobs), or None."""
    error = validate_name(spec.deploymentName, "spec.deploymentName")
    if error:
        return error
    if spec.job is None:
        return "spec.job: The job spec should not be empty"
    if reconciled and reconciled.get("deploymentName") not in (None, spec.deploymentName):
        return "spec.deploymentName: The deploymentName can't be changed"
    if not spec.job.jarURI:
        return "spec.job.jarURI: must be set for a session job (the jar to upload to the session cluster)"
    if spec.job.upgradeMode == "last-state":
        return ("spec.job.upgradeMode: last-state is not supported for FlinkSessionJob (there is no HA metadata per "
                "session job); use savepoint or stateless")
    if session is not None and (session.get("spec") or {}).get("job") is not None:
        return f"spec.deploymentName: Can not submit session job to application cluster '{spec.deploymentName}'"
    error = _job_errors(spec.job, config, None)
    if error:
        return error
    return _run_extra("FlinkSessionJob", resource, spec, config, extra)


def _run_extra(kind: str, resource: Mapping[str, Any] | None, spec: Any, config: Mapping[str, str],
               extra: Iterable[Validator]) -> str | None:
    for validator in extra:
        name = getattr(validator, "__name__", type(validator).__name__)
        try:
            error = validator(kind, resource or {}, spec, config)
        except Exception as exc:  # a plugin's bug must not crash the hook; report it like a rule
            return f"validator {name} failed: {type(exc).__name__}: {exc}"
        if error:
            return str(error)
    return None
