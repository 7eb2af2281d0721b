"""The real-Flink test bed: run what the sync hooks render as local Flink processes.

Modules (see each one's docstring):

* :mod:`.dist`      locate a cached Flink distribution (``scripts/fetch_flink.py`` fills the cache)
* :mod:`.job`       the stateful ``CounterJob`` (built with javac, cached) and its REST state probe
* :mod:`.podrunner` ``PodRunner``: Kubernetes Deployments/ConfigMaps → Flink JVMs on 127.0.0.1
  (a façade over :mod:`.runner`, :mod:`.net`, :mod:`.pods`, :mod:`.podenv`, :mod:`.launch`,
  :mod:`.kubelet`, :mod:`.status`, :mod:`.reaper`; see README.md)
* :mod:`.rest`      a small Flink REST client for the tests
* :mod:`.confdir`   read/override ``flink-conf.yaml`` / ``config.yaml`` the way Flink reads them
* :mod:`.fixtures`  pytest fixtures (``flink_version``, ``flink_dist``, ``counter_jar``,
  ``free_port``, ``pod_runner``), imported by ``tests/conftest.py``

The names below are re-exported lazily, so importing :mod:`.dist` alone (as
``scripts/fetch_flink.py`` does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FlinkDist": "dist",
    "FlinkDistMissing": "dist",
    "PINNED_VERSIONS": "dist",
    "cache_root": "dist",
    "flink_dist": "dist",
    "resolve_version": "dist",
    "COUNTER_JOB_CLASS": "job",
    "CounterSnapshot": "job",
    "build_counter_jar": "job",
    "counter_args": "job",
    "read_counter": "job",
    "read_counter_once": "job",
    "read_counter_past": "job",
    "ClusterNet": "net",
    "ContainerExit": "pods",
    "LaunchPlan": "launch",
    "PodCrashed": "pods",
    "PodRunner": "podrunner",
    "PodSpecError": "pods",
    "free_port": "net",
    "pod_network_overrides": "net",
    "FlinkRest": "rest",
    "FlinkRestError": "rest",
    "same_path": "rest",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the lazily exported names, kept in one table


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
