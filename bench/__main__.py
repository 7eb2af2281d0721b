"""`make bench` / `python -m bench`: how fast and how far the hooks scale, beside the floors, in one run.

Prints one table and writes it as JSON to bench/results/latest.json (also latest.txt). See bench/README.md.
Options: --quick (shorter phases, for a smoke test), --scale N (deployments in the scale run, default 10,000).
`python -m bench sandbox [--deployments N]`: the control plane at scale instead (bench/sandbox_scale.py).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import flink_stub, inprocess, loadgen, servers, workload

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 8
WORKERS = 2
HOOK = "/sync/flinkdeployment"


# ---------------------------------------------------------------------------------------------- helpers
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import gunicorn
    import pydantic
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_gb, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "flask": importlib.metadata.version("flask"), "gunicorn": gunicorn.__version__,
            "pydantic": pydantic.VERSION, "loadavg_at_start": os.getloadavg()}


def stub_stats(stub: servers.Server) -> dict[str, int]:
    with urllib.request.urlopen(stub.url + "/__stats", timeout=5) as answer:
        return json.loads(answer.read())


def checker(expect_lifecycle: str, children: int, every: int = 97):
    """Check every n-th answer fully (parsing all of them would load the client more than the server)."""
    def check(index: int, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"#{index}: HTTP {status}: {body[:200]!r}"
        if index % every:
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            return f"#{index}: not JSON"
        if "status" not in answer:   # the echo endpoint answers the request itself
            return None
        got = answer["status"].get("lifecycleState")
        if got != expect_lifecycle or len(answer.get("children") or []) != children:
            return f"#{index}: lifecycle {got}, {len(answer.get('children') or [])} children"
        return None
    return check


def measure(server: servers.Server, bodies: list[bytes], *, duration_s: float | None = None, count: int | None = None,
            warmup_s: float = 0.0, concurrency: int = CONCURRENCY, check=None) -> dict[str, Any]:
    requests = [loadgen.encode_post("127.0.0.1", server.port, HOOK, body) for body in bodies]
    sockets, spread = loadgen.balanced_connections("127.0.0.1", server.port, concurrency, server.workers)
    cpu0 = server.cpu()
    result = loadgen.run("127.0.0.1", server.port, requests, concurrency=concurrency, duration_s=duration_s,
                         count=count, warmup_s=warmup_s, check=check, sockets=sockets)
    cpu1 = server.cpu()
    out = result.summary()
    out["connections_per_worker"] = spread
    workers = [cpu1[pid] - cpu0[pid] for pid in server.workers]
    out["worker_cpu_split"] = [round(v / (sum(workers) or 1.0), 2) for v in workers]
    # CPU over the whole call (warm-up included) — only used as a ratio to requests when warmup_s == 0.
    out["server_cpu_s"] = round(sum(cpu1.values()) - sum(cpu0.values()), 3)
    out["server_cpu_s_by_pid"] = {str(pid): round(cpu1[pid] - cpu0[pid], 3) for pid in cpu1}
    if out["statuses"].keys() - {"200"}:
        raise RuntimeError(f"{server.name}: non-200 answers: {out['statuses']} {out['failures']}")
    if out["failures"]:
        raise RuntimeError(f"{server.name}: wrong answers: {out['failures']}")
    return out


def alternate(pairs: list[tuple[str, servers.Server, list[bytes], Any]], rounds: int, warmup_s: float,
              duration_s: float) -> dict[str, dict[str, Any]]:
    """Run the named measurements in turns (A B A B …) and merge them, so drift hits all alike."""
    merged: dict[str, loadgen.LoadResult] = {}
    cpu: dict[str, float] = {}
    by_pid: dict[str, dict[int, float]] = {}
    draws: dict[str, list[dict[str, Any]]] = {}
    sent: dict[str, int] = {}
    for _ in range(rounds):
        for name, server, bodies, check in pairs:
            requests = [loadgen.encode_post("127.0.0.1", server.port, HOOK, body) for body in bodies]
            sockets, spread = loadgen.balanced_connections("127.0.0.1", server.port, CONCURRENCY, server.workers)
            draws.setdefault(name, []).append(spread)
            cpu0 = server.cpu()
            result = loadgen.run("127.0.0.1", server.port, requests, concurrency=CONCURRENCY, duration_s=duration_s,
                                 warmup_s=warmup_s, check=check, sockets=sockets)
            cpu1 = server.cpu()
            cpu[name] = cpu.get(name, 0.0) + sum(cpu1.values()) - sum(cpu0.values())
            for pid in cpu1:
                by_pid.setdefault(name, {})[pid] = by_pid.get(name, {}).get(pid, 0.0) + cpu1[pid] - cpu0[pid]
            sent[name] = sent.get(name, 0) + result.answers_total
            if set(result.statuses) - {200} or result.failures:
                raise RuntimeError(f"{name}: {result.statuses} {result.failures}")
            total = merged.setdefault(name, loadgen.LoadResult())
            total.completed += result.completed
            total.latencies_ns += result.latencies_ns
            total.elapsed_s += result.elapsed_s
            total.client_cpu_s += result.client_cpu_s
            total.connections += result.connections
            for status, n in result.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + n
    out = {name: result.summary() for name, result in merged.items()}
    for name in out:
        # server CPU (master + workers, /proc) per answer, warm-up answers included on both sides of the ratio
        out[name]["server_cpu_us_per_request"] = round(cpu[name] / sent[name] * 1e6, 1)
        server = next(srv for n, srv, _, _ in pairs if n == name)
        workers = [by_pid[name][pid] for pid in server.workers]
        out[name]["worker_cpu_split"] = [round(v / (sum(workers) or 1.0), 2) for v in workers]
        out[name]["connections_per_worker"] = draws[name]
    return out


def run_wrk(server: servers.Server, body: bytes, seconds: int) -> dict[str, Any] | None:
    """Cross-check with wrk (C, epoll; one thread, the same 8 connections) when it is installed. wrk's connections
    are not rebalanced, so the workers' CPU split is recorded to show where the accept race put them."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    url = server.url
    cpu0 = server.cpu()
    data = _run_wrk(wrk, url, body, seconds)
    cpu1 = server.cpu()
    if data is not None and "per_s" in data:
        workers = [cpu1[pid] - cpu0[pid] for pid in server.workers]
        data["worker_cpu_split"] = [round(v / (sum(workers) or 1.0), 2) for v in workers]
    return data


def _run_wrk(wrk: str, url: str, body: bytes, seconds: int) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'local f = assert(io.open("{body_file}", "rb")); wrk.body = f:read("*a"); f:close()\n'
            "function done(summary, latency, requests)\n"
            '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"non2xx\\":%d,'
            '\\"errors\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n", summary.requests, summary.duration,'
            " summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +"
            " summary.errors.timeout, latency:percentile(50), latency:percentile(99)))\n"
            "end\n")
        proc = subprocess.run([wrk, "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "-s", str(script), url + HOOK],
                              capture_output=True, text=True, timeout=seconds + 30)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[len("WRKJSON "):])
            data["per_s"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
            return data
    return {"error": proc.stdout[-500:] + proc.stderr[-500:]}


def rest_call_timing(stub: servers.Server, template: workload.SteadyTemplate, n: int) -> dict[str, Any]:
    """The Flink REST call on its own: FlinkRestClient.jobs_overview() against the stub, warm keep-alive."""
    from hooks.flink_rest import FlinkRestClient
    from hooks.http_transport import CurlPool
    pool = CurlPool()
    client = FlinkRestClient(f"{stub.url}/{workload.NAMESPACE}/{workload.name_of(1)}", transport=pool)
    before = stub_stats(stub)
    for _ in range(50):
        client.jobs_overview()
    samples = []
    cpu0 = time.thread_time()
    for _ in range(n):
        start = time.perf_counter_ns()
        jobs = client.jobs_overview()
        samples.append(time.perf_counter_ns() - start)
    cpu = time.thread_time() - cpu0
    assert jobs and jobs[0].state == "RUNNING"
    after = stub_stats(stub)
    pool.close()
    stats = inprocess.summary_us(samples)
    stats["client_cpu_us_per_call"] = round(cpu / n * 1e6, 1)
    stats["stub_connections"] = after["connections"] - before["connections"]
    stats["stub_requests"] = after["requests"] - before["requests"]
    return stats


# ---------------------------------------------------------------------------------------------- the run
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:  # the control plane at scale (bench/sandbox_scale.py), a phase of its own
        from . import sandbox_scale
        return sandbox_scale.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test; numbers are noisier)")
    parser.add_argument("--scale", type=int, default=10_000, help="distinct FlinkDeployments in the scale run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    quick = args.quick
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    report: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "settings": {"workers": WORKERS, "threads": None, "concurrency": CONCURRENCY,
                                           "scale": args.scale, "quick": quick}}
    from hooks import gunicorn_conf
    report["settings"]["threads"] = gunicorn_conf.threads
    report["settings"]["worker_class"] = gunicorn_conf.worker_class

    log("building payloads (simulated world → STABLE)")
    template = workload.SteadyTemplate()
    first_bodies = [json.dumps(workload.first_request(i), separators=(",", ":")).encode() for i in range(args.scale)]
    steady_bodies = [template.text_for(i).encode() for i in range(args.scale)]
    first_body, steady_body = first_bodies[1], steady_bodies[1]

    # 1. In-process ----------------------------------------------------------------------------------------
    log("in-process: first sync, steady resync, JSON floors")
    report["inprocess"] = inprocess.run(template, iterations=1000 if quick else 4000, warmup=200 if quick else 400)

    # 2-5. Over HTTP -----------------------------------------------------------------------------------------
    stub = servers.flink_stub(template.job_id, template.start_time, RESULTS / "flink-stub.log", idle_timeout_s=70)
    hooks = servers.hooks_server(WORKERS, {
        "FLINK_SYNC_LOG_LEVEL": "INFO"}, RESULTS / "hooks-server.log")
    echo = servers.echo_server(WORKERS, RESULTS / "echo-server.log")
    started_servers: list[servers.Server] = []
    try:
        stub.start(0)
        started_servers.append(stub)
        hooks.env["FLINK_SYNC_REST_URL_TEMPLATE"] = flink_stub.rest_url_template(stub.port)
        hooks.start(WORKERS)
        started_servers.append(hooks)
        echo.start(WORKERS)
        started_servers.append(echo)
        report["rss_mb_at_start"] = {"hooks": [round(servers.rss_mb(p), 1) for p in hooks.pids()],
                                     "echo": [round(servers.rss_mb(p), 1) for p in echo.pids()]}

        rounds, warm, secs = (1, 0.5, 2.0) if quick else (3, 1.0, 3.0)
        log(f"HTTP: first sync vs echo, concurrency {CONCURRENCY}, {rounds}×{secs:g} s each, alternating")
        report["http_first"] = alternate([
            ("hooks", hooks, [first_body], checker("DEPLOYED", 5)),
            ("echo", echo, [first_body], checker("", 0)),
        ], rounds, warm, secs)

        log("HTTP: first sync with orjson hidden (stdlib json: the fallback when orjson cannot be imported)")
        plain = servers.hooks_server(WORKERS, {**hooks.env, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent / "no_orjson"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)},
            RESULTS / "hooks-server-stdlib-json.log")
        plain.start(WORKERS)
        started_servers.append(plain)
        report["http_first_stdlib_json"] = alternate([
            ("orjson", hooks, [first_body], checker("DEPLOYED", 5)),
            ("stdlib", plain, [first_body], checker("DEPLOYED", 5)),
        ], 1 if quick else 2, warm, secs)
        plain.stop()
        started_servers.remove(plain)

        log("HTTP: the ceiling — the same hook path with the core's answer memoised (bench/core_memo), vs the echo")
        memo = servers.hooks_server(WORKERS, {**hooks.env, "BENCH_CORE_MEMO": "1", "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent / "core_memo"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)},
            RESULTS / "hooks-server-core-memo.log")
        memo.start(WORKERS)
        started_servers.append(memo)
        report["http_ceiling"] = {
            "first": alternate([("memo", memo, [first_body], checker("DEPLOYED", 5)),
                                ("echo", echo, [first_body], checker("", 0))], 1 if quick else 2, warm, secs),
            "steady": alternate([("memo", memo, [steady_body], checker("STABLE", 5)),
                                 ("echo", echo, [steady_body], checker("", 0))], 1 if quick else 2, warm, secs)}
        memo.stop()
        started_servers.remove(memo)

        if not quick:
            log("cross-check with wrk (if installed)")
            report["wrk"] = {"hooks_first": run_wrk(hooks, first_body, 4), "echo_first": run_wrk(echo, first_body, 4)}

        log("HTTP: steady resync (2 Flink REST calls: jobs overview, cluster overview) vs echo of the same body")
        before = stub_stats(stub)
        stub_cpu0 = servers.cpu_seconds(stub.proc.pid)
        report["http_steady"] = alternate([
            ("hooks", hooks, [steady_body], checker("STABLE", 5)),
            ("echo", echo, [steady_body], checker("", 0)),
        ], rounds, warm, secs)
        after = stub_stats(stub)
        report["http_steady"]["stub"] = {"connections": after["connections"] - before["connections"],
                                         "requests": after["requests"] - before["requests"],
                                         "cpu_s": round(servers.cpu_seconds(stub.proc.pid) - stub_cpu0, 3)}

        log("REST call on its own, and one-at-a-time latency (concurrency 1)")
        report["rest_call"] = rest_call_timing(stub, template, 300 if quick else 2000)
        c1_secs = 1.0 if quick else 2.0
        report["http_c1"] = {
            "first": measure(hooks, [first_body], duration_s=c1_secs, warmup_s=0.3, concurrency=1,
                             check=checker("DEPLOYED", 5)),
            "steady": measure(hooks, [steady_body], duration_s=c1_secs, warmup_s=0.3, concurrency=1,
                              check=checker("STABLE", 5)),
            "echo_steady": measure(echo, [steady_body], duration_s=c1_secs, warmup_s=0.3, concurrency=1),
        }

        log(f"scale: {args.scale} distinct deployments, first sync each")
        report["scale_first"] = measure(hooks, first_bodies, count=args.scale, check=checker("DEPLOYED", 5))
        log(f"scale: {args.scale} distinct deployments, steady resync each (2 Flink REST calls each)")
        before = stub_stats(stub)
        report["scale_steady"] = measure(hooks, steady_bodies, count=args.scale, check=checker("STABLE", 5))
        after = stub_stats(stub)
        report["scale_steady"]["stub"] = {"connections": after["connections"] - before["connections"],
                                          "requests": after["requests"] - before["requests"],
                                          "open_connections_now": after["open_connections"]}
        report["rss_mb_after_scale"] = {"master": round(servers.rss_mb(hooks.pids()[0]), 1),
                                        "workers": [round(servers.rss_mb(p), 1) for p in hooks.workers],
                                        "echo_workers": [round(servers.rss_mb(p), 1) for p in echo.workers]}
        report["open_fds_after_scale"] = {"workers": [servers.open_fds(p) for p in hooks.workers]}

    finally:
        for server in reversed(started_servers):
            server.stop()
    try:
        import orjson  # noqa: F401  (the hooks server runs in this interpreter's environment)
        report["hooks_json"] = "orjson"
    except ImportError:
        report["hooks_json"] = "stdlib json"
    report["elapsed_s"] = round(time.time() - started, 1)
    table = render_table(report)
    report["table"] = table.splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    args.out.with_suffix(".txt").write_text(table + "\n")
    print(table)
    log(f"done in {report['elapsed_s']} s; wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------- the table
def _ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}" if target else "-"


def render_table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []  # figure, measured, target, measured ÷ target, verdict

    def section(title: str) -> None:
        rows.append(("## " + title, "", "", "", ""))

    def row(figure: str, measured: str, target: str = "", ratio: str = "", ok: bool | None = None) -> None:
        rows.append((figure, measured, target, ratio, "" if ok is None else ("ok" if ok else "MISSED")))

    def ms(d: dict[str, Any]) -> str:
        return f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms"

    ip = r["inprocess"]
    section("in-process: sync_deployment() + response dict on a decoded request (no HTTP, no JSON)")
    for case, floor, label in (("first", "floor_first", "first sync"), ("steady", "floor_steady", "steady resync")):
        p99, floor_p99 = ip[case]["p99_us"], ip[floor]["p99_us"]
        row(f"{label}: p50 / p99", f"{ip[case]['p50_us']:.0f} / {p99:.0f} µs", "p99 ≤ 1000 µs", _ratio(p99, 1000),
            p99 <= 1000)
        row("  JSON floor: orjson decode request + encode response, p50 / p99",
            f"{ip[floor]['p50_us']:.1f} / {floor_p99:.1f} µs")
        # issue 19's target for the steady resync (≤ 4×); issue 6's ≤ 5× for the first sync
        most = 4 if case == "steady" else 5
        row(f"  {label} ÷ floor (p99)", f"{p99 / floor_p99:.1f}×", f"≤ {most}×", _ratio(p99 / floor_p99, most),
            p99 / floor_p99 <= most)
    row("steady resync with stdlib json decode + sorted encode around it: p50 / p99",
        f"{ip['app_steady']['p50_us']:.0f} / {ip['app_steady']['p99_us']:.0f} µs")
    pb = ip["payload_bytes"]
    row("bytes: first request / steady request / steady response", f"{pb['first']} / {pb['steady']} / {pb['steady_response']}")

    s = r["settings"]
    section(f"HTTP: flink-sync serve (gunicorn {s['worker_class']}, {s['workers']} workers × {s['threads']} threads) "
            f"vs echo_app served the same way; {s['concurrency']} keep-alive connections, 4 per worker")
    for key, label in (("http_first", "first sync (no Flink call)"), ("http_steady", "steady resync (+2 Flink calls)")):
        hooks, echo = r[key]["hooks"], r[key]["echo"]
        share = hooks["per_s"] / echo["per_s"]
        row(f"{label}: syncs/s, p50 / p99", f"{hooks['per_s']:.0f}/s, {ms(hooks)}", "≥ 1500/s",
            _ratio(hooks["per_s"], 1500), hooks["per_s"] >= 1500)
        row("  echo, same body: req/s, p50 / p99", f"{echo['per_s']:.0f}/s, {ms(echo)}")
        least = 0.55 if key == "http_first" else 0.45  # issue 19's targets
        row("  hooks ÷ echo", f"{share:.0%}", f"≥ {least:.0%}", _ratio(share, least), share >= least)
        row("  server CPU per request, hooks / echo",
            f"{hooks['server_cpu_us_per_request']:.0f} / {echo['server_cpu_us_per_request']:.0f} µs")
        ceiling = (r.get("http_ceiling") or {}).get("first" if key == "http_first" else "steady")
        if ceiling:
            top = ceiling["memo"]["per_s"] / ceiling["echo"]["per_s"]
            row("  ceiling: the same hook path, core answer memoised (bench/core_memo) ÷ echo",
                f"{top:.0%} (server CPU {ceiling['memo']['server_cpu_us_per_request']:.0f} / "
                f"{ceiling['echo']['server_cpu_us_per_request']:.0f} µs)", f"≥ {least:.0%}", _ratio(top, least),
                top >= least)
        # The measured rate above shares the 2 cores with the load generator (and the Flink stub); the pod's
        # own capacity is what its cores give at the server CPU each request costs.
        cpus = r["machine"]["cpus"] or 1
        capacity = cpus / (hooks["server_cpu_us_per_request"] / 1e6)
        row(f"  capacity of the {cpus} cores alone: {cpus} CPU-s ÷ server CPU per request", f"{capacity:.0f}/s",
            "≥ 1500/s", _ratio(capacity, 1500), capacity >= 1500)
        row("  load generator CPU, hooks / echo run (share of one core)",
            f"{hooks['client_cpu_share_of_one_core']:.0%} / {echo['client_cpu_share_of_one_core']:.0%}")
        if key == "http_first":
            sj = r.get("http_first_stdlib_json")
            if sj:
                row("  hooks with stdlib json (orjson hidden) vs orjson, same turns",
                    f"{sj['stdlib']['per_s']:.0f} vs {sj['orjson']['per_s']:.0f}/s; "
                    f"{sj['stdlib']['server_cpu_us_per_request']:.0f} vs {sj['orjson']['server_cpu_us_per_request']:.0f} µs CPU")
            wrk = r.get("wrk") or {}
            if (wrk.get("hooks_first") or {}).get("per_s") and (wrk.get("echo_first") or {}).get("per_s"):
                wh, we = wrk["hooks_first"], wrk["echo_first"]
                split = lambda d: "+".join(f"{v:.0%}" for v in d.get("worker_cpu_split", []))  # noqa: E731
                row("  cross-check, wrk -t1 -c8 (not rebalanced): hooks / echo",
                    f"{wh['per_s']:.0f}/s / {we['per_s']:.0f}/s; p99 {wh['p99_us'] / 1000:.2f} / "
                    f"{we['p99_us'] / 1000:.2f} ms; worker CPU {split(wh)} / {split(we)}")
        else:
            stub = r[key]["stub"]
            row("  Flink stub CPU per call (separate process, same cores)",
                f"{stub['cpu_s'] / max(1, stub['requests']) * 1e6:.0f} µs")
    draw = r["http_first"]["hooks"]["connections_per_worker"][0]["first_draw"]
    row("accept race: 8 new connections as the 2 workers took them",
        " + ".join(str(v) for v in draw.values()) + " (rebalanced to 4 + 4 for every run)")

    section("one Flink REST call (GET /jobs/overview) against the local stub")
    rc = r["rest_call"]
    row("FlinkRestClient.jobs_overview() alone, warm: p50 / p99", f"{rc['p50_us']:.0f} / {rc['p99_us']:.0f} µs")
    row("  client CPU per call", f"{rc['client_cpu_us_per_call']:.0f} µs")
    c1 = r["http_c1"]
    row("one request at a time, p50: first / steady (+call) / echo",
        f"{c1['first']['p50_ms']:.2f} / {c1['steady']['p50_ms']:.2f} / {c1['echo_steady']['p50_ms']:.2f} ms")
    st = r["http_steady"]["stub"]
    row("connection reuse: stub TCP connections / requests (steady runs)", f"{st['connections']} / {st['requests']}",
        "conns ≪ reqs", "", st["connections"] * 50 <= st["requests"])

    n = s["scale"]
    section(f"scale: {n:,} distinct FlinkDeployments, one sync each over HTTP (8 connections, no warm-up)")
    sf, ss = r["scale_first"], r["scale_steady"]
    row("first syncs: total, syncs/s", f"{sf['elapsed_s']:.1f} s, {sf['per_s']:.0f}/s")
    row("steady resyncs (+2 Flink calls each): total, syncs/s", f"{ss['elapsed_s']:.1f} s, {ss['per_s']:.0f}/s")
    cpu = ss["server_cpu_s"]
    cpus = r["machine"]["cpus"] or 1
    row("  server CPU (master + workers, /proc)", f"{cpu:.1f} CPU-s = {cpu / ss['completed'] * 1e6:.0f} µs per sync")
    row(f"  CPU share of one 60 s resync period of all {n:,}",
        f"{cpu / 60:.0%} of one core = {cpu / 60 / cpus:.0%} of the pod's {cpus} cores")
    row("  stub TCP connections / requests", f"{ss['stub']['connections']} / {ss['stub']['requests']}")
    rss = r["rss_mb_after_scale"]
    worst = max(rss["workers"])
    row("RSS per worker after the scale runs",
        " / ".join(f"{v:.0f}" for v in rss["workers"]) + " MB (at start " + " / ".join(
            f"{v:.0f}" for v in r["rss_mb_at_start"]["hooks"][1:]) + f"; master {rss['master']:.0f})",
        "≤ 80 MB", _ratio(worst, 80), worst <= 80)
    row("  open file descriptors per worker", " / ".join(str(v) for v in r["open_fds_after_scale"]["workers"]))

    m = r["machine"]
    lines = [f"flink-sync benchmark: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
             f"gunicorn {m['gunicorn']}, pydantic {m['pydantic']}, JSON codec in the hooks: {r.get('hooks_json', '?')}; "
             f"{r['started']}, {r['elapsed_s']} s, load average at start {m['loadavg_at_start'][0]:.2f}"
             + (" [--quick]" if s.get("quick") else ""),
             "load generator: bench/loadgen.py (one thread, selectors, pre-encoded requests) on the same 2 cores as "
             "the servers; its CPU share is shown. The Flink stub is a separate process, not counted as server CPU.",
             ""]
    widths = [max(len(x[i]) for x in rows if not x[0].startswith("## ")) for i in range(5)]
    lines.append("  ".join(t.ljust(w) for t, w in zip(("figure", "measured", "target", "÷ target", ""), widths, strict=True)).rstrip())
    for cols in rows:
        if cols[0].startswith("## "):
            lines += ["", cols[0][3:]]
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
