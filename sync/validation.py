"""Spec validation: the Apache DefaultValidator rules (apache-operator-api.md §3.1, in that order) plus the
mistakes users make most, each answered with one message that names the field. Never raises for bad
input: `validate_deployment` returns the first error or None."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import flinkconf, versions
from .durations import DurationError, parse_duration
from .quantity import QuantityError, parse_k8s_quantity, parse_memory
from .schedule import ScheduleError, parse_schedule
from .render import ingress_url, is_ha_enabled
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


def _memory_error(component: str, field_prefix: str, spec: JobManagerSpec | TaskManagerSpec | None,
                  config: Mapping[str, str]) -> str | None:
    resources = (spec.resources if spec else None) or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    memory = requests.get("memory", limits.get("memory")) if (requests or limits) else None
    memory_field = f"{field_prefix}.resources.requests.memory"
    if memory is None and spec and spec.resource and spec.resource.memory and not (requests or limits):
        memory, memory_field = spec.resource.memory, f"{field_prefix}.resource.memory"
    process_key = f"{component.lower()}.memory.process.size"
    if memory is None:
        if config.get(process_key):
            try:
                parse_memory(config[process_key])
            except QuantityError as exc:
                return f"flinkConfiguration.{process_key}: {exc}"
            return None
        return (f"{field_prefix}.resource.memory: {_title(component)} resource memory must be defined using "
                f"'{field_prefix}.resource.memory' or '{field_prefix}.resources.requests.memory'")
    try:
        parse_memory(memory)
    except QuantityError as exc:
        return f"{memory_field}: {_title(component)} resource memory parse error: {exc}"
    if spec and spec.resource and spec.resource.ephemeralStorage:
        try:
            parse_k8s_quantity(spec.resource.ephemeralStorage)
        except QuantityError as exc:
            return f"{field_prefix}.resource.ephemeralStorage: {_title(component)} ephemeral storage parse error: {exc}"
    if spec and spec.resource and spec.resource.cpu is not None and spec.resource.cpu <= 0:
        return f"{field_prefix}.resource.cpu: {_title(component)} cpu must be positive"
    if spec and spec.resource and spec.resource.cpu is not None and spec.resource.cpu > MAX_CPU:
        return f"{field_prefix}.resource.cpu: {spec.resource.cpu} is more than a Kubernetes quantity can hold"
    for section, values in (("requests", requests), ("limits", limits)):
        for key, value in values.items():
            try:
                amount = parse_memory(value) if key == "memory" else parse_k8s_quantity(str(value))
            except QuantityError as exc:
                return f"{field_prefix}.resources.{section}.{key}: {exc}"
            if key in ("cpu", "memory") and amount <= 0:
                return f"{field_prefix}.resources.{section}.{key}: must be positive"
            if amount < 0:
                return f"{field_prefix}.resources.{section}.{key}: must not be negative"
    for key in ("cpu", "memory"):
        if key in requests and key in limits:
            low = parse_memory(requests[key]) if key == "memory" else parse_k8s_quantity(str(requests[key]))
            high = parse_memory(limits[key]) if key == "memory" else parse_k8s_quantity(str(limits[key]))
            if low > high:
                return f"{field_prefix}.resources.requests.{key}: request {requests[key]} exceeds limit {limits[key]}"
    return None


def _title(component: str) -> str:
    return "JobManager" if component.lower() == "jobmanager" else "TaskManager"


_LIST_OF_NAMED = ("containers", "initContainers", "volumes", "ephemeralContainers")
_CONTAINER_LISTS = ("env", "ports", "volumeMounts", "envFrom", "volumeDevices")


def pod_template_error(field: str, template: Any) -> str | None:
    """The shape checks a pod template must pass before it can be merged and rendered (the API server's
    schema checks the rest when the Deployment is applied)."""
    if template is None:
        return None
    if not isinstance(template, dict):
        return f"{field}: must be an object (a PodTemplateSpec)"
    for key in ("metadata", "spec"):
        if template.get(key) is not None and not isinstance(template[key], dict):
            return f"{field}.{key}: must be an object"
    meta = template.get("metadata") or {}
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, dict) or
                                  not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            return f"{field}.metadata.{key}: must map strings to strings"
    spec = template.get("spec") or {}
    for key in _LIST_OF_NAMED:
        items = spec.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return f"{field}.spec.{key}: must be a list"
        for index, item in enumerate(items):
            where = f"{field}.spec.{key}[{index}]"
            if not isinstance(item, dict):
                return f"{where}: must be an object"
            if not isinstance(item.get("name"), str) or not item["name"]:
                return f"{where}.name: required"
            if key in ("containers", "initContainers"):
                for sub in _CONTAINER_LISTS:
                    value = item.get(sub)
                    if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
                        return f"{where}.{sub}: must be a list of objects"
                for sub in ("resources", "startupProbe", "securityContext"):
                    if item.get(sub) is not None and not isinstance(item[sub], dict):
                        return f"{where}.{sub}: must be an object"
                for sub in ("args", "command"):
                    value = item.get(sub)
                    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                        return f"{where}.{sub}: must be a list of strings"
                resources = item.get("resources") or {}
                for section in ("requests", "limits"):
                    if resources.get(section) is not None and not isinstance(resources[section], dict):
                        return f"{where}.resources.{section}: must be an object"
    for key in ("nodeSelector",):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            return f"{field}.spec.{key}: must be an object"
    return None


def _job_errors(job: JobSpec, config: Mapping[str, str], tm_replicas: int | None, field: str = "spec.job") -> str | None:
    savepoint_dir = flinkconf.get_first(config, *SAVEPOINT_DIR_KEYS)
    if job.upgradeMode != "stateless" and not flinkconf.get_first(config, *CHECKPOINT_DIR_KEYS):
        return (f"{field}.upgradeMode: Checkpoint directory[{CHECKPOINT_DIR_KEYS[0]}] must be defined for last-state "
                "and savepoint upgrade modes (set it, or the deprecated state.checkpoints.dir, in spec.flinkConfiguration)")
    if not savepoint_dir:
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
    if job.parallelism > MAX_PARALLELISM:
        return f"{field}.parallelism: {job.parallelism} is over Flink's largest parallelism ({MAX_PARALLELISM})"
    if tm_replicas is not None:
        if tm_replicas < 1:
            return "spec.taskManager.replicas: TaskManager replicas must be larger than 0"
        total = tm_replicas * (_slot_count(config) or 1)
        if total > MAX_PARALLELISM:
            return (f"spec.taskManager.replicas: {tm_replicas} TaskManagers give the job a parallelism of {total}, over "
                    f"Flink's largest parallelism ({MAX_PARALLELISM})")
    elif job.parallelism < 1:
        return f"{field}.parallelism: Job parallelism must be larger than 0"
    return None


def _slot_count(config: Mapping[str, str]) -> int | None:
    """`taskmanager.numberOfTaskSlots` as Flink reads it (a Java int of at least 1), or None when unusable."""
    try:
        count = int(float(config.get("taskmanager.numberOfTaskSlots") or 1))
    except (ValueError, OverflowError):
        return None
    return count if 1 <= count <= INT32_MAX else None


def validate_deployment(name: str | None, spec: FlinkDeploymentSpec, config: Mapping[str, str],
                        reconciled: Mapping[str, Any] | None = None, reconciled_job_state: str | None = None,
                        extra: Iterable[Validator] = (), resource: Mapping[str, Any] | None = None) -> str | None:
    """The first problem of a FlinkDeployment, naming the field, or None.

    `config` is the effective user config (operator defaults + the CR's flinkConfiguration).
    `reconciled` is the last reconciled spec (a dict), for the spec-change rules."""
    error = validate_name(name)
    if error:
        return error
    if not spec.flinkVersion:
        return "spec.flinkVersion: Flink Version must be defined."
    if not versions.is_known(spec.flinkVersion):
        return (f"spec.flinkVersion: Flink version {spec.flinkVersion} is not supported; use one of "
                + ", ".join(versions.FLINK_VERSIONS))
    if reconciled and reconciled_job_state == "suspended":
        old_job = reconciled.get("job") or {}
        if (old_job.get("upgradeMode") == "last-state" and spec.job and spec.job.upgradeMode != "stateless"
                and reconciled.get("flinkVersion") not in (None, spec.flinkVersion)):
            return ("spec.flinkVersion: Changing flinkVersion after last-state suspend is not allowed. Restore your "
                    "cluster with the current flinkVersion and perform the version upgrade afterwards.")
    for field, template in (("spec.podTemplate", spec.podTemplate),
                            ("spec.jobManager.podTemplate", spec.jobManager.podTemplate if spec.jobManager else None),
                            ("spec.taskManager.podTemplate", spec.taskManager.podTemplate if spec.taskManager else None)):
        error = pod_template_error(field, template)
        if error:
            return error
    for field, component in (("spec.jobManager.resources", spec.jobManager), ("spec.taskManager.resources", spec.taskManager)):
        resources = component.resources if component else None
        if resources is not None:
            for section in ("requests", "limits"):
                if resources.get(section) is not None and not isinstance(resources[section], dict):
                    return f"{field}.{section}: must be an object"
    user_keys = flinkconf.flatten(spec.flinkConfiguration)
    for key in FORBIDDEN_KEYS + OPERATOR_OWNED_KEYS:
        if key in user_keys:
            return f"spec.flinkConfiguration.{key}: Forbidden Flink config key: {key} (flink-sync sets it)"
    if flinkconf.is_true(config, "kubernetes.operator.deployment.rollback.enabled") and not is_ha_enabled(config):
        # Apache requires HA. Without HA a rollback can only restore from the upgrade savepoint, so we
        # also allow it for savepoint and stateless jobs.
        if not spec.job or spec.job.upgradeMode == "last-state":
            return ("spec.flinkConfiguration.kubernetes.operator.deployment.rollback.enabled: HA must be enabled for "
                    "rollback support (or use upgradeMode savepoint or stateless).")
    if flinkconf.is_true(config, "kubernetes.operator.cluster.health-check.enabled") and \
            not flinkconf.is_true(config, "kubernetes.operator.jm-deployment-recovery.enabled", True):
        return ("spec.flinkConfiguration.kubernetes.operator.cluster.health-check.enabled: Deployment recovery "
                "(kubernetes.operator.jm-deployment-recovery.enabled) must be enabled for job health check "
                "(kubernetes.operator.cluster.health-check.enabled) support.")
    if spec.imagePullPolicy is not None and spec.imagePullPolicy not in PULL_POLICIES:
        return f"spec.imagePullPolicy: '{spec.imagePullPolicy}' is not one of {', '.join(PULL_POLICIES)}"
    if spec.ingress is not None:
        if not spec.ingress.template:
            return "spec.ingress.template: Ingress template must be defined"
        url = ingress_url(spec.ingress.template, name or "", "ns")
        try:
            parts = urlsplit(url)
            if not parts.hostname and not parts.path:
                raise ValueError("no host or path")
            _ = parts.port
        except ValueError as exc:
            return f"spec.ingress.template: Unable to process the Ingress template({spec.ingress.template}). Error: {exc}"
    for key in (spec.logConfiguration or {}):
        if key not in LOG_KEYS:
            return f"spec.logConfiguration.{key}: Invalid log config key: {key}. Allowed keys are [{', '.join(LOG_KEYS)}]"
    tm_replicas = spec.taskManager.replicas if spec.taskManager else None
    if spec.job is not None:
        error = _job_errors(spec.job, config, tm_replicas)
        if error:
            return error
    error = _memory_error("jobmanager", "spec.jobManager", spec.jobManager, config)
    if error:
        return error
    jm_replicas = spec.jobManager.replicas if spec.jobManager else 1
    if jm_replicas < 1:
        return "spec.jobManager.replicas: JobManager replicas should not be configured less than one."
    if jm_replicas > 1 and not is_ha_enabled(config):
        return "spec.jobManager.replicas: High availability should be enabled when starting standby JobManagers."
    error = _memory_error("taskmanager", "spec.taskManager", spec.taskManager, config)
    if error:
        return error
    if tm_replicas is not None and tm_replicas < 1:
        return "spec.taskManager.replicas: TaskManager replicas should not be configured less than one."
    key = "taskmanager.numberOfTaskSlots"
    if key in config and _slot_count(config) is None:
        return f"spec.flinkConfiguration.{key}: must be a whole number from 1 to {INT32_MAX}, got '{config[key]}'"
    if reconciled:
        was_session = reconciled.get("job") is None
        if was_session and spec.job is not None:
            return "spec.job: Cannot switch from session to job cluster"
        if not was_session and spec.job is None:
            return "spec.job: Cannot switch from job to session cluster"
        old_job = reconciled.get("job") or {}
        if spec.job and spec.job.savepointRedeployNonce is not None and \
                spec.job.savepointRedeployNonce != old_job.get("savepointRedeployNonce") and \
                not (spec.job.initialSavepointPath or "").strip():
            return "spec.job.initialSavepointPath: InitialSavepointPath must not be empty for savepoint redeployment"
    if not spec.serviceAccount:
        return ("spec.serviceAccount: spec.serviceAccount must be defined. If you use helm, its value should be the "
                "same with the name of jobServiceAccount.")
    return _run_extra("FlinkDeployment", resource, spec, config, extra)


def validate_session_job(name: str | None, spec: FlinkSessionJobSpec, config: Mapping[str, str],
                         reconciled: Mapping[str, Any] | None = None, session: Mapping[str, Any] | None = None,
                         extra: Iterable[Validator] = (), resource: Mapping[str, Any] | None = None) -> str | None:
    """The first problem of a FlinkSessionJob (apache-operator-api.md §3.2), or None."""
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
