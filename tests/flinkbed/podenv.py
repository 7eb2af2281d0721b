"""The kubelet's part of a container start: the container's environment and its volume mounts.

Builds the env as the kubelet does (``value`` with ``$(VAR)`` expansion, ``fieldRef``,
``configMapKeyRef``, ``envFrom``) and writes the ConfigMap/emptyDir mounts below ``/opt/flink``
into the pod's home. A missing ConfigMap raises :class:`~tests.flinkbed.pods.NotStartable`
(the pod waits, like ``ContainerCreating`` / ``CreateContainerConfigError``); what is not emulated
is reported through ``note``.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .net import LOCALHOST
from .pods import FLINK_HOME_IN_IMAGE, Deployment, NotStartable, Pod, expand_k8s_vars

Note = Callable[[str], None]


def container_env(
    dep: Deployment, pod: Pod, container: Mapping[str, Any], configmaps: Mapping[str, Any], note: Note
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (``value`` with ``$(VAR)``
    expansion, ``fieldRef`` for the pod IP/name/namespace, ``configMapKeyRef``, ``envFrom``)."""
    env = _env_from(dep, container, configmaps, note)
    labels = (dep.template.get("metadata") or {}).get("labels") or {}
    field_values = {
        "status.podIP": LOCALHOST,
        "status.podIPs": LOCALHOST,
        "status.hostIP": LOCALHOST,
        "metadata.name": pod.name,
        "metadata.namespace": dep.namespace,
        "spec.nodeName": "localhost",
        "spec.serviceAccountName": (dep.template.get("spec") or {}).get("serviceAccountName", "default"),
    }
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand_k8s_vars(str(item["value"]), env)
        elif "valueFrom" in item:
            value = _value_from(dep, name, item["valueFrom"], labels, field_values, configmaps, note)
            if value is not None:
                env[name] = value
        else:
            env[name] = ""
    return env


def _env_from(
    dep: Deployment, container: Mapping[str, Any], configmaps: Mapping[str, Any], note: Note
) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        if "configMapRef" in src:
            cm = configmaps.get(src["configMapRef"].get("name", ""))
            if cm is None and not src["configMapRef"].get("optional"):
                raise NotStartable(
                    "CreateContainerConfigError", f"configmap {src['configMapRef'].get('name')!r} not found"
                )
            for k, v in ((cm or {}).get("data") or {}).items():
                env[src.get("prefix", "") + k] = str(v)
        else:
            note(f"Deployment {dep.name}: envFrom {list(src)} not supported, ignored")
    return env


def _value_from(
    dep: Deployment,
    name: str,
    vf: Mapping[str, Any],
    labels: Mapping[str, str],
    field_values: Mapping[str, str],
    configmaps: Mapping[str, Any],
    note: Note,
) -> str | None:
    """An env ``valueFrom``; None leaves the variable unset."""
    if "fieldRef" in vf:
        path = vf["fieldRef"].get("fieldPath", "")
        m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        value = labels.get(m.group(1)) if m else field_values.get(path)
        if value is None:
            note(f"Deployment {dep.name}: env {name}: fieldRef {path!r} not emulated, left unset")
        return value
    if "configMapKeyRef" in vf:
        ref = vf["configMapKeyRef"]
        value = ((configmaps.get(ref.get("name", "")) or {}).get("data") or {}).get(ref.get("key"))
        if value is None:
            if ref.get("optional"):
                return None
            raise NotStartable("CreateContainerConfigError", f"env {name}: configmap key {ref} not found")
        return str(value)
    note(f"Deployment {dep.name}: env {name}: valueFrom {list(vf)} not emulated, left unset")
    return None


def materialize_volumes(
    dep: Deployment,
    pod: Pod,
    container: Mapping[str, Any],
    tmpl_spec: Mapping[str, Any],
    configmaps: Mapping[str, Any],
    note: Note,
) -> tuple[Path, str]:
    """Write the container's ConfigMap/emptyDir mounts below ``/opt/flink`` into the pod's home.

    Returns the conf dir and the cluster key (the name of the ConfigMap mounted at
    ``/opt/flink/conf``; falls back to the Deployment name). The conf dir is rewritten at every
    container start: a (re)started container sees the ConfigMap's current content.
    """
    home = pod.home
    conf_dir = home / "conf"
    if conf_dir.exists():
        shutil.rmtree(conf_dir)
    volumes = {v.get("name"): v for v in tmpl_spec.get("volumes") or []}
    cluster = ""
    for mount in container.get("volumeMounts") or []:
        mpath = str(mount.get("mountPath", "")).rstrip("/")
        vol = volumes.get(mount.get("name"))
        if vol is None:
            raise NotStartable("CreateContainerConfigError", f"volumeMount {mount.get('name')!r} has no volume")
        if not (mpath == FLINK_HOME_IN_IMAGE or mpath.startswith(FLINK_HOME_IN_IMAGE + "/")):
            note(f"Deployment {dep.name}: mount {mpath} (outside {FLINK_HOME_IN_IMAGE}) is not emulated")
            continue
        dest = home / mpath[len(FLINK_HOME_IN_IMAGE) :].lstrip("/")
        if "configMap" in vol:
            _write_configmap_mount(mount, dest, configmap_files(vol["configMap"], configmaps))
            if dest == conf_dir or (mount.get("subPath") and dest.parent == conf_dir):
                cluster = vol["configMap"].get("name", "")
        elif "emptyDir" in vol:
            dest.mkdir(parents=True, exist_ok=True)  # kept across container restarts, like an emptyDir
        else:
            note(f"Deployment {dep.name}: volume type {sorted(vol)} at {mpath} is not emulated")
    return conf_dir, cluster or dep.name


def _write_configmap_mount(mount: Mapping[str, Any], dest: Path, files: Mapping[str, bytes]) -> None:
    if mount.get("subPath"):
        content = files.get(mount["subPath"])
        if content is None:
            raise NotStartable("CreateContainerConfigError", f"subPath {mount['subPath']!r} not in the ConfigMap")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(content)


def configmap_files(source: Mapping[str, Any], configmaps: Mapping[str, Any]) -> dict[str, bytes]:
    """The files a ``configMap`` volume source projects (``items`` honoured)."""
    name = source.get("name", "")
    cm = configmaps.get(name)
    if cm is None:
        if source.get("optional"):
            return {}
        raise NotStartable("ContainerCreating", f'MountVolume.SetUp failed: configmap "{name}" not found')
    data: dict[str, bytes] = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return data
    out = {}
    for item in items:
        if item.get("key") not in data:
            if source.get("optional"):
                continue
            raise NotStartable("ContainerCreating", f"configmap {name!r} has no key {item.get('key')!r}")
        out[item.get("path", item["key"])] = data[item["key"]]
    return out
