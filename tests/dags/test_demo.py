"""`make demo`'s Airflow replay, on four real months with a two-week test set."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import make_workspace, run
from tests.e2e.test_training import set_params


def test_demo_replays_months_through_airflow_and_summarises(
    real_source_csv: Path, tmp_path: Path
) -> None:
    workspace = make_workspace(tmp_path / "ws", real_source_csv, through="2007-03")
    set_params(
        workspace,
        test_set={"months": 2},
        train={"first_version": 3, "every": 1, "backtest_months": 1},
        gate={"min_improvement_vs_seasonal_naive": 0.0, "max_wape": 1.0},
    )
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
