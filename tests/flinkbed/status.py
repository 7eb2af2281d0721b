"""Deployment and pod status as the Kubernetes API server reports it, and the pods' log tails.

Pure functions of the runner's state (:mod:`.pods`), except :func:`probe_ready`, which runs a
JobManager's startup probe (``GET /config`` on the cluster's REST port).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from .launch import JM_ROLES
from .net import ClusterNet
from .pods import MAIN_CONTAINER, ContainerExit, Deployment, Pod, int_or_percent, main_container, now_rfc3339, tail


def probe_ready(dep: Deployment, pod: Pod, net: ClusterNet | None) -> bool:
    """Ready = running, and for a JobManager its startup probe (``GET /config``) passed once."""
    if not pod.alive or pod.plan is None:
        return False
    if pod.ready or pod.plan.role not in JM_ROLES:
        pod.ready = True
        return True
    container = main_container(dep.template.get("spec") or {}) or {}
    probe = container.get("startupProbe") or container.get("readinessProbe") or {}
    path = (probe.get("httpGet") or {}).get("path", "/config")
    if net is None:
        return False
    try:
        req = urllib.request.Request(f"{net.rest_url}{path}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=1.0) as r:
            pod.ready = 200 <= r.status < 400
    except (OSError, urllib.error.URLError):
        pod.ready = False
    return pod.ready


def deployment_status(dep: Deployment, ready: list[Pod]) -> dict[str, Any]:
    """The Deployment's ``status`` given its ready pods (zero counts omitted, as ``omitempty``)."""
    desired = dep.replicas
    pods = dep.pods
    updated = [p for p in pods if p.template_hash == dep.template_hash]
    strategy = (dep.obj.get("spec") or {}).get("strategy") or {}
    max_unavailable = int_or_percent(
        (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%"), desired, round_up=False
    )
    if strategy.get("type") == "Recreate":
        max_unavailable = 0
    available = len(ready) >= desired - max_unavailable
    status: dict[str, Any] = {"observedGeneration": dep.generation}
    for key, value in (
        ("replicas", len(pods)),
        ("updatedReplicas", len(updated)),
        ("readyReplicas", len(ready)),
        ("availableReplicas", len(ready)),
        ("unavailableReplicas", max(0, desired - len(ready))),
    ):
        if value:
            status[key] = value
    rs = f"{dep.name}-{dep.template_hash}"
    complete = available and len(updated) == desired == len(pods) and len(ready) >= desired
    status["conditions"] = [
        condition(
            dep,
            "Available",
            available,
            "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability." if available else "Deployment does not have minimum availability.",
        ),
        condition(
            dep,
            "Progressing",
            True,
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{rs}" has successfully progressed.' if complete else f'ReplicaSet "{rs}" is progressing.',
        ),
    ]
    return status


def condition(dep: Deployment, ctype: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    """A Deployment condition; its transition time is when its status last changed."""
    status = "True" if ok else "False"
    prev = dep.condition_since.get(ctype)
    if prev is None or prev[0] != status:
        dep.condition_since[ctype] = (status, time.time())
    since = now_rfc3339(dep.condition_since[ctype][1])
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": since,
        "lastTransitionTime": since,
    }


def terminated(ex: ContainerExit) -> dict[str, Any]:
    return {
        "exitCode": ex.exit_code,
        "reason": ex.reason,
        "startedAt": now_rfc3339(ex.started_at),
        "finishedAt": now_rfc3339(ex.finished_at),
    }


def pod_status(pod: Pod, ready: bool) -> dict[str, Any]:
    """Pod-like status (``containerStatuses``-shaped, plus ``pid``, ``logFile`` and ``outFile``)."""
    if pod.alive:
        state: dict[str, Any] = {"running": {"startedAt": now_rfc3339(pod.started_at)}}
    elif pod.waiting_reason:
        state = {"waiting": {"reason": pod.waiting_reason, "message": pod.waiting_message}}
    elif pod.exits:
        state = {"terminated": terminated(pod.exits[-1])}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    cs: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "ready": ready,
        "started": pod.alive,
        "restartCount": pod.restart_count,
        "state": state,
    }
    if pod.exits and "terminated" not in state:
        cs["lastState"] = {"terminated": terminated(pod.exits[-1])}
    return {
        "name": pod.name,
        # a crash-looping pod stays in phase Running, as in Kubernetes
        "phase": "Running" if pod.alive or pod.exits else "Pending",
        "containerStatuses": [cs],
        "pid": pod.proc.pid if pod.alive and pod.proc else None,
        "logFile": str(pod.plan.log_file) if pod.plan else None,
        "outFile": str(pod.plan.out_file) if pod.plan else None,
    }


def pod_logs(pods: list[Pod], lines: int) -> str:
    """The last lines of the Flink log and stdout of each pod."""
    parts = []
    for pod in pods:
        if pod.plan is None:
            parts.append(f"=== {pod.name}: not started ({pod.waiting_reason}: {pod.waiting_message})")
            if pod.exits:  # the startup scripts failed before a JVM ran
                parts.append(pod.exits[-1].log_tail)
            continue
        parts.append(f"=== {pod.name} attempt {pod.attempt}")
        for f in (pod.plan.log_file, pod.plan.out_file):
            if f.exists():
                parts.append(f"--- {f.name} ---\n{tail(f, lines)}")
    return "\n".join(parts)


def exit_log_tail(pod: Pod, extra_output: str) -> str:
    """What a recorded exit shows: the tails of the Flink log and stdout, then ``extra_output``."""
    if pod.plan is None:
        return extra_output
    return "\n".join(
        x
        for x in (
            f"--- {pod.plan.log_file.name} ---\n{tail(pod.plan.log_file, 40)}" if pod.plan.log_file.exists() else "",
            f"--- {pod.plan.out_file.name} ---\n{tail(pod.plan.out_file, 40)}" if pod.plan.out_file.exists() else "",
            extra_output,
        )
        if x
    )
