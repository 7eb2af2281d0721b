"""The "pod network" of the test bed: free ports, one cluster's addresses, the network overrides.

All pods share 127.0.0.1 (see :func:`pod_network_overrides`). :func:`free_port` is also used by
test helpers that have nothing to do with Flink (``tests/server.py``, ``bench/servers.py``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOCALHOST = "127.0.0.1"

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never the same one twice in this process)."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOCALHOST, 0))
                port = int(s.getsockname()[1])
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise RuntimeError("no free port found")


@dataclass(frozen=True)
class ClusterNet:
    """The addresses of one Flink cluster: what the Services ``N`` / ``N-rest`` give in Kubernetes."""

    name: str  # the cluster's ConfigMap name (``flink-config-N``), shared by its JM and TM pods
    rest_port: int
    rpc_port: int

    @property
    def rest_url(self) -> str:
        return f"http://{LOCALHOST}:{self.rest_port}"


class ClusterNets:
    """The runner's clusters by key (the ConfigMap mounted at ``/opt/flink/conf``), each with ports
    fixed for the runner's lifetime; the first cluster gets ``first_rest_port`` if one was given."""

    def __init__(self, first_rest_port: int | None) -> None:
        self.first_rest_port = first_rest_port
        self.nets: dict[str, ClusterNet] = {}
        self.jobmanager_of: dict[str, str] = {}  # cluster -> the JobManager pod that holds the cluster's ports
        self.pod_nets: dict[str, ClusterNet] = {}  # standby JobManager pod -> its own ports

    def for_jobmanager(self, cluster: str, pod: str, pod_gone: Callable[[str], bool]) -> ClusterNet:
        """A JobManager pod's addresses: the cluster's, unless another live JobManager pod of the cluster holds
        them. In Kubernetes every replica has its own pod IP; here a second JobManager (a standby with Kubernetes
        HA, where TaskManagers and the other JobManager find the leader through the HA ConfigMaps, not through
        these ports) gets ports of its own, kept for the pod's lifetime (a restarted container keeps them)."""
        own = self.pod_nets.get(pod)
        if own is not None:
            return own
        holder = self.jobmanager_of.get(cluster)
        if holder is None or holder == pod or pod_gone(holder):
            self.jobmanager_of[cluster] = pod
            return self.allocate(cluster)
        net = self.pod_nets[pod] = ClusterNet(cluster, free_port(), free_port())
        return net

    def allocate(self, cluster: str) -> ClusterNet:
        """The cluster's addresses, allocated at the first call."""
        net = self.nets.get(cluster)
        if net is None:
            if self.first_rest_port is not None:
                rest, self.first_rest_port = self.first_rest_port, None
            else:
                rest = free_port()
            net = self.nets[cluster] = ClusterNet(cluster, rest, free_port())
        return net


def pod_network_overrides(net: ClusterNet, pod_home: Path) -> dict[str, str]:
    """The only config changes the pod runner makes for networking and local paths.

    In Kubernetes every pod has its own IP and file system: Flink binds its fixed ports (6123,
    6124, 8081, 6122) on the pod IP, TaskManagers reach the JobManager through the Service DNS name
    in ``jobmanager.rpc.address``, and ``/tmp`` / ``/opt/flink`` belong to the container. Here all
    pods share 127.0.0.1 and one file system, so:

    * every address and bind host → 127.0.0.1 (the rendered ``N.NS`` name does not resolve here);
    * ``rest.port``/``rest.bind-port`` → the cluster's REST port, ``jobmanager.rpc.port`` → the
      cluster's RPC port (both fixed per cluster for the runner's lifetime, like a Service);
    * ``blob.server.port``, ``taskmanager.rpc.port``, ``taskmanager.data.port``,
      ``metrics.internal.query-service.port`` → 0 (ephemeral), so several pods can coexist;
    * tmp, web and upload dirs, and ``user.artifacts.base-dir`` (default ``/opt/flink/artifacts``,
      where a stale jar would be silently reused, gotcha 6) → inside the pod's directory.
    """
    tmp = pod_home / "tmp"
    return {
        "jobmanager.rpc.address": LOCALHOST,
        "jobmanager.bind-host": LOCALHOST,
        "rest.address": LOCALHOST,
        "rest.bind-address": LOCALHOST,
        "taskmanager.host": LOCALHOST,
        "taskmanager.bind-host": LOCALHOST,
        "rest.port": str(net.rest_port),
        "rest.bind-port": str(net.rest_port),
        "jobmanager.rpc.port": str(net.rpc_port),
        "blob.server.port": "0",
        "taskmanager.rpc.port": "0",
        "taskmanager.data.port": "0",
        "metrics.internal.query-service.port": "0",
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp / "web"),
        "web.upload.dir": str(tmp / "web-upload"),
        "user.artifacts.base-dir": str(pod_home / "artifacts"),
    }
