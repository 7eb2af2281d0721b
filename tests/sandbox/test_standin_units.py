"""Unit tests of the sandbox stand-in's pieces that need no cluster: Metacontroller's three-way merge
(metacontroller.md §3.2) and the work queue rules (§4.4)."""
from __future__ import annotations

import json
import threading
import time

from sandbox.apply import LAST_APPLIED, for_create, merge
from sandbox.metacontroller import WorkQueue, _duration_s, group_key, selector_matches


def observed_from(desired: dict, server_added: dict | None = None) -> dict:
    obj = for_create(desired)
    obj["metadata"].update({"uid": "u1", "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"})
    for k, v in (server_added or {}).items():
        obj.setdefault("spec", {})[k] = v
    obj["status"] = {"replicas": 1}
    return obj


def test_unchanged_desired_is_no_update() -> None:
    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}, "data": {"x": "1"}}
    observed = observed_from(desired)
    assert merge(observed, desired) == observed


def test_server_defaults_are_kept_and_removed_fields_dropped() -> None:
    desired = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
               "spec": {"replicas": 2, "paused": False}}
    observed = observed_from(desired, {"revisionHistoryLimit": 10})
    new_desired = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": 3}}
    merged = merge(observed, new_desired)
    assert merged["spec"] == {"replicas": 3, "revisionHistoryLimit": 10}  # paused was ours: removed
    assert merged["status"] == {"replicas": 1}  # status and system metadata come from the observed object
    assert merged["metadata"]["resourceVersion"] == "7"
    assert json.loads(merged["metadata"]["annotations"][LAST_APPLIED]) == new_desired


def test_list_map_merge_on_name_keeps_others_items() -> None:
    desired = {"kind": "X", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "m", "image": "i1"}]}}
    observed = observed_from(desired)
    observed["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    observed["spec"]["containers"].append({"name": "injected", "image": "sidecar"})
    merged = merge(observed, {"kind": "X", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "m", "image": "i2"}]}})
    assert merged["spec"]["containers"] == [
        {"name": "m", "image": "i2", "terminationMessagePath": "/dev/termination-log"},
        {"name": "injected", "image": "sidecar"}]


def test_plain_list_is_replaced() -> None:
    desired = {"kind": "X", "metadata": {"name": "a"}, "spec": {"args": ["a", "b"]}}
    observed = observed_from(desired)
    assert merge(observed, {"kind": "X", "metadata": {"name": "a"}, "spec": {"args": ["c"]}})["spec"]["args"] == ["c"]


def test_group_keys_and_selectors_and_durations() -> None:
    assert group_key("Deployment", "apps/v1") == "Deployment.apps/v1"
    assert group_key("ConfigMap", "v1") == "ConfigMap.v1"
    assert selector_matches({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["2"]}]}, {"a": "1"})
    assert _duration_s("10s") == 10 and _duration_s("1m30s") == 90 and _duration_s("500ms") == 0.5
    assert _duration_s(None) == 10


def test_queue_never_hands_out_a_key_twice_at_once() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get() == "a"
    q.add("a")  # while processing: collapses into one more run afterwards
    q.add("a")
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.3)
    assert got == []  # not handed out while "a" is processing
    q.done("a")
    t.join(timeout=5)
    assert got == ["a"]
    q.done("a")
    q.add_after("b", 0.2)
    start = time.monotonic()
    assert q.get() == "b" and time.monotonic() - start >= 0.15
    q.shutdown()


def test_retry_after_parsing() -> None:
    from sandbox.metacontroller import _retry_after
    assert _retry_after("7") == 7 and _retry_after(None) == 0 and _retry_after("junk") == 0


def test_queue_keeps_one_timer_per_key() -> None:
    """client-go's delaying queue: a key already waiting keeps the earlier time, so repeated resyncAfterSeconds
    answers never start parallel resync chains."""
    q = WorkQueue()
    q.add_after("k", 0.3)
    q.add_after("k", 0.3)
    q.add_after("k", 0.1)  # earlier: replaces the waiting time
    assert q.get() == "k"
    q.done("k")
    time.sleep(0.5)  # the superseded timers have come due by now
    assert len(q) == 0
    q.shutdown()


def test_api_client_token_bucket_and_counters() -> None:
    from sandbox.kube import TokenBucket, _counted_kind
    bucket = TokenBucket(qps=1000, burst=3)
    for _ in range(3):
        bucket.take()
    assert bucket.waited_s == 0  # the burst
    bucket.take()
    assert bucket.waited_s > 0  # then one token per 1/qps
    assert _counted_kind("GET", "/api/v1/namespaces/default/pods") == "LIST pods"
    assert _counted_kind("PUT", "/apis/flink.apache.org/v1beta1/namespaces/d/flinkdeployments/x/status") == \
        "PUT flinkdeployments/status"
    assert _counted_kind("POST", "/apis/apps/v1/namespaces/d/deployments") == "POST deployments"


def test_flink_rest_stub_reads_the_job_id_of_either_config_format() -> None:
    from sandbox.flinkstub import job_id_of
    assert job_id_of('$internal.pipeline.job-id: "00000001c64eb529abb2721e863d2e07"\n') == \
        "00000001c64eb529abb2721e863d2e07"
    assert job_id_of("$internal:\n  pipeline:\n    job-id: 00000001C64EB529ABB2721E863D2E07\n") == \
        "00000001c64eb529abb2721e863d2e07"
    assert job_id_of("parallelism.default: 2\n") is None
