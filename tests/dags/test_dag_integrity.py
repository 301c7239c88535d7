"""DAG integrity: every DAG file imports cleanly, fast, and without heavy modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "great_expectations", "dvc", "pyarrow")

PROBE = r"""
import importlib.util, json, sys, time
path = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import airflow.sdk  # paid once by the DAG processor, not per file
before = set(sys.modules)
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": seconds,
    "modules": sorted(m.split(".")[0] for m in set(sys.modules) - before),
}))
"""


def probe(path: Path, home: Path) -> dict[str, object]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(DAGS)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_dag_file_is_thin_and_fast(path: Path, tmp_path: Path) -> None:
    result = probe(path, tmp_path)
    heavy = sorted(set(HEAVY) & set(result["modules"]))  # type: ignore[arg-type]
    assert heavy == [], f"{path.name} imports {heavy} at parse time"
    assert float(result["seconds"]) < 0.5, f"{path.name} took {result['seconds']:.2f} s to parse"


def dagbag(home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The DAG folder as Airflow's DAG processor sees it (with the folder on sys.path)."""
    monkeypatch.syspath_prepend(str(DAGS))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dagbag_has_every_dag_without_import_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = dagbag(tmp_path, monkeypatch)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [p.stem for p in DAG_FILES]
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        assert dag.doc_md and dag_id in dag.doc_md, f"{dag_id} has no doc_md"
        assert "powerops" in dag.tags
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.owner == "powerops", f"{dag_id}.{task.task_id} owner"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure alert"


def test_workspace_tasks_share_one_pool_and_validate_never_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = dagbag(tmp_path, monkeypatch)
    ingest = bag.dags["power_ingest"]
    assert {t.pool for t in ingest.tasks} == {"powerops_workspace"}
    assert ingest.get_task("validate").retries == 0
    assert ingest.get_task("ingest").retries == 2
    assert ingest.catchup
    assert bag.dags["power_train"].get_task("fit").pool == "powerops_workspace"
    # power_train is scheduled on exactly the Asset that power_ingest's publish updates.
    published = {outlet.uri for outlet in ingest.get_task("publish").outlets}
    assert published == {
        asset.uri for asset in bag.dags["power_train"].timetable.asset_condition.objects
    }
    rollback = bag.dags["power_rollback"]
    assert set(rollback.params) == {"to_version", "reason", "force", "expected_champion"}
    # A manual DAG that started paused would queue the view's rollback forever.
    assert rollback.is_paused_upon_creation is False
    assert set(ingest.params) == {"month"}
    # Every task alerts on failure and resolves its alert on the next success; every DAG
    # says in a line what it does.
    for dag in bag.dags.values():
        assert dag.description, dag.dag_id
        for task in dag.tasks:
            assert task.on_failure_callback and task.on_success_callback, task.task_id
    # power_monitor runs daily and after every new dataset version.
    monitor = bag.dags["power_monitor"].timetable
    assert published == {monitor.asset_condition.uri}
    assert monitor.timetable.expression == "0 6 * * *"
