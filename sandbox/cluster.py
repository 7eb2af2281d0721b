"""`make sandbox-up` / `make sandbox-down`: a local Kubernetes control plane with flink-sync on it.

Real: etcd (Debian etcd-server), kube-apiserver and kube-controller-manager 1.20.2 (built from Debian's
`kubernetes` source package by scripts/sandbox/build-control-plane.sh), the hook server (`flink-sync serve`,
gunicorn), Flink (JVMs from the PyPI distribution). Stand-ins: the Metacontroller controller
(sandbox/metacontroller.py) and the kubelet/kube-proxy (sandbox/nodeagent.py). Everything listens on 127.0.0.1.

State lives in `.sandbox/` of the checkout: `pids` (name pid start-time, one per process started), `kubeconfig`
(cluster admin), `env`, `services`, `ports.json`, `logs/`.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .kube import ApiError, Kube

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("SANDBOX_DIR", ROOT / ".sandbox"))
CACHE = Path(os.environ.get("FLINK_SYNC_CACHE", Path.home() / ".cache" / "flink-sync")).expanduser()
K8S_BIN = CACHE / "k8s-1.20.2" / "bin-providerless"  # scripts/sandbox/build-control-plane.sh
LOCALHOST = "127.0.0.1"
EXAMPLE_JAR = Path(os.environ.get("SANDBOX_EXAMPLE_JAR", "/opt/flink/usrlib/flink-sync-sandbox-counter.jar"))
METACONTROLLER_CRD = ROOT / "tests" / "schemas" / "metacontroller-crds-v1.yaml"
# 1.20 has no policy/v1 PodDisruptionBudget and no autoscaling/v2 HPA; the hook server runs as a local process,
# not as the Deployment (whose image the sandbox node cannot run), so its Deployment and Service are left out.
SKIPPED_KINDS = {("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                 ("apps/v1", "Deployment"), ("v1", "Service")}


def route_webhook_to_local_server(config: dict[str, Any], port: int) -> None:
    """The API server reaches a webhook Service through its cluster IP or DNS name, neither of which exists here
    (no kube-proxy, no DNS), and Endpoints may not hold 127.0.0.1; so the sandbox points the webhook at the local
    admission server by URL, as the Metacontroller stand-in maps the hooks' Service to the local hook server."""
    for webhook in config["webhooks"]:
        path = webhook["clientConfig"].pop("service").get("path", "/")
        webhook["clientConfig"]["url"] = f"https://{LOCALHOST}:{port}{path}"


def say(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def proc_start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def read_pids(state: Path = STATE) -> list[tuple[str, int, str]]:
    out = []
    for path in (state / "pids", state / "agent-pids"):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                out.append((parts[0], int(parts[1]), parts[2]))
    return out


def alive(pid: int, start: str) -> bool:
    return proc_start_time(pid) == start


def kubectl_path() -> str:
    venv = ROOT / ".venv" / "bin" / "kubectl"
    if venv.exists():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        raise SystemExit("kubectl not found: run scripts/ensure-kubectl.sh")
    return found


def start_process(state: Path, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start one sandbox process in its own session, log to logs/NAME.log, record `name pid start-time`."""
    log = (state / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                            env={**os.environ, **env}, start_new_session=True)
    log.close()
    st = proc_start_time(proc.pid) or "0"
    with (state / "pids").open("a") as f:
        f.write(f"{name} {proc.pid} {st}\n")
    return proc


def stop_pid(pid: int, start: str, grace_s: float, kill: bool = False) -> None:
    if not alive(pid, start):
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive(pid, start):
        time.sleep(0.1)
    if alive(pid, start):
        os.kill(pid, signal.SIGKILL)


def restart(name: str, kill: bool = False, down_s: float = 0.0, state: Path = STATE) -> int:
    """Stop one sandbox process (SIGTERM, or SIGKILL with kill=True) by its recorded PID and start it again with
    the same command line (for fault tests: the API server, the Metacontroller stand-in, the hook server...)."""
    specs = json.loads((state / "procs.json").read_text())
    if name not in specs:
        raise SystemExit(f"no sandbox process {name!r} (known: {', '.join(specs)})")
    lines = (state / "pids").read_text().splitlines()
    keep = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == name:
            stop_pid(int(parts[1]), parts[2], 25 if name == "node-agent" else 10, kill)
        else:
            keep.append(line)
    (state / "pids").write_text("".join(f"{line}\n" for line in keep))
    time.sleep(down_s)
    spec = specs[name]
    proc = start_process(state, name, spec["argv"], spec["env"], Path(spec["cwd"]))
    say(f"restarted {name}: pid {proc.pid}")
    return 0


class Up:
    def __init__(self, state: Path = STATE, flink_versions: tuple[str, ...] = ("--all",)):
        self.state = state
        self.logs = state / "logs"
        self.flink_versions = flink_versions
        self.started: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ processes
    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        proc = start_process(self.state, name, argv, env or {}, cwd)
        specs_file = self.state / "procs.json"
        specs = json.loads(specs_file.read_text()) if specs_file.exists() else {}
        specs[name] = {"argv": argv, "env": env or {}, "cwd": str(cwd)}
        specs_file.write_text(json.dumps(specs, indent=1))
        self.started.append((name, proc.pid))
        return proc

    def wait(self, what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{what}: process exited with {proc.returncode}; see {self.logs}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{what}: not ready after {timeout:.0f}s; see {self.logs}")

    # ------------------------------------------------------------------ steps
    def prerequisites(self) -> None:
        t = time.monotonic()
        subprocess.run([str(ROOT / "scripts/sandbox/build-control-plane.sh")], check=True, timeout=3000)
        subprocess.run([str(ROOT / "scripts/ensure-java.sh")], check=True, timeout=1200)
        subprocess.run([str(ROOT / "scripts/ensure-kubectl.sh")], check=True, timeout=600)
        subprocess.run([sys.executable, str(ROOT / "scripts/fetch_flink.py"), *self.flink_versions], check=True,
                       timeout=1800, stdout=subprocess.DEVNULL)
        self.example_jar()
        say(f"prerequisites ready ({time.monotonic() - t:.0f}s)")

    def example_jar(self) -> None:
        """The example job of examples/sandbox.yaml (tests/flinkbed/job/CounterJob.java, compiled against Flink
        1.20 with the JDK that scripts/ensure-java.sh installs) at EXAMPLE_JAR: a Flink container of the sandbox
        node sees the host's file system, so `local:///opt/flink/usrlib/...` names that file."""
        sys.path.insert(0, str(ROOT))
        from tests.flinkbed.dist import flink_dist
        from tests.flinkbed.job import build_counter_jar
        jar = build_counter_jar(flink_dist("1.20"))
        try:
            EXAMPLE_JAR.parent.mkdir(parents=True, exist_ok=True)
            if not EXAMPLE_JAR.exists() or EXAMPLE_JAR.read_bytes() != jar.read_bytes():
                shutil.copyfile(jar, EXAMPLE_JAR)
        except OSError as e:
            say(f"note: could not place the example jar at {EXAMPLE_JAR} ({e}); examples/sandbox.yaml needs it")

    def pki(self) -> dict[str, str]:
        pki = self.state / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")], check=True,
                       capture_output=True, timeout=60)
        tokens = {"admin": secrets.token_hex(16), "controller-manager": secrets.token_hex(16)}
        (pki / "tokens.csv").write_text(
            f"{tokens['admin']},admin,admin,system:masters\n"
            f"{tokens['controller-manager']},system:kube-controller-manager,kcm,system:masters\n")
        os.chmod(pki / "tokens.csv", 0o600)
        return tokens

    def kubeconfig(self, path: Path, server: str, token: str, user: str, namespace: str = "default") -> None:
        """A kubeconfig with a bearer token; the API server's self-signed certificate (it generates it in its
        --cert-dir, the file holds the serving certificate and its own CA) is the certificate authority."""
        ca = self.state / "pki" / "apiserver" / "apiserver.crt"
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
               "clusters": [{"name": "sandbox", "cluster": {"server": server, "certificate-authority": str(ca)}}],
               "users": [{"name": user, "user": {"token": token}}],
               "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user, "namespace": namespace}}]}
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        os.chmod(path, 0o600)

    def run(self) -> int:
        t0 = time.monotonic()
        self.prerequisites()
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        (self.state / "pids").write_text("")
        tokens = self.pki()
        ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port(), "hooks": free_port(),
                 "jars": free_port(), "admission": free_port()}
        (self.state / "ports.json").write_text(json.dumps(ports, indent=1))
        pki = self.state / "pki"

        etcd = self.spawn("etcd", [
            shutil.which("etcd") or "/usr/bin/etcd", "--name", "sandbox", "--data-dir", str(self.state / "etcd"),
            "--listen-client-urls", f"http://{LOCALHOST}:{ports['etcd']}",
            "--advertise-client-urls", f"http://{LOCALHOST}:{ports['etcd']}",
            "--listen-peer-urls", f"http://{LOCALHOST}:{ports['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://{LOCALHOST}:{ports['etcd-peer']}",
            "--initial-cluster", f"sandbox=http://{LOCALHOST}:{ports['etcd-peer']}",
            "--listen-metrics-urls", f"http://{LOCALHOST}:{free_port()}"], env={"ETCD_UNSUPPORTED_ARCH": ""})
        import requests
        self.wait("etcd", lambda: requests.get(f"http://{LOCALHOST}:{ports['etcd']}/health", timeout=2).ok, 60, etcd)

        server = f"https://{LOCALHOST}:{ports['apiserver']}"
        apiserver = self.spawn("kube-apiserver", [
            str(K8S_BIN / "kube-apiserver"), "--etcd-servers", f"http://{LOCALHOST}:{ports['etcd']}",
            "--bind-address", LOCALHOST, "--advertise-address", LOCALHOST, "--secure-port", str(ports["apiserver"]),
            "--insecure-port", "0", "--cert-dir", str(pki / "apiserver"),
            "--authorization-mode", "RBAC", "--token-auth-file", str(pki / "tokens.csv"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(pki / "sa.pub"), "--service-account-signing-key-file", str(pki / "sa.key"),
            # kubeadm's default range: each FlinkDeployment's REST Service takes a cluster IP, and a /24 ran out
            # at 253 deployments ("failed to allocate a serviceIP: range is full")
            "--service-cluster-ip-range", "10.96.0.0/12", "--allow-privileged=true",
            "--enable-admission-plugins", "NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota",
            "--profiling=false"])
        self.wait("kube-apiserver certificate", (pki / "apiserver" / "apiserver.crt").exists, 60, apiserver)
        time.sleep(0.2)  # the key and certificate files are written one after the other
        self.kubeconfig(self.state / "kubeconfig", server, tokens["admin"], "admin")
        self.kubeconfig(pki / "controller-manager.kubeconfig", server, tokens["controller-manager"], "kcm")
        kube = Kube.from_kubeconfig(self.state / "kubeconfig")
        self.wait("kube-apiserver", kube.healthy, 120, apiserver)

        self.spawn("kube-controller-manager", [
            str(K8S_BIN / "kube-controller-manager"), "--kubeconfig", str(pki / "controller-manager.kubeconfig"),
            "--bind-address", LOCALHOST, "--secure-port", "0", "--port", "0", "--leader-elect=false",
            "--controllers", "deployment,replicaset,garbagecollector,serviceaccount,serviceaccount-token,namespace",
            "--service-account-private-key-file", str(pki / "sa.key"), "--use-service-account-credentials=false",
            # the CA that the token controller puts into every ServiceAccount token Secret (`ca.crt`), so a pod
            # verifies the API server as pods in a cluster do (sandbox/podaccess.py)
            "--root-ca-file", str(pki / "apiserver" / "apiserver.crt"),
            "--concurrent-deployment-syncs", "5", "--concurrent-gc-syncs", "5"])

        self.install(kube, ports["admission"])
        hooks_token = self.service_account_token(kube, "flink-sync", "flink-sync-hooks")
        self.kubeconfig(self.state / "hooks.kubeconfig", server, hooks_token, "flink-sync-hooks", "flink-sync")

        agent = self.spawn("node-agent", [sys.executable, "-m", "sandbox.nodeagent", "--kubeconfig",
                                          str(self.state / "kubeconfig"), "--state-dir", str(self.state)],
                           env={"PYTHONPATH": str(ROOT)})
        self.wait("node agent (proxy port)", (self.state / "proxy-port").exists, 60, agent)
        proxy_port = int((self.state / "proxy-port").read_text())
        node_res = kube.resource("v1", "nodes")
        self.wait("Node sandbox-node Ready", lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in ((kube.get(node_res, None, "sandbox-node") or {}).get("status") or {}).get("conditions") or []), 60, agent)

        # A static file server for session-job jars: FlinkSessionJob jarURI http://127.0.0.1:<jars>/<file>.jar serves
        # .sandbox/jars/<file>.jar (the hook server's allowlist names exactly this origin).
        jars = self.state / "jars"
        jars.mkdir(exist_ok=True)
        if EXAMPLE_JAR.exists():
            shutil.copyfile(EXAMPLE_JAR, jars / EXAMPLE_JAR.name)
        jar_server = self.spawn("jar-server", [sys.executable, "-m", "http.server", str(ports["jars"]), "--bind", LOCALHOST,
                                               "--directory", str(jars)])
        self.wait("jar server", lambda: requests.get(f"http://{LOCALHOST}:{ports['jars']}/", timeout=2).ok, 30, jar_server)
        hooks_env = {"FLINK_SYNC_REST_URL_TEMPLATE": f"http://{LOCALHOST}:{proxy_port}/{{namespace}}/{{name}}-rest",
                     "FLINK_SYNC_EVENTS": "true", "KUBECONFIG": str(self.state / "hooks.kubeconfig"),
                     "FLINK_SYNC_DEFAULTS_FILE": str(ROOT / "manifests/base/defaults.yaml"),
                     "FLINK_SYNC_LOG_LEVEL": os.environ.get("FLINK_SYNC_LOG_LEVEL", "INFO"),
                     "FLINK_SYNC_JAR_URI_ALLOWLIST": f"https://,http://{LOCALHOST}:{ports['jars']}/"}
        flink_sync = ROOT / ".venv" / "bin" / "flink-sync"
        hooks = self.spawn("hooks", [str(flink_sync), "serve", "--bind", f"{LOCALHOST}:{ports['hooks']}",
                                     "--workers", "2"], env=hooks_env)
        self.wait("hook server", lambda: requests.get(f"http://{LOCALHOST}:{ports['hooks']}/healthz", timeout=2).ok, 60, hooks)

        self.admission(kube, hooks_env, ports["admission"])

        controllers = sorted(str(p) for p in (ROOT / "metacontroller").glob("*.yaml") if p.name != "kustomization.yaml")
        mc = self.spawn("metacontroller", [sys.executable, "-m", "sandbox.metacontroller", "--kubeconfig",
                                           str(self.state / "kubeconfig"),
                                           *[a for c in controllers for a in ("--controller", c)],
                                           "--service-url", f"flink-sync-hooks.flink-sync:80=http://{LOCALHOST}:{ports['hooks']}",
                                           "--stats-file", str(self.state / "metacontroller-stats.json")],
                        env={"PYTHONPATH": str(ROOT)})
        names = [yaml.safe_load(Path(c).read_text())["metadata"]["name"] for c in controllers]
        self.wait("metacontroller stand-in", lambda: all(f"started {name}:" in (self.logs / "metacontroller.log").read_text()
                                                         for name in names), 60, mc)

        kubectl = kubectl_path()
        (self.state / "env").write_text(
            f"# source this file: kubectl then talks to the sandbox\n"
            f"export KUBECONFIG={self.state / 'kubeconfig'}\n"
            f"export PATH={Path(kubectl).parent}:$PATH\n"
            f"export SANDBOX_REST_PROXY=http://{LOCALHOST}:{proxy_port}\n"
            f"export SANDBOX_JAR_SERVER=http://{LOCALHOST}:{ports['jars']}\n")
        self.wait("services table", (self.state / "services").exists, 30, agent)
        say(f"ready in {time.monotonic() - t0:.0f}s")
        self.print_usage(ports, proxy_port)
        return 0

    def install(self, kube: Kube, admission_port: int) -> None:
        """What `kubectl apply -k crds`, `kubectl apply -k manifests/install-with-webhook` and `kubectl apply -k
        manifests/flink-rbac` install, less what 1.20 or the sandbox cannot run (SKIPPED_KINDS). Metacontroller's
        own CompositeController CRD (v4.17.2, tests/schemas) is installed too, so the CompositeControllers are real
        objects checked by the API server (the stand-in still reads them from metacontroller/*.yaml)."""
        kubectl = kubectl_path()
        env = {**os.environ, "KUBECONFIG": str(self.state / "kubeconfig")}
        for source in (["-k", str(ROOT / "crds")], ["-f", str(METACONTROLLER_CRD)]):
            subprocess.run([kubectl, "apply", *source], check=True, env=env, timeout=120, stdout=subprocess.DEVNULL)
        crd_res = kube.resource("apiextensions.k8s.io/v1", "customresourcedefinitions")

        def established() -> bool:
            for name in ("flinkdeployments.flink.apache.org", "flinksessionjobs.flink.apache.org",
                         "flinkstatesnapshots.flink.apache.org",
                         "compositecontrollers.metacontroller.k8s.io"):
                crd = kube.get(crd_res, None, name) or {}
                if not any(c["type"] == "Established" and c["status"] == "True"
                           for c in (crd.get("status") or {}).get("conditions") or []):
                    return False
            return True
        self.wait("CRDs Established", established, 60)
        for path in (ROOT / "manifests/install-with-webhook", ROOT / "manifests/flink-rbac"):
            out = subprocess.run([kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60).stdout
            for obj in yaml.safe_load_all(out):
                if not obj or (obj["apiVersion"], obj["kind"]) in SKIPPED_KINDS:
                    continue
                if obj["kind"] == "ValidatingWebhookConfiguration":
                    route_webhook_to_local_server(obj, admission_port)
                for attempt in range(30):
                    try:
                        kube.apply_manifest(obj)
                        break
                    except (ApiError, KeyError):
                        if attempt == 29:
                            raise
                        time.sleep(0.5)
        say("installed: CRDs, namespace flink-sync, CompositeControllers, ServiceAccounts and RBAC of "
            "manifests/install-with-webhook and manifests/flink-rbac, ConfigMap flink-sync-defaults, the "
            "ValidatingWebhookConfiguration")

    def admission(self, kube: Kube, hooks_env: dict[str, str], port: int) -> None:
        """The admission webhook server (`flink-sync admission`, the hook pod's second container) with the hooks'
        ServiceAccount token: it makes its certificate (for 127.0.0.1 too), stores it in the Secret and sets the
        caBundle through the RBAC of manifests/components/admission-webhook."""
        env = {**hooks_env, "FLINK_SYNC_WEBHOOK_NAMESPACE": "flink-sync", "FLINK_SYNC_WEBHOOK_EXTRA_SANS": LOCALHOST,
               "FLINK_SYNC_WEBHOOK_CHECK_INTERVAL": os.environ.get("SANDBOX_WEBHOOK_CHECK_INTERVAL", "5")}
        proc = self.spawn("admission", [str(ROOT / ".venv" / "bin" / "flink-sync"), "admission", "--bind",
                                        f"{LOCALHOST}:{port}"], env=env)
        vwc = kube.resource("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations")
        self.wait("admission webhook caBundle", lambda: all(
            w["clientConfig"].get("caBundle") for w in (kube.get(vwc, None, "flink-sync") or {}).get("webhooks") or [{}]),
            90, proc)
        import requests
        self.wait("admission webhook server", lambda: requests.get(f"https://{LOCALHOST}:{port}/healthz", timeout=2,
                                                                   verify=False).ok, 60, proc)

    def service_account_token(self, kube: Kube, namespace: str, name: str) -> str:
        sa_res = kube.resource("v1", "serviceaccounts")
        sec_res = kube.resource("v1", "secrets")
        token: list[str] = []

        def found() -> bool:
            sa = kube.get(sa_res, namespace, name) or {}
            for ref in sa.get("secrets") or []:
                sec = kube.get(sec_res, namespace, ref["name"]) or {}
                if (sec.get("data") or {}).get("token"):
                    import base64
                    token.append(base64.b64decode(sec["data"]["token"]).decode())
                    return True
            return False
        self.wait(f"token of ServiceAccount {namespace}/{name}", found, 60)
        return token[0]

    def print_usage(self, ports: dict[str, int], proxy_port: int) -> None:
        print(f"""
The sandbox is running (everything on 127.0.0.1):
  kube-apiserver   https://127.0.0.1:{ports['apiserver']}   (etcd :{ports['etcd']})
  hook server      http://127.0.0.1:{ports['hooks']}        (flink-sync serve)
  Flink REST proxy http://127.0.0.1:{proxy_port}/<namespace>/<name>-rest/
  jar server       http://127.0.0.1:{ports['jars']}/  (serves .sandbox/jars/, allowed as FlinkSessionJob jarURI)

Use it:
  source .sandbox/env
  kubectl apply -f examples/sandbox.yaml
  kubectl get flinkdeployment -w
  cat .sandbox/services       # Service ports on 127.0.0.1 (the Flink UI: <name>-rest:8081)
  make sandbox-down
Logs: .sandbox/logs/""", flush=True)


def running(state: Path = STATE) -> bool:
    pids = [p for p in read_pids(state) if p[0] not in ("jvm", "proc")]
    return bool(pids) and all(alive(pid, st) for _, pid, st in pids)


def down(state: Path = STATE) -> int:
    entries = read_pids(state)
    # reverse start order: the controllers first, the API server and etcd last; JVMs with the node agent
    order = [e for e in reversed(entries) if e[0] not in ("jvm", "proc")]
    jvms = [e for e in entries if e[0] in ("jvm", "proc")]
    stopped = 0
    for name, pid, st in order:
        if not alive(pid, st):
            continue
        stop_pid(pid, st, 25 if name == "node-agent" else 10)
        stopped += 1
    for _name, pid, st in jvms:  # should the node agent have died without stopping them
        if alive(pid, st):
            os.kill(pid, signal.SIGKILL)
            stopped += 1
    existed = state.exists()
    if existed:
        shutil.rmtree(state, ignore_errors=True)
    say(f"stopped {stopped} process(es)" + (f"; removed {state}" if existed else "") if stopped or existed
        else "nothing running")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox")
    ap.add_argument("command", choices=("up", "down", "status", "restart"))
    ap.add_argument("name", nargs="?", help="restart: which process (etcd, kube-apiserver, metacontroller, hooks, ...)")
    ap.add_argument("--kill", action="store_true", help="restart: SIGKILL instead of SIGTERM")
    ap.add_argument("--down-seconds", type=float, default=0.0, help="restart: how long it stays down")
    ap.add_argument("--flink", action="append", default=None, help="Flink versions to fetch (default: all pinned)")
    args = ap.parse_args(argv)
    if args.command == "down":
        return down()
    if args.command == "restart":
        return restart(args.name, args.kill, args.down_seconds)
    if args.command == "status":
        ok = running()
        print("running" if ok else "not running")
        return 0 if ok else 1
    if running():
        say(f"already running (state in {STATE}); `source .sandbox/env` to use it, `make sandbox-down` to stop it")
        return 0
    if read_pids():
        say("a previous sandbox is partly running: stopping it first")
        down()
    up = Up(flink_versions=tuple(args.flink) if args.flink else ("--all",))
    try:
        return up.run()
    except BaseException:
        say("sandbox-up failed: stopping what it started")
        for line in (up.logs.glob("*.log") if up.logs.exists() else []):
            tail = line.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {line.name}\n" + "\n".join(tail), file=sys.stderr)
        down()
        raise
