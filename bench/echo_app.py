"""The framework floor: a bare Flask app that answers a POST with the body it got, served exactly like
`flink-sync serve` (gunicorn, the same worker class, workers, threads, keep-alive and timeouts from
hooks/gunicorn_conf.py). The benchmark sends it the same bodies as the sync hook.

    python -m bench.echo_app --bind 127.0.0.1:8099 --workers 2
"""
from __future__ import annotations

import argparse

from flask import Flask, Response, request


def create_echo_app() -> Flask:
    app = Flask("flink_sync_echo")

    @app.post("/sync/flinkdeployment")
    def echo() -> Response:
        return Response(request.get_data(cache=False), mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    return app


def main(argv: list[str] | None = None) -> int:
    from hooks.cli import run_gunicorn

    parser = argparse.ArgumentParser(prog="python -m bench.echo_app")
    parser.add_argument("--bind", default="127.0.0.1:8099")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    run_gunicorn(create_echo_app, args.bind, args.workers, args.threads)  # exactly as `flink-sync serve`
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
