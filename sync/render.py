"""Render the Kubernetes children of a standalone Flink cluster (what the Apache operator's standalone mode deploys).

`render_cluster(plan)` is a pure function of a `ClusterPlan`: the spec being deployed plus what the
status recorded for this deployment (job id, restore path, generation). Output is deterministic.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import flinkconf, versions
from .defaults import DEFAULT_LOG4J_CONSOLE
from .podtemplate import MAIN_CONTAINER, component_template, upsert_by_name
from .quantity import MIB, canonical_binary, canonical_decimal, canonical_quantity, flink_memory_text, parse_memory
from .spec import FlinkDeploymentSpec, JobManagerSpec, JobSpec, Resource, TaskManagerSpec

CONF_DIR = "/opt/flink/conf"
USRLIB_DIR = "/opt/flink/usrlib"
ENTRYPOINT = "/docker-entrypoint.sh"
GENERATION_ANNOTATION = "flinkdeployment.flink.apache.org/generation"
LAST_STATE_DUMMY_PATH = "KUBERNETES_OPERATOR_LAST_STATE"
LOG_FILES = ("log4j-console.properties", "logback-console.xml")

# Keys the cluster config never carries (operator-only, or per-pod bind addresses).
_STRIPPED_KEYS = {"kubernetes.config.file", "$internal.deployment.config-dir", "rest.bind-address",
                  "jobmanager.bind-host", "taskmanager.bind-host", "taskmanager.host"}
_STRIPPED_PREFIXES = ("kubernetes.operator.", "job.autoscaler.")


@dataclass(frozen=True)
class ClusterPlan:
    """Everything that decides the children of one deployed cluster."""

    name: str
    namespace: str
    spec: FlinkDeploymentSpec
    generation: int
    job_id: str | None = None
    restore_path: str | None = None
    operator_defaults: dict[str, str] = field(default_factory=dict)


def labels_common(name: str) -> dict[str, str]:
    return {"type": "flink-standalone-kubernetes", "app": name}


def labels_component(name: str, component: str) -> dict[str, str]:
    return {**labels_common(name), "component": component}


def is_ha_enabled(config: Mapping[str, str]) -> bool:
    mode = flinkconf.get_first(config, "high-availability.type", "high-availability")
    return mode is not None and bool(mode) and mode.strip().upper() != "NONE"


def is_kubernetes_ha(config: dict[str, str]) -> bool:
    mode = (flinkconf.get_first(config, "high-availability.type", "high-availability") or "").strip().lower()
    return mode in {"kubernetes", "org.apache.flink.kubernetes.highavailability.kuberneteshaservicesfactory"}


def slots(config: dict[str, str]) -> int:
    """The task slots per TaskManager (validation refused an unusable value; 1 stands in for one here)."""
    return flinkconf.task_slots(config) or 1


def _override_parallelism(config: dict[str, str]) -> int:
    text = config.get("pipeline.jobvertex-parallelism-overrides") or ""
    values = []
    for item in text.split(","):
        _, _, value = item.partition(":")
        if value.strip().isdigit():
            values.append(int(value.strip()))
    return max(values, default=0)


def parallelism_and_replicas(spec: FlinkDeploymentSpec, config: dict[str, str]) -> tuple[int | None, int]:
    """(parallelism.default or None for sessions, TaskManager replicas), as the Apache operator derives them."""
    tm_replicas = spec.taskManager.replicas if spec.taskManager else None
    if spec.job is None:
        return None, tm_replicas if tm_replicas is not None else 1
    slot_count = slots(config)
    if tm_replicas is not None:
        return tm_replicas * slot_count, tm_replicas
    parallelism = _override_parallelism(config) or spec.job.parallelism or 1
    return parallelism, max(1, math.ceil(parallelism / slot_count))


@dataclass(frozen=True)
class ComponentResources:
    cpu: float
    memory_bytes: int | None
    cpu_limit_factor: float = 1.0
    memory_limit_factor: float = 1.0
    extra_requests: dict[str, str] = field(default_factory=dict)
    extra_limits: dict[str, str] = field(default_factory=dict)


def _resources_block(component: JobManagerSpec | TaskManagerSpec | None) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = (component.resources if component else None) or {}
    return dict(resources.get("requests") or {}), dict(resources.get("limits") or {})


def component_resources(component: JobManagerSpec | TaskManagerSpec | None, config: dict[str, str],
                        process_size_key: str, default_cpu: float) -> ComponentResources:
    """CPU and memory of a JM/TM from `resources` (wins when it has any entry) or `resource`, as the Apache operator reads them."""
    requests, limits = _resources_block(component)
    if requests or limits:
        res = _from_kubernetes_resources(requests, limits, default_cpu)
    else:
        res = _from_flink_resource(component.resource if component else None, default_cpu)
    if res.memory_bytes is None and config.get(process_size_key):
        res = dataclasses.replace(res, memory_bytes=parse_memory(config[process_size_key]))
    return res


def _from_kubernetes_resources(requests: dict[str, Any], limits: dict[str, Any], default_cpu: float) -> ComponentResources:
    """`resources`: the request (else the limit) is the amount; limit / request is the limit factor."""
    cpu_text = requests.get("cpu", limits.get("cpu"))
    memory_text = requests.get("memory", limits.get("memory"))
    cpu = float(_cpu_value(cpu_text)) if cpu_text is not None else default_cpu
    memory = parse_memory(memory_text) if memory_text is not None else None
    return ComponentResources(cpu, memory, _cpu_limit_factor(requests, limits), _memory_limit_factor(requests, limits),
                              _other_quantities(requests), _other_quantities(limits))


def _cpu_limit_factor(requests: dict[str, Any], limits: dict[str, Any]) -> float:
    if "cpu" in requests and "cpu" in limits and float(_cpu_value(requests["cpu"])) > 0:
        return float(_cpu_value(limits["cpu"])) / float(_cpu_value(requests["cpu"]))
    return 1.0


def _memory_limit_factor(requests: dict[str, Any], limits: dict[str, Any]) -> float:
    if "memory" in requests and "memory" in limits:
        return parse_memory(limits["memory"]) / parse_memory(requests["memory"])
    return 1.0


def _other_quantities(amounts: dict[str, Any]) -> dict[str, str]:
    """The entries besides cpu and memory (GPUs, ephemeral storage...), passed through canonicalised."""
    return {k: canonical_quantity(v) for k, v in amounts.items() if k not in ("cpu", "memory")}


def _from_flink_resource(resource: Resource | None, default_cpu: float) -> ComponentResources:
    """`resource` (cpu, memory, ephemeralStorage): no limit factors; ephemeral storage is both request and limit."""
    cpu = resource.cpu if resource and resource.cpu is not None else default_cpu
    memory = parse_memory(resource.memory) if resource and resource.memory else None
    if resource and resource.ephemeralStorage:
        storage = canonical_quantity(resource.ephemeralStorage)
        return ComponentResources(cpu, memory, extra_requests={"ephemeral-storage": storage},
                                  extra_limits={"ephemeral-storage": storage})
    return ComponentResources(cpu, memory)


def _cpu_value(text: Any) -> float:
    from .quantity import parse_k8s_quantity
    return float(parse_k8s_quantity(str(text)))


def job_result_store_id(plan: ClusterPlan) -> str:
    """Apache uses a random UUID per deploy; ours is derived from the recorded job id so re-rendering is stable."""
    return hashlib.sha256(f"{plan.name}/{plan.job_id}/{plan.generation}".encode()).hexdigest()[:32]


def effective_config(plan: ClusterPlan) -> dict[str, str]:
    """The whole effective Flink configuration of the cluster, operator keys included."""
    spec = plan.spec
    version = spec.flinkVersion or "v1_20"
    config = flinkconf.effective_user_config(plan.operator_defaults, plan.namespace, version, spec.flinkConfiguration)
    old_keys = not versions.at_least(version, "v1_17") if versions.is_known(version) else False

    config.setdefault("kubernetes.rest-service.exposed.type", "ClusterIP")
    config.setdefault("web.cancel.enable", "false")
    config["$internal.flink.version"] = version
    _set_image_and_account(config, spec, old_keys)

    jm = component_resources(spec.jobManager, config, "jobmanager.memory.process.size", 1.0)
    tm = component_resources(spec.taskManager, config, "taskmanager.memory.process.size", float(slots(config)))
    _set_component_resources(config, "jobmanager", jm, old_keys)
    _set_component_resources(config, "taskmanager", tm, old_keys)
    jm_replicas = spec.jobManager.replicas if spec.jobManager else 1
    config["kubernetes.jobmanager.replicas"] = str(jm_replicas)

    parallelism, tm_replicas = parallelism_and_replicas(spec, config)
    _set_cluster_identity(config, plan, tm_replicas)
    if spec.job is not None:
        _set_application(config, spec.job, plan.name, parallelism)
        _set_restore(config, plan)
        _set_job_result_store(config, plan)
    _set_fixed_ports(config, plan)
    return config


def _set_image_and_account(config: dict[str, str], spec: FlinkDeploymentSpec, old_keys: bool) -> None:
    """The container image (`kubernetes.container.image.ref`; `kubernetes.container.image` for known versions
    before v1_17), its pull policy and the service account, when the spec sets them."""
    image = container_image(spec)
    config["kubernetes.container.image" if old_keys else "kubernetes.container.image.ref"] = image
    if spec.imagePullPolicy:
        config["kubernetes.container.image.pull-policy"] = spec.imagePullPolicy
    if spec.serviceAccount:
        config["kubernetes.service-account"] = spec.serviceAccount


def _set_component_resources(config: dict[str, str], prefix: str, res: ComponentResources, old_keys: bool) -> None:
    """`<prefix>.memory.process.size` (when known) and `kubernetes.<prefix>.cpu.amount` (also
    `kubernetes.<prefix>.cpu` for known versions before v1_17), and the limit factors when they are not 1."""
    if res.memory_bytes is not None:
        config[f"{prefix}.memory.process.size"] = flink_memory_text(res.memory_bytes)
    config[f"kubernetes.{prefix}.cpu.amount"] = _float_text(res.cpu)
    if old_keys:
        config[f"kubernetes.{prefix}.cpu"] = _float_text(res.cpu)
    if res.cpu_limit_factor != 1.0:
        config[f"kubernetes.{prefix}.cpu.limit-factor"] = _float_text(res.cpu_limit_factor)
    if res.memory_limit_factor != 1.0:
        config[f"kubernetes.{prefix}.memory.limit-factor"] = _float_text(res.memory_limit_factor)


def _set_cluster_identity(config: dict[str, str], plan: ClusterPlan, tm_replicas: int) -> None:
    """Where the cluster runs and what it is called; with HA, its HA cluster id and JobManager port."""
    config["kubernetes.internal.taskmanager.replicas"] = str(tm_replicas)
    config["execution.target"] = "remote"
    config["kubernetes.internal.cluster-mode"] = "SESSION" if plan.spec.job is None else "APPLICATION"
    config["kubernetes.namespace"] = plan.namespace
    config["kubernetes.cluster-id"] = plan.name
    if is_ha_enabled(config):
        config["high-availability.cluster-id"] = plan.name
        if not config.get("high-availability.jobmanager.port") or config["high-availability.jobmanager.port"] == "0":
            config["high-availability.jobmanager.port"] = config.get("jobmanager.rpc.port") or "6123"


def _set_application(config: dict[str, str], job: JobSpec, name: str, parallelism: int | None) -> None:
    """The application: its jar, parallelism, name, entry class and arguments, and checkpointing defaults."""
    if job.jarURI:
        config["pipeline.classpaths"] = re.sub(r"^local://", "file://", job.jarURI)
    config["parallelism.default"] = str(parallelism)
    config["execution.shutdown-on-application-finish"] = "false"
    config.setdefault("execution.submit-failed-job-on-application-error", "true")
    config.setdefault("pipeline.name", name)
    if job.upgradeMode == "last-state":
        config.setdefault("execution.checkpointing.interval", "5 min")
    config.setdefault("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if job.allowNonRestoredState is not None:
        config["execution.savepoint.ignore-unclaimed-state"] = "true" if job.allowNonRestoredState else "false"
    if job.entryClass:
        config["$internal.application.main"] = job.entryClass
    if job.args:
        config["$internal.application.program-args"] = ";".join(job.args)


def _set_restore(config: dict[str, str], plan: ClusterPlan) -> None:
    """The path to restore from (or no restore path at all), and the recorded job id unless the configuration has one."""
    if plan.restore_path:
        config["execution.savepoint.path"] = plan.restore_path
    else:
        config.pop("execution.savepoint.path", None)
        config.pop("execution.state-recovery.path", None)
    if plan.job_id and not config.get("$internal.pipeline.job-id"):
        config["$internal.pipeline.job-id"] = plan.job_id


def _set_job_result_store(config: dict[str, str], plan: ClusterPlan) -> None:
    """With HA and an HA storage dir: the job result store under it, kept after commit."""
    ha_dir = flinkconf.get_first(config, "high-availability.storageDir")
    if ha_dir and is_ha_enabled(config):
        config["job-result-store.storage-path"] = f"{ha_dir.rstrip('/')}/job-result-store/{plan.name}/{job_result_store_id(plan)}"
        config.setdefault("job-result-store.delete-on-commit", "false")


def _set_fixed_ports(config: dict[str, str], plan: ClusterPlan) -> None:
    """`blob.server.port` and `taskmanager.rpc.port` unset, empty or "0" become 6124 and 6122, `rest.bind-port` "0"
    becomes 8081; the JobManager RPC address is the `<name>.<namespace>` service."""
    for key, fixed in (("blob.server.port", "6124"), ("taskmanager.rpc.port", "6122")):
        if config.get(key) in (None, "", "0"):
            config[key] = fixed
    if config.get("rest.bind-port") == "0":
        config["rest.bind-port"] = "8081"
    config["jobmanager.rpc.address"] = f"{plan.name}.{plan.namespace}"


def _float_text(value: float) -> str:
    return repr(float(value))


def cluster_config(effective: dict[str, str]) -> dict[str, str]:
    """What goes into the ConfigMap: the effective config minus operator and per-pod keys."""
    return {k: v for k, v in effective.items()
            if k not in _STRIPPED_KEYS and not k.startswith(_STRIPPED_PREFIXES)}


def container_image(spec: FlinkDeploymentSpec) -> str:
    if spec.image:
        return spec.image
    major, minor = versions.version_key(spec.flinkVersion or "v1_20")
    return f"flink:{major}.{minor}"


def config_map_files(plan: ClusterPlan) -> list[str]:
    """The file names in the ConfigMap (its data keys), without rendering their contents."""
    version = plan.spec.flinkVersion or "v1_20"
    files = ["config.yaml" if versions.uses_config_yaml(version) else "flink-conf.yaml"]
    logs = plan.spec.logConfiguration
    if logs:
        files += [key for key in LOG_FILES if logs.get(key)]
    else:
        files.append("log4j-console.properties")
    return files


def config_map(plan: ClusterPlan, effective: dict[str, str]) -> dict[str, Any]:
    conf = cluster_config(effective)
    logs = plan.spec.logConfiguration or {}
    data: dict[str, str] = {}
    for key in config_map_files(plan):
        if key == "config.yaml":
            data[key] = flinkconf.render_config_yaml(conf)
        elif key == "flink-conf.yaml":
            data[key] = flinkconf.render_flink_conf_yaml(conf)
        else:
            data[key] = logs.get(key) or DEFAULT_LOG4J_CONSOLE
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"flink-config-{plan.name}", "namespace": plan.namespace, "labels": labels_common(plan.name)},
        "data": data,
    }


def _flink_map(text: str | None) -> dict[str, str]:
    """Flink map options (`k1:v1,k2:v2`)."""
    result: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition(":")
        if sep and key.strip():
            result[key.strip()] = value.strip()
    return result


def _prefixed_env(config: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    return [{"name": key[len(prefix):], "value": value}
            for key, value in sorted((k, v) for k, v in config.items() if k.startswith(prefix) and v != "")]


def _container_resources(res: ComponentResources) -> dict[str, Any]:
    requests: dict[str, str] = dict(res.extra_requests)
    limits: dict[str, str] = dict(res.extra_limits)
    requests["cpu"] = canonical_decimal(round(res.cpu, 6))
    limits["cpu"] = canonical_decimal(round(res.cpu * res.cpu_limit_factor, 6))
    if res.memory_bytes is not None:
        mib = res.memory_bytes // MIB
        requests["memory"] = canonical_binary(mib * MIB)
        limits["memory"] = canonical_binary(int(math.floor(mib * res.memory_limit_factor)) * MIB)
    return {"limits": dict(sorted(limits.items())), "requests": dict(sorted(requests.items()))}


def _main_container(template: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The main container and the others of a freshly merged template (edited in place, not copied)."""
    containers = template.get("spec", {}).get("containers") or []
    main = next((c for c in containers if c.get("name") == MAIN_CONTAINER), None)
    others = [c for c in containers if c.get("name") != MAIN_CONTAINER]
    return main or {"name": MAIN_CONTAINER}, others


def _pod_template(plan: ClusterPlan, effective: dict[str, str], component: str) -> dict[str, Any]:
    """The pod template of one component: the user's merged template, then the operator's fields."""
    spec = plan.spec
    by_name = flinkconf.is_true(effective, "kubernetes.operator.pod-template.merge-arrays-by-name")
    comp_spec = spec.jobManager if component == "jobmanager" else spec.taskManager
    # A fresh object: component_template never shares structure with the spec, so no further copies are needed.
    template = component_template(spec.podTemplate, comp_spec.podTemplate if comp_spec else None, by_name)
    # The seed's notes write `podTemplate: {apiVersion: v1, kind: Pod, ...}`: not PodTemplateSpec fields.
    template.pop("apiVersion", None)
    template.pop("kind", None)
    meta = template.setdefault("metadata", {})
    pod_spec = template.setdefault("spec", {})
    main, others = _main_container(template)

    _set_pod_metadata(meta, plan, effective, component)
    _set_service_account_and_node_selector(pod_spec, effective, component)
    _set_main_process(main, plan, effective, component)
    _mount_volumes(main, pod_spec, plan, component)
    if component == "jobmanager" and "startupProbe" not in main and \
            flinkconf.is_true(effective, "kubernetes.operator.jm-deployment.startup.probe.enabled", True):
        main["startupProbe"] = {"failureThreshold": 2147483647, "httpGet": {"path": "/config", "port": "rest"},
                                "periodSeconds": 1}
    pod_spec["containers"] = [main, *others]
    return template


def _set_pod_metadata(meta: dict[str, Any], plan: ClusterPlan, effective: dict[str, str], component: str) -> None:
    """Name and namespace dropped. Labels: the template's, then `kubernetes.<component>.labels`, then the selector
    labels. Annotations: the template's, then `kubernetes.<component>.annotations`, then (JobManager) the generation."""
    selector = labels_component(plan.name, component)
    user_labels = _flink_map(effective.get(f"kubernetes.{component}.labels"))
    meta.pop("name", None)
    meta.pop("namespace", None)
    meta["labels"] = {**(meta.get("labels") or {}), **user_labels, **selector}
    annotations = {**(meta.get("annotations") or {}), **_flink_map(effective.get(f"kubernetes.{component}.annotations"))}
    if component == "jobmanager":
        annotations[GENERATION_ANNOTATION] = str(plan.generation)
    if annotations:
        meta["annotations"] = annotations


def _set_service_account_and_node_selector(pod_spec: dict[str, Any], effective: dict[str, str], component: str) -> None:
    """The service account (`kubernetes.<component>.service-account`, else `kubernetes.service-account`) and
    `kubernetes.<component>.node-selector` over the template's node selector."""
    service_account = effective.get(f"kubernetes.{component}.service-account") or effective.get("kubernetes.service-account")
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    node_selector = _flink_map(effective.get(f"kubernetes.{component}.node-selector"))
    if node_selector:
        pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), **node_selector}
    pod_spec.pop("restartPolicy", None)  # Deployments only allow Always


def _set_main_process(main: dict[str, Any], plan: ClusterPlan, effective: dict[str, str], component: str) -> None:
    """The main container's image, entrypoint and arguments, ports, environment and resources."""
    spec = plan.spec
    main["name"] = MAIN_CONTAINER
    main["image"] = container_image(spec)
    if spec.imagePullPolicy:
        main["imagePullPolicy"] = spec.imagePullPolicy
    main["command"] = [ENTRYPOINT]
    if component == "jobmanager":
        res, ports, env = _jobmanager_process(main, plan, effective)
    else:
        res, ports, env = _taskmanager_process(main, plan, effective)
    if effective.get("kubernetes.flink.log.dir"):
        env.append({"name": "FLINK_LOG_DIR", "value": effective["kubernetes.flink.log.dir"]})
    for port_name, number in ports:
        main["ports"] = upsert_by_name(main.get("ports"), {"containerPort": number, "name": port_name, "protocol": "TCP"})
    for item in env:
        main["env"] = upsert_by_name(main.get("env"), item)
    _merge_resources(main, res)


_Process = tuple[ComponentResources, list[tuple[str, int]], list[dict[str, Any]]]


def _jobmanager_process(main: dict[str, Any], plan: ClusterPlan, effective: dict[str, str]) -> _Process:
    """Sets the JobManager's args; returns its resources, ports (rest, RPC, blob server) and environment
    (`containerized.master.env.*` and the pod IP)."""
    ha = is_ha_enabled(effective)
    res = component_resources(plan.spec.jobManager, effective, "jobmanager.memory.process.size", 1.0)
    main["args"] = _jobmanager_args(plan, main.get("args"), ha)
    ports = [("rest", int(effective.get("rest.port") or 8081)),
             ("jobmanager-rpc", int(effective.get("jobmanager.rpc.port") or 6123)),
             ("blobserver", int(effective.get("blob.server.port") or 6124))]
    env = _prefixed_env(effective, "containerized.master.env.")
    env.append({"name": "_POD_IP_ADDRESS", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}})
    return res, ports, env


def _taskmanager_process(main: dict[str, Any], plan: ClusterPlan, effective: dict[str, str]) -> _Process:
    """Sets the TaskManager's args; returns its resources, RPC port and environment (`containerized.taskmanager.env.*`)."""
    res = component_resources(plan.spec.taskManager, effective, "taskmanager.memory.process.size", float(slots(effective)))
    main["args"] = ["taskmanager"]
    ports = [("taskmanager-rpc", int(effective.get("taskmanager.rpc.port") or 6122))]
    env = _prefixed_env(effective, "containerized.taskmanager.env.")
    return res, ports, env


def _merge_resources(main: dict[str, Any], res: ComponentResources) -> None:
    """The computed requests and limits over the main container's own."""
    user_resources = main.get("resources") or {}
    computed = _container_resources(res)
    main["resources"] = {
        "limits": {**(user_resources.get("limits") or {}), **computed["limits"]},
        "requests": {**(user_resources.get("requests") or {}), **computed["requests"]},
    }


def _mount_volumes(main: dict[str, Any], pod_spec: dict[str, Any], plan: ClusterPlan, component: str) -> None:
    """The ConfigMap at /opt/flink/conf; for an application's JobManager with a jar URI, an emptyDir at
    /opt/flink/usrlib unless the template already mounts something there."""
    mounts = main.get("volumeMounts") or []
    mounts = upsert_by_name(mounts, {"mountPath": CONF_DIR, "name": "flink-config-volume"})
    volumes = pod_spec.get("volumes") or []
    conf_items = sorted(config_map_files(plan))
    volumes = upsert_by_name(volumes, {"configMap": {"items": [{"key": k, "path": k} for k in conf_items],
                                                     "name": f"flink-config-{plan.name}"},
                                       "name": "flink-config-volume"})
    job = plan.spec.job
    if component == "jobmanager" and job is not None and job.jarURI \
            and not any(str(m.get("mountPath", "")).startswith(USRLIB_DIR) for m in mounts):
        mounts = upsert_by_name(mounts, {"mountPath": USRLIB_DIR, "name": "user-lib-dir"})
        volumes = upsert_by_name(volumes, {"emptyDir": {}, "name": "user-lib-dir"})
    main["volumeMounts"] = mounts
    pod_spec["volumes"] = volumes


def _jobmanager_args(plan: ClusterPlan, template_args: list[str] | None, ha: bool) -> list[str]:
    job = plan.spec.job
    ha_args = ["-D", "jobmanager.rpc.address=$(_POD_IP_ADDRESS)"] if ha else []
    if job is None:
        # Session mode appends to the template's args (Apache uses "add", not "set").
        return [*(template_args or []), "jobmanager", *ha_args]
    args = ["standalone-job"]
    if job.entryClass:
        args += ["--job-classname", job.entryClass]
    if job.allowNonRestoredState:
        args.append("--allowNonRestoredState")
    if plan.restore_path and plan.restore_path != LAST_STATE_DUMMY_PATH:
        args += ["--fromSavepoint", plan.restore_path]
    return [*args, *ha_args, *job.args]


def _deployment(plan: ClusterPlan, effective: dict[str, str], component: str) -> dict[str, Any]:
    name = plan.name if component == "jobmanager" else f"{plan.name}-taskmanager"
    selector = labels_component(plan.name, component)
    user_labels = _flink_map(effective.get(f"kubernetes.{component}.labels"))
    if component == "jobmanager":
        labels = {**selector, **user_labels}
        replicas = int(effective.get("kubernetes.jobmanager.replicas") or 1)
    else:
        labels = {**user_labels, **selector}
        replicas = int(effective["kubernetes.internal.taskmanager.replicas"])
    metadata: dict[str, Any] = {"name": name, "namespace": plan.namespace, "labels": labels}
    annotations = _flink_map(effective.get(f"kubernetes.{component}.annotations"))
    if component == "jobmanager":
        annotations[GENERATION_ANNOTATION] = str(plan.generation)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 "template": _pod_template(plan, effective, component)},
    }


def _services(plan: ClusterPlan, effective: dict[str, str]) -> list[dict[str, Any]]:
    selector = labels_component(plan.name, "jobmanager")
    common = labels_common(plan.name)
    internal = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": common},
        "spec": {"clusterIP": "None", "ports": [
            {"name": "jobmanager-rpc", "port": int(effective.get("jobmanager.rpc.port") or 6123),
             "protocol": "TCP", "targetPort": int(effective.get("jobmanager.rpc.port") or 6123)},
            {"name": "blobserver", "port": int(effective.get("blob.server.port") or 6124),
             "protocol": "TCP", "targetPort": int(effective.get("blob.server.port") or 6124)}],
            "selector": selector},
    }
    rest_port = int(effective.get("rest.port") or 8081)
    rest_meta: dict[str, Any] = {"name": f"{plan.name}-rest", "namespace": plan.namespace, "labels": common}
    rest_annotations = _flink_map(effective.get("kubernetes.rest-service.annotations"))
    if rest_annotations:
        rest_meta["annotations"] = rest_annotations
    rest_type = effective.get("kubernetes.rest-service.exposed.type") or "ClusterIP"
    if rest_type == "LoadBalancer":
        rest_type = "LoadBalancer"
    rest = {
        "apiVersion": "v1", "kind": "Service", "metadata": rest_meta,
        "spec": {"ports": [{"name": "rest", "port": rest_port, "protocol": "TCP",
                            "targetPort": int(effective.get("rest.bind-port") or rest_port)}],
                 "selector": selector, "type": rest_type},
    }
    return [internal, rest]


def ingress(plan: ClusterPlan, effective: dict[str, str]) -> dict[str, Any] | None:
    spec = plan.spec.ingress
    if spec is None or not spec.template:
        return None
    url = ingress_url(spec.template, plan.name, plan.namespace)
    parts = urlsplit(url)
    path = parts.path or "/"
    rule: dict[str, Any] = {"http": {"paths": [{"backend": {"service": {"name": f"{plan.name}-rest",
                                                                       "port": {"number": int(effective.get("rest.port") or 8081)}}},
                                                "path": path, "pathType": "ImplementationSpecific"}]}}
    if parts.hostname:
        rule = {"host": parts.hostname, **rule}
    metadata: dict[str, Any] = {"name": plan.name, "namespace": plan.namespace,
                                "labels": {**(spec.labels or {}), "component": "ingress"}}
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    body: dict[str, Any] = {"rules": [rule]}
    if spec.className:
        body["ingressClassName"] = spec.className
    if spec.tls:
        body["tls"] = copy.deepcopy(spec.tls)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": body}


def ingress_url(template: str, name: str, namespace: str) -> str:
    url = re.sub(r"\{\{\s*name\s*\}\}", name, template, flags=re.IGNORECASE)
    url = re.sub(r"\{\{\s*namespace\s*\}\}", namespace, url, flags=re.IGNORECASE)
    if "://" not in url:
        url = "http://" + url
    return url


def render_cluster(plan: ClusterPlan) -> list[dict[str, Any]]:
    """All children of the cluster, in a fixed order."""
    effective = effective_config(plan)
    children = [config_map(plan, effective), *_services(plan, effective),
                _deployment(plan, effective, "jobmanager"), _deployment(plan, effective, "taskmanager")]
    ing = ingress(plan, effective)
    if ing is not None:
        children.append(ing)
    return children
