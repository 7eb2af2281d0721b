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
    from gunicorn.app.base import BaseApplication

    from hooks import gunicorn_conf

    parser = argparse.ArgumentParser(prog="python -m bench.echo_app")
    parser.add_argument("--bind", default="127.0.0.1:8099")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    class Server(BaseApplication):
        def load_config(self) -> None:
            # The same keys `flink-sync serve` copies from hooks/gunicorn_conf.py (hooks/cli.py: cmd_serve).
            for key in ("workers", "threads", "worker_class", "timeout", "graceful_timeout", "keepalive",
                        "errorlog", "loglevel", "max_requests", "max_requests_jitter"):
                self.cfg.set(key, getattr(gunicorn_conf, key))
            self.cfg.set("bind", [args.bind])
            if args.workers:
                self.cfg.set("workers", args.workers)
            if args.threads:
                self.cfg.set("threads", args.threads)

        def load(self) -> Flask:
            return create_echo_app()

    Server().run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
