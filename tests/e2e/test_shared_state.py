"""The cluster profile's shared state (powerops.shared) between two workspaces that share only
a DVC remote (a directory here; the SFTP server in tests/cluster), as two hosts would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerops import shared, stages
from powerops.catalog import Catalog
from powerops.config import Params, load_params
from powerops.months import parse_month
from tests.conftest import VENV_BIN, file_hashes, make_workspace, run, set_params, use_remote


def host(root: Path, source: Path, remote: Path) -> Params:
    workspace = make_workspace(root, source, through="2007-03")
    set_params(workspace, state={"shared": True})
    use_remote(workspace, str(remote))
    return load_params(workspace / "params.yaml")


def publish(params: Params, month: str, by: str) -> None:
    with shared.synced(params, by):
        months = [parse_month(month)]
        stages.ingest(params, months)
        stages.validate(params, months)
        stages.publish(params, months)


def versions(params: Params) -> list[int]:
    return [v.version for v in Catalog(params.catalog_dir).load(params.dataset.name).versions]


def test_two_workspaces_take_turns_through_the_remote_alone(
    tmp_path: Path, real_source_csv: Path
) -> None:
    remote = tmp_path / "remote"
    a = host(tmp_path / "a", real_source_csv, remote)
    b = host(tmp_path / "b", real_source_csv, remote)
    assert shared.head(a).generation == 0

    publish(a, "2006-12", "a")
    publish(a, "2007-01", "a")
    assert shared.head(b).generation == 2

    # B starts with nothing; its task sees A's versions, and A's raw batches and verdicts.
    publish(b, "2007-02", "b")
    assert versions(b) == [1, 2, 3]
    assert sorted(file_hashes(b.raw_dir)) == [
        "2006-12.parquet",
        "2007-01.parquet",
        "2007-02.parquet",
    ]
    # The dataset's working copy was restored from DVC to version 2 before appending.
    latest = Catalog(b.catalog_dir).load(b.dataset.name).latest
    assert latest is not None and latest.version == 3
    third = shared.head(b)
    assert third.generation == 3 and third.by == "b"

    # Back on A: the pull brings B's version, byte for byte.
    shared.pull(a)
    for key in ("raw", "validation", "catalog"):
        folder = getattr(a.paths, key)
        assert file_hashes(a.resolve(folder)) == file_hashes(b.resolve(folder))
    assert versions(a) == [1, 2, 3]

    # A task that fails pushes nothing, and the next pull undoes what it wrote.
    catalog_file = next(a.catalog_dir.glob("*.yaml"))
    good = catalog_file.read_bytes()
    with pytest.raises(RuntimeError, match="mid-task"), shared.synced(a, "a"):
        catalog_file.write_text("broken: true\n")
        (a.raw_dir / "stray.parquet").write_bytes(b"half written")
        raise RuntimeError("the worker died mid-task")
    assert shared.head(a).generation == 3
    shared.pull(a)
    assert catalog_file.read_bytes() == good
    assert not (a.raw_dir / "stray.parquet").exists()

    # Two writers at once: the second to finish refuses to record over the first.
    base = shared.pull(a)
    shared.pull(b)
    publish(b, "2007-03", "b")
    (a.validation_dir / "note.json").write_text(json.dumps({"from": "a"}))
    with pytest.raises(shared.SharedStateError, match="moved from generation 3 to 4"):
        shared.push(a, base, "a")
    assert shared.head(a).generation == 4
    assert json.loads((remote / "powerops-state" / "00000004.json").read_text())["by"] == "b"
    assert sorted(path.name for path in (remote / "powerops-state").iterdir()) == [
        f"{n:08d}.json" for n in range(1, 5)
    ]


def test_a_rejected_batch_is_shared_but_leaves_the_dataset_alone(
    tmp_path: Path, real_source_csv: Path, minute_frame: Callable[[str, str], pd.DataFrame]
) -> None:
    remote = tmp_path / "remote"
    a = host(tmp_path / "a", real_source_csv, remote)
    b = host(tmp_path / "b", real_source_csv, remote)
    publish(a, "2006-12", "a")
    catalog_before = file_hashes(a.catalog_dir)
    bad = minute_frame("2007-01-01", "2007-02-01")
    bad.loc[100, "Global_active_power"] = -5.0  # negative power: the batch fails validation
    with shared.synced(b, "b"):
        stages.write_raw_batch(bad, b.raw_dir, "2007-01")
        with pytest.raises(stages.ValidationFailedError, match="Global_active_power"):
            stages.validate(b, [parse_month("2007-01")])
    shared.pull(a)
    assert file_hashes(a.catalog_dir) == catalog_before
    assert (a.quarantine_dir / "2007-01").is_dir()


def test_the_embedded_profile_shares_nothing(tmp_path: Path, real_source_csv: Path) -> None:
    remote = tmp_path / "remote"
    a = host(tmp_path / "a", real_source_csv, remote)
    set_params(a.root, state={"shared": False})
    embedded = load_params(a.root / "params.yaml")
    with shared.synced(embedded, "a") as base:
        assert base is None
        stages.ingest(embedded, [parse_month("2006-12")])
    assert not (remote / "powerops-state").exists()


def test_cli_commands_work_on_the_shared_state(tmp_path: Path, real_source_csv: Path) -> None:
    remote = tmp_path / "remote"
    a = host(tmp_path / "a", real_source_csv, remote)
    b = host(tmp_path / "b", real_source_csv, remote)
    cli = [str(VENV_BIN / "powerops"), "--params"]
    # A `dvc repro` stage (DVC sets DVC_STAGE) leaves the shared state to DVC.
    month = ["ingest", "--month", "2006-12"]
    run([*cli, str(a.root / "params.yaml"), *month], cwd=a.root, env={"DVC_STAGE": "ingest"})
    assert shared.head(a).generation == 0
    run([*cli, str(a.root / "params.yaml"), "ingest", "--month", "2006-12"], cwd=a.root)
    shown = run([*cli, str(b.root / "params.yaml"), "state", "show"], cwd=b.root).stdout
    assert "generation 1" in shown and "ingest" in shown
    assert not b.raw_dir.exists()  # `state show` only reads
    run([*cli, str(b.root / "params.yaml"), "validate"], cwd=b.root)
    run([*cli, str(b.root / "params.yaml"), "publish"], cwd=b.root)
    listed = run(
        [*cli, str(a.root / "params.yaml"), "catalog", "show", "household_power"], cwd=a.root
    )
    assert "2006-12" in listed.stdout
    assert versions(a) == [1]
    assert shared.head(a).generation == 3
