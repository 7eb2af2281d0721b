"""Memory and CPU amounts: Flink's MemorySize rules, Kubernetes quantities, and their canonical text.

The API server stores quantities in canonical form (`2048Mi` comes back as `2Gi`, `1.0` as `1`).
Returning anything else makes Metacontroller's three-way merge see a difference on every sync and
update the child forever, so every quantity we emit goes through `canonical_*`.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

KIB = 1024
MIB = 1024 * KIB

# Flink MemorySize units (org.apache.flink.configuration.MemorySize.MemoryUnit): binary, case-insensitive.
_FLINK_UNITS = {
    "": 1, "b": 1, "bytes": 1,
    "k": KIB, "kb": KIB, "kibibytes": KIB,
    "m": MIB, "mb": MIB, "mebibytes": MIB,
    "g": 1024 * MIB, "gb": 1024 * MIB, "gibibytes": 1024 * MIB,
    "t": 1024**4, "tb": 1024**4, "tebibytes": 1024**4,
}
_FLINK_MEMORY = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")

# Kubernetes quantity suffixes (k8s.io/apimachinery resource.Quantity).
_K8S_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_K8S_BINARY_LARGEST_FIRST = sorted(_K8S_BINARY.items(), key=lambda item: -item[1])
_K8S_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
                "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
                "P": Decimal("1e15"), "E": Decimal("1e18")}
_K8S_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


#: Flink's MemorySize is a Java long of bytes; Kubernetes' resource.Quantity caps values past 2^63-1.
LARGEST = 2**63 - 1


class QuantityError(ValueError):
    """A memory or CPU amount that does not parse, or that no Flink or Kubernetes type can hold."""


def parse_flink_memory(text: str) -> int:
    """Bytes of a Flink MemorySize string (`2048m` is 2048 MiB, `2g` 2 GiB, `1024` 1024 bytes)."""
    match = _FLINK_MEMORY.match(text)
    if not match or match.group(2).lower() not in _FLINK_UNITS:
        raise QuantityError(f"'{text}' is not a Flink memory size")
    if len(match.group(1)) > 19:  # more digits than a long has: refuse before multiplying
        raise QuantityError(f"'{text}' is larger than Flink's largest memory size (2^63-1 bytes)")
    num_bytes = int(match.group(1)) * _FLINK_UNITS[match.group(2).lower()]
    if num_bytes > LARGEST:
        raise QuantityError(f"'{text}' is larger than Flink's largest memory size (2^63-1 bytes)")
    return num_bytes


def parse_k8s_quantity(text: str) -> Decimal:
    """Value of a Kubernetes quantity (`2Gi`, `500m`, `1.5`, `1e3`)."""
    match = _K8S_QUANTITY.match(str(text).strip())
    if not match:
        raise QuantityError(f"'{text}' is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    try:
        # Decimal reads the exponent itself: `1e999` is never expanded into a power of ten.
        value = Decimal(number + (exponent or ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets numbers through
        raise QuantityError(f"'{text}' is not a Kubernetes quantity") from exc
    if not exponent:
        value *= _K8S_BINARY[suffix] if suffix in _K8S_BINARY else _K8S_DECIMAL[suffix or ""]
    if abs(value) > LARGEST:
        raise QuantityError(f"'{text}' is larger than a Kubernetes quantity can hold (2^63-1)")
    return value


def parse_memory(text: str | int | float) -> int:
    """Bytes of a spec memory value, as the Apache operator reads it: Flink's MemorySize first, then a
    Kubernetes quantity (`2Gi`, `2G` is Flink's 2 GiB because Flink's parser wins)."""
    raw = str(text).strip()
    try:
        return parse_flink_memory(raw)
    except QuantityError:
        if _FLINK_MEMORY.match(raw) and parse_flink_memory_unit_known(raw):
            raise  # a Flink memory size, only too large
    try:
        value = parse_k8s_quantity(raw)
    except QuantityError as exc:
        if _K8S_QUANTITY.match(raw):
            raise exc from None  # a Kubernetes quantity, only too large
        raise QuantityError(f"'{text}' is neither a Flink memory size (e.g. 2048m, 2g) nor a Kubernetes quantity (e.g. 2Gi)") from None
    if int(value) <= 0:
        raise QuantityError(f"'{text}' must be positive")
    return int(value)


def parse_flink_memory_unit_known(text: str) -> bool:
    match = _FLINK_MEMORY.match(text)
    return match is not None and match.group(2).lower() in _FLINK_UNITS


def flink_memory_text(num_bytes: int) -> str:
    """Flink MemorySize text for a byte count, exact (`2048m`, or bytes when not whole MiB)."""
    if num_bytes % MIB == 0:
        return f"{num_bytes // MIB}m"
    if num_bytes % KIB == 0:
        return f"{num_bytes // KIB}k"
    return f"{num_bytes}b"


def canonical_binary(num_bytes: int) -> str:
    """Kubernetes canonical form of a byte count: the largest binary suffix dividing it exactly."""
    for suffix, size in _K8S_BINARY_LARGEST_FIRST:
        if num_bytes % size == 0 and num_bytes >= size:
            return f"{num_bytes // size}{suffix}"
    return str(num_bytes)


def canonical_decimal(value: Decimal | float | int) -> str:
    """Kubernetes canonical form of a decimal amount such as CPU (`1`, `500m`, `2500m`)."""
    amount = Decimal(str(value))
    if amount == amount.to_integral_value():
        return str(int(amount))
    milli = amount * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    micro = amount * 1_000_000
    return f"{int(micro.to_integral_value())}u"


def canonical_quantity(text: str | int | float) -> str:
    """Canonical form of any quantity a user wrote (keeps binary vs decimal as Kubernetes does)."""
    raw = str(text).strip()
    match = _K8S_QUANTITY.match(raw)
    if not match:
        raise QuantityError(f"'{text}' is not a Kubernetes quantity")
    value = parse_k8s_quantity(raw)
    if match.group(3) in _K8S_BINARY and value == value.to_integral_value():
        return canonical_binary(int(value))
    if value == value.to_integral_value() and value >= 1000:
        # Kubernetes keeps the suffix family; plain large integers stay plain.
        return str(int(value)) if not match.group(3) else _decimal_with_suffix(value)
    return canonical_decimal(value)


def _decimal_with_suffix(value: Decimal) -> str:
    for suffix in ("E", "P", "T", "G", "M", "k"):
        size = _K8S_DECIMAL[suffix]
        if value % size == 0:
            return f"{int(value / size)}{suffix}"
    return str(int(value))
