"""Shared fixtures: small real data and throwaway workspaces that never touch the user's files."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from powerops.core.config import Params, load_params

# No usage data leaves the machine from in-process MLflow, Great Expectations or DVC either.
for _name, _value in (
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DO_NOT_TRACK", "true"),
    ("GX_ANALYTICS_ENABLED", "False"),
    ("DVC_NO_ANALYTICS", "1"),
):
    os.environ.setdefault(_name, _value)

# Airflow reads AIRFLOW_HOME once, at import: point it at a throwaway folder for the whole
# session so no test touches a user's ~/airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="powerops-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Files a workspace needs: the pipeline definition, its configuration and the code DVC hashes.
WORKSPACE_FILES = [
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "src",
    "expectations",
    "dags",
    "scripts",
    "plugins",
]
# The first months of the real UCI data, December 2006 (a partial month) to March 2007.
SMALL_SOURCE_END = "2007-04-01"


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with the project's environment first on PATH, capturing its output."""
    env = {
        **os.environ,
        **(env or {}),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "False",
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def use_remote(workspace: Path, url: str, keyfile: Path | None = None) -> None:
    """Make `url` the workspace's default DVC remote, in `.dvc/config.local` as a host would
    (with the SSH key to reach it)."""
    dvc = str(VENV_BIN / "dvc")
    run([dvc, "remote", "add", "--local", "--force", "--default", "shared", url], cwd=workspace)
    if keyfile is not None:
        run([dvc, "remote", "modify", "--local", "shared", "keyfile", str(keyfile)], cwd=workspace)


def dvc_workspace(root: Path, url: str, keyfile: Path | None = None) -> Path:
    """Another machine's workspace at its barest: an empty DVC repository that knows only the
    remote at `url`."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    run([str(VENV_BIN / "dvc"), "init", "-q"], cwd=root)
    use_remote(root, url, keyfile)
    return root


def file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory`, by relative path ({} if it does not exist)."""
    from powerops.core.storage import sha256_file

    if not directory.is_dir():
        return {}
    return {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 1.0,
    details: Callable[[], str] | None = None,
) -> Any:
    """Poll `check` until it returns something truthy, and return that; on timeout fail with
    `what` and, if given, `details()` (logs, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    more = f"\n{details()}" if details else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{more}")


@pytest.fixture(scope="session")
def real_source_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV of the real UCI readings from 2006-12-16 through 2007-03-31 (about 152k rows)."""
    params = load_params(REPO / "params.yaml")
    from powerops.data.source import read_source

    frame = read_source(params.source_path(), params.source, progress=False)
    small = frame[frame["date_time"] < SMALL_SOURCE_END]
    path = tmp_path_factory.mktemp("source") / "householdpower_small.csv"
    small.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


def make_workspace(
    root: Path,
    source: Path,
    through: str,
    start: str = "2006-12",
    validation: dict[str, Any] | None = None,
) -> Path:
    """A copy of the repository's pipeline in `root`: its own git repo, DVC cache and remote.

    `source` replaces the data file, `start`..`through` the months, and `validation` is merged
    over the validation section of params.yaml.
    """
    copy_pipeline(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["source"]["path"] = str(source)
    params["ingest"] = {"start": start, "through": through}
    params["validation"].update(validation or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def copy_pipeline(root: Path, extra: tuple[str, ...] = ()) -> None:
    """Copy WORKSPACE_FILES (and `extra` paths) of the repository into `root`, a new git repo."""
    for name in (*WORKSPACE_FILES, *extra):
        src = REPO / name
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.csv")
            shutil.copytree(src, dest, ignore=ignore)
        else:
            shutil.copy2(src, dest)
    subprocess.run(["git", "init", "-q", str(root)], check=True)


def merge_params(params: dict[str, Any], keys: dict[str, Any]) -> None:
    """Merge `keys` over `params` as a user edits params.yaml: a mapping merges key by key,
    anything else (a value, a list, an empty mapping) replaces."""
    for key, value in keys.items():
        if isinstance(value, dict) and value and isinstance(params.get(key), dict):
            merge_params(params[key], value)
        else:
            params[key] = value


def make_example_workspace(root: Path, example: str) -> Path:
    """A workspace configured by `examples/<example>/params.yaml` alone, merged over the shipped
    params.yaml, with the example's suites and its data file written by its export_csv.py."""
    copy_pipeline(root, extra=(f"examples/{example}",))
    params = yaml.safe_load((root / "params.yaml").read_text())
    merge_params(params, yaml.safe_load((root / "examples" / example / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([sys.executable, f"examples/{example}/export_csv.py"], cwd=root)
    return root


@pytest.fixture
def workspace(tmp_path: Path, real_source_csv: Path) -> Path:
    """A workspace whose source is the small real CSV and whose params ingest 2006-12..2007-03."""
    return make_workspace(tmp_path / "ws", real_source_csv, through="2007-03")


@pytest.fixture
def workspace_params(workspace: Path) -> Params:
    return load_params(workspace / "params.yaml")


def minute_readings(start: str, end: str, noise: bool = False) -> pd.DataFrame:
    """A synthetic minute-level frame in the source schema between two instants.

    The readings vary and are physically consistent, so the frame passes the raw_batch suite.
    With `noise`, seeded random noise makes its Parquet files as large as real months
    (periodic values compress to almost nothing), so writing and hashing them costs as much.
    """
    index = pd.date_range(start, end, freq="1min", inclusive="left")
    step = np.arange(len(index))
    jitter = np.random.default_rng(0).uniform(0, 1, (3, len(index))) if noise else np.zeros(3)
    power = 1.0 + (step % 60) / 100 + jitter[0] / 2
    reactive = 0.1 + (step % 5) / 100 + jitter[1] / 10
    voltage = 238.0 + (step % 7) / 2 + jitter[2]
    intensity = np.round(np.sqrt(power**2 + reactive**2) * 1000 / voltage / 0.2) * 0.2
    return pd.DataFrame(
        {
            "date_time": index.astype("datetime64[us]"),
            "Global_active_power": power,
            "Global_reactive_power": reactive,
            "Voltage": voltage,
            "Global_intensity": intensity,
            "Sub_metering_1": (step % 3).astype("float64"),
            "Sub_metering_2": (step % 2).astype("float64"),
            "Sub_metering_3": (5 + step % 4).astype("float64"),
        }
    )


@pytest.fixture
def minute_frame() -> Callable[[str, str], pd.DataFrame]:
    """`minute_readings` as a fixture: build(start, end) -> frame."""
    return minute_readings


def set_params(workspace: Path, **sections: dict[str, object]) -> None:
    """Override keys of a workspace's params.yaml; a dotted key reaches a nested value."""
    path = workspace / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        for key, value in values.items():
            target = params[section]
            *parents, leaf = key.split(".")
            for parent in parents:
                target = target[parent]
            target[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_training_workspace(root: Path, source: Path) -> Path:
    """Four real months, a two-week pinned test set and a cadence that trains from version 3.
    The gate's significance test is off: 14 test days are too few to make any gain significant."""
    workspace = make_workspace(root, source, through="2007-03")
    set_params(
        workspace,
        test_set={"months": 2},
        train={"first_version": 3, "every": 1, "backtest_months": 1},
        gate={"min_improvement_vs_baseline": 0.0, "max_wape": 1.0, "significance": None},
    )
    return workspace


@pytest.fixture
def training_workspace(tmp_path: Path, real_source_csv: Path) -> Path:
    return make_training_workspace(tmp_path / "ws", real_source_csv)


def workspace_state(workspace: Path) -> dict[str, Any]:
    """What a pipeline run leaves behind that must not change when a step runs again:
    raw batches, verdicts, quarantine, dataset versions, the DVC remote, the pinned test set,
    each training's table and decision, the registered model versions, aliases and alias log."""
    import json

    from powerops.data.catalog import Catalog
    from powerops.model import registry

    params = load_params(workspace / "params.yaml")

    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    versions = catalog.load(name).versions if catalog.exists(name) else []
    trainings = {}
    for job in sorted(params.training_dir.glob("*/job.json")):
        steps = json.loads(job.read_text())
        trainings[job.parent.name] = {
            "table": steps["build_table"]["table_sha256"],
            "metrics": steps.get("evaluate", {}).get("metrics"),
            "decision": steps.get("gate", {}).get("promote"),
            "registered": steps.get("register", {}).get("model_version"),
        }
    return {
        "raw": file_hashes(params.raw_dir),
        "verdicts": file_hashes(params.validation_dir),
        "quarantine": file_hashes(params.quarantine_dir),
        "versions": [(v.version, v.content_hash, v.dvc_md5) for v in versions],
        "dataset": file_hashes(params.dataset_dir),
        "remote": sorted(file_hashes(workspace / "dvc-remote")),
        "test_set": file_hashes(params.test_set_dir),
        "trainings": trainings,
        "models": [
            (v.version, v.run_id, v.tags.get("data_version"), v.tags.get("gate"))
            for v in registry.versions(params)
        ],
        "aliases": registry.aliases(params),
        "alias_log": [(m.alias, m.from_version, m.to_version) for m in registry.audit_log(params)],
    }
