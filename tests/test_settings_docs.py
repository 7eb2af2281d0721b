"""The settings tables of docs/configuration.md against the code: every FLINK_SYNC_* variable the server reads
(hooks/) is documented and every documented one is read, and a documented default is the code's default (setting
the variable to it changes nothing)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from hooks import gunicorn_conf
from hooks.settings import Settings, WebhookSettings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(FLINK_SYNC_[A-Z0-9_]+)` \| ([^|]*) \|", re.M)


def documented() -> dict[str, str | None]:
    """Variable -> its documented default (the backticked value the Default cell starts with, else None)."""
    found = {}
    for name, cell in ROW.findall(DOC.read_text()):
        m = re.match(r"\s*`([^`]*)`", cell)
        found[name] = m.group(1) if m else None
    return found


def read_by_code() -> set[str]:
    names = set()
    for path in (ROOT / "hooks").glob("*.py"):
        names |= set(re.findall(r"[\"'](FLINK_SYNC_[A-Z0-9_]+)[\"']", path.read_text()))
    return names


def test_every_variable_the_code_reads_is_documented_and_no_other():
    docs, code = set(documented()), read_by_code()
    assert code - docs == set(), "read by hooks/ but not in docs/configuration.md"
    assert docs - code == set(), "documented but read nowhere"


@pytest.mark.parametrize("name, default", [(n, d) for n, d in documented().items() if d is not None])
def test_documented_defaults_are_the_code_defaults(name, default):
    gunicorn = {"FLINK_SYNC_BIND": gunicorn_conf.bind, "FLINK_SYNC_WORKERS": str(gunicorn_conf.workers),
                "FLINK_SYNC_THREADS": str(gunicorn_conf.threads), "FLINK_SYNC_LOG_LEVEL": gunicorn_conf.loglevel}
    if name in gunicorn:
        assert gunicorn[name].lower() == default.lower()
    elif name == "FLINK_SYNC_ADMISSION_BIND":
        assert f'"{name}", "{default}"' in (ROOT / "hooks" / "cli.py").read_text()
    elif name.startswith("FLINK_SYNC_WEBHOOK_"):
        assert WebhookSettings.from_env({name: default}) == WebhookSettings.from_env({})
    else:
        assert Settings.from_env({name: default}) == Settings.from_env({}), f"{name}={default} is not the default"
