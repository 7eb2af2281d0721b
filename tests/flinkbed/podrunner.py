"""Run the Kubernetes children a sync hook renders as local Flink processes ("pods").

A :class:`PodRunner` takes the list of objects a FlinkDeployment sync hook returns
(``apps/v1 Deployment`` ``N`` = JobManager and ``N-taskmanager``, ``v1 ConfigMap``
``flink-config-N``, ``v1 Service``\\ s) and runs each Deployment's main container as a JVM on
127.0.0.1, from the cached PyPI Flink distribution. It does what the Flink image does, so that the
*rendered* configuration and container args are what starts Flink:

* ``/docker-entrypoint.sh`` maps ``standalone-job`` / ``jobmanager`` / ``taskmanager`` to
  ``bin/standalone-job.sh`` / ``bin/jobmanager.sh`` / ``bin/taskmanager.sh start-foreground`` with
  the remaining args (its attempt to write ``jobmanager.rpc.address`` & co. into the read-only
  ConfigMap mount has no effect in a pod, so it is not emulated);
* those scripts run ``BashJavaUtils GET_JM_RESOURCE_PARAMS`` / ``GET_TM_RESOURCE_PARAMS`` against
  the conf dir (JVM memory flags + ``-D`` dynamic properties), read ``env.java.*opts*`` from the
  config, and ``flink-console.sh`` execs
  ``java $JVM_ARGS $FLINK_ENV_JAVA_OPTS <log settings> -classpath <lib/*, flink-dist last> <class> <args>``
  with the classes ``StandaloneApplicationClusterEntryPoint`` / ``StandaloneSessionClusterEntrypoint``
  / ``TaskManagerRunner``. The argument order below is the scripts' order.

What differs from a pod, on purpose (all in one place: :func:`pod_network_overrides`, plus
:data:`SPEED_OVERRIDES` and the JVM flags in :class:`PodRunner`): all pods share 127.0.0.1, so
addresses become 127.0.0.1, fixed ports become per-cluster free ports or 0, and local dirs move into
the runner's workdir.

Kubernetes semantics kept: ``apply()`` is level-based (new Deployment → start pods; changed
``spec.template`` → stop the old pods, then start new ones; gone → stop); ``replicas`` → that many
processes; a ConfigMap change alone restarts nothing, a (re)started container reads the current
content; an exited container is restarted with back-off (``restartPolicy: Always``), and the exit
is recorded so a test can see the crash. Processes are stopped by PID only (SIGTERM, then SIGKILL),
and a small reaper process kills them should the test process die without cleaning up.
"""

from __future__ import annotations

import atexit
import base64
import copy
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import confdir
from .dist import FlinkDist
from .rest import FlinkRest

LOCALHOST = "127.0.0.1"
FLINK_HOME_IN_IMAGE = "/opt/flink"
IMAGE_ENTRYPOINT = "/docker-entrypoint.sh"
MAIN_CONTAINER = "flink-main-container"

JM_APPLICATION_CLASS = "org.apache.flink.container.entrypoint.StandaloneApplicationClusterEntryPoint"
JM_SESSION_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TM_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
BASH_JAVA_UTILS_CLASS = "org.apache.flink.runtime.util.bash.BashJavaUtils"

# The Java 17 module flags flink-dist's default config ships in env.java.opts.all, and which the
# Apache operator puts into env.java.default-opts.all for flinkVersion >= v1_19.
JAVA17_OPENS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)

# Faster JVM start on 2 cores (~1.3 s less per process, flink-local.md §2). Not what the image does;
# pass jvm_extra=() to PodRunner to run without them.
FAST_START_JVM_FLAGS: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

# Test-speed settings written over the rendered config (pass speed_overrides={} to disable):
SPEED_OVERRIDES: Mapping[str, str] = {
    # A TM started together with its JM fails its first ResourceManager lookup and waits this long
    # before retrying; the default 10 s would add 10 s to every cluster start (flink-local.md gotcha 1).
    "cluster.registration.error-delay": "500 ms",
    # REST metric values (the counter job's gauge) lag by this much; default 10 s (gotcha 5).
    "metrics.fetcher.update-interval": "1 s",
}

# Used only when the ConfigMap ships no log4j-console.properties (a real pod would then log at
# log4j's default ERROR level to the console): console + one file per process (${sys:log.file}).
# append = true: log4j is initialised twice per JVM and `false` would truncate (gotcha 2).
DEFAULT_LOG4J_CONSOLE = """\
# flink-sync test bed default (the ConfigMap had no log4j-console.properties)
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
rootLogger.appenderRef.file.ref = FileAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = WARN
appender.file.name = FileAppender
appender.file.type = File
appender.file.append = true
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
"""

ROLE_APPLICATION_JM = "standalone-job"
ROLE_SESSION_JM = "jobmanager"
ROLE_TM = "taskmanager"
JM_ROLES = frozenset({ROLE_APPLICATION_JM, ROLE_SESSION_JM})


# ----------------------------------------------------------------------------------------------
# Ports and the "pod network"
# ----------------------------------------------------------------------------------------------

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never the same one twice in this process)."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOCALHOST, 0))
                port = int(s.getsockname()[1])
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise RuntimeError("no free port found")


@dataclass(frozen=True)
class ClusterNet:
    """The addresses of one Flink cluster: what the Services ``N`` / ``N-rest`` give in Kubernetes."""

    name: str  # the cluster's ConfigMap name (``flink-config-N``), shared by its JM and TM pods
    rest_port: int
    rpc_port: int

    @property
    def rest_url(self) -> str:
        return f"http://{LOCALHOST}:{self.rest_port}"


def pod_network_overrides(net: ClusterNet, pod_home: Path) -> dict[str, str]:
    """The only config changes the pod runner makes for networking and local paths.

    In Kubernetes every pod has its own IP and file system: Flink binds its fixed ports (6123,
    6124, 8081, 6122) on the pod IP, TaskManagers reach the JobManager through the Service DNS name
    in ``jobmanager.rpc.address``, and ``/tmp`` / ``/opt/flink`` belong to the container. Here all
    pods share 127.0.0.1 and one file system, so:

    * every address and bind host → 127.0.0.1 (the rendered ``N.NS`` name does not resolve here);
    * ``rest.port``/``rest.bind-port`` → the cluster's REST port, ``jobmanager.rpc.port`` → the
      cluster's RPC port (both fixed per cluster for the runner's lifetime, like a Service);
    * ``blob.server.port``, ``taskmanager.rpc.port``, ``taskmanager.data.port``,
      ``metrics.internal.query-service.port`` → 0 (ephemeral), so several pods can coexist;
    * tmp, web and upload dirs, and ``user.artifacts.base-dir`` (default ``/opt/flink/artifacts``,
      where a stale jar would be silently reused, gotcha 6) → inside the pod's directory.
    """
    tmp = pod_home / "tmp"
    return {
        "jobmanager.rpc.address": LOCALHOST,
        "jobmanager.bind-host": LOCALHOST,
        "rest.address": LOCALHOST,
        "rest.bind-address": LOCALHOST,
        "taskmanager.host": LOCALHOST,
        "taskmanager.bind-host": LOCALHOST,
        "rest.port": str(net.rest_port),
        "rest.bind-port": str(net.rest_port),
        "jobmanager.rpc.port": str(net.rpc_port),
        "blob.server.port": "0",
        "taskmanager.rpc.port": "0",
        "taskmanager.data.port": "0",
        "metrics.internal.query-service.port": "0",
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp / "web"),
        "web.upload.dir": str(tmp / "web-upload"),
        "user.artifacts.base-dir": str(pod_home / "artifacts"),
    }


# ----------------------------------------------------------------------------------------------
# Kubernetes helpers
# ----------------------------------------------------------------------------------------------

_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
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


def _now_rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(t if t is not None else time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rand_suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


def _is_kind(obj: Mapping[str, Any], kind: str, api_versions: tuple[str, ...]) -> bool:
    return obj.get("kind") == kind and obj.get("apiVersion") in api_versions


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = total * float(value[:-1]) / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: identifies a process across PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# ----------------------------------------------------------------------------------------------
# Reaper: kills the runner's JVMs if the test process dies without stopping them
# ----------------------------------------------------------------------------------------------

_REAPER_CODE = r"""
import os, signal, sys, time
def start_time(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19]
    except Exception:
        return None
pids = {}
for line in sys.stdin:
    parts = line.split()
    if len(parts) == 3 and parts[0] == "add":
        pids[int(parts[1])] = parts[2]
    elif len(parts) >= 2 and parts[0] == "del":
        pids.pop(int(parts[1]), None)
# stdin closed: the runner is gone (or done). Stop what is left, by PID, if still the same process.
mine = [p for p, st in pids.items() if start_time(p) == st]
for p in mine:
    try: os.kill(p, signal.SIGTERM)
    except OSError: pass
deadline = time.time() + 10
while time.time() < deadline and any(start_time(p) == pids[p] for p in mine):
    time.sleep(0.2)
for p in mine:
    if start_time(p) == pids[p]:
        try: os.kill(p, signal.SIGKILL)
        except OSError: pass
"""


class _Reaper:
    """A tiny watchdog process. It learns each JVM's PID (and start time) and, when its stdin
    closes — the runner was closed, or the test process died, even by SIGKILL — terminates the
    JVMs that are still the processes the runner started."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _REAPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed by a Ctrl-C aimed at pytest
            text=True,
        )

    def _send(self, line: str) -> None:
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def add(self, pid: int) -> None:
        st = _proc_start_time(pid)
        if st:
            self._send(f"add {pid} {st}")

    def remove(self, pid: int) -> None:
        self._send(f"del {pid}")

    def close(self) -> None:
        try:
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()


# ----------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------


class PodSpecError(ValueError):
    """The pod template cannot be run by the pod runner (e.g. an unknown command)."""


class PodCrashed(RuntimeError):
    """A container of the Deployment being waited for exited."""


class _NotStartable(Exception):
    """The container cannot start yet (like ContainerCreating / CreateContainerConfigError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _ContainerFailed(Exception):
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

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"

    def __str__(self) -> str:
        return f"{self.pod} attempt {self.attempt} exited with {self.exit_code}:\n{self.log_tail}"


@dataclass
class LaunchPlan:
    """What one container start runs (kept for inspection: ``PodRunner.launch_plans``)."""

    role: str
    main_class: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path
    out_file: Path
    notes: list[str] = field(default_factory=list)


@dataclass
class _Pod:
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

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def restart_count(self) -> int:
        return len(self.exits)


@dataclass
class _Deployment:
    name: str
    namespace: str
    obj: dict[str, Any]
    template_hash: str
    replicas: int
    generation: int
    pods: list[_Pod] = field(default_factory=list)
    condition_since: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.obj.get("spec", {}).get("template", {})
        return template


_LIVE_RUNNERS: weakref.WeakSet[PodRunner] = weakref.WeakSet()


@atexit.register
def _stop_all_runners() -> None:
    for runner in list(_LIVE_RUNNERS):
        runner.close(grace_period_s=5.0)


# ----------------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------------


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
        self.java = java or self._find_java()
        self.notes: list[str] = []  # deviations noticed while starting pods (deduplicated)

        self._first_rest_port = rest_port
        self._lock = threading.RLock()
        self._deployments: dict[str, _Deployment] = {}
        self._configmaps: dict[str, dict[str, Any]] = {}
        self._services: dict[str, dict[str, Any]] = {}
        self._clusters: dict[str, ClusterNet] = {}
        self._bju_cache: dict[tuple[Any, ...], tuple[list[str], list[str]]] = {}
        self._closed = False
        self._reaper = _Reaper()
        self._stop_event = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, name=f"podrunner-{id(self):x}", daemon=True)
        self._monitor.start()
        _LIVE_RUNNERS.add(self)

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
            self._terminate(pods, grace_period_s)

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
            self._configmaps = {c["metadata"]["name"]: c for c in objs if _is_kind(c, "ConfigMap", ("v1",))}
            self._services = {c["metadata"]["name"]: c for c in objs if _is_kind(c, "Service", ("v1",))}
            wanted = {c["metadata"]["name"]: c for c in objs if _is_kind(c, "Deployment", ("apps/v1",))}
            doomed: list[_Pod] = []
            for name in [n for n in self._deployments if n not in wanted]:
                doomed += self._deployments.pop(name).pods
            for name, obj in wanted.items():
                doomed += self._reconcile_deployment(name, obj)
            self._terminate(doomed, None)
            for dep in self._deployments.values():
                self._scale_up(dep)
        self._tick()  # start what is due now, in the caller's thread

    def _reconcile_deployment(self, name: str, obj: dict[str, Any]) -> list[_Pod]:
        spec = obj.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        thash = template_hash(spec.get("template") or {})
        dep = self._deployments.get(name)
        if dep is None:
            gen = int(obj.get("metadata", {}).get("generation") or 1)
            ns = obj.get("metadata", {}).get("namespace") or self.namespace
            self._deployments[name] = _Deployment(name, ns, obj, thash, replicas, gen)
            return []
        doomed: list[_Pod] = []
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

    def _scale_up(self, dep: _Deployment) -> None:
        while len(dep.pods) < dep.replicas:
            pod_name = f"{dep.name}-{dep.template_hash}-{_rand_suffix()}"
            dep.pods.append(_Pod(pod_name, dep.name, dep.template_hash, self.workdir / "pods" / pod_name))

    # --- stopping ----------------------------------------------------------------------------
    def _terminate(self, pods: list[_Pod], grace_period_s: float | None) -> None:
        """SIGTERM the pods' processes, wait up to the grace period, then SIGKILL (by PID)."""
        grace = self.grace_period_s if grace_period_s is None else grace_period_s
        procs = []
        for pod in pods:
            pod.deleted = True
            pod.next_start_at = None
            if pod.proc is not None and pod.proc.poll() is None:
                pod.proc.send_signal(signal.SIGTERM)  # no-op if already reaped: PID-reuse safe
                procs.append(pod.proc)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            self._reaper.remove(proc.pid)
        for pod in pods:
            if pod.proc is not None:
                for fh in (pod.proc.stdout, pod.proc.stderr):
                    if fh:
                        fh.close()

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
            now = time.time()
            for dep in list(self._deployments.values()):
                for pod in dep.pods:
                    if pod.proc is not None and pod.proc.poll() is not None:
                        self._record_exit(dep, pod, pod.proc.returncode, "")
                    if pod.proc is None and pod.next_start_at is not None and now >= pod.next_start_at:
                        self._start(dep, pod)

    def _record_exit(self, dep: _Deployment, pod: _Pod, code: int, extra_output: str) -> None:
        now = time.time()
        started = pod.started_at or now
        tail = extra_output
        if pod.plan is not None:
            tail = "\n".join(
                x
                for x in (
                    f"--- {pod.plan.log_file.name} ---\n{_tail(pod.plan.log_file, 40)}"
                    if pod.plan.log_file.exists()
                    else "",
                    f"--- {pod.plan.out_file.name} ---\n{_tail(pod.plan.out_file, 40)}"
                    if pod.plan.out_file.exists()
                    else "",
                    extra_output,
                )
                if x
            )
        pod.exits.append(ContainerExit(pod.name, dep.name, pod.attempt, code, started, now, tail))
        if pod.proc is not None:
            self._reaper.remove(pod.proc.pid)
            for fh in (pod.proc.stdout, pod.proc.stderr):
                if fh:
                    fh.close()
        pod.proc = None
        pod.ready = False
        # Kubernetes back-off: 10 s, 20 s, 40 s, ... capped at 5 min; reset after 10 min of running.
        pod.consecutive_failures = 1 if now - started > 600 else pod.consecutive_failures + 1
        if self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0):
            delay = min(self.restart_backoff_s * 2 ** (pod.consecutive_failures - 1), self.max_restart_backoff_s)
            pod.next_start_at = now + delay
            pod.waiting_reason, pod.waiting_message = (
                "CrashLoopBackOff",
                f"back-off {delay:.0f}s restarting failed container={MAIN_CONTAINER} pod={pod.name}",
            )
        else:
            pod.next_start_at = None
            pod.waiting_reason, pod.waiting_message = None, ""

    # --- starting a container ----------------------------------------------------------------
    def _start(self, dep: _Deployment, pod: _Pod) -> None:
        pod.attempt += 1
        pod.started_at = time.time()
        try:
            plan = self._plan(dep, pod)
        except _NotStartable as e:
            pod.attempt -= 1
            pod.started_at = None
            pod.waiting_reason, pod.waiting_message = e.reason, e.message
            pod.next_start_at = time.time() + 1.0  # retry: the missing ConfigMap may appear
            return
        except (_ContainerFailed, PodSpecError) as e:
            code, output = (e.exit_code, e.output) if isinstance(e, _ContainerFailed) else (127, str(e))
            pod.plan = None
            self._record_exit(dep, pod, code, output)
            return
        pod.plan = plan
        out = plan.out_file.open("ab")
        try:
            pod.proc = subprocess.Popen(
                plan.argv,
                cwd=plan.cwd,
                env=plan.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C for pytest does not hit the JVMs; stop_all does
            )
        except OSError as e:
            out.close()
            self._record_exit(dep, pod, 127, f"exec failed: {e}")
            return
        out.close()  # the child holds its own descriptor
        self._reaper.add(pod.proc.pid)
        pod.ready = False
        pod.next_start_at = None
        pod.waiting_reason, pod.waiting_message = None, ""

    def _plan(self, dep: _Deployment, pod: _Pod) -> LaunchPlan:
        """Everything the image's entrypoint and bin scripts would do, up to the ``exec java``."""
        tmpl_spec = dep.template.get("spec") or {}
        containers = tmpl_spec.get("containers") or []
        container = next(
            (c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0] if containers else None
        )
        if container is None:
            raise PodSpecError(f"Deployment {dep.name}: the pod template has no containers")
        command = container.get("command")
        if command not in (None, [IMAGE_ENTRYPOINT]):
            raise PodSpecError(f"Deployment {dep.name}: command {command!r} is not the image's {IMAGE_ENTRYPOINT}")
        if len(containers) > 1:
            self._note(f"Deployment {dep.name}: only {container.get('name')!r} is run, other containers are ignored")

        home = pod.home
        for sub in ("log", "tmp", "plugins", "bin", "opt"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        lib = home / "lib"
        if not lib.exists():
            lib.symlink_to(self.dist.lib_dir, target_is_directory=True)

        container_env = self._container_env(dep, pod, container)
        conf_dir, cluster = self._materialize_volumes(dep, pod, container, tmpl_spec)
        net = self._cluster_net(cluster)
        conf_dir.mkdir(parents=True, exist_ok=True)
        if not any((conf_dir / n).is_file() for n in (confdir.LEGACY_CONF, confdir.STANDARD_CONF)):
            self._note(f"Deployment {dep.name}: no Flink config file mounted at {FLINK_HOME_IN_IMAGE}/conf")
            if self.dist.major < 2:
                # Flink 1.x would start with defaults: bound to 0.0.0.0 on the fixed ports. Never
                # here: give it a file holding only the overrides. (2.x refuses to start; kept.)
                (conf_dir / confdir.LEGACY_CONF).write_text("")
        overrides = {**pod_network_overrides(net, home), **self.speed_overrides}
        confdir.apply_overrides(conf_dir, overrides)
        if not (conf_dir / "log4j-console.properties").exists():
            (conf_dir / "log4j-console.properties").write_text(DEFAULT_LOG4J_CONSOLE)
        config = confdir.read_flink_config(conf_dir, self.dist.major)
        # memo key for BashJavaUtils: the config without the per-pod overrides
        config_key = tuple(sorted((k, v) for k, v in config.items() if k not in overrides))

        args = [expand_k8s_vars(str(a), container_env) for a in container.get("args") or []]
        role = args[0] if args else "help"
        rest = args[1:]
        conf = str(conf_dir)
        notes: list[str] = []
        if role == ROLE_APPLICATION_JM:  # bin/standalone-job.sh start-foreground "$@"
            service, main_class = "standalonejob", JM_APPLICATION_CLASS
            entry_args = ["--configDir", conf, *rest]
            jvm_params, dynamic = self._bash_java_utils("GET_JM_RESOURCE_PARAMS", conf_dir, config_key, entry_args)
            entry_args += dynamic  # appended after the job's own args, exactly like the script
        elif role == ROLE_SESSION_JM:  # bin/jobmanager.sh start-foreground "$@"
            service, main_class = "standalonesession", JM_SESSION_CLASS
            host = webui_port = None
            if not rest or rest[0] == "-D":
                user_args = rest
            elif len(rest) < 2 or rest[1] == "-D":  # legacy: start <host> [-D ...]
                host, user_args = rest[0], rest[1:]
            else:  # legacy: start <host> <webui-port> [-D ...]
                host, webui_port, user_args = rest[0], rest[1], rest[2:]
            jvm_params, dynamic = self._bash_java_utils("GET_JM_RESOURCE_PARAMS", conf_dir, config_key, user_args)
            entry_args = ["--configDir", conf, "--executionMode", "cluster", *user_args]
            if host:
                entry_args += ["--host", host]
            if webui_port:
                entry_args += ["--webui-port", webui_port]
            entry_args = [*dynamic, *entry_args]
        elif role == ROLE_TM:  # bin/taskmanager.sh start-foreground "$@"
            service, main_class = "taskexecutor", TM_CLASS
            jvm_params, dynamic = self._bash_java_utils("GET_TM_RESOURCE_PARAMS", conf_dir, config_key, rest)
            entry_args = [*rest, "--configDir", conf, *dynamic]
        else:
            raise PodSpecError(
                f"Deployment {dep.name}: container args {args!r} are not one of standalone-job/jobmanager/taskmanager"
            )

        env = self._process_env(pod, home, conf_dir, container_env)
        java_opts = self._java_opts(config, env, role, notes, dep.name)
        log_file = home / "log" / f"flink--{service}-{pod.attempt}-{pod.name}.log"
        out_file = home / "log" / f"flink--{service}-{pod.attempt}-{pod.name}.out"
        argv = [
            self.java,
            *env.get("JVM_ARGS", "").split(),
            *jvm_params,
            *java_opts,
            *self.jvm_extra,
            f"-Dlog.file={log_file}",
            f"-Dlog4j.configuration=file:{conf}/log4j-console.properties",
            f"-Dlog4j.configurationFile=file:{conf}/log4j-console.properties",
            f"-Dlogback.configurationFile=file:{conf}/logback-console.xml",
            "-classpath",
            self.dist.classpath_str,
            main_class,
            *entry_args,
        ]
        for n in notes:
            self._note(n)
        return LaunchPlan(role, main_class, argv, env, home, log_file, out_file, notes)

    def _container_env(self, dep: _Deployment, pod: _Pod, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet builds it (``value`` with ``$(VAR)``
        expansion, ``fieldRef`` for the pod IP/name/namespace, ``configMapKeyRef``, ``envFrom``)."""
        env: dict[str, str] = {}
        for src in container.get("envFrom") or []:
            if "configMapRef" in src:
                cm = self._configmaps.get(src["configMapRef"].get("name", ""))
                if cm is None and not src["configMapRef"].get("optional"):
                    raise _NotStartable(
                        "CreateContainerConfigError", f"configmap {src['configMapRef'].get('name')!r} not found"
                    )
                for k, v in ((cm or {}).get("data") or {}).items():
                    env[src.get("prefix", "") + k] = str(v)
            else:
                self._note(f"Deployment {dep.name}: envFrom {list(src)} not supported, ignored")
        labels = (dep.template.get("metadata") or {}).get("labels") or {}
        field_values = {
            "status.podIP": LOCALHOST,
            "status.podIPs": LOCALHOST,
            "status.hostIP": LOCALHOST,
            "metadata.name": pod.name,
            "metadata.namespace": dep.namespace,
            "spec.nodeName": "localhost",
            "spec.serviceAccountName": (dep.template.get("spec") or {}).get("serviceAccountName", "default"),
        }
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = expand_k8s_vars(str(item["value"]), env)
            elif "valueFrom" in item:
                vf = item["valueFrom"]
                if "fieldRef" in vf:
                    path = vf["fieldRef"].get("fieldPath", "")
                    m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                    value = labels.get(m.group(1)) if m else field_values.get(path)
                    if value is None:
                        self._note(f"Deployment {dep.name}: env {name}: fieldRef {path!r} not emulated, left unset")
                        continue
                    env[name] = value
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    value = ((self._configmaps.get(ref.get("name", "")) or {}).get("data") or {}).get(ref.get("key"))
                    if value is None:
                        if ref.get("optional"):
                            continue
                        raise _NotStartable("CreateContainerConfigError", f"env {name}: configmap key {ref} not found")
                    env[name] = str(value)
                else:
                    self._note(f"Deployment {dep.name}: env {name}: valueFrom {list(vf)} not emulated, left unset")
            else:
                env[name] = ""
        return env

    def _materialize_volumes(
        self, dep: _Deployment, pod: _Pod, container: Mapping[str, Any], tmpl_spec: Mapping[str, Any]
    ) -> tuple[Path, str]:
        """Write the container's ConfigMap/emptyDir mounts below ``/opt/flink`` into the pod's home.

        Returns the conf dir and the cluster key (the name of the ConfigMap mounted at
        ``/opt/flink/conf``; falls back to the Deployment name). The conf dir is rewritten at every
        container start: a (re)started container sees the ConfigMap's current content.
        """
        home = pod.home
        conf_dir = home / "conf"
        if conf_dir.exists():
            shutil.rmtree(conf_dir)
        volumes = {v.get("name"): v for v in tmpl_spec.get("volumes") or []}
        cluster = ""
        for mount in container.get("volumeMounts") or []:
            mpath = str(mount.get("mountPath", "")).rstrip("/")
            vol = volumes.get(mount.get("name"))
            if vol is None:
                raise _NotStartable("CreateContainerConfigError", f"volumeMount {mount.get('name')!r} has no volume")
            if not (mpath == FLINK_HOME_IN_IMAGE or mpath.startswith(FLINK_HOME_IN_IMAGE + "/")):
                self._note(f"Deployment {dep.name}: mount {mpath} (outside {FLINK_HOME_IN_IMAGE}) is not emulated")
                continue
            dest = home / mpath[len(FLINK_HOME_IN_IMAGE) :].lstrip("/")
            if "configMap" in vol:
                files = self._configmap_files(vol["configMap"])
                if mount.get("subPath"):
                    content = files.get(mount["subPath"])
                    if content is None:
                        raise _NotStartable(
                            "CreateContainerConfigError", f"subPath {mount['subPath']!r} not in the ConfigMap"
                        )
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(content)
                else:
                    dest.mkdir(parents=True, exist_ok=True)
                    for rel, content in files.items():
                        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                        (dest / rel).write_bytes(content)
                if dest == conf_dir or (mount.get("subPath") and dest.parent == conf_dir):
                    cluster = vol["configMap"].get("name", "")
            elif "emptyDir" in vol:
                dest.mkdir(parents=True, exist_ok=True)  # kept across container restarts, like an emptyDir
            else:
                self._note(f"Deployment {dep.name}: volume type {sorted(vol)} at {mpath} is not emulated")
        return conf_dir, cluster or dep.name

    def _configmap_files(self, source: Mapping[str, Any]) -> dict[str, bytes]:
        name = source.get("name", "")
        cm = self._configmaps.get(name)
        if cm is None:
            if source.get("optional"):
                return {}
            raise _NotStartable("ContainerCreating", f'MountVolume.SetUp failed: configmap "{name}" not found')
        data: dict[str, bytes] = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        items = source.get("items")
        if not items:
            return data
        out = {}
        for item in items:
            if item.get("key") not in data:
                if source.get("optional"):
                    continue
                raise _NotStartable("ContainerCreating", f"configmap {name!r} has no key {item.get('key')!r}")
            out[item.get("path", item["key"])] = data[item["key"]]
        return out

    def _cluster_net(self, cluster: str) -> ClusterNet:
        net = self._clusters.get(cluster)
        if net is None:
            if self._first_rest_port is not None:
                rest, self._first_rest_port = self._first_rest_port, None
            else:
                rest = free_port()
            net = self._clusters[cluster] = ClusterNet(cluster, rest, free_port())
        return net

    def _process_env(self, pod: _Pod, home: Path, conf_dir: Path, container_env: Mapping[str, str]) -> dict[str, str]:
        """The image's environment (FLINK_HOME & co. pointing into the pod's home), then the
        container's env. Only a few variables of the test process leak in (PATH, JAVA_HOME, ...)."""
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "HOME") if k in os.environ}
        env.update(
            FLINK_HOME=str(home),
            FLINK_BIN_DIR=str(home / "bin"),
            FLINK_OPT_DIR=str(home / "opt"),
            FLINK_PLUGINS_DIR=str(home / "plugins"),
            FLINK_LOG_DIR=str(home / "log"),
            HOSTNAME=pod.name,
        )
        env.update(container_env)
        # where the runner put them, whatever the container says: these are paths inside the image
        env["FLINK_CONF_DIR"] = str(conf_dir)
        # ${FLINK_LIB_DIR}/../usrlib is the application entrypoint's user-lib dir (the operator's
        # emptyDir at /opt/flink/usrlib lands in the pod's home, like the image's layout)
        env["FLINK_LIB_DIR"] = str(home / "lib")
        return env

    def _java_opts(
        self, config: Mapping[str, str], env: Mapping[str, str], role: str, notes: list[str], dep: str
    ) -> list[str]:
        """``${FLINK_ENV_JAVA_OPTS}`` as config.sh builds it for a JM or TM (plus the JM/TM part)."""

        def strip_quotes(s: str) -> str:
            return s.strip().removeprefix('"').removesuffix('"')

        if env.get("FLINK_ENV_JAVA_OPTS"):
            all_opts = env["FLINK_ENV_JAVA_OPTS"]
        else:
            opts = config.get("env.java.opts.all") or config.get("env.java.opts", "")
            all_opts = "-XX:+IgnoreUnrecognizedVMOptions " + strip_quotes(
                f"{config.get('env.java.default-opts.all', '')} {opts}"
            )
        who = "jobmanager" if role in JM_ROLES else "taskmanager"
        var = "FLINK_ENV_JAVA_OPTS_JM" if who == "jobmanager" else "FLINK_ENV_JAVA_OPTS_TM"
        if env.get(var):
            role_opts = env[var]
        else:
            role_opts = strip_quotes(
                f"{config.get(f'env.java.default-opts.{who}', '')} {config.get(f'env.java.opts.{who}', '')}"
            )
        # flink-console.sh: FLINK_ENV_JAVA_OPTS=$(eval echo ${FLINK_ENV_JAVA_OPTS}) expands $VARs
        words = [
            _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), w)
            for w in f"{all_opts} {role_opts}".split()
        ]
        words = [w for w in words if w]
        has_opens = any(w.startswith("--add-opens") for w in words)
        if self.add_java17_opens or (self.add_java17_opens is None and not has_opens):
            words += JAVA17_OPENS
            if not has_opens:
                notes.append(
                    f"Deployment {dep}: the config has no --add-opens in env.java.(default-)opts.*; the runner "
                    "added the Java 17 module flags (an image on Java 17 needs them in the config)"
                )
        return words

    def _bash_java_utils(
        self, cmd: str, conf_dir: Path, config_key: tuple[tuple[str, str], ...], args: list[str]
    ) -> tuple[list[str], list[str]]:
        """``runBashJavaUtilsCmd CMD conf_dir bash-java-utils.jar:flink-dist.jar args...``:
        returns (JVM params, dynamic ``-D k=v`` args); memoised per config content and args."""
        key = (cmd, config_key, tuple("<conf>" if a == str(conf_dir) else a for a in args))
        cached = self._bju_cache.get(key)
        if cached is not None:
            return cached
        # the scripts pass "$@" unquoted ($dynamic_args): words split at whitespace
        words = " ".join(args).split()
        cp = os.pathsep.join([str(self.dist.bash_java_utils_jar), str(self.dist.dist_jar)])
        try:
            res = subprocess.run(
                [self.java, "-classpath", cp, BASH_JAVA_UTILS_CLASS, cmd, "--configDir", str(conf_dir), *words],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=conf_dir.parent,
            )
        except subprocess.TimeoutExpired as e:
            raise _ContainerFailed(1, f"[ERROR] BashJavaUtils {cmd} timed out: {e}") from e
        output = (res.stdout + res.stderr)[-20000:]
        prefix = "BASH_JAVA_UTILS_EXEC_RESULT:"
        results = [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]
        if res.returncode != 0 or len(results) != 2:
            raise _ContainerFailed(
                1,
                f"[ERROR] Could not get JVM parameters and dynamic configurations properly.\n"
                f"[ERROR] Raw output from BashJavaUtils:\n{output}",
            )
        parsed = (results[0].split(), results[1].split())
        self._bju_cache[key] = parsed
        return parsed

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    @staticmethod
    def _find_java() -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").is_file():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if not java:
            raise RuntimeError("no `java` on PATH: run scripts/ensure-java.sh")
        return java

    # --- observation -------------------------------------------------------------------------
    def _dep(self, name: str) -> _Deployment:
        dep = self._deployments.get(name)
        if dep is None:
            raise KeyError(f"no Deployment {name!r} (known: {sorted(self._deployments)})")
        return dep

    def _probe_ready(self, dep: _Deployment, pod: _Pod) -> bool:
        """Ready = running, and for a JobManager its startup probe (``GET /config``) passed once."""
        if not pod.alive or pod.plan is None:
            return False
        if pod.ready or pod.plan.role not in JM_ROLES:
            pod.ready = True
            return True
        containers = (dep.template.get("spec") or {}).get("containers") or []
        container = next(
            (c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0] if containers else {}
        )
        probe = container.get("startupProbe") or container.get("readinessProbe") or {}
        path = (probe.get("httpGet") or {}).get("path", "/config")
        net = self._clusters.get(self._cluster_of(dep))
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

    def _cluster_of(self, dep: _Deployment) -> str:
        tmpl_spec = dep.template.get("spec") or {}
        containers = tmpl_spec.get("containers") or []
        container = next(
            (c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0] if containers else {}
        )
        volumes = {v.get("name"): v for v in tmpl_spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath", "")).rstrip("/")
            vol = volumes.get(mount.get("name")) or {}
            if "configMap" in vol and (
                path == f"{FLINK_HOME_IN_IMAGE}/conf" or path.startswith(f"{FLINK_HOME_IN_IMAGE}/conf/")
            ):
                return str(vol["configMap"].get("name", ""))
        return dep.name

    def deployment_status(self, name: str) -> dict[str, Any]:
        """The Deployment's ``status`` as the Kubernetes API would report it.

        Zero counts are omitted (``readyReplicas`` is absent, not 0, while nothing is ready: the
        API server's ``omitempty``). A JobManager pod counts as ready only once ``GET /config``
        answered; a TaskManager pod as soon as its process runs.
        """
        self._tick()
        with self._lock:
            dep = self._dep(name)
            desired = dep.replicas
            pods = dep.pods
            updated = [p for p in pods if p.template_hash == dep.template_hash]
            ready = [p for p in pods if self._probe_ready(dep, p)]
            strategy = (dep.obj.get("spec") or {}).get("strategy") or {}
            max_unavailable = _int_or_percent(
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
                self._condition(
                    dep,
                    "Available",
                    available,
                    "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                ),
                self._condition(
                    dep,
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{rs}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{rs}" is progressing.',
                ),
            ]
            return status

    def _condition(self, dep: _Deployment, ctype: str, ok: bool, reason: str, message: str) -> dict[str, str]:
        status = "True" if ok else "False"
        prev = dep.condition_since.get(ctype)
        if prev is None or prev[0] != status:
            dep.condition_since[ctype] = (status, time.time())
        since = _now_rfc3339(dep.condition_since[ctype][1])
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": since,
            "lastTransitionTime": since,
        }

    def pod_statuses(self, name: str) -> list[dict[str, Any]]:
        """Pod-like status of each pod of Deployment ``name`` (``containerStatuses``-shaped, plus
        ``pid``, ``logFile`` and ``outFile`` for debugging)."""
        self._tick()
        with self._lock:
            dep = self._dep(name)
            out = []
            for pod in dep.pods:
                ready = self._probe_ready(dep, pod)
                if pod.alive:
                    state: dict[str, Any] = {"running": {"startedAt": _now_rfc3339(pod.started_at)}}
                elif pod.waiting_reason:
                    state = {"waiting": {"reason": pod.waiting_reason, "message": pod.waiting_message}}
                elif pod.exits:
                    state = {"terminated": self._terminated(pod.exits[-1])}
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
                    cs["lastState"] = {"terminated": self._terminated(pod.exits[-1])}
                out.append(
                    {
                        "name": pod.name,
                        # a crash-looping pod stays in phase Running, as in Kubernetes
                        "phase": "Running" if pod.alive or pod.exits else "Pending",
                        "containerStatuses": [cs],
                        "pid": pod.proc.pid if pod.alive and pod.proc else None,
                        "logFile": str(pod.plan.log_file) if pod.plan else None,
                        "outFile": str(pod.plan.out_file) if pod.plan else None,
                    }
                )
            return out

    @staticmethod
    def _terminated(ex: ContainerExit) -> dict[str, Any]:
        return {
            "exitCode": ex.exit_code,
            "reason": ex.reason,
            "startedAt": _now_rfc3339(ex.started_at),
            "finishedAt": _now_rfc3339(ex.finished_at),
        }

    def exits(self, name: str) -> list[ContainerExit]:
        """Every container exit of Deployment ``name``'s current pods, oldest first."""
        self._tick()
        with self._lock:
            return sorted((e for p in self._dep(name).pods for e in p.exits), key=lambda e: e.finished_at)

    def logs(self, name: str, lines: int = 60) -> str:
        """The last lines of the Flink log and stdout of each current pod of Deployment ``name``."""
        with self._lock:
            parts = []
            for pod in self._dep(name).pods:
                if pod.plan is None:
                    parts.append(f"=== {pod.name}: not started ({pod.waiting_reason}: {pod.waiting_message})")
                    if pod.exits:  # the startup scripts failed before a JVM ran
                        parts.append(pod.exits[-1].log_tail)
                    continue
                parts.append(f"=== {pod.name} attempt {pod.attempt}")
                for f in (pod.plan.log_file, pod.plan.out_file):
                    if f.exists():
                        parts.append(f"--- {f.name} ---\n{_tail(f, lines)}")
            return "\n".join(parts)

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
                key = self._cluster_of(self._deployments[name])
            elif name in self._clusters:
                key = name
            elif f"flink-config-{name}" in self._clusters:
                key = f"flink-config-{name}"
            else:
                key = name
            net = self._clusters.get(key)
            if net is None:
                if name in self._deployments or key in self._configmaps:
                    return self._cluster_net(key)  # allocate now: ports are known before the pod starts
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
