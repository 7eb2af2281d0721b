"""sync/podhealth.py: what is wrong with a cluster's pods, from pod objects shaped as the kubelet and the
scheduler write them (issue 16). Unit cases for each cause and property tests for the rules between them."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.podhealth import ClusterView, PodCause, classify, last_lines

MAIN = "flink-main-container"


def pod(name: str, component: str, *, state: dict[str, Any] | None = None, last: dict[str, Any] | None = None,
        ready: bool = False, restarts: int = 0, memory: str | None = "1Gi", scheduled: str | None = None,
        deleting: bool = False) -> dict[str, Any]:
    """A pod of cluster `app` as the API server returns it (status as the kubelet/scheduler writes it)."""
    resources = {"limits": {"memory": memory}} if memory else {}
    cs: dict[str, Any] = {"name": MAIN, "ready": ready, "restartCount": restarts,
                          "state": state or {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    if last:
        cs["lastState"] = {"terminated": last}
    status: dict[str, Any] = {"phase": "Running", "containerStatuses": [cs]}
    if scheduled is not None:
        status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                      "reason": "Unschedulable", "message": scheduled}]}
    meta: dict[str, Any] = {"name": name, "labels": {"app": "app", "type": "flink-standalone-kubernetes",
                                                     "component": component}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": MAIN, "resources": resources}]}, "status": status}


def oom(code: int = 137) -> dict[str, Any]:
    return {"exitCode": code, "reason": "OOMKilled", "startedAt": "t0", "finishedAt": "t1"}


def error(code: int = 1, message: str | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code, "reason": "Error"}
    if message is not None:
        term["message"] = message
    return term


BACKOFF = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}
HEALTHY = (pod("app-jm", "jobmanager", ready=True), pod("app-tm-1", "taskmanager", ready=True))


def only(cause: PodCause | None) -> PodCause:
    assert cause is not None
    return cause


def test_healthy_cluster_has_no_cause() -> None:
    assert classify(ClusterView(pods=HEALTHY, rest_reachable=True, registered_taskmanagers=1,
                                expected_taskmanagers=1)) is None
    assert classify(ClusterView()) is None


def test_jobmanager_oomkilled_names_the_memory_limit() -> None:
    cause = only(classify(ClusterView(pods=(pod("app-jm", "jobmanager", state=BACKOFF, last=oom(), restarts=2),))))
    assert (cause.reason, cause.component, cause.definitive) == ("OOMKilled", "jobmanager", True)
    assert cause.memory_limit == "1Gi" and cause.exit_code == 137
    assert "memory limit of 1Gi" in cause.message and "exit code 137" in cause.message
    assert cause.message.startswith(f"[{MAIN}]")  # Apache's message shape for a JobManager container


def test_oomkilled_while_restarting_and_not_yet_ready_is_still_the_cause() -> None:
    restarting = pod("app-jm", "jobmanager", last=oom(), restarts=1)  # running again, not ready
    assert only(classify(ClusterView(pods=(restarting,)))).reason == "OOMKilled"


def test_an_old_oomkill_of_a_ready_container_is_not_a_current_cause() -> None:
    recovered = pod("app-jm", "jobmanager", last=oom(), restarts=1, ready=True)
    assert classify(ClusterView(pods=(recovered,), rest_reachable=True)) is None


def test_crash_loop_shows_exit_code_and_the_last_lines_of_the_termination_message() -> None:
    message = "\n".join(f"line {i}" for i in range(20)) + "\nIllegalConfigurationException: bad value"
    cause = only(classify(ClusterView(pods=(pod("app-jm", "jobmanager", state=BACKOFF, last=error(1, message),
                                                restarts=3),))))
    assert cause.reason == "CrashLoopBackOff" and cause.exit_code == 1
    assert "exit code 1 (Error)" in cause.message and "CrashLoop - " in cause.message
    assert "IllegalConfigurationException: bad value" in cause.message and "line 0" not in cause.message


def test_crash_loop_without_a_termination_message_gives_the_log_hint() -> None:
    cause = only(classify(ClusterView(pods=(pod("app-jm", "jobmanager", state=BACKOFF, last=error(2),
                                                restarts=1),))))
    assert "kubectl logs app-jm -c flink-main-container --previous" in cause.message


def test_image_errors() -> None:
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        waiting = {"waiting": {"reason": reason, "message": 'Back-off pulling image "flink:9.9"'}}
        cause = only(classify(ClusterView(pods=(pod("app-jm", "jobmanager", state=waiting),))))
        assert (cause.reason, cause.definitive) == (reason, True)
        assert 'flink:9.9' in cause.message


def test_taskmanager_failures_are_named_with_the_pod() -> None:
    tm = pod("app-tm-1", "taskmanager", state=BACKOFF, last=oom(), restarts=1, memory="2Gi")
    cause = only(classify(ClusterView(pods=(HEALTHY[0], tm), rest_reachable=True)))
    assert (cause.reason, cause.component, cause.pod) == ("OOMKilled", "taskmanager", "app-tm-1")
    assert cause.message.startswith("TaskManager pod app-tm-1: ") and "2Gi" in cause.message


def test_unschedulable_waits_for_the_readiness_timeout() -> None:
    tm = pod("app-tm-1", "taskmanager", scheduled="0/1 nodes are available: 1 Insufficient cpu.")
    cause = only(classify(ClusterView(pods=(HEALTHY[0], tm), rest_reachable=True)))
    assert (cause.reason, cause.component, cause.definitive) == ("Unschedulable", "taskmanager", False)
    assert "Insufficient cpu" in cause.message


def test_rest_not_answering_only_while_the_jobmanager_container_runs() -> None:
    cause = only(classify(ClusterView(pods=HEALTHY, rest_reachable=False, rest_error="timed out")))
    assert (cause.reason, cause.definitive) == ("RestNotAnswering", False) and "timed out" in cause.message
    creating = pod("app-jm", "jobmanager", state={"waiting": {"reason": "ContainerCreating"}})
    assert classify(ClusterView(pods=(creating,), rest_reachable=False)) is None


def test_fewer_taskmanagers_than_expected() -> None:
    cause = only(classify(ClusterView(pods=HEALTHY, rest_reachable=True, registered_taskmanagers=1,
                                      expected_taskmanagers=2)))
    assert (cause.reason, cause.message, cause.definitive) == (
        "TaskManagersMissing", "1 of 2 TaskManagers registered with the JobManager", False)


def test_terminating_pods_are_ignored() -> None:
    gone = pod("app-jm-old", "jobmanager", state=BACKOFF, last=oom(), restarts=4, deleting=True)
    assert classify(ClusterView(pods=(gone, *HEALTHY), rest_reachable=True)) is None


def test_last_lines_leave_out_stack_frames() -> None:
    trace = ("INFO starting\nException in thread \"main\" IllegalConfigurationException: bad memory\n"
             "\tat a.B.c(B.java:1)\nCaused by: IllegalConfigurationException: Sum exceeds\n\tat a.B.d(B.java:2)\n"
             "\t... 3 more")
    assert last_lines(trace).splitlines()[-2:] == ['Exception in thread "main" IllegalConfigurationException: bad memory',
                                                   "Caused by: IllegalConfigurationException: Sum exceeds"]


def test_last_lines_are_bounded() -> None:
    assert last_lines("a\n\nb\n" + "c" * 5000).endswith("c") and len(last_lines("x" * 5000)) == 600
    assert last_lines(None) == ""


# ------------------------------------------------------------------------------------------ properties
REASONS = st.sampled_from(["CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ContainerCreating",
                           "CreateContainerConfigError", "PodInitializing"])


@st.composite
def any_pod(draw: st.DrawFn, component: str) -> dict[str, Any]:
    name = f"app-{component[:2]}-{draw(st.integers(0, 3))}"
    kind = draw(st.sampled_from(["ready", "waiting", "oom", "unschedulable", "restarting"]))
    if kind == "ready":
        return pod(name, component, ready=True)
    if kind == "waiting":
        return pod(name, component, state={"waiting": {"reason": draw(REASONS)}},
                   last=draw(st.none() | st.just(error())), restarts=draw(st.integers(0, 5)))
    if kind == "oom":
        return pod(name, component, state=BACKOFF, last=oom(), restarts=draw(st.integers(1, 5)))
    if kind == "unschedulable":
        return pod(name, component, scheduled="0/1 nodes are available: 1 Insufficient memory.")
    return pod(name, component, last=error(draw(st.integers(1, 255))), restarts=draw(st.integers(1, 5)))


def _unique_names(pods: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """Pod names are unique in a namespace."""
    return tuple({**p, "metadata": {**p["metadata"], "name": f"{p['metadata']['name']}-{i}"}}
                 for i, p in enumerate(pods))


VIEWS = st.builds(
    ClusterView,
    pods=st.tuples(any_pod("jobmanager"), any_pod("taskmanager"), any_pod("taskmanager")).map(_unique_names),
    rest_reachable=st.none() | st.booleans(),
    registered_taskmanagers=st.none() | st.integers(0, 3),
    expected_taskmanagers=st.none() | st.integers(0, 3),
)


@settings(max_examples=150, deadline=None)
@given(VIEWS)
def test_classification_is_deterministic_and_independent_of_pod_order(view: ClusterView) -> None:
    shuffled = ClusterView(pods=tuple(reversed(view.pods)), rest_reachable=view.rest_reachable,
                           registered_taskmanagers=view.registered_taskmanagers,
                           expected_taskmanagers=view.expected_taskmanagers)
    assert classify(view) == classify(shuffled) == classify(view)


@settings(max_examples=150, deadline=None)
@given(VIEWS)
def test_a_jobmanager_container_failure_comes_before_anything_else(view: ClusterView) -> None:
    cause = classify(view)
    jm_failure = classify(ClusterView(pods=view.pods[:1]))
    if jm_failure is not None and jm_failure.definitive:
        assert cause == jm_failure
    if cause is not None:
        assert cause.message and cause.key == f"{cause.component}/{cause.reason}"
        # only container failures are reported at once; the rest may be a cluster that is still starting
        assert cause.definitive == (cause.reason not in ("Unschedulable", "RestNotAnswering", "TaskManagersMissing"))


@settings(max_examples=150, deadline=None)
@given(VIEWS)
def test_deleting_every_pod_leaves_only_what_flink_says(view: ClusterView) -> None:
    gone = tuple({**p, "metadata": {**p["metadata"], "deletionTimestamp": "t"}} for p in view.pods)
    cause = classify(ClusterView(pods=gone, rest_reachable=view.rest_reachable,
                                 registered_taskmanagers=view.registered_taskmanagers,
                                 expected_taskmanagers=view.expected_taskmanagers))
    assert cause is None or cause.reason == "TaskManagersMissing"
