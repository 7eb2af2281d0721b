"""A real entry-point plugin for tests: a validator and a listener, installed into a temporary
site directory as a distribution with `entry_points.txt`, the way a third-party package would ship them."""
from __future__ import annotations

RECORDED: list[tuple] = []


def require_team_label(kind, resource, spec, config):
    """Custom rule: every resource needs a `team` label."""
    labels = ((resource or {}).get("metadata") or {}).get("labels") or {}
    if "team" not in labels:
        return "metadata.labels.team: every Flink resource needs a team label (rule from flink-sync-test-plugin)"
    return None


class RecordingListener:
    def on_status_change(self, kind, resource, old_status, new_status):
        RECORDED.append(("status", kind, resource["metadata"]["name"], new_status.get("lifecycleState")))

    def on_event(self, kind, resource, event):
        RECORDED.append(("event", kind, resource["metadata"]["name"], event.reason))
