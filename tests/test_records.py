"""The records of `status.flinkSync` are documented field for field (issue 13): the table in
docs/architecture.md between the `records` markers lists exactly the fields `sync/records.py` defines."""
from __future__ import annotations

import re
from pathlib import Path

from sync.records import DEPLOYMENT_RECORD, FLINK_SYNC_FIELDS, PENDING_RECORD, POD_CAUSE_RECORD

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def documented_tables() -> list[list[str]]:
    text = DOC.read_text()
    block = text.split("<!-- records:start -->", 1)[1].split("<!-- records:end -->", 1)[0]
    tables: list[list[str]] = []
    for chunk in re.split(r"\n\s*\n", block):
        fields = re.findall(r"^\| `([A-Za-z]+)` \|", chunk, flags=re.M)
        if fields:
            tables.append(fields)
    return tables


def test_every_record_field_is_documented_and_nothing_else():
    assert documented_tables() == [list(FLINK_SYNC_FIELDS), list(DEPLOYMENT_RECORD), list(PENDING_RECORD),
                                  list(POD_CAUSE_RECORD)]


def test_the_core_writes_no_undocumented_flinksync_field():
    """Every `internal[...]` key the core writes is a documented record field."""
    written: set[str] = set()
    for source in (Path(__file__).resolve().parent.parent / "sync").glob("*.py"):
        written |= set(re.findall(r'internal\["([A-Za-z]+)"\]\s*=', source.read_text()))
        written |= set(re.findall(r'internal\.setdefault\("([A-Za-z]+)"', source.read_text()))
    assert written <= set(FLINK_SYNC_FIELDS), written - set(FLINK_SYNC_FIELDS)


def test_the_snapshot_records_are_documented_and_nothing_else():
    from sync.records import SNAPSHOT_SYNC_FIELDS
    text = DOC.read_text()
    block = text.split("<!-- snapshot-records:start -->", 1)[1].split("<!-- snapshot-records:end -->", 1)[0]
    documented = re.findall(r"^\| `([A-Za-z]+)` \| (\w+) \| (.+) \|$", block, flags=re.M)
    names = {str: "string", int: "integer", bool: "boolean"}
    assert documented == [(key, names[kind], meaning) for key, (kind, meaning) in SNAPSHOT_SYNC_FIELDS.items()]
    source = (DOC.parent.parent / "sync" / "statesnapshot.py").read_text()
    written = set(re.findall(r'"(triggerId|jobId|cluster|retryAt|[a-z][A-Za-z]+)": ', source.split("def trigger(")[1]
                             .split("def in_progress")[0])) & {"triggerId", "jobId", "cluster", "retryAt"}
    assert written <= set(SNAPSHOT_SYNC_FIELDS)
