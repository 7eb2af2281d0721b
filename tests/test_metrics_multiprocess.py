"""Metrics add up across gunicorn workers (hooks/metrics.py): a real `flink-sync serve` with several
workers takes N requests over parallel connections (one worker is SIGKILLed half-way and replaced), and
every scrape, whichever worker answers it, counts exactly N."""
from __future__ import annotations

import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .server import hook_server, worker_pids

PARENT = {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
          "metadata": {"name": "metrics-test", "namespace": "default", "uid": "u-1", "generation": 1},
          "spec": {}}
COUNTER = re.compile(r'^flink_sync_hook_requests_total\{hook="customize_flinkdeployment",outcome="ok"\} (\S+)$', re.M)
HISTOGRAM = re.compile(r'^flink_sync_hook_duration_seconds_count\{hook="customize_flinkdeployment"\} (\S+)$', re.M)


def _send(url: str, count: int) -> None:
    with requests.Session() as session:  # one keep-alive connection per thread: spread over the workers
        for _ in range(count):
            res = session.post(url + "/customize/flinkdeployment", json={"controller": {}, "parent": PARENT},
                               timeout=10)
            assert res.status_code == 200, res.text


def _counted(url: str) -> tuple[float, float]:
    # A new connection per scrape, so the scrapes land on different workers.
    text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
    counter, histogram = COUNTER.search(text), HISTOGRAM.search(text)
    return (float(counter.group(1)) if counter else 0.0), (float(histogram.group(1)) if histogram else 0.0)


def _metric_files(directory: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("flink-sync-metrics-*/counter_*.db")}


def test_every_scrape_counts_every_workers_requests(tmp_path):
    per_thread, threads = 25, 8
    with hook_server(env={"TMPDIR": str(tmp_path)}, workers=3) as url:
        # Which worker accepts a connection is the kernel's choice: on a busy machine one worker may take every
        # connection of a round, so rounds go on until at least two workers have counted requests.
        first = 0
        for _ in range(20):
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _: _send(url, per_thread), range(threads)))
            first += per_thread * threads
            busy = _metric_files(tmp_path)
            if len(busy) >= 2:
                break
        assert len(busy) >= 2, f"the requests should have reached several workers: {busy}"
        # A worker dies (SIGKILL: no clean-up of its own); gunicorn replaces it; its counts must stay.
        victim = sorted(busy & set(worker_pids(url.pid)))[0]
        os.kill(victim, signal.SIGKILL)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: _send(url, per_thread), range(threads)))
        N = first + per_thread * threads
        for _ in range(12):
            assert _counted(url) == (N, N)
        directory = next(tmp_path.glob("flink-sync-metrics-*"))
    assert not directory.exists(), "the server removes its metrics directory when it stops"
