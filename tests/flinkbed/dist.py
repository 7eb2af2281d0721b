"""Locate a cached Apache Flink distribution (the jars of the PyPI package ``apache-flink-libraries``).

The jars are downloaded and unpacked by ``scripts/fetch_flink.py`` (run by ``make test`` before
pytest) into a cache directory outside the clone:

    $FLINK_SYNC_CACHE (default ~/.cache/flink-sync)/
        flink-1.20.3/lib/*.jar               every jar of the distribution's lib/ (flink-dist, log4j, ...)
        flink-1.20.3/bin/bash-java-utils.jar BashJavaUtils (JVM memory args, as bin/config.sh uses it)
        flink-1.20.3/.complete               marker written last: the cache entry is usable
        flink-2.3.0/...

This module only *reads* that cache. A missing distribution is an error (never a silent skip):
the message says which command fetches it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

# The pinned versions. A FlinkDeployment ``flinkVersion`` is mapped onto one of these.
PINNED_VERSIONS: tuple[str, ...] = ("1.20.3", "2.3.0")

MARKER_NAME = ".complete"


class FlinkDistMissing(RuntimeError):
    """The requested Flink distribution is not in the cache (run scripts/fetch_flink.py)."""


def cache_root() -> Path:
    """The cache directory shared by the Flink jars and the compiled test job."""
    env = os.environ.get("FLINK_SYNC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "flink-sync"


def dist_home(version: str, root: Path | None = None) -> Path:
    """Directory of one pinned version inside the cache (it may not exist yet)."""
    return (root or cache_root()) / f"flink-{version}"


def resolve_version(flink_version: str) -> str:
    """Map a Flink version as a test or a FlinkDeployment spells it to a pinned full version.

    ``"1.20"``, ``"v1_20"``, ``"1.20.3"`` → ``"1.20.3"``; ``"2.3"``, ``"v2_3"``, any ``"v2_*"``
    (and ``"2.x"`` / ``"2"``) → ``"2.3.0"``. Anything else raises ``ValueError``.
    """
    v = flink_version.strip()
    if v in PINNED_VERSIONS:
        return v
    m = re.fullmatch(r"v?(\d+)(?:[._](\w+))?(?:[._](\d+))?", v)
    if m:
        major, minor = m.group(1), m.group(2)
        if major == "1" and minor == "20":
            return "1.20.3"
        if major == "2":
            # every 2.x FlinkDeployment runs on the newest pinned 2.x
            return "2.3.0"
    raise ValueError(
        f"no pinned Flink distribution for version {flink_version!r}; "
        f"pinned: {', '.join(PINNED_VERSIONS)} (1.20 / v1_20 and 2.x / v2_*)"
    )


@dataclass(frozen=True)
class FlinkDist:
    """One unpacked Flink distribution in the cache."""

    version: str  # e.g. "1.20.3"
    home: Path  # <cache>/flink-<version>

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @cached_property
    def dist_jar(self) -> Path:
        """``flink-dist-<version>.jar`` (1.x may spell it ``flink-dist_2.12-<version>.jar``)."""
        jars = sorted(self.lib_dir.glob("flink-dist*.jar"))
        if not jars:
            raise FlinkDistMissing(f"no flink-dist*.jar in {self.lib_dir}; {_fetch_hint(self.version)}")
        return jars[0]

    @property
    def bash_java_utils_jar(self) -> Path:
        return self.home / "bin" / "bash-java-utils.jar"

    @cached_property
    def classpath(self) -> tuple[Path, ...]:
        """Every lib jar, sorted, flink-dist last (like bin/config.sh ``constructFlinkClassPath``)."""
        others = sorted(p for p in self.lib_dir.glob("*.jar") if p != self.dist_jar)
        return (*others, self.dist_jar)

    @property
    def classpath_str(self) -> str:
        return os.pathsep.join(str(p) for p in self.classpath)

    @property
    def config_file_name(self) -> str:
        """The config file this Flink reads: ``config.yaml`` on 2.x, ``flink-conf.yaml`` on 1.x
        (1.19/1.20 also read ``config.yaml``, but the Apache operator ships ``flink-conf.yaml``)."""
        return "config.yaml" if self.major >= 2 else "flink-conf.yaml"


def _fetch_hint(version: str) -> str:
    return (
        f"fetch it with `.venv/bin/python scripts/fetch_flink.py {version}` "
        f"(or `--all`; cache: {cache_root()}, override with $FLINK_SYNC_CACHE)"
    )


def is_cached(version: str, root: Path | None = None) -> bool:
    """True when the pinned ``version`` has been fully fetched (marker present)."""
    return (dist_home(version, root) / MARKER_NAME).is_file()


def flink_dist(flink_version: str) -> FlinkDist:
    """The cached distribution for ``flink_version`` (see :func:`resolve_version`).

    Raises :class:`FlinkDistMissing` with the command to run when it is not cached.
    """
    version = resolve_version(flink_version)
    home = dist_home(version)
    if not is_cached(version):
        raise FlinkDistMissing(f"Flink {version} is not in the cache ({home}); {_fetch_hint(version)}")
    dist = FlinkDist(version=version, home=home)
    for needed in (dist.dist_jar, dist.bash_java_utils_jar):
        if not needed.is_file():
            raise FlinkDistMissing(f"{needed} is missing (incomplete cache); {_fetch_hint(version)}")
    return dist
