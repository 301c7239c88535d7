"""The model lifecycle through `dvc repro` and the CLI, with a real MLflow store, on the first
four months of real data (two test weeks, so it fits in a small workspace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from powerops.core.config import load_params
from powerops.model import registry, testset
from tests.conftest import run, set_params

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_lifecycle_gate_crippled_challenger_rollback_and_lineage(training_workspace: Path) -> None:
    small = training_workspace
    out = run(["dvc", "repro"], small)
    assert "data v3 -> model v1" in out.stdout and "data v4 -> model v2" in out.stdout
    params = load_params(small / "params.yaml")
    manifest = testset.load_manifest(params)
    assert manifest is not None and manifest.weeks == ["2007-01-08", "2007-02-12"]
    versions = registry.versions(params)
    assert {v.tags["test_set_hash"] for v in versions} == {manifest.sha256}
    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], small).stdout

    # A crippled challenger, set through params: registered, never promoted.
    set_params(
        small, train={"estimator_params.max_iter": 1, "estimator_params.learning_rate": 0.01}
    )
    crippled = run(["dvc", "repro"], small)
    assert "data v4 -> model v3" in crippled.stdout and "not promoted" in crippled.stdout
    assert "FAIL: wape" in crippled.stdout
    after = registry.alias_version(params, registry.CHAMPION)
    assert after is not None and after.version == champion.version
    assert registry.get_version(params, "3").tags["gate"] == "not promoted"

    # Roll back to the other good version; the move is in the audit log.
    other = "1" if str(champion.version) == "2" else "2"
    run(["powerops", "model", "rollback", "--to", other, "--reason", "spiky forecasts"], small)
    rolled = registry.alias_version(params, registry.CHAMPION)
    assert rolled is not None and str(rolled.version) == other
    previous = registry.alias_version(params, registry.PREVIOUS)
    assert previous is not None and str(previous.version) == str(champion.version)
    audit = [json.loads(line) for line in registry.audit_path(params).read_text().splitlines()]
    assert audit[-1]["alias"] == "champion" and audit[-1]["to_version"] == other
    assert audit[-1]["reason"] == "rollback: spiky forecasts"

    # Lineage of the champion.
    shown = run(["powerops", "model", "show", other], small).stdout
    data_version = registry.get_version(params, other).tags["data_version"]
    for expected in (
        f"data:        household_power@{data_version}",
        f"sha256 {manifest.sha256} (the current one)",
        "code:        git ",
        "batches passed `raw_batch`",
        "seasonal naive:",
        "persistence:",
        "backtest:    wape",
        "rollback: spiky forecasts",
        f"restore its training data:  powerops data checkout {data_version}",
    ):
        assert expected in shown, expected

    # A new pinned test set makes old scores incomparable: rollback to them needs --force.
    set_params(small, test_set={"monday": 3})
    run(["powerops", "testset", "replace", "--reason", "third Mondays"], small)
    refused = run(["powerops", "model", "rollback", "--reason", "again"], small, check=False)
    assert refused.returncode == 1 and "not comparable" in refused.stderr
    run(["powerops", "model", "rollback", "--reason", "again", "--force"], small)
    assert registry.get_version(params, "1").tags["scores_comparable"].startswith("no:")

    # Model selection by configuration: two candidates cross-validated inside the training
    # rows; the better one is registered, both are child runs of the training's run.
    set_params(
        small,
        train={
            "candidates": [
                {
                    "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                    "estimator_params": {"loss": "absolute_error"},
                    "grid": {"max_iter": [1, 60]},
                }
            ],
            "cv_folds": 2,
            "cv_fold_days": 14,
        },
    )
    selected = run(["dvc", "repro"], small)
    assert "data v4 -> model v4" in selected.stdout
    version = registry.get_version(params, "4")
    mlflow = registry.client(params)
    assert mlflow.get_run(version.run_id).data.params["estimator.max_iter"] == "60"
    found = mlflow.search_runs([registry.experiment_id(params)], "tags.kind = 'candidate'")
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == version.run_id]
    assert sorted(run.data.params["estimator.max_iter"] for run in children) == ["1", "60"]
    assert {run.data.tags["chosen"] for run in children} == {"True", "False"}
    assert all("cv_wape" in run.data.metrics for run in children)
