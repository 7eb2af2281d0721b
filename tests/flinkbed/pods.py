"""What the pod runner knows about Kubernetes objects: the state of each Deployment and pod it
runs, the container exits it records, its errors, and small Kubernetes helpers (``$(VAR)``
expansion, template hash, the main container, the cluster a Deployment belongs to)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import string
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launch import LaunchPlan

FLINK_HOME_IN_IMAGE = "/opt/flink"
IMAGE_ENTRYPOINT = "/docker-entrypoint.sh"
MAIN_CONTAINER = "flink-main-container"


# ----------------------------------------------------------------------------------------------
# Kubernetes helpers
# ----------------------------------------------------------------------------------------------

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand_k8s_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion of command/args/env values: defined vars are replaced,
    undefined references stay as they are, ``$$`` is a literal ``$``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(repl, text)


def template_hash(template: Mapping[str, Any]) -> str:
    """Stable hash of a pod template (what decides "this Deployment's pods must be replaced")."""
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:10]


def now_rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(t if t is not None else time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rand_suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


def is_kind(obj: Mapping[str, Any], kind: str, api_versions: tuple[str, ...]) -> bool:
    return obj.get("kind") == kind and obj.get("apiVersion") in api_versions


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = total * float(value[:-1]) / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value)


def tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


_MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
                 "Ti": 2**40}


def memory_bytes(quantity: Any) -> int | None:
    """A Kubernetes memory quantity (``1Gi``, ``1024Mi``, ``1G``, ``1073741824``) in bytes; None if unreadable."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kMGT]i?|)\s*", str(quantity or ""))
    if not m or m.group(2) not in _MEMORY_UNITS:
        return None
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2)])


def main_container(tmpl_spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod spec's ``flink-main-container``, else its first container; None without containers."""
    containers = tmpl_spec.get("containers") or []
    found: dict[str, Any] | None = next(
        (c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0] if containers else None
    )
    return found


# ----------------------------------------------------------------------------------------------
# Errors and exits
# ----------------------------------------------------------------------------------------------


class PodSpecError(ValueError):
    """The pod template cannot be run by the pod runner (e.g. an unknown command)."""


class PodCrashed(RuntimeError):
    """A container of the Deployment being waited for exited."""


class NotStartable(Exception):
    """The container cannot start yet (like ContainerCreating / CreateContainerConfigError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ContainerFailed(Exception):
    """The container 'ran' and failed before the JVM started (e.g. BashJavaUtils failed)."""

    def __init__(self, exit_code: int, output: str) -> None:
        super().__init__(output)
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class ContainerExit:
    """One exit of a pod's main container (a JVM, or the startup scripts failing before it)."""

    pod: str
    deployment: str
    attempt: int  # 0 for the first start of the pod's container
    exit_code: int
    started_at: float
    finished_at: float
    log_tail: str  # the last lines of the Flink log file and of stdout/stderr
    oom_killed: bool = False  # SIGKILLed for going over the container's memory limit (enforce_memory_limits)

    @property
    def reason(self) -> str:
        if self.oom_killed:
            return "OOMKilled"
        return "Completed" if self.exit_code == 0 else "Error"

    def __str__(self) -> str:
        return f"{self.pod} attempt {self.attempt} exited with {self.exit_code}:\n{self.log_tail}"


# ----------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------


@dataclass
class Pod:
    name: str
    deployment: str
    template_hash: str
    home: Path
    created_at: float = field(default_factory=time.time)
    proc: subprocess.Popen[bytes] | None = None
    attempt: int = -1  # index of the current/last container start
    started_at: float | None = None
    ready: bool = False
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str = ""
    next_start_at: float | None = 0.0  # when the (re)start is due; None = not scheduled
    consecutive_failures: int = 0
    exits: list[ContainerExit] = field(default_factory=list)
    plan: LaunchPlan | None = None
    deleted: bool = False
    memory_limit_bytes: int | None = None  # the main container's resources.limits.memory, if enforced
    oom_killed: bool = False  # the running process was SIGKILLed for memory; its exit is recorded as OOMKilled

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def restart_count(self) -> int:
        return len(self.exits)


@dataclass
class Deployment:
    name: str
    namespace: str
    obj: dict[str, Any]
    template_hash: str
    replicas: int
    generation: int
    pods: list[Pod] = field(default_factory=list)
    condition_since: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.obj.get("spec", {}).get("template", {})
        return template


def cluster_of(dep: Deployment) -> str:
    """The cluster key of a Deployment: the ConfigMap mounted at ``/opt/flink/conf``, else its name."""
    tmpl_spec = dep.template.get("spec") or {}
    container = main_container(tmpl_spec) or {}
    volumes = {v.get("name"): v for v in tmpl_spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        path = str(mount.get("mountPath", "")).rstrip("/")
        vol = volumes.get(mount.get("name")) or {}
        if "configMap" in vol and (
            path == f"{FLINK_HOME_IN_IMAGE}/conf" or path.startswith(f"{FLINK_HOME_IN_IMAGE}/conf/")
        ):
            return str(vol["configMap"].get("name", ""))
    return dep.name
