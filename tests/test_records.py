"""The records of `status.flinkSync` (issue 13): documented field for field, read and written only through
`sync/records.py`, and written in the wire format statuses already hold."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync.intake import STATUS_FIELDS, StatusUnusable, usable_status
from sync.records import (
    DEPLOYMENT_RECORD,
    FLINK_SYNC_FIELDS,
    PENDING_RECORD,
    POD_CAUSE_RECORD,
    SETTLED_RECORD,
    SNAPSHOT_SYNC_FIELDS,
    DeploymentRecord,
    FlinkSyncRecord,
    PendingRecord,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def documented_tables() -> list[list[tuple[str, str, str]]]:
    text = DOC.read_text()
    block = text.split("<!-- records:start -->", 1)[1].split("<!-- records:end -->", 1)[0]
    tables: list[list[tuple[str, str, str]]] = []
    for chunk in re.split(r"\n\s*\n", block):
        rows = re.findall(r"^\| `([A-Za-z]+)` \| ([^|]+) \| (.+) \|$", chunk, flags=re.M)
        if rows:
            tables.append([(key, kind.strip(), meaning.strip()) for key, kind, meaning in rows])
    return tables


def _kind(kind: object) -> str:
    names = {str: "string", int: "integer", bool: "boolean"}
    if isinstance(kind, dict):
        nested = {"deployment record": DEPLOYMENT_RECORD, "pending record": PENDING_RECORD,
                  "pod cause record": POD_CAUSE_RECORD, "kept answer record": SETTLED_RECORD}
        return next(name for name, table in nested.items() if table == kind)
    return names[kind]  # type: ignore[index]


def test_every_record_field_is_documented_with_its_type_and_meaning_and_nothing_else():
    expected = [[(key, _kind(kind), meaning) for key, (kind, meaning) in table.items()]
                for table in (FLINK_SYNC_FIELDS, DEPLOYMENT_RECORD, PENDING_RECORD, POD_CAUSE_RECORD, SETTLED_RECORD)]
    assert documented_tables() == expected


def test_the_snapshot_records_are_documented_and_nothing_else():
    text = DOC.read_text()
    block = text.split("<!-- snapshot-records:start -->", 1)[1].split("<!-- snapshot-records:end -->", 1)[0]
    documented = re.findall(r"^\| `([A-Za-z]+)` \| (\w+) \| (.+) \|$", block, flags=re.M)
    assert documented == [(key, _kind(kind), meaning) for key, (kind, meaning) in SNAPSHOT_SYNC_FIELDS.items()]
    source = (ROOT / "sync" / "statesnapshot.py").read_text()
    written = set(re.findall(r'"(triggerId|jobId|cluster|retryAt|[a-z][A-Za-z]+)": ', source.split("def trigger(")[1]
                             .split("def in_progress")[0])) & {"triggerId", "jobId", "cluster", "retryAt"}
    assert written <= set(SNAPSHOT_SYNC_FIELDS)


def test_intake_checks_the_types_the_records_define():
    assert STATUS_FIELDS["flinkSync"]["cluster"] == {key: kind for key, (kind, _) in DEPLOYMENT_RECORD.items()}
    assert STATUS_FIELDS["flinkSync"]["pending"] == {key: kind for key, (kind, _) in PENDING_RECORD.items()}
    assert set(STATUS_FIELDS["flinkSync"]) == set(FLINK_SYNC_FIELDS)


def test_the_core_touches_flinksync_only_through_the_records():
    """No module of the core reads or writes `flinkSync` as a dict: the records module is the only way in."""
    for source in (ROOT / "sync").rglob("*.py"):
        if source.name in ("records.py", "intake.py"):
            continue
        text = source.read_text()
        assert not re.search(r'\.get\("flinkSync"\)\s*or\s*\{\}\)\.get|\["flinkSync"\]\[|internal\[', text), source


# The wire format, as statuses in clusters hold it (written by earlier versions of the same code).
CLUSTER = {"spec": '{"job":null}', "jobId": None, "restorePath": None, "generation": 3, "seq": 2}
SAVEPOINT = {"op": "savepoint", "triggerId": "t1", "jobId": "j1", "startedAt": 5, "triggerType": "PERIODIC",
             "nonce": None}
STOP = {"op": "stop", "triggerId": "t2", "jobId": "j1", "startedAt": 5, "purpose": "upgrade"}
CANCEL = {"op": "cancel", "jobId": "j1", "startedAt": 5, "purpose": "delete", "issuedAt": 9,
          "checkpointRecorded": True}


@pytest.mark.parametrize("recorded", [
    {"cluster": CLUSTER, "deploys": 2, "jmSeen": False, "removed": 1},
    {"cluster": CLUSTER, "pending": SAVEPOINT, "deploys": 2},
    {"cluster": CLUSTER, "pending": STOP, "attempts": 1, "retryAt": 7},
    {"pending": CANCEL, "next": {**CLUSTER, "markStable": True}, "manualRestore": True, "redeployFrom": "s3://sp"},
    {"submission": {"spec": "{}", "jobId": "j1", "restorePath": None, "generation": 1}, "submitted": True,
     "submittedAt": 4, "deleteReady": True, "checkpointOf": "j0", "specChangedGeneration": 2},
    {"deploys": 1, "writtenByANewerVersion": {"kept": True}},
])
def test_a_recorded_status_reads_and_writes_back_unchanged(recorded):
    assert FlinkSyncRecord.from_json(recorded).to_json() == recorded


def test_records_are_built_in_the_wire_format():
    assert PendingRecord.savepoint("t1", "j1", 5, "PERIODIC", None).to_json() == SAVEPOINT
    assert PendingRecord.stop("t2", "j1", 5, "upgrade").to_json() == STOP
    assert PendingRecord.cancel("j1", 5).to_json() == {"op": "cancel", "jobId": "j1", "startedAt": 5}
    record = DeploymentRecord(spec='{"job":null}', job_id=None, restore_path=None, generation=3, seq=2)
    assert record.to_json() == CLUSTER
    assert FlinkSyncRecord().to_json() == {}


@pytest.mark.parametrize(("record", "field"), [
    ({"pending": {"op": "stop", "jobId": "j", "startedAt": 1}}, "status.flinkSync.pending.triggerId"),
    ({"pending": {"op": "cancel", "startedAt": 1}}, "status.flinkSync.pending.jobId"),
    ({"submission": {"jobId": "j"}}, "status.flinkSync.submission.spec"),
    ({"next": {"jobId": "j"}}, "status.flinkSync.next.spec"),
])
def test_a_record_without_a_field_it_continues_from_is_refused_naming_it(record, field):
    with pytest.raises(StatusUnusable, match=re.escape(field)):
        usable_status({"flinkSync": record})
