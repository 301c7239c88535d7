"""The cluster profile's shared state (powerops.ops.shared) between two workspaces that share only
a DVC remote (a directory here; the SFTP server in tests/cluster), as two hosts would."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.core.months import parse_month
from powerops.data import dvcstore, stages
from powerops.data.catalog import Catalog
from powerops.ops import shared
from tests import race
from tests.conftest import (
    VENV_BIN,
    dvc_workspace,
    file_hashes,
    make_workspace,
    run,
    set_params,
    use_remote,
)

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

# Rounds of the races below. Main's check-then-move let both writers win some rounds of every
# run measured (about 15% of the head rounds, 9% of the push rounds, varying with the load).
HEAD_ROUNDS = 200
PUSH_ROUNDS = 60


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
    # A read command takes no lock and pulls nothing: it shows the workspace as last pulled.
    show = [*cli, str(a.root / "params.yaml"), "catalog", "show", "household_power"]
    assert "no dataset named" in run(show, cwd=a.root, check=False).stderr
    run([*cli, str(a.root / "params.yaml"), "state", "pull"], cwd=a.root)
    assert "2006-12" in run(show, cwd=a.root).stdout
    assert versions(a) == [1]
    assert shared.head(a).generation == 3


def test_two_writers_racing_for_the_next_head_have_one_winner(tmp_path: Path) -> None:
    """Creating the next head is a compare-and-set: of two writers at once, one wins, every
    round, and the head holds its bytes."""
    remote = tmp_path / "remote"
    roots = [dvc_workspace(tmp_path / name, str(remote)) for name in ("a", "b")]
    started = time.perf_counter()
    outcomes = race.race(race.create_head, roots, HEAD_ROUNDS)
    print(f"{HEAD_ROUNDS} rounds in {time.perf_counter() - started:.1f} s")
    race.assert_heads_hold_the_winners(remote / shared.HEAD_FOLDER, outcomes)


def test_two_tasks_pushing_on_the_same_head_record_one_generation(tmp_path: Path) -> None:
    """Two workspaces push a change on the same base at once: one records the next generation,
    the other's push fails with SharedStateError, and a pull brings the winner's change."""
    remote = tmp_path / "remote"
    unused = tmp_path / "no-source.csv"  # no stage runs: the source is never read
    a, b = (host(tmp_path / name, unused, remote) for name in ("a", "b"))
    started = time.perf_counter()
    outcomes = race.race(race.push_change, [a.root, b.root], PUSH_ROUNDS)
    print(f"{PUSH_ROUNDS} rounds in {time.perf_counter() - started:.1f} s")
    winners = race.winners(outcomes)
    heads = sorted((remote / shared.HEAD_FOLDER).iterdir())
    assert [json.loads(path.read_text())["by"] for path in heads] == winners
    assert shared.pull(b).generation == PUSH_ROUNDS
    assert sorted(file_hashes(b.validation_dir)) == sorted(
        f"{winner}-{n}.json" for n, winner in enumerate(winners)
    )


def test_creating_a_head_fails_loudly_where_it_cannot_compare_and_set(tmp_path: Path) -> None:
    """A scheme without a create that refuses an existing name is refused, and a failure that
    is not "the name exists" is an error naming the remote, not a lost race."""
    web = dvc_workspace(tmp_path / "web", "https://dvc.example.invalid/powerops")
    with pytest.raises(dvcstore.VersionStoreError, match=r"https://.*local-path or ssh://"):
        dvcstore.create_remote_file(web, shared.HEAD_FOLDER, "00000001.json", b"{}")

    remote = tmp_path / "remote"
    local = dvc_workspace(tmp_path / "local", str(remote))
    remote.mkdir()
    (remote / shared.HEAD_FOLDER).write_text("a file where the heads' folder should be")
    with pytest.raises(
        dvcstore.VersionStoreError, match=rf"`shared` \({re.escape(str(remote))}\): could not"
    ):
        dvcstore.create_remote_file(local, shared.HEAD_FOLDER, "00000001.json", b"{}")
    assert sorted(path.name for path in remote.iterdir()) == [shared.HEAD_FOLDER]
