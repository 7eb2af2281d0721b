"""A STAND-IN for the kubelet (and kube-proxy, and the scheduler's binding) of the local sandbox. Not a kubelet.

It registers one Node (`sandbox-node`, Ready), binds every Pending pod without a node to it, and runs each
pod's main container as local processes on 127.0.0.1:

* an image `flink:X.Y[...]` runs the cached PyPI Flink distribution of that version through the test bed's
  pod runner (tests/flinkbed/podrunner.py: the image entrypoint's steps, the rendered config and args, with the
  loopback overrides documented there). ConfigMap volumes under /opt/flink are written into the pod's
  directory; env (values, fieldRef downward API, configMapKeyRef, envFrom) as the kubelet builds it;
* other images: each container's `command` + `args` run as a host process (no image: the container sees the
  host's file system), env values and fieldRef;
* an image `flink:X.Y` with no cached distribution cannot be pulled: the container waits with `ErrImagePull`, then
  `ImagePullBackOff` until the next attempt (the kubelet's image back-off: 10 s doubling, 5 min cap);
* scheduling, as the scheduler's fit check: a pod whose nodeSelector does not match the node, or whose requests do
  not fit the node's allocatable CPU and memory next to the pods already bound, stays Pending with `PodScheduled`
  False, reason `Unschedulable` and the scheduler's message ("0/1 nodes are available: 1 Insufficient cpu.");
* pod status (phase, conditions incl. Ready, podIP 127.0.0.1, containerStatuses with restartCount, state,
  lastState with exit code and reason — Error, Completed, OOMKilled) is written to `pods/<name>/status` when it
  changes; with `terminationMessagePolicy: FallbackToLogsOnError` a failed container's message is the end of its
  log (80 lines, 2048 bytes at most), as the kubelet does;
* memory limits of Flink containers are enforced: a JVM whose resident memory goes over `resources.limits.memory`
  is SIGKILLed and reported `OOMKilled`, exit code 137 (tests/flinkbed/kubelet.py: RSS sampled every 0.25 s, a
  stand-in for the memory cgroup's OOM killer);
* containers are restarted per the pod's restartPolicy with the kubelet's back-off (10 s doubling, 5 min cap;
  `--max-restart-backoff` / `SANDBOX_MAX_RESTART_BACKOFF` lowers the cap), shown as `CrashLoopBackOff`;
* a pod with a deletionTimestamp has its processes stopped (SIGTERM, then SIGKILL after the grace period) and
  is then deleted with grace period 0, as the kubelet does;
* `--flink-rest-stub` (env SANDBOX_FLINK_REST_STUB=1), for the control-plane benchmark: pods of a Flink image run
  no process; they are Running and Ready once bound, and the REST proxy answers their clusters' Flink REST calls
  as one shared stub (sandbox/flinkstub.py).

Services: each Service port gets a TCP port on 127.0.0.1 that forwards to a Ready pod selected by the Service
(the container port is mapped to the port the pod runner gave that Flink process). The table is written to
`<state-dir>/services`. Besides, one HTTP reverse proxy on 127.0.0.1 serves `/<namespace>/<service>/<path>`
→ that Service's first (or `rest`) port: the hook server's FLINK_SYNC_REST_URL_TEMPLATE points there
(`http://127.0.0.1:<proxy>/{namespace}/{name}-rest`), since `<name>-rest.<ns>.svc` does not resolve here.
"""
from __future__ import annotations

import argparse
import http.client
import http.server
import json
import logging
import os
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import scheduling
from .flinkstub import STUB_ALLOCATABLE, FlinkRestStub, running_container
from .kube import ApiError, Kube
from .podaccess import PodApiAccess, with_env

# the test bed's pod runner (runs a rendered Flink container as a local JVM)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.flinkbed import podrunner as _pr  # noqa: E402
from tests.flinkbed.dist import flink_dist, resolve_version  # noqa: E402

log = logging.getLogger("sandbox.nodeagent")

NODE_NAME = "sandbox-node"
LOCALHOST = "127.0.0.1"
FLINK_IMAGE = re.compile(r"(?:^|/)flink:v?(\d+)[._](\d+)")
# container ports of the Flink image and which pod-runner port serves them
FLINK_REST_PORTS = {8081, "rest"}
FLINK_RPC_PORTS = {6123, "jobmanager-rpc", "rpc"}
# What the node offers the scheduler's fit check (a stand-in node, not the host's real size: generous, so that
# tests running several clusters side by side fit, and a pod asking for more is Unschedulable).
NODE_ALLOCATABLE = {"cpu": "32", "memory": "128Gi", "pods": "110"}
IMAGE_BACKOFF_S, IMAGE_BACKOFF_MAX_S = 10.0, 300.0
TERMINATION_LOG_LINES, TERMINATION_LOG_BYTES = 80, 2048


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GenericContainer:
    """A non-Flink container: its `command` + `args` run as a host process (the container sees the host's file
    system; there is no image). Env: `value` (with $(VAR) expansion) and downward-API `fieldRef`. Restarted per
    restartPolicy with the kubelet's back-off (10 s doubling, 5 min cap)."""

    def __init__(self, pod: dict[str, Any], container: dict[str, Any], workdir: Path):
        self.pod, self.container, self.workdir = pod, container, workdir
        self.proc: Any = None
        self.restarts = 0
        self.started_at: str | None = None
        self.last_exit: dict[str, Any] | None = None
        self.next_start = 0.0
        self.failures = 0
        self.error: str | None = None
        self.done = False

    def _env(self) -> dict[str, str]:
        meta = self.pod["metadata"]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "status.podIP": LOCALHOST,
                  "status.hostIP": LOCALHOST, "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default")}
        env = {k: os.environ[k] for k in ("PATH", "LANG", "HOME") if k in os.environ}
        env["HOSTNAME"] = meta["name"]
        for item in self.container.get("env") or []:
            if "value" in item:
                env[item["name"]] = _pr.expand_k8s_vars(str(item["value"]), env)
            elif "fieldRef" in (item.get("valueFrom") or {}):
                value = fields.get(item["valueFrom"]["fieldRef"].get("fieldPath", ""))
                if value is not None:
                    env[item["name"]] = value
        return env

    def tick(self, policy: str) -> None:
        import subprocess
        now = time.time()
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal, like a container runtime
            self.last_exit = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                              "startedAt": self.started_at, "finishedAt": _now()}
            self.proc = None
            self.failures += 1
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                self.restarts += 1
                self.next_start = now + min(10.0 * 2 ** (self.failures - 1), 300.0)
            else:
                self.done = True
        if self.proc is None and not self.done and now >= self.next_start:
            env = self._env()
            argv = [_pr.expand_k8s_vars(str(a), env) for a in (self.container.get("command") or []) +
                    (self.container.get("args") or [])]
            if not argv:
                self.error = "no command: the sandbox has no image to take an entrypoint from"
                self.done = True
                return
            self.workdir.mkdir(parents=True, exist_ok=True)
            out = (self.workdir / f"{self.container['name']}.log").open("ab")
            try:
                self.proc = subprocess.Popen(argv, env=env, cwd=self.container.get("workingDir") or str(self.workdir),
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
                self.started_at = _now()
            except OSError as e:
                self.error = f"exec failed: {e}"
                self.last_exit = {"exitCode": 127, "reason": "ContainerCannotRun", "message": str(e)}
                self.done = policy == "Never"
                self.failures += 1
                self.next_start = now + min(10.0 * 2 ** (self.failures - 1), 300.0)
            finally:
                out.close()

    def status(self) -> dict[str, Any]:
        cs: dict[str, Any] = {"name": self.container["name"], "image": self.container.get("image", ""), "imageID": "",
                              "restartCount": self.restarts, "ready": self.proc is not None,
                              "started": self.proc is not None}
        if self.proc is not None:
            cs["state"] = {"running": {"startedAt": self.started_at}}
            cs["containerID"] = f"local-process://{self.proc.pid}"
            if self.last_exit:
                cs["lastState"] = {"terminated": self.last_exit}
        elif self.done and self.last_exit:
            cs["state"] = {"terminated": self.last_exit}
        elif self.last_exit:
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}
            cs["lastState"] = {"terminated": self.last_exit}
        else:
            cs["state"] = {"waiting": {"reason": "CreateContainerError" if self.error else "ContainerCreating",
                                       **({"message": self.error} if self.error else {})}}
        return cs

    def stop(self, grace_s: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=grace_s)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    runner_key: tuple[str, str, str] | None
    obj: dict[str, Any]
    unsupported: str | None = None
    started: str = field(default_factory=_now)
    conditions_since: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    generic: list[GenericContainer] = field(default_factory=list)
    pull_failures: int = 0          # failed image pulls (an image with no Flink distribution)
    next_pull: float = 0.0          # when the next pull is attempted (monotonic)
    stub_version: str | None = None  # --flink-rest-stub: the Flink version this pod's REST stub reports


class NodeAgent:
    def __init__(self, kube: Kube, state_dir: Path, node_name: str = NODE_NAME, interval_s: float = 1.0,
                 max_restart_backoff_s: float = 300.0, flink_rest_stub: bool = False):
        self.kube = kube
        self.stub = FlinkRestStub(kube) if flink_rest_stub else None
        self.allocatable = STUB_ALLOCATABLE if flink_rest_stub else NODE_ALLOCATABLE
        self.state_dir = state_dir
        self.node_name = node_name
        self.interval_s = interval_s
        self.max_restart_backoff_s = max_restart_backoff_s
        self._unschedulable: dict[str, str] = {}  # pod uid -> the scheduler message last written
        self.pods_res = kube.resource("v1", "pods")
        self.cm_res = kube.resource("v1", "configmaps")
        self.svc_res = kube.resource("v1", "services")
        self.node_res = kube.resource("v1", "nodes")
        self.runners: dict[tuple[str, str, str], _pr.PodRunner] = {}
        self.pods: dict[str, PodState] = {}
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.services: dict[tuple[str, str, int], int] = {}  # (ns, svc, port) -> local port
        self.service_objs: dict[tuple[str, str], dict[str, Any]] = {}
        self._forwarders: dict[tuple[str, str, int], socket.socket] = {}
        self._applied: dict[tuple[str, str, str], str] = {}
        self._pid_file = state_dir / "agent-pids"
        # each pod's ServiceAccount token and the API server's address (sandbox/podaccess.py)
        self.api_access = PodApiAccess(kube, state_dir / "node" / "serviceaccounts")

    # ------------------------------------------------------------------ node
    def register_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.node_labels},
                "spec": {}}
        if self.kube.get(self.node_res, None, self.node_name) is None:
            try:
                self.kube.create(node)
            except ApiError as e:
                if e.status != 409:
                    raise
        self.heartbeat()

    def heartbeat(self) -> None:
        live = self.kube.get(self.node_res, None, self.node_name)
        if live is None:
            return
        now = _now()
        live["status"] = {
            "capacity": dict(self.allocatable),
            "allocatable": dict(self.allocatable),
            "addresses": [{"type": "InternalIP", "address": LOCALHOST}, {"type": "Hostname", "address": self.node_name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "sandbox node agent is posting ready status (a stand-in, not a kubelet)",
                            "lastHeartbeatTime": now, "lastTransitionTime": (live.get("status") or {}).get(
                                "conditions", [{}])[0].get("lastTransitionTime", now) if (live.get("status") or {}).get("conditions") else now}],
            "nodeInfo": {"kubeletVersion": "sandbox", "kubeProxyVersion": "sandbox", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "local-process://sandbox",
                         "osImage": "sandbox", "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }
        self.kube.request("PUT", self.node_res.path(None, self.node_name, "status"), live)

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        self.register_node()
        self._start_proxy_server()
        last_heartbeat = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.tick()
                if time.monotonic() - last_heartbeat > 30:
                    self.heartbeat()
                    last_heartbeat = time.monotonic()
            except Exception as e:
                log.warning("tick failed: %s", e)
            self.stop_event.wait(self.interval_s)
        self.shutdown()

    def tick(self) -> None:
        pods = self.kube.list(self.pods_res)
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            if not spec.get("nodeName"):
                if not meta.get("deletionTimestamp"):
                    self._schedule(pod, pods)
                continue
            if spec["nodeName"] != self.node_name:
                continue
            seen.add(meta["uid"])
            if meta["uid"] not in self.pods:
                self._admit(pod)
            self.pods[meta["uid"]].obj = pod
        with self.lock:
            gone = [uid for uid in self.pods if uid not in seen]
            for uid in gone:
                state = self.pods.pop(uid)
                for g in state.generic:
                    g.stop(10.0)
                self.api_access.forget(uid, state.namespace, state.name)
                if self.stub is not None:
                    self.stub.forget(uid)
        for pod in pods:
            state = self.pods.get(pod["metadata"]["uid"])
            if state is not None and pod["metadata"].get("deletionTimestamp"):
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 30)
                for g in state.generic:
                    g.stop(min(grace, 30.0))
        self._sync_runners()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            state = self.pods.get(uid)
            if state is None:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            self._report(state)
        self._finish_deletions(pods)
        self._sync_services()
        self._write_agent_pids()

    def _schedule(self, pod: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Bind the pod, or report why it does not fit (the scheduler's PodScheduled=False/Unschedulable)."""
        reasons = scheduling.misfit(pod, pods, self.node_name, self.node_labels, self.allocatable)
        if not reasons:
            self._unschedulable.pop(pod["metadata"]["uid"], None)
            self._bind(pod)
            return
        message = scheduling.unschedulable_message(reasons)
        if self._unschedulable.get(pod["metadata"]["uid"]) == message:
            return
        live = dict(pod)
        live["status"] = {**(pod.get("status") or {}), "phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
             "lastProbeTime": None, "lastTransitionTime": _now()}]}
        try:
            meta = pod["metadata"]
            self.kube.request("PUT", self.pods_res.path(meta["namespace"], meta["name"], "status"), live)
            self._unschedulable[meta["uid"]] = message
            log.info("%s/%s unschedulable: %s", meta["namespace"], meta["name"], message)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("status of unschedulable %s: %s", pod["metadata"]["name"], e)

    @property
    def node_labels(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux", "sandbox": "true"}

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}}
        try:
            self.kube.request("POST", self.pods_res.path(meta["namespace"], meta["name"], "binding"), binding)
            log.info("bound %s/%s to %s", meta["namespace"], meta["name"], self.node_name)
            # Counted in this tick's fit checks of the pods after it (the list was read before the binding).
            pod.setdefault("spec", {})["nodeName"] = self.node_name
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("bind %s: %s", meta["name"], e)

    def _admit(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        containers = spec.get("containers") or []
        main = next((c for c in containers if c.get("name") == _pr.MAIN_CONTAINER), containers[0] if containers else {})
        image = main.get("image", "")
        m = FLINK_IMAGE.search(image)
        key = None
        unsupported = None
        if m and self.stub is not None:
            log.info("admitted %s/%s (Flink REST stub)", meta["namespace"], meta["name"])
            self.pods[meta["uid"]] = PodState(meta["uid"], meta["namespace"], meta["name"], None, pod,
                                              stub_version=f"{m.group(1)}.{m.group(2)}.0")
            return
        if m:
            try:
                version = resolve_version(f"{m.group(1)}.{m.group(2)}")
                key = (version, meta["namespace"], spec.get("restartPolicy") or "Always")
            except ValueError as e:
                unsupported = str(e)
        log.info("admitted %s/%s (%s)", meta["namespace"], meta["name"], key or unsupported or "host processes")
        state = PodState(meta["uid"], meta["namespace"], meta["name"], key, pod, unsupported)
        if not m:
            home = self.state_dir / "node" / "generic" / f"{meta['namespace']}-{meta['name']}"
            state.generic = [GenericContainer(pod, c, home) for c in containers]
        self.pods[meta["uid"]] = state

    def _runner(self, key: tuple[str, str, str]) -> _pr.PodRunner:
        runner = self.runners.get(key)
        if runner is None:
            version, namespace, policy = key
            workdir = self.state_dir / "node" / f"{namespace}-{version}-{policy.lower()}"
            runner = _pr.PodRunner(flink_dist(version), workdir, namespace=namespace, restart_policy=policy,
                                   max_restart_backoff_s=self.max_restart_backoff_s, enforce_memory_limits=True)
            self.runners[key] = runner
        return runner

    def _sync_runners(self) -> None:
        """Hand each pod runner its pods (as 1-replica 'Deployments' named after the pod, whose template is the
        pod itself) and the ConfigMaps of its namespace. Level-based: called every tick, applied on change."""
        wanted: dict[tuple[str, str, str], list[dict[str, Any]]] = {k: [] for k in self.runners}
        for state in self.pods.values():
            if state.runner_key is None or state.obj["metadata"].get("deletionTimestamp"):
                continue
            pod = state.obj
            pod_spec = self._with_api_access(pod)
            if pod_spec is None:
                continue  # its ServiceAccount Secret is not there yet: the pod waits
            wanted.setdefault(state.runner_key, []).append({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": state.name, "namespace": state.namespace},
                "spec": {"replicas": 1, "template": {"metadata": {"labels": pod["metadata"].get("labels") or {},
                                                                  "annotations": pod["metadata"].get("annotations") or {}},
                                                     "spec": pod_spec}}})
        cms_by_ns: dict[str, list[dict[str, Any]]] = {}
        for key, deps in wanted.items():
            ns = key[1]
            if ns not in cms_by_ns:
                cms_by_ns[ns] = self.kube.list(self.cm_res, ns) if (deps or key in self.runners) else []
            children = cms_by_ns[ns] + deps
            fingerprint = json.dumps([(c["kind"], c["metadata"]["name"], c["metadata"].get("resourceVersion", ""),
                                       c.get("spec", {}).get("template", {}).get("spec", {}).get("nodeName"))
                                      for c in children], sort_keys=True)
            if self._applied.get(key) == fingerprint:
                continue
            runner = self._runner(key)
            runner.apply(children)
            self._applied[key] = fingerprint

    def _with_api_access(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """The pod spec with the in-cluster API access env on its main container (None: not ready yet)."""
        containers = pod["spec"].get("containers") or []
        main = next((c for c in containers if c.get("name") == _pr.MAIN_CONTAINER), containers[0] if containers else None)
        if main is None:
            return dict(pod["spec"])
        env = self.api_access.env_for(pod, main)
        return None if env is None else with_env(pod["spec"], main["name"], env)

    # ------------------------------------------------------------------ status
    def _report(self, state: PodState) -> None:
        pod = state.obj
        spec = pod["spec"]
        containers = spec.get("containers") or []
        main_name = next((c["name"] for c in containers if c.get("name") == _pr.MAIN_CONTAINER),
                         containers[0]["name"] if containers else "main")
        statuses: list[dict[str, Any]] = []
        phase = "Pending"
        ready = False
        if state.generic:
            policy = spec.get("restartPolicy") or "Always"
            for g in state.generic:
                g.tick(policy)
            statuses = [g.status() for g in state.generic]
            ready = all(c["ready"] for c in statuses)
            if all(g.done for g in state.generic):
                codes = [(g.last_exit or {}).get("exitCode", 1) for g in state.generic]
                phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            elif any(g.proc is not None or g.last_exit for g in state.generic):
                phase = "Running"
        elif state.stub_version:
            image = next((c.get("image", "") for c in containers if c["name"] == main_name), "")
            statuses.append(running_container(main_name, image, state.started))
            phase, ready = "Running", True
        elif state.unsupported:
            image = next((c.get("image", "") for c in containers if c["name"] == main_name), "")
            statuses.append({"name": main_name, "ready": False, "started": False, "restartCount": 0,
                             "image": image, "imageID": "", "state": {"waiting": self._pull(state, image)}})
        else:
            runner = self.runners.get(state.runner_key) if state.runner_key else None
            try:
                got = runner.pod_statuses(state.name) if runner else []
            except KeyError:
                got = []
            if got:
                s = got[0]
                cs = dict(s["containerStatuses"][0])
                cs["name"] = main_name
                cs["image"] = next((c.get("image", "") for c in containers if c["name"] == main_name), "")
                cs["imageID"] = ""
                if s.get("pid"):
                    cs["containerID"] = f"local-process://{s['pid']}"
                main_spec = next((c for c in containers if c["name"] == main_name), {})
                if main_spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and runner is not None:
                    _log_as_termination_message(cs, runner.exits(state.name))
                statuses.append(cs)
                phase = s["phase"]
                ready = bool(cs.get("ready"))
                term = (cs.get("state") or {}).get("terminated")
                if term and spec.get("restartPolicy") in ("Never", "OnFailure"):
                    if term.get("exitCode") == 0:
                        phase = "Succeeded"
                    elif spec.get("restartPolicy") == "Never":
                        phase = "Failed"
            else:
                statuses.append({"name": main_name, "ready": False, "started": False, "restartCount": 0, "image": "",
                                 "imageID": "", "state": {"waiting": {"reason": "ContainerCreating"}}})
        for c in containers:  # other containers (sidecars) of Flink pods are not run by the sandbox
            if c["name"] != main_name and not state.generic:
                statuses.append({"name": c["name"], "ready": False, "started": False, "restartCount": 0,
                                 "image": c.get("image", ""), "imageID": "",
                                 "state": {"waiting": {"reason": "NotRunBySandbox",
                                                       "message": "the sandbox node runs only the main container"}}})
                # a sidecar the sandbox does not run must not hold the pod's readiness back
        conds = {"PodScheduled": "True", "Initialized": "True",
                 "ContainersReady": "True" if ready else "False", "Ready": "True" if ready else "False"}
        conditions = []
        for ctype, value in conds.items():
            prev = state.conditions_since.get(ctype)
            if prev is None or prev[0] != value:
                state.conditions_since[ctype] = (value, _now())
            conditions.append({"type": ctype, "status": value, "lastProbeTime": None,
                               "lastTransitionTime": state.conditions_since[ctype][1]})
        status = {"phase": phase, "conditions": conditions, "hostIP": LOCALHOST, "podIP": LOCALHOST,
                  "podIPs": [{"ip": LOCALHOST}], "startTime": state.started, "containerStatuses": statuses,
                  "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort")}
        if status == state.last_status:
            return
        live = dict(pod)
        live["status"] = status
        try:
            self.kube.request("PUT", self.pods_res.path(state.namespace, state.name, "status"), live)
            state.last_status = status
        except ApiError as e:
            if e.status == 409:
                return  # stale: the next tick has the new resourceVersion
            if e.status != 404:
                log.warning("status of %s: %s", state.name, e)

    def _pull(self, state: PodState, image: str) -> dict[str, str]:
        """An image the sandbox cannot provide: ErrImagePull on each attempt, ImagePullBackOff in between."""
        now = time.monotonic()
        if now >= state.next_pull:
            state.pull_failures += 1
            state.next_pull = now + min(IMAGE_BACKOFF_S * 2 ** (state.pull_failures - 1), IMAGE_BACKOFF_MAX_S)
            return {"reason": "ErrImagePull", "message": f'failed to pull image "{image}": the sandbox node has no '
                                                         f"such image ({state.unsupported})"}
        return {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}

    def _finish_deletions(self, pods: list[dict[str, Any]]) -> None:
        """Pods with a deletionTimestamp: their processes were stopped by _sync_runners (the pod left the runner's
        set); now delete them for good, as the kubelet does once the containers are gone."""
        for pod in pods:
            meta = pod["metadata"]
            if not meta.get("deletionTimestamp") or (pod.get("spec") or {}).get("nodeName") != self.node_name:
                continue
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]}}
            try:
                self.kube.request("DELETE", self.pods_res.path(meta["namespace"], meta["name"]), body)
                log.info("pod %s/%s stopped and deleted", meta["namespace"], meta["name"])
            except ApiError as e:
                if e.status not in (404, 409):
                    log.warning("delete %s: %s", meta["name"], e)

    # ------------------------------------------------------------------ services
    def _target(self, namespace: str, service: str, port: int) -> tuple[str, int] | None:
        """A Ready pod of the Service and the local port of the container port the Service port targets."""
        svc = self.service_objs.get((namespace, service))
        if svc is None:
            return None
        spec = svc.get("spec") or {}
        sport = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
        selector = spec.get("selector") or {}
        if sport is None or not selector:
            return None
        target = sport.get("targetPort", sport["port"])
        with self.lock:
            states = list(self.pods.values())
        for state in states:
            if state.namespace != namespace or (state.runner_key is None and not state.generic):
                continue
            labels = state.obj["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if not (state.last_status and any(c["type"] == "Ready" and c["status"] == "True"
                                              for c in state.last_status["conditions"])):
                continue
            names = {target}
            for c in state.obj["spec"].get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == target or cp.get("containerPort") == target:
                        names |= {cp.get("name"), cp.get("containerPort")}
            if state.generic:  # a host process listens on its container port itself
                port_no = next((n for n in names if isinstance(n, int)), None)
                if port_no is not None:
                    return LOCALHOST, port_no
                continue
            runner = self.runners.get(state.runner_key) if state.runner_key else None
            if runner is None:
                continue
            try:
                net = runner.cluster_net(state.name)
            except KeyError:
                continue
            if names & FLINK_REST_PORTS:
                return LOCALHOST, net.rest_port
            if names & FLINK_RPC_PORTS:
                return LOCALHOST, net.rpc_port
        return None

    def stub_cluster(self, namespace: str, svc: dict[str, Any]) -> tuple[PodState, int] | None:
        """--flink-rest-stub: the stub JobManager pod a Service selects, and its cluster's stub TaskManagers."""
        selector = (svc.get("spec") or {}).get("selector") or {}
        with self.lock:
            states = [s for s in self.pods.values() if s.namespace == namespace and s.stub_version]
        labelled = [(s, s.obj["metadata"].get("labels") or {}) for s in states
                    if not s.obj["metadata"].get("deletionTimestamp")]
        jobmanager = next((s for s, labels in labelled if selector and all(labels.get(k) == v for k, v in
                                                                           selector.items())), None)
        if jobmanager is None:
            return None
        app = (jobmanager.obj["metadata"].get("labels") or {}).get("app")
        taskmanagers = sum(1 for _, labels in labelled if labels.get("app") == app and
                           labels.get("component") == "taskmanager")
        return jobmanager, taskmanagers

    def _sync_services(self) -> None:
        services = self.kube.list(self.svc_res)
        current = {}
        for svc in services:
            meta = svc["metadata"]
            if meta["namespace"] == "default" and meta["name"] == "kubernetes":
                continue
            current[(meta["namespace"], meta["name"])] = svc
        self.service_objs = current
        # stub pods run no process: nothing to forward to (the REST proxy answers for them)
        wanted = set() if self.stub is not None else {(ns, name, p["port"]) for (ns, name), svc in current.items()
                                                      for p in (svc.get("spec") or {}).get("ports") or []}
        changed = False
        for key in list(self._forwarders):
            if key not in wanted:
                sock = self._forwarders.pop(key)
                sock.close()
                self.services.pop(key, None)
                changed = True
        for key in sorted(wanted - set(self._forwarders)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOCALHOST, 0))
            sock.listen(64)
            self._forwarders[key] = sock
            self.services[key] = sock.getsockname()[1]
            threading.Thread(target=self._accept_loop, args=(key, sock), daemon=True).start()
            changed = True
        if changed or not (self.state_dir / "services").exists():
            lines = ["# namespace/service:port -> local address (sandbox node agent; forwards to Ready pods)"]
            lines += [f"{ns}/{name}:{port} 127.0.0.1:{local}" for (ns, name, port), local in sorted(self.services.items())]
            lines.append(f"# Flink REST of FlinkDeployment N in namespace NS: "
                         f"http://127.0.0.1:{self.proxy_port}/NS/N-rest/ (reverse proxy)")
            tmp = self.state_dir / "services.tmp"
            tmp.write_text("\n".join(lines) + "\n")
            tmp.replace(self.state_dir / "services")

    def _accept_loop(self, key: tuple[str, str, int], sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(key, conn), daemon=True).start()

    def _forward(self, key: tuple[str, str, int], conn: socket.socket) -> None:
        target = self._target(*key)
        if target is None:
            conn.close()
            return
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        pair = {conn: upstream, upstream: conn}
        try:
            while True:
                readable, _, _ = select.select(list(pair), [], [], 300)
                if not readable:
                    break
                done = False
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        done = True
                        break
                    pair[s].sendall(data)
                if done:
                    break
        except OSError:
            pass
        finally:
            conn.close()
            upstream.close()

    # ------------------------------------------------------------------ the REST reverse proxy
    def _start_proxy_server(self) -> None:
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def _proxy(self) -> None:
                parts = self.path.split("/", 3)  # "", ns, service, rest
                if len(parts) < 3:
                    self._reply(404, b"expected /<namespace>/<service>/<path>")
                    return
                ns, svc = parts[1], parts[2].split("?", 1)[0]
                rest = "/" + (parts[3] if len(parts) > 3 else "")
                if "?" in parts[2]:
                    rest = "/?" + parts[2].split("?", 1)[1]
                svc_obj = agent.service_objs.get((ns, svc))
                if svc_obj is None:
                    self._reply(503, f"no Service {ns}/{svc}".encode())
                    return
                if agent.stub is not None:
                    self._stub(ns, svc_obj, rest)
                    return
                ports = (svc_obj.get("spec") or {}).get("ports") or []
                port = next((p for p in ports if p.get("name") == "rest"), ports[0] if ports else None)
                target = agent._target(ns, svc, port["port"]) if port else None
                if target is None:
                    self._reply(503, f"Service {ns}/{svc} has no ready endpoint".encode())
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection",
                                                                                     "content-length", "keep-alive")}
                try:
                    upstream = http.client.HTTPConnection(*target, timeout=30)
                    upstream.request(self.command, rest, body=body, headers=headers)
                    resp = upstream.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    upstream.close()
                except OSError as e:
                    self._reply(502, f"upstream {target}: {e}".encode())

            def _stub(self, ns: str, svc_obj: dict[str, Any], rest: str) -> None:
                found = agent.stub_cluster(ns, svc_obj)
                if found is None:
                    self._reply(503, f"Service {ns}/{svc_obj['metadata']['name']} has no ready endpoint".encode())
                    return
                jobmanager, taskmanagers = found
                assert agent.stub is not None
                code, answer = agent.stub.answer(rest, jobmanager.obj, jobmanager.stub_version or "", jobmanager.started,
                                                 taskmanagers)
                self._reply(code, json.dumps(answer).encode(), "application/json; charset=UTF-8")

            def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _proxy

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        port = int(os.environ.get("SANDBOX_PROXY_PORT", "0"))
        self.proxy = Server((LOCALHOST, port), Handler)
        self.proxy_port = self.proxy.server_address[1]
        (self.state_dir / "proxy-port").write_text(str(self.proxy_port))
        threading.Thread(target=self.proxy.serve_forever, daemon=True, name="rest-proxy").start()

    # ------------------------------------------------------------------ bookkeeping
    def _write_agent_pids(self) -> None:
        """PIDs (and start times) of the processes the agent started, so sandbox-down can stop them by PID
        should the agent itself be gone."""
        lines = []
        for runner in self.runners.values():
            for pid in runner.pids():
                st = _pr._proc_start_time(pid)
                if st:
                    lines.append(f"jvm {pid} {st}")
        for state in list(self.pods.values()):
            for g in state.generic:
                if g.proc is not None and g.proc.poll() is None:
                    st = _pr._proc_start_time(g.proc.pid)
                    if st:
                        lines.append(f"proc {g.proc.pid} {st}")
        text = "\n".join(lines) + ("\n" if lines else "")
        try:
            if not self._pid_file.exists() or self._pid_file.read_text() != text:
                self._pid_file.write_text(text)
        except OSError:
            pass

    def shutdown(self) -> None:
        for state in list(self.pods.values()):
            for g in state.generic:
                g.stop(10.0)
        for runner in list(self.runners.values()):
            runner.close(grace_period_s=10.0)
        self.runners.clear()
        try:
            self._pid_file.write_text("")
        except OSError:
            pass


def _log_as_termination_message(cs: dict[str, Any], exits: list[Any]) -> None:
    """terminationMessagePolicy FallbackToLogsOnError: a container that failed gets the end of its log as its
    termination message (the kubelet: the last 80 lines, at most 2048 bytes)."""
    if not exits or exits[-1].exit_code == 0:
        return
    tail = "\n".join(exits[-1].log_tail.splitlines()[-TERMINATION_LOG_LINES:])[-TERMINATION_LOG_BYTES:]
    for key in ("state", "lastState"):
        term = (cs.get(key) or {}).get("terminated")
        if term is not None:
            cs[key] = {"terminated": {**term, "message": tail}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The sandbox's node agent (a kubelet stand-in, not a kubelet).")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--max-restart-backoff", type=float,
                    default=float(os.environ.get("SANDBOX_MAX_RESTART_BACKOFF", "300")),
                    help="cap of the CrashLoopBackOff restart delay in seconds (the kubelet's: 300)")
    ap.add_argument("--flink-rest-stub", action="store_true",
                    default=os.environ.get("SANDBOX_FLINK_REST_STUB", "") not in ("", "0", "false"),
                    help="run no process for Flink pods; answer their REST calls from a stub (sandbox/flinkstub.py)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    agent = NodeAgent(Kube.from_kubeconfig(args.kubeconfig), Path(args.state_dir), interval_s=args.interval,
                      max_restart_backoff_s=args.max_restart_backoff, flink_rest_stub=args.flink_rest_stub)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
