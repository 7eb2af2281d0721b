"""Submitting a session job: fetch the jar (allowlist, size and time limits), upload it, run it with the
job id the core recorded in status, and delete the upload. A duplicate job id means an earlier attempt
already submitted it, which counts as success."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from . import artifacts
from .flink_api import FlinkApi
from .flink_rest import FlinkDuplicateJob, FlinkRestError
from .settings import Settings

log = logging.getLogger("flink_sync.submit")


class JarFetcher(Protocol):
    """Fetches a session job's jar: (file name, bytes), or raises `artifacts.ArtifactError`
    (`artifacts.fetch_jar` in the server)."""

    def __call__(self, uri: str, *, allowlist: Iterable[str], max_bytes: int,
                 timeout: float) -> tuple[str, bytes]: ...


def submit_job(client: FlinkApi, params: dict[str, Any], settings: Settings,
               fetcher: JarFetcher | None = None) -> str | None:
    """Run one submission; returns None on success or a one-line error for status."""
    fetch = fetcher or artifacts.fetch_jar
    try:
        filename, data = fetch(params["jar_uri"], allowlist=settings.jar_uri_allowlist,
                               max_bytes=settings.jar_max_bytes, timeout=settings.jar_timeout_s)
    except artifacts.ArtifactError as exc:
        return str(exc)
    try:
        jar_id = client.upload_jar(filename, data)
    except FlinkRestError as exc:
        return f"jar upload to the session cluster failed: {exc}"
    try:
        client.run_jar(jar_id, job_id=params["job_id"], entry_class=params.get("entry_class"),
                       args=params.get("args") or [], parallelism=params.get("parallelism"),
                       savepoint_path=params.get("savepoint_path"),
                       allow_non_restored_state=params.get("allow_non_restored_state"),
                       flink_configuration=params.get("flink_configuration") or {},
                       flink_version=params.get("flink_version"))
    except FlinkDuplicateJob:
        log.info("job %s was already submitted", params["job_id"])
    except FlinkRestError as exc:
        return f"job submission failed: {exc}"
    finally:
        try:
            client.delete_jar(jar_id)
        except FlinkRestError as exc:
            log.info("could not delete uploaded jar %s: %s", jar_id, exc)
    return None
