"""Flink 2.x on the sandbox: the quick start (create, Ready, REST) and delete, on the pinned 2.3 distribution."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml

from tests.flinkbed.dist import flink_dist
from tests.flinkbed.job import build_counter_jar

from .conftest import Sandbox
from .manifests import counter_deployment

pytestmark = [pytest.mark.sandbox, pytest.mark.flink, pytest.mark.timeout(600)]
NAME = "counter-v2"


def test_flink2_deployment_ready_and_deleted(sandbox: Sandbox, tmp_path: Path) -> None:
    jar = build_counter_jar(flink_dist("2.3"))
    sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump(counter_deployment(
        NAME, jar, version="2.3", slots=1, upgrade_mode="stateless",
        config={"state.savepoints.dir": f"file://{tmp_path}/savepoints"})))
    out = sandbox.kubectl("wait", "--for=condition=Ready", f"flinkdeployment/{NAME}", "--timeout=240s", timeout=300,
                          check=False)
    assert "condition met" in out, f"{out}\n{sandbox.get('flinkdeployment', NAME)}\n{sandbox.logs()}"
    config = requests.get(f"{sandbox.proxy}/default/{NAME}-rest/config", timeout=10).json()
    assert config["flink-version"].startswith("2.3")
    sandbox.kubectl("delete", "flinkdeployment", NAME, "--wait=false")
    sandbox.until("deleted", lambda: sandbox.get("flinkdeployment", NAME) is None, timeout=180, interval=2)
    sandbox.until("pods gone", lambda: not json.loads(
        sandbox.kubectl("get", "pods", "-l", f"app={NAME}", "-o", "json"))["items"], timeout=120, interval=2)
