"""Asset events only for news, under a real Airflow (`dag.test()` in subprocesses, a SQLite
metadata database, real Asset events): a publish killed after it recorded the version tells
its news when the run is retried; a replay of a published month, or a rerun after the news was
told, tells nobody, so no training follows."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from powerops.core.config import load_params
from powerops.core.faults import CRASH_ENV
from powerops.data.catalog import Catalog
from tests.conftest import make_workspace, run

pytestmark = pytest.mark.slow

# One power_ingest run for a month; the run id follows from the date, so a second call with
# the same date runs the same run again (as a retry or a clear does). Prints the run id.
RUN = """
import sys
from datetime import datetime
sys.path.insert(0, "dags")
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder="dags").dags["power_ingest"]
when = datetime.fromisoformat(sys.argv[1])
run = dag.test(run_after=when, logical_date=when, run_conf={"month": sys.argv[2]})
print(run.run_id)
"""


def test_a_killed_publish_tells_its_news_once(tmp_path: Path, real_source_csv: Path) -> None:
    workspace = make_workspace(tmp_path / "ws", real_source_csv, through="2007-01")
    home = tmp_path / "airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "POWEROPS_WORKSPACE": str(workspace),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["pools", "set", "powerops_workspace", "1", "one writer"]):
        run([airflow, *command], workspace, env=env)

    def ingest(logical_date: str, **extra: str) -> str:
        return run(
            [sys.executable, "-c", RUN, logical_date, "2006-12"],
            workspace,
            env=env | extra,
            check=not extra,
        ).stdout

    def states(run_id: str) -> tuple[str, int]:
        with sqlite3.connect(home / "airflow.db") as db:
            (state,) = db.execute(
                "select state from task_instance where run_id = ? and task_id = 'publish'",
                (run_id,),
            ).fetchone()
            (events,) = db.execute("select count(*) from asset_event").fetchone()
        return state, events

    first = "manual__2007-01-01T00:00:00+00:00"
    ingest("2007-01-01T00:00:00+00:00", **{CRASH_ENV: "publish.after_catalog"})
    params = load_params(workspace / "params.yaml")
    (version,) = Catalog(params.catalog_dir).load(params.dataset.name).versions
    assert version.created_by == f"airflow:power_ingest/{first}"
    assert states(first)[1] == 0  # killed before Airflow heard of the news

    # The run again (a retry, or a clear, of the same run): the version is there, its news
    # is not told yet, so publish succeeds and emits the event once.
    ingest("2007-01-01T00:00:00+00:00")
    assert states(first) == ("success", 1)
    # Once more: the event is told, publish skips.
    ingest("2007-01-01T00:00:00+00:00")
    assert states(first) == ("skipped", 1)
    # Another run for the same month (a replay): old news, nobody is told.
    replay = ingest("2007-01-02T00:00:00+00:00").strip().splitlines()[-1]
    assert states(replay) == ("skipped", 1)
    assert len(Catalog(params.catalog_dir).load(params.dataset.name).versions) == 1
