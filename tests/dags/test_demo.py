"""`make demo`'s Airflow replay, on four real months with a two-week test set."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import run


def test_demo_replays_months_through_airflow_and_summarises(training_workspace: Path) -> None:
    workspace = training_workspace
    out = run([sys.executable, "scripts/airflow_demo.py"], workspace).stdout
    for month in ("2006-12", "2007-01", "2007-02", "2007-03"):
        assert f"power_ingest {month}: success" in out
    assert "power_train: success" in out
    assert "dataset household_power: 4 versions" in out
    assert "model versions scored on 1 test-set hash(es)" in out
    assert "model v1: data v3" in out and "model v2: data v4" in out
    assert "[champion]" in out or "champion]" in out
    assert "quarantined batches: none" in out
    # Replaying again is idempotent: no new dataset or model version.
    again = run([sys.executable, "scripts/airflow_demo.py"], workspace).stdout
    assert "dataset household_power: 4 versions" in again
    assert "model v3" not in again
