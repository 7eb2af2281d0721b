"""The test bed's stateful streaming job (``job/CounterJob.java``): build it and read its state.

The jar is compiled with ``javac --release 11`` against flink-dist only and cached in
``$FLINK_SYNC_CACHE/jobs/counter-<hash>/counter.jar``, where the hash covers the Java source and
the Flink version it was compiled against. A rebuild takes about a second.

For the autoscaler tests the load is controllable (:func:`counter_args` ``rate_file``, ``cost_us``): the source
rate follows a file the test rewrites, and each record costs a known busy time in ``count-per-key``.

The job's ``count-per-key`` operator publishes the gauge ``snapshot`` =
``"lastValue,stateTotal,restoredTotal"``; :func:`read_counter` reads it through REST. After a
restore from a savepoint, ``stateTotal`` continues from the restored counts (at parallelism 1:
``stateTotal == lastValue + 1`` and ``restoredTotal > 0``); a job that lost its state would count
from zero again.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .dist import FlinkDist, cache_root
from .rest import FlinkRest, FlinkRestError

JOB_SOURCE = Path(__file__).with_name("job") / "CounterJob.java"
COUNTER_JOB_CLASS = "flinkbed.CounterJob"
COUNTER_OPERATOR = "count-per-key"  # name and uid of the stateful operator
JAVAC_RELEASE = "11"


class JobBuildError(RuntimeError):
    """javac failed (or is missing: run scripts/ensure-java.sh)."""


def _java_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise JobBuildError(f"`{name}` not found on PATH; run scripts/ensure-java.sh (JDK 17)")
    return path


def build_counter_jar(dist: FlinkDist) -> Path:
    """Compile ``CounterJob.java`` against ``dist``'s flink-dist jar; returns the cached jar path.

    The jar has ``Main-Class: flinkbed.CounterJob``. Concurrent callers are serialised by a lock
    file; the jar appears atomically.
    """
    source = JOB_SOURCE.read_bytes()
    digest = hashlib.sha256(source + f"|release={JAVAC_RELEASE}|flink={dist.version}".encode()).hexdigest()[:16]
    out_dir = cache_root() / "jobs" / f"counter-{digest}"
    jar = out_dir / "counter.jar"
    if jar.is_file():
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():
            return jar
        with tempfile.TemporaryDirectory(prefix="counterjob-") as tmp:
            classes = Path(tmp) / "classes"
            classes.mkdir()
            cmd = [
                _java_tool("javac"), "--release", JAVAC_RELEASE, "-nowarn", "-encoding", "UTF-8",
                "-cp", str(dist.dist_jar), "-d", str(classes), str(JOB_SOURCE),
            ]  # fmt: skip
            res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                raise JobBuildError(f"javac failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
            tmp_jar = Path(tmp) / "counter.jar"
            manifest = (
                f"Manifest-Version: 1.0\r\nMain-Class: {COUNTER_JOB_CLASS}\r\nCreated-By: flink-sync test bed\r\n\r\n"
            )
            with zipfile.ZipFile(tmp_jar, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("META-INF/MANIFEST.MF", manifest)
                for cls in sorted(classes.rglob("*.class")):
                    zf.write(cls, cls.relative_to(classes).as_posix())
            shutil.move(str(tmp_jar), str(out_dir / "counter.jar.tmp"))
            (out_dir / "counter.jar.tmp").rename(jar)
    return jar


def counter_args(
    rate: float = 50,
    keys: int = 4,
    fail_at_value: int | None = None,
    fail_always: bool = False,
    fail_tasks_always: bool = False,
    checkpoint_interval_ms: int | None = None,
    rate_file: Path | None = None,
    cost_us: int | None = None,
) -> list[str]:
    """Program arguments for :data:`COUNTER_JOB_CLASS` (what ``spec.job.args`` would hold).

    A controllable load: with ``rate_file`` the source reads its total rate from that file at run time (``rate``
    while the file is missing); ``cost_us`` makes each record cost that much busy time in the counting operator.
    """
    args = ["--rate", f"{rate:g}", "--keys", str(keys)]
    if rate_file is not None:
        args += ["--rate-file", str(rate_file)]
    if cost_us:
        args += ["--cost-us", str(cost_us)]
    if fail_at_value is not None:
        args += ["--fail-at-value", str(fail_at_value)]
    if checkpoint_interval_ms:
        args += ["--checkpoint-interval-ms", str(checkpoint_interval_ms)]
    if fail_always:
        args.append("--fail-always")
    if fail_tasks_always:
        args.append("--fail-tasks-always")
    return args


@dataclass(frozen=True)
class CounterSnapshot:
    """The ``snapshot`` gauge, summed over the counting operator's subtasks."""

    last_value: int  # highest source value seen (-1: none yet)
    state_total: int  # sum of all per-key counts held in keyed state
    restored_total: int  # the part of state_total that was restored from a savepoint/checkpoint
    subtasks: int  # how many subtasks reported

    @property
    def consistent(self) -> bool:
        """At parallelism 1: every value 0..last_value is counted exactly once in keyed state."""
        return self.state_total == self.last_value + 1


def _counter_vertex(rest: FlinkRest, job_id: str) -> tuple[str, int]:
    for vertex in rest.get(f"/jobs/{job_id}").get("vertices", []):
        if COUNTER_OPERATOR in vertex.get("name", ""):
            return vertex["id"], int(vertex.get("parallelism", 1))
    raise FlinkRestError(f"job {job_id} has no vertex containing {COUNTER_OPERATOR!r}")


def read_counter_once(rest: FlinkRest, job_id: str) -> CounterSnapshot | None:
    """One read of the ``snapshot`` gauges; None while no subtask has published a value yet."""
    vertex_id, parallelism = _counter_vertex(rest, job_id)
    names = ",".join(f"{i}.{COUNTER_OPERATOR}.snapshot" for i in range(parallelism))
    metrics = rest.get(f"/jobs/{job_id}/vertices/{vertex_id}/metrics?get={quote(names, safe=',')}")
    values = [m["value"] for m in metrics if "value" in m]
    if not values:
        return None
    parts = [tuple(int(x) for x in v.split(",")) for v in values]
    return CounterSnapshot(
        last_value=max(p[0] for p in parts),
        state_total=sum(p[1] for p in parts),
        restored_total=sum(p[2] for p in parts),
        subtasks=len(parts),
    )


def read_counter(rest: FlinkRest, job_id: str, min_last_value: int = 0, timeout_s: float = 30.0,
                 min_state_total: int = 0) -> CounterSnapshot:
    """Wait until the job's counter gauge shows ``last_value >= min_last_value`` and
    ``state_total >= min_state_total``; return it.

    "Keyed state continued" past an earlier reading is ``read_counter_past``.

    Gauges reach REST through the metric fetcher, every ``metrics.fetcher.update-interval``
    (10 s by default; the pod runner lowers it to 1 s), so the first value may take a moment.
    """
    deadline = time.monotonic() + timeout_s
    last: CounterSnapshot | None | Exception = None
    while time.monotonic() < deadline:
        try:
            snap = read_counter_once(rest, job_id)
            last = snap
            if snap is not None and snap.last_value >= min_last_value and snap.state_total >= min_state_total:
                return snap
        except (OSError, FlinkRestError, ValueError) as e:
            last = e
        time.sleep(0.3)
    raise FlinkRestError(f"counter of job {job_id} not at value {min_last_value} and total {min_state_total} "
                         f"after {timeout_s}s; last: {last!r}")


def read_counter_past(rest: FlinkRest, job_id: str, before: CounterSnapshot, timeout_s: float = 30.0) -> CounterSnapshot:
    """A reading past `before` in both the source's position and the keyed state total.

    A restored subtask counts a key's restored count only when it first sees that key again, so
    just after a restore ``state_total`` covers some keys only, even where ``last_value`` is
    already past the earlier reading (the snapshot restored from may be newer than it): both are
    waited for.
    """
    return read_counter(rest, job_id, min_last_value=before.last_value + 1, timeout_s=timeout_s,
                        min_state_total=before.state_total + 1)
