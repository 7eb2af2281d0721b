"""Extension points (the seed's "extensible architecture"): custom validators and resource listeners,
discovered through Python entry points so third parties ship them as ordinary packages.

* `flink_sync.validators`: a callable `(kind, resource, spec, effective_config) -> str | None`; a returned
  string is reported exactly like a built-in validation error.
* `flink_sync.listeners`: an object or callable; `on_status_change(kind, resource, old_status, new_status)`
  and `on_event(kind, resource, event)` are called for each change (a plain callable gets
  `(kind, resource, old_status, new_status, events)`).
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("flink_sync.plugins")


def _load(group: str) -> list[Any]:
    loaded = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = entry.load()
            loaded.append(obj() if isinstance(obj, type) else obj)
            log.info("loaded %s plugin %s", group, entry.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the server
            log.error("could not load %s plugin %s: %s", group, entry.name, exc)
    return loaded


def load_validators() -> tuple[Any, ...]:
    return tuple(_load("flink_sync.validators"))


def load_listeners() -> tuple[Any, ...]:
    return tuple(_load("flink_sync.listeners"))


def notify(listeners: tuple[Any, ...], kind: str, resource: dict[str, Any], old_status: dict[str, Any],
           new_status: dict[str, Any], events: list[Any]) -> None:
    """Tell every listener about a status change and the events of this sync; listener errors are logged."""
    changed = old_status != new_status
    if not changed and not events:
        return
    for listener in listeners:
        try:
            if hasattr(listener, "on_status_change") or hasattr(listener, "on_event"):
                if changed and hasattr(listener, "on_status_change"):
                    listener.on_status_change(kind, resource, old_status, new_status)
                for event in events:
                    if hasattr(listener, "on_event"):
                        listener.on_event(kind, resource, event)
            else:
                listener(kind, resource, old_status, new_status, events)
        except Exception as exc:  # noqa: BLE001
            log.error("listener %r failed: %s", listener, exc)
