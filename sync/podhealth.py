"""What is wrong with a Flink cluster's pods, as one typed cause (pure: observed objects in, a `PodCause` out).

The Apache operator looks only at the JobManager Deployment and at waiting reasons of its pods, so a JobManager
killed for memory stays DEPLOYING, an unresponsive JobManager counts as ready, and a crash-looping or
unschedulable pod leaves the resource "in progress" with no reason. `classify` reads what the kubelet and the
scheduler report on the pods (the customize hook relates them, docs/architecture.md "The cluster's pods"), what
the JobManager Deployment says, whether the Flink REST API answered, and how many TaskManagers registered, and
names the first cause found, in this order:

1. a JobManager container failure (OOMKilled, crash looping, image not pulled, container not created);
2. the same for a TaskManager container;
3. a JobManager pod the scheduler cannot place, then a TaskManager pod;
4. the Flink REST API not answering while the JobManager container runs;
5. fewer TaskManagers registered with the JobManager than the TaskManager Deployment asks for.

Container failures are `definitive`: reported at once, as Apache reports them. The others can be a cluster that
is still starting (a pod waiting for capacity, a JobManager still booting, TaskManagers still registering), so
the sync reports them only once they lasted `kubernetes.operator.deployment.readiness.timeout`
(sync/flinkdeployment/health.py).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Component = Literal["jobmanager", "taskmanager"]

#: Waiting reasons of a container that will not start by itself (Apache's list, plus CreateContainerError and
#: InvalidImageName, which the kubelet reports for the same kind of failure).
CONTAINER_FAILURES = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                      "RunContainerError", "CreateContainerConfigError", "CreateContainerError", "OOMKilled")
IMAGE_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
MESSAGE_LINES = 5          # last lines of a termination message shown in status
MESSAGE_CHARS = 600


@dataclass(frozen=True)
class PodCause:
    """One named cause. `reason` is the Kubernetes reason (OOMKilled, CrashLoopBackOff, ErrImagePull,
    ImagePullBackOff, Unschedulable, ...) or flink-sync's own (RestNotAnswering, TaskManagersMissing)."""
    reason: str
    component: Component
    message: str
    definitive: bool
    pod: str | None = None
    exit_code: int | None = None
    memory_limit: str | None = None

    @property
    def key(self) -> str:
        """What identifies a cause across syncs: a change of key is a change of cause (one Event)."""
        return f"{self.component}/{self.reason}"


def same_cause(reason: str, other: str) -> bool:
    """Whether two reasons are one cause: the kubelet alternates ErrImagePull (an attempt) and ImagePullBackOff
    (waiting for the next one) for the same image that cannot be pulled."""
    return reason == other or (reason in IMAGE_FAILURES and other in IMAGE_FAILURES)


@dataclass(frozen=True)
class ClusterView:
    """What the sync observed of one cluster."""
    pods: tuple[dict[str, Any], ...] = ()
    rest_reachable: bool | None = None      # None: Flink was not asked this sync
    rest_error: str | None = None
    registered_taskmanagers: int | None = None
    expected_taskmanagers: int | None = None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def component_of(pod: dict[str, Any]) -> Component | None:
    component = _dict(_dict(pod.get("metadata")).get("labels")).get("component")
    return component if component in ("jobmanager", "taskmanager") else None


def live_pods(pods: Iterable[Any]) -> list[dict[str, Any]]:
    """Pods not being deleted (a terminating pod of a replaced cluster says nothing about the current one),
    sorted by name so that the same pods always give the same cause."""
    found = [p for p in pods if isinstance(p, dict) and isinstance(p.get("metadata"), dict)
             and not p["metadata"].get("deletionTimestamp")]
    return sorted(found, key=lambda p: str(p["metadata"].get("name")))


def _memory_limit(pod: dict[str, Any], container: str) -> str | None:
    for spec in _list(_dict(pod.get("spec")).get("containers")):
        if isinstance(spec, dict) and spec.get("name") == container:
            limit = _dict(_dict(spec.get("resources")).get("limits")).get("memory")
            return str(limit) if limit is not None else None
    return None


_STACK_FRAME = re.compile(r"^\s*(at |\.\.\. \d+ more)")


def last_lines(text: str | None) -> str:
    """The end of a termination message: its last lines without Java stack frames (the exception and its causes
    say what is wrong), at most MESSAGE_CHARS characters."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip() and not _STACK_FRAME.match(line)]
    tail = "\n".join(lines[-MESSAGE_LINES:])
    return tail[-MESSAGE_CHARS:]


def _terminated(status: dict[str, Any]) -> dict[str, Any]:
    """The container's current termination, else its last one."""
    return _dict(_dict(status.get("state")).get("terminated")) or \
        _dict(_dict(status.get("lastState")).get("terminated"))


def _termination_text(term: dict[str, Any], pod: str) -> str:
    code = term.get("exitCode")
    text = f"exit code {code}" + (f" ({term['reason']})" if term.get("reason") else "")
    lines = last_lines(term.get("message"))
    hint = lines if lines else f"see `kubectl logs {pod} -c flink-main-container --previous`"
    return f"{text}: {hint}"


def _oom_killed(pod: dict[str, Any], status: dict[str, Any]) -> PodCause | None:
    """Killed for memory: terminated now, or last time while the container has not become ready since."""
    state_term = _dict(_dict(status.get("state")).get("terminated"))
    last_term = _dict(_dict(status.get("lastState")).get("terminated"))
    if state_term.get("reason") == "OOMKilled":
        term = state_term
    elif last_term.get("reason") == "OOMKilled" and not status.get("ready"):
        term = last_term
    else:
        return None
    name = str(status.get("name"))
    limit = _memory_limit(pod, name)
    code = term.get("exitCode", 137)
    # No restart count in the message: it would change the status on every restart (kubectl get pods shows it).
    message = (f"[{name}] OOMKilled: the container was killed for exceeding its memory limit"
               f"{f' of {limit}' if limit else ''} (exit code {code})")
    return PodCause("OOMKilled", "jobmanager", message, True, exit_code=_int(code), memory_limit=limit)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _waiting_failure(pod_name: str, status: dict[str, Any]) -> PodCause | None:
    """A container waiting with a failure reason, or crash looping (restarted after an error and not ready)."""
    name = str(status.get("name"))
    waiting = _dict(_dict(status.get("state")).get("waiting"))
    reason = waiting.get("reason")
    term = _terminated(status)
    crash_looping = reason == "CrashLoopBackOff" or (
        not status.get("ready") and int(status.get("restartCount") or 0) > 0 and
        "running" in _dict(status.get("state")) and term.get("exitCode") not in (None, 0))
    if crash_looping:
        return PodCause("CrashLoopBackOff", "jobmanager",
                        f"[{name}] CrashLoopBackOff: the container keeps exiting. CrashLoop - "
                        f"{_termination_text(term, pod_name)}", True, exit_code=_int(term.get("exitCode")))
    if reason in CONTAINER_FAILURES:
        detail = str(waiting.get("message") or "").strip()
        return PodCause(str(reason), "jobmanager", f"[{name}] {reason}" + (f": {detail}" if detail else ""), True)
    return None


def container_failure(pod: dict[str, Any]) -> PodCause | None:
    """The first failing container of a pod (init containers first, as the kubelet runs them)."""
    status = _dict(pod.get("status"))
    pod_name = str(_dict(pod.get("metadata")).get("name"))
    for cs in _list(status.get("initContainerStatuses")) + _list(status.get("containerStatuses")):
        if not isinstance(cs, dict):
            continue
        cause = _oom_killed(pod, cs) or _waiting_failure(pod_name, cs)
        if cause is not None:
            return cause
    return None


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message when it cannot place the pod (PodScheduled False, reason Unschedulable)."""
    for condition in _list(_dict(pod.get("status")).get("conditions")):
        if isinstance(condition, dict) and condition.get("type") == "PodScheduled" and \
                condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
            return str(condition.get("message") or "the scheduler cannot place the pod")
    return None


def _main_running(pod: dict[str, Any]) -> bool:
    statuses = _list(_dict(pod.get("status")).get("containerStatuses"))
    main = next((cs for cs in statuses if isinstance(cs, dict) and cs.get("name") == "flink-main-container"),
                statuses[0] if statuses and isinstance(statuses[0], dict) else {})
    return "running" in _dict(_dict(main).get("state"))


def _with_pod(cause: PodCause, pod: dict[str, Any], component: Component) -> PodCause:
    name = str(pod["metadata"].get("name"))
    prefix = "" if component == "jobmanager" else f"TaskManager pod {name}: "
    return PodCause(cause.reason, component, prefix + cause.message, cause.definitive, name,
                    cause.exit_code, cause.memory_limit)


def _container_causes(pods: list[dict[str, Any]], component: Component) -> PodCause | None:
    for pod in pods:
        if component_of(pod) == component:
            cause = container_failure(pod)
            if cause is not None:
                return _with_pod(cause, pod, component)
    return None


def _scheduling_causes(pods: list[dict[str, Any]]) -> PodCause | None:
    components: tuple[Component, ...] = ("jobmanager", "taskmanager")
    for component in components:
        for pod in pods:
            message = unschedulable(pod) if component_of(pod) == component else None
            if message is not None:
                who = "JobManager" if component == "jobmanager" else "TaskManager"
                name = str(pod["metadata"].get("name"))
                return PodCause("Unschedulable", component,
                                f"{who} pod {name} cannot be scheduled: {message}", False, name)
    return None


def _rest_cause(pods: list[dict[str, Any]], view: ClusterView) -> PodCause | None:
    if view.rest_reachable is not False:
        return None
    running = next((p for p in pods if component_of(p) == "jobmanager" and _main_running(p)), None)
    if running is None:
        return None
    name = str(running["metadata"].get("name"))
    error = f": {view.rest_error}" if view.rest_error else ""
    return PodCause("RestNotAnswering", "jobmanager",
                    f"JobManager pod {name} is running but the Flink REST API does not answer{error}"[:MESSAGE_CHARS],
                    False, name)


def _taskmanager_count(view: ClusterView) -> PodCause | None:
    registered, expected = view.registered_taskmanagers, view.expected_taskmanagers
    if registered is None or expected is None or registered >= expected:
        return None
    return PodCause("TaskManagersMissing", "taskmanager",
                    f"{registered} of {expected} TaskManagers registered with the JobManager", False)


def classify(view: ClusterView) -> PodCause | None:
    """The first cause in the order of the module docstring, or None when nothing is wrong. A TaskManager's cause
    also says how many TaskManagers registered, when fewer than expected."""
    pods = live_pods(view.pods)
    cause = (_container_causes(pods, "jobmanager") or _container_causes(pods, "taskmanager")
             or _scheduling_causes(pods) or _rest_cause(pods, view))
    missing = _taskmanager_count(view)
    if cause is None or missing is None or cause.component != "taskmanager":
        return cause or missing
    return PodCause(cause.reason, cause.component, f"{cause.message} ({missing.message})", cause.definitive,
                    cause.pod, cause.exit_code, cause.memory_limit)
