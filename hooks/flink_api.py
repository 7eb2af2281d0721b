"""`FlinkApi`: exactly the Flink REST operations the sync pipeline uses (observe, act, submit).

Implemented by `FlinkRestClient` (hooks/flink_rest.py, the real REST API over a `Transport`) and by
`FakeFlink` (hooks/fake_flink.py, an in-memory cluster for the simulation tests, `explain` and the
benchmark). Failures are `FlinkRestError`s (hooks/flink_rest.py) in both.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .flink_rest import ClusterConfig, JobException, JobOverview, SavepointResult


class FlinkApi(Protocol):
    # --- observe (hooks/flink_io.observe) ------------------------------------------------------
    def jobs_overview(self) -> list[JobOverview]: ...

    def cluster_config(self) -> ClusterConfig: ...

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointResult: ...

    def latest_checkpoint_path(self, job_id: str) -> str | None: ...

    def execution_result(self, job_id: str) -> str | None: ...

    def job_exceptions(self, job_id: str, max_exceptions: int = 5) -> list[JobException]: ...

    def taskmanager_count(self) -> int | None: ...

    # --- act (hooks/flink_io.execute) -----------------------------------------------------------
    def trigger_savepoint(self, job_id: str, target_dir: str | None, format_type: str = "CANONICAL",
                          trigger_id: str | None = None) -> str: ...

    def stop_with_savepoint(self, job_id: str, target_dir: str | None, drain: bool = False,
                            format_type: str = "CANONICAL", trigger_id: str | None = None) -> str: ...

    def cancel(self, job_id: str) -> bool: ...

    def dispose_savepoint(self, path: str) -> str: ...

    def trigger_checkpoint(self, job_id: str, checkpoint_type: str = "FULL", trigger_id: str | None = None) -> str: ...

    # --- submit a session job (hooks/submit.py) -------------------------------------------------
    def upload_jar(self, filename: str, data: bytes) -> str: ...

    def run_jar(self, jar_id: str, *, job_id: str | None = None, entry_class: str | None = None,
                args: Sequence[str] = (), parallelism: int | None = None, savepoint_path: str | None = None,
                allow_non_restored_state: bool | None = None, claim_mode: str | None = None,
                flink_configuration: Mapping[str, Any] | None = None, flink_version: str | None = None) -> str: ...

    def delete_jar(self, jar_id: str) -> bool: ...
