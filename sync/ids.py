"""Deterministic ids. A retried sync must produce the same job id and trigger id, so that Flink itself
refuses a duplicate submission and answers a repeated savepoint trigger with the first one's result."""
from __future__ import annotations

import hashlib


def derive_id(*parts: object) -> str:
    """32 lowercase hex characters (the shape of a Flink JobID and of a trigger id)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
