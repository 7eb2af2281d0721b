"""Failure paths of `hooks.flink_rest` against scripted HTTP servers on 127.0.0.1.

The happy path runs against real Flink in `test_flink_rest_real.py`; these stubs only reproduce the
answers Flink (or the network) gives when things go wrong, with bodies shaped like the real ones (captured
from Flink 1.20.3 / 2.3.0)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hooks import flink_rest
from hooks.flink_rest import (
    FlinkBadResponse,
    FlinkDuplicateJob,
    FlinkInvalidArgument,
    FlinkNotFound,
    FlinkResponseTooLarge,
    FlinkRestClient,
    FlinkRestError,
    FlinkUnreachable,
)
from hooks.http_transport import CurlPool
from tests.http_stub import Reply, Request, StubServer, closed_port

JOB = "36da764f000000000000000000000001"
TRIGGER = "bbbb0000000000000000000000000001"
SLACK = 1.0  # seconds on top of a timeout (2 cores, busy CI)


def java_trace(first: str, *causes: str) -> str:
    """A Flink server-side error string: message, frames, `Caused by:` chains."""
    frames = "\n\tat org.apache.flink.runtime.rest.handler.AbstractHandler.respondAsLeader(AbstractHandler.java:1)" \
             "\n\tat java.base/java.lang.Thread.run(Thread.java:840)"
    text = first + frames
    for cause in causes:
        text += f"\nCaused by: {cause}{frames}\n\t... 3 more"
    return text + "\n"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def client(url: str, **kw: object) -> FlinkRestClient:
    options: dict[str, object] = {"connect_timeout": 0.5, "read_timeout": 0.5, "submit_read_timeout": 0.5}
    options.update(kw)
    return FlinkRestClient(url, **options)  # type: ignore[arg-type]


class Clock:
    def __enter__(self) -> Clock:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start


# --- transport ---------------------------------------------------------------------------------


def test_connection_refused_is_unreachable_and_fast() -> None:
    calls: list[tuple[str, float, str]] = []
    rest = client(f"http://127.0.0.1:{closed_port()}", on_call=lambda *a: calls.append(a))
    with Clock() as clock, pytest.raises(FlinkUnreachable) as info:
        rest.jobs_overview()
    assert clock.seconds < 0.5 + SLACK
    assert info.value.status_code is None and "Connection refused" in str(info.value)
    assert [(endpoint, outcome) for endpoint, _seconds, outcome in calls] == [("GET /jobs/overview", "unreachable")]


def test_unresolvable_host_is_unreachable() -> None:
    with pytest.raises(FlinkUnreachable):
        client("http://no-such-host.invalid:8081").cluster_config()


def test_server_that_hangs_hits_the_read_timeout(stub: StubServer) -> None:
    def hang(request: Request) -> None:
        stub.release.wait(10)
        return

    stub.route("GET", "/jobs/overview", hang)
    with Clock() as clock, pytest.raises(FlinkUnreachable) as info:
        client(stub.url, read_timeout=0.7).jobs_overview()
    assert 0.6 < clock.seconds < 0.7 + SLACK
    assert "timed out" in str(info.value)


def test_body_trickling_in_hits_the_total_deadline(stub: StubServer) -> None:
    """Each byte arrives within the read timeout, but the whole body does not arrive in time."""
    def trickle(request: Request) -> None:
        handler = request.handler
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if stub.release.wait(0.1):
                return
            try:
                handler.wfile.write(b" ")
                handler.wfile.flush()
            except OSError:
                return
        return

    stub.route("GET", "/overview", trickle)
    with Clock() as clock, pytest.raises(FlinkUnreachable) as info:
        client(stub.url, connect_timeout=0.3, read_timeout=0.5).overview()
    assert clock.seconds < 0.8 + SLACK
    assert "timed out" in str(info.value)


def test_redirect_is_not_followed(stub: StubServer) -> None:
    stub.route("GET", "/config", Reply(302, b"", {"Location": "http://elsewhere.example/config"}))
    with pytest.raises(FlinkRestError) as info:
        client(stub.url).cluster_config()
    assert info.value.status_code == 302 and "redirect" in info.value.message
    assert len(stub.requests) == 1


# --- error bodies ------------------------------------------------------------------------------


def test_500_with_flink_errors_is_distilled_to_one_line(stub: StubServer) -> None:
    errors = ["Internal server error.", "<Exception on server side:\n" + java_trace(
        "java.util.concurrent.CompletionException: org.apache.flink.client.program.ProgramInvocationException: "
        "The program's entry point class 'probe.NoSuchClass' was not found in the jar file.",
        "java.lang.ClassNotFoundException: probe.NoSuchClass") + "\nEnd of exception on server side>"]
    stub.route("POST", "/jars/x.jar/run", Reply(500, {"errors": errors}))
    with Clock() as clock, pytest.raises(FlinkRestError) as info:
        client(stub.url).run_jar("x.jar", entry_class="probe.NoSuchClass")
    exc = info.value
    assert type(exc) is FlinkRestError and exc.status_code == 500
    assert exc.message == ("ProgramInvocationException: The program's entry point class 'probe.NoSuchClass' was not "
                           "found in the jar file. (cause: ClassNotFoundException: probe.NoSuchClass)")
    assert "\n" not in str(exc) and "\tat " not in str(exc) and "Thread.java" not in str(exc)
    assert str(exc) == f"POST /jars/{{id}}/run: HTTP 500: {exc.message}"
    assert clock.seconds < 0.5 + SLACK


def test_non_json_garbage_is_a_bad_response(stub: StubServer) -> None:
    stub.route("GET", "/jobs/overview", Reply(200, b"<html><body>hello from a proxy</body></html>",
                                              {"Content-Type": "text/html"}))
    with pytest.raises(FlinkBadResponse) as info:
        client(stub.url).jobs_overview()
    assert "text/html" in info.value.message and info.value.status_code == 200


def test_non_json_error_page_keeps_its_status(stub: StubServer) -> None:
    stub.route("GET", "/config", Reply(502, b"<html>\n<h1>502 Bad Gateway</h1></html>", {"Content-Type": "text/html"}))
    with pytest.raises(FlinkRestError) as info:
        client(stub.url).cluster_config()
    assert info.value.status_code == 502 and "\n" not in info.value.message


def test_json_of_the_wrong_shape_is_a_bad_response(stub: StubServer) -> None:
    stub.route("GET", "/jobs/overview", Reply(200, {"jobs": [{"jid": JOB}]}))  # no state
    with pytest.raises(FlinkBadResponse):
        client(stub.url).jobs_overview()
    stub.route("POST", f"/jobs/{JOB}/savepoints", Reply(202, {"status": "ok"}))  # no request-id
    with pytest.raises(FlinkBadResponse):
        client(stub.url).trigger_savepoint(JOB, "file:///sp")


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "streamed"])
def test_body_past_the_size_limit(stub: StubServer, content_length: bool) -> None:
    big = {"jobs": [{"jid": JOB, "name": "x" * 5000, "state": "RUNNING"}]}
    stub.route("GET", "/jobs/overview", Reply(200, big, content_length=content_length))
    calls: list[tuple[str, float, str]] = []
    with Clock() as clock, pytest.raises(FlinkResponseTooLarge):
        client(stub.url, max_response_bytes=1024, on_call=lambda *a: calls.append(a)).jobs_overview()
    assert clock.seconds < 0.5 + SLACK
    assert calls[0][2] == "too_large"
    # under the limit, the same answer is fine
    assert client(stub.url, max_response_bytes=10_000).jobs_overview()[0].jid == JOB


# --- Flink semantics on error answers ----------------------------------------------------------


def test_404_unknown_job(stub: StubServer) -> None:
    not_found = {"errors": [java_trace("org.apache.flink.runtime.rest.handler.RestHandlerException: Job could not "
                                       "be found.", "org.apache.flink.runtime.messages.FlinkJobNotFoundException: "
                                       "Could not find Flink job (" + JOB + ")")]}
    stub.route("PATCH", f"/jobs/{JOB}", Reply(404, not_found))
    stub.route("GET", f"/jobs/{JOB}/checkpoints", Reply(404, {"errors": [java_trace(
        f"org.apache.flink.runtime.rest.NotFoundException: Job {JOB} not found")]}))
    rest = client(stub.url)
    with pytest.raises(FlinkNotFound) as info:
        rest.cancel(JOB)
    assert info.value.status_code == 404
    assert info.value.message == ("Job could not be found. (cause: FlinkJobNotFoundException: Could not find Flink "
                                  f"job ({JOB}))")
    with pytest.raises(FlinkNotFound) as info:
        rest.latest_checkpoint_path(JOB)
    assert info.value.message == f"NotFoundException: Job {JOB} not found"
    assert stub.requests[0].query == "mode=cancel"


def test_cancel_of_a_job_that_already_ended_is_done(stub: StubServer) -> None:
    stub.route("PATCH", f"/jobs/{JOB}", Reply(409, {"errors": [java_trace(
        "org.apache.flink.runtime.rest.handler.RestHandlerException: Job cancellation failed because the job has "
        "already reached another terminal state (FINISHED).")]}))
    assert client(stub.url).cancel(JOB) is False
    stub.route("PATCH", f"/jobs/{JOB}", Reply(202, {}))
    assert client(stub.url).cancel(JOB) is True


def test_404_unknown_savepoint_trigger_is_unknown_trigger(stub: StubServer) -> None:
    stub.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", Reply(404, {"errors": [java_trace(
        "org.apache.flink.runtime.rest.handler.RestHandlerException: There is no savepoint operation with "
        f"triggerId={TRIGGER} for job {JOB}.")]}))
    result = client(stub.url).savepoint_status(JOB, TRIGGER)
    assert result == flink_rest.SavepointResult(state="UNKNOWN_TRIGGER")


def test_other_404_on_savepoint_status_is_not_found(stub: StubServer) -> None:
    stub.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", Reply(404, {"errors": ["Not found: /jobs/x"]}))
    with pytest.raises(FlinkNotFound):
        client(stub.url).savepoint_status(JOB, TRIGGER)


def test_savepoint_accepted_then_completed_with_failure_cause(stub: StubServer) -> None:
    """A savepoint on a finished or unknown job: 202, then COMPLETED with only a failure-cause."""
    stub.route("POST", f"/jobs/{JOB}/savepoints", Reply(202, {"request-id": TRIGGER}))
    stub.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", Reply(200, {"status": {"id": "COMPLETED"}, "operation": {
        "failure-cause": {"class": "java.util.concurrent.CompletionException", "serialized-throwable": "rO0AB...",
                          "stack-trace": java_trace(
                              "java.util.concurrent.CompletionException: org.apache.flink.runtime.messages."
                              f"FlinkJobNotFoundException: Could not find Flink job ({JOB})",
                              f"org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink "
                              f"job ({JOB})")}}}))
    rest = client(stub.url)
    assert rest.trigger_savepoint(JOB, "file:///sp", trigger_id=TRIGGER) == TRIGGER
    result = rest.savepoint_status(JOB, TRIGGER)
    assert result.state == "FAILED" and result.location is None
    assert result.failure == f"FlinkJobNotFoundException: Could not find Flink job ({JOB})"
    body = stub.requests[0].json()
    assert body == {"target-directory": "file:///sp", "cancel-job": False, "formatType": "CANONICAL",
                    "triggerId": TRIGGER}


def test_savepoint_in_progress_and_completed(stub: StubServer) -> None:
    answers = iter([{"status": {"id": "IN_PROGRESS"}, "operation": None},
                    {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-36da76-1"}}])
    stub.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", lambda _r: Reply(200, next(answers)))
    rest = client(stub.url)
    assert rest.savepoint_status(JOB, TRIGGER).state == "IN_PROGRESS"
    done = rest.savepoint_status(JOB, TRIGGER)
    assert done.state == "COMPLETED" and done.location == "file:/sp/savepoint-36da76-1"
    assert flink_rest.normalise_path(done.location) == "file:///sp/savepoint-36da76-1"


def test_stop_uses_camel_case_keys(stub: StubServer) -> None:
    stub.route("POST", f"/jobs/{JOB}/stop", Reply(202, {"request-id": TRIGGER}))
    assert client(stub.url).stop_with_savepoint(JOB, "file:///sp", drain=True, trigger_id=TRIGGER) == TRIGGER
    assert stub.requests[0].json() == {"targetDirectory": "file:///sp", "drain": True, "formatType": "CANONICAL",
                                       "triggerId": TRIGGER}


@pytest.mark.parametrize(("name", "what"), [("DuplicateJobSubmissionException", "Job"),
                                            ("DuplicateApplicationSubmissionException", "Application")])
def test_duplicate_job_id_is_a_typed_error(stub: StubServer, name: str, what: str) -> None:
    """1.20 and 2.3 wrap the duplicate deep inside "Could not execute application."."""
    errors = [java_trace("org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.",
                         "java.util.concurrent.CompletionException: org.apache.flink.util.FlinkRuntimeException: "
                         "Could not execute application.",
                         "org.apache.flink.util.FlinkException: Failed to execute job 'Flink Streaming Job'.",
                         f"org.apache.flink.runtime.client.{name}: {what} has already been submitted.")]
    stub.route("POST", "/jars/abc_counter.jar/run", Reply(400, {"errors": errors}))
    with pytest.raises(FlinkDuplicateJob) as info:
        client(stub.url).run_jar("abc_counter.jar", job_id=JOB, entry_class="probe.CounterJob", args=["--rate", "5"])
    assert info.value.status_code == 400
    assert info.value.message == f"Could not execute application. (cause: {name}: {what} has already been submitted.)"
    assert stub.requests[0].json() == {"jobId": JOB, "entryClass": "probe.CounterJob",
                                       "programArgsList": ["--rate", "5"]}


def test_other_400_on_run_is_not_a_duplicate(stub: StubServer) -> None:
    errors = [java_trace("org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.",
                         "java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory "
                         "'file:///nope' on file system 'file'.")]
    stub.route("POST", "/jars/a.jar/run", Reply(400, {"errors": errors}))
    with pytest.raises(FlinkRestError) as info:
        client(stub.url).run_jar("a.jar", savepoint_path="file:///nope")
    assert type(info.value) is FlinkRestError
    assert "FileNotFoundException: Cannot find checkpoint or savepoint" in info.value.message


@pytest.mark.parametrize(("version", "key"), [("v1_19", "restoreMode"), ("1.18.1", "restoreMode"),
                                              ("v1_20", "claimMode"), ("2.3", "claimMode"), (None, "claimMode")])
def test_run_jar_claim_mode_key_by_version(stub: StubServer, version: str | None, key: str) -> None:
    stub.route("POST", "/jars/a.jar/run", Reply(200, {"jobid": JOB}))
    assert client(stub.url).run_jar("a.jar", job_id=JOB, savepoint_path="file:/sp/savepoint-1", parallelism=2,
                                    allow_non_restored_state=False, flink_version=version,
                                    flink_configuration={"a.b": True, "c": 3, "pipeline.classpaths": ["x", "y"]}) == JOB
    assert stub.requests[0].json() == {"jobId": JOB, "programArgsList": [], "parallelism": 2,
                                       "savepointPath": "file:/sp/savepoint-1", "allowNonRestoredState": False,
                                       key: "NO_CLAIM",
                                       "flinkConfiguration": {"a.b": "true", "c": "3", "pipeline.classpaths": "x;y"}}


def test_upload_adds_the_jar_suffix_and_returns_the_basename(stub: StubServer) -> None:
    def upload(request: Request) -> Reply:
        assert b'name="jarfile"; filename="my_job.jar"' in request.body
        assert b"Content-Type: application/x-java-archive" in request.body
        return Reply(200, {"filename": "/tmp/web/flink-web-upload/1f2e_my_job.jar", "status": "success"})

    stub.route("POST", "/jars/upload", upload)
    assert client(stub.url).upload_jar("my job", b"PK\x03\x04") == "1f2e_my_job.jar"


def test_delete_of_a_missing_jar_is_false(stub: StubServer) -> None:
    stub.route("DELETE", "/jars/gone.jar", Reply(400, {"errors": [java_trace(
        "org.apache.flink.runtime.rest.handler.RestHandlerException: File gone.jar does not exist in /tmp/web.")]}))
    assert client(stub.url).delete_jar("gone.jar") is False


def test_ids_are_checked_before_any_request(stub: StubServer) -> None:
    rest = client(stub.url)
    for call in (lambda: rest.cancel("../../jars"), lambda: rest.savepoint_status(JOB, "x/y"),
                 lambda: rest.delete_jar("../etc/passwd"), lambda: rest.run_jar("a.jar", job_id="nothex")):
        with pytest.raises(FlinkInvalidArgument):
            call()
    assert stub.requests == []


# --- response parsing --------------------------------------------------------------------------


def test_jobs_overview_of_both_versions(stub: StubServer) -> None:
    stub.route("GET", "/jobs/overview", Reply(200, {"jobs": [
        {"jid": JOB, "name": "a", "start-time": 5, "end-time": -1, "duration": 1, "state": "RUNNING",
         "last-modification": 6, "tasks": {"running": 2, "total": 2}},
        {"jid": "4965cb15000000000000000000000001", "name": "b", "start-time": 5, "end-time": 9, "state": "FINISHED",
         "last-modification": 9, "tasks": {"finished": 2, "total": 2}, "jobType": "STREAMING",
         "schedulerType": "Default", "pending-operators": 0, "application-id": "x"}]}))
    rest = client(stub.url)
    first, second = rest.jobs_overview()
    assert (first.jid, first.state, first.start_time, first.end_time) == (JOB, "RUNNING", 5, None)
    assert (second.state, second.end_time, second.tasks["finished"]) == ("FINISHED", 9, 2)
    assert rest.job(JOB) == first and rest.job("f" * 32) is None


def test_exceptions_of_both_versions(stub: StubServer) -> None:
    trace = java_trace("org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy",
                       "java.lang.IllegalStateException: probe: injected failure at value 20")
    entry = {"exceptionName": "org.apache.flink.runtime.JobException", "stacktrace": trace, "timestamp": 17,
             "failureLabels": {}, "concurrentExceptions": []}
    v120 = {"root-exception": trace, "timestamp": 17, "all-exceptions": [], "truncated": False,
            "exceptionHistory": {"entries": [entry], "truncated": False}}
    v23 = {"exceptionHistory": {"entries": [entry], "truncated": False}}
    for body in (v120, v23):
        stub.route("GET", f"/jobs/{JOB}/exceptions", Reply(200, body))
        (exc,) = client(stub.url).job_exceptions(JOB)
        assert exc.timestamp == 17 and exc.name == "org.apache.flink.runtime.JobException"
        assert exc.first_line == "JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy"
        assert exc.summary == ("JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy "
                               "(cause: IllegalStateException: probe: injected failure at value 20)")
    stub.route("GET", f"/jobs/{JOB}/exceptions", Reply(200, {"root-exception": trace, "timestamp": 3,
                                                             "exceptionHistory": {"entries": []}}))
    (old,) = client(stub.url).job_exceptions(JOB)
    assert old.timestamp == 3 and old.root_cause == "IllegalStateException: probe: injected failure at value 20"
    assert stub.requests[0].query == "maxExceptions=5"


def test_execution_result(stub: StubServer) -> None:
    path = f"/jobs/{JOB}/execution-result"
    stub.route("GET", path, Reply(200, {"status": {"id": "IN_PROGRESS"}}))
    assert client(stub.url).execution_result(JOB) is None
    stub.route("GET", path, Reply(200, {"status": {"id": "COMPLETED"}, "job-execution-result": {
        "id": JOB, "application-status": "FAILED", "failure-cause": {
            "class": "org.apache.flink.runtime.JobException",
            "stack-trace": java_trace("org.apache.flink.runtime.JobException: Recovery is suppressed",
                                      "java.lang.RuntimeException: boom")}}}))
    expected = "JobException: Recovery is suppressed (cause: RuntimeException: boom)"
    assert client(stub.url).execution_result(JOB) == expected


def test_checkpoint_stats_and_latest_path(stub: StubServer) -> None:
    stub.route("GET", f"/jobs/{JOB}/checkpoints", Reply(200, {
        "counts": {"restored": 1, "total": 4, "in_progress": 1, "completed": 3, "failed": 0},
        "summary": {"end_to_end_duration": {"p50": "NaN"}},
        "latest": {"completed": {"id": 7, "external_path": flink_rest.NOT_EXTERNALLY_ADDRESSABLE},
                   "savepoint": {"id": 5, "is_savepoint": True, "external_path": "file:/sp/savepoint-5"},
                   "failed": None,
                   "restored": {"id": 2, "is_savepoint": True, "external_path": "file:/sp/savepoint-2"}},
        "history": [{"id": 8, "status": "IN_PROGRESS"}]}))
    rest = client(stub.url)
    stats = rest.checkpoints(JOB)
    assert stats.in_progress and stats.completed == flink_rest.CheckpointRef(7, None, False)
    assert rest.latest_checkpoint_path(JOB) == "file:/sp/savepoint-5"  # 7 is not externally addressable


def test_distill_errors() -> None:
    assert flink_rest.distill_errors([]) == "Flink returned an error without a message"
    assert flink_rest.distill_errors(["Internal server error."]) == "Flink returned an error without a message"
    long = flink_rest.distill_errors(["x" * 2000])
    assert len(long) <= flink_rest.MAX_MESSAGE_CHARS


def test_normalise_path() -> None:
    norm = flink_rest.normalise_path
    assert norm("file:/a/b") == norm("file:///a/b") == norm("file://a/b/") == "file:///a/b"
    assert norm("s3://bucket/sp/") == "s3://bucket/sp" and norm(None) is None
    assert flink_rest.same_location("file:/sp/savepoint-1", "file:///sp/savepoint-1/")


def test_metrics_callback_failures_are_ignored(stub: StubServer) -> None:
    stub.route("GET", "/config", Reply(200, {"flink-version": "2.3.0", "flink-revision": "c0f8d1a"}))

    def broken(*_a: object) -> None:
        raise RuntimeError("metrics down")

    assert client(stub.url, on_call=broken).cluster_config().flink_version == "2.3.0"


def test_client_is_shared_between_threads(stub: StubServer) -> None:
    stub.route("GET", "/overview", Reply(200, {"taskmanagers": 1, "slots-total": 2, "slots-available": 1}))
    # Generous timeouts: this test is about sharing, and eight threads on a busy 2-core machine are slow.
    rest = client(stub.url, connect_timeout=5.0, read_timeout=5.0)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(rest.overview().slots_total)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == [2] * 8


# --- the transport: connection reuse, and what a failed call leaves in the pool ------------------


def _client_ports(stub: StubServer) -> list[int]:
    return [request.handler.client_address[1] for request in stub.requests]


def test_sequential_calls_reuse_one_keep_alive_connection(stub: StubServer) -> None:
    stub.route("GET", "/jobs/overview", Reply(200, {"jobs": [{"jid": JOB, "name": "n", "state": "RUNNING"}]}))
    rest = client(stub.url)
    for _ in range(5):
        assert rest.jobs_overview()[0].state == "RUNNING"
    assert len(set(_client_ports(stub))) == 1


def test_a_half_read_connection_is_not_reused(stub: StubServer) -> None:
    """A call that stops reading (size limit) must close its connection: the rest of that body must not
    be read as the next call's answer."""
    big = {"jobs": [{"jid": JOB, "name": "x" * 5000, "state": "RUNNING"}]}
    small = {"jobs": [{"jid": JOB, "name": "small", "state": "FAILED"}]}
    answers = iter([Reply(200, big), Reply(200, small)])
    stub.route("GET", "/jobs/overview", lambda _request: next(answers))
    rest = client(stub.url, max_response_bytes=1024)
    with pytest.raises(FlinkResponseTooLarge):
        rest.jobs_overview()
    job = rest.jobs_overview()[0]
    assert (job.name, job.state) == ("small", "FAILED")
    assert len(set(_client_ports(stub))) == 2


def test_an_error_answer_keeps_the_connection(stub: StubServer) -> None:
    stub.route("GET", "/jobs/overview", Reply(500, {"errors": ["Internal server error."]}))
    rest = client(stub.url)
    for _ in range(3):
        with pytest.raises(FlinkRestError):
            rest.jobs_overview()
    assert len(set(_client_ports(stub))) == 1


def test_query_parameters_and_a_base_path_reach_the_server(stub: StubServer) -> None:
    stub.route("GET", f"/proxy/flink/jobs/{JOB}/exceptions", Reply(200, {"exceptionHistory": {"entries": []}}))
    stub.route("PATCH", f"/proxy/flink/jobs/{JOB}", Reply(202, {}))
    rest = client(stub.url + "/proxy/flink/")
    assert rest.job_exceptions(JOB, max_exceptions=3) == []
    assert rest.cancel(JOB) is True
    assert [(r.method, r.path, r.query) for r in stub.requests] == [
        ("GET", f"/proxy/flink/jobs/{JOB}/exceptions", "maxExceptions=3"),
        ("PATCH", f"/proxy/flink/jobs/{JOB}", "mode=cancel")]
    assert all(r.headers.get("Accept") == "application/json" for r in stub.requests)


def test_json_bodies_are_sent_as_json(stub: StubServer) -> None:
    stub.route("POST", f"/jobs/{JOB}/savepoints", Reply(202, {"request-id": "f" * 32}))
    client(stub.url).trigger_savepoint(JOB, "file:///sp")
    sent = stub.requests[0]
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json()["target-directory"] == "file:///sp"


def test_a_base_url_that_is_not_a_url_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="base URL"):
        FlinkRestClient("ftp://flink:8081")
    with pytest.raises(ValueError, match="base URL"):
        FlinkRestClient("http://")


def test_https_verifies_the_flink_certificate(tls_cert: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An untrusted certificate is refused before any request is sent; SSL_CERT_FILE adds a trusted CA."""
    cert, _key = tls_cert
    with StubServer(tls=tls_cert) as server:
        server.route("GET", "/config", Reply(200, {"flink-version": "2.3.0"}))
        url = f"https://localhost:{server.port}"
        with pytest.raises(FlinkUnreachable) as info:
            client(url).cluster_config()
        assert "cannot connect" in str(info.value) and not server.requests
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        assert client(url).cluster_config().flink_version == "2.3.0"
        with pytest.raises(FlinkUnreachable):  # the certificate names localhost, not 127.0.0.1
            client(f"https://127.0.0.1:{server.port}").cluster_config()


def test_no_proxy_from_the_environment(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    stub.route("GET", "/config", Reply(200, {"flink-version": "2.3.0"}))
    assert client(stub.url).cluster_config().flink_version == "2.3.0"


def test_the_pool_keeps_at_most_max_idle_connections_least_recently_used_out() -> None:
    pool = CurlPool(max_idle=2)
    with StubServer() as a, StubServer() as b, StubServer() as c:
        for stub in (a, b, c):
            stub.route("GET", "/config", Reply(200, {"flink-version": "2.3.0"}))
        clients = {stub: client(stub.url, transport=pool) for stub in (a, b, c)}
        for stub in (a, b, c, b, c):  # a is the least recently used when c comes in
            assert clients[stub].cluster_config().flink_version == "2.3.0"
        assert pool.idle() == 2
        clients[a].cluster_config()
        assert len(set(_client_ports(a))) == 2  # its connection was closed: a new one
        assert len(set(_client_ports(b))) == 1 and len(set(_client_ports(c))) == 1
        pool.close()
        assert pool.idle() == 0
        clients[b].cluster_config()  # a closed pool's clients still work, on a new connection
        assert len(set(_client_ports(b))) == 2


def test_connections_are_not_shared_between_concurrent_calls(stub: StubServer) -> None:
    """Two calls in flight at once each get their own connection (a handle serves one exchange at a time)."""
    gate = threading.Barrier(2, timeout=5)

    def wait_for_both(_request: Request) -> Reply:
        gate.wait()
        return Reply(200, {"taskmanagers": 1, "slots-total": 2, "slots-available": 1})

    stub.route("GET", "/overview", wait_for_both)
    pool = CurlPool()
    rest = client(stub.url, transport=pool)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(rest.overview().slots_total)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [2, 2]
    assert len(set(_client_ports(stub))) == 2 and pool.idle() == 2
