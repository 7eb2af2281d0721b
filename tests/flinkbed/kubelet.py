"""The kubelet's process part: start a pod's container as a process, record its exits, restart
it with back-off (``restartPolicy``), and stop processes by PID (SIGTERM, then SIGKILL).

With ``enforce_memory_limits`` (the sandbox's node agent turns it on), a container's
``resources.limits.memory`` is enforced as the kernel's cgroup OOM killer would: a process whose
resident memory (VmRSS) goes over the limit is SIGKILLed and its exit recorded as ``OOMKilled``, exit
code 137. RSS is sampled every monitor tick (0.25 s), so a process may overshoot briefly; page cache
is not counted (a cgroup counts it). A process killed by a signal exits with 128 + the signal number,
as a container runtime reports it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .launch import Launcher
from .pods import (
    MAIN_CONTAINER,
    ContainerExit,
    ContainerFailed,
    Deployment,
    NotStartable,
    Pod,
    PodSpecError,
    main_container,
    memory_bytes,
)
from .reaper import Reaper
from .status import exit_log_tail


class KubeletSettings(Protocol):
    """The runner's restart and stop settings (read at each use)."""

    restart_policy: str
    restart_backoff_s: float
    max_restart_backoff_s: float
    grace_period_s: float
    enforce_memory_limits: bool


class Kubelet:
    """Starts, watches and stops the containers of the runner's pods (callers hold the runner's lock)."""

    def __init__(self, settings: KubeletSettings, launcher: Launcher, reaper: Reaper) -> None:
        self._settings = settings
        self._launcher = launcher
        self._reaper = reaper

    def tick(self, deployments: Iterable[Deployment], configmaps: Mapping[str, Any]) -> None:
        """Record container exits, schedule restarts with back-off, start what is due."""
        now = time.time()
        for dep in deployments:
            for pod in dep.pods:
                if self._settings.enforce_memory_limits:
                    self._enforce_memory_limit(pod)
                if pod.proc is not None and pod.proc.poll() is not None:
                    code = pod.proc.returncode
                    self.record_exit(dep, pod, 128 - code if code < 0 else code, "")
                if pod.proc is None and pod.next_start_at is not None and now >= pod.next_start_at:
                    self.start(dep, pod, configmaps)

    def _enforce_memory_limit(self, pod: Pod) -> None:
        """SIGKILL a process over its memory limit (the kernel's OOM killer in a memory cgroup)."""
        if pod.proc is None or pod.memory_limit_bytes is None or pod.oom_killed or pod.proc.poll() is not None:
            return
        rss = resident_bytes(pod.proc.pid)
        if rss is not None and rss > pod.memory_limit_bytes:
            pod.oom_killed = True
            pod.proc.send_signal(signal.SIGKILL)  # by PID of our own child: no-op if already reaped

    def record_exit(self, dep: Deployment, pod: Pod, code: int, extra_output: str) -> None:
        now = time.time()
        started = pod.started_at or now
        oom, pod.oom_killed = pod.oom_killed, False
        pod.exits.append(
            ContainerExit(pod.name, dep.name, pod.attempt, 137 if oom else code, started, now,
                          exit_log_tail(pod, extra_output), oom_killed=oom)
        )
        if pod.proc is not None:
            self._reaper.remove(pod.proc.pid)
            _close_pipes(pod.proc)
        pod.proc = None
        pod.ready = False
        # Kubernetes back-off: 10 s, 20 s, 40 s, ... capped at 5 min; reset after 10 min of running.
        pod.consecutive_failures = 1 if now - started > 600 else pod.consecutive_failures + 1
        s = self._settings
        if s.restart_policy == "Always" or (s.restart_policy == "OnFailure" and code != 0):
            delay = min(s.restart_backoff_s * 2 ** (pod.consecutive_failures - 1), s.max_restart_backoff_s)
            pod.next_start_at = now + delay
            pod.waiting_reason, pod.waiting_message = (
                "CrashLoopBackOff",
                f"back-off {delay:.0f}s restarting failed container={MAIN_CONTAINER} pod={pod.name}",
            )
        else:
            pod.next_start_at = None
            pod.waiting_reason, pod.waiting_message = None, ""

    def start(self, dep: Deployment, pod: Pod, configmaps: Mapping[str, Any]) -> None:
        pod.attempt += 1
        pod.started_at = time.time()
        container = main_container(dep.template.get("spec") or {}) or {}
        pod.memory_limit_bytes = memory_bytes(((container.get("resources") or {}).get("limits") or {}).get("memory"))
        try:
            plan = self._launcher.plan(dep, pod, configmaps)
        except NotStartable as e:
            pod.attempt -= 1
            pod.started_at = None
            pod.waiting_reason, pod.waiting_message = e.reason, e.message
            pod.next_start_at = time.time() + 1.0  # retry: the missing ConfigMap may appear
            return
        except (ContainerFailed, PodSpecError) as e:
            code, output = (e.exit_code, e.output) if isinstance(e, ContainerFailed) else (127, str(e))
            pod.plan = None
            self.record_exit(dep, pod, code, output)
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
            self.record_exit(dep, pod, 127, f"exec failed: {e}")
            return
        out.close()  # the child holds its own descriptor
        self._reaper.add(pod.proc.pid)
        pod.ready = False
        pod.next_start_at = None
        pod.waiting_reason, pod.waiting_message = None, ""

    def terminate(self, pods: list[Pod], grace_period_s: float | None) -> None:
        """SIGTERM the pods' processes, wait up to the grace period, then SIGKILL (by PID)."""
        grace = self._settings.grace_period_s if grace_period_s is None else grace_period_s
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
                _close_pipes(pod.proc)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for fh in (proc.stdout, proc.stderr):
        if fh:
            fh.close()


def resident_bytes(pid: int) -> int | None:
    """VmRSS of a process (None when it is gone or /proc is not readable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
