"""`flink-sync`: serve the hooks, render/validate/explain a CR offline."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

KINDS = ("FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot")
NONE_FOUND = "no FlinkDeployment, FlinkSessionJob or FlinkStateSnapshot found"


def _load_resources(path: str | list[str]) -> list[dict[str, Any]]:
    """The FlinkDeployments and FlinkSessionJobs of a file (`-` is stdin), or of several files in order."""
    if isinstance(path, list):
        return [resource for one in path for resource in _load_resources(one)]
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    docs = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    return [doc for doc in docs if doc.get("kind") in KINDS]


def _not_checked(resource: dict[str, Any], resources: list[dict[str, Any]]) -> str | None:
    """What validating `resource` could not check with the given input, or None. The hook validates a session job
    with its session cluster's configuration (and refuses an application cluster as its target); the CLI can only
    when the input holds that FlinkDeployment."""
    from .validation import session_cluster
    if resource.get("kind") != "FlinkSessionJob" or session_cluster(resource, resources) is not None:
        return None
    name = (resource.get("spec") or {}).get("deploymentName")
    return (f"not checked against its session cluster (FlinkDeployment '{name}' is not in the input: its "
            "flinkConfiguration, and that it is a session cluster); pass its file with another -f")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _pick(path: str) -> dict[str, Any]:
    resources = _load_resources(path)
    if not resources:
        raise ValueError(f"{path}: {NONE_FOUND}")
    return resources[0]


def _settings():
    from sync.defaults import BUILTIN_OPERATOR_DEFAULTS
    from sync.model import CoreSettings

    from .plugins import load_validators
    from .settings import OperatorDefaults
    defaults = OperatorDefaults(os.environ.get("FLINK_SYNC_DEFAULTS_FILE")).current() \
        if os.environ.get("FLINK_SYNC_DEFAULTS_FILE") else dict(BUILTIN_OPERATOR_DEFAULTS)
    return CoreSettings(operator_defaults=defaults, validators=load_validators())


def _prepare(resource: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    resource = json.loads(json.dumps(resource))
    meta = resource.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    meta.setdefault("generation", 1)
    meta.setdefault("uid", f"{meta['namespace']}/{meta.get('name')}")
    if status is not None:
        resource["status"] = status
    return resource


def _first_sync(resource: dict[str, Any]) -> Any:
    from sync.deployment import sync_deployment
    from sync.sessionjob import sync_session_job
    settings = _settings()
    now = int(time.time() * 1000)
    if resource["kind"] == "FlinkStateSnapshot":
        from sync.statesnapshot import sync_snapshot
        return sync_snapshot(resource, None, None, now)  # no cluster here: the job reference is not resolved
    if resource["kind"] == "FlinkDeployment":
        return sync_deployment(resource, {}, None, now, settings)
    return sync_session_job(resource, None, None, now, settings)


def _validation_error(resource: dict[str, Any], resources: list[dict[str, Any]] | None = None) -> str | None:
    """The first problem of a resource, as the hook would find it on its first sync (a session job with its
    session cluster's configuration when `resources` hold that FlinkDeployment)."""
    from .settings import Settings
    from .validation import ValidationContext, validation_error
    clusters = tuple(r for r in resources or [] if r.get("kind") == "FlinkDeployment")
    return validation_error(resource, ValidationContext(_settings(), Settings.from_env().jar_uri_allowlist,
                                                        session_clusters=clusters))


def cmd_validate(args: argparse.Namespace) -> int:
    """Every FlinkDeployment/FlinkSessionJob in the files; the first problem ends it (exit 2, one line). A session job
    is checked against its session cluster when the files hold it; otherwise a note on stderr says what was not."""
    try:
        resources = _load_resources(args.file)
        if not resources:
            raise ValueError(f"{', '.join(args.file)}: {NONE_FOUND}")
        for resource in resources:
            error = _validation_error(resource, resources)
            if error:
                name = (resource.get("metadata") or {}).get("name")
                return _fail(f"{resource['kind']} {name}: {error}" if len(resources) > 1 else error)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(str(exc).splitlines()[0])
    for resource in resources:
        name = f"{resource['kind']} {(resource.get('metadata') or {}).get('name')}"
        print(f"{name}: valid")
        note = _not_checked(resource, resources)
        if note:
            print(f"note: {name}: {note}", file=sys.stderr)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """The first sync's response for each resource in the file (one object, or a list/multi-document for many)."""
    try:
        resources = [_prepare(r, None) for r in _load_resources(args.file)]
        if not resources:
            raise ValueError(f"{args.file}: {NONE_FOUND}")
        bodies = []
        for resource in resources:
            error = _validation_error(resource, resources)
            if error:
                name = resource["metadata"].get("name")
                return _fail(f"{resource['kind']} {name}: {error}" if len(resources) > 1 else error)
            bodies.append(_first_sync(resource).response(False))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(str(exc).splitlines()[0])
    if args.format == "yaml":
        print(yaml.safe_dump_all(bodies, sort_keys=False, default_flow_style=False), end="")
    else:
        print(json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2, sort_keys=True))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain
    try:
        resource = _pick(args.file)
        status = yaml.safe_load(Path(args.status).read_text()) if args.status else None
        if isinstance(status, dict) and "status" in status and "kind" in status:
            status = status["status"]
        print(explain(_prepare(resource, status), _settings()))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(str(exc).splitlines()[0])
    return 0


def run_gunicorn(load_app: Callable[[], Any], bind: str, workers: int | None = None, threads: int | None = None,
                 certfile: str | None = None, keyfile: str | None = None,
                 server_hooks: dict[str, Callable[..., Any]] | None = None) -> None:
    """Serve a WSGI app with the settings of hooks/gunicorn_conf.py (worker class, timeouts, keep-alive …);
    `flink-sync serve`, `flink-sync admission` and the benchmark's echo app all run this way. A `certfile`
    alone holds key and certificate. `server_hooks` are gunicorn server hooks (child_exit, on_exit, …)."""
    from gunicorn.app.base import BaseApplication

    from . import gunicorn_conf

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key in ("workers", "threads", "worker_class", "timeout", "graceful_timeout", "keepalive",
                        "errorlog", "loglevel", "max_requests", "max_requests_jitter"):
                self.cfg.set(key, getattr(gunicorn_conf, key))
            self.cfg.set("bind", [bind])
            # gunicorn >= 24 opens a control socket at one fixed path in $HOME by default: nothing here uses it,
            # two servers of one user would take it from each other, and the pod's root filesystem is read-only.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)
            if certfile:
                self.cfg.set("certfile", certfile)
                if keyfile:
                    self.cfg.set("keyfile", keyfile)
            if workers:
                self.cfg.set("workers", workers)
            if threads:
                self.cfg.set("threads", threads)
            for name, hook in (server_hooks or {}).items():
                self.cfg.set(name, hook)

        def load(self) -> Any:
            return load_app()

    Server().run()


def _metrics_hooks() -> dict[str, Callable[..., Any]]:
    """Metrics across gunicorn workers (hooks/metrics.py): a fresh directory now, in the master, before any
    worker forks; a worker's exit marked; the directory removed when the server stops."""
    from . import metrics
    metrics.prepare_multiprocess_dir()
    return {"child_exit": lambda _server, worker: metrics.worker_exited(worker.pid),
            "on_exit": lambda _server: metrics.remove_multiprocess_dir()}


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=os.environ.get("FLINK_SYNC_LOG_LEVEL", "INFO").upper(), format="%(message)s")
    hooks = _metrics_hooks()
    from .app import create_app

    # Optional TLS between Metacontroller and the hooks (point the CompositeController's webhook.caBundle at
    # the issuing CA).
    run_gunicorn(create_app, args.bind, args.workers, args.threads,
                 certfile=args.certfile or os.environ.get("FLINK_SYNC_TLS_CERT_FILE"),
                 keyfile=args.keyfile or os.environ.get("FLINK_SYNC_TLS_KEY_FILE"), server_hooks=hooks)
    return 0


def _first_certificate(keeper: Any, deadline_s: float = 300.0) -> None:
    """The serving certificate must exist before gunicorn listens; the API server may still be starting."""
    started = time.monotonic()
    while True:
        try:
            keeper.sync_once()
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() - started > deadline_s:
                raise SystemExit(f"admission webhook: no certificate after {deadline_s:.0f}s: {exc}") from None
            logging.getLogger("flink_sync.admission").warning("webhook certificate not ready: %s", exc)
            time.sleep(3)


def cmd_admission(args: argparse.Namespace) -> int:
    """The validating admission webhook (hooks/admission.py) over HTTPS with a self-managed certificate."""
    import shutil
    import tempfile

    logging.basicConfig(level=os.environ.get("FLINK_SYNC_LOG_LEVEL", "INFO").upper(), format="%(message)s")
    hooks = _metrics_hooks()
    from .admission import create_admission_app
    from .settings import Settings, WebhookSettings
    from .webhook_tls import CertKeeper

    settings, webhook = Settings.from_env(), WebhookSettings.from_env()
    directory = Path(tempfile.mkdtemp(prefix="flink-sync-webhook-"))
    keeper = CertKeeper(webhook, directory)
    _first_certificate(keeper)

    def load_app() -> Any:
        from sync.model import CoreSettings

        from .plugins import load_validators
        from .settings import OperatorDefaults
        from .validation import ValidationContext
        defaults, validators = OperatorDefaults(settings.defaults_file), load_validators()
        # The defaults file is re-read when it changes, as the syncs read it.
        return create_admission_app(lambda: ValidationContext(
            CoreSettings(operator_defaults=defaults.current(), validators=validators), settings.jar_uri_allowlist),
            settings.max_request_bytes)

    def stop(server: Any) -> None:
        hooks["on_exit"](server)
        shutil.rmtree(directory, ignore_errors=True)

    run_gunicorn(load_app, args.bind, args.workers, args.threads, certfile=str(keeper.serving_file),
                 server_hooks={**hooks, "when_ready": lambda _server: keeper.start(), "on_exit": stop})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flink-sync", description="Apache Flink on Kubernetes as Metacontroller hooks")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hook server (gunicorn)")
    serve.add_argument("--bind", default=os.environ.get("FLINK_SYNC_BIND", "127.0.0.1:8080"))
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--threads", type=int, default=None)
    serve.add_argument("--certfile", help="serve HTTPS with this certificate (or FLINK_SYNC_TLS_CERT_FILE)")
    serve.add_argument("--keyfile", help="the certificate's private key (or FLINK_SYNC_TLS_KEY_FILE)")
    serve.set_defaults(func=cmd_serve)
    admission = sub.add_parser("admission", help="run the validating admission webhook (HTTPS, self-managed certificate)")
    admission.add_argument("--bind", default=os.environ.get("FLINK_SYNC_ADMISSION_BIND", "127.0.0.1:8443"))
    admission.add_argument("--workers", type=int, default=1)
    admission.add_argument("--threads", type=int, default=None)
    admission.set_defaults(func=cmd_admission)
    render = sub.add_parser("render", help="print the first sync response for a CR")
    render.add_argument("-f", "--file", required=True)
    render.add_argument("--format", choices=("json", "yaml"), default="json")
    render.set_defaults(func=cmd_render)
    validate = sub.add_parser("validate", help="check CRs; exit 2 with the field on stderr when invalid")
    validate.add_argument("-f", "--file", required=True, action="append",
                          help="a YAML file of CRs (`-` for stdin); again for more files (a session job's session "
                               "cluster, to check the job against its configuration)")
    validate.set_defaults(func=cmd_validate)
    explain = sub.add_parser("explain", help="say in plain words what the next syncs will do")
    explain.add_argument("-f", "--file", required=True)
    explain.add_argument("--status", help="the current status (YAML: the CR as `kubectl get -o yaml` prints it, or its status)")
    explain.set_defaults(func=cmd_explain)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a CLI user never sees a traceback
        return _fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    raise SystemExit(main())
