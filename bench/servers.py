"""Start and stop the processes the benchmark measures, and read their CPU time and memory from /proc.

Every process is started here with its own session, listens on 127.0.0.1 only, and is stopped by its PID
(SIGTERM to the gunicorn master, which stops its workers; any worker still alive after that is killed by its
own PID). Nothing is left running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.flinkbed.net import free_port
from tests.server import worker_pids

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its own threads; not its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" field 0 is state (field 3 of proc(5)); utime/stime are fields 14/15 → index 11/12
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    port: int = 0
    proc: subprocess.Popen | None = None
    workers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, expected_workers: int, timeout_s: float = 30.0) -> Server:
        self.port = free_port()
        argv = [a.replace("{PORT}", str(self.port)) for a in self.argv]
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=REPO)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200 and len(worker_pids(self.proc.pid)) >= expected_workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start in {timeout_s} s; see {self.log_path}")
            time.sleep(0.1)
        self.workers = worker_pids(self.proc.pid)
        return self

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *self.workers]

    def cpu(self) -> dict[int, float]:
        """CPU seconds of the master and each worker; raises if a worker was replaced (its time would be lost)."""
        assert self.proc is not None
        now = worker_pids(self.proc.pid)
        if now != self.workers:
            raise RuntimeError(f"{self.name}: gunicorn workers changed during the run ({self.workers} -> {now})")
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def stop(self) -> None:
        if self.proc is None:
            return
        workers = worker_pids(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for pid in workers:  # normally gone with the master; never leave one behind
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def hooks_server(workers: int, env: dict[str, str], log_path: Path) -> Server:
    cli = str(Path(sys.executable).parent / "flink-sync")
    return Server("flink-sync serve", [cli, "serve", "--bind", "127.0.0.1:{PORT}", "--workers", str(workers)],
                  env=env, log_path=log_path)


def echo_server(workers: int, log_path: Path) -> Server:
    return Server("echo (bench/echo_app.py)", [sys.executable, "-m", "bench.echo_app", "--bind", "127.0.0.1:{PORT}",
                                               "--workers", str(workers)], log_path=log_path)


def flink_stub(job_id: str, start_time: int, log_path: Path, idle_timeout_s: float) -> Server:
    return Server("Flink REST stub (bench/flink_stub.py)",
                  [sys.executable, "-m", "bench.flink_stub", "--port", "{PORT}", "--job-id", job_id,
                   "--start-time", str(start_time), "--idle-timeout", str(idle_timeout_s)], log_path=log_path)
