#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager 1.20.2 from Debian's `kubernetes` source package
# (bookworm), and install etcd (Debian etcd-server). Idempotent: skips the build when the binaries are
# cached under $FLINK_SYNC_CACHE/k8s-1.20.2/bin. Steps and traps: see docs/sandbox.md.
#
# Needs root for apt-get (as on the project's machines). Nothing is fetched but Debian packages.
set -euo pipefail

CACHE="${FLINK_SYNC_CACHE:-$HOME/.cache/flink-sync}"
K8S_DIR="$CACHE/k8s-1.20.2"
# Built without the in-tree cloud providers (Kubernetes' own `providerless` build tag): the sandbox has no cloud,
# and it is 42% less Go source to compile (96 MB -> 55 MB for the two commands). The directory names the flavour,
# so a cache of another build is not taken for this one.
BIN="$K8S_DIR/bin-providerless"
BUILD="$K8S_DIR/build"
WANT=(kube-apiserver kube-controller-manager)

log() { echo "[build-control-plane] $*" >&2; }

have_bins() {
  for b in "${WANT[@]}"; do [ -x "$BIN/$b" ] || return 1; done
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || return 1
}

if have_bins; then
  log "cached: $BIN (${WANT[*]}); etcd: $(command -v etcd || echo /usr/bin/etcd)"
  exit 0
fi

# One build at a time: `make test` starts this script in the background while the tests that need no sandbox run,
# and each sandbox the tests start calls it again; those calls wait here for the build, then find it cached.
mkdir -p "$K8S_DIR"
exec 9>"$K8S_DIR/build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if have_bins; then
  log "built meanwhile: $BIN"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_OPTS=(-o Acquire::Retries=3 -o Acquire::http::Timeout=60)

# deb-src entry mirroring the existing deb entries (same URIs/Suites/Components/Signed-By).
SRC_LIST=/etc/apt/sources.list.d/flink-sync-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    log "adding deb-src entry $SRC_LIST"
    sed -e 's/^Types: *deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $SUDO tee "$SRC_LIST" >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/flink-sync-deb-src.list >/dev/null
  fi
fi

log "apt-get update"
$SUDO timeout 600 apt-get "${APT_OPTS[@]}" update -qq
log "apt-get install etcd-server golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev"
DEBIAN_FRONTEND=noninteractive $SUDO timeout 900 apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends \
  etcd-server golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev make >/dev/null

# etcd-server's package starts a system etcd on 127.0.0.1:2379 under systemd; there is none here, but make sure
# we never depend on it: the sandbox runs its own etcd on other ports.

mkdir -p "$BUILD" "$BIN"
cd "$BUILD"
SRC_DIR="$(ls -d kubernetes-*/ 2>/dev/null | head -n1 || true)"
if [ -z "$SRC_DIR" ]; then
  log "apt-get source --download-only kubernetes"
  timeout 900 apt-get "${APT_OPTS[@]}" source --download-only kubernetes
  ORIG="$(ls kubernetes_*.orig.tar.* | head -n1)"
  log "unpacking $ORIG"
  mkdir -p src.tmp
  tar -xf "$ORIG" -C src.tmp
  top="$(ls src.tmp | head -n1)"
  mv "src.tmp/$top" "kubernetes-src"
  rmdir src.tmp
  SRC_DIR=kubernetes-src
fi
cd "$BUILD/${SRC_DIR%/}"

# Trap 1: vendored reflect2 1.0.1 crashes on Go >= 1.18: use Debian's 1.0.2 (without go.mod).
R2=/usr/share/gocode/src/github.com/modern-go/reflect2
if [ ! -f vendor/github.com/modern-go/reflect2/.flink-sync-replaced ]; then
  log "replacing vendor/github.com/modern-go/reflect2 with $R2"
  rm -rf vendor/github.com/modern-go/reflect2
  mkdir -p vendor/github.com/modern-go/reflect2
  cp -a "$R2"/. vendor/github.com/modern-go/reflect2/
  rm -f vendor/github.com/modern-go/reflect2/go.mod
  touch vendor/github.com/modern-go/reflect2/.flink-sync-replaced
fi

# Trap 2: module mode wants go.mod updates: build in GOPATH mode as Debian's rules do.
mkdir -p .go/src/k8s.io
[ -e .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
cd .go/src/k8s.io/kubernetes
export GOPATH="$BUILD/${SRC_DIR%/}/.go" CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-tags=providerless
export GOCACHE="$K8S_DIR/gocache"
# keep the build polite on a shared 2-core machine
export GOMAXPROCS="${GOMAXPROCS:-2}"
for w in "${WANT[@]}"; do
  if [ -x "$BIN/$w" ]; then continue; fi
  log "building cmd/$w (about 5 min on 2 cores)"
  start=$(date +%s)
  nice -n 5 make WHAT="cmd/$w" >"$K8S_DIR/build-$w.log" 2>&1 || { tail -n 40 "$K8S_DIR/build-$w.log" >&2; exit 1; }
  out="$(find _output -type f -name "$w" -perm -u+x | head -n1)"
  [ -n "$out" ] || { log "no $w binary found under _output"; exit 1; }
  cp "$out" "$BIN/$w.tmp" && mv "$BIN/$w.tmp" "$BIN/$w"
  log "built $w in $(( $(date +%s) - start ))s"
done
"$BIN/kube-apiserver" --version >&2 || true
log "done: $BIN"
