"""Benchmark: one month through Airflow against the same stage functions in one process.

A workspace with 12 published months (2006-12..2007-11) is prepared once and copied twice.
Then month 13 (2007-12, the first that trains a model) goes through:
- Airflow: `airflow dags test power_ingest` (ingest -> validate -> publish) and
  `airflow dags test power_train` (train, evaluate, gate, register), on SQLite;
- Airflow's `dag.test()` of both DAGs in one Python process (how `make demo` runs them);
- the baseline: one fresh Python process calling the same stage functions in order.
Both pay their own imports. Printed: each wall time and the ratio Airflow / baseline.

    make bench-orchestration    # or: .venv/bin/python bench/orchestration.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

IN_PROCESS = r"""
from powerops import stages, training
from powerops.core.config import load_params
from powerops.core.months import Month
params = load_params("params.yaml")
month = [Month(2007, 12)]
stages.ingest(params, month)
stages.validate(params, month)
stages.publish(params, month)
assert len(training.train(params, by="bench")) == 1
"""

DAG_TEST = r"""
import sys
from datetime import UTC, datetime
sys.path.insert(0, "dags")
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
run = bag.dags["power_ingest"].test(logical_date=datetime(2008, 1, 1, tzinfo=UTC))
assert run.state == "success"
assert bag.dags["power_train"].test().state == "success"
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    from tests.conftest import make_workspace

    from powerops.core.config import load_params
    from powerops.data import stages

    source = load_params(REPO / "params.yaml").source_path()
    with tempfile.TemporaryDirectory(prefix="powerops-bench-") as tmp:
        base = make_workspace(Path(tmp) / "base", source, through="2007-11")
        params = load_params(base / "params.yaml")
        print("preparing 12 published months ...", flush=True)
        stages.ingest(params)
        stages.validate(params)
        stages.publish(params)
        by_airflow = Path(shutil.copytree(base, Path(tmp) / "airflow", symlinks=True))
        by_dag_test = Path(shutil.copytree(base, Path(tmp) / "dagtest", symlinks=True))
        in_process = Path(shutil.copytree(base, Path(tmp) / "process", symlinks=True))
        env = {
            "AIRFLOW_HOME": str(Path(tmp) / "airflow_home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(by_airflow / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "POWEROPS_WORKSPACE": str(by_airflow),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        airflow = str(BIN / "airflow")
        for setup in (["db", "migrate"], ["pools", "set", "powerops_workspace", "1", "bench"]):
            subprocess.run(
                [airflow, *setup], env={**os.environ, **env}, check=True, capture_output=True
            )
        print("one month through Airflow ...", flush=True)
        ingest = timed([airflow, "dags", "test", "power_ingest", "2008-01-01"], by_airflow, env)
        train = timed([airflow, "dags", "test", "power_train"], by_airflow, env)
        print("one month through dag.test() in one process ...", flush=True)
        dag_env = env | {
            "AIRFLOW_HOME": str(Path(tmp) / "airflow_home_2"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(by_dag_test / "dags"),
            "POWEROPS_WORKSPACE": str(by_dag_test),
        }
        for setup in (
            ["db", "migrate"],
            ["pools", "set", "powerops_workspace", "1", "bench"],
            ["dags", "reserialize"],
        ):
            subprocess.run(
                [airflow, *setup], env={**os.environ, **dag_env}, check=True, capture_output=True
            )
        one_process = timed([sys.executable, "-c", DAG_TEST], by_dag_test, dag_env)
        print("the same stage functions in one process ...", flush=True)
        baseline = timed([sys.executable, "-c", IN_PROCESS], in_process, {})
    total = ingest + train
    print(f"{'one month 2007-12: ingest -> register':<44} {'seconds':>8} {'ratio':>7}")
    print(f"{'stage functions, one process (baseline)':<44} {baseline:>8.1f} {1:>7.2f}")
    print(f"{'Airflow dags test: power_ingest':<44} {ingest:>8.1f}")
    print(f"{'Airflow dags test: power_train':<44} {train:>8.1f}")
    print(f"{'Airflow, both runs':<44} {total:>8.1f} {total / baseline:>7.2f}")
    print(
        f"{'Airflow dag.test() of both, one process':<44} {one_process:>8.1f} "
        f"{one_process / baseline:>7.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
