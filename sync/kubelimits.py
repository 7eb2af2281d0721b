"""Would the API server take these children? The checks a rendered child must pass before the cluster it
replaces is taken down.

Metacontroller deletes the children a response leaves out before it creates the new ones; a new child the
API server refuses (a replica count past int32, a quantity past 2^63-1, a label value it cannot hold, a port
out of range, a ConfigMap over 1 MiB) would leave the job with no cluster at all. So a spec whose children
fail these checks is an invalid spec: the running cluster stays. The rules are the API server's
(k8s.io/apimachinery validation and resource.Quantity; Kubernetes 1.20 and later alike).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .quantity import QuantityError, parse_k8s_quantity

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
CONFIGMAP_MAX_BYTES = 1024 * 1024          # etcd's object limit as the API server enforces it for ConfigMaps
ANNOTATIONS_MAX_BYTES = 256 * 1024
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_object_name(name: str) -> bool:
    """A name the API server takes for most objects (DNS-1123 subdomain)."""
    return len(name) <= 253 and _DNS_SUBDOMAIN.match(name) is not None


def is_namespace_name(name: str) -> bool:
    """A namespace name (DNS-1123 label)."""
    return len(name) <= 63 and _DNS_LABEL.match(name) is not None


def _quantity_error(text: Any) -> str | None:
    try:
        value = parse_k8s_quantity(str(text))
    except QuantityError as exc:
        return str(exc)
    # resource.Quantity caps anything past 2^63-1 (in its scale): the stored value would differ from ours.
    if abs(value) > INT64_MAX or (value != 0 and abs(value) < Decimal("1e-9")):
        return f"'{text}' is outside the range a Kubernetes quantity can hold"
    return None


def _label_key_error(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"'{key}': the prefix must be a DNS subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return f"'{key}': must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def labels_error(labels: Any, where: str) -> str | None:
    if not labels:
        return None
    if not isinstance(labels, dict):
        return f"{where}: must be an object"
    for key, value in labels.items():
        problem = _label_key_error(key)
        if problem:
            return f"{where}: label key {problem}"
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            return (f"{where}.{key}: label value {value!r} must be at most 63 characters of letters, digits, '-', "
                    "'_' or '.', starting and ending alphanumeric")
    return None


def _annotations_error(annotations: Any, where: str) -> str | None:
    if not annotations:
        return None
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        return f"{where}: must map strings to strings"
    for key in annotations:
        problem = _label_key_error(key)
        if problem:
            return f"{where}: annotation key {problem}"
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        return f"{where}: {size} bytes of annotations, over Kubernetes' limit of {ANNOTATIONS_MAX_BYTES}"
    return None


def _int_error(value: Any, where: str, low: int, high: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{where}: {value!r} is outside {low}..{high}"
    return None


def _container_errors(container: dict[str, Any], where: str) -> Iterable[str | None]:
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for key, value in (resources.get(section) or {}).items():
            problem = _quantity_error(value)
            yield f"{where}.resources.{section}.{key}: {problem}" if problem else None
    for index, port in enumerate(container.get("ports") or []):
        yield _int_error(port.get("containerPort"), f"{where}.ports[{index}].containerPort", 1, 65535)


def _pod_template_errors(template: dict[str, Any], where: str) -> Iterable[str | None]:
    meta = template.get("metadata") or {}
    yield labels_error(meta.get("labels"), f"{where}.metadata.labels")
    yield _annotations_error(meta.get("annotations"), f"{where}.metadata.annotations")
    spec = template.get("spec") or {}
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            yield from _container_errors(container, f"{where}.spec.{key}[{index}]")


def _child_errors(child: dict[str, Any]) -> Iterable[str | None]:
    kind = child.get("kind")
    meta = child.get("metadata") or {}
    where = f"{kind} {meta.get('name')}"
    name = meta.get("name")
    if not isinstance(name, str) or not is_object_name(name):
        yield f"{where}: the name is not a valid Kubernetes object name"
    yield labels_error(meta.get("labels"), f"{where}: metadata.labels")
    yield _annotations_error(meta.get("annotations"), f"{where}: metadata.annotations")
    spec = child.get("spec") or {}
    if kind == "Deployment":
        yield _int_error(spec.get("replicas"), f"{where}: spec.replicas", 0, INT32_MAX)
        yield from _pod_template_errors(spec.get("template") or {}, f"{where}: spec.template")
    elif kind == "Service":
        for index, port in enumerate(spec.get("ports") or []):
            yield _int_error(port.get("port"), f"{where}: spec.ports[{index}].port", 1, 65535)
            target = port.get("targetPort")
            if isinstance(target, int):
                yield _int_error(target, f"{where}: spec.ports[{index}].targetPort", 1, 65535)
    elif kind == "ConfigMap":
        size = len(json.dumps(child.get("data") or {}, ensure_ascii=False).encode())
        if size > CONFIGMAP_MAX_BYTES:
            yield f"{where}: {size} bytes of data, over Kubernetes' limit of {CONFIGMAP_MAX_BYTES}"


def children_error(children: Iterable[dict[str, Any]]) -> str | None:
    """The first reason the API server would refuse one of these children, or None."""
    for child in children:
        for problem in _child_errors(child):
            if problem:
                return problem
    return None
