"""The control plane at scale (`python -m bench sandbox`, or `make bench BENCH_SANDBOX=1`): N FlinkDeployments
created at once in a sandbox of their own (real etcd, kube-apiserver and kube-controller-manager, the hook server,
the Metacontroller stand-in at Metacontroller's defaults: 5 workers, API client 5 qps / burst 10), whose node agent
runs the Flink REST stub (`--flink-rest-stub`, sandbox/flinkstub.py) instead of JVMs.

    python -m bench sandbox [--deployments 1000] [--steady-seconds 130] [--timeout 7200]
            [--qps 5 --burst 10] [--workers 5]

Measures the time until every deployment is STABLE, the API requests while settling and while steady (the
stand-in's client counters, by verb and resource; the API server's own `apiserver_request_total` for the writes
of every client), and the CPU of each process (the hooks: gunicorn master + workers). The steady window is at
least two resync periods (60 s each), so each parent is resynced at least once in it. Writes the report to
bench/results/sandbox-latest.json and a table to sandbox-latest.txt. The sandbox is started in a temporary
directory and stopped (every process by its PID) at the end, also on errors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandbox.kube import ApiError, Kube

from . import servers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NAMESPACE = "default"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY", "DELETECOLLECTION"}


def log(message: str) -> None:
    print(f"[bench sandbox {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def deployment(i: int) -> dict[str, Any]:
    """A small application deployment: one JobManager and one TaskManager pod (parallelism 2, 2 slots)."""
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
            "metadata": {"name": f"scale-{i:05d}", "namespace": NAMESPACE, "labels": {"bench": "sandbox-scale"}},
            "spec": {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
                     "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2",
                                            "state.savepoints.dir": "file:///tmp/flink-sync-bench/savepoints",
                                            "state.checkpoints.dir": "file:///tmp/flink-sync-bench/checkpoints"},
                     "jobManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
                     "taskManager": {"resource": {"memory": "1024m", "cpu": 0.5}},
                     "job": {"jarURI": "local:///opt/flink/usrlib/flink-sync-sandbox-counter.jar",
                             "parallelism": 2, "upgradeMode": "savepoint"}}}


def pids_by_name(state: Path) -> dict[str, int]:
    out = {}
    for line in (state / "pids").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = int(parts[1])
    return out


def process_cpu(state: Path) -> dict[str, float]:
    """CPU seconds of each sandbox process; the hooks' gunicorn master and workers summed as `hooks`."""
    from tests.server import worker_pids
    out = {}
    for name, pid in pids_by_name(state).items():
        try:
            pids = [pid, *worker_pids(pid)] if name in ("hooks", "admission") else [pid]
            out[name] = round(sum(servers.cpu_seconds(p) for p in pids), 2)
        except (OSError, ValueError):
            continue
    return out


def kept_answers(state: Path) -> float:
    """The hook server's flink_sync_kept_answers_total: resyncs answered from a kept record (sync/settled.py)."""
    port = json.loads((state / "ports.json").read_text())["hooks"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("flink_sync_kept_answers_total"))


def stand_in_stats(state: Path) -> dict[str, Any]:
    path = state / "metacontroller-stats.json"
    for _ in range(20):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.5)
    raise RuntimeError(f"no stats from the Metacontroller stand-in in {path}")


def apiserver_writes(kube: Kube) -> Counter[str]:
    """Every client's writes so far, as the API server counts them (`apiserver_request_total`), by verb/resource."""
    text = kube._session.get(kube.server + "/metrics", timeout=30).text  # noqa: SLF001 - the admin session
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = dict(part.split("=", 1) for part in labels_text[len("apiserver_request_total{"):].split(",") if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in WRITE_VERBS:
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            out[f"{labels['verb']} {labels.get('resource', '?')}{sub}"] += int(float(value))
    return out


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(keys) if after.get(k, 0) != before.get(k, 0)}


def snapshot(kube: Kube, state: Path) -> dict[str, Any]:
    stats = stand_in_stats(state)
    return {"time": time.time(), "stand_in": stats, "apiserver_writes": dict(apiserver_writes(kube)),
            "cpu": process_cpu(state), "kept_answers": kept_answers(state)}


def lifecycle_counts(kube: Kube) -> Counter[str]:
    """Deployments by lifecycle state, and (`kept`) how many carry the record of their fixed point
    (status.flinkSync.settled: their resyncs are answered from it; written by the first resync after settling)."""
    res = kube.resource("flink.apache.org/v1beta1", "flinkdeployments")
    items = kube.list(res, NAMESPACE, label_selector="bench=sandbox-scale")
    counts = Counter(((i.get("status") or {}).get("lifecycleState") or "none") for i in items)
    counts["kept"] = sum(1 for i in items if ((i.get("status") or {}).get("flinkSync") or {}).get("settled"))
    return counts


def create_all(kube: Kube, n: int) -> float:
    started = time.monotonic()

    def create(i: int) -> None:
        for attempt in range(20):
            try:
                kube.create(deployment(i))
                return
            except ApiError as e:
                if e.status == 409:
                    return
                if attempt == 19:
                    raise
                time.sleep(0.5)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - started


def phase(before: dict[str, Any], after: dict[str, Any], parents: int) -> dict[str, Any]:
    """What happened between two snapshots: the stand-in's requests (reads apart from writes), its syncs and hook
    calls, every client's writes (API server), each process's CPU."""
    requests = diff(after["stand_in"]["requests"], before["stand_in"]["requests"])
    writes = {k: v for k, v in requests.items() if k.split(" ", 1)[0] in WRITE_VERBS}
    reads = {k: v for k, v in requests.items() if k not in writes}
    ctrl_after = after["stand_in"]["controllers"].get("flink-sync-flinkdeployment") or {}
    ctrl_before = before["stand_in"]["controllers"].get("flink-sync-flinkdeployment") or {}
    syncs = ctrl_after.get("syncs", 0) - ctrl_before.get("syncs", 0)
    hook_calls = diff(ctrl_after.get("hook_calls", {}), ctrl_before.get("hook_calls", {}))
    seconds = after["time"] - before["time"]
    return {"seconds": round(seconds, 1), "syncs": syncs, "hook_calls": hook_calls,
            "kept_answers": int(after["kept_answers"] - before["kept_answers"]),
            "hook_seconds": round(ctrl_after.get("hook_seconds", 0) - ctrl_before.get("hook_seconds", 0), 2),
            "stand_in_writes": writes, "stand_in_reads": reads,
            "stand_in_writes_total": sum(writes.values()), "stand_in_reads_total": sum(reads.values()),
            "stand_in_writes_per_parent": round(sum(writes.values()) / parents, 2),
            "stand_in_writes_per_sync": round(sum(writes.values()) / max(1, syncs), 3),
            "waited_for_tokens_s": round(((after["stand_in"].get("client") or {}).get("waited_s", 0)
                                          - (before["stand_in"].get("client") or {}).get("waited_s", 0)), 1),
            "apiserver_writes": diff(after["apiserver_writes"], before["apiserver_writes"]),
            "cpu_s": diff_float(after["cpu"], before["cpu"])}


def diff_float(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in sorted(after)}


def run(n: int, steady_s: float, timeout_s: float, qps: float, burst: int, workers: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="flink-sync-bench-sandbox-")) / "state"
    env = {**os.environ, "SANDBOX_DIR": str(state), "SANDBOX_FLINK_REST_STUB": "1",
           "SANDBOX_METACONTROLLER_QPS": str(qps), "SANDBOX_METACONTROLLER_BURST": str(burst),
           "SANDBOX_METACONTROLLER_WORKERS": str(workers), "SANDBOX_METACONTROLLER_CACHED_READS": "1"}
    report: dict[str, Any] = {"deployments": n, "metacontroller": {"workers": workers, "qps": qps, "burst": burst},
                              "hooks": {"workers": 2, "threads": 4}, "pods_per_deployment": 2,
                              "loadavg_at_start": os.getloadavg()}
    log(f"starting a sandbox in {state} (node agent: Flink REST stub)")
    up = subprocess.run([sys.executable, "-m", "sandbox", "up", "--flink", "1.20"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=3600)
    try:
        if up.returncode != 0:
            raise RuntimeError(f"sandbox up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        kube = Kube.from_kubeconfig(state / "kubeconfig", timeout=60)
        time.sleep(2)
        start = snapshot(kube, state)
        log(f"creating {n} FlinkDeployments")
        report["create_s"] = round(create_all(kube, n), 1)
        report["progress"] = wait_stable(kube, n, start["time"], timeout_s, state)
        settled = snapshot(kube, state)
        report["settle"] = phase(start, settled, n)
        report["all_stable_s"] = next(p["s"] for p in report["progress"] if p.get("STABLE", 0) >= n)
        log(f"all {n} STABLE after {report['all_stable_s']} s, and all with their record after "
            f"{report['settle']['seconds']} s; steady window of {steady_s:.0f} s")
        time.sleep(steady_s)
        steady = snapshot(kube, state)
        report["steady"] = phase(settled, steady, n)
        report["lifecycle_after_steady"] = dict(lifecycle_counts(kube))
        report["stand_in_log_warnings"] = sum(1 for line in (state / "logs" / "metacontroller.log").read_text(
            errors="replace").splitlines() if " WARNING " in line)
    finally:
        logs = RESULTS / "sandbox-logs"
        if (state / "logs").is_dir():
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(state / "logs", logs)
        subprocess.run([sys.executable, "-m", "sandbox", "down"], cwd=ROOT, env=env, timeout=600,
                       capture_output=True)
    return report


def wait_stable(kube: Kube, n: int, since: float, timeout_s: float, state: Path,
                stall_s: float = 600.0) -> list[dict[str, Any]]:
    """Poll the lifecycle states every 5 s until all n are STABLE and carry their record (`kept`); the progress
    is kept (time → counts). Stops early when the counts have not moved for `stall_s`, with what the stand-in
    keeps failing at."""
    progress = []
    deadline = time.monotonic() + timeout_s
    last_change, last_counts = time.monotonic(), None
    while True:
        counts = lifecycle_counts(kube)
        progress.append({"s": round(time.time() - since, 1), **counts})
        if counts.get("STABLE", 0) >= n and counts.get("kept", 0) >= n:
            return progress
        if counts != last_counts:
            last_change, last_counts = time.monotonic(), counts
        if len(progress) % 6 == 1:
            log(f"{dict(counts)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all STABLE within {timeout_s:.0f} s: {dict(counts)}")
        if time.monotonic() - last_change > stall_s:
            raise RuntimeError(f"no progress for {stall_s:.0f} s at {dict(counts)}; the stand-in's last failures:\n"
                               + "\n".join(_last_failures(state)))
        time.sleep(5)


def _last_failures(state: Path, count: int = 5) -> list[str]:
    """The stand-in's last distinct sync failures (its log's WARNING lines, without the parent's name)."""
    lines = (state / "logs" / "metacontroller.log").read_text(errors="replace").splitlines()
    seen: dict[str, None] = {}
    for line in reversed(lines):
        if " WARNING " in line and "failed to sync" in line:
            seen.setdefault(line.split("): ", 1)[-1][:300], None)
            if len(seen) >= count:
                break
    return list(seen)


def table(r: dict[str, Any]) -> str:
    s, st = r["settle"], r["steady"]
    mc = r["metacontroller"]
    n = r["deployments"]
    rows = [
        f"control plane at scale: {n} FlinkDeployments created at once ({r['pods_per_deployment']} pods each, "
        f"Flink REST stub); Metacontroller stand-in {mc['workers']} workers, API client {mc['qps']:g} qps burst "
        f"{mc['burst']}; hooks 2 workers x 4 threads; load average at start {r['loadavg_at_start'][0]:.2f}",
        f"created (8 client threads, admission webhook on)         {r['create_s']:.0f} s",
        f"until all STABLE (from the first create)                  {r.get('all_stable_s', s['seconds']):.0f} s",
        f"  until all also carry their kept record (one status write) {s['seconds']:.0f} s",
        f"syncs / hook calls while settling                         {s['syncs']} / "
        + ", ".join(f"{k} {v}" for k, v in s["hook_calls"].items()),
        f"stand-in writes while settling: total, per parent          {s['stand_in_writes_total']}, "
        f"{s['stand_in_writes_per_parent']}  ({', '.join(f'{k} {v}' for k, v in s['stand_in_writes'].items())})",
        f"  time writes waited for a token (all workers)            {s['waited_for_tokens_s']:.0f} s",
        f"stand-in reads while settling (stand in for its cache)    {s['stand_in_reads_total']}",
        f"all clients' writes while settling (API server)           {sum(s['apiserver_writes'].values())}",
        f"steady window: seconds, syncs                             {st['seconds']:.0f} s, {st['syncs']}",
        f"  answered from a kept record (sync/settled.py)            {st.get('kept_answers', 0)}",
        f"stand-in writes in the steady window                      {st['stand_in_writes_total']} "
        f"({st['stand_in_writes_per_sync']} per sync)" + (f" {st['stand_in_writes']}" if st["stand_in_writes"] else ""),
        f"all clients' writes in the steady window (API server)     {sum(st['apiserver_writes'].values())}"
        + (f" {st['apiserver_writes']}" if st["apiserver_writes"] else ""),
        f"hook CPU (gunicorn master + workers): settling, steady    {s['cpu_s'].get('hooks', 0):.1f} s, "
        f"{st['cpu_s'].get('hooks', 0):.1f} s = {st['cpu_s'].get('hooks', 0) / max(1, st['syncs']) * 1e3:.1f} ms per "
        f"steady sync",
        "CPU while settling, by process                           " + ", ".join(
            f"{k} {v:.0f} s" for k, v in sorted(s["cpu_s"].items(), key=lambda kv: -kv[1]) if v >= 0.5),
        "CPU in the steady window, by process                     " + ", ".join(
            f"{k} {v:.0f} s" for k, v in sorted(st["cpu_s"].items(), key=lambda kv: -kv[1]) if v >= 0.5),
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sandbox")
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--steady-seconds", type=float, default=130.0)
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds to wait for all STABLE")
    parser.add_argument("--qps", type=float, default=5.0, help="the stand-in's API client (Metacontroller: 5)")
    parser.add_argument("--burst", type=int, default=10, help="the stand-in's API client (Metacontroller: 10)")
    parser.add_argument("--workers", type=int, default=5, help="the stand-in's workers (Metacontroller: 5)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sandbox-latest.json")
    args = parser.parse_args(argv)
    report = run(args.deployments, args.steady_seconds, args.timeout, args.qps, args.burst, args.workers)
    text = table(report)
    report["table"] = text.splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
