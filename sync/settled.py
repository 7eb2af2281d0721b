"""A resync that would change nothing, answered without running the sync again.

Most syncs of a running FlinkDeployment are resyncs that change nothing: the answer is the status it was given
and the children Metacontroller already applied. The sync is a pure function of its inputs (the parent, the
observed children, what Flink and the pods report, the settings) and of the time, which it only compares
(sync/clock.py). So once a sync's answer was such a fixed point, a later sync with the same inputs, at a time
where every comparison with the clock comes out the same, gives the same answer.

The record of it is `status.flinkSync.settled` (`SettledRecord`; everything a later sync needs lives in the
status):

* `digest`: a hash of every input but the time (the parent without this record, its `resourceVersion` and
  `managedFields`; the observed children; the Flink observation; the related pods and session jobs; the
  settings and `CoreSettings.memo_key`, which names the core's code);
* `since`/`until`: the times (ms) over which the answer holds (absent: unbounded);
* `resyncMs`, `wakeAt`: the answer's resync before it is shortened to the time left until `wakeAt` (the next
  periodic savepoint), which a kept answer recomputes for its own time (`jobsync.resync_toward`).

It is written only by a sync whose answer was checked to be a fixed point: no action, no event, the status it
was given (but for this record) and, for every observed child and only those, exactly what Metacontroller
last applied (its `metacontroller.k8s.io/last-applied-configuration`, up to the namespace and
`controller-uid` label Metacontroller adds). Writing it costs one status write when a deployment settles. A
later sync whose digest and time match answers the incoming status and the last-applied children: no Flink
action, no Kubernetes write, and none of the core's work. Anything that differs runs the whole sync.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

try:
    import orjson
except ImportError:  # (a hard dependency; the benchmark hides it to measure the stdlib fallback)
    orjson = None  # type: ignore[assignment]

from .clock import NEVER, Window
from .jobsync import resync_toward
from .model import CoreSettings, FlinkObservation, SyncResult
from .observed import all_objects
from .records import SettledRecord, settled_of, with_settled, without_settled

LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"
_VOLATILE_META = ("resourceVersion", "managedFields")


def digest(parent: dict[str, Any], children: dict[str, Any] | None, flink: FlinkObservation | None,
           settings: CoreSettings, session_jobs: list[dict[str, Any]] | None,
           pods: list[dict[str, Any]] | None) -> str | None:
    """The hash of a sync's inputs but the time, or None when answers are not kept (no `memo_key`; a validator
    plugin, whose verdict is not the core's code; inputs orjson cannot encode exactly: integers past 64 bits;
    no orjson)."""
    if not settings.memo_key or settings.validators or orjson is None:
        return None
    inputs = (settings.memo_key, _parent_view(parent), children or {}, flink, session_jobs or [], pods or [],
              settings.operator_defaults, settings.progress_interval_s, settings.stable_interval_s)
    try:
        text = orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return hashlib.sha256(text).hexdigest()[:32]


def _parent_view(parent: dict[str, Any]) -> dict[str, Any]:
    """The parent as the sync reads it: without the record and what every status write changes."""
    view = dict(parent)
    meta = parent.get("metadata")
    if isinstance(meta, dict):
        view["metadata"] = {key: value for key, value in meta.items() if key not in _VOLATILE_META}
    status = parent.get("status")
    if isinstance(status, dict):
        view["status"] = without_settled(status)
    return view


def answer(parent: dict[str, Any], children: dict[str, Any] | None, key: str, now_ms: int) -> SyncResult | None:
    """The kept answer, when the status records one for these inputs and this time; None: run the sync."""
    record = settled_of(parent.get("status"))
    if record is None or record.digest != key:
        return None
    if (record.since is not None and now_ms < record.since) or (record.until is not None and now_ms >= record.until):
        return None
    if record.resync_ms is None:
        return None
    applied = _last_applied(children)
    if applied is None:
        return None
    resync = record.resync_ms / 1000
    return SyncResult(status=dict(parent["status"]), children=applied,
                      resync_after_seconds=resync_toward(resync, record.wake_at, now_ms), resync_base=resync,
                      wake_at_ms=record.wake_at, kept=True)


def _last_applied(children: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """What Metacontroller last applied of every observed child; None when a child does not say."""
    found = []
    for _kind, _name, obj in all_objects(children):
        applied = _applied(obj)
        if applied is None:
            return None
        found.append(applied)
    return found


def _applied(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """An observed child's last-applied configuration, or None. (orjson reads what Metacontroller wrote: children
    the API server took, whose numbers fit 64 bits.)"""
    text = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(text, str):
        return None
    try:
        applied = orjson.loads(text) if orjson is not None else json.loads(text)
    except ValueError:  # (orjson.JSONDecodeError is one)
        return None
    return applied if isinstance(applied, dict) else None


def keep(parent: dict[str, Any], children: dict[str, Any] | None, key: str, window: Window,
         result: SyncResult) -> SyncResult:
    """Record the answer in its status when it is a fixed point that holds beyond this instant."""
    status_in = parent.get("status")
    if window.escaped is not None or result.actions or result.events or result.finalized is not None \
            or not isinstance(status_in, dict):
        return result
    if without_settled(result.status) != without_settled(status_in):
        return result
    base, wake_at = result.resync_base, result.wake_at_ms
    if base is None or base * 1000 != round(base * 1000) or \
            resync_toward(base, wake_at, window.at) != result.resync_after_seconds:
        return result  # the resync was set some other way: a kept answer could not give it again
    if not _children_as_applied(parent, children, result.children):
        return result
    record = SettledRecord(digest=key, since=window.low if window.low > -NEVER else None,
                           until=window.high if window.high < NEVER else None, resync_ms=round(base * 1000),
                           wake_at=wake_at)
    result.status = with_settled(result.status, record)
    return result


def _children_as_applied(parent: dict[str, Any], children: dict[str, Any] | None,
                         answered: list[dict[str, Any]]) -> bool:
    """Whether the answer's children are exactly the observed ones, each as Metacontroller last applied it."""
    observed = {(str(obj.get("kind")), name): obj for _kind, name, obj in all_objects(children)}
    if len(observed) != len(answered):
        return False
    meta = parent.get("metadata") or {}
    for child in answered:
        applied = _applied(observed.get((str(child.get("kind")), str((child.get("metadata") or {}).get("name")))))
        if applied is None or (applied != child and applied != _as_metacontroller_applies(child, meta)):
            return False
    return True


def _as_metacontroller_applies(child: dict[str, Any], parent_meta: dict[str, Any]) -> dict[str, Any]:
    """The child as Metacontroller records it: the parent's namespace when it has none, and (generateSelector)
    the `controller-uid` label."""
    meta = dict(child.get("metadata") or {})
    if not meta.get("namespace") and parent_meta.get("namespace"):
        meta["namespace"] = parent_meta["namespace"]
    labels = dict(meta.get("labels") or {})
    if "controller-uid" not in labels and parent_meta.get("uid"):
        labels["controller-uid"] = parent_meta["uid"]
        meta["labels"] = labels
    return {**child, "metadata": meta}
