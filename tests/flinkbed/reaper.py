"""The reaper: a tiny watchdog process that kills the runner's JVMs if the test process dies
without stopping them (even by SIGKILL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: identifies a process across PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


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


class Reaper:
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
        st = proc_start_time(pid)
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
