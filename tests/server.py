"""Start the real hook server (`flink-sync serve`, gunicorn) on 127.0.0.1 for tests; stop it by PID."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from .flinkbed.net import free_port

CLI = str(Path(sys.executable).parent / "flink-sync")


class ServerURL(str):
    """The server's base URL, with the gunicorn master's PID (for fault tests)."""
    pid: int


def worker_pids(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master and fields[0] != "Z":  # a killed worker is a zombie until reaped
            pids.append(int(stat.parent.name))
    return sorted(pids)


@contextmanager
def hook_server(env: dict[str, str] | None = None, workers: int = 2) -> Iterator[ServerURL]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="flink-sync-hooks-", suffix=".log", delete=False)
    full_env = {**os.environ, "FLINK_SYNC_REST_URL_TEMPLATE": "http://127.0.0.1:9/{namespace}/{name}",
                "FLINK_SYNC_REST_CONNECT_TIMEOUT": "0.5", "FLINK_SYNC_REST_READ_TIMEOUT": "1", **(env or {})}
    proc = subprocess.Popen([CLI, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)], env=full_env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hook server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hook server did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
