"""pytest fixtures of the real-Flink test bed (imported by ``tests/conftest.py``).

* ``flink_version``: ``"1.20"`` and ``"2.3"`` (every test using it runs on both); override with
  ``@pytest.mark.parametrize("flink_version", ["2.3"])``.
* ``flink_dist``: the cached :class:`~tests.flinkbed.dist.FlinkDist` of that version. A missing
  distribution is an error that names ``scripts/fetch_flink.py``, never a skip.
* ``counter_jar``: the CounterJob jar built for that version (cached).
* ``free_port``: a free 127.0.0.1 port.
* ``pod_runner``: a :class:`~tests.flinkbed.podrunner.PodRunner` in ``tmp_path``, REST of its first
  cluster on ``free_port``; every JVM is stopped at teardown.

Sizes that start and run the CounterJob on both versions: :data:`JM_PROCESS_MEMORY` and
:data:`TM_PROCESS_MEMORY` (``jobmanager.memory.process.size`` / ``taskmanager.memory.process.size``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import dist as _dist
from .job import build_counter_jar
from .net import free_port as _free_port
from .podrunner import PodRunner

__all__ = [
    "FLINK_VERSIONS",
    "JM_PROCESS_MEMORY",
    "TM_PROCESS_MEMORY",
    "counter_jar",
    "flink_dist",
    "flink_version",
    "free_port",
    "pod_runner",
]

FLINK_VERSIONS: tuple[str, ...] = ("1.20", "2.3")
JM_PROCESS_MEMORY = "1024m"
TM_PROCESS_MEMORY = "1024m"


@pytest.fixture(params=FLINK_VERSIONS, ids=lambda v: f"flink{v}")
def flink_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def flink_dist(flink_version: str) -> _dist.FlinkDist:
    return _dist.flink_dist(flink_version)


@pytest.fixture
def counter_jar(flink_dist: _dist.FlinkDist) -> Path:
    return build_counter_jar(flink_dist)


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def pod_runner(flink_dist: _dist.FlinkDist, tmp_path: Path, free_port: int) -> Iterator[PodRunner]:
    runner = PodRunner(flink_dist, tmp_path / "podrunner", rest_port=free_port)
    try:
        yield runner
    finally:
        runner.close()
