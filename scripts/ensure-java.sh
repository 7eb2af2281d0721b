#!/usr/bin/env bash
# Make sure a Java 17+ JDK (java and javac) is on PATH for the real-Flink tests.
# Exit 0 at once if both are there; otherwise install openjdk-17-jdk-headless with apt-get
# (non-interactive; needs root, as on CI and the developer machines). Idempotent and quiet.
set -euo pipefail

MIN=17

# major version of a `java -version` / `javac -version` output line ("17.0.15", "1.8.0_392", "21")
major_of() {
  local v
  v=$("$@" -version 2>&1 | sed -nE 's/.*(version "|javac )([0-9][0-9._]*).*/\2/p' | head -n1)
  v=${v#1.}  # 1.8 -> 8
  echo "${v%%[._]*}"
}

have_jdk() {
  command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || return 1
  local j c
  j=$(major_of java); c=$(major_of javac)
  [[ -n "$j" && -n "$c" && "$j" -ge "$MIN" && "$c" -ge "$MIN" ]]
}

if have_jdk; then
  exit 0
fi

echo "ensure-java: no java/javac >= $MIN on PATH; installing openjdk-17-jdk-headless" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "ensure-java: not root and no sudo; install a JDK $MIN+ by hand" >&2; exit 1; }
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# the headless JDK's postinst expects man dirs on slim images
mkdir -p /usr/share/man/man1 2>/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless >/dev/null

# a newer default java may still shadow it: prefer the JDK just installed
if ! have_jdk; then
  for d in /usr/lib/jvm/java-17-openjdk-*; do
    [[ -x "$d/bin/javac" ]] || continue
    $SUDO update-alternatives --set java "$d/bin/java" >/dev/null 2>&1 || true
    $SUDO update-alternatives --set javac "$d/bin/javac" >/dev/null 2>&1 || true
  done
fi
if ! have_jdk; then
  echo "ensure-java: a JDK $MIN+ is still not usable after installing openjdk-17-jdk-headless" >&2
  exit 1
fi
echo "ensure-java: installed $(java -version 2>&1 | head -n1)" >&2
