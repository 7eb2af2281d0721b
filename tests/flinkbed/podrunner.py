"""Run the Kubernetes children a sync hook renders as local Flink processes ("pods").

A :class:`PodRunner` takes the list of objects a FlinkDeployment sync hook returns
(``apps/v1 Deployment`` ``N`` = JobManager and ``N-taskmanager``, ``v1 ConfigMap``
``flink-config-N``, ``v1 Service``\\ s) and runs each Deployment's main container as a JVM on
127.0.0.1, from the cached PyPI Flink distribution. It does what the Flink image does, so that the
*rendered* configuration and container args are what starts Flink:

* ``/docker-entrypoint.sh`` maps ``standalone-job`` / ``jobmanager`` / ``taskmanager`` to
  ``bin/standalone-job.sh`` / ``bin/jobmanager.sh`` / ``bin/taskmanager.sh start-foreground`` with
  the remaining args (its attempt to write ``jobmanager.rpc.address`` & co. into the read-only
  ConfigMap mount has no effect in a pod, so it is not emulated);
* those scripts run ``BashJavaUtils GET_JM_RESOURCE_PARAMS`` / ``GET_TM_RESOURCE_PARAMS`` against
  the conf dir (JVM memory flags + ``-D`` dynamic properties), read ``env.java.*opts*`` from the
  config, and ``flink-console.sh`` execs
  ``java $JVM_ARGS $FLINK_ENV_JAVA_OPTS <log settings> -classpath <lib/*, flink-dist last> <class> <args>``
  with the classes ``StandaloneApplicationClusterEntryPoint`` / ``StandaloneSessionClusterEntrypoint``
  / ``TaskManagerRunner``. The argument order below is the scripts' order.

What differs from a pod, on purpose (all in one place: :func:`pod_network_overrides`, plus
:data:`SPEED_OVERRIDES` and the JVM flags in :class:`PodRunner`): all pods share 127.0.0.1, so
addresses become 127.0.0.1, fixed ports become per-cluster free ports or 0, and local dirs move into
the runner's workdir.

Kubernetes semantics kept: ``apply()`` is level-based (new Deployment → start pods; changed
``spec.template`` → stop the old pods, then start new ones; gone → stop); ``replicas`` → that many
processes; a ConfigMap change alone restarts nothing, a (re)started container reads the current
content; an exited container is restarted with back-off (``restartPolicy: Always``), and the exit
is recorded so a test can see the crash. Processes are stopped by PID only (SIGTERM, then SIGKILL),
and a small reaper process kills them should the test process die without cleaning up.

This module is the façade: the runner lives in its seams (see ``tests/flinkbed/README.md``) and
every name it had is importable from here.

* :mod:`.net`      ``free_port``, ``ClusterNet``, ``pod_network_overrides``
* :mod:`.reaper`   the process that kills orphaned JVMs
* :mod:`.pods`     Deployment/pod state, container exits, errors, Kubernetes helpers
* :mod:`.podenv`   the kubelet's part of a start: container env, ConfigMap/emptyDir mounts
* :mod:`.launch`   ``LaunchPlan``: from a rendered container to a ``java`` command line (BashJavaUtils)
* :mod:`.kubelet`  start, restart with back-off, stop (by PID) a pod's container process
* :mod:`.status`   Deployment/pod status as the API server reports it, log tails
* :mod:`.runner`   ``PodRunner``: apply, the monitor thread, observation and waits
"""

from __future__ import annotations

from .launch import (
    BASH_JAVA_UTILS_CLASS,
    DEFAULT_LOG4J_CONSOLE,
    FAST_START_JVM_FLAGS,
    JAVA17_OPENS,
    JM_APPLICATION_CLASS,
    JM_ROLES,
    JM_SESSION_CLASS,
    ROLE_APPLICATION_JM,
    ROLE_SESSION_JM,
    ROLE_TM,
    SPEED_OVERRIDES,
    TM_CLASS,
    LaunchPlan,
)
from .net import LOCALHOST, ClusterNet, free_port, pod_network_overrides
from .pods import (
    FLINK_HOME_IN_IMAGE,
    IMAGE_ENTRYPOINT,
    MAIN_CONTAINER,
    ContainerExit,
    ContainerFailed,
    Deployment,
    NotStartable,
    Pod,
    PodCrashed,
    PodSpecError,
    expand_k8s_vars,
    int_or_percent,
    is_kind,
    now_rfc3339,
    rand_suffix,
    tail,
    template_hash,
)
from .reaper import Reaper, proc_start_time
from .runner import PodRunner

__all__ = [
    "BASH_JAVA_UTILS_CLASS",
    "DEFAULT_LOG4J_CONSOLE",
    "FAST_START_JVM_FLAGS",
    "FLINK_HOME_IN_IMAGE",
    "IMAGE_ENTRYPOINT",
    "JAVA17_OPENS",
    "JM_APPLICATION_CLASS",
    "JM_ROLES",
    "JM_SESSION_CLASS",
    "LOCALHOST",
    "MAIN_CONTAINER",
    "ROLE_APPLICATION_JM",
    "ROLE_SESSION_JM",
    "ROLE_TM",
    "SPEED_OVERRIDES",
    "TM_CLASS",
    "ClusterNet",
    "ContainerExit",
    "LaunchPlan",
    "PodCrashed",
    "PodRunner",
    "PodSpecError",
    "expand_k8s_vars",
    "free_port",
    "pod_network_overrides",
    "template_hash",
]

# The module-private names of the one-file runner, for code that used them.
_proc_start_time = proc_start_time
_Reaper = Reaper
_Pod = Pod
_Deployment = Deployment
_NotStartable = NotStartable
_ContainerFailed = ContainerFailed
_now_rfc3339 = now_rfc3339
_rand_suffix = rand_suffix
_is_kind = is_kind
_int_or_percent = int_or_percent
_tail = tail
