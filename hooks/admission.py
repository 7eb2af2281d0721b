"""The optional validating admission webhook (AdmissionReview v1): `kubectl apply` of an invalid
FlinkDeployment or FlinkSessionJob is refused with the message the sync would write into `status.error`
(hooks/validation.py, the same rules). It is served by `flink-sync admission`, the hook server's second
listener (HTTPS with a certificate it makes and rotates itself, hooks/webhook_tls.py).

What is refused, and what never is:
* CREATE, and an UPDATE that changes the spec, of a kind in `hooks.validation.VALIDATORS` with an invalid spec;
* never an UPDATE that leaves the spec alone (Metacontroller adding or removing its finalizer, labels,
  annotations), nor anything of a resource being deleted: an outdated rule must not keep a resource from
  being deleted or from being released by Metacontroller;
* never DELETE or the status subresource (the webhook's rules do not even send them).

The webhook's failure policy is Ignore (docs/operations.md): when this server cannot be reached, the API
server accepts the resource and the sync reports the same error in status.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request

from .metrics import CONTENT_TYPE_LATEST, Metrics
from .validation import ValidationContext, validation_error

log = logging.getLogger("flink_sync.admission")
REVIEW_API_VERSION = "admission.k8s.io/v1"


class BadReview(Exception):
    """Not an AdmissionReview v1 request: answered 400, which the API server treats as a webhook failure."""


def _request_of(review: Any) -> Mapping[str, Any]:
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise BadReview("body: not an AdmissionReview")
    if review.get("apiVersion") != REVIEW_API_VERSION:
        raise BadReview(f"apiVersion: only {REVIEW_API_VERSION} is served, got {review.get('apiVersion')!r}")
    req = review.get("request")
    if not isinstance(req, Mapping) or not isinstance(req.get("uid"), str) or not req["uid"]:
        raise BadReview("request.uid: required")
    return req


def _needs_validation(req: Mapping[str, Any]) -> bool:
    if req.get("operation") not in ("CREATE", "UPDATE") or req.get("subResource"):
        return False
    obj = req.get("object")
    if not isinstance(obj, Mapping) or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if req.get("operation") == "UPDATE":
        old = req.get("oldObject")
        return not isinstance(old, Mapping) or old.get("spec") != obj.get("spec")
    return True


def decide(req: Mapping[str, Any], ctx: ValidationContext) -> str | None:
    """Why the request is refused, or None when it is allowed."""
    if not _needs_validation(req):
        return None
    obj = dict(req["object"])
    meta = dict(obj.get("metadata") or {})
    if not meta.get("namespace") and isinstance(req.get("namespace"), str):
        meta["namespace"] = req["namespace"]  # the API server sets it; a dry run from a client may not have
    obj["metadata"] = meta
    if not obj.get("kind"):
        obj["kind"] = (req.get("kind") or {}).get("kind")
    return validation_error(obj, ctx)


def review(body: Any, ctx: ValidationContext) -> tuple[dict[str, Any], str, bool]:
    """The AdmissionReview response to an AdmissionReview request, the kind reviewed, and whether it is allowed."""
    req = _request_of(body)
    kind = str((req.get("kind") or {}).get("kind") or (req.get("object") or {}).get("kind") or "")
    error = decide(req, ctx)
    response: dict[str, Any] = {"uid": req["uid"], "allowed": error is None}
    if error is not None:
        # kubectl prints: admission webhook "..." denied the request: <message>
        response["status"] = {"code": 422, "reason": "Invalid", "message": error}
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response}, kind, error is None


def _read_limited(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise BadReview(f"body: over {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BadReview(f"body: over {limit} bytes")
    return data


def create_admission_app(context: Callable[[], ValidationContext], max_request_bytes: int,
                         metrics: Metrics | None = None) -> Flask:
    """POST /validate (every kind: the review names it), GET /healthz, GET /metrics. `context` is asked per
    review, so a changed operator defaults file applies at once, as it does for the syncs."""
    metrics = metrics or Metrics()
    app = Flask("flink_sync_admission")

    @app.post("/validate")
    def validate() -> Response:
        try:
            body = json.loads(_read_limited(max_request_bytes))
            answer, kind, allowed = review(body, context())
        except (BadReview, ValueError) as exc:
            return Response(json.dumps({"error": str(exc)}), status=400, mimetype="application/json")
        metrics.on_admission(kind or "unknown", allowed)
        if not allowed:
            req = body["request"]
            log.info(json.dumps({"admission": kind, "operation": req.get("operation"),
                                 "resource": f"{req.get('namespace')}/{req.get('name')}", "allowed": False,
                                 "message": answer["response"]["status"]["message"]}))
        return Response(json.dumps(answer), mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.scrape(), mimetype=CONTENT_TYPE_LATEST)

    return app
