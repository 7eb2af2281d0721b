"""The autoscaler end to end on Flink 1.20, carried out by savepoint upgrades (no adaptive scheduler): the scenario
of tests/test_e2e_autoscaler.py, in a file of its own so that `make test` runs it beside the in-place one."""
from __future__ import annotations

import pytest

from . import test_e2e_autoscaler as scenario

pytestmark = [pytest.mark.flink, pytest.mark.timeout(900)]
scaling_bed = scenario.scaling_bed  # the fixture


@pytest.mark.parametrize("flink_version", ["1.20"])
def test_parallelism_follows_the_load_by_upgrade(scaling_bed, flink_version, counter_jar, tmp_path):
    scenario.parallelism_follows_the_load(scaling_bed, flink_version, False, counter_jar, tmp_path)
