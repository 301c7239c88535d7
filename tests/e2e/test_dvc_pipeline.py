"""`dvc repro` and the `powerops` CLI on real UCI readings, in a throwaway repository copy."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from powerops.core.config import load_params
from powerops.data.catalog import Catalog
from powerops.data.datasets import content_hash, manifest
from tests.conftest import make_workspace, run

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def set_through(workspace: Path, month: str) -> None:
    path = workspace / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["ingest"]["through"] = month
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_repro_versions_noop_append_and_restore(workspace: Path) -> None:
    set_through(workspace, "2007-02")
    run(["dvc", "repro"], workspace)
    params = load_params(workspace / "params.yaml")
    catalog = Catalog(params.catalog_dir)
    record = catalog.load("household_power")
    assert [v.added.month for v in record.versions] == ["2006-12", "2007-01", "2007-02"]
    assert record.versions[0].rows == 21_996  # 2006-12-16 17:24 to the end of December
    assert record.versions[1].added.rows == 31 * 24 * 60
    # dvc.lock and the catalog agree on what the current dataset directory is.
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    dataset_out = next(o for o in lock["stages"]["publish"]["outs"] if o["path"] == "data/dataset")
    assert dataset_out["md5"] == record.versions[-1].dvc_md5
    # The backtest stage, like train, waits for train.first_version versions, and says so.
    scores = json.loads((workspace / "reports" / "backtest" / "scores.json").read_text())
    assert "fewer than train.first_version (13) versions" in scores["skipped"]

    # Nothing changed: the second run is a no-op and rewrites nothing.
    catalog_bytes = catalog.path("household_power").read_bytes()
    second = run(["dvc", "repro"], workspace)
    assert "Data and pipelines are up to date." in second.stdout
    assert catalog.path("household_power").read_bytes() == catalog_bytes

    # A code change makes exactly the stages that import the module out of date (the unit test
    # tests/unit/test_stage_deps.py keeps dvc.yaml's deps complete for every module).
    drift = workspace / "src" / "powerops" / "model" / "drift.py"
    original = drift.read_bytes()
    drift.write_bytes(original + b"\n# changed\n")
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    assert sorted(status) == ["backtest", "monitor", "train"]
    drift.write_bytes(original)
    assert json.loads(run(["dvc", "status", "--json"], workspace).stdout) == {}

    # Keep version 2's files, then lose all working data and append a month: publish first
    # restores version 3 from DVC, then adds version 4 on top of it.
    run(["powerops", "data", "checkout", "2"], workspace)
    v2_files = snapshot_files(params.dataset_dir)
    assert list(v2_files) == ["2006-12.parquet", "2007-01.parquet"]
    shutil.rmtree(workspace / "data")
    set_through(workspace, "2007-03")
    run(["dvc", "repro"], workspace)
    record = catalog.load("household_power")
    assert [v.version for v in record.versions] == [1, 2, 3, 4]
    assert record.versions[3].added.month == "2007-03" and record.versions[3].parent == 3
    assert content_hash(manifest(params.dataset_dir)) == record.versions[3].content_hash

    # Restore version 2 from the DVC cache after deleting data/: byte-identical.
    shutil.rmtree(workspace / "data")
    out = run(["powerops", "data", "checkout", "2"], workspace)
    assert "household_power@2" in out.stdout
    assert snapshot_files(params.dataset_dir) == v2_files
    assert (
        "holds household_power@2 (latest is 4)"
        in run(["powerops", "data", "status"], workspace).stdout
    )

    # With the cache gone too, the same bytes come back from the local DVC remote.
    shutil.rmtree(workspace / "data")
    shutil.rmtree(workspace / ".dvc" / "cache")
    run(["powerops", "data", "checkout", "2"], workspace)
    assert snapshot_files(params.dataset_dir) == v2_files


def test_cli_errors_are_one_line(workspace: Path) -> None:
    malformed = run(["powerops", "ingest", "--month", "2007-13"], workspace, check=False)
    assert malformed.returncode == 2
    assert "expected YYYY-MM" in malformed.stderr and "Traceback" not in malformed.stderr

    outside = run(["powerops", "-q", "ingest", "--month", "2011-01"], workspace, check=False)
    assert outside.returncode == 2
    assert outside.stderr.strip().splitlines() == [
        "powerops: error: month 2011-01 is outside the source's range 2006-12..2007-03 "
        "(householdpower_small.csv)"
    ]
    unknown = run(["powerops", "data", "checkout", "7"], workspace, check=False)
    assert unknown.returncode == 1
    assert "no dataset named 'household_power'" in unknown.stderr


def test_catalog_commands(workspace: Path) -> None:
    run(["powerops", "ingest", "--month", "2007-01"], workspace)
    run(["powerops", "validate"], workspace)
    run(["powerops", "publish", "--no-push"], workspace)
    listing = run(["powerops", "catalog", "list"], workspace).stdout
    assert "household_power  1 " in listing and "2007-01..2007-01" in listing
    found = run(["powerops", "catalog", "search", "sub_metering"], workspace).stdout
    assert "household_power" in found
    assert run(["powerops", "catalog", "search", "gas"], workspace, check=False).returncode == 1
    tagged = run(["powerops", "catalog", "search", "--tag", "electricity"], workspace).stdout
    assert "household_power" in tagged
    shown = run(["powerops", "catalog", "show", "household_power@1"], workspace).stdout
    assert "Voltage" in shown and "[kW]" in shown and "dvc hash:" in shown
    as_json = run(["powerops", "catalog", "show", "household_power@1", "--json"], workspace)
    assert '"month": "2007-01"' in as_json.stdout
    configured = run(["powerops", "catalog", "show"], workspace).stdout  # dataset.name's
    assert configured.startswith("household_power: ") and "versions (1):" in configured
    helps = run(["powerops", "data", "checkout", "--help"], workspace).stdout
    assert "byte-identical" in helps


def test_repro_stops_on_a_bad_month_until_it_is_decided(
    real_source_csv: Path, tmp_path: Path
) -> None:
    # The feed delivers February 2007 with the meter reporting watts instead of kilowatts.
    frame = pd.read_csv(real_source_csv)
    february = frame["date_time"].str.startswith("2007-02")
    frame.loc[february, "Global_active_power"] *= 1000
    frame.to_csv(tmp_path / "feed.csv", index=False)
    workspace = make_workspace(tmp_path / "ws", tmp_path / "feed.csv", through="2007-03")
    params = load_params(workspace / "params.yaml")

    failed = run(["dvc", "repro"], workspace, check=False)
    assert failed.returncode != 0
    assert "batch 2007-02:" in failed.stderr
    assert "column `Global_active_power`: expect_column_values_to_be_between" in failed.stderr
    assert not (workspace / "catalog" / "household_power.yaml").exists()  # nothing published
    listing = run(["powerops", "quarantine", "list"], workspace).stdout
    assert listing.startswith("2007-02  quarantined")
    shown = run(["powerops", "quarantine", "show", "2007-02"], workspace).stdout
    assert "data docs:  reports/data_docs/validations/raw_batch/2007-02/" in shown

    run(
        ["powerops", "quarantine", "reject", "2007-02", "--reason", "unit change upstream"],
        workspace,
    )
    run(["dvc", "repro"], workspace)
    record = Catalog(params.catalog_dir).load("household_power")
    assert [v.added.month for v in record.versions] == ["2006-12", "2007-01", "2007-03"]
    assert all(v.validation and v.validation["success"] for v in record.versions)
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], workspace).stdout
