"""Shared pytest fixtures."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.flinkbed.fixtures import *  # noqa: F403 - the real-Flink test bed fixtures

# The sandbox files go last, slowest first. `make test` builds the control plane in the background while the other
# files run (a sandbox waits for that build); pytest-xdist (--dist loadfile) hands files out in this order, and a
# slow file handed out last would leave the other worker idle at the end.
SANDBOX_FILES_SLOWEST_FIRST = ["test_ha_sandbox.py", "test_failures_sandbox.py", "test_e2e_sandbox.py",
                               "test_snapshot_sandbox.py", "test_operations_sandbox.py"]


def _run_order(item: pytest.Item) -> tuple[int, int]:
    path = item.path
    if path.parent.name != "sandbox":
        return (0, 0)
    name = path.name
    rank = SANDBOX_FILES_SLOWEST_FIRST.index(name) if name in SANDBOX_FILES_SLOWEST_FIRST else len(SANDBOX_FILES_SLOWEST_FIRST)
    return (1, rank)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_run_order)  # stable: a file's tests keep their order


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for `localhost` (its own CA): (certificate file, key file)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)
