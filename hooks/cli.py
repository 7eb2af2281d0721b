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


def _load_resources(path: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    docs = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    return [doc for doc in docs if doc.get("kind") in KINDS]


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


def _validation_error(resource: dict[str, Any]) -> str | None:
    from sync import flinkconf
    from sync.jaruri import check_jar_uri
    from sync.spec import SpecError, parse_deployment_spec, parse_session_job_spec
    from sync.validation import validate_deployment, validate_session_job

    from .settings import Settings
    settings = _settings()
    meta = resource.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    if str((meta.get("labels") or {}).get("flink.apache.org/canary", "")).lower() == "true":
        return None  # canary resources are never validated (Apache skips them too)
    try:
        if resource["kind"] == "FlinkStateSnapshot":
            from sync.statesnapshot import parse_snapshot_spec
            parse_snapshot_spec(resource.get("spec"))
            return None
        if resource["kind"] == "FlinkDeployment":
            spec = parse_deployment_spec(resource.get("spec"))
            config = flinkconf.effective_user_config(settings.operator_defaults, namespace, spec.flinkVersion,
                                                     spec.flinkConfiguration)
            return validate_deployment(meta.get("name"), spec, config, extra=settings.validators, resource=resource)
        job_spec = parse_session_job_spec(resource.get("spec"))
        config = flinkconf.effective_user_config(settings.operator_defaults, namespace, None,
                                                 job_spec.flinkConfiguration)
        error = validate_session_job(meta.get("name"), job_spec, config, extra=settings.validators, resource=resource)
        if error is None and job_spec.job is not None and job_spec.job.jarURI:
            error = check_jar_uri(job_spec.job.jarURI, Settings.from_env().jar_uri_allowlist)
        return error
    except SpecError as exc:
        return str(exc)


def cmd_validate(args: argparse.Namespace) -> int:
    """Every FlinkDeployment/FlinkSessionJob in the file; the first problem ends it (exit 2, one line)."""
    try:
        resources = _load_resources(args.file)
        if not resources:
            raise ValueError(f"{args.file}: {NONE_FOUND}")
        for resource in resources:
            error = _validation_error(resource)
            if error:
                name = (resource.get("metadata") or {}).get("name")
                return _fail(f"{resource['kind']} {name}: {error}" if len(resources) > 1 else error)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(str(exc).splitlines()[0])
    for resource in resources:
        print(f"{resource['kind']} {(resource.get('metadata') or {}).get('name')}: valid")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """The first sync's response for each resource in the file (one object, or a list/multi-document for many)."""
    try:
        resources = [_prepare(r, None) for r in _load_resources(args.file)]
        if not resources:
            raise ValueError(f"{args.file}: {NONE_FOUND}")
        bodies = []
        for resource in resources:
            error = _validation_error(resource)
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
                 certfile: str | None = None, keyfile: str | None = None) -> None:
    """Serve a WSGI app with the settings of hooks/gunicorn_conf.py (worker class, timeouts, keep-alive …);
    `flink-sync serve` and the benchmark's echo app both run this way."""
    from gunicorn.app.base import BaseApplication

    from . import gunicorn_conf

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key in ("workers", "threads", "worker_class", "timeout", "graceful_timeout", "keepalive",
                        "errorlog", "loglevel", "max_requests", "max_requests_jitter"):
                self.cfg.set(key, getattr(gunicorn_conf, key))
            self.cfg.set("bind", [bind])
            if certfile and keyfile:
                self.cfg.set("certfile", certfile)
                self.cfg.set("keyfile", keyfile)
            if workers:
                self.cfg.set("workers", workers)
            if threads:
                self.cfg.set("threads", threads)

        def load(self) -> Any:
            return load_app()

    Server().run()


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import create_app

    logging.basicConfig(level=os.environ.get("FLINK_SYNC_LOG_LEVEL", "INFO").upper(), format="%(message)s")
    # Optional TLS between Metacontroller and the hooks (point the CompositeController's webhook.caBundle at
    # the issuing CA).
    run_gunicorn(create_app, args.bind, args.workers, args.threads,
                 certfile=args.certfile or os.environ.get("FLINK_SYNC_TLS_CERT_FILE"),
                 keyfile=args.keyfile or os.environ.get("FLINK_SYNC_TLS_KEY_FILE"))
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
    render = sub.add_parser("render", help="print the first sync response for a CR")
    render.add_argument("-f", "--file", required=True)
    render.add_argument("--format", choices=("json", "yaml"), default="json")
    render.set_defaults(func=cmd_render)
    validate = sub.add_parser("validate", help="check a CR; exit 2 with the field on stderr when invalid")
    validate.add_argument("-f", "--file", required=True)
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
