"""Crash consistency, proven by fault injection: a command SIGKILLed at a named crash point
(powerops.core.faults), then run once more, leaves exactly the state an uninterrupted run leaves.
And two writers at once end as one writer after the other would."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from powerops.core.faults import STALL_ENV
from powerops.data import stages
from powerops.data.catalog import Catalog
from powerops.data.datasets import content_hash, manifest
from powerops.model import registry, training
from tests.conftest import VENV_BIN
from tests.faults.conftest import (
    ACTOR,
    copy,
    crash,
    data_state,
    params_of,
    powerops,
    registry_state,
)

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_reference(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The registry after an uninterrupted `powerops train`: model v2 promoted over v1."""
    workspace = copy(trained, tmp_path_factory.mktemp("reference") / "ws")
    powerops(workspace, "train")
    state = registry_state(workspace)
    assert state["aliases"] == {"2": ["champion"], "1": ["previous"]}
    return state


# Where `powerops train` can die between MLflow calls: before its version exists (the run is
# left RUNNING), right after (registered and gated `promoted`, champion not moved), and
# between the `previous` and `champion` moves of the promotion.
@pytest.mark.parametrize(
    ("point", "says"),
    [
        ("register.before_version", "data v4 -> model v2: test wape"),
        ("register.after_version", "data v4 -> model v2: test wape"),
        ("alias.between_moves", "finished the promote a crash interrupted"),
    ],
)
def test_a_killed_training_is_finished_by_one_rerun(
    point: str, says: str, trained: Path, trained_reference: dict[str, object], tmp_path: Path
) -> None:
    workspace = copy(trained, tmp_path / "ws")
    crash(workspace, point, "train")
    assert registry_state(workspace) != trained_reference  # the crash left a wrong state
    rerun = powerops(workspace, "train")
    assert says in rerun.stdout and "nothing to train" not in rerun.stdout
    assert registry_state(workspace) == trained_reference


def test_a_cleared_register_task_finishes_the_promotion(
    trained: Path, trained_reference: dict[str, object], tmp_path: Path
) -> None:
    """Airflow's way: the register task runs again on the same jobs (a clear or a retry)."""
    workspace = copy(trained, tmp_path / "ws")
    crash(workspace, "register.after_version", "train")
    params = params_of(workspace)
    jobs = [training.Job(4, training.config_hash(params))]
    training.register(params, jobs, by=ACTOR["POWEROPS_ACTOR"])
    assert registry_state(workspace) == trained_reference


@pytest.fixture(scope="module")
def before_rollback(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model v2 champion and v1 previous: where a rollback to v1 starts."""
    workspace = copy(trained, tmp_path_factory.mktemp("rollback") / "ws")
    powerops(workspace, "train")
    return workspace


@pytest.fixture(scope="module")
def rollback_reference(before_rollback: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    """The registry after an uninterrupted rollback from v2 to v1."""
    reference = copy(before_rollback, tmp_path_factory.mktemp("rollback-reference") / "ws")
    powerops(reference, "model", "rollback", "--reason", "spiky")
    state = registry_state(reference)
    assert state["aliases"] == {"1": ["champion"], "2": ["previous"]}
    return state


@pytest.mark.parametrize(
    "point",
    ["alias.after_journal", "alias.between_moves", "alias.before_audit", "alias.before_done"],
)
def test_a_killed_rollback_is_finished_by_one_rerun(
    point: str, before_rollback: Path, rollback_reference: object, tmp_path: Path
) -> None:
    workspace = copy(before_rollback, tmp_path / "ws")
    crash(workspace, point, "model", "rollback", "--reason", "spiky")
    rerun = powerops(workspace, "model", "rollback", "--reason", "spiky")
    assert "from version 2 to version 1" in rerun.stdout  # the same rollback, not a second
    assert registry_state(workspace) == rollback_reference


def backtest_runs(workspace: Path) -> list[tuple[str, dict[str, float]]]:
    """The status and metrics of every backtest run in the workspace's MLflow store."""
    params = params_of(workspace)
    runs = registry.client(params).search_runs(
        [registry.experiment_id(params)], filter_string="tags.kind = 'backtest'"
    )
    return sorted((run.info.status, run.data.metrics) for run in runs)


def test_a_killed_backtest_is_ended_by_one_rerun(trained: Path, tmp_path: Path) -> None:
    reference = copy(trained, tmp_path / "reference")
    powerops(reference, "backtest")
    ((status, scores),) = backtest_runs(reference)
    assert status == "FINISHED" and scores["model_rmse"] > 0

    workspace = copy(trained, tmp_path / "ws")
    crash(workspace, "backtest.logging", "backtest")  # in the run, its metrics not logged yet
    assert backtest_runs(workspace) == [("RUNNING", {})]
    rerun = powerops(workspace, "backtest")
    assert "left RUNNING by a killed attempt" in rerun.stderr
    # The same scores as the uninterrupted run; the killed attempt's run says it was killed.
    assert backtest_runs(workspace) == [("FINISHED", scores), ("KILLED", {})]


# Where `powerops publish` can die: while copying a batch into the working copy (a temporary
# file is left beside it), after the copy, and after the DVC snapshot and push but before the
# catalog records the version.
@pytest.mark.parametrize(
    "point", ["publish.copying", "publish.after_copy", "publish.before_catalog"]
)
def test_a_killed_publish_is_finished_by_one_rerun(
    point: str, pending: Path, tmp_path: Path
) -> None:
    reference = copy(pending, tmp_path / "reference")
    powerops(reference, "publish", "--month", "2008-01", "--month", "2008-02")
    workspace = copy(pending, tmp_path / "ws")
    powerops(workspace, "publish", "--month", "2008-01")
    crash(workspace, point, "publish", "--month", "2008-01", "--month", "2008-02")
    if point == "publish.copying":
        assert data_state(workspace)["temporary files"], "the crash left no temporary file"
    powerops(workspace, "publish", "--month", "2008-01", "--month", "2008-02")
    assert data_state(workspace) == data_state(reference)
    _assert_every_version_restores(workspace)


def _assert_every_version_restores(workspace: Path, only: list[int] | None = None) -> None:
    """Each version comes back byte for byte from DVC (checkout checks its content hash),
    with no temporary file in it."""
    params = params_of(workspace)
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    for version in record.versions:
        if only is None or version.version in only:
            restored = stages.checkout(params, version.version)
            assert content_hash(manifest(params.dataset_dir)) == restored.content_hash
            assert not list(params.dataset_dir.glob(".*"))


@pytest.fixture(scope="module")
def published_in_one_go(
    pending: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    workspace = copy(pending, tmp_path_factory.mktemp("sequential") / "ws")
    powerops(workspace, "publish")
    state = data_state(workspace)
    assert len(state["versions"]) == 12  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize("apart", [0.0, 1.0, 2.5])
def test_two_publishes_at_once_end_as_one_after_the_other(
    apart: float, pending: Path, published_in_one_go: dict[str, object], tmp_path: Path
) -> None:
    """12 validated months, two `powerops publish` started `apart` seconds apart: the second
    waits for the first's workspace lock, then finds nothing left to publish. The first
    stalls 0.2 s before each catalog write, so it is still publishing when the second
    starts, whatever the machine's speed."""
    workspace = copy(pending, tmp_path / "ws")
    command = [str(VENV_BIN / "powerops"), "publish"]
    stalled = os.environ | {STALL_ENV: "publish.before_catalog:0.2"}
    first = subprocess.Popen(command, cwd=workspace, stderr=subprocess.PIPE, text=True, env=stalled)
    time.sleep(apart)
    second = subprocess.Popen(command, cwd=workspace, stderr=subprocess.PIPE, text=True)
    errors = [process.communicate(timeout=300)[1] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], errors
    # They did overlap: one of them (at 0 s apart, either) waited for the other.
    assert sum("waiting for the workspace lock" in text for text in errors) == 1, errors
    assert data_state(workspace) == published_in_one_go
    _assert_every_version_restores(workspace, only=[1, 6, 12])


def test_a_rollback_without_the_pinned_test_set_is_refused_in_words(
    before_rollback: Path, tmp_path: Path
) -> None:
    """Scores cannot be compared with a test set that is gone: say so (it was an empty hash)."""
    workspace = copy(before_rollback, tmp_path / "ws")
    shutil.rmtree(workspace / "data" / "test_set")
    refused = powerops(workspace, "model", "rollback", "--reason", "spiky", check=False)
    assert refused.returncode == 1 and "no pinned test set in" in refused.stderr
    assert registry_state(workspace)["aliases"] == {"2": ["champion"], "1": ["previous"]}
    # A reader that stops reading (`| head`) is no failure of powerops: no error line.
    reader_gone = subprocess.Popen(
        [str(VENV_BIN / "powerops"), "model", "list"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader_gone.stdout is not None
    reader_gone.stdout.close()  # before the command, still importing, writes a line
    _, errors = reader_gone.communicate(timeout=60)
    assert reader_gone.returncode == 141 and "error" not in errors, errors
