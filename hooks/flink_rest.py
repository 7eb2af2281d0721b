"""A small, typed client for the Flink REST API (Flink 1.20 and 2.x), as the sync hooks use it.

Built for a webhook that must answer Metacontroller within 10 s:

* it implements `FlinkApi` (hooks/flink_api.py, what the sync pipeline calls) over any `Transport`
  (hooks/transport.py); the hooks use keep-alive connections in a pool shared by the clients of a worker
  (`hooks/http_transport.py`, libcurl): no retries, no redirects, and no proxy or `.netrc` from the environment;
* every call has a connect timeout and a total deadline of connect + read timeout (defaults 1 s
  and 3 s), and a response size limit (default 4 MiB) checked against `Content-Length` and again
  while the body streams in;
* errors are typed (`FlinkRestError` and subclasses) and carry a one-line message distilled from
  Flink's `{"errors": [...]}` (never a Java stack trace);
* an optional `on_call(endpoint, seconds, outcome)` callback for per-call metrics.

The base URL is given by the caller (the hook builds it from a server-side template); nothing in a
custom resource can choose where this client connects. Job ids, trigger ids and jar ids are
validated before they are put into a URL path.

Flink behaviours this client hides or exposes (each checked against real Flink 1.20 and 2.3 in tests/test_flink_rest_real.py):

* a savepoint on a finished/unknown job is accepted with 202 and then reported as `COMPLETED`
  with `operation.failure-cause`: `savepoint_status` returns `FAILED` unless `location` is set;
* `404 There is no savepoint operation with triggerId=…` (unknown trigger, unknown job, JobManager
  restarted, or the result expired after `rest.async.store-duration`, 5 min by default) is
  `UNKNOWN_TRIGGER`, not an error;
* a client-chosen `triggerId` makes a trigger idempotent: posting it again while the operation runs
  or after it completed returns the same id and does not start a second operation;
* savepoint locations come back as `file:/x` (one slash): compare them with `normalise_path`;
* `GET /jobs/{id}/checkpoints` is cached for `web.refresh-interval` (3 s); `GET /jobs/overview`
  is not, so job state always comes from there.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sync.flinkconf import flink_value
from sync.model import SavepointState

from .transport import Answer, Transport, TransportError

MIB = 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 3.0
DEFAULT_SUBMIT_READ_TIMEOUT = 6.0  # POST /jars/{id}/run runs the job's main() inside the JobManager
DEFAULT_MAX_RESPONSE_BYTES = 4 * MIB
MAX_MESSAGE_CHARS = 400
NOT_EXTERNALLY_ADDRESSABLE = "<checkpoint-not-externally-addressable>"

OnCall = Callable[[str, float, str], None]
_BASE_HEADERS = {"Accept": "application/json"}
_JSON_BODY_HEADERS = {**_BASE_HEADERS, "Content-Type": "application/json"}

_HEX_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_JAR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class FlinkRestError(Exception):
    """A Flink REST call failed. `message` is one line; `status_code` is None without an HTTP answer."""

    def __init__(self, message: str, *, status_code: int | None = None, endpoint: str = "",
                 errors: Sequence[str] = ()) -> None:
        self.message = message
        self.status_code = status_code
        self.endpoint = endpoint
        self.errors = tuple(errors)  # Flink's raw error strings (stack traces): for debug logs only
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.endpoint}: " if self.endpoint else ""
        status = f"HTTP {self.status_code}: " if self.status_code is not None else ""
        return f"{where}{status}{self.message}"


class FlinkUnreachable(FlinkRestError):
    """No HTTP answer: connection refused, DNS failure, connect/read timeout, connection reset."""


class FlinkNotFound(FlinkRestError):
    """HTTP 404 (unknown job, jar, or operation)."""


class FlinkResponseTooLarge(FlinkRestError):
    """The response body was larger than the client's limit; it was not read to the end."""


class FlinkBadResponse(FlinkRestError):
    """The answer was not what Flink sends: not JSON, or JSON of an unexpected shape."""


class FlinkDuplicateJob(FlinkRestError):
    """`/jars/{id}/run` refused the job id because a job with that id was already submitted
    (running or finished). A retried submission of the same job id can treat this as done."""


class FlinkInvalidArgument(FlinkRestError, ValueError):
    """An id or argument that must not be sent (e.g. a job id that is not 32 hex characters)."""


_TRANSPORT_ERRORS: dict[str, type[FlinkRestError]] = {
    "unreachable": FlinkUnreachable, "timeout": FlinkUnreachable, "broken": FlinkUnreachable,
    "too_large": FlinkResponseTooLarge, "failed": FlinkRestError}


# --------------------------------------------------------------------------------------------
# Response models
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


_M = TypeVar("_M", bound=_Model)


class ClusterConfig(_Model):
    """GET /config."""
    flink_version: str = Field(alias="flink-version")
    flink_revision: str | None = Field(default=None, alias="flink-revision")
    features: dict[str, Any] = Field(default_factory=dict)


class ClusterOverview(_Model):
    """GET /overview."""
    taskmanagers: int = 0
    slots_total: int = Field(default=0, alias="slots-total")
    slots_available: int = Field(default=0, alias="slots-available")
    jobs_running: int = Field(default=0, alias="jobs-running")
    flink_version: str | None = Field(default=None, alias="flink-version")


class JobOverview(_Model):
    """One entry of GET /jobs/overview. `end_time` is None while the job runs (Flink sends -1)."""
    jid: str
    name: str = ""
    state: str
    start_time: int | None = Field(default=None, alias="start-time")
    end_time: int | None = Field(default=None, alias="end-time")
    last_modification: int | None = Field(default=None, alias="last-modification")
    tasks: dict[str, int] = Field(default_factory=dict)

    @field_validator("start_time", "end_time", "last_modification")
    @classmethod
    def _negative_is_none(cls, value: int | None) -> int | None:
        return None if value is None or value < 0 else value


@dataclass(frozen=True)
class SavepointResult:
    """A savepoint or stop-with-savepoint trigger, as GET /jobs/{id}/savepoints/{trigger} reports it."""
    state: SavepointState
    location: str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class CheckpointResult:
    """A manual checkpoint trigger (GET /jobs/{id}/checkpoints/{trigger})."""
    state: SavepointState
    checkpoint_id: int | None = None
    failure: str | None = None


@dataclass(frozen=True)
class CheckpointRef:
    """One of `latest.{completed,savepoint,restored}` in GET /jobs/{id}/checkpoints."""
    id: int
    external_path: str | None  # None when Flink says <checkpoint-not-externally-addressable>
    is_savepoint: bool = False


@dataclass(frozen=True)
class CheckpointStats:
    """The parts of GET /jobs/{id}/checkpoints the hooks use (cached by Flink for web.refresh-interval)."""
    completed: CheckpointRef | None
    savepoint: CheckpointRef | None
    restored: CheckpointRef | None
    in_progress: bool
    counts: Mapping[str, int]

    def latest_path(self) -> str | None:
        """The external path of the highest-id entry among completed, savepoint and restored."""
        refs = [r for r in (self.completed, self.savepoint, self.restored) if r and r.external_path]
        return max(refs, key=lambda r: r.id).external_path if refs else None


@dataclass(frozen=True)
class JobException:
    """One entry of a job's exception history."""
    timestamp: int | None
    name: str  # exception class, e.g. org.apache.flink.runtime.JobException
    first_line: str  # first line of the stack trace, class names shortened
    root_cause: str | None  # the innermost "Caused by:" line, when there is one

    @property
    def summary(self) -> str:
        """One line for a status message: the first line and the root cause."""
        return _join_cause(self.first_line, self.root_cause)


@dataclass(frozen=True)
class DisposalResult:
    state: SavepointState
    failure: str | None = None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

# A qualified exception class name (`org.apache.flink.FooException`, `java.lang.OutOfMemoryError`);
# other dotted names in a message (an entry class, a path) are left alone.
_QUALIFIED = re.compile(r"\b(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error|Throwable))\b")
# 404 texts of an unknown async operation: savepoint/checkpoint status ("There is no savepoint operation
# with triggerId=…"), savepoint disposal ("Operation not found under key: …").
_UNKNOWN_OPERATION = re.compile(r"there is no [\w ]*operation|operation not found", re.IGNORECASE)
_WRAPPERS = ("CompletionException: ", "ExecutionException: ", "RestHandlerException: ")
_NOISE = ("Internal server error.", "<Exception on server side:")


def normalise_path(path: str | None) -> str | None:
    """`file:/x`, `file://x` (as Flink sometimes spells it) and `file:///x` → `file:///x`; other
    schemes and plain paths are returned unchanged, minus a trailing slash. For comparing locations."""
    if path is None:
        return None
    text = path.strip()
    if text.startswith("file:"):
        text = "file:///" + text[len("file:"):].lstrip("/")
    return text.rstrip("/") if len(text) > len("file:///") else text


def same_location(a: str | None, b: str | None) -> bool:
    """Whether two savepoint/checkpoint locations name the same place."""
    return a is not None and b is not None and normalise_path(a) == normalise_path(b)


def _clean_line(line: str) -> str:
    """Shorten `org.apache.x.FooException` to `FooException` and drop wrapper exception prefixes."""
    text = _QUALIFIED.sub(r"\1", line.strip())
    changed = True
    while changed:
        changed = False
        for wrapper in _WRAPPERS:
            if text.startswith(wrapper) and len(text) > len(wrapper):
                text, changed = text[len(wrapper):], True
    return text


def _join_cause(head: str, cause: str | None) -> str:
    text = head if not cause or cause == head or cause in head else f"{head} (cause: {cause})"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"


def distill_errors(errors: Iterable[str]) -> str:
    """One line from Flink's error strings: the first meaningful line plus the innermost
    `Caused by:` line (e.g. "Could not execute application. (cause: DuplicateJobSubmissionException:
    Job has already been submitted.)"). Stack frames are never included."""
    head: str | None = None
    cause: str | None = None
    for error in errors:
        for raw in str(error).splitlines():
            line = raw.strip()
            if not line or line.startswith(("at ", "...")) or line in _NOISE or line.startswith(_NOISE[1]):
                continue
            if line.startswith("Caused by: "):
                cause = _clean_line(line[len("Caused by: "):])
            elif head is None:
                head = _clean_line(line)
    if head is None:
        return cause or "Flink returned an error without a message"
    return _join_cause(head, cause)


def _failure_cause(cause: Any) -> str:
    """One line from a `failure-cause` object ({"class", "stack-trace", "serialized-throwable"})."""
    if isinstance(cause, Mapping):
        trace = cause.get("stack-trace") or cause.get("class") or ""
        return distill_errors([str(trace)]) if trace else "unknown failure"
    return distill_errors([str(cause)])


def _obj(value: Any) -> Mapping[str, Any]:
    """A JSON object, or {} for anything else (Flink sends null for absent parts)."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    """A JSON array, or [] for anything else."""
    return value if isinstance(value, list) else []


def _check_hex_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _HEX_ID.match(value):
        raise FlinkInvalidArgument(f"{what} must be 32 hexadecimal characters, got {str(value)[:40]!r}")
    return value.lower()


def _check_jar_id(value: str) -> str:
    if not isinstance(value, str) or not _JAR_ID.match(value) or ".." in value:
        raise FlinkInvalidArgument(f"invalid jar id {str(value)[:80]!r}")
    return quote(value, safe="")


def _ref(entry: Any) -> CheckpointRef | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
        return None
    path = entry.get("external_path")
    if not isinstance(path, str) or not path or path == NOT_EXTERNALLY_ADDRESSABLE:
        path = None
    return CheckpointRef(id=entry["id"], external_path=path, is_savepoint=bool(entry.get("is_savepoint")))


def _version_tuple(version: str | None) -> tuple[int, int] | None:
    """"1.20", "1.20.3", "v1_20", "v2_3" → (1, 20) / (2, 3); None when unparseable."""
    if not version:
        return None
    match = re.match(r"^v?(\d+)[._](\d+)", version.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _ensure_jar_name(filename: str) -> str:
    """Flink's upload handler refuses file names not ending in `.jar` ("Only Jar files are allowed.")."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filename.rsplit("/", 1)[-1]) or "job"
    return name if name.lower().endswith(".jar") else name + ".jar"


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class _RestCalls:
    """Requests to one Flink cluster's REST endpoint over a `Transport`: timeouts, size limit, typed errors,
    per-call metrics. The plumbing under `FlinkRestClient`, which adds the operations."""

    def __init__(self, base_url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 submit_read_timeout: float = DEFAULT_SUBMIT_READ_TIMEOUT,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 on_call: OnCall | None = None, transport: Transport | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Flink REST base URL must be http(s)://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if not parts.hostname:
            raise ValueError(f"Flink REST base URL is invalid: {base_url!r} (no host)")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path_prefix = parts.path  # a base URL may carry a path (a proxy in front of the JobManager)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.submit_read_timeout = submit_read_timeout
        self.max_response_bytes = max_response_bytes
        self.on_call = on_call
        # Any `Transport` (hooks/transport.py). The hooks pass one keep-alive pool (hooks/http_transport.py:
        # limits, no proxy, no redirects) shared by the clients of a worker, so a client is cheap to make per
        # request; a client made on its own gets a small libcurl pool of its own.
        if transport is None:
            from .http_transport import CurlPool
            transport = CurlPool(max_idle=8)
        self._transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    # --- transport ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, endpoint: str, *, body: Any = None,
              files: Mapping[str, Any] | None = None, params: Mapping[str, str] | None = None,
              read_timeout: float | None = None) -> tuple[int, Any]:
        """One request → (HTTP status, parsed JSON) for 2xx answers; raises a typed error otherwise.
        `endpoint` is the low-cardinality name used in errors and metrics (e.g. "GET /jobs/overview")."""
        started = time.monotonic()
        outcome = "error"
        try:
            status, parsed = self._exchange(method, path, endpoint, body, files, params,
                                            read_timeout or self.read_timeout, started)
            outcome = "ok"
            return status, parsed
        except FlinkRestError as exc:
            outcome = _outcome(exc)
            raise
        finally:
            if self.on_call is not None:
                try:
                    self.on_call(endpoint, time.monotonic() - started, outcome)
                except Exception:  # noqa: BLE001 - metrics must never break a call
                    pass

    def _exchange(self, method: str, path: str, endpoint: str, body: Any, files: Mapping[str, Any] | None,
                  params: Mapping[str, str] | None, read_timeout: float, started: float) -> tuple[int, Any]:
        target = self._path_prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = _BASE_HEADERS
        payload: bytes | None = None
        if files is not None:
            payload, content_type = urllib3.encode_multipart_formdata(dict(files))
            headers = {**_BASE_HEADERS, "Content-Type": content_type}
        elif body is not None:
            payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            headers = _JSON_BODY_HEADERS
        try:
            answer = self._transport.request(self._origin, method, target, body=payload, headers=headers,
                                             connect_timeout=self.connect_timeout,
                                             total_timeout=self.connect_timeout + read_timeout,
                                             max_bytes=self.max_response_bytes)
        except TransportError as exc:
            raise _TRANSPORT_ERRORS[exc.kind](exc.message, status_code=exc.status, endpoint=endpoint) from None
        return answer.status, self._interpret(answer, endpoint)

    @staticmethod
    def _interpret(answer: Answer, endpoint: str) -> Any:
        """Parse JSON; map non-2xx answers to typed errors with a distilled message."""
        status, raw = answer.status, answer.body
        try:
            parsed: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        if 200 <= status < 300:
            if parsed is None:
                raise FlinkBadResponse(f"not JSON ({answer.headers.get('content-type', 'no content type')}): "
                                       f"{_snippet(raw)}", status_code=status, endpoint=endpoint)
            return parsed
        errors = parsed.get("errors") if isinstance(parsed, dict) else None
        if isinstance(errors, list) and errors:
            message, raw_errors = distill_errors(str(e) for e in errors), [str(e) for e in errors]
        else:
            message, raw_errors = (_snippet(raw) or answer.reason or "no message"), []
        cls: type[FlinkRestError] = FlinkNotFound if status == 404 else FlinkRestError
        if 300 <= status < 400:
            message = f"unexpected redirect to {answer.headers.get('location', '?')}"
        raise cls(message, status_code=status, endpoint=endpoint, errors=raw_errors)

    def _json(self, method: str, path: str, endpoint: str, **kwargs: Any) -> Any:
        return self._call(method, path, endpoint, **kwargs)[1]

    @staticmethod
    def _parse(model: type[_M], data: Any, endpoint: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise FlinkBadResponse(f"unexpected response shape: {_short(exc)}", endpoint=endpoint) from None

    @staticmethod
    def _field(data: Any, key: str, endpoint: str) -> Any:
        if not isinstance(data, Mapping) or key not in data:
            raise FlinkBadResponse(f"response has no '{key}': {_snippet(json.dumps(data).encode())}",
                                   endpoint=endpoint)
        return data[key]

    def _request_id(self, method: str, path: str, endpoint: str, body: Any) -> str:
        request_id = self._field(self._json(method, path, endpoint, body=body), "request-id", endpoint)
        if not isinstance(request_id, str):
            raise FlinkBadResponse("'request-id' is not a string", endpoint=endpoint)
        return request_id

    def _operation(self, path: str, endpoint: str) -> tuple[SavepointState, Any]:
        """An async operation's status: (IN_PROGRESS|COMPLETED|UNKNOWN_TRIGGER, operation object)."""
        try:
            data = self._json("GET", path, endpoint)
        except FlinkNotFound as exc:
            # "There is no savepoint operation with triggerId=… for job …" (also for an unknown job):
            # never triggered, the JobManager restarted, or the result expired (rest.async.store-duration).
            if _UNKNOWN_OPERATION.search(exc.message) or any(_UNKNOWN_OPERATION.search(e) for e in exc.errors):
                return "UNKNOWN_TRIGGER", None
            raise
        status = data.get("status") if isinstance(data, Mapping) else None
        state = status.get("id") if isinstance(status, Mapping) else None
        if state == "IN_PROGRESS":
            return "IN_PROGRESS", None
        if state == "COMPLETED":
            return "COMPLETED", data.get("operation")
        raise FlinkBadResponse(f"unknown operation status {state!r}", endpoint=endpoint)


class FlinkRestClient(_RestCalls):
    """Flink REST client for one cluster, e.g. `FlinkRestClient("http://my-cluster-rest.ns.svc:8081")`; implements
    `FlinkApi` (hooks/flink_api.py).

    Safe to share between the threads of one worker (the connection pool is thread-safe)."""

    # --- cluster -----------------------------------------------------------------------------

    def cluster_config(self) -> ClusterConfig:
        """GET /config: flink-version, flink-revision, features (web-submit is false in application mode)."""
        return self._parse(ClusterConfig, self._json("GET", "/config", "GET /config"), "GET /config")

    def overview(self) -> ClusterOverview:
        """GET /overview: TaskManagers and slots."""
        return self._parse(ClusterOverview, self._json("GET", "/overview", "GET /overview"), "GET /overview")

    def taskmanager_count(self) -> int | None:
        """The TaskManagers registered with the JobManager (GET /overview)."""
        return self.overview().taskmanagers

    # --- jobs --------------------------------------------------------------------------------

    def jobs_overview(self) -> list[JobOverview]:
        """GET /jobs/overview (not cached by Flink): every job the cluster knows, with state and times."""
        endpoint = "GET /jobs/overview"
        jobs = self._field(self._json("GET", "/jobs/overview", endpoint), "jobs", endpoint)
        if not isinstance(jobs, list):
            raise FlinkBadResponse("'jobs' is not a list", endpoint=endpoint)
        return [self._parse(JobOverview, job, endpoint) for job in jobs]

    def job(self, job_id: str) -> JobOverview | None:
        """This job's entry of /jobs/overview, or None when the cluster does not know it."""
        job_id = _check_hex_id(job_id, "job id")
        return next((j for j in self.jobs_overview() if j.jid == job_id), None)

    def cancel(self, job_id: str) -> bool:
        """PATCH /jobs/{id}?mode=cancel. True: cancellation requested (also for a job already CANCELED, which
        Flink acknowledges with 202 again); False: the job had already ended otherwise (FINISHED/FAILED: HTTP
        409 "already reached another terminal state"). Raises FlinkNotFound for a job the cluster does not
        know (e.g. after a JobManager restart without HA)."""
        job_id = _check_hex_id(job_id, "job id")
        try:
            self._call("PATCH", f"/jobs/{job_id}", "PATCH /jobs/{id}?mode=cancel", params={"mode": "cancel"})
        except FlinkRestError as exc:
            if exc.status_code == 409 or "already reached another terminal state" in exc.message:
                return False
            raise
        return True

    def job_exceptions(self, job_id: str, max_exceptions: int = 5) -> list[JobException]:
        """GET /jobs/{id}/exceptions, newest first. Reads `exceptionHistory.entries` (1.20 and 2.x); falls
        back to 1.20's `root-exception` when the history is empty."""
        job_id = _check_hex_id(job_id, "job id")
        endpoint = "GET /jobs/{id}/exceptions"
        data = self._json("GET", f"/jobs/{job_id}/exceptions", endpoint, params={"maxExceptions": str(max_exceptions)})
        if not isinstance(data, Mapping):
            raise FlinkBadResponse("exceptions response is not an object", endpoint=endpoint)
        entries = [e for e in _items(_obj(data.get("exceptionHistory")).get("entries")) if isinstance(e, Mapping)]
        result = [_exception(e.get("timestamp"), e.get("exceptionName"), e.get("stacktrace")) for e in entries]
        if not result and isinstance(data.get("root-exception"), str):
            result.append(_exception(data.get("timestamp"), None, data["root-exception"]))
        return result

    def execution_result(self, job_id: str) -> str | None:
        """GET /jobs/{id}/execution-result: a one-line failure cause for a failed job, else None (also
        while the job runs)."""
        job_id = _check_hex_id(job_id, "job id")
        data = self._json("GET", f"/jobs/{job_id}/execution-result", "GET /jobs/{id}/execution-result")
        result = data.get("job-execution-result") if isinstance(data, Mapping) else None
        if not isinstance(result, Mapping) or not result.get("failure-cause"):
            return None
        return _failure_cause(result["failure-cause"])

    # --- savepoints and checkpoints -----------------------------------------------------------

    def trigger_savepoint(self, job_id: str, target_dir: str | None, format_type: str = "CANONICAL",
                          trigger_id: str | None = None) -> str:
        """POST /jobs/{id}/savepoints (kebab-case keys). Returns the trigger (request) id. With a
        client-chosen `trigger_id` a retry is idempotent: the same id comes back and no second savepoint
        is taken, while the operation runs and for `rest.async.store-duration` (5 min) after it ended."""
        job_id = _check_hex_id(job_id, "job id")
        body: dict[str, Any] = {"cancel-job": False, "formatType": format_type}
        if target_dir:
            body["target-directory"] = target_dir
        if trigger_id is not None:
            body["triggerId"] = _check_hex_id(trigger_id, "trigger id")
        return self._request_id("POST", f"/jobs/{job_id}/savepoints", "POST /jobs/{id}/savepoints", body)

    def stop_with_savepoint(self, job_id: str, target_dir: str | None, drain: bool = False,
                            format_type: str = "CANONICAL", trigger_id: str | None = None) -> str:
        """POST /jobs/{id}/stop (camelCase `targetDirectory`). Poll with `savepoint_status`; the job ends
        FINISHED. Never reuse a trigger id of a plain savepoint of the same job: Flink keys its operation
        cache by (job id, trigger id) only, so it would answer with that savepoint's result and not stop
        the job (verified on 1.20.3 and 2.3.0)."""
        job_id = _check_hex_id(job_id, "job id")
        body: dict[str, Any] = {"drain": bool(drain), "formatType": format_type}
        if target_dir:
            body["targetDirectory"] = target_dir
        if trigger_id is not None:
            body["triggerId"] = _check_hex_id(trigger_id, "trigger id")
        return self._request_id("POST", f"/jobs/{job_id}/stop", "POST /jobs/{id}/stop", body)

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointResult:
        """GET /jobs/{id}/savepoints/{trigger}. COMPLETED only with a location; `failure-cause` → FAILED;
        404 "no savepoint operation" → UNKNOWN_TRIGGER (re-trigger with the same id)."""
        job_id = _check_hex_id(job_id, "job id")
        trigger_id = _check_hex_id(trigger_id, "trigger id")
        state, operation = self._operation(f"/jobs/{job_id}/savepoints/{trigger_id}",
                                           "GET /jobs/{id}/savepoints/{trigger}")
        if state != "COMPLETED":
            return SavepointResult(state=state)
        location = operation.get("location") if isinstance(operation, Mapping) else None
        if isinstance(location, str) and location:
            return SavepointResult(state="COMPLETED", location=location)
        return SavepointResult(state="FAILED", failure=_operation_failure(operation, "savepoint"))

    def trigger_checkpoint(self, job_id: str, checkpoint_type: str = "FULL", trigger_id: str | None = None) -> str:
        """POST /jobs/{id}/checkpoints (FULL, INCREMENTAL or CONFIGURED); works with periodic checkpointing
        disabled. Returns the trigger id."""
        job_id = _check_hex_id(job_id, "job id")
        body: dict[str, Any] = {"checkpointType": checkpoint_type}
        if trigger_id is not None:
            body["triggerId"] = _check_hex_id(trigger_id, "trigger id")
        return self._request_id("POST", f"/jobs/{job_id}/checkpoints", "POST /jobs/{id}/checkpoints", body)

    def checkpoint_status(self, job_id: str, trigger_id: str) -> CheckpointResult:
        """GET /jobs/{id}/checkpoints/{trigger}: COMPLETED with `checkpoint_id`, or FAILED, IN_PROGRESS,
        UNKNOWN_TRIGGER."""
        job_id = _check_hex_id(job_id, "job id")
        trigger_id = _check_hex_id(trigger_id, "trigger id")
        state, operation = self._operation(f"/jobs/{job_id}/checkpoints/{trigger_id}",
                                           "GET /jobs/{id}/checkpoints/{trigger}")
        if state != "COMPLETED":
            return CheckpointResult(state=state)
        checkpoint_id = operation.get("checkpointId") if isinstance(operation, Mapping) else None
        if isinstance(checkpoint_id, int):
            return CheckpointResult(state="COMPLETED", checkpoint_id=checkpoint_id)
        return CheckpointResult(state="FAILED", failure=_operation_failure(operation, "checkpoint"))

    def checkpoint_path(self, job_id: str, checkpoint_id: int) -> str | None:
        """GET /jobs/{id}/checkpoints/details/{checkpoint}: the checkpoint's `external_path` (None when it is not
        externally addressable). Flink remembers only the last `web.checkpoints.history` (10) checkpoints."""
        job_id = _check_hex_id(job_id, "job id")
        if not isinstance(checkpoint_id, int) or isinstance(checkpoint_id, bool) or checkpoint_id < 0:
            raise FlinkInvalidArgument(f"checkpoint id must be a non-negative integer, got {checkpoint_id!r}")
        endpoint = "GET /jobs/{id}/checkpoints/details/{checkpoint}"
        data = self._json("GET", f"/jobs/{job_id}/checkpoints/details/{checkpoint_id}", endpoint)
        path = _obj(data).get("external_path")
        return path if isinstance(path, str) and path and path != NOT_EXTERNALLY_ADDRESSABLE else None

    def checkpoints(self, job_id: str) -> CheckpointStats:
        """GET /jobs/{id}/checkpoints (cached by Flink for web.refresh-interval, 3 s by default)."""
        job_id = _check_hex_id(job_id, "job id")
        endpoint = "GET /jobs/{id}/checkpoints"
        data = self._json("GET", f"/jobs/{job_id}/checkpoints", endpoint)
        if not isinstance(data, Mapping):
            raise FlinkBadResponse("checkpoints response is not an object", endpoint=endpoint)
        latest = _obj(data.get("latest"))
        counts = {str(k): v for k, v in _obj(data.get("counts")).items() if isinstance(v, int)}
        in_progress = counts.get("in_progress", 0) > 0 or any(
            isinstance(h, Mapping) and h.get("status") == "IN_PROGRESS" for h in _items(data.get("history")))
        return CheckpointStats(completed=_ref(latest.get("completed")), savepoint=_ref(latest.get("savepoint")),
                               restored=_ref(latest.get("restored")), in_progress=in_progress, counts=counts)

    def latest_checkpoint_path(self, job_id: str) -> str | None:
        """The external path of the newest completed checkpoint, savepoint or restored snapshot, or None.
        Raises FlinkNotFound when the cluster no longer knows the job."""
        return self.checkpoints(job_id).latest_path()

    def dispose_savepoint(self, path: str) -> str:
        """POST /savepoint-disposal; returns the trigger id (poll with `disposal_status`)."""
        if not isinstance(path, str) or not path.strip():
            raise FlinkInvalidArgument("savepoint path must not be empty")
        return self._request_id("POST", "/savepoint-disposal", "POST /savepoint-disposal", {"savepoint-path": path})

    def disposal_status(self, trigger_id: str) -> DisposalResult:
        """GET /savepoint-disposal/{trigger}."""
        trigger_id = _check_hex_id(trigger_id, "trigger id")
        state, operation = self._operation(f"/savepoint-disposal/{trigger_id}", "GET /savepoint-disposal/{trigger}")
        if state != "COMPLETED":
            return DisposalResult(state=state)
        if isinstance(operation, Mapping) and operation.get("failure-cause"):
            return DisposalResult(state="FAILED", failure=_failure_cause(operation["failure-cause"]))
        return DisposalResult(state="COMPLETED")

    # --- session jobs ---------------------------------------------------------------------------

    def upload_jar(self, filename: str, data: bytes) -> str:
        """POST /jars/upload (multipart field `jarfile`); returns the jar id (basename of `filename`).
        A name not ending in `.jar` gets the suffix (Flink refuses other names)."""
        endpoint = "POST /jars/upload"
        files = {"jarfile": (_ensure_jar_name(filename), data, "application/x-java-archive")}
        answer = self._json("POST", "/jars/upload", endpoint, files=files, read_timeout=self.submit_read_timeout)
        stored = self._field(answer, "filename", endpoint)
        if not isinstance(stored, str) or not stored:
            raise FlinkBadResponse("'filename' is not a string", endpoint=endpoint)
        return stored.replace("\\", "/").rsplit("/", 1)[-1]

    def run_jar(self, jar_id: str, *, job_id: str | None = None, entry_class: str | None = None,
                args: Sequence[str] = (), parallelism: int | None = None, savepoint_path: str | None = None,
                allow_non_restored_state: bool | None = None, claim_mode: str | None = None,
                flink_configuration: Mapping[str, Any] | None = None, flink_version: str | None = None) -> str:
        """POST /jars/{id}/run; returns the job id. The claim mode (default NO_CLAIM with a savepoint) is
        sent as `claimMode`, or as `restoreMode` when `flink_version` is older than 1.20. Raises
        FlinkDuplicateJob when a job with `job_id` was already submitted (running or finished)."""
        endpoint = "POST /jars/{id}/run"
        body = _run_body(job_id=job_id, entry_class=entry_class, args=args, parallelism=parallelism,
                         savepoint_path=savepoint_path, allow_non_restored_state=allow_non_restored_state,
                         claim_mode=claim_mode, flink_configuration=flink_configuration, flink_version=flink_version)
        try:
            answer = self._json("POST", f"/jars/{_check_jar_id(jar_id)}/run", endpoint, body=body,
                                read_timeout=self.submit_read_timeout)
        except FlinkRestError as exc:
            if any(marker in text for text in (exc.message, *exc.errors) for marker in _DUPLICATE_MARKERS):
                raise FlinkDuplicateJob(exc.message, status_code=exc.status_code, endpoint=endpoint,
                                        errors=exc.errors) from None
            raise
        started = self._field(answer, "jobid", endpoint)
        if not isinstance(started, str):
            raise FlinkBadResponse("'jobid' is not a string", endpoint=endpoint)
        return started

    def delete_jar(self, jar_id: str) -> bool:
        """DELETE /jars/{id}. True when deleted, False when the jar was already gone (Flink answers 400
        "File … does not exist in …" for that, not 404)."""
        try:
            self._call("DELETE", f"/jars/{_check_jar_id(jar_id)}", "DELETE /jars/{id}")
        except FlinkRestError as exc:
            if exc.status_code in (400, 404) and "does not exist" in exc.message:
                return False
            raise
        return True

    # --- the autoscaler's metrics and in-place rescaling (hooks/autoscaler_io.py) ------------------

    def job_details(self, job_id: str) -> Mapping[str, Any]:
        """GET /jobs/{id}: state, `timestamps`, `vertices` (parallelism, maxParallelism, IO counters, task
        states) and `plan.nodes` (the edges with their ship strategy), as Flink sends them."""
        data = self._json("GET", f"/jobs/{_check_hex_id(job_id, 'job id')}", "GET /jobs/{id}")
        if not isinstance(data, Mapping):
            raise FlinkBadResponse("job details are not an object", endpoint="GET /jobs/{id}")
        return data

    def vertex_metric_names(self, job_id: str, vertex_id: str) -> list[str]:
        """GET /jobs/{id}/vertices/{vertex}/subtasks/metrics: the metric names the vertex has (asking for a name
        it does not have empties the whole answer, so the names are listed first)."""
        endpoint = "GET /jobs/{id}/vertices/{vertex}/subtasks/metrics"
        data = self._json("GET", self._subtask_metrics_path(job_id, vertex_id), endpoint)
        return [str(item["id"]) for item in _items(data) if isinstance(item, Mapping) and "id" in item]

    def vertex_metrics(self, job_id: str, vertex_id: str, names: Sequence[str]) -> dict[str, dict[str, float]]:
        """GET /jobs/{id}/vertices/{vertex}/subtasks/metrics?get=...: name -> {min, max, avg, sum} over the
        vertex's subtasks (values that are not numbers are left out)."""
        if not names:
            return {}
        endpoint = "GET /jobs/{id}/vertices/{vertex}/subtasks/metrics?get"
        data = self._json("GET", self._subtask_metrics_path(job_id, vertex_id), endpoint,
                          params={"get": ",".join(names)})
        return {str(item["id"]): {k: float(v) for k, v in item.items()
                                  if k in ("min", "max", "avg", "sum") and _is_number(v)}
                for item in _items(data) if isinstance(item, Mapping) and "id" in item}

    def resource_requirements(self, job_id: str) -> Mapping[str, Any]:
        """GET /jobs/{id}/resource-requirements (adaptive scheduler): vertex -> {parallelism: {lowerBound,
        upperBound}} for every vertex."""
        endpoint = "GET /jobs/{id}/resource-requirements"
        data = self._json("GET", f"/jobs/{_check_hex_id(job_id, 'job id')}/resource-requirements", endpoint)
        if not isinstance(data, Mapping):
            raise FlinkBadResponse("resource requirements are not an object", endpoint=endpoint)
        return data

    def set_resource_requirements(self, job_id: str, requirements: Mapping[str, Any]) -> None:
        """PUT /jobs/{id}/resource-requirements: the adaptive scheduler rescales the running job in place
        (Flink answers 400 for a body that leaves out a vertex or exceeds its max parallelism)."""
        self._call("PUT", f"/jobs/{_check_hex_id(job_id, 'job id')}/resource-requirements",
                   "PUT /jobs/{id}/resource-requirements", body=dict(requirements))

    @staticmethod
    def _subtask_metrics_path(job_id: str, vertex_id: str) -> str:
        return f"/jobs/{_check_hex_id(job_id, 'job id')}/vertices/{_check_hex_id(vertex_id, 'vertex id')}" \
               "/subtasks/metrics"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


_DUPLICATE_MARKERS = ("DuplicateJobSubmissionException", "DuplicateApplicationSubmissionException")


def _run_body(*, job_id: str | None, entry_class: str | None, args: Sequence[str], parallelism: int | None,
              savepoint_path: str | None, allow_non_restored_state: bool | None, claim_mode: str | None,
              flink_configuration: Mapping[str, Any] | None, flink_version: str | None) -> dict[str, Any]:
    """The JarRunRequestBody, as the Apache operator sends it (only the fields that are set)."""
    body: dict[str, Any] = {"programArgsList": [str(a) for a in args]}
    if job_id is not None:
        body["jobId"] = _check_hex_id(job_id, "job id")
    if entry_class:
        body["entryClass"] = entry_class
    if parallelism is not None and parallelism > 0:
        body["parallelism"] = int(parallelism)
    if savepoint_path:
        body["savepointPath"] = savepoint_path
    if allow_non_restored_state is not None:
        body["allowNonRestoredState"] = bool(allow_non_restored_state)
    mode = claim_mode or ("NO_CLAIM" if savepoint_path else None)
    if mode:
        version = _version_tuple(flink_version)
        body["restoreMode" if version is not None and version < (1, 20) else "claimMode"] = mode
    if flink_configuration:
        body["flinkConfiguration"] = {str(k): flink_value(v) for k, v in flink_configuration.items()}
    return body


def _exception(timestamp: Any, name: Any, trace: Any) -> JobException:
    """One exception-history entry from its stack trace (first line and innermost cause only)."""
    lines = [line.strip() for line in str(trace or "").splitlines() if line.strip()]
    first = _clean_line(lines[0]) if lines else str(name or "unknown exception")
    causes = [_clean_line(line[len("Caused by: "):]) for line in lines if line.startswith("Caused by: ")]
    return JobException(timestamp=timestamp if isinstance(timestamp, int) else None,
                        name=str(name or (lines[0].split(":", 1)[0] if lines else "")),
                        first_line=first[:MAX_MESSAGE_CHARS],
                        root_cause=causes[-1][:MAX_MESSAGE_CHARS] if causes else None)


def _operation_failure(operation: Any, what: str) -> str:
    if isinstance(operation, Mapping) and operation.get("failure-cause"):
        return _failure_cause(operation["failure-cause"])
    return f"Flink reported the {what} as completed without a result"


def _outcome(exc: FlinkRestError) -> str:
    """The metrics label of a failed call."""
    if isinstance(exc, FlinkUnreachable):
        return "unreachable"
    if isinstance(exc, FlinkResponseTooLarge):
        return "too_large"
    if isinstance(exc, FlinkBadResponse):
        return "bad_response"
    if isinstance(exc, FlinkNotFound):
        return "not_found"
    return "http_error" if exc.status_code is not None else "error"


def _short(exc: BaseException) -> str:
    """The first line of an exception's message (pydantic's are many lines)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _snippet(raw: bytes) -> str:
    """The start of a non-JSON body, one line."""
    text = raw[:200].decode("utf-8", errors="replace").strip()
    return text.splitlines()[0][:120] if text else ""
