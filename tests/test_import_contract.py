"""`sync/` is the pure core: it does no I/O and reads no clock (issue 13; kopf and Flask's `sansio/` keep the same
rule). This test reads every module of `sync/` and fails on an import of anything that does I/O, keeps time or
draws randomness; `make lint` runs it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SYNC = Path(__file__).resolve().parent.parent / "sync"
FORBIDDEN = ("hooks", "flask", "werkzeug", "gunicorn", "pycurl", "requests", "urllib3", "kubernetes", "os", "time",
             "random", "logging", "socket", "subprocess", "threading", "asyncio", "http", "urllib.request",
             "pathlib", "shutil", "tempfile", "datetime.datetime.now")


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def forbidden(name: str) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(SYNC.rglob("*.py")), ids=lambda p: str(p.relative_to(SYNC)))
def test_the_core_imports_nothing_that_does_io(path: Path) -> None:
    bad = [name for name in imported_modules(path) if forbidden(name)]
    assert not bad, f"{path.relative_to(SYNC.parent)} imports {bad}: the core must stay free of I/O and clocks"


def test_the_contract_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom hooks.app import create_app\nfrom datetime import datetime, timezone\n")
    assert [n for n in imported_modules(sample) if forbidden(n)] == ["os", "hooks.app", "hooks.app.create_app"]
