"""The training steps one at a time, as power_train's tasks run them: each can run again
without changing anything, the gate judges jobs in order, and a step refuses stale inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from powerops.core.config import load_params
from powerops.data import stages
from powerops.model import forecasting, registry, testset, training
from tests.conftest import set_params, workspace_state

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_each_step_runs_again_without_changing_state(training_workspace: Path) -> None:
    params = load_params(training_workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)
    jobs = training.plan(params)
    assert [job.data_version for job in jobs] == [3, 4]

    refs = training.build_table(params, jobs)
    assert [training.Job.from_ref(ref) for ref in refs] == jobs
    training.fit(params, jobs)
    headline = training.evaluate(params, jobs)
    decisions = training.gate(params, jobs)
    results = training.register(params, jobs, by="test")
    assert [r.model_version for r in results] == ["1", "2"]
    # The gate judged job 2 against job 1's model, the champion it would replace.
    assert decisions[0]["promote"] is True
    first_wape = headline[0]["test_wape"]
    assert any(f"vs champion {first_wape:.4f}" in reason for reason in results[1].verdict)
    # XCom stays small: references, hashes and headline numbers.
    assert all(len(json.dumps(ref)) < 300 for ref in refs + headline + decisions)
    before = workspace_state(training_workspace)

    for again in (
        training.build_table,
        training.fit,
        training.evaluate,
        training.gate,
        lambda p, j: training.register(p, j, by="test"),
    ):
        again(params, jobs)
        assert workspace_state(training_workspace) == before
    assert training.plan(params) == []

    # A rollback is not undone when `register` runs again.
    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
    other = "1" if str(champion.version) == "2" else "2"
    registry.rollback(params, "test", other, results[0].test_set_hash)
    moves = len(registry.audit_log(params))
    training.register(params, jobs, by="test")
    assert len(registry.audit_log(params)) == moves


def test_steps_refuse_changed_configuration_and_tampered_files(training_workspace: Path) -> None:
    params = load_params(training_workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)
    jobs = training.plan(params, data_version=3)
    with pytest.raises(training.TrainingError, match="run its earlier steps first"):
        training.fit(params, jobs)
    training.build_table(params, jobs)
    training.fit(params, jobs)

    model = jobs[0].directory(params) / training.MODEL_FILE
    model.write_bytes(model.read_bytes() + b"x")
    with pytest.raises(training.TrainingError, match="changed since `fit`"):
        training.evaluate(params, jobs)

    set_params(training_workspace, train={"estimator_params.max_iter": 7})
    changed = load_params(training_workspace / "params.yaml")
    with pytest.raises(training.TrainingError, match="started under config"):
        training.fit(changed, jobs)
    assert registry.versions(params) == []


def test_the_gate_tests_the_gain_on_daily_losses_rescoring_an_older_champion(
    training_workspace: Path,
) -> None:
    set_params(training_workspace, gate={"significance": 0.05})
    params = load_params(training_workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)
    first, second = jobs = training.plan(params)
    training.build_table(params, jobs)
    training.fit(params, jobs)
    training.evaluate(params, jobs)
    training.gate(params, [first])
    training.register(params, [first], by="test")

    # The version carries its daily losses: 14 days of the two test weeks.
    version = registry.get_version(params, "1")
    stored = json.loads(version.tags["evaluation"])
    assert len(stored["days"]) == len(stored["daily_loss"]["absolute"]) == 14
    test_frame, manifest = testset.load(params)
    assert training.champion_evaluation(params, test_frame, manifest.sha256) == (
        forecasting.Evaluation(**stored)
    )

    # A champion registered before the paired test has no losses: it is re-scored, to the same.
    bare = {key: stored[key] for key in ("model", "baselines", "rows")}
    registry.client(params).set_model_version_tag(
        params.mlflow.model_name, "1", "evaluation", json.dumps(bare)
    )
    rescored = training.champion_evaluation(params, test_frame, manifest.sha256)
    assert rescored is not None and rescored.days == stored["days"]
    assert rescored.daily_loss == stored["daily_loss"]

    training.gate(params, [second])
    verdict = json.loads((second.directory(params) / training.RECORD_FILE).read_text())["gate"]
    champion_reason = verdict["verdict"][2]
    assert "; gain " in champion_reason and "95% CI" in champion_reason and "p=" in champion_reason
