"""The scheduler's fit check for the sandbox's one node (a stand-in: kube-scheduler is not run).

As the scheduler's NodeResourcesFit and NodeAffinity (nodeSelector) filters decide it: a pod fits when its
nodeSelector matches the node's labels and its CPU and memory requests (a container without requests asks for
its limits, as the API server defaults them) fit in the node's allocatable next to the requests of the pods
already bound there and not finished. The reason is the scheduler's wording ("Insufficient cpu",
"node(s) didn't match Pod's node affinity/selector").
"""
from __future__ import annotations

import re
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (cpu in cores, memory in bytes); 0 when unreadable."""
    m = _QUANTITY.match(str(value))
    if not m:
        return 0.0
    number, suffix = float(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL.get(suffix, 0.0)


def requests(pod: dict[str, Any]) -> dict[str, float]:
    """The pod's effective cpu and memory requests: the sum over its containers, the largest init container
    counted if bigger (as the scheduler computes them)."""
    spec = pod.get("spec") or {}
    total = {"cpu": 0.0, "memory": 0.0}
    for container in spec.get("containers") or []:
        for key, value in _container_requests(container).items():
            total[key] += value
    for container in spec.get("initContainers") or []:
        for key, value in _container_requests(container).items():
            total[key] = max(total[key], value)
    return total


def _container_requests(container: dict[str, Any]) -> dict[str, float]:
    resources = container.get("resources") or {}
    asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {key: quantity(asked[key]) for key in ("cpu", "memory") if key in asked}


def misfit(pod: dict[str, Any], pods: list[dict[str, Any]], node: str, node_labels: dict[str, str],
           allocatable: dict[str, str]) -> list[str]:
    """Why `pod` does not fit on the node (empty when it does)."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(node_labels.get(k) != v for k, v in selector.items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    used = {"cpu": 0.0, "memory": 0.0}
    for other in pods:
        if (other.get("spec") or {}).get("nodeName") != node or \
                (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for key, value in requests(other).items():
            used[key] += value
    wanted = requests(pod)
    return [f"Insufficient {key}" for key in ("cpu", "memory")
            if used[key] + wanted[key] > quantity(allocatable[key]) + 1e-9]


def unschedulable_message(reasons: list[str]) -> str:
    """The scheduler's message for a one-node cluster: "0/1 nodes are available: 1 Insufficient cpu."."""
    return "0/1 nodes are available: " + ", ".join(f"1 {reason}" for reason in reasons) + "."
