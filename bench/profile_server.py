"""Profile the hook server as it serves: `flink-sync serve` (gunicorn, the benchmark's settings) under the
benchmark's load, one worker sampled by py-spy (`pip install py-spy`; it reads the worker's memory with ptrace).

    python -m bench.profile_server [--case first|steady|echo] [--seconds 8] [--rate 1000] [--top 40]

Prints where the sampled worker spends its time: the frames with the most samples of their own (self) and the
frames under which the most samples fall (total), both as shares of all samples taken in the worker (idle
threads waiting in the poller or the thread pool's queue are dropped with `--idle`, as py-spy does by default),
and writes the collapsed stacks (flamegraph.pl / speedscope input) to bench/results/profile-<case>.txt.
Everything is started by PID and stopped at the end, like in the benchmark.
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import flink_stub, loadgen, servers
from .workload import SteadyTemplate, first_request

RESULTS = Path(__file__).resolve().parent / "results"
HOOK = "/sync/flinkdeployment"


def _frame_name(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:line)"; keep function and file name only
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':', 1)[0]).name})" if where else name


def summarise(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [_frame_name(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n
    lines = [f"{samples} samples"]
    for title, counter in (("self", own), ("total (inclusive)", total)):
        lines += ["", f"by {title}:"]
        lines += [f"{n / samples:6.1%}  {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_server")
    parser.add_argument("--case", choices=["first", "steady", "echo"], default="steady")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--idle", action="store_true", help="keep idle threads' samples")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every thread (wall time), not only the one holding the GIL (CPU time)")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    RESULTS.mkdir(exist_ok=True)
    template = SteadyTemplate()
    body = (json.dumps(first_request(1)) if args.case == "first" else template.text_for(1)).encode()
    stub = servers.flink_stub(template.job_id, template.start_time, RESULTS / "profile-stub.log", idle_timeout_s=70)
    started: list[servers.Server] = []
    try:
        stub.start(0)
        started.append(stub)
        if args.case == "echo":
            server = servers.echo_server(2, RESULTS / "profile-echo.log")
        else:
            server = servers.hooks_server(2, {"FLINK_SYNC_LOG_LEVEL": "INFO",
                                              "FLINK_SYNC_REST_URL_TEMPLATE": flink_stub.rest_url_template(stub.port)},
                                          RESULTS / "profile-hooks.log")
        server.start(2)
        started.append(server)
        request = loadgen.encode_post("127.0.0.1", server.port, HOOK, body)
        out = RESULTS / f"profile-{args.case}.txt"
        sockets, _ = loadgen.balanced_connections("127.0.0.1", server.port, 8, server.workers)
        spy_argv = [spy, "record", "--pid", str(server.workers[0]), "--rate", str(args.rate), "--format", "raw",
                    "--output", str(out), "--duration", str(int(args.seconds)), "--nonblocking"]
        if args.idle:
            spy_argv.append("--idle")
        if not args.all_threads:
            spy_argv.append("--gil")
        recorder = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        result = loadgen.run("127.0.0.1", server.port, [request], concurrency=8, duration_s=args.seconds + 1.0,
                             sockets=sockets)
        _, err = recorder.communicate(timeout=60)
        if recorder.returncode:
            raise RuntimeError(f"py-spy failed: {err.decode()[-500:]}")
        print(f"{args.case}: {result.summary()['per_s']:.0f} requests/s while sampling; {out}")
        print(summarise(out, args.top))
    finally:
        for server in reversed(started):
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
