"""Training, evaluation, the promotion gate and registration of one dataset version.

`train_version` is one pass of the model lifecycle: build and check the modelling table,
pin (or read) the test set, fit the Pipeline on everything but the test weeks, score it and
the baselines on the pinned rows, run the rolling-origin backtest, log the run to MLflow,
register the model version, and move `champion` only if the gate says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops import dvcstore, forecasting, registry, testset
from powerops.catalog import Catalog, DatasetRecord, VersionRecord
from powerops.config import Params
from powerops.datasets import batch_files, content_hash, manifest
from powerops.table import modelling_table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot run on this data or configuration (the message says why)."""


@dataclass
class TrainResult:
    """What one training produced: small, JSON-able, fit for XCom and logs."""

    data_version: int
    model_version: str
    run_id: str
    test_set_hash: str
    metrics: dict[str, float]
    promoted: bool
    verdict: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def config_hash(params: Params) -> str:
    """Fingerprint of everything that shapes a model besides the data."""
    relevant = {
        "table": params.table.model_dump(mode="json"),
        "forecast": params.forecast.model_dump(mode="json"),
        "test_set": params.test_set.model_dump(mode="json"),
        "train": params.train.model_dump(
            mode="json", exclude={"first_version", "every", "threads"}
        ),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def due_versions(record: DatasetRecord, params: Params, trained: set[tuple[int, str]]) -> list[int]:
    """Dataset versions to train on now.

    Replaying history: every `train.every`-th version from `train.first_version` that is newer
    than any version trained so far. Always: the latest version, unless it already has a model
    of this configuration. So a new configuration trains one challenger on the latest data,
    not the whole history again.
    """
    latest = record.latest
    if latest is None or latest.version < params.train.first_version:
        return []
    newest_trained = max((version for version, _ in trained), default=0)
    first, every = params.train.first_version, params.train.every
    wanted = {v for v in range(first, latest.version + 1, every) if v > newest_trained}
    if (latest.version, config_hash(params)) not in trained:
        wanted.add(latest.version)
    return sorted(wanted)


def read_version(params: Params, version: VersionRecord) -> pd.DataFrame:
    """The minute readings of one dataset version: from the working copy if it holds that
    version, otherwise restored from DVC into a temporary directory (the working copy stays)."""
    import pandas as pd

    def read(directory: Path) -> pd.DataFrame:
        frames = [pd.read_parquet(path) for path in batch_files(directory).values()]
        readings = pd.concat(frames, ignore_index=True)
        return readings.sort_values(params.source.timestamp_column, ignore_index=True)

    if content_hash(manifest(params.dataset_dir)) == version.content_hash:
        return read(params.dataset_dir)
    with tempfile.TemporaryDirectory(prefix="powerops-version-") as tmp:
        target = Path(tmp) / "dataset"
        dvcstore.restore(params.root, version.dvc_md5, target)
        return read(target)


def build_table(params: Params, readings: pd.DataFrame, name: str) -> pd.DataFrame:
    """The modelling table of these readings, checked by the `training_table` suite."""
    from powerops.validation import validate_table

    timestamps = readings[params.source.timestamp_column]
    table = modelling_table(
        readings,
        params.source.timestamp_column,
        params.table.target_column,
        params.table.frequency,
        params.source.frequency,
    )
    report = validate_table(table, params, timestamps.iloc[0], timestamps.iloc[-1], name)
    if not report.success:
        raise TrainingError(report.message())
    return table


def git_commit(root: Path) -> str:
    """The code's commit, with `-dirty` when the work tree has changes; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def gate(
    params: Params, challenger: forecasting.Evaluation, champion: forecasting.Evaluation | None
) -> tuple[bool, list[str]]:
    """Promotion rules on the pinned test set; returns the verdict and a reason per rule."""
    rules = params.gate
    metric = rules.metric
    score = challenger.model[metric]
    naive = challenger.baselines["seasonal_naive"][metric]
    limit = naive * (1 - rules.min_improvement_vs_seasonal_naive)
    checks = [
        (
            score <= limit,
            f"{metric} {score:.4f} vs seasonal naive {naive:.4f} (must be <= {limit:.4f})",
        ),
        (
            challenger.model["wape"] <= rules.max_wape,
            f"wape {challenger.model['wape']:.4f} within the error budget {rules.max_wape:.4f}",
        ),
    ]
    if champion is not None:
        best = champion.model[metric] * (1 - rules.min_improvement_vs_champion)
        checks.append(
            (
                score < best,
                f"{metric} {score:.4f} vs champion "
                f"{champion.model[metric]:.4f} (must be < {best:.4f})",
            )
        )
    reasons = [("pass: " if ok else "FAIL: ") + text for ok, text in checks]
    return all(ok for ok, _ in checks), reasons


def champion_evaluation(
    params: Params, test_frame: pd.DataFrame, test_hash: str
) -> forecasting.Evaluation | None:
    """The champion's scores on the current pinned test set (re-scored if its hash differs)."""
    import mlflow.sklearn

    champion = registry.alias_version(params, registry.CHAMPION)
    if champion is None:
        return None
    if champion.tags.get("test_set_hash") == test_hash and "evaluation" in champion.tags:
        data = json.loads(champion.tags["evaluation"])
        return forecasting.Evaluation(data["model"], data["baselines"], data["rows"])
    log.info("champion version %s was scored on another test set: re-scoring it", champion.version)
    model = mlflow.sklearn.load_model(f"models:/{params.mlflow.model_name}@{registry.CHAMPION}")
    return forecasting.evaluate(model, test_frame, params)


def input_example(
    test_frame: pd.DataFrame, manifest: testset.TestSetManifest, params: Params
) -> pd.DataFrame:
    """A serving request: the history features need, then the first forecast block to predict."""
    import pandas as pd

    first_origin = pd.Timestamp(manifest.weeks[0])
    block = pd.Timedelta(params.table.frequency) * params.forecast.horizon
    rows = test_frame[test_frame["timestamp"] < first_origin + block][["timestamp", "load_kw"]]
    return rows.tail(params.forecast.lookback + params.forecast.horizon).reset_index(drop=True)


def train_version(params: Params, version: VersionRecord, by: str) -> TrainResult:
    """Train, evaluate, gate and register a model on one dataset version."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    registry.client(params)  # import MLflow and open the store once, before timing the steps
    name = f"{params.dataset.name}@{version.version}"
    readings = read_version(params, version)
    table = build_table(params, readings, name)
    if testset.load_manifest(params) is None:
        pinned = testset.pin(table, params, datetime.now(UTC).isoformat(timespec="seconds"))
        log.info(
            "pinned the test set: %d target rows, sha256 %s", pinned.target_rows, pinned.sha256[:12]
        )
    test_frame, test_manifest = testset.load(params)
    train_rows = testset.training_mask(table["timestamp"], test_manifest, params)
    testset.assert_no_overlap(table.loc[train_rows, "timestamp"], test_manifest, params)
    seconds["prepare"] = time.perf_counter() - started

    started = time.perf_counter()
    pipeline = forecasting.fit(forecasting.make_pipeline(params), table, train_rows)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    evaluation = forecasting.evaluate(pipeline, test_frame, params)
    champion = champion_evaluation(params, test_frame, test_manifest.sha256)
    promote, verdict = gate(params, evaluation, champion)
    seconds["evaluate_and_gate"] = time.perf_counter() - started
    started = time.perf_counter()
    steps, cutoff = forecasting.backtest(table, train_rows, params)
    seconds["backtest"] = time.perf_counter() - started

    started = time.perf_counter()
    metrics = evaluation.flat() | {
        "backtest_mae": float(steps["mae"].mean()),
        "backtest_wape": float(np.average(steps["wape"], weights=steps["origins"])),
        **{
            f"backtest_mae_step_{int(step):02d}": float(mae)
            for step, mae in zip(steps["step"], steps["mae"], strict=True)
        },
    }
    tags = {
        "data_version": str(version.version),
        "data_content_hash": version.content_hash,
        "data_dvc_md5": version.dvc_md5,
        "test_set_hash": test_manifest.sha256,
        "test_set_version": str(test_manifest.version),
        "git_commit": git_commit(params.root),
        "config_hash": config_hash(params),
        "trained_by": by,
    }
    example = input_example(test_frame, test_manifest, params)
    experiment = registry.experiment_id(params)
    with mlflow.start_run(experiment_id=experiment, run_name=f"data-v{version.version}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params(
            {
                "estimator": params.train.estimator,
                **{f"estimator.{k}": v for k, v in params.train.estimator_params.items()},
                "frequency": params.table.frequency,
                "horizon": params.forecast.horizon,
                "lags": list(params.forecast.lags),
                "windows": list(params.forecast.windows),
                "train_rows": int(train_rows.sum()),
                "backtest_cutoff": cutoff,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_input(
            from_pandas(table, source=str(params.dataset_dir), name=name, targets="load_kw"),
            context="training",
        )
        mlflow.log_input(
            from_pandas(
                test_frame,
                source=str(testset.paths(params)[0]),
                name=f"pinned_test_set@{test_manifest.version}",
                targets="load_kw",
            ),
            context="testing",
        )
        mlflow.log_dict(
            {"cutoff": cutoff, "steps": steps.to_dict(orient="records")}, "backtest.json"
        )
        mlflow.log_dict({"promote": promote, "verdict": verdict}, "gate.json")
        seconds["log_run"] = time.perf_counter() - started
        started = time.perf_counter()
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            # Our transformers are top-level classes in an installed package, which skops
            # (MLflow's default) refuses; cloudpickle stores them by reference.
            serialization_format="cloudpickle",
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
            ],
        )
        registered = mlflow.register_model(
            info.model_uri,
            params.mlflow.model_name,
            tags=tags
            | {
                "evaluation": json.dumps(
                    {
                        "model": evaluation.model,
                        "baselines": evaluation.baselines,
                        "rows": evaluation.rows,
                    }
                ),
                "test_wape": f"{evaluation.model['wape']:.4f}",
                "gate": "promoted" if promote else "not promoted",
                "gate_reasons": json.dumps(verdict),
            },
        )
    seconds["log_model_and_register"] = time.perf_counter() - started
    if promote:
        registry.promote(params, str(registered.version), "gate passed: " + "; ".join(verdict), by)
    log.info(
        "%s: model version %s %s (%s)",
        name,
        registered.version,
        "promoted to champion" if promote else "not promoted",
        "; ".join(verdict),
    )
    return TrainResult(
        data_version=version.version,
        model_version=str(registered.version),
        run_id=run.info.run_id,
        test_set_hash=test_manifest.sha256,
        metrics=metrics,
        promoted=promote,
        verdict=verdict,
        seconds=seconds,
    )


def train(
    params: Params, data_version: int | None = None, by: str = "powerops"
) -> list[TrainResult]:
    """Train every dataset version the cadence asks for (or exactly `data_version`)."""
    # The stage's DVC output exists even before the first year of data allows a test set.
    params.test_set_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(params.catalog_dir)
    if not catalog.exists(params.dataset.name):
        log.info("no version of %s published yet: nothing to train", params.dataset.name)
        return []
    record = catalog.load(params.dataset.name)
    if data_version is not None:
        chosen = [record.version(data_version)]
    else:
        trained = {
            (int(v.tags["data_version"]), v.tags.get("config_hash", ""))
            for v in registry.versions(params)
            if "data_version" in v.tags
        }
        chosen = [record.version(v) for v in due_versions(record, params, trained)]
    with compute_threads(params):
        return [train_version(params, version, by) for version in chosen]


def compute_threads(params: Params) -> Any:
    """Cap OpenMP/BLAS threads for fitting and scoring at `train.threads`.

    HistGradientBoosting's OpenMP threads spin while they wait. Two fits at once with the
    default thread count on this 2-core machine took 259 s each instead of 2.1 s; with one
    thread each they took 1.7 s. Airflow runs tasks side by side, so the default is 1.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=params.train.threads)


def summary(result: TrainResult) -> dict[str, Any]:
    return {
        "data_version": result.data_version,
        "model_version": result.model_version,
        "promoted": result.promoted,
        "test_wape": result.metrics.get("test_wape"),
        "test_seasonal_naive_wape": result.metrics.get("test_seasonal_naive_wape"),
        "backtest_wape": result.metrics.get("backtest_wape"),
    }


def replace_test_set(params: Params, reason: str) -> testset.TestSetManifest:
    """Deliberately re-pin the test set from the latest data; older scores become incomparable."""
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    if record.latest is None:
        raise TrainingError(f"dataset {record.name} has no versions yet")
    table = build_table(params, read_version(params, record.latest), f"{record.name}@latest")
    manifest = testset.pin(
        table, params, datetime.now(UTC).isoformat(timespec="seconds"), reason, replace=True
    )
    mlflow_client = registry.client(params)
    for model_version in registry.versions(params):
        if model_version.tags.get("test_set_hash") != manifest.sha256:
            mlflow_client.set_model_version_tag(
                params.mlflow.model_name,
                model_version.version,
                "scores_comparable",
                f"no: scored on test set v{model_version.tags.get('test_set_version', '?')}, "
                f"replaced by v{manifest.version} ({reason})",
            )
    return manifest


def lineage(params: Params, version: str) -> str:
    """Everything that made a model version, and the command that restores its training data."""
    model = registry.get_version(params, version)
    tags = model.tags
    run = registry.run_details(params, str(model.run_id))
    metrics = run["metrics"]
    current = testset.load_manifest(params)
    data_version = int(tags.get("data_version", "0"))
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    data = record.version(data_version) if data_version else None
    held = registry.aliases(params).get(version, [])
    lines = [
        f"model {params.mlflow.model_name} version {version}"
        + (f"  [aliases: {', '.join(held)}]" if held else ""),
        f"  run:         {model.run_id} (trained by {tags.get('trained_by', '?')})",
        f"  code:        git {tags.get('git_commit', 'unknown')}, config {tags.get('config_hash')}",
    ]
    if data is not None:
        lines.append(
            f"  data:        {record.name}@{data.version}: {data.first_month}..{data.last_month}, "
            f"{data.rows:,} rows, content {data.content_hash}, dvc {data.dvc_md5}"
        )
        validated = [v for v in record.versions[: data.version] if v.validation]
        passed = sum(bool(v.validation and v.validation.get("success")) for v in validated)
        lines.append(
            f"  validation:  {passed} of {data.version} batches passed "
            f"`{(data.validation or {}).get('suite', '?')}`; the last one: "
            f"{(data.validation or {}).get('data_docs', 'no Data Docs')}"
        )
    comparable = current is not None and tags.get("test_set_hash") == current.sha256
    lines.append(
        f"  test set:    v{tags.get('test_set_version')} sha256 {tags.get('test_set_hash')} "
        f"({'the current one' if comparable else 'NOT the current one: scores not comparable'})"
    )
    for prefix, label in (
        ("test", "model"),
        ("test_seasonal_naive", "seasonal naive"),
        ("test_persistence", "persistence"),
    ):
        lines.append(
            f"  {label + ':':<16}rmse {metrics.get(prefix + '_rmse', float('nan')):.4f}  "
            f"mae {metrics.get(prefix + '_mae', float('nan')):.4f}  "
            f"wape {metrics.get(prefix + '_wape', float('nan')):.4f}"
        )
    steps = sorted(k for k in metrics if k.startswith("backtest_mae_step_"))
    if steps:
        per_step = " ".join(f"{metrics[k]:.3f}" for k in steps)
        lines.append(
            f"  backtest:    wape {metrics.get('backtest_wape', float('nan')):.4f} from "
            f"{run['params'].get('backtest_cutoff')}; mae by step 1..{len(steps)}: {per_step}"
        )
    lines.append(f"  gate:        {tags.get('gate', '?')}")
    for reason in json.loads(tags.get("gate_reasons", "[]")):
        lines.append(f"               {reason}")
    history = [m for m in registry.audit_log(params) if version in (m.to_version, m.from_version)]
    lines.append("  alias history:")
    for move in history or []:
        lines.append(
            f"    {move.at}  {move.alias}: {move.from_version or '-'} -> {move.to_version}  "
            f"by {move.by}: {move.reason}"
        )
    if not history:
        lines.append("    (never held an alias)")
    if data is not None:
        lines.append(f"  restore its training data:  powerops data checkout {data.version}")
    return "\n".join(lines)
