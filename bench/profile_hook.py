"""Profile one hook request end to end inside one process: the Flask app's WSGI callable with the environ
gunicorn would pass (so request parsing, the request model, the core, the Flink REST call to the local stub,
JSON, metrics and the log line are all in), minus gunicorn's socket I/O.

    python -m bench.profile_hook [--case first|steady] [--n 3000] [--top 30] [--pyinstrument]

Prints the mean wall/CPU µs per request of the whole WSGI call beside the core alone, then a cProfile
table (or a pyinstrument tree). The Flink stub is started and stopped by PID like in the benchmark.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import time
from typing import Any

from . import flink_stub, servers
from .workload import SteadyTemplate, first_request


def _environ(body: bytes, path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8080"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_hook")
    parser.add_argument("--case", choices=["first", "steady"], default="steady")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args(argv)

    template = SteadyTemplate()
    stub = servers.flink_stub(template.job_id, template.start_time, servers.REPO / "bench" / "results" /
                              "profile-stub.log", idle_timeout_s=70)
    (servers.REPO / "bench" / "results").mkdir(exist_ok=True)
    stub.start(expected_workers=0)
    try:
        os.environ["FLINK_SYNC_REST_URL_TEMPLATE"] = flink_stub.rest_url_template(stub.port)
        from hooks.app import create_app
        from hooks.settings import Settings
        # the server logs one line per request at INFO (gunicorn_conf's default); do the same, into a file
        handler = logging.FileHandler(servers.REPO / "bench" / "results" / "profile-hooks.log")
        logging.getLogger("flink_sync").addHandler(handler)
        logging.getLogger("flink_sync").setLevel(logging.INFO)
        app = create_app(Settings.from_env(), clock=lambda: template.now_ms)
        body = json.dumps(first_request(0) if args.case == "first" else template.request).encode()
        path = "/sync/flinkdeployment"

        def one() -> None:
            chunks = app.wsgi_app(_environ(body, path), lambda status, headers: None)
            assert b"".join(chunks)

        for _ in range(300):
            one()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n):
            one()
        wall_us = (time.perf_counter() - started) / args.n * 1e6
        cpu_us = (time.process_time() - cpu) / args.n * 1e6
        print(f"{args.case}: WSGI call mean {wall_us:.0f} µs wall, {cpu_us:.0f} µs CPU (this process; "
              f"the stub's CPU is not in it)")
        if args.pyinstrument:
            from pyinstrument import Profiler
            profiler = Profiler(interval=0.0001)
            profiler.start()
            for _ in range(args.n):
                one()
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        else:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.n):
                one()
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
