"""Extension points: a third-party validator and listener found through entry points."""
from __future__ import annotations

import copy
import importlib
from importlib import metadata

import pytest

from hooks import plugins

from . import plugin_fixtures
from .helpers import example_resources

DIST = """Metadata-Version: 2.1
Name: flink-sync-test-plugin
Version: 1.0
"""
ENTRY_POINTS = """[flink_sync.validators]
team-label = tests.plugin_fixtures:require_team_label

[flink_sync.listeners]
recorder = tests.plugin_fixtures:RecordingListener
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    dist = tmp_path / "flink_sync_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(DIST)
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugin_fixtures.RECORDED.clear()
    yield
    importlib.invalidate_caches()


def test_plugins_are_discovered(installed_plugin):
    names = {ep.name for ep in metadata.entry_points(group="flink_sync.validators")}
    assert "team-label" in names
    assert len(plugins.load_validators()) == 1 and len(plugins.load_listeners()) == 1


def test_custom_validator_error_is_reported_like_a_built_in_one(installed_plugin):
    from hooks.app import create_app
    from hooks.settings import Settings
    app = create_app(Settings(rest_url_template="http://127.0.0.1:9/{name}"))
    resource = copy.deepcopy(example_resources("FlinkDeployment")[0][1])
    resource["metadata"].update(namespace="default", uid="u", generation=1)
    response = app.test_client().post("/sync/flinkdeployment", json={"parent": resource})
    assert response.status_code == 200
    status = response.get_json()["status"]
    assert "metadata.labels.team" in status["error"] and status["lifecycleState"] == "FAILED"
    assert response.get_json()["children"] == []
    resource["metadata"]["labels"] = {"team": "data"}
    ok = app.test_client().post("/sync/flinkdeployment", json={"parent": resource}).get_json()
    assert "error" not in ok["status"] and ok["children"]
    # The listener saw the status changes and the events.
    assert ("status", "FlinkDeployment", resource["metadata"]["name"], "FAILED") in plugin_fixtures.RECORDED
    assert ("event", "FlinkDeployment", resource["metadata"]["name"], "ValidationError") in plugin_fixtures.RECORDED
    assert ("event", "FlinkDeployment", resource["metadata"]["name"], "Submit") in plugin_fixtures.RECORDED
