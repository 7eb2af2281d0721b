"""Pods whose image is not Flink: the node agent runs their command as host processes (docs/sandbox.md)."""
from __future__ import annotations

import json

import pytest
import yaml

from .conftest import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]


def pod(name: str, script: str, policy: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "debian:bookworm", "command": ["sh", "-c", script],
                                     "env": [{"name": "MSG", "value": "hello"},
                                             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}


def test_exit_code_and_restart_policy(sandbox: Sandbox) -> None:
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump_all([
        pod("fails-once", 'echo "$MSG from $POD"; exit 3', "Never"),
        pod("keeps-running", "sleep 300", "Always"),
    ]))

    def failed() -> dict:
        st = (sandbox.get("pod", "fails-once") or {}).get("status") or {}
        return st if st.get("phase") == "Failed" else {}
    st = sandbox.until("pod Failed", failed, timeout=60)
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    logs = list((sandbox.state / "node" / "generic").glob("default-fails-once/main.log"))
    assert logs and "hello from fails-once" in logs[0].read_text()

    sandbox.until("pod Ready", lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in (
        (sandbox.get("pod", "keeps-running") or {}).get("status") or {}).get("conditions") or []), timeout=60)
    sandbox.kubectl("delete", "pod", "fails-once", "keeps-running", "--wait=false")
    sandbox.until("pods gone", lambda: not json.loads(sandbox.kubectl("get", "pods", "-l", "app in (fails-once,keeps-running)",
                                                                      "-o", "json"))["items"], timeout=60)
