"""A small, stdlib-only Flink REST client for the test bed (not the product's client).

Only what the test bed's own tests need: job state, savepoints, cancel. The shapes and the
gotchas are described in shared/docs/flink-local.md §4 and §6:

* ``GET /jobs/{id}`` and ``/jobs/{id}/checkpoints`` are cached for ``web.refresh-interval``; the
  state is read from the uncached ``GET /jobs/overview`` instead.
* A savepoint trigger on an unknown or finished job still reports ``COMPLETED``; the result is
  only good when ``operation.location`` is present.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, cast

TERMINAL_JOB_STATES = frozenset({"FINISHED", "FAILED", "CANCELED", "SUSPENDED"})

# 127.0.0.1 only: never route through an HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FlinkRestError(RuntimeError):
    """A REST call failed or a wait timed out."""


@dataclass(frozen=True)
class RestResponse:
    status: int
    body: Any  # parsed JSON, raw text, or None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FlinkRest:
    """Minimal client for one Flink REST endpoint, e.g. ``FlinkRest("http://127.0.0.1:18081")``."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"FlinkRest({self.base_url!r})"

    # --- raw calls -------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, timeout_s: float | None = None) -> RestResponse:
        """One request. HTTP errors come back as a response; connection errors raise ``OSError``."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=timeout_s or self.timeout_s) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return RestResponse(status, parsed)

    def get(self, path: str, **kw: Any) -> Any:
        """GET returning the JSON body; raises :class:`FlinkRestError` on a non-2xx status."""
        res = self.call("GET", path, **kw)
        if not res.ok:
            raise FlinkRestError(f"GET {path} -> {res.status}: {str(res.body)[:500]}")
        return res.body

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        res = self.call("POST", path, body if body is not None else {}, **kw)
        if not res.ok:
            raise FlinkRestError(f"POST {path} -> {res.status}: {str(res.body)[:500]}")
        return res.body

    # --- cluster ---------------------------------------------------------------------------
    def is_up(self) -> bool:
        """True when ``GET /config`` answers (what the JobManager's startup probe checks)."""
        try:
            return self.call("GET", "/config", timeout_s=2.0).ok
        except OSError:
            return False

    def overview(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.get("/overview"))

    def wait_taskmanagers(self, count: int = 1, timeout_s: float = 60.0, min_slots: int = 1) -> dict[str, Any]:
        """Wait until at least ``count`` TaskManagers are registered and offer at least
        ``min_slots`` slots in total (2.x reports the slots a moment after the registration);
        returns ``/overview``."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.overview()
                if last.get("taskmanagers", 0) >= count and last.get("slots-total", 0) >= min_slots:
                    return cast(dict[str, Any], last)
            except (OSError, FlinkRestError) as e:
                last = e
            time.sleep(0.2)
        raise FlinkRestError(
            f"{self.base_url}: not {count} TaskManagers / {min_slots} slots after {timeout_s}s: {last}"
        )

    # --- jobs ------------------------------------------------------------------------------
    def job_overview(self, job_id: str) -> dict[str, Any] | None:
        """This job's entry of the uncached ``GET /jobs/overview`` (state and task counts), or None."""
        for job in self.get("/jobs/overview").get("jobs", []):
            if job.get("jid") == job_id:
                return cast(dict[str, Any], job)
        return None

    def job_state(self, job_id: str) -> str | None:
        job = self.job_overview(job_id)
        return job["state"] if job else None

    def wait_job_state(
        self,
        job_id: str,
        states: set[str] | frozenset[str] | str,
        timeout_s: float = 60.0,
        all_tasks_running: bool = False,
    ) -> dict[str, Any]:
        """Poll ``/jobs/overview`` until the job is in one of ``states``; returns its entry.

        ``all_tasks_running`` also waits until every task is RUNNING (or FINISHED, gotcha 12).
        A terminal state that was not asked for fails fast.
        """
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                job = self.job_overview(job_id)
            except (OSError, FlinkRestError) as e:  # JobManager not up (yet)
                last = e
                job = None
            if job is not None:
                last = job
                state = job["state"]
                tasks = job.get("tasks", {})
                done = tasks.get("running", 0) + tasks.get("finished", 0) >= tasks.get("total", 0) > 0
                if state in wanted and (not all_tasks_running or done):
                    return job
                if state in TERMINAL_JOB_STATES and state not in wanted:
                    raise FlinkRestError(f"job {job_id} is {state}, wanted {sorted(wanted)}: {job}")
            time.sleep(0.2)
        raise FlinkRestError(f"job {job_id} not in {sorted(wanted)} after {timeout_s}s; last seen: {last}")

    def exceptions(self, job_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.get(f"/jobs/{job_id}/exceptions"))

    def cancel(self, job_id: str) -> None:
        res = self.call("PATCH", f"/jobs/{job_id}?mode=cancel")
        if not res.ok:
            raise FlinkRestError(f"cancel {job_id} -> {res.status}: {res.body}")

    # --- savepoints ------------------------------------------------------------------------
    def _wait_savepoint(self, job_id: str, request_id: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        body: Any = None
        while time.monotonic() < deadline:
            body = self.get(f"/jobs/{job_id}/savepoints/{request_id}")
            if body.get("status", {}).get("id") == "COMPLETED":
                op = body.get("operation") or {}
                if op.get("location"):
                    return str(op["location"])
                cause = (op.get("failure-cause") or {}).get("stack-trace", "")
                raise FlinkRestError(f"savepoint of {job_id} failed: {cause[:1500]}")
            time.sleep(0.1)
        raise FlinkRestError(f"savepoint of {job_id} not done after {timeout_s}s: {body}")

    def trigger_savepoint(
        self, job_id: str, target_directory: str | None = None, cancel_job: bool = False, timeout_s: float = 60.0
    ) -> str:
        """``POST /jobs/{id}/savepoints`` and wait; returns the location (``file:/...``)."""
        body: dict[str, Any] = {"cancel-job": cancel_job}
        if target_directory:
            body["target-directory"] = target_directory
        request_id = self.post(f"/jobs/{job_id}/savepoints", body)["request-id"]
        return self._wait_savepoint(job_id, request_id, timeout_s)

    def stop_with_savepoint(
        self, job_id: str, target_directory: str | None = None, drain: bool = False, timeout_s: float = 60.0
    ) -> str:
        """``POST /jobs/{id}/stop`` (camelCase keys!) and wait; returns the location."""
        body: dict[str, Any] = {"drain": drain}
        if target_directory:
            body["targetDirectory"] = target_directory
        request_id = self.post(f"/jobs/{job_id}/stop", body)["request-id"]
        return self._wait_savepoint(job_id, request_id, timeout_s)

    def restored_from(self, job_id: str) -> str | None:
        """``latest.restored.external_path`` of ``/jobs/{id}/checkpoints`` (cached, see gotcha 4)."""
        latest = self.get(f"/jobs/{job_id}/checkpoints").get("latest") or {}
        return (latest.get("restored") or {}).get("external_path")

    def wait_completed_checkpoint(self, job_id: str, timeout_s: float = 60.0) -> str:
        """Poll until the job has completed a checkpoint of its own; returns its external path."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            latest = self.get(f"/jobs/{job_id}/checkpoints").get("latest") or {}
            path = (latest.get("completed") or {}).get("external_path")
            if path:
                return str(path)
            time.sleep(0.2)
        raise FlinkRestError(f"job {job_id} completed no checkpoint within {timeout_s}s")


def same_path(a: str | None, b: str | None) -> bool:
    """Compare two savepoint locations: Flink answers ``file:/x`` where the caller may use ``file:///x``."""

    def norm(p: str) -> str:
        for prefix in ("file:///", "file://", "file:/"):
            if p.startswith(prefix):
                return "/" + p[len(prefix) :].lstrip("/")
        return p

    return a is not None and b is not None and norm(a).rstrip("/") == norm(b).rstrip("/")
