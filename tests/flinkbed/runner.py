"""``PodRunner``: apply a sync hook's children (level-based, like Kubernetes controllers), a
monitor thread that restarts crashed containers, and what a test observes (status, exits, logs,
REST). The module docstring of :mod:`.podrunner` describes what it emulates."""

from __future__ import annotations

import atexit
import copy
import json
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import status as _status
from .dist import FlinkDist
from .kubelet import Kubelet
from .launch import FAST_START_JVM_FLAGS, SPEED_OVERRIDES, Launcher, LaunchPlan, find_java
from .net import ClusterNet, ClusterNets
from .pods import ContainerExit, Deployment, Pod, PodCrashed, cluster_of, is_kind, rand_suffix, template_hash
from .reaper import Reaper
from .rest import FlinkRest

_LIVE_RUNNERS: weakref.WeakSet[PodRunner] = weakref.WeakSet()


@atexit.register
def _stop_all_runners() -> None:
    for runner in list(_LIVE_RUNNERS):
        runner.close(grace_period_s=5.0)


class PodRunner:
    """Runs the Deployments among a sync hook's children as local Flink processes.

    ``dist``: the Flink distribution (:func:`tests.flinkbed.dist.flink_dist`); ``workdir``: a fresh
    directory (e.g. pytest's ``tmp_path``) for the pods' conf, logs and tmp dirs; ``rest_port``:
    the REST port of the first cluster (others get free ports).
    """

    def __init__(
        self,
        dist: FlinkDist,
        workdir: Path,
        rest_port: int | None = None,
        *,
        namespace: str = "default",
        jvm_extra: Iterable[str] = FAST_START_JVM_FLAGS,
        speed_overrides: Mapping[str, str] = SPEED_OVERRIDES,
        add_java17_opens: bool | None = None,
        restart_policy: str = "Always",
        restart_backoff_s: float = 10.0,
        max_restart_backoff_s: float = 300.0,
        grace_period_s: float = 15.0,
        java: str | None = None,
        enforce_memory_limits: bool = False,
    ) -> None:
        self.dist = dist
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.jvm_extra = list(jvm_extra)
        self.speed_overrides = dict(speed_overrides)
        # None = add the Java 17 flags only when the rendered config has no --add-opens (noted in
        # self.notes); True = always; False = never (to prove the rendered config suffices).
        self.add_java17_opens = add_java17_opens
        self.restart_policy = restart_policy
        self.restart_backoff_s = restart_backoff_s
        self.max_restart_backoff_s = max_restart_backoff_s
        self.grace_period_s = grace_period_s
        # SIGKILL a container over its resources.limits.memory, reported OOMKilled (kubelet.py; the sandbox's)
        self.enforce_memory_limits = enforce_memory_limits
        self.java = java or find_java()
        self.notes: list[str] = []  # deviations noticed while starting pods (deduplicated)

        self._nets = ClusterNets(rest_port)
        self._lock = threading.RLock()
        self._deployments: dict[str, Deployment] = {}
        self._configmaps: dict[str, dict[str, Any]] = {}
        self._services: dict[str, dict[str, Any]] = {}
        self._closed = False
        self._reaper = Reaper()
        self._kubelet = Kubelet(self, Launcher(self, self._nets, self._note), self._reaper)
        self._stop_event = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, name=f"podrunner-{id(self):x}", daemon=True)
        self._monitor.start()
        _LIVE_RUNNERS.add(self)

    @property
    def _first_rest_port(self) -> int | None:
        """The REST port the first cluster will get (None once it has been handed out)."""
        return self._nets.first_rest_port

    @property
    def _clusters(self) -> dict[str, ClusterNet]:
        return self._nets.nets

    # --- context manager / cleanup -------------------------------------------------------------
    def __enter__(self) -> PodRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, grace_period_s: float | None = None) -> None:
        """Stop every process (by PID), the monitor thread and the reaper. Idempotent."""
        if self._closed:
            return
        self._stop_event.set()
        if self._monitor is not threading.current_thread():
            self._monitor.join(timeout=30)
        self.stop_all(grace_period_s)
        with self._lock:
            self._closed = True
        self._reaper.close()
        _LIVE_RUNNERS.discard(self)

    def stop_all(self, grace_period_s: float | None = None) -> None:
        """Stop all pods of all Deployments and forget them (the ConfigMaps are kept)."""
        with self._lock:
            pods = [p for d in self._deployments.values() for p in d.pods]
            self._deployments.clear()
            self._kubelet.terminate(pods, grace_period_s)

    def pids(self) -> list[int]:
        """PIDs of the JVMs currently running."""
        with self._lock:
            return [p.proc.pid for d in self._deployments.values() for p in d.pods if p.alive and p.proc]

    # --- apply -------------------------------------------------------------------------------
    def apply(self, children: Iterable[Mapping[str, Any]]) -> None:
        """Make the running pods match ``children`` (level-based, like Kubernetes controllers).

        ConfigMaps and Services are replaced by the given set; Deployments are created, scaled,
        rolled (template changed: old pods stopped first, then new ones started) or deleted.
        Pods start asynchronously: poll :meth:`deployment_status` or use :meth:`wait_available`.
        """
        objs: list[dict[str, Any]] = [copy.deepcopy(dict(c)) for c in children]  # never alias the caller's
        with self._lock:
            if self._closed:
                raise RuntimeError("PodRunner is closed")
            self._configmaps = {c["metadata"]["name"]: c for c in objs if is_kind(c, "ConfigMap", ("v1",))}
            self._services = {c["metadata"]["name"]: c for c in objs if is_kind(c, "Service", ("v1",))}
            wanted = {c["metadata"]["name"]: c for c in objs if is_kind(c, "Deployment", ("apps/v1",))}
            doomed: list[Pod] = []
            for name in [n for n in self._deployments if n not in wanted]:
                doomed += self._deployments.pop(name).pods
            for name, obj in wanted.items():
                doomed += self._reconcile_deployment(name, obj)
            self._kubelet.terminate(doomed, None)
            for dep in self._deployments.values():
                self._scale_up(dep)
        self._tick()  # start what is due now, in the caller's thread

    def _reconcile_deployment(self, name: str, obj: dict[str, Any]) -> list[Pod]:
        spec = obj.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        thash = template_hash(spec.get("template") or {})
        dep = self._deployments.get(name)
        if dep is None:
            gen = int(obj.get("metadata", {}).get("generation") or 1)
            ns = obj.get("metadata", {}).get("namespace") or self.namespace
            self._deployments[name] = Deployment(name, ns, obj, thash, replicas, gen)
            return []
        doomed: list[Pod] = []
        spec_changed = json.dumps(dep.obj.get("spec"), sort_keys=True) != json.dumps(spec, sort_keys=True)
        if spec_changed:
            dep.generation = int(obj.get("metadata", {}).get("generation") or dep.generation + 1)
        dep.obj, dep.replicas = obj, replicas
        if thash != dep.template_hash:
            dep.template_hash = thash
            doomed, dep.pods = dep.pods, []
        elif len(dep.pods) > replicas:
            doomed, dep.pods = dep.pods[replicas:], dep.pods[:replicas]
        return doomed

    def _scale_up(self, dep: Deployment) -> None:
        while len(dep.pods) < dep.replicas:
            pod_name = f"{dep.name}-{dep.template_hash}-{rand_suffix()}"
            dep.pods.append(Pod(pod_name, dep.name, dep.template_hash, self.workdir / "pods" / pod_name))

    # --- the monitor -------------------------------------------------------------------------
    def _monitor_loop(self) -> None:
        while not self._stop_event.wait(0.25):
            try:
                self._tick()
            except Exception as e:  # never let the monitor die silently
                self._note(f"monitor error: {e!r}")

    def _tick(self) -> None:
        """Record container exits, schedule restarts with back-off, start what is due."""
        with self._lock:
            if self._closed or self._stop_event.is_set():
                return
            self._kubelet.tick(list(self._deployments.values()), self._configmaps)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    # --- observation -------------------------------------------------------------------------
    def _dep(self, name: str) -> Deployment:
        dep = self._deployments.get(name)
        if dep is None:
            raise KeyError(f"no Deployment {name!r} (known: {sorted(self._deployments)})")
        return dep

    def _probe_ready(self, dep: Deployment, pod: Pod) -> bool:
        return _status.probe_ready(dep, pod, self._nets.pod_nets.get(pod.name) or self._clusters.get(cluster_of(dep)))

    def deployment_status(self, name: str) -> dict[str, Any]:
        """The Deployment's ``status`` as the Kubernetes API would report it.

        Zero counts are omitted (``readyReplicas`` is absent, not 0, while nothing is ready: the
        API server's ``omitempty``). A JobManager pod counts as ready only once ``GET /config``
        answered; a TaskManager pod as soon as its process runs.
        """
        self._tick()
        with self._lock:
            dep = self._dep(name)
            return _status.deployment_status(dep, [p for p in dep.pods if self._probe_ready(dep, p)])

    def pod_statuses(self, name: str) -> list[dict[str, Any]]:
        """Pod-like status of each pod of Deployment ``name`` (``containerStatuses``-shaped, plus
        ``pid``, ``logFile`` and ``outFile`` for debugging)."""
        self._tick()
        with self._lock:
            dep = self._dep(name)
            return [_status.pod_status(pod, self._probe_ready(dep, pod)) for pod in dep.pods]

    def exits(self, name: str) -> list[ContainerExit]:
        """Every container exit of Deployment ``name``'s current pods, oldest first."""
        self._tick()
        with self._lock:
            return sorted((e for p in self._dep(name).pods for e in p.exits), key=lambda e: e.finished_at)

    def logs(self, name: str, lines: int = 60) -> str:
        """The last lines of the Flink log and stdout of each current pod of Deployment ``name``."""
        with self._lock:
            return _status.pod_logs(self._dep(name).pods, lines)

    def launch_plans(self, name: str) -> list[LaunchPlan]:
        """The launch plans (argv, env, files) of Deployment ``name``'s pods, for inspection."""
        with self._lock:
            return [p.plan for p in self._dep(name).pods if p.plan is not None]

    def deployments(self) -> list[str]:
        with self._lock:
            return sorted(self._deployments)

    def cluster_net(self, name: str) -> ClusterNet:
        """The cluster of a Deployment (JM or TM), of a ConfigMap, or of FlinkDeployment ``N``."""
        with self._lock:
            if name in self._deployments:
                # a standby JobManager pod has ports of its own (ClusterNets.for_jobmanager)
                own = next((self._nets.pod_nets[p.name] for p in self._deployments[name].pods
                            if p.name in self._nets.pod_nets), None)
                if own is not None:
                    return own
                key = cluster_of(self._deployments[name])
            elif name in self._clusters:
                key = name
            elif f"flink-config-{name}" in self._clusters:
                key = f"flink-config-{name}"
            else:
                key = name
            net = self._clusters.get(key)
            if net is None:
                if name in self._deployments or key in self._configmaps:
                    return self._nets.allocate(key)  # allocate now: ports are known before the pod starts
                raise KeyError(f"no cluster {name!r} (known: {sorted(self._clusters)})")
            return net

    def rest_url(self, name: str) -> str:
        """``http://127.0.0.1:<port>`` of the cluster's REST endpoint (the ``N-rest`` Service)."""
        return self.cluster_net(name).rest_url

    def rest(self, name: str) -> FlinkRest:
        return FlinkRest(self.rest_url(name))

    def observed_children(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The children as Metacontroller hands them to a sync hook (``children`` field):
        ``{"Deployment.apps/v1": {name: obj+status}, "ConfigMap.v1": {...}, "Service.v1": {...}}``."""
        with self._lock:
            deps = {n: {**d.obj, "status": self.deployment_status(n)} for n, d in self._deployments.items()}
            return {
                "Deployment.apps/v1": deps,
                "ConfigMap.v1": {n: dict(c) for n, c in self._configmaps.items()},
                "Service.v1": {n: dict(s) for n, s in self._services.items()},
            }

    def wait_available(self, name: str, timeout_s: float = 90.0, allow_restarts: bool = False) -> dict[str, Any]:
        """Wait until Deployment ``name`` has condition Available=True with every desired replica
        ready; return its status. Raises :class:`PodCrashed` (with the log tail) as soon as a
        container exits, unless ``allow_restarts``; :class:`TimeoutError` (with logs) on timeout."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.deployment_status(name)
            if not allow_restarts:
                exits = self.exits(name)
                if exits:
                    raise PodCrashed(f"Deployment {name}: {exits[-1]}")
            with self._lock:
                desired = self._dep(name).replicas
            if status.get("readyReplicas", 0) >= desired and status.get("updatedReplicas", 0) >= desired:
                return status
            time.sleep(0.2)
        raise TimeoutError(f"Deployment {name} not available after {timeout_s}s: {status}\n{self.logs(name)}")

    def wait_exit(self, name: str, timeout_s: float = 60.0, after: int | None = None) -> ContainerExit:
        """Wait until Deployment ``name`` has more than ``after`` container exits (default: as
        many as now, i.e. wait for the next exit); return the latest exit."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.exits(name)) if after is None else after
        while time.monotonic() < deadline:
            exits = self.exits(name)
            if len(exits) > seen:
                return exits[-1]
            time.sleep(0.2)
        raise TimeoutError(f"no container of Deployment {name} exited within {timeout_s}s\n{self.logs(name)}")
