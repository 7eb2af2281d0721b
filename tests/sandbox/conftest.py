"""The sandbox, started once per test session (in a temporary state directory, so a developer's own
`make sandbox-up` in .sandbox/ is left alone) and stopped at the end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube import Kube

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sandbox:
    state: Path
    kube: Kube

    @property
    def env(self) -> dict[str, str]:
        text = (self.state / "env").read_text()
        path = next(line.split("=", 1)[1].split(":")[0] for line in text.splitlines() if line.startswith("export PATH="))
        return {**os.environ, "KUBECONFIG": str(self.state / "kubeconfig"), "PATH": f"{path}:{os.environ['PATH']}"}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        res = subprocess.run(["kubectl", *args], env=self.env, input=input, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res.stdout

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def restart(self, name: str, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop one sandbox process by its PID and start it again (sandbox.cluster.restart)."""
        args = [sys.executable, "-m", "sandbox", "restart", name, "--down-seconds", str(down_s)] + (["--kill"] if kill else [])
        subprocess.run(args, cwd=ROOT, env={**os.environ, "SANDBOX_DIR": str(self.state)}, check=True, timeout=120)

    def pid_of(self, name: str) -> int:
        for line in (self.state / "pids").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == name:
                return int(parts[1])
        raise KeyError(name)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{(self.state / 'proxy-port').read_text().strip()}"

    def logs(self) -> str:
        parts = []
        for f in sorted((self.state / "logs").glob("*.log")):
            parts.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)

    def until(self, what: str, check: Any, timeout: float = 180, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})\n{self.logs()}")


def _started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    state = tmp_path_factory.mktemp("sandbox") / "state"
    env = {**os.environ, "SANDBOX_DIR": str(state)}
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "sandbox", "up"], cwd=ROOT, env=env, timeout=2700,
                         capture_output=True, text=True)
    if res.returncode != 0:
        subprocess.run([sys.executable, "-m", "sandbox", "down"], cwd=ROOT, env=env, timeout=180)
        raise AssertionError(f"sandbox up failed:\n{res.stdout[-5000:]}\n{res.stderr[-5000:]}")
    print(f"sandbox up in {time.monotonic() - started:.0f}s")
    try:
        yield Sandbox(state, Kube.from_kubeconfig(state / "kubeconfig"))
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down"], cwd=ROOT, env=env, timeout=180)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox the tests of one pytest process share (under pytest-xdist, one per worker)."""
    yield from _started(tmp_path_factory)


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of the module's own, for tests that remove the operator or its CRDs (uninstall, Helm): whatever
    order the tests run in, and on whichever worker, the shared sandbox keeps its operator."""
    yield from _started(tmp_path_factory)
