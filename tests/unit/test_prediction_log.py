"""The prediction log's files: a worker's journal, its compaction into Parquet, the reader, and
what a failing disk does to the records. Real files, real locks; the crash points run in
subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from powerops.core.config import Params, load_params
from powerops.core.faults import CRASH_ENV, FAIL_ENV
from powerops.serve import predictionlog
from powerops.serve.journal import Journal
from tests.conftest import REPO

NOON = datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.fixture
def params(tmp_path: Path) -> Params:
    loaded = load_params(REPO / "params.yaml")
    return loaded.model_copy(update={"root": tmp_path})


def records(count: int, first: datetime = NOON, tag: str = "r") -> list[dict[str, object]]:
    body = json.dumps({"rows": [{"timestamp": "2007-03-10T00:00:00", "load_kw": None}]})
    return [
        predictionlog.record(
            f"{tag}{n}", first + timedelta(seconds=n), "online", "3", 200, 2.5, body, "", [1.5]
        )
        for n in range(count)
    ]


def logged_ids(params: Params, columns: tuple[str, ...] = ("request_id",)) -> list[str]:
    log = predictionlog.read(params, NOON - timedelta(days=2), NOON + timedelta(days=2), columns)
    return list(log["request_id"])


def test_a_journal_holds_every_record_and_compacts_to_the_same_records(params: Params) -> None:
    journal = Journal(params)
    for item in records(600) + records(3, NOON + timedelta(days=1), tag="next"):
        journal.add(item)
    # Written to the OS as they came, nothing in memory: readable before any flush.
    assert journal.held == 0
    written = predictionlog.read(params, NOON - timedelta(days=1), NOON + timedelta(days=2))
    assert len(written) == 603 and written["at"].dt.tz is not None
    assert written.iloc[0].to_dict() | {"at": None} == records(1)[0] | {"at": None}
    assert len(list(params.predictions_dir.glob("*/journal-*.jsonl"))) == 2  # one per day

    # The writer holds its journals: compaction leaves them alone.
    assert predictionlog.compact(params) == []
    journal.close()
    twins = predictionlog.compact(params)
    assert len(twins) == 2 and not list(params.predictions_dir.glob("*/journal-*.jsonl"))
    assert pq.ParquetFile(twins[0]).metadata.row_group(0).num_rows == predictionlog.BLOCK_ROWS
    again = predictionlog.read(params, NOON - timedelta(days=1), NOON + timedelta(days=2))
    assert again.equals(written)
    # A sample takes whole blocks, evenly spaced, at least one per file.
    sample = predictionlog.read(
        params, NOON - timedelta(days=1), NOON + timedelta(days=2), ("request_id",), sample=0.4
    )
    assert list(sample["request_id"]) == [f"r{n}" for n in range(256)] + [
        f"next{n}" for n in range(3)
    ]


def test_a_torn_last_line_is_left_out(params: Params) -> None:
    journal = Journal(params)
    for item in records(3):
        journal.add(item)
    journal.close()
    (path,) = params.predictions_dir.glob("*/journal-*.jsonl")
    with open(path, "ab") as handle:
        handle.write(predictionlog.journal_line(records(4)[3])[:40])  # a power cut mid-line
    assert logged_ids(params) == ["r0", "r1", "r2"]
    predictionlog.compact(params)
    assert logged_ids(params) == ["r0", "r1", "r2"]


def test_a_log_that_cannot_be_written_holds_its_records_until_it_can(
    params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's folder is a file for a while (a real OSError, whoever runs the test), then a
    write fails inside a journal: nothing is lost, nothing is written twice."""
    params.predictions_dir.parent.mkdir(parents=True, exist_ok=True)
    params.predictions_dir.write_text("not a folder")
    journal = Journal(params)
    for item in records(5):
        journal.add(item)
    assert journal.held == 5 and journal.flush() == 5
    params.predictions_dir.unlink()
    assert journal.flush() == 0
    monkeypatch.setenv(FAIL_ENV, "predictionlog.write")
    for item in records(4, NOON + timedelta(minutes=1), tag="late"):
        journal.add(item)
    assert journal.flush() == 4
    monkeypatch.delenv(FAIL_ENV)
    assert journal.flush() == 0
    journal.close()
    assert sorted(logged_ids(params)) == sorted(
        [f"r{n}" for n in range(5)] + [f"late{n}" for n in range(4)]
    )


def test_held_records_past_the_limit_drop_the_oldest(params: Params) -> None:
    small = params.model_copy(
        update={"serve": params.serve.model_copy(update={"log_max_buffered": 3})}
    )
    small.predictions_dir.parent.mkdir(parents=True, exist_ok=True)
    small.predictions_dir.write_text("not a folder")
    journal = Journal(small)
    for item in records(5):
        journal.add(item)
    assert journal.held == 3
    small.predictions_dir.unlink()
    journal.close()
    assert logged_ids(small) == ["r2", "r3", "r4"]


COMPACT = """
import sys
from pathlib import Path
from powerops.core.config import load_params
from powerops.serve import predictionlog
params = load_params(sys.argv[1]).model_copy(update={"root": Path(sys.argv[2])})
predictionlog.compact(params)
"""


def test_a_compaction_killed_midway_is_finished_by_the_next(params: Params) -> None:
    journal = Journal(params)
    for item in records(300):
        journal.add(item)
    journal.close()
    env = os.environ | {CRASH_ENV: "predictionlog.compact"}
    command = [sys.executable, "-c", COMPACT, str(REPO / "params.yaml"), str(params.root)]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    # Killed between the Parquet twin and the journal's removal: both there, read once.
    assert len(list(params.predictions_dir.glob("*/journal-*"))) == 2
    assert logged_ids(params) == [f"r{n}" for n in range(300)]
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert [p.suffix for p in params.predictions_dir.glob("*/journal-*")] == [".parquet"]
    assert logged_ids(params) == [f"r{n}" for n in range(300)]


FULL_DISK = """
import resource, signal, sys
from datetime import datetime, timedelta, UTC
from pathlib import Path
from powerops.core.config import load_params
from powerops.serve import predictionlog
from powerops.serve.journal import Journal
params = load_params(sys.argv[1]).model_copy(update={"root": Path(sys.argv[2])})
# Files may not grow past 5,000 bytes: a write that crosses it is cut short, the next fails
# with EFBIG, as on a disk that fills up (a real OS error, root or not).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (5000, resource.RLIM_INFINITY))
journal = Journal(params)
noon = datetime(2026, 11, 28, 12, tzinfo=UTC)
for n in range(30):
    journal.add(predictionlog.record(f"r{n}", noon + timedelta(seconds=n), "online", "3", 200,
                                     1.0, '{"rows": []}', "x" * 500, [1.0]))
flushes = 0
while journal.flush():
    flushes += 1
journal.close()
print(flushes)
"""


def test_writes_cut_short_are_retried_whole_and_never_twice(params: Params) -> None:
    command = [sys.executable, "-c", FULL_DISK, str(REPO / "params.yaml"), str(params.root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 2  # it took several journals
    journals = list(params.predictions_dir.glob("*/journal-*.jsonl"))
    torn = [path for path in journals if not path.read_bytes().endswith(b"\n")]
    assert len(journals) >= 4 and torn, "no write was cut short"
    assert all(path.stat().st_size <= 5000 for path in journals)
    assert logged_ids(params) == [f"r{n}" for n in range(30)]
