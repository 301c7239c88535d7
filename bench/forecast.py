"""Benchmark: how well the configured forecaster does, walked forward over a year it never saw.

On the real UCI readings (the whole series), two tasks, each scored against the baselines in
the same run (the ratios are the figures; RMSE):

- hourly day-ahead: model selection (`train.candidates`, cross-validated by RMSE, the
  targets' metric, on data before 2010 only), then a walk-forward over 2010 with weekly
  refits;
- daily 7-day-ahead with Sunday-anchored weeks (`forecast.week_start: sunday`), daily totals:
  model selection on data before 2009, then every week of 2009 walked forward with weekly
  refits.

Targets (issue 19): hourly RMSE <= 0.70 x seasonal naive; daily RMSE <= 0.75 x seasonal naive
(last week). Timings are printed, never judged; the exit code is 0 unless a run fails.

Each task also prints a reference point that is no forecast, because it reads the future: an
oracle that knows the true mean level around each row (the row's own day for hourly rows, the
29 days centred on it for daily rows) and multiplies it by the row's usual share of that level
(its hour of the day, or day of the week, averaged over the training years). How close a
target sits to it says how much of the remaining error is the level nobody knows at the origin.

    make bench-forecast      # or: .venv/bin/python bench/forecast.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from powerops.core.config import CandidateConfig, Params, load_params
from powerops.data.source import read_source
from powerops.data.table import TARGET, table_for
from powerops.model import forecasting, selection
from powerops.model.walkforward import walk_forward

ROOT = Path(__file__).resolve().parents[1]
HGB = "sklearn.ensemble.HistGradientBoostingRegressor"

# What selection chooses from, fixed before looking at any evaluation period.
HOURLY_CANDIDATES = (
    CandidateConfig(
        estimator=HGB,
        estimator_params={"loss": "squared_error"},
        grid={"max_iter": [200, 400], "learning_rate": [0.05, 0.1]},
    ),
    CandidateConfig(
        estimator=HGB, estimator_params={"loss": "absolute_error"}, grid={"max_iter": [200]}
    ),
    # A log link: the load's daily and weekly effects are multiplicative.
    CandidateConfig(
        estimator=HGB,
        estimator_params={"loss": "poisson", "min_samples_leaf": 100},
        grid={"max_iter": [400], "learning_rate": [0.03, 0.1]},
    ),
)
DAILY_CANDIDATES = (
    CandidateConfig(
        estimator=HGB,
        estimator_params={"loss": "squared_error", "min_samples_leaf": 10},
        grid={"max_iter": [50, 150], "learning_rate": [0.05, 0.1]},
    ),
    CandidateConfig(
        estimator=HGB,
        estimator_params={"loss": "poisson", "min_samples_leaf": 10},
        grid={"max_iter": [50, 150], "learning_rate": [0.05]},
    ),
)


def task(
    base: Params,
    frequency: str,
    forecast: dict[str, Any],
    candidates: tuple[CandidateConfig, ...],
    period: tuple[str, str],
    quick: bool,
) -> Params:
    """`base` configured for one task: the table's frequency, the forecast, the candidates,
    the backtest period with weekly refits."""
    table = base.table.model_copy(update={"frequency": frequency})
    horizon = forecast["horizon"]
    refit = max(1, (7 * 24 if frequency == "1h" else 7) // horizon)
    chosen = candidates[:1] if quick else candidates
    train = base.train.model_copy(update={"candidates": chosen, "cv_folds": 3})
    gate = base.gate.model_copy(update={"metric": "rmse"})  # the targets' metric selects
    first, last = (pd.Timestamp(day).date() for day in period)
    walk = base.backtest.model_copy(update={"start": first, "end": last, "refit_every": refit})
    return base.model_copy(
        update={
            "table": table,
            "forecast": base.forecast.model_copy(update=forecast),
            "train": train,
            "gate": gate,
            "backtest": walk,
        }
    )


def oracle_ratio(table: pd.DataFrame, scored: pd.DataFrame, start: pd.Timestamp) -> float:
    """The RMSE of the level oracle (see the module's docstring) on the walk-forward's scored
    rows, over seasonal naive's on the same rows."""
    series = table.set_index("timestamp")[TARGET]
    stamps = series.index
    if stamps.hour.nunique() > 1:  # hourly: the day's own mean, each hour's share
        level = series.groupby(stamps.floor("D")).transform("mean")
        phase = pd.Series(stamps.hour, index=stamps)
    else:  # daily: the 29 days centred on the row, each weekday's share
        level = series.rolling(29, center=True, min_periods=15).mean()
        phase = pd.Series(stamps.day_of_week, index=stamps)
    before = stamps < start
    share = (series / level)[before].groupby(phase[before]).mean()
    oracle = level * share.reindex(phase).to_numpy()
    when = pd.DatetimeIndex(scored["timestamp"])
    actual = scored["actual"].to_numpy()
    error = oracle.reindex(when).to_numpy() - actual
    naive = scored["seasonal_naive"].to_numpy() - actual
    return float(np.sqrt(np.nanmean(error**2)) / np.sqrt(np.mean(naive**2)))


def evaluate(name: str, params: Params, readings: pd.DataFrame, target: float) -> bool:
    started = time.perf_counter()
    table = table_for(params, readings)  # every period; a gap in the readings is a null load
    rows = table["load_kw"].notna()
    chosen, trials = selection.select(params, table, rows)
    best = next(t for t in trials if t["chosen"]) if trials else {}
    start, end = pd.Timestamp(params.backtest.start), pd.Timestamp(params.backtest.end)
    with forecasting.compute_threads(params):
        result = walk_forward(table, rows, chosen, start, end)
    seconds = time.perf_counter() - started
    naive = result.overall["seasonal_naive"]["rmse"]
    print(
        f"\n{name}: {result.origins} origins {result.start} .. {result.end}, {result.refits} fits"
    )
    print(f"  chosen by cross-validation before {start:%Y-%m-%d}: {best.get('estimator_params')}")
    for forecaster, scores in result.overall.items():
        print(
            f"  {forecaster:16s} rmse {scores['rmse']:.4f}   {scores['rmse'] / naive:.3f} x "
            f"seasonal naive   mae {scores['mae']:.4f}   wape {scores['wape']:.4f}"
        )
    oracle = oracle_ratio(table, result.forecasts, start)
    print(
        f"  {'level oracle':16s} rmse {oracle * naive:.4f}   {oracle:.3f} x seasonal naive"
        "   (reads the future: a reference point, not a forecast)"
    )
    ratio = result.overall["model"]["rmse"] / naive
    verdict = "met" if ratio <= target else "NOT met"
    print(
        f"  target rmse <= {target:.2f} x seasonal naive: {ratio:.3f}, {verdict} ({seconds:.0f} s)"
    )
    return ratio <= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one candidate per task")
    args = parser.parse_args()
    base = load_params(ROOT / "params.yaml")
    print("reading the UCI readings ...", flush=True)
    readings = read_source(base.source_path(), base.source, progress=False)
    hourly = task(
        base,
        "1h",
        {"horizon": 24, "lags": (24, 48, 168), "windows": (24, 168)},
        HOURLY_CANDIDATES,
        ("2010-01-01", "2010-12-31"),
        args.quick,
    )
    daily = task(
        base,
        "1D",
        {"horizon": 7, "lags": (7, 14, 28, 364), "windows": (7, 28), "week_start": "sunday"},
        DAILY_CANDIDATES,
        ("2009-01-04", "2009-12-27"),
        args.quick,
    )
    met = [
        evaluate("hourly day-ahead", hourly, readings, 0.70),
        evaluate("daily 7-day-ahead, Sunday weeks", daily, readings, 0.75),
    ]
    print(f"\ntargets met: {sum(met)} of {len(met)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
