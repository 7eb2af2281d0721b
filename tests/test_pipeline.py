"""The hook pipeline with its ports filled in (hooks/pipeline.py): the in-memory Flink behind `FlinkApi`, a jar
fetcher, Kubernetes side effects and a clock, through the real app. And `FlinkApi` itself: the REST client and
the fake Flink offer every operation the pipeline uses, with the same parameters."""
from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest

from hooks import artifacts
from hooks.app import create_app
from hooks.fake_flink import FakeFlink
from hooks.flink_api import FlinkApi
from hooks.flink_rest import FlinkRestClient
from hooks.settings import Settings

from .test_sessionjob_core import JOB, SESSION

RELATED = {"FlinkDeployment.flink.apache.org/v1beta1": {"session": SESSION}}


def _operations(cls: type) -> dict[str, list[tuple[str, Any, Any]]]:
    names = [name for name in vars(FlinkApi) if not name.startswith("_") and callable(getattr(FlinkApi, name))]
    return {name: [(p.name, p.kind, p.default) for p in inspect.signature(getattr(cls, name)).parameters.values()]
            for name in names}


@pytest.mark.parametrize("implementation", [FlinkRestClient, FakeFlink])
def test_both_flink_apis_offer_every_operation_with_the_same_parameters(implementation) -> None:
    assert _operations(implementation) == _operations(FlinkApi)


class Kube:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.ha_deleted: list[tuple[str, str]] = []
        self.job_graphs_removed: list[tuple[str, str]] = []

    def emit(self, parent: dict[str, Any], events: list[Any]) -> None:
        self.events += [event.reason for event in events]

    def delete_ha_data(self, name: str, namespace: str) -> None:
        self.ha_deleted.append((name, namespace))

    def remove_ha_job_graphs(self, name: str, namespace: str) -> None:
        self.job_graphs_removed.append((name, namespace))


class Fetcher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.fetched: list[str] = []

    def __call__(self, uri: str, *, allowlist: Any, max_bytes: int, timeout: float) -> tuple[str, bytes]:
        self.fetched.append(uri)
        if self.fail:
            raise artifacts.ArtifactError(f"{uri}: HTTP 404")
        return "counter.jar", b"PK"


def _app(flink: FakeFlink, fetcher: Fetcher, kube: Kube, urls: list[str]) -> Any:
    def connect(url: str) -> FakeFlink:
        urls.append(url)
        return flink
    settings = Settings(rest_url_template="http://{name}-rest.{namespace}:8081")
    return create_app(settings, flink=connect, clock=lambda: 1_764_000_000_000, side_effects=kube,
                      jar_fetcher=fetcher).test_client()


def _sync(client: Any, parent: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/sync/flinksessionjob", json={"parent": parent, "related": RELATED})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    status: dict[str, Any] = answer.get_json()["status"]
    parent["status"] = status
    return status


def test_a_session_job_is_submitted_as_an_ordinary_action_through_the_ports() -> None:
    flink, fetcher, kube = FakeFlink("session"), Fetcher(), Kube()
    urls: list[str] = []
    client, parent = _app(flink, fetcher, kube, urls), copy.deepcopy(dict(JOB))
    job_id = _sync(client, parent)["jobStatus"]["jobId"]
    assert fetcher.fetched == [] and flink.submissions == [], "nothing is submitted before the id is in status"
    _sync(client, parent)
    assert fetcher.fetched == [JOB["spec"]["job"]["jarURI"]]
    assert [s["job_id"] for s in flink.submissions] == [job_id] and flink.jobs[job_id].state == "RUNNING"
    assert flink.jars == {}, "the uploaded jar is deleted after the run"
    assert set(urls) == {"http://session-rest.default:8081"}
    for _ in range(3):
        _sync(client, parent)
    assert parent["status"]["lifecycleState"] == "STABLE" and "error" not in parent["status"]
    assert len(flink.submissions) == 1


def test_a_failed_submission_ends_up_in_status_and_is_retried_with_the_same_job_id() -> None:
    flink, fetcher, kube = FakeFlink("session"), Fetcher(fail=True), Kube()
    client, parent = _app(flink, fetcher, kube, []), copy.deepcopy(JOB)
    job_id = _sync(client, parent)["jobStatus"]["jobId"]
    status = _sync(client, parent)
    assert "HTTP 404" in status["error"] and "SubmissionException" in status["error"]
    assert not status["flinkSync"].get("submitted") and flink.jobs == {}
    fetcher.fail = False
    _sync(client, parent)
    assert list(flink.jobs) == [job_id] and flink.jobs[job_id].state == "RUNNING"
