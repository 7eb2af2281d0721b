"""The Flask app Metacontroller calls, built by `create_app(settings, ...)`: HTTP only (routes, limits, auth,
JSON, metrics). The sync itself (Flink, the core, actions, side effects) is hooks/pipeline.py's.

Answers:
* 200 with `{status, children[, resyncAfterSeconds][, finalized]}` — only keys Metacontroller knows;
* 400 for malformed JSON or a request that is not Metacontroller's shape, 413 past the size limit,
  422 for a parent whose recorded status cannot be used; Metacontroller applies nothing on any non-200;
* 500 (a generic body, never a traceback) for an internal error, which Metacontroller retries.
"""
from __future__ import annotations

import functools
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

try:  # a faster JSON codec when installed; the stdlib json module otherwise (same JSON either way)
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

from flask import Flask, Response, request
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from sync.kubelimits import is_namespace_name, is_object_name
from sync.model import CoreSettings, SyncResult

from . import plugins
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .pipeline import Clock, FlinkFactory, KubeEffects, Pipeline, Unusable, cluster_pods_rule, server_ports
from .settings import OperatorDefaults, Settings
from .submit import JarFetcher

log = logging.getLogger("flink_sync.hooks")
API_VERSION = "flink.apache.org/v1beta1"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Metacontroller's Go encoder never writes NaN or Infinity


def _loads(raw: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses (integers past 64 bits, nesting past 1024) is read, or rejected, by json
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _dumps(payload: Any) -> bytes | str:
    if orjson is not None:
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass  # orjson stops at 255 levels; json goes on until the interpreter's recursion limit
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


class HookRequest(BaseModel):
    """A Metacontroller sync/finalize request (CompositeController, hook version v1 or v2)."""
    model_config = ConfigDict(extra="ignore")
    controller: dict[str, Any] | None = None
    parent: dict[str, Any]
    children: dict[str, dict[str, Any]] | None = None
    related: dict[str, dict[str, Any]] | None = None
    finalizing: bool = False


class CustomizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    controller: dict[str, Any] | None = None
    parent: dict[str, Any]


Environ = dict[str, Any]
HookAnswer = tuple[int, bytes]  # HTTP status, JSON body


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _check_string_map(meta: dict[str, Any], key: str) -> None:
    value = meta.get(key)
    if value is not None and (not isinstance(value, dict) or
                              not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise BadRequest(400, f"parent.metadata.{key}: must map strings to strings")


def _check_observed(groups: dict[str, dict[str, Any]] | None, where: str) -> None:
    """Observed children and related objects come from the API server: objects with object metadata, spec
    and status. Anything else is not Metacontroller's request."""
    for group, objects in (groups or {}).items():
        for key, obj in objects.items():
            _check_observed_object(obj, f"{where}[{group}][{key}]")


def _check_observed_object(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise BadRequest(400, f"{where}: must be an object")
    for part in ("metadata", "spec", "status"):
        if obj.get(part) is not None and not isinstance(obj[part], dict):
            raise BadRequest(400, f"{where}.{part}: must be an object")
    meta = obj.get("metadata") or {}
    if meta.get("name") is not None and not isinstance(meta["name"], str):
        raise BadRequest(400, f"{where}.metadata.name: must be a string")
    for part in ("labels", "annotations"):
        value = meta.get(part)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
            raise BadRequest(400, f"{where}.metadata.{part}: must map strings to strings")


def _check_parent(parent: dict[str, Any], kind: str) -> None:
    if parent.get("kind") not in (None, kind):
        raise BadRequest(400, f"parent.kind: expected {kind}, got {parent.get('kind')!r}")
    if parent.get("apiVersion") not in (None, API_VERSION):
        raise BadRequest(400, f"parent.apiVersion: expected {API_VERSION}, got {parent.get('apiVersion')!r}")
    meta = parent.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
        raise BadRequest(400, "parent.metadata.name: required")
    _check_parent_meta(meta)
    for key in ("spec", "status"):
        if parent.get(key) is not None and not isinstance(parent.get(key), dict):
            raise BadRequest(400, f"parent.{key}: must be an object")


def _check_parent_meta(meta: dict[str, Any]) -> None:
    for key in ("namespace", "uid"):
        if meta.get(key) is not None and not isinstance(meta.get(key), str):
            raise BadRequest(400, f"parent.metadata.{key}: must be a string")
    if not is_object_name(meta["name"]):
        raise BadRequest(400, "parent.metadata.name: not a Kubernetes object name (DNS-1123 subdomain)")
    namespace = meta.get("namespace")
    if namespace is not None and not is_namespace_name(namespace):
        raise BadRequest(400, "parent.metadata.namespace: not a Kubernetes namespace name (DNS-1123 label)")
    for key in ("labels", "annotations"):
        _check_string_map(meta, key)
    generation = meta.get("generation")
    if generation is not None and (not isinstance(generation, int) or isinstance(generation, bool)):
        raise BadRequest(400, "parent.metadata.generation: must be an integer")


def _content_length(environ: dict[str, Any]) -> int | None:
    """CONTENT_LENGTH as werkzeug reads it: a non-negative whole number, or None (absent or not a number)."""
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or ""))
    except (ValueError, TypeError):
        return None


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, at most `limit` bytes (413 past it, chunked or not; 400 if it cannot be read)."""
    length = _content_length(environ)
    if length is not None and length > limit:
        raise BadRequest(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    try:
        # werkzeug's stream: capped at Content-Length, or the whole chunked body the server de-chunked
        stream = get_input_stream(environ, max_content_length=None)
        while size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception as exc:  # noqa: BLE001 - a malformed chunked body or a client gone: not our error
        raise BadRequest(400, f"request body could not be read: {type(exc).__name__}") from None
    if size > limit:
        raise BadRequest(413, f"request body over {limit} bytes")
    return b"".join(chunks)


def _quiet(parent: dict[str, Any], result: SyncResult) -> bool:
    """A sync that changes nothing: no actions, and the status it answers is the one it was given."""
    return not result.actions and not result.events and result.status == parent.get("status")


class _Hooks:
    """The HTTP side of the hooks: read and check a request, run the pipeline, answer and count it."""

    def __init__(self, settings: Settings, metrics: Metrics, sync: Pipeline) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sync = sync

    def read_json(self, environ: dict[str, Any], model: type[BaseModel]) -> Any:
        settings = self.settings
        if settings.auth_token:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {settings.auth_token}".encode()):
                raise BadRequest(401, "missing or wrong bearer token")
        raw = _read_body(environ, settings.max_request_bytes)
        try:
            body = _loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(400, f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest(400, "body must be a JSON object")
        try:
            parsed = model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise BadRequest(400, f"{field}: {first['msg']}") from None
        if isinstance(parsed, HookRequest):
            _check_observed(parsed.children, "children")
            _check_observed(parsed.related, "related")
        return parsed

    def respond(self, hook: str, started: float, outcome: str, payload: dict[str, Any], status: int = 200,
                parent: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> HookAnswer:
        try:
            body = _dumps(payload)
        except RecursionError:  # a status echoed back nested too deeply to encode: never a 200 without children
            status, outcome = 422, "bad_request"
            body = json.dumps({"error": "status: nested too deeply to continue from; nothing applied"})
        if status == 200 and len(body) > self.settings.max_response_bytes:
            status, outcome = 500, "response_too_large"
            body = json.dumps({"error": f"response over {self.settings.max_response_bytes} bytes; nothing applied"})
        seconds = time.perf_counter() - started
        self.metrics.on_request(hook, outcome, seconds)
        # One JSON line per request that did something; a resync that changed nothing (the steady state of
        # every running cluster, once per resync period) only at DEBUG, so the log shows what happened.
        level = logging.DEBUG if status == 200 and extra is not None and extra.pop("quiet", False) else logging.INFO
        if log.isEnabledFor(level):
            meta = (parent or {}).get("metadata") or {}
            line = _dumps({"hook": hook, "parent": f"{meta.get('namespace')}/{meta.get('name')}",
                           "generation": meta.get("generation"), "outcome": outcome, "status": status,
                           "duration_ms": round(seconds * 1000, 2), **(extra or {})})
            log.log(level, line if isinstance(line, str) else line.decode())
        return status, body if isinstance(body, bytes) else body.encode()

    def handle(self, hook: str, fn: Callable[[], tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]]
               ) -> HookAnswer:
        started = time.perf_counter()
        try:
            payload, parent, extra = fn()
            return self.respond(hook, started, "ok", payload, parent=parent, extra=extra)
        except BadRequest as exc:
            return self.respond(hook, started, "bad_request", {"error": exc.message}, exc.status)
        except Exception:  # noqa: BLE001 - answer 500 so Metacontroller applies nothing and retries
            log.exception("internal error in %s", hook)
            return self.respond(hook, started, "error", {"error": "internal error; nothing was applied, Metacontroller will retry"}, 500)

    def deployment(self, environ: Environ, finalize: bool) -> HookAnswer:
        def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            req = self.read_json(environ, HookRequest)
            parent = req.parent
            _check_parent(parent, "FlinkDeployment")
            finalizing = finalize or req.finalizing
            with _refused():
                result = self.sync.sync_deployment(parent, req.children, req.related, finalizing)
            if result.kept:
                self.metrics.on_kept_answer()
            return (result.response(finalizing), parent,
                    {"children": len(result.children), "actions": [a.kind for a in result.actions],
                     "lifecycle": result.status.get("lifecycleState"), "kept": result.kept,
                     "quiet": _quiet(parent, result)})
        return self.handle("finalize_flinkdeployment" if finalize else "sync_flinkdeployment", run)

    def snapshot(self, environ: Environ, finalize: bool) -> HookAnswer:
        return self._parent_without_cluster(
            environ, "FlinkStateSnapshot",
            lambda req, finalizing: self.sync.sync_snapshot(req.parent, req.related, finalizing),
            ("state", "state"), finalize)

    def session_job(self, environ: Environ, finalize: bool) -> HookAnswer:
        return self._parent_without_cluster(
            environ, "FlinkSessionJob", lambda req, finalizing: self.sync.sync_session_job(
                req.parent, req.related, finalizing, children=req.children),
            ("lifecycle", "lifecycleState"), finalize)

    def _parent_without_cluster(self, environ: Environ, kind: str, sync: Callable[[HookRequest, bool], Any],
                                logged: tuple[str, str], finalize: bool) -> HookAnswer:
        """The sync or finalize hook of a kind without a cluster of its own, only related objects (a session job,
        whose only children are its FlinkStateSnapshots; a snapshot); `logged` is (log field, status field): the
        status field its log line carries."""
        def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            req = self.read_json(environ, HookRequest)
            parent = req.parent
            _check_parent(parent, kind)
            finalizing = finalize or req.finalizing
            with _refused():
                result = sync(req, finalizing)
            return (result.response(finalizing), parent,
                    {"actions": [a.kind for a in result.actions], logged[0]: result.status.get(logged[1]),
                     "quiet": _quiet(parent, result)})
        hook = kind.lower()
        return self.handle(f"finalize_{hook}" if finalize else f"sync_{hook}", run)

    def customize(self, environ: Environ, kind: str) -> HookAnswer:
        def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            req = self.read_json(environ, CustomizeRequest)
            _check_parent(req.parent, kind)
            if kind == "FlinkDeployment":
                # Session jobs of this namespace, so a session cluster is not deleted under them; the cluster's
                # pods, so status can say what is wrong with them.
                return {"relatedResources": [{"apiVersion": API_VERSION, "resource": "flinksessionjobs",
                                              "labelSelector": {}},
                                             cluster_pods_rule(req.parent["metadata"]["name"])]}, req.parent, {}
            if kind == "FlinkStateSnapshot":
                return {"relatedResources": _snapshot_related(req.parent)}, req.parent, {}
            name = (req.parent.get("spec") or {}).get("deploymentName")
            rules = []
            if isinstance(name, str) and name:
                rules.append({"apiVersion": API_VERSION, "resource": "flinkdeployments", "names": [name]})
                rules.append(cluster_pods_rule(name))
            return {"relatedResources": rules}, req.parent, {}
        return self.handle("customize_" + kind.lower(), run)


def _snapshot_related(parent: dict[str, Any]) -> list[dict[str, Any]]:
    """The job a FlinkStateSnapshot references, by name. A session job's cluster is named only inside the session
    job, and customize cannot chain, so for one every FlinkDeployment of the namespace is related as well."""
    ref = (parent.get("spec") or {}).get("jobReference")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
        return []
    name = ref["name"]
    if ref.get("kind") == "FlinkSessionJob":
        return [{"apiVersion": API_VERSION, "resource": "flinksessionjobs", "names": [name]},
                {"apiVersion": API_VERSION, "resource": "flinkdeployments", "labelSelector": {}}]
    return [{"apiVersion": API_VERSION, "resource": "flinkdeployments", "names": [name]}]


@contextmanager
def _refused() -> Iterator[None]:
    """What the pipeline refuses to sync is a 422: Metacontroller applies nothing."""
    try:
        yield
    except Unusable as exc:
        raise BadRequest(422, str(exc)) from None


def create_app(settings: Settings | None = None, flink: FlinkFactory | None = None, clock: Clock | None = None,
               side_effects: KubeEffects | None = None, jar_fetcher: JarFetcher | None = None) -> Flask:
    """Build the app. The pipeline's ports (a cluster's REST URL → its `FlinkApi`, the clock, Kubernetes side
    effects, the jar fetcher) default to the server's and can be passed in (hooks/pipeline.py)."""
    settings = settings or Settings.from_env()
    metrics = Metrics()
    defaults = OperatorDefaults(settings.defaults_file)
    validators = plugins.load_validators()
    ports = server_ports(settings, flink=flink, fetch_jar=jar_fetcher, kube=side_effects, clock=clock,
                         on_rest_call=metrics.on_rest_call)

    # A custom validator's verdict is not the core's code: with one, every resync runs the whole sync.
    memo_key = "" if validators else core_fingerprint()

    def core_settings() -> CoreSettings:
        return CoreSettings(operator_defaults=defaults.current(), validators=validators,
                            progress_interval_s=settings.progress_interval_s,
                            stable_interval_s=settings.reconcile_interval_s, memo_key=memo_key)

    hooks = _Hooks(settings, metrics, Pipeline(settings, ports, core_settings, plugins.load_listeners(),
                                               on_action=metrics.on_action,
                                               on_autoscaler_cycle=metrics.on_autoscaler_cycle))
    app = Flask("flink_sync")
    # No MAX_CONTENT_LENGTH: werkzeug would cut a chunked body at the limit instead of refusing it;
    # _read_body enforces the limit on every body (413).
    _routes(app, hooks)
    app.extensions["flink_sync"] = {"metrics": metrics, "defaults": defaults, "settings": settings,
                                    "pipeline": hooks.sync}
    return app


@functools.lru_cache(maxsize=1)
def core_fingerprint() -> str:
    """A hash of the pure core's source (every module of sync/): the `memo_key` that ties a kept answer
    (sync/settled.py) to the code that computed it, so a new flink-sync never answers from an old one's records.
    Empty (answers are not kept) when the source cannot be read."""
    import hashlib
    from pathlib import Path

    import sync

    digest = hashlib.sha256()
    try:
        root = Path(sync.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return ""
    return "core-" + digest.hexdigest()[:32]


def _hook_routes(hooks: _Hooks) -> dict[str, Callable[[Environ], HookAnswer]]:
    """The POST hooks by path: sync and finalize of each kind, and its customize hook."""
    routes: dict[str, Callable[[Environ], HookAnswer]] = {
        "/sync/flinkdeployment": lambda environ: hooks.deployment(environ, False),
        "/finalize/flinkdeployment": lambda environ: hooks.deployment(environ, True),
        "/sync/flinksessionjob": lambda environ: hooks.session_job(environ, False),
        "/finalize/flinksessionjob": lambda environ: hooks.session_job(environ, True),
        "/sync/flinkstatesnapshot": lambda environ: hooks.snapshot(environ, False),
        "/finalize/flinkstatesnapshot": lambda environ: hooks.snapshot(environ, True),
    }
    for kind in ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"):
        routes[f"/customize/{kind.lower()}"] = functools.partial(hooks.customize, kind=kind)
    return routes


class _HookFront:
    """The WSGI entry: a POST to a hook path goes straight to its handler, everything else (health, metrics,
    404 and 405 answers) to Flask. The hooks read the environ themselves and answer JSON bytes, so a sync
    costs no request context, URL matching, request/response objects or signals (about a tenth of a worker's
    time per sync under load, measured with bench/profile_server.py)."""

    def __init__(self, routes: dict[str, Callable[[Environ], HookAnswer]], fallback: Any) -> None:
        self.routes = routes
        self.fallback = fallback

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Any:
        handler = self.routes.get(environ.get("PATH_INFO", "")) if environ.get("REQUEST_METHOD") == "POST" else None
        if handler is None:
            return self.fallback(environ, start_response)
        status, body = handler(environ)
        start_response(_STATUS_LINES[status], [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(body)))])
        return [body]


# the status lines werkzeug writes ("400 BAD REQUEST"), so an answer reads the same as it did through Flask
_STATUS_LINES = {code: f"{code} {HTTP_STATUS_CODES[code].upper()}" for code in (200, 400, 401, 413, 422, 500)}


def _through_flask(handler: Callable[[Environ], HookAnswer]) -> Response:
    status, body = handler(request.environ)
    return Response(body, status=status, mimetype="application/json")


def _routes(app: Flask, hooks: _Hooks) -> None:
    routes = _hook_routes(hooks)
    # Flask routes the hook paths too (what the front passes on: another method is a 405, as it always was).
    for path, handler in routes.items():
        app.add_url_rule(path, path.strip("/").replace("/", "_"), functools.partial(_through_flask, handler),
                         methods=["POST"])
    app.wsgi_app = _HookFront(routes, app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(hooks.metrics.scrape(), mimetype=CONTENT_TYPE_LATEST)

    @app.errorhandler(413)
    def too_large(_: Exception) -> Response:
        return Response(json.dumps({"error": f"request body over {hooks.settings.max_request_bytes} bytes"}),
                        status=413, mimetype="application/json")

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return Response('{"error":"no such hook"}', status=404, mimetype="application/json")

    @app.errorhandler(405)
    def bad_method(_: Exception) -> Response:
        return Response('{"error":"method not allowed"}', status=405, mimetype="application/json")
