"""How a pod on the sandbox node reaches the API server, as a pod in a cluster does (part of the node agent, a
kubelet STAND-IN).

In a cluster the kubelet mounts the pod's ServiceAccount volume at /var/run/secrets/kubernetes.io/serviceaccount
(Kubernetes 1.20: the `<sa>-token-xxxxx` Secret that the ServiceAccount admission plugin put into the pod spec:
`token`, `ca.crt`, `namespace`) and sets KUBERNETES_SERVICE_HOST/PORT to the `kubernetes` Service. Here every
pod shares the host's file system and 127.0.0.1, so:

* the Secret is written into a per-pod directory under the agent's state dir (`<state>/node/serviceaccounts/
  <namespace>-<pod>/`), mode 0600, as the kubelet writes a secret volume;
* KUBERNETES_SERVICE_HOST/PORT name the API server on 127.0.0.1, and the fixed in-cluster path is replaced by the
  two settings the fabric8 Kubernetes client inside Flink reads instead of it
  (`kubernetes.auth.serviceAccount.token` and `kubernetes.certs.ca.file`, read from the environment as
  KUBERNETES_AUTH_SERVICEACCOUNT_TOKEN and KUBERNETES_CERTS_CA_FILE); KUBERNETES_AUTH_TRYKUBECONFIG=false keeps a
  kubeconfig of the host (there is none in a pod) from being picked up.

So Flink's Kubernetes HA services run with the pod's own ServiceAccount token, under its RBAC, never as admin.
A pod with `automountServiceAccountToken: false` (no such volume) gets no token and no address, as in a cluster.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .kube import Kube

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SECRET_FILES = ("token", "ca.crt", "namespace")


def service_account_volume(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any] | None:
    """The volume the container mounts at the ServiceAccount path (None: the pod opted out)."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if str(mount.get("mountPath", "")).rstrip("/") == SERVICE_ACCOUNT_MOUNT:
            return volumes.get(mount.get("name"))
    return None


def write_secret_volume(kube: Kube, namespace: str, volume: dict[str, Any], dest: Path) -> bool:
    """Write the Secret of a `secret` volume into dest (the kubelet's secret volume); False while it is missing."""
    name = (volume.get("secret") or {}).get("secretName")
    if not name:
        return False
    secret = kube.get(kube.resource("v1", "secrets"), namespace, name)
    data = (secret or {}).get("data") or {}
    if not data.get("token"):
        return False
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    for key in SECRET_FILES:
        if key in data:
            path = dest / key
            path.write_bytes(base64.b64decode(data[key]))
            os.chmod(path, 0o600)
    return True


def in_cluster_env(server: str, sa_dir: Path) -> dict[str, str]:
    """The environment that points a pod's Kubernetes client at the API server with the pod's token."""
    url = urlsplit(server)
    port = str(url.port or 443)
    return {
        "KUBERNETES_SERVICE_HOST": url.hostname or "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_AUTH_SERVICEACCOUNT_TOKEN": str(sa_dir / "token"),
        "KUBERNETES_CERTS_CA_FILE": str(sa_dir / "ca.crt"),
        "KUBERNETES_AUTH_TRYKUBECONFIG": "false",
    }


class PodApiAccess:
    """Per pod (by UID): its ServiceAccount files written once, and the env its main container gets."""

    def __init__(self, kube: Kube, root: Path):
        self.kube = kube
        self.root = root
        self._env: dict[str, dict[str, str]] = {}

    def env_for(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str] | None:
        """The in-cluster env for the pod, {} when it mounts no ServiceAccount, None while its Secret is missing
        (the pod waits, like a kubelet whose secret volume cannot be set up yet)."""
        meta = pod["metadata"]
        cached = self._env.get(meta["uid"])
        if cached is not None:
            return cached
        volume = service_account_volume(pod, container)
        if volume is None:
            self._env[meta["uid"]] = {}
            return {}
        dest = self.root / f"{meta['namespace']}-{meta['name']}"
        if not write_secret_volume(self.kube, meta["namespace"], volume, dest):
            return None
        env = in_cluster_env(self.kube.server, dest)
        self._env[meta["uid"]] = env
        return env

    def forget(self, uid: str, namespace: str, name: str) -> None:
        """The pod is gone: drop its token from disk."""
        self._env.pop(uid, None)
        dest = self.root / f"{namespace}-{name}"
        for key in SECRET_FILES:
            (dest / key).unlink(missing_ok=True)
        if dest.exists():
            try:
                dest.rmdir()
            except OSError:
                pass


def with_env(spec: dict[str, Any], container_name: str, env: dict[str, str]) -> dict[str, Any]:
    """The pod spec with env prepended to one container (the container's own variables win, as with the
    kubelet's Service variables)."""
    if not env:
        return spec
    containers = []
    for c in spec.get("containers") or []:
        if c.get("name") == container_name:
            c = {**c, "env": [{"name": k, "value": v} for k, v in env.items()] + list(c.get("env") or [])}
        containers.append(c)
    return {**spec, "containers": containers}
