"""`powerops backtest`: a walk-forward evaluation of the configured model over a fixed period.

Every forecast origin from `backtest.start` to `backtest.end` (one every `forecast.horizon`
periods, as served) is forecast by a model fitted only on rows before it: refitted at the
first origin and then every `backtest.refit_every` origins (0: never refitted). The model and
every baseline are scored on the same rows, per horizon step and overall (RMSE, MAE, WAPE).
Training keeps clear of the pinned test set as in training (`test_set.embargo`), so a backtest
reads what a model trained at that origin could have read and nothing more.

`run` reads the current dataset version, writes `reports/backtest/` (scores.json for
`dvc metrics`, steps.csv, steps.png) and logs its own MLflow run (tag `kind=backtest`) with the
per-step scores as metric steps and the plot. `dvc repro`, the CLI and the `power_backtest`
Airflow DAG all call `run`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.faults import crash_point
from powerops.core.storage import atomic_path, atomic_write_text
from powerops.data.table import TARGET
from powerops.model import forecasting
from powerops.model.walkforward import Backtest, last_months_start, walk_forward

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

log = logging.getLogger(__name__)

SCORES_FILE, STEPS_FILE, PLOT_FILE = "scores.json", "steps.csv", "steps.png"
RUN_KIND = "backtest"


def overridden(params: Params, **values: Any) -> Params:
    """`params` with the given `backtest` settings (None keeps params.yaml's), checked."""
    from pydantic import ValidationError

    from powerops.core.config import BacktestConfig

    chosen = {key: value for key, value in values.items() if value is not None}
    try:
        settings = BacktestConfig.model_validate(params.backtest.model_dump() | chosen)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise forecasting.ForecastError(f"backtest.{where}: {problem['msg']}") from None
    return params.model_copy(update={"backtest": settings})


def period(params: Params, table: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last origin: `backtest.start`/`end`, or the last `backtest.months`
    months of the table."""
    import pandas as pd

    settings = params.backtest
    last = table["timestamp"].max()
    end = pd.Timestamp(settings.end) if settings.end else last
    if settings.start:
        return pd.Timestamp(settings.start), end
    return last_months_start(table, settings.months), end


def run(params: Params, by: str) -> Backtest | str:
    """Backtest the configured model on the current dataset version; write the reports and
    log an MLflow run. Returns why it was skipped instead while the dataset is younger than
    `train.first_version` (nothing trains yet), or when the default period leaves too little
    data before it (an explicit `backtest.start` fails then)."""
    from powerops.data.catalog import Catalog
    from powerops.model import testset, training

    record = Catalog(params.catalog_dir).load(params.dataset.name)
    version = record.versions[-1]
    name = f"{params.dataset.name}@{version.version}"
    if version.version < params.train.first_version:  # as `train`: too young to model
        reason = (
            f"{name}: fewer than train.first_version ({params.train.first_version}) versions, "
            "nothing is trained yet: backtest skipped"
        )
        write_skipped(params, reason)
        return reason
    table = training.checked_table(params, training.read_version(params, version), name)
    manifest = testset.load_manifest(params)
    if manifest is not None:  # as in training: no test week, nothing that reads one
        table, rows = testset.training_view(table, manifest, params)
    else:
        rows = table["timestamp"].notna()
    start, end = period(params, table)
    before = int((rows & (table["timestamp"] < start) & table[TARGET].notna()).sum())
    if params.backtest.start is None and before < forecasting.MIN_TRAINING_ROWS:
        reason = (
            f"{name}: {before} training rows before {start:%Y-%m-%d}, too few for a backtest "
            f"of the last {params.backtest.months} months: skipped"
        )
        write_skipped(params, reason)
        return reason
    with forecasting.compute_threads(params):
        result = walk_forward(table, rows, params, start, end)
    write(params, result)
    _log_run(params, result, version.version, by)
    return result


def write_skipped(params: Params, reason: str) -> None:
    """scores.json saying why there is no backtest (`dvc metrics` reads it either way)."""
    params.backtest_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"skipped": reason}, indent=2)
    atomic_write_text(params.backtest_dir / SCORES_FILE, text)


def summary(result: Backtest) -> str:
    """The backtest in a few lines: the period, the fits, each forecaster's overall scores."""
    lines = [
        f"walk-forward {result.start} .. {result.end}: {result.origins} origins, "
        f"{result.refits} fits (refit every {result.refit_every or 'never'}), {result.rows} rows"
    ]
    for name, scores in result.overall.items():
        ratio = scores["rmse"] / result.overall["seasonal_naive"]["rmse"]
        lines.append(
            f"  {name:16s} rmse {scores['rmse']:.4f}  mae {scores['mae']:.4f}  "
            f"wape {scores['wape']:.4f}  ({ratio:.3f} x seasonal naive rmse)"
        )
    return "\n".join(lines)


def write(params: Params, result: Backtest) -> Path:
    """scores.json, steps.csv and steps.png in `paths.backtest`, each written atomically."""
    folder = params.backtest_dir
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        key: getattr(result, key)
        for key in ("start", "end", "refit_every", "refits", "origins", "rows", "overall")
    }
    summary["ratio_to_seasonal_naive"] = result.ratios()
    atomic_write_text(folder / SCORES_FILE, json.dumps(summary, indent=2, sort_keys=True))
    atomic_write_text(folder / STEPS_FILE, result.steps.to_csv(index=False))
    with atomic_path(folder / PLOT_FILE) as tmp:
        _plot(result, params.gate.metric).savefig(tmp, format="png", dpi=100)
    return folder


def _plot(result: Backtest, metric: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    for name in result.overall:
        axes.plot(result.steps["step"], result.steps[f"{name}_{metric}"], label=name)
    axes.set_xlabel("horizon step (periods after the origin)")
    axes.set_ylabel(metric)
    axes.set_title(
        f"walk-forward {result.start} .. {result.end}: {result.origins} origins, "
        f"{result.refits} fits"
    )
    axes.legend()
    figure.tight_layout()
    return figure


def _log_run(params: Params, result: Backtest, data_version: int, by: str) -> None:
    import mlflow

    from powerops.model import registry
    from powerops.model.training import config_hash

    tags = {"kind": RUN_KIND, "data_version": str(data_version), "trained_by": by}
    tags["config_hash"] = config_hash(params)
    tags["attempt"] = f"{data_version}:{tags['config_hash']}:{result.start}..{result.end}"
    _end_orphan_runs(params, tags["attempt"])
    with (
        registry.asking(params, "record the backtest"),
        mlflow.start_run(
            experiment_id=registry.experiment_id(params),
            run_name=f"backtest {result.start[:10]}..{result.end[:10]}",
            tags=tags,
        ),
    ):
        mlflow.log_params(
            {
                "start": result.start,
                "end": result.end,
                "refit_every": result.refit_every,
                "estimator": params.train.estimator,
            }
        )
        crash_point("backtest.logging")
        for name, scores in result.overall.items():
            mlflow.log_metrics({f"{name}_{metric}": value for metric, value in scores.items()})
        for row in result.steps.to_dict("records"):
            values = {k: float(v) for k, v in row.items() if k not in ("step", "rows")}
            mlflow.log_metrics({f"step_{k}": v for k, v in values.items()}, step=int(row["step"]))
        mlflow.log_artifacts(str(params.backtest_dir), artifact_path="backtest")


def _end_orphan_runs(params: Params, attempt: str) -> None:
    """End as KILLED the runs of this same backtest that a killed attempt left RUNNING: a
    backtest holds the workspace lock, so none of them is alive."""
    from powerops.model import registry

    for run in registry.running_runs(params):
        tags = run.data.tags
        if tags.get("kind") == RUN_KIND and tags.get("attempt") == attempt:
            registry.end_run(params, run.info.run_id, "KILLED")
            log.warning(
                "backtest run %s was left RUNNING by a killed attempt: ended KILLED",
                run.info.run_id,
            )
