"""Shared pytest fixtures."""

from tests.flinkbed.fixtures import *  # noqa: F403 - the real-Flink test bed fixtures
