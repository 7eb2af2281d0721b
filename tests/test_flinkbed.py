"""Tests of the real-Flink test bed (``tests/flinkbed``).

``@pytest.mark.flink`` tests start real Flink 1.20.3 and 2.3.0 clusters from children written by
hand in the exact shapes the Apache Flink Kubernetes Operator renders for a standalone cluster.
The unmarked tests check the pod runner's
Kubernetes semantics (level-based apply, crash/restart, cleanup) with a fake ``java`` that starts
in milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flinkbed.dist import FlinkDist
from tests.flinkbed.fixtures import JM_PROCESS_MEMORY, TM_PROCESS_MEMORY
from tests.flinkbed.job import COUNTER_JOB_CLASS, counter_args, read_counter
from tests.flinkbed.podrunner import JAVA17_OPENS, PodCrashed, PodRunner
from tests.flinkbed.rest import same_path

NAMESPACE = "flink"
JOB_ID = "3e1fa1c2b0d94c5e8f7a6b5c4d3e2f10"

# What the operator's Helm chart ships as log4j-console.properties (abridged): console + a file
# per process at ${sys:log.file}.
LOG4J_CONSOLE = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
rootLogger.appenderRef.rolling.ref = RollingFileAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = WARN
appender.rolling.name = RollingFileAppender
appender.rolling.type = RollingFile
appender.rolling.append = true
appender.rolling.fileName = ${sys:log.file}
appender.rolling.filePattern = ${sys:log.file}.%i
appender.rolling.layout.type = PatternLayout
appender.rolling.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.rolling.policies.type = Policies
appender.rolling.policies.size.type = SizeBasedTriggeringPolicy
appender.rolling.policies.size.size = 100MB
appender.rolling.strategy.type = DefaultRolloverStrategy
appender.rolling.strategy.max = 10
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
"""


# ------------------------------------------------------------------------------------------------
# Hand-written children of a standalone FlinkDeployment (the Apache operator's shapes)
# ------------------------------------------------------------------------------------------------


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted keys → nested maps, as the operator writes ``config.yaml`` for Flink 2.x."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def flink_config(
    name: str,
    dist: FlinkDist,
    tmp: Path,
    *,
    application: bool,
    jar: Path | None = None,
    restore_from: str | None = None,
) -> dict[str, Any]:
    """The effective configuration the operator puts into ``flink-config-<name>``."""
    conf: dict[str, Any] = {
        "$internal.flink.version": "v2_3" if dist.major >= 2 else "v1_20",
        "blob.server.port": 6124,
        "env.java.default-opts.all": " ".join(JAVA17_OPENS),  # the operator's default for >= v1_19
        "execution.target": "remote",
        "jobmanager.memory.process.size": JM_PROCESS_MEMORY,
        "jobmanager.rpc.address": f"{name}.{NAMESPACE}",
        "jobmanager.rpc.port": 6123,
        "kubernetes.cluster-id": name,
        "kubernetes.namespace": NAMESPACE,
        "kubernetes.internal.taskmanager.replicas": 1,
        "kubernetes.jobmanager.cpu.amount": 1.0,
        "kubernetes.taskmanager.cpu.amount": 1.0,
        "kubernetes.rest-service.exposed.type": "ClusterIP",
        "rest.port": 8081,
        "state.checkpoints.dir": f"file://{tmp}/checkpoints",
        "state.savepoints.dir": f"file://{tmp}/savepoints",
        "taskmanager.memory.process.size": TM_PROCESS_MEMORY,
        "taskmanager.numberOfTaskSlots": 1,
        "taskmanager.rpc.port": 6122,
        "web.cancel.enable": False,
    }
    if application:
        assert jar is not None
        conf.update(
            {
                "kubernetes.internal.cluster-mode": "APPLICATION",
                "$internal.application.main": COUNTER_JOB_CLASS,
                "$internal.pipeline.job-id": JOB_ID,
                "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
                "execution.shutdown-on-application-finish": False,
                "execution.submit-failed-job-on-application-error": True,
                "parallelism.default": 1,
                "pipeline.classpaths": [f"file://{jar}"],  # from jarURI local:///...counter.jar
                "pipeline.name": name,
            }
        )
        if restore_from:
            key = "execution.state-recovery.path" if dist.major >= 2 else "execution.savepoint.path"
            conf[key] = restore_from
    else:
        conf["kubernetes.internal.cluster-mode"] = "SESSION"
    return conf


def render_config_file(conf: dict[str, Any], dist: FlinkDist) -> tuple[str, str]:
    """(file name, content): flat legacy ``flink-conf.yaml`` for 1.x, nested ``config.yaml`` for 2.x."""
    if dist.major >= 2:
        return "config.yaml", yaml.safe_dump(_nest(conf), sort_keys=True)

    def legacy(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list):
            return ";".join(map(str, v))
        return str(v)

    return "flink-conf.yaml", "".join(f"{k}: {legacy(v)}\n" for k, v in sorted(conf.items()))


def standalone_children(
    name: str, dist: FlinkDist, conf: dict[str, Any], jm_args: list[str], tm_args: list[str] | None = None
) -> list[dict[str, Any]]:
    """JM Deployment ``name``, TM Deployment ``name-taskmanager``, Services, ConfigMap."""
    conf_file, conf_text = render_config_file(conf, dist)
    labels = {"type": "flink-standalone-kubernetes", "app": name}
    jm_labels = {**labels, "component": "jobmanager"}
    tm_labels = {**labels, "component": "taskmanager"}
    image = "flink:2.3" if dist.major >= 2 else "flink:1.20"
    config_volume = {
        "name": "flink-config-volume",
        "configMap": {
            "name": f"flink-config-{name}",
            "items": [{"key": k, "path": k} for k in (conf_file, "log4j-console.properties")],
        },
    }
    application = jm_args[0] == "standalone-job"

    def container(args: list[str], component: str) -> dict[str, Any]:
        c: dict[str, Any] = {
            "name": "flink-main-container",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/docker-entrypoint.sh"],
            "args": args,
            "resources": {"requests": {"cpu": "1.0", "memory": "1024Mi"}, "limits": {"cpu": "1.0", "memory": "1024Mi"}},
            "volumeMounts": [{"name": "flink-config-volume", "mountPath": "/opt/flink/conf"}],
        }
        if component == "jobmanager":
            c["env"] = [
                {
                    "name": "_POD_IP_ADDRESS",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
                }
            ]
            c["ports"] = [
                {"name": "rest", "containerPort": 8081},
                {"name": "jobmanager-rpc", "containerPort": 6123},
                {"name": "blobserver", "containerPort": 6124},
            ]
            c["startupProbe"] = {
                "httpGet": {"path": "/config", "port": "rest"},
                "periodSeconds": 1,
                "failureThreshold": 2147483647,
            }
            if application:
                c["volumeMounts"].append({"name": "user-lib-dir", "mountPath": "/opt/flink/usrlib"})
        else:
            c["ports"] = [{"name": "taskmanager-rpc", "containerPort": 6122}]
        return c

    def deployment(dep_name: str, sel: dict[str, str], args: list[str], component: str) -> dict[str, Any]:
        volumes = [config_volume]
        if component == "jobmanager" and application:
            volumes = [*volumes, {"name": "user-lib-dir", "emptyDir": {}}]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": dep_name, "namespace": NAMESPACE, "labels": sel},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": sel},
                "template": {
                    "metadata": {"labels": sel},
                    "spec": {
                        "serviceAccountName": "flink",
                        "containers": [container(args, component)],
                        "volumes": volumes,
                    },
                },
            },
        }

    return [
        deployment(name, jm_labels, jm_args, "jobmanager"),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": jm_labels,
                "ports": [{"name": "jobmanager-rpc", "port": 6123}, {"name": "blobserver", "port": 6124}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-rest", "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": jm_labels,
                "ports": [{"name": "rest", "port": 8081, "targetPort": 8081}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"flink-config-{name}", "namespace": NAMESPACE, "labels": labels},
            "data": {conf_file: conf_text, "log4j-console.properties": LOG4J_CONSOLE},
        },
        deployment(f"{name}-taskmanager", tm_labels, tm_args or ["taskmanager"], "taskmanager"),
    ]


def _wait_cluster(runner: PodRunner, name: str) -> None:
    runner.wait_available(name, timeout_s=90)
    runner.wait_available(f"{name}-taskmanager", timeout_s=60)


# ------------------------------------------------------------------------------------------------
# Real Flink
# ------------------------------------------------------------------------------------------------


@pytest.mark.flink
def test_application_cluster_savepoint_and_restore(
    pod_runner: PodRunner, flink_dist: FlinkDist, counter_jar: Path, tmp_path: Path
) -> None:
    """Operator-shaped application cluster: RUNNING with the fixed job id, savepoint, delete
    everything, re-create with ``--fromSavepoint``: the keyed state continues."""
    name = "counter"
    job_args = counter_args(rate=50, keys=4)
    conf = flink_config(name, flink_dist, tmp_path, application=True, jar=counter_jar)
    pod_runner.apply(
        standalone_children(name, flink_dist, conf, ["standalone-job", "--job-classname", COUNTER_JOB_CLASS, *job_args])
    )
    _wait_cluster(pod_runner, name)
    rest = pod_runner.rest(name)
    job = rest.wait_job_state(JOB_ID, "RUNNING", timeout_s=60, all_tasks_running=True)
    assert job["name"] == name  # pipeline.name reached the job
    assert rest.get("/config")["flink-version"] == flink_dist.version
    # the usrlib emptyDir is where the image's entrypoint looks for user jars; the jar came from
    # pipeline.classpaths alone (no --jars): the job runs, so the class was found
    before = read_counter(rest, JOB_ID, min_last_value=20)
    assert before.consistent and before.restored_total == 0, before

    location = rest.trigger_savepoint(JOB_ID, f"file://{tmp_path}/savepoints")
    assert Path(location.removeprefix("file:")).is_dir(), location

    pod_runner.apply([])  # the operator deletes the cluster for a savepoint upgrade
    assert pod_runner.pids() == [] and pod_runner.deployments() == []
    assert not rest.is_up()

    conf = flink_config(name, flink_dist, tmp_path, application=True, jar=counter_jar, restore_from=location)
    jm_args = ["standalone-job", "--job-classname", COUNTER_JOB_CLASS, "--fromSavepoint", location, *job_args]
    pod_runner.apply(standalone_children(name, flink_dist, conf, jm_args))
    _wait_cluster(pod_runner, name)
    assert pod_runner.rest_url(name) == rest.base_url  # same "Service" address after re-creation
    rest.wait_job_state(JOB_ID, "RUNNING", timeout_s=60, all_tasks_running=True)
    after = read_counter(rest, JOB_ID, min_last_value=before.last_value + 10)
    # keyed state continued from the savepoint: the counts include what was counted before
    assert after.restored_total >= before.state_total, (before, after)
    assert after.consistent, after
    assert same_path(rest.restored_from(JOB_ID), location)
    assert pod_runner.exits(name) == [] and pod_runner.exits(f"{name}-taskmanager") == []


@pytest.mark.flink
def test_application_whose_main_fails(
    pod_runner: PodRunner, flink_dist: FlinkDist, counter_jar: Path, tmp_path: Path
) -> None:
    """``--fail-always`` (an upgrade that never becomes stable): with the operator's
    ``execution.submit-failed-job-on-application-error: true`` and
    ``shutdown-on-application-finish: false`` the JobManager stays up and reports the fixed job id
    as FAILED, with the exception, instead of crash-looping."""
    name = "broken"
    conf = flink_config(name, flink_dist, tmp_path, application=True, jar=counter_jar)
    args = ["standalone-job", "--job-classname", COUNTER_JOB_CLASS, *counter_args(fail_always=True)]
    pod_runner.apply(standalone_children(name, flink_dist, conf, args))
    _wait_cluster(pod_runner, name)
    rest = pod_runner.rest(name)
    rest.wait_job_state(JOB_ID, "FAILED", timeout_s=60)
    assert "--fail-always given" in json.dumps(rest.exceptions(JOB_ID))
    status = pod_runner.deployment_status(name)
    assert status["availableReplicas"] == 1 and pod_runner.exits(name) == []


@pytest.mark.flink
def test_session_cluster_smoke(pod_runner: PodRunner, flink_dist: FlinkDist, tmp_path: Path) -> None:
    """Operator-shaped session cluster (``jobmanager`` / ``taskmanager`` args) starts, the TM
    registers, and the pod-network overrides are what Flink runs with."""
    name = "session"
    conf = flink_config(name, flink_dist, tmp_path, application=False)
    # what the operator appends with HA: exercises the $(_POD_IP_ADDRESS) expansion end to end
    jm_args = ["jobmanager", "-D", "jobmanager.rpc.address=$(_POD_IP_ADDRESS)"]
    pod_runner.apply(standalone_children(name, flink_dist, conf, jm_args))
    _wait_cluster(pod_runner, name)
    rest = pod_runner.rest(name)
    overview = rest.wait_taskmanagers(1, timeout_s=60)
    assert overview["slots-total"] == 1 and overview["flink-version"] == flink_dist.version
    assert rest.get("/config")["features"]["web-submit"] is True  # a session cluster
    jm_config = {e["key"]: e["value"] for e in rest.get("/jobmanager/config")}
    net = pod_runner.cluster_net(name)
    assert jm_config["jobmanager.rpc.address"] == "127.0.0.1"
    assert jm_config["jobmanager.rpc.port"] == str(net.rpc_port)
    assert jm_config["rest.bind-address"] == "127.0.0.1"
    assert jm_config["taskmanager.numberOfTaskSlots"] == "1"
    assert jm_config["kubernetes.cluster-id"] == name  # the rendered config itself is in effect
    (plan,) = pod_runner.launch_plans(name)
    assert plan.argv[plan.argv.index(plan.main_class) :][:5] == [
        plan.main_class, "-D", "jobmanager.memory.off-heap.size=134217728b",
        "-D", "jobmanager.memory.jvm-overhead.min=201326592b",
    ]  # fmt: skip
    assert "jobmanager.rpc.address=127.0.0.1" in plan.argv  # $(_POD_IP_ADDRESS) expanded
    assert len(pod_runner.pids()) == 2
    assert pod_runner.notes == [], pod_runner.notes  # nothing had to be patched up

    pod_runner.apply([])
    assert pod_runner.pids() == [] and not rest.is_up()


# ------------------------------------------------------------------------------------------------
# The pod runner's Kubernetes semantics, with a fake `java` (milliseconds instead of seconds)
# ------------------------------------------------------------------------------------------------

FAKE_JAVA = r'''#!{python}
"""Fake `java`: answers BashJavaUtils like the real one; otherwise records its argv/env in the
pod's directory, serves GET /config on rest.port when it is a JobManager entrypoint, and runs until
SIGTERM. `--crash-with N` among the args: exit N after 0.2 s."""
import http.server, json, os, sys, threading, time
sys.path.insert(0, {repo!r})
from tests.flinkbed.confdir import read_flink_config
argv = sys.argv[1:]
if "org.apache.flink.runtime.util.bash.BashJavaUtils" in argv:
    cmd = argv[argv.index("org.apache.flink.runtime.util.bash.BashJavaUtils") + 1]
    if os.environ.get("FAKE_BJU_FAIL"):
        print("IllegalConfigurationException: fake failure"); sys.exit(1)
    print("INFO  [] - some logging")
    print("BASH_JAVA_UTILS_EXEC_RESULT:-Xmx100 -Xms100")
    print("BASH_JAVA_UTILS_EXEC_RESULT:-D %s.memory.fake=1b -D fake.cmd=%s" % ("jobmanager" if "JM" in cmd else "taskmanager", cmd))
    sys.exit(0)
main = next(a for a in argv if a.startswith("org.apache.flink."))
rest = argv[argv.index(main) + 1:]
conf_dir = rest[rest.index("--configDir") + 1]
conf = read_flink_config(__import__("pathlib").Path(conf_dir), 1 if os.path.exists(os.path.join(conf_dir, "flink-conf.yaml")) else 2)
with open("fake-java-%d.json" % os.getpid(), "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ), "conf": conf, "main": main}, f)
if "--crash-with" in rest:
    time.sleep(0.2)
    sys.exit(int(rest[rest.index("--crash-with") + 1]))
if "TaskManagerRunner" not in main:
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(conf["rest.port"])), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
while True:
    time.sleep(1)
'''


@pytest.fixture
def fake_dist(tmp_path: Path) -> FlinkDist:
    home = tmp_path / "fake-flink-1.20.3"
    (home / "lib").mkdir(parents=True)
    (home / "bin").mkdir()
    (home / "lib" / "flink-dist-1.20.3.jar").write_bytes(b"")
    (home / "lib" / "log4j-api-2.24.3.jar").write_bytes(b"")
    (home / "bin" / "bash-java-utils.jar").write_bytes(b"")
    return FlinkDist(version="1.20.3", home=home)


@pytest.fixture
def fake_runner(fake_dist: FlinkDist, tmp_path: Path) -> Any:
    java = tmp_path / "fake-java"
    java.write_text(
        FAKE_JAVA.replace("{python}", sys.executable).replace("{repo!r}", repr(str(Path(__file__).parent.parent)))
    )
    java.chmod(0o755)
    runner = PodRunner(fake_dist, tmp_path / "runner", java=str(java), restart_backoff_s=0.3, grace_period_s=5)
    yield runner
    runner.close()


def _fake_records(runner: PodRunner, deployment: str) -> list[dict[str, Any]]:
    """What the fake JVMs of the Deployment's current pods recorded (waits until each wrote it)."""

    def read() -> list[dict[str, Any]] | None:
        out = []
        for plan in runner.launch_plans(deployment):
            files = sorted(plan.cwd.glob("fake-java-*.json"), key=lambda f: f.stat().st_mtime)
            if not files:
                return None
            try:
                out.append(json.loads(files[-1].read_text()))
            except ValueError:  # being written
                return None
        return out

    return _wait(read)


def _wait(cond: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_podrunner_launch_plan_follows_the_image_scripts(
    fake_runner: PodRunner, fake_dist: FlinkDist, tmp_path: Path
) -> None:
    conf = flink_config("app", fake_dist, tmp_path, application=True, jar=tmp_path / "job.jar")
    conf["env.java.opts.jobmanager"] = "-Dfrom.env.java.opts.jobmanager=1"
    children = standalone_children(
        "app",
        fake_dist,
        conf,
        ["standalone-job", "--job-classname", "a.B", "--fromSavepoint", "file:/sp", "--x", "$(_POD_IP_ADDRESS)"],
    )
    children[0]["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "JVM_ARGS", "value": "-Dfrom.jvm.args=1"}
    )
    fake_runner.apply(children)
    fake_runner.wait_available("app", 10)
    fake_runner.wait_available("app-taskmanager", 10)
    (jm,) = _fake_records(fake_runner, "app")
    argv = jm["argv"]
    cls = argv.index("org.apache.flink.container.entrypoint.StandaloneApplicationClusterEntryPoint")
    conf_dir = jm["env"]["FLINK_CONF_DIR"]
    # bin/standalone-job.sh: --configDir, the container's args, then BashJavaUtils' dynamic properties
    assert argv[cls + 1 :] == [
        "--configDir", conf_dir, "--job-classname", "a.B", "--fromSavepoint", "file:/sp", "--x", "127.0.0.1",
        "-D", "jobmanager.memory.fake=1b", "-D", "fake.cmd=GET_JM_RESOURCE_PARAMS",
    ]  # fmt: skip
    # flink-console.sh: java $JVM_ARGS (env, then BashJavaUtils) $FLINK_ENV_JAVA_OPTS <log settings> -classpath ...
    jvm = argv[1:cls]
    assert jvm[:3] == ["-Dfrom.jvm.args=1", "-Xmx100", "-Xms100"]
    assert jvm[3] == "-XX:+IgnoreUnrecognizedVMOptions" and "--add-opens=java.base/java.util=ALL-UNNAMED" in jvm
    assert "-Dfrom.env.java.opts.jobmanager=1" in jvm
    assert jvm[-2:] == [
        "-classpath",
        f"{fake_dist.lib_dir}/log4j-api-2.24.3.jar:{fake_dist.dist_jar}",
    ]  # flink-dist last
    assert any(a.startswith("-Dlog.file=") and a.endswith(".log") for a in jvm)
    # the rendered config, with only the pod-network overrides changed
    c = jm["conf"]
    assert c["kubernetes.cluster-id"] == "app" and c["$internal.pipeline.job-id"] == JOB_ID
    assert c["pipeline.classpaths"] == f"file://{tmp_path}/job.jar"
    assert c["jobmanager.rpc.address"] == c["rest.bind-address"] == c["taskmanager.host"] == "127.0.0.1"
    assert c["rest.port"] == str(fake_runner.cluster_net("app").rest_port)
    assert c["blob.server.port"] == c["taskmanager.rpc.port"] == "0"
    assert c["cluster.registration.error-delay"] == "500 ms"
    assert Path(jm["env"]["FLINK_LIB_DIR"]).parent.joinpath("usrlib").is_dir()  # the emptyDir mount
    # TM: bin/taskmanager.sh puts the container args first, then --configDir and the dynamic properties
    (tm,) = _fake_records(fake_runner, "app-taskmanager")
    t_cls = tm["argv"].index("org.apache.flink.runtime.taskexecutor.TaskManagerRunner")
    assert tm["argv"][t_cls + 1 :][:2] == ["--configDir", tm["env"]["FLINK_CONF_DIR"]]
    assert tm["conf"]["jobmanager.rpc.port"] == c["jobmanager.rpc.port"]  # same cluster, same "Service"
    assert fake_runner.notes == []


def test_podrunner_nested_config_yaml(fake_runner: PodRunner, tmp_path: Path) -> None:
    """A nested Flink 2 ``config.yaml`` keeps its values; overridden leaves are replaced wherever nested."""
    two = FlinkDist(version="2.3.0", home=fake_runner.dist.home)
    conf = flink_config("n", two, tmp_path, application=False)
    conf["rest.bind-port"] = 8081
    conf["rest.server.max-content-length"] = 104857600
    children = standalone_children("n", two, conf, ["jobmanager"])
    text = children[3]["data"]["config.yaml"]
    assert "rest:\n  bind-port: 8081\n  port: 8081\n  server:\n" in text  # really nested
    fake_runner.apply(children)
    fake_runner.wait_available("n", 10)
    (jm,) = _fake_records(fake_runner, "n")
    rest_port = str(fake_runner.cluster_net("n").rest_port)
    assert jm["conf"]["rest.port"] == jm["conf"]["rest.bind-port"] == rest_port
    assert jm["conf"]["jobmanager.memory.process.size"] == JM_PROCESS_MEMORY
    assert jm["conf"]["web.cancel.enable"] == "false" and jm["conf"]["kubernetes.cluster-id"] == "n"
    written = yaml.safe_load(Path(jm["env"]["FLINK_CONF_DIR"], "config.yaml").read_text())
    assert written["rest"] == {"server": {"max-content-length": 104857600}}  # the rest is kept, nested
    assert written["rest.port"] == int(rest_port)  # the override, flat


def test_podrunner_is_level_based(fake_runner: PodRunner, fake_dist: FlinkDist, tmp_path: Path) -> None:
    conf = flink_config("lv", fake_dist, tmp_path, application=False)
    children = standalone_children("lv", fake_dist, conf, ["jobmanager"])
    tm = children[4]
    tm["spec"]["replicas"] = 2
    fake_runner.apply(children)
    fake_runner.wait_available("lv", 10)
    status = fake_runner.wait_available("lv-taskmanager", 10)
    assert status["replicas"] == status["readyReplicas"] == status["availableReplicas"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Available": "True", "Progressing": "True"}
    assert len(fake_runner.pids()) == 3
    jm_pid = fake_runner.pod_statuses("lv")[0]["pid"]

    # scale down: one TM stopped, nothing else touched
    tm["spec"]["replicas"] = 1
    fake_runner.apply(children)
    assert len(fake_runner.pids()) == 2 and fake_runner.deployment_status("lv-taskmanager")["observedGeneration"] == 2

    # a ConfigMap change alone restarts nothing
    children[3]["data"]["flink-conf.yaml"] += "some.new.key: 1\n"
    before = set(fake_runner.pids())
    fake_runner.apply(children)
    assert set(fake_runner.pids()) == before

    # a template change replaces the TM pod (old stopped first); the JM keeps running; the new
    # container reads the ConfigMap's current content
    tm_pid = fake_runner.pod_statuses("lv-taskmanager")[0]["pid"]
    tm["spec"]["template"]["spec"]["containers"][0]["args"] = ["taskmanager", "-D", "x=y"]
    fake_runner.apply(children)
    fake_runner.wait_available("lv-taskmanager", 10)
    assert tm_pid not in fake_runner.pids() and fake_runner.pod_statuses("lv")[0]["pid"] == jm_pid
    (rec,) = _fake_records(fake_runner, "lv-taskmanager")
    assert rec["argv"][-8:-6] == ["-D", "x=y"] and rec["conf"]["some.new.key"] == "1"

    # a Deployment no longer listed is stopped; an empty list stops everything
    fake_runner.apply([c for c in children if c is not tm])
    assert fake_runner.deployments() == ["lv"] and fake_runner.pids() == [jm_pid]
    fake_runner.apply([])
    assert fake_runner.pids() == []
    with pytest.raises(KeyError):
        fake_runner.deployment_status("lv")


def test_podrunner_reports_crashes_and_restarts(fake_runner: PodRunner, fake_dist: FlinkDist, tmp_path: Path) -> None:
    conf = flink_config("cr", fake_dist, tmp_path, application=False)
    children = standalone_children("cr", fake_dist, conf, ["jobmanager"], tm_args=["taskmanager", "--crash-with", "3"])
    fake_runner.apply(children)
    # a pod without probes is ready while its process runs, so first wait for the exit itself
    assert fake_runner.wait_exit("cr-taskmanager", 10, after=0).exit_code == 3
    with pytest.raises(PodCrashed, match="exited with 3"):
        fake_runner.wait_available("cr-taskmanager", 10)
    # restarted with back-off (0.3 s, 0.6 s, ... in this runner), every exit recorded
    _wait(lambda: len(fake_runner.exits("cr-taskmanager")) >= 3)
    ex = fake_runner.exits("cr-taskmanager")[0]
    assert ex.exit_code == 3 and ex.reason == "Error" and ex.deployment == "cr-taskmanager"
    (pod,) = fake_runner.pod_statuses("cr-taskmanager")
    cs = pod["containerStatuses"][0]
    assert cs["restartCount"] >= 3 and cs["ready"] is False
    assert cs.get("lastState", {}).get("terminated", {}).get("exitCode") == 3 or cs["state"].get("terminated")
    status = fake_runner.deployment_status("cr-taskmanager")
    assert "readyReplicas" not in status and status["unavailableReplicas"] == 1  # omitempty, like the API
    assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "False"
    fake_runner.wait_available("cr", 10)  # the JM is unaffected


def test_podrunner_waits_for_configmap_and_reports_script_failures(
    fake_runner: PodRunner, fake_dist: FlinkDist, tmp_path: Path
) -> None:
    conf = flink_config("cm", fake_dist, tmp_path, application=False)
    children = standalone_children("cm", fake_dist, conf, ["jobmanager"])
    without_cm = [c for c in children if c["kind"] != "ConfigMap"]
    fake_runner.apply(without_cm)
    time.sleep(0.5)
    (pod,) = fake_runner.pod_statuses("cm")
    assert pod["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert fake_runner.pids() == []
    fake_runner.apply(children)  # the ConfigMap appears: the pods start
    fake_runner.wait_available("cm", 10)
    fake_runner.wait_available("cm-taskmanager", 10)

    # args the image does not know: the container "exits" 127 without starting a JVM
    bad = standalone_children(
        "bad", fake_dist, flink_config("bad", fake_dist, tmp_path, application=False), ["history-server"]
    )
    fake_runner.apply(bad)
    ex = fake_runner.wait_exit("bad", 10, after=0)
    assert ex.exit_code == 127 and "history-server" in ex.log_tail


def test_podrunner_reaper_stops_jvms_when_the_test_process_dies(fake_dist: FlinkDist, tmp_path: Path) -> None:
    """Even a SIGKILLed test process leaves no JVM behind: the reaper stops them by PID."""
    java = tmp_path / "fake-java"
    java.write_text(
        FAKE_JAVA.replace("{python}", sys.executable).replace("{repo!r}", repr(str(Path(__file__).parent.parent)))
    )
    java.chmod(0o755)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from pathlib import Path
        from tests.flinkbed.dist import FlinkDist
        from tests.flinkbed.podrunner import PodRunner
        from tests.test_flinkbed import flink_config, standalone_children
        dist = FlinkDist(version="1.20.3", home=Path({str(fake_dist.home)!r}))
        r = PodRunner(dist, Path({str(tmp_path / "orphan")!r}), java={str(java)!r})
        r.apply(standalone_children("o", dist, flink_config("o", dist, Path({str(tmp_path)!r}), application=False), ["jobmanager"]))
        r.wait_available("o", 10); r.wait_available("o-taskmanager", 10)
        print(" ".join(map(str, r.pids())), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def gone() -> bool:
        for p in pids:
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                continue
            if "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[:1]:
                return False
        return True

    _wait(gone, timeout_s=15)
