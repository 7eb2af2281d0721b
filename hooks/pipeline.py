"""The sync pipeline of both kinds, in one place: plan the observation → call Flink → the pure core → carry out
the actions → side effects (Events) → listeners.

Everything outside the process is a port (`Ports`), so tests and the benchmark fill them in:
* `flink`: a Flink cluster's REST base URL → its `FlinkApi` (the REST client, or hooks/fake_flink.FakeFlink);
* `fetch_jar`: fetches a session job's jar (`artifacts.fetch_jar` in the server);
* `kube`: Kubernetes side effects that are not children: Events and HA ConfigMap cleanup (`KubeSideEffects`);
* `clock`: now, in epoch milliseconds.

HTTP (routes, limits, auth, JSON, metrics endpoints) is hooks/app.py's; what the pipeline refuses it raises as
`Unusable` (the app answers 422, and nothing was done).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sync import sessionjob, statesnapshot
from sync.autoscaler import deployment as autoscaling
from sync.autoscaler.records import CycleSummary, JobMetrics
from sync.deployment import plan_observation, sync_deployment
from sync.intake import StatusUnusable
from sync.model import Action, CoreSettings, Event, SyncResult
from sync.observed import by_kind
from sync.render import labels_common
from sync.status import error_json

from . import artifacts, autoscaler_io, flink_io, plugins, submit
from .flink_api import FlinkApi
from .flink_rest import FlinkRestClient, FlinkRestError, OnCall
from .settings import Settings
from .submit import JarFetcher

FlinkFactory = Callable[[str], FlinkApi]
Clock = Callable[[], int]
OnAction = Callable[[str, bool], None]
OnAutoscalerCycle = Callable[[CycleSummary], None]


class KubeEffects(Protocol):
    """Best-effort Kubernetes calls that are not children (hooks/kube.py)."""

    def emit(self, parent: dict[str, Any], events: list[Event]) -> None: ...

    def delete_ha_data(self, name: str, namespace: str) -> None: ...

    def remove_ha_job_graphs(self, name: str, namespace: str) -> None: ...


@dataclass(frozen=True)
class Ports:
    flink: FlinkFactory
    fetch_jar: JarFetcher
    kube: KubeEffects
    clock: Clock


def wall_clock() -> int:
    return int(time.time() * 1000)


def rest_clients(settings: Settings, on_call: OnCall | None = None) -> FlinkFactory:
    """The server's Flink port: a REST client per call (cheap) over one keep-alive pool shared by the worker's
    threads, with the server's timeouts and size limit."""
    from .http_transport import CurlPool
    pool = CurlPool(max_idle=settings.rest_max_idle_connections)

    def client_for(url: str) -> FlinkApi:
        return FlinkRestClient(url, connect_timeout=settings.rest_connect_timeout_s,
                               read_timeout=settings.rest_read_timeout_s,
                               max_response_bytes=settings.rest_max_response_bytes, on_call=on_call,
                               transport=pool)
    return client_for


def server_ports(settings: Settings, *, flink: FlinkFactory | None = None, fetch_jar: JarFetcher | None = None,
                 kube: KubeEffects | None = None, clock: Clock | None = None,
                 on_rest_call: OnCall | None = None) -> Ports:
    """The server's ports, any of them replaced."""
    if kube is None:
        from .kube import KubeSideEffects
        kube = KubeSideEffects(settings.events_enabled)
    return Ports(flink=flink or rest_clients(settings, on_rest_call), fetch_jar=fetch_jar or artifacts.fetch_jar,
                 kube=kube, clock=clock or wall_clock)


def cluster_pods_rule(name: str) -> dict[str, Any]:
    """The customize rule that relates a cluster's pods (JobManager and TaskManagers: the labels every pod of a
    rendered cluster carries), so the sync sees what the kubelet and the scheduler report on them."""
    return {"apiVersion": "v1", "resource": "pods", "labelSelector": {"matchLabels": labels_common(name)}}


def cluster_pods(related: dict[str, Any] | None, name: str) -> list[dict[str, Any]]:
    """The related pods of cluster `name` (a session job's request also carries other related objects)."""
    wanted = labels_common(name).items()
    return [pod for pod in by_kind(related, "Pod").values()
            if wanted <= (((pod.get("metadata") or {}).get("labels") or {}).items())]


class Unusable(Exception):
    """This request cannot be synced (a recorded status the core cannot continue from, or more children than
    the limit): nothing was done, and Metacontroller must apply nothing (HTTP 422)."""


@contextmanager
def _unusable_status(what: str) -> Iterator[None]:
    """A recorded status the core cannot read is `Unusable`, not an internal error."""
    try:
        yield
    except StatusUnusable as exc:
        raise Unusable(str(exc)) from None
    except RecursionError:
        # orjson parses at most 1,024 levels; a status nested almost that deep cannot be copied or compared.
        raise Unusable("status: nested too deeply to continue from") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise Unusable(f"{what} ({type(exc).__name__}: {exc})") from None


class Pipeline:
    """One sync of a FlinkDeployment or a FlinkSessionJob, from the request's objects to the result."""

    def __init__(self, settings: Settings, ports: Ports, core_settings: Callable[[], CoreSettings],
                 listeners: tuple[Any, ...] = (), on_action: OnAction | None = None,
                 on_autoscaler_cycle: OnAutoscalerCycle | None = None) -> None:
        self.settings = settings
        self.ports = ports
        self.core_settings = core_settings
        self.listeners = listeners
        self.on_action = on_action
        self.on_autoscaler_cycle = on_autoscaler_cycle
        self._submitter = functools.partial(submit.submit_job, settings=settings, fetcher=ports.fetch_jar)

    def sync_deployment(self, parent: dict[str, Any], children: dict[str, Any] | None,
                        related: dict[str, Any] | None, finalizing: bool) -> SyncResult:
        meta = parent["metadata"]
        rest_url = self.settings.rest_url(meta["name"], meta.get("namespace") or "default")
        core_settings = self.core_settings()
        # Off (most deployments), the three autoscaler steps below do nothing: its settings are read once to know.
        autoscaler = not finalizing and autoscaling.settings_of(parent, core_settings.operator_defaults) is not None
        if autoscaler:
            # The autoscaler's stored overrides are part of the spec the core reconciles (Apache does the same).
            parent = autoscaling.with_stored_overrides(parent, children, core_settings.operator_defaults)
            # Its cycle (below) changes the answer after the core: the core keeps no answer (sync/settled.py).
            core_settings = dataclasses.replace(core_settings, memo_key="")
        with _unusable_status("status.flinkSync: unreadable"):
            plan = plan_observation(parent, children)
        flink = self.ports.flink(rest_url)
        observation = flink_io.observe(flink, plan)
        job_metrics, metrics_error = self._autoscaler_metrics(flink, parent, core_settings) if autoscaler else \
            (None, None)
        session_jobs = [job for job in by_kind(related, "FlinkSessionJob").values()
                        if (job.get("spec") or {}).get("deploymentName") == meta["name"]]
        now = self.ports.clock()
        with _unusable_status("status: cannot continue from the recorded status"):
            result = sync_deployment(parent, children, observation, now, core_settings,
                                     finalizing=finalizing, session_jobs=session_jobs,
                                     pods=cluster_pods(related, meta["name"]))
        if autoscaler:
            cycle = autoscaling.apply(parent, children, result, job_metrics, metrics_error, now,
                                      core_settings.operator_defaults)
            if cycle is not None and self.on_autoscaler_cycle is not None:
                self.on_autoscaler_cycle(cycle)
        if len(result.children) > self.settings.max_children:
            raise Unusable(f"{len(result.children)} children exceed the limit of {self.settings.max_children}")
        self._act("FlinkDeployment", parent, result, flink)
        return result

    @staticmethod
    def _autoscaler_metrics(flink: FlinkApi, parent: dict[str, Any], core_settings: CoreSettings
                            ) -> tuple[JobMetrics | None, str | None]:
        """The running job's metrics when the autoscaler is on; a failed call is reported, never raised."""
        job_id = autoscaling.metrics_job(parent, core_settings.operator_defaults)
        if job_id is None:
            return None, None
        try:
            return autoscaler_io.collect_job_metrics(flink, job_id), None
        except FlinkRestError as exc:
            return None, str(exc)

    def sync_session_job(self, parent: dict[str, Any], related: dict[str, Any] | None,
                         finalizing: bool, children: dict[str, Any] | None = None) -> SyncResult:
        meta = parent["metadata"]
        deployment_name = (parent.get("spec") or {}).get("deploymentName")
        session = by_kind(related, "FlinkDeployment").get(str(deployment_name)) if deployment_name else None
        rest_url = self.settings.rest_url(str(deployment_name), meta.get("namespace") or "default")
        with _unusable_status("status.flinkSync: unreadable"):
            plan = sessionjob.plan_observation(parent, session)
        flink = self.ports.flink(rest_url)
        observation = flink_io.observe(flink, plan)
        with _unusable_status("status: cannot continue from the recorded status"):
            result = sessionjob.sync_session_job(parent, session, observation, self.ports.clock(),
                                                 self.core_settings(), finalizing=finalizing,
                                                 jar_allowlist=self.settings.jar_uri_allowlist,
                                                 session_pods=cluster_pods(related, str(deployment_name)),
                                                 children=children)
        self._act("FlinkSessionJob", parent, result, flink)
        return result

    def sync_snapshot(self, parent: dict[str, Any], related: dict[str, Any] | None, finalizing: bool) -> SyncResult:
        """A FlinkStateSnapshot: resolve the job it references (related by the customize hook), poll its
        trigger, run the core, then send the trigger or the disposal and fold a failed call into the status."""
        meta = parent["metadata"]
        namespace = meta.get("namespace") or "default"
        settings = self.core_settings()
        with _unusable_status("status: cannot continue from the recorded status"):
            target = self._snapshot_target(parent, related, namespace, settings)
            plan = statesnapshot.plan_poll(parent)
        poll = None
        if plan is not None:
            poll = flink_io.poll_snapshot(self.ports.flink(self.settings.rest_url(plan.cluster, namespace)), plan)
        now = self.ports.clock()
        with _unusable_status("status: cannot continue from the recorded status"):
            result = statesnapshot.sync_snapshot(parent, target, poll, now, finalizing=finalizing,
                                                 progress_s=settings.progress_interval_s,
                                                 reconcile_s=settings.stable_interval_s)
        cluster = target.cluster if target is not None and target.cluster else (plan.cluster if plan else None)
        if result.actions and cluster is not None:
            flink = self.ports.flink(self.settings.rest_url(cluster, namespace))
            for outcome in flink_io.execute(flink, result.actions):
                if self.on_action is not None:
                    self.on_action(outcome.action.kind, outcome.ok)
                if outcome.ok or outcome.unanswered and outcome.action.kind != "dispose_savepoint":
                    # A trigger without an answer may have reached Flink: the snapshot stays IN_PROGRESS and the
                    # poll tells (an unknown trigger id is then a failure, as Apache counts it).
                    continue
                if outcome.action.kind == "dispose_savepoint":
                    statesnapshot.disposal_failed(result, outcome.message)
                else:
                    statesnapshot.trigger_failed(result, parent, outcome.message, now)
        self.ports.kube.emit(parent, result.events)
        return result

    @staticmethod
    def _snapshot_target(parent: dict[str, Any], related: dict[str, Any] | None, namespace: str,
                         settings: CoreSettings) -> statesnapshot.SnapshotTarget | None:
        try:
            spec = statesnapshot.parse_snapshot_spec(parent.get("spec"))
        except ValueError:
            return None  # the core reports the spec error
        return statesnapshot.resolve_target(spec, by_kind(related, "FlinkDeployment"),
                                            by_kind(related, "FlinkSessionJob"), namespace,
                                            settings.operator_defaults)

    def _act(self, kind: str, parent: dict[str, Any], result: SyncResult, flink: FlinkApi) -> None:
        """Carry out the actions, fold failures into status, emit events, tell listeners."""
        outcomes = flink_io.execute(flink, result.actions, self._side_effect, self._submitter)
        for outcome in outcomes:
            if self.on_action is not None:
                self.on_action(outcome.action.kind, outcome.ok)
            if outcome.ok:
                continue
            if outcome.action.kind == "submit_job":
                # The status forgets the submission, so the next sync submits again with the same job id.
                result.status = sessionjob.submission_failed(result.status, outcome.message)
            elif outcome.action.required:
                result.status["error"] = error_json("FlinkRestException",
                                                    f"{outcome.action.kind} failed: {outcome.message}")
        self.ports.kube.emit(parent, result.events)
        plugins.notify(self.listeners, kind, parent, parent.get("status") or {}, result.status, result.events)

    def _side_effect(self, action: Action) -> None:
        if action.kind == "delete_ha_data":
            self.ports.kube.delete_ha_data(action.params["name"], action.params["namespace"])
        elif action.kind == "remove_ha_job_graphs":
            # synchronous, and a failure raises: the hook answers 500 and the new cluster is not created yet
            self.ports.kube.remove_ha_job_graphs(action.params["name"], action.params["namespace"])
