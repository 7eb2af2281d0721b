"""Launch planning: from a rendered container to the ``java`` command line the image would exec.

What ``/docker-entrypoint.sh`` and the Flink ``bin/`` scripts do, up to ``exec java``: the
kubelet's part first (:mod:`.podenv`: container env, ConfigMap/emptyDir mounts into the pod's
home), then the runner's overrides (:func:`~tests.flinkbed.net.pod_network_overrides`, :data:`SPEED_OVERRIDES`),
``BashJavaUtils`` for the memory flags and dynamic properties, ``env.java.*opts*`` and the
``flink-console.sh`` argument order. The result is a :class:`LaunchPlan`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import confdir
from .dist import FlinkDist
from .net import ClusterNet, ClusterNets, pod_network_overrides
from .podenv import Note, container_env, materialize_volumes
from .pods import (
    FLINK_HOME_IN_IMAGE,
    IMAGE_ENTRYPOINT,
    ContainerFailed,
    Deployment,
    Pod,
    PodSpecError,
    expand_k8s_vars,
    main_container,
)

JM_APPLICATION_CLASS = "org.apache.flink.container.entrypoint.StandaloneApplicationClusterEntryPoint"
JM_SESSION_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TM_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
BASH_JAVA_UTILS_CLASS = "org.apache.flink.runtime.util.bash.BashJavaUtils"

# The Java 17 module flags flink-dist's default config ships in env.java.opts.all, and which the
# Apache operator puts into env.java.default-opts.all for flinkVersion >= v1_19.
JAVA17_OPENS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)

# Faster JVM start on 2 cores (~1.3 s less per process, flink-local.md §2). Not what the image does;
# pass jvm_extra=() to PodRunner to run without them.
FAST_START_JVM_FLAGS: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

# Test-speed settings written over the rendered config (pass speed_overrides={} to disable):
SPEED_OVERRIDES: Mapping[str, str] = {
    # A TM started together with its JM fails its first ResourceManager lookup and waits this long
    # before retrying; the default 10 s would add 10 s to every cluster start (flink-local.md gotcha 1).
    "cluster.registration.error-delay": "500 ms",
    # REST metric values (the counter job's gauge) lag by this much; default 10 s (gotcha 5).
    "metrics.fetcher.update-interval": "1 s",
}

# Used only when the ConfigMap ships no log4j-console.properties (a real pod would then log at
# log4j's default ERROR level to the console): console + one file per process (${sys:log.file}).
# append = true: log4j is initialised twice per JVM and `false` would truncate (gotcha 2).
DEFAULT_LOG4J_CONSOLE = """\
# flink-sync test bed default (the ConfigMap had no log4j-console.properties)
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
rootLogger.appenderRef.file.ref = FileAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = WARN
appender.file.name = FileAppender
appender.file.type = File
appender.file.append = true
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
"""

ROLE_APPLICATION_JM = "standalone-job"
ROLE_SESSION_JM = "jobmanager"
ROLE_TM = "taskmanager"
JM_ROLES = frozenset({ROLE_APPLICATION_JM, ROLE_SESSION_JM})

_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

ConfigKey = tuple[tuple[str, str], ...]


@dataclass
class LaunchPlan:
    """What one container start runs (kept for inspection: ``PodRunner.launch_plans``)."""

    role: str
    main_class: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path
    out_file: Path
    notes: list[str] = field(default_factory=list)


class LaunchSettings(Protocol):
    """The runner's settings a launch reads (at every start: a changed attribute takes effect)."""

    dist: FlinkDist
    java: str
    jvm_extra: list[str]
    speed_overrides: dict[str, str]
    add_java17_opens: bool | None


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no `java` on PATH: run scripts/ensure-java.sh")
    return java


# ----------------------------------------------------------------------------------------------
# The image's part: environment, java opts, BashJavaUtils
# ----------------------------------------------------------------------------------------------


def process_env(pod: Pod, home: Path, conf_dir: Path, cont_env: Mapping[str, str]) -> dict[str, str]:
    """The image's environment (FLINK_HOME & co. pointing into the pod's home), then the
    container's env. Only a few variables of the test process leak in (PATH, JAVA_HOME, ...)."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "HOME") if k in os.environ}
    env.update(
        FLINK_HOME=str(home),
        FLINK_BIN_DIR=str(home / "bin"),
        FLINK_OPT_DIR=str(home / "opt"),
        FLINK_PLUGINS_DIR=str(home / "plugins"),
        FLINK_LOG_DIR=str(home / "log"),
        HOSTNAME=pod.name,
    )
    env.update(cont_env)
    # where the runner put them, whatever the container says: these are paths inside the image
    env["FLINK_CONF_DIR"] = str(conf_dir)
    # ${FLINK_LIB_DIR}/../usrlib is the application entrypoint's user-lib dir (the operator's
    # emptyDir at /opt/flink/usrlib lands in the pod's home, like the image's layout)
    env["FLINK_LIB_DIR"] = str(home / "lib")
    return env


def _strip_quotes(s: str) -> str:
    return s.strip().removeprefix('"').removesuffix('"')


def java_opts(
    config: Mapping[str, str],
    env: Mapping[str, str],
    role: str,
    notes: list[str],
    dep: str,
    add_java17_opens: bool | None,
) -> list[str]:
    """``${FLINK_ENV_JAVA_OPTS}`` as config.sh builds it for a JM or TM (plus the JM/TM part)."""
    if env.get("FLINK_ENV_JAVA_OPTS"):
        all_opts = env["FLINK_ENV_JAVA_OPTS"]
    else:
        opts = config.get("env.java.opts.all") or config.get("env.java.opts", "")
        all_opts = "-XX:+IgnoreUnrecognizedVMOptions " + _strip_quotes(
            f"{config.get('env.java.default-opts.all', '')} {opts}"
        )
    who = "jobmanager" if role in JM_ROLES else "taskmanager"
    var = "FLINK_ENV_JAVA_OPTS_JM" if who == "jobmanager" else "FLINK_ENV_JAVA_OPTS_TM"
    if env.get(var):
        role_opts = env[var]
    else:
        role_opts = _strip_quotes(
            f"{config.get(f'env.java.default-opts.{who}', '')} {config.get(f'env.java.opts.{who}', '')}"
        )
    # flink-console.sh: FLINK_ENV_JAVA_OPTS=$(eval echo ${FLINK_ENV_JAVA_OPTS}) expands $VARs
    words = [
        _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), w) for w in f"{all_opts} {role_opts}".split()
    ]
    words = [w for w in words if w]
    has_opens = any(w.startswith("--add-opens") for w in words)
    if add_java17_opens or (add_java17_opens is None and not has_opens):
        words += JAVA17_OPENS
        if not has_opens:
            notes.append(
                f"Deployment {dep}: the config has no --add-opens in env.java.(default-)opts.*; the runner "
                "added the Java 17 module flags (an image on Java 17 needs them in the config)"
            )
    return words


class BashJavaUtils:
    """``runBashJavaUtilsCmd``: the JVM memory flags and dynamic ``-D`` properties of a JM or TM,
    memoised per config content and args (one JVM start saved per container start)."""

    def __init__(self, settings: LaunchSettings) -> None:
        self._settings = settings
        self._cache: dict[tuple[Any, ...], tuple[list[str], list[str]]] = {}

    def run(self, cmd: str, conf_dir: Path, config_key: ConfigKey, args: list[str]) -> tuple[list[str], list[str]]:
        """``runBashJavaUtilsCmd CMD conf_dir bash-java-utils.jar:flink-dist.jar args...``:
        returns (JVM params, dynamic ``-D k=v`` args); memoised per config content and args."""
        key = (cmd, config_key, tuple("<conf>" if a == str(conf_dir) else a for a in args))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # the scripts pass "$@" unquoted ($dynamic_args): words split at whitespace
        words = " ".join(args).split()
        dist = self._settings.dist
        cp = os.pathsep.join([str(dist.bash_java_utils_jar), str(dist.dist_jar)])
        argv = [self._settings.java, "-classpath", cp, BASH_JAVA_UTILS_CLASS, cmd, "--configDir", str(conf_dir), *words]
        try:
            res = subprocess.run(
                argv,
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=conf_dir.parent,
            )
        except subprocess.TimeoutExpired as e:
            raise ContainerFailed(1, f"[ERROR] BashJavaUtils {cmd} timed out: {e}") from e
        output = (res.stdout + res.stderr)[-20000:]
        prefix = "BASH_JAVA_UTILS_EXEC_RESULT:"
        results = [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]
        if res.returncode != 0 or len(results) != 2:
            raise ContainerFailed(
                1,
                f"[ERROR] Could not get JVM parameters and dynamic configurations properly.\n"
                f"[ERROR] Raw output from BashJavaUtils:\n{output}",
            )
        parsed = (results[0].split(), results[1].split())
        self._cache[key] = parsed
        return parsed


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """What the role's bin script resolves: log name part, main class, JVM params, program args."""

    service: str
    main_class: str
    jvm_params: list[str]
    args: list[str]


class Launcher:
    """Turns a Deployment's pod template into a :class:`LaunchPlan` for one of its pods."""

    def __init__(self, settings: LaunchSettings, nets: ClusterNets, note: Note) -> None:
        self._settings = settings
        self._nets = nets
        self._note = note
        self.bash_java_utils = BashJavaUtils(settings)
        self._jobmanagers: dict[str, Pod] = {}  # JobManager pods planned, by name (deleted ones pruned)

    def plan(self, dep: Deployment, pod: Pod, configmaps: Mapping[str, Any]) -> LaunchPlan:
        """Everything the image's entrypoint and bin scripts would do, up to the ``exec java``."""
        settings = self._settings
        tmpl_spec = dep.template.get("spec") or {}
        container = self._container(dep, tmpl_spec)
        home = pod.home
        for sub in ("log", "tmp", "plugins", "bin", "opt"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        lib = home / "lib"
        if not lib.exists():
            lib.symlink_to(settings.dist.lib_dir, target_is_directory=True)

        cont_env = container_env(dep, pod, container, configmaps, self._note)
        conf_dir, cluster = materialize_volumes(dep, pod, container, tmpl_spec, configmaps, self._note)
        args = [expand_k8s_vars(str(a), cont_env) for a in container.get("args") or []]
        role = args[0] if args else "help"
        network = pod_network_overrides(self._net_of(cluster, pod, role), home)
        config, config_key = self._prepare_conf(dep, conf_dir, network)
        entry = self._entry(dep, role, args, conf_dir, config_key)

        env = process_env(pod, home, conf_dir, cont_env)
        notes: list[str] = []
        opts = java_opts(config, env, role, notes, dep.name, settings.add_java17_opens)
        log_file = home / "log" / f"flink--{entry.service}-{pod.attempt}-{pod.name}.log"
        out_file = home / "log" / f"flink--{entry.service}-{pod.attempt}-{pod.name}.out"
        conf = str(conf_dir)
        argv = [
            settings.java,
            *env.get("JVM_ARGS", "").split(),
            *entry.jvm_params,
            *opts,
            *settings.jvm_extra,
            f"-Dlog.file={log_file}",
            f"-Dlog4j.configuration=file:{conf}/log4j-console.properties",
            f"-Dlog4j.configurationFile=file:{conf}/log4j-console.properties",
            f"-Dlogback.configurationFile=file:{conf}/logback-console.xml",
            "-classpath",
            settings.dist.classpath_str,
            entry.main_class,
            *entry.args,
        ]
        for n in notes:
            self._note(n)
        return LaunchPlan(role, entry.main_class, argv, env, home, log_file, out_file, notes)

    def _net_of(self, cluster: str, pod: Pod, role: str) -> ClusterNet:
        """The cluster's addresses; a second live JobManager of the cluster gets its own (ClusterNets)."""
        if role not in JM_ROLES:
            return self._nets.allocate(cluster)
        self._jobmanagers[pod.name] = pod
        for name in [n for n, p in self._jobmanagers.items() if p.deleted and n != pod.name]:
            del self._jobmanagers[name]
        return self._nets.for_jobmanager(cluster, pod.name, lambda name: name not in self._jobmanagers)

    def _container(self, dep: Deployment, tmpl_spec: Mapping[str, Any]) -> dict[str, Any]:
        container = main_container(tmpl_spec)
        if container is None:
            raise PodSpecError(f"Deployment {dep.name}: the pod template has no containers")
        command = container.get("command")
        if command not in (None, [IMAGE_ENTRYPOINT]):
            raise PodSpecError(f"Deployment {dep.name}: command {command!r} is not the image's {IMAGE_ENTRYPOINT}")
        if len(tmpl_spec.get("containers") or []) > 1:
            self._note(f"Deployment {dep.name}: only {container.get('name')!r} is run, other containers are ignored")
        return container

    def _prepare_conf(
        self, dep: Deployment, conf_dir: Path, network: Mapping[str, str]
    ) -> tuple[dict[str, str], ConfigKey]:
        """The conf dir with the runner's overrides; the config as Flink reads it, and the
        BashJavaUtils memo key (the config without the per-pod overrides)."""
        conf_dir.mkdir(parents=True, exist_ok=True)
        if not any((conf_dir / n).is_file() for n in (confdir.LEGACY_CONF, confdir.STANDARD_CONF)):
            self._note(f"Deployment {dep.name}: no Flink config file mounted at {FLINK_HOME_IN_IMAGE}/conf")
            if self._settings.dist.major < 2:
                # Flink 1.x would start with defaults: bound to 0.0.0.0 on the fixed ports. Never
                # here: give it a file holding only the overrides. (2.x refuses to start; kept.)
                (conf_dir / confdir.LEGACY_CONF).write_text("")
        overrides = {**network, **self._settings.speed_overrides}
        confdir.apply_overrides(conf_dir, overrides)
        if not (conf_dir / "log4j-console.properties").exists():
            (conf_dir / "log4j-console.properties").write_text(DEFAULT_LOG4J_CONSOLE)
        config = confdir.read_flink_config(conf_dir, self._settings.dist.major)
        config_key = tuple(sorted((k, v) for k, v in config.items() if k not in overrides))
        return config, config_key

    def _entry(self, dep: Deployment, role: str, args: list[str], conf_dir: Path, config_key: ConfigKey) -> _Entry:
        rest = args[1:]
        conf = str(conf_dir)
        bju = self.bash_java_utils
        if role == ROLE_APPLICATION_JM:  # bin/standalone-job.sh start-foreground "$@"
            entry_args = ["--configDir", conf, *rest]
            jvm_params, dynamic = bju.run("GET_JM_RESOURCE_PARAMS", conf_dir, config_key, entry_args)
            # dynamic properties appended after the job's own args, exactly like the script
            return _Entry("standalonejob", JM_APPLICATION_CLASS, jvm_params, [*entry_args, *dynamic])
        if role == ROLE_SESSION_JM:  # bin/jobmanager.sh start-foreground "$@"
            return self._session_entry(rest, conf_dir, config_key)
        if role == ROLE_TM:  # bin/taskmanager.sh start-foreground "$@"
            jvm_params, dynamic = bju.run("GET_TM_RESOURCE_PARAMS", conf_dir, config_key, rest)
            return _Entry("taskexecutor", TM_CLASS, jvm_params, [*rest, "--configDir", conf, *dynamic])
        raise PodSpecError(
            f"Deployment {dep.name}: container args {args!r} are not one of standalone-job/jobmanager/taskmanager"
        )

    def _session_entry(self, rest: list[str], conf_dir: Path, config_key: ConfigKey) -> _Entry:
        host = webui_port = None
        if not rest or rest[0] == "-D":
            user_args = rest
        elif len(rest) < 2 or rest[1] == "-D":  # legacy: start <host> [-D ...]
            host, user_args = rest[0], rest[1:]
        else:  # legacy: start <host> <webui-port> [-D ...]
            host, webui_port, user_args = rest[0], rest[1], rest[2:]
        jvm_params, dynamic = self.bash_java_utils.run("GET_JM_RESOURCE_PARAMS", conf_dir, config_key, user_args)
        entry_args = ["--configDir", str(conf_dir), "--executionMode", "cluster", *user_args]
        if host:
            entry_args += ["--host", host]
        if webui_port:
            entry_args += ["--webui-port", webui_port]
        return _Entry("standalonesession", JM_SESSION_CLASS, jvm_params, [*dynamic, *entry_args])
