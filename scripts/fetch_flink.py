#!/usr/bin/env python3
"""Fetch the pinned Apache Flink distributions for the real-Flink tests from PyPI.

Usage:
    scripts/fetch_flink.py --all            # every pinned version (1.20.3 and 2.3.0)
    scripts/fetch_flink.py 1.20.3 [2.3.0]   # also accepts 1.20, v1_20, 2.3, v2_3, ...

For each version: ``pip download --no-deps apache-flink-libraries==VERSION`` into
``$FLINK_SYNC_CACHE/downloads`` (default ``~/.cache/flink-sync``, outside the clone), then unpack
only what the test bed needs into ``$FLINK_SYNC_CACHE/flink-VERSION``:

* ``lib/*.jar``               (1.x sdist: ``<sdist>/deps/lib``; 2.x wheel: ``pyflink/lib``)
* ``bin/bash-java-utils.jar`` (``deps/bin`` / ``pyflink/bin``)

A ``.complete`` marker is written last and the archive is deleted; a cached version is a fast
no-op. Prints each lib directory on stdout (progress goes to stderr). Concurrent runs are
serialised by a lock file per version. Exit code 0 only when every requested version is ready.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.flinkbed.dist import (  # noqa: E402  (needs the sys.path entry above)
    MARKER_NAME,
    PINNED_VERSIONS,
    cache_root,
    dist_home,
    is_cached,
    resolve_version,
)

PACKAGE = "apache-flink-libraries"
DOWNLOAD_TIMEOUT_S = 1200  # one `pip download` attempt (the archives are 230 MB and 330 MB)
ATTEMPTS = 2  # one retry

# Archive members to keep, mapped to their place below flink-<version>/.
_LIB_JAR = re.compile(r"(?:^|/)(?:deps|pyflink)/lib/([^/]+\.jar)$")
_BASH_JAVA_UTILS = re.compile(r"(?:^|/)(?:deps|pyflink)/bin/(bash-java-utils\.jar)$")


def log(msg: str) -> None:
    print(f"fetch_flink: {msg}", file=sys.stderr, flush=True)


def target_of(member: str) -> str | None:
    """Relative destination (``lib/x.jar`` / ``bin/bash-java-utils.jar``) of an archive member, or None."""
    if m := _LIB_JAR.search(member):
        return f"lib/{m.group(1)}"
    if m := _BASH_JAVA_UTILS.search(member):
        return f"bin/{m.group(1)}"
    return None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on ``path``; released on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_archive(downloads: Path, version: str) -> Path | None:
    """The sdist (``apache-flink-libraries-V.tar.gz``) or wheel (``apache_flink_libraries-V-...whl``)."""
    for p in sorted(downloads.glob("apache[-_]flink[-_]libraries-*")):
        rest = p.name.split("-", 1)[1] if p.name.startswith("apache_") else p.name[len(PACKAGE) + 1 :]
        if rest.startswith(f"{version}-") or rest == f"{version}.tar.gz":
            return p
    return None


def download(version: str, downloads: Path) -> Path:
    """``pip download --no-deps`` with a timeout, retried once. Returns the archive path."""
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
        "--timeout", "60", "--dest", str(downloads), f"{PACKAGE}=={version}",
    ]  # fmt: skip
    last_error = ""
    for attempt in range(1, ATTEMPTS + 1):
        log(f"downloading {PACKAGE}=={version} (attempt {attempt}/{ATTEMPTS}) ...")
        t0 = time.monotonic()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
            last_error = (res.stdout + res.stderr).strip()
            ok = res.returncode == 0
        except subprocess.TimeoutExpired:
            last_error, ok = f"timed out after {DOWNLOAD_TIMEOUT_S} s", False
        archive = find_archive(downloads, version)
        if ok and archive:
            log(f"downloaded {archive.name} ({archive.stat().st_size >> 20} MiB, {time.monotonic() - t0:.0f} s)")
            return archive
        log(f"download failed: {last_error[-2000:]}")
        if attempt < ATTEMPTS:
            time.sleep(5)
    raise SystemExit(f"fetch_flink: could not download {PACKAGE}=={version}: {last_error[-500:]}")


def extract(archive: Path, dest: Path) -> int:
    """Unpack the wanted members of ``archive`` into ``dest``; returns how many files were written."""
    count = 0
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = target_of(info.filename)
                if rel and not info.is_dir():
                    out = dest / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    count += 1
    elif archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf:  # streaming: one pass over the 230 MB sdist
                rel = target_of(member.name)
                if rel and member.isfile():
                    member_file = tf.extractfile(member)
                    assert member_file is not None
                    out = dest / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with member_file, out.open("wb") as dst:
                        shutil.copyfileobj(member_file, dst, 1 << 20)
                    count += 1
    else:
        raise SystemExit(f"fetch_flink: unexpected archive {archive}")
    return count


def fetch(version: str, root: Path) -> Path:
    """Make sure ``version`` is in the cache; return its lib directory."""
    home = dist_home(version, root)
    if is_cached(version, root):
        return home / "lib"
    with locked(root / f".fetch-{version}.lock"):
        if is_cached(version, root):  # another process finished it while we waited
            return home / "lib"
        downloads = root / "downloads"
        archive = find_archive(downloads, version) or download(version, downloads)
        tmp = home.with_name(home.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            n = extract(archive, tmp)
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
            archive.unlink(missing_ok=True)  # probably truncated: download again next time
            raise SystemExit(f"fetch_flink: could not unpack {archive}: {e}") from e
        jars = list((tmp / "lib").glob("flink-dist*.jar"))
        if not jars or not (tmp / "bin" / "bash-java-utils.jar").is_file():
            raise SystemExit(f"fetch_flink: {archive.name} lacks flink-dist or bash-java-utils.jar")
        (tmp / MARKER_NAME).write_text(json.dumps({"version": version, "archive": archive.name, "files": n}) + "\n")
        shutil.rmtree(home, ignore_errors=True)
        tmp.rename(home)
        archive.unlink(missing_ok=True)  # the unpacked jars are the cache; the archive is not needed
        log(f"Flink {version}: {n} files in {home}")
    return home / "lib"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help=f"every pinned version ({', '.join(PINNED_VERSIONS)})")
    ap.add_argument("versions", nargs="*", help="versions to fetch (1.20.3, 1.20, v1_20, 2.3.0, v2_3, ...)")
    args = ap.parse_args(argv)
    if not args.all and not args.versions:
        ap.error("give --all or at least one VERSION")
    try:
        wanted = list(PINNED_VERSIONS) if args.all else [resolve_version(v) for v in args.versions]
    except ValueError as e:
        ap.error(str(e))
    root = cache_root()
    for version in dict.fromkeys(wanted):  # dedupe, keep order
        print(fetch(version, root), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
