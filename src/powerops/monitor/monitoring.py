"""`powerops monitor --date D`: the service level indicators of the champion and of the data
flowing in, over the window of `monitor.window_days` days before D, against the reference the
champion was trained on. Run daily by the power_monitor DAG, and by `dvc repro`.

What one run does:

1. loads the champion from MLflow, with its reference profiles and outlier detector
   (`powerops.model.reference`, stored with the model version at training time);
2. reads the window's readings (plus the history the features need) from the current dataset
   version, builds the modelling table and the features with the champion's own transformers,
   and forecasts every day of the window day-ahead, exactly as it would have been served;
3. scores drift (features, target, prediction; by effect size, against the same season),
   the outlier rate, schema skew against the training signature, and feature skew and latency
   from the prediction log when there is one;
4. scores the forecasts of days the champion never trained on against their actuals (live
   error) and against the seasonal-naive baseline (the benefit, in kWh and money);
5. records each day's events, evaluates every SLO's error budget and multi-window burn rates,
   raises and resolves alerts (deduplicated) through `powerops.core.alerts`
   (`slo`, `events`, `alerting`);
6. writes the run's `MonitorReport` (`result`) as `reports/monitor/<D>/report.json`, with
   `report.html` and `figures.json` (the plots as SVG), and copies them to
   `reports/monitor/latest/`.

A day's events are recorded the first time a run sees the day with actuals, under the champion
of that run: the forecasts served that day were that champion's. A later rollback does not
rewrite history; it shows in the days that follow.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params, energy_text, kwh_per_value, periods_text
from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_write_text
from powerops.data.table import TARGET
from powerops.model import drift, registry
from powerops.model.reference import PREDICTION, Reference
from powerops.monitor import alerting, events
from powerops.monitor.result import (
    AlertChanges,
    BatchForecastScore,
    ChampionInfo,
    DataInfo,
    Distribution,
    Drift,
    DriftColumn,
    Live,
    LiveDay,
    LogDay,
    MonitorReport,
    Outliers,
    Schema,
    Window,
)
from powerops.monitor.slo import evaluate_slos, format_budget

if TYPE_CHECKING:
    import pandas as pd

HISTORY_FILE = "history.json"
LATEST = "latest"
FIGURES_FILE = "figures.json"  # the report's plots as SVG, for the Airflow view


class MonitorError(PowerOpsError):
    """Monitoring cannot run: no champion, or no data in the window."""


class NoChampionError(MonitorError):
    """No model holds the champion alias yet: there is nothing to monitor."""


@dataclass(frozen=True)
class Champion:
    version: str
    data_version: str
    test_wape: str
    pipeline: Any
    reference: Reference


def load_champion(params: Params) -> Champion:
    """The champion's pipeline and its stored reference, from MLflow."""
    from powerops.model.reference import MissingReferenceError, load_model_version

    version = registry.alias_version(params, registry.CHAMPION)
    if version is None:
        raise NoChampionError(
            f"{params.mlflow.model_name} has no champion yet: train and promote a model first"
        )
    try:
        pipeline, reference = load_model_version(params, version)
    except MissingReferenceError as exc:
        raise MonitorError(str(exc)) from None
    return Champion(
        version=str(version.version),
        data_version=version.tags.get("data_version", "?"),
        test_wape=version.tags.get("test_wape", "?"),
        pipeline=pipeline,
        reference=reference,
    )


@dataclass(frozen=True)
class Scored:
    """The window as the champion saw it: its table, features, forecasts and outlier flags."""

    start: datetime
    end: datetime
    table: pd.DataFrame
    in_window: pd.Series
    features: pd.DataFrame  # the window's rows only
    predictions: pd.Series
    outliers: pd.Series  # 1 outlier, 0 not, NaN where a feature is missing
    naive: pd.Series
    schema_issues: list[str]
    latest: pd.Timestamp  # the newest reading


def monitor(params: Params, today: date, by: str = "") -> MonitorReport:
    """Monitor the window before `today`; record its events; write and return the report.
    `by` says who asked (an Airflow run), for the report and the history."""
    started = time.perf_counter()
    champion = load_champion(params)
    scored = score_window(params, champion, *window(params, today))
    recorded = record_events(params, champion, scored, today)
    report = MonitorReport(
        date=today.isoformat(),
        window=Window(
            start=scored.start.isoformat(),
            end=scored.end.isoformat(),
            frequency=params.table.frequency,
        ),
        champion=_champion_info(champion, scored.end),
        data=_data_info(params, scored, today),
        drift=drift_section(params, champion.reference, scored),
        outliers=_outliers(champion.reference, scored.outliers),
        schema=Schema(issues=scored.schema_issues),
        log={
            day: LogDay.model_validate(v)
            for day, v in recorded["log_days"].items()
            if scored.start.date() <= date.fromisoformat(day) < scored.end.date()
        },
        live=live_section(params, recorded, scored.start, scored.end, champion.reference),
        batch_forecasts=score_batch_forecasts(params, scored.table, scored.start, scored.end),
        slos=evaluate_slos(params, recorded, scored.end.date(), today),
        alerts=AlertChanges(firing=[], raised=[], resolved=[]),
        by=by,
    )
    report.alerts = alerting.raise_and_resolve(params, report)
    report.seconds = round(time.perf_counter() - started, 2)
    _write(params, report, recorded)
    return report


def already_judged(params: Params, today: date) -> str | None:
    """Why a run for `today` would be old news: the history has a point for `today` that
    judged the current champion. None when there is something new to judge."""
    from powerops.model import registry

    point = events.load_json(params.monitor_reports_dir / HISTORY_FILE, {}).get(today.isoformat())
    champion = registry.alias_version(params, registry.CHAMPION)
    if point is None or champion is None or point["champion"] != str(champion.version):
        return None
    return (
        f"{today} is already judged for champion version {champion.version} and no data "
        "arrived since: nothing new to monitor"
    )


def window(params: Params, today: date) -> tuple[datetime, datetime]:
    """The `monitor.window_days` days before `today`, or before the end of the data if that
    is earlier (a replay of old months, or a feed that stopped)."""
    from powerops.data.datasets import day_after_latest

    run_day = datetime(today.year, today.month, today.day)
    end = min(run_day, datetime.combine(day_after_latest(params), datetime.min.time()))
    return end - timedelta(days=params.monitor.window_days), end


def score_window(params: Params, champion: Champion, start: datetime, end: datetime) -> Scored:
    """Forecast every day of the window day-ahead with the champion, as it would have been
    served, and flag its outliers."""
    import numpy as np
    import pandas as pd

    from powerops.data.datasets import read_window
    from powerops.data.table import table_for
    from powerops.model import forecasting, skew

    readings = read_window(params, start - forecasting.history_span(params), end)
    column = params.source.timestamp_column
    if readings.empty or readings[column].max() < start:
        raise MonitorError(f"no readings between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
    table = table_for(params, readings)
    in_window = table["timestamp"] >= start
    reference = champion.reference
    issues = skew.schema_issues(skew.frame_schema(table), reference.input_schema)
    with forecasting.compute_threads(params):
        current = forecasting.features_of(champion.pipeline).transform(table).loc[in_window]
        predicted = forecasting.predictor_of(champion.pipeline).predict(current)
        predictions = pd.Series(predicted, index=current.index)
        complete = current[reference.features].notna().all(axis=1)
        flags = pd.Series(np.nan, index=current.index)
        if complete.any():
            found = reference.detector.predict(current.loc[complete, reference.features].to_numpy())
            flags[complete] = (found < 0).astype(float)
    naive = forecasting.baselines(table, params)["seasonal_naive"].loc[in_window]
    return Scored(
        start,
        end,
        table,
        in_window,
        current,
        predictions,
        flags,
        naive,
        [str(issue) for issue in issues],
        readings[column].max(),
    )


def record_events(
    params: Params, champion: Champion, scored: Scored, today: date
) -> dict[str, Any]:
    """Add the window's days, the prediction log's days and this run to the event record."""
    recorded = events.load(params)
    days = events.day_events(
        scored.table,
        scored.in_window,
        scored.predictions,
        scored.naive,
        scored.outliers,
        bool(scored.schema_issues),
        champion.reference.training_end,
        champion.version,
        kwh_per_value(params.dataset.target_unit, params.table.frequency),
    )
    events.add_data_days(recorded, days)
    log_days = events.log_indicators(params, scored.start, scored.end, champion.pipeline)
    recorded["log_days"].update({day: v.model_dump() for day, v in log_days.items()})
    recorded["runs"][today.isoformat()] = {
        "age_days": _age_days(today, scored.latest),
        "champion": champion.version,
    }
    events.save(params, recorded)
    return recorded


def _age_days(today: date, latest: pd.Timestamp) -> float:
    run_day = datetime(today.year, today.month, today.day)
    return (run_day - latest.to_pydatetime()).total_seconds() / 86400


def _champion_info(champion: Champion, end: datetime) -> ChampionInfo:
    training_end = champion.reference.training_end
    return ChampionInfo(
        version=champion.version,
        data_version=champion.data_version,
        test_wape=champion.test_wape,
        training_end=training_end.isoformat(),
        age_days=round((end - training_end.to_pydatetime()).days, 1),
    )


def _data_info(params: Params, scored: Scored, today: date) -> DataInfo:
    import pandas as pd

    from powerops.data.quarantine import Quarantine

    months = {
        f"{m.year}-{m.month:02d}" for m in pd.period_range(scored.start, scored.end, freq="M")
    }
    held = Quarantine(params.quarantine_dir).months()
    return DataInfo(
        hours=int(scored.in_window.sum()),
        latest_reading=scored.latest.isoformat(),
        age_days=round(_age_days(today, scored.latest), 2),
        quarantined=sorted(m for m in held if m in months),
    )


def _outliers(reference: Reference, flags: pd.Series) -> Outliers:
    hours = int(flags.notna().sum())
    found = int((flags == 1).sum())
    return Outliers(
        hours=hours,
        outliers=found,
        rate=float(found / max(hours, 1)),
        training_rate=reference.document["outlier_rate_training"],
    )


def drift_section(params: Params, reference: Reference, scored: Scored) -> Drift:
    """Drift of the features, the target and the forecasts against the same season of the
    champion's training data, judged by effect size."""
    config = params.monitor.drift
    months = sorted(set(scored.table.loc[scored.in_window, "timestamp"].dt.month))
    seasons = drift.season_window(months, config.season_spread)
    available = set(next(iter(reference.profile.columns.values())).counts)
    chosen: list[int] | None = seasons if available & set(seasons) else None
    columns = {c: scored.features[c].to_numpy() for c in reference.features}
    columns[TARGET] = scored.table.loc[scored.in_window, TARGET].to_numpy()
    columns[PREDICTION] = scored.predictions.to_numpy()
    # History features are made of the load: their distances are measured in the load's
    # spread, so a smoothed feature (a weekly mean) is not judged on its own narrow range.
    scale = {c: TARGET for c in reference.features}
    scores = drift.compare(
        reference.profile, columns, chosen, config.psi, config.wasserstein, scale
    )
    groups = {TARGET: "target", PREDICTION: "prediction"}
    judged = len(columns[TARGET]) >= config.min_rows
    rows = [
        DriftColumn.model_validate(
            s.to_dict()
            | {"group": groups.get(s.column, "features"), "drifted": s.drifted and judged}
        )
        for s in scores
    ]
    drifted = [r.column for r in rows if r.drifted]
    notes = (
        []
        if chosen
        else [f"the champion's training data has no months {seasons}: compared with all of it"]
    )
    if not judged:
        notes.append(
            f"{periods_text(len(columns[TARGET]), params.table.frequency)} in the window, fewer "
            f"than monitor.drift.min_rows ({config.min_rows}): drift not judged (widen "
            "monitor.window_days)"
        )
    return Drift(
        seasons=chosen or sorted(available),
        note="; ".join(notes) or None,
        columns=rows,
        drifted=drifted,
        feature_share=config.feature_share,
        distributions={
            s.column: _distribution(reference.profile.columns[s.column], chosen, columns[s.column])
            for s in scores
            if s.column in drifted or s.column in (TARGET, PREDICTION)
        },
    )


def live_section(
    params: Params, recorded: dict[str, Any], start: datetime, end: datetime, reference: Reference
) -> Live:
    """Live error and benefit over the window's days the champion never trained on."""
    days = [
        LiveDay.model_validate(
            {"day": day, **record["live"], "model_version": record["model_version"]}
        )
        for day, record in sorted(recorded["data_days"].items())
        if start.date() <= date.fromisoformat(day) < end.date() and "live" in record
    ]
    actual = sum(d.actual_kwh for d in days)
    benefit = sum(d.benefit_kwh for d in days)
    return Live(
        days=days,
        out_of_sample_after=reference.training_end.isoformat(),
        wape=sum(d.abs_error_kwh for d in days) / actual if actual else None,
        naive_wape=sum(d.naive_abs_error_kwh for d in days) / actual if actual else None,
        benefit_kwh=benefit,
        benefit_money=benefit * params.monitor.cost_per_kwh,
        currency=params.monitor.currency,
        energy_unit=params.monitor.energy_unit,
    )


def score_batch_forecasts(
    params: Params, table: pd.DataFrame, start: datetime, end: datetime
) -> list[BatchForecastScore]:
    """power_score's forecasts of the window's days (data/forecasts/), scored against the
    actuals: what was really delivered, beside the champion's forward backtest."""
    import pandas as pd

    actual = table.set_index("timestamp")[TARGET]
    scored = []
    for path in sorted(params.forecasts_dir.glob("*/*.parquet")):
        day = date.fromisoformat(path.parent.name)
        if not start.date() <= day < end.date():
            continue
        forecast = pd.read_parquet(path)
        truth = actual.reindex(forecast["timestamp"]).to_numpy()
        known = ~pd.isna(truth)
        if not known.any():
            continue
        error = abs(forecast[TARGET].to_numpy()[known] - truth[known]).sum()
        total = abs(truth[known]).sum()
        scored.append(
            BatchForecastScore(
                day=day.isoformat(),
                model_version=str(forecast["model_version"].iloc[0]),
                hours=int(known.sum()),
                wape=float(error / total) if total else None,
            )
        )
    return scored


def _distribution(
    profile: drift.ColumnProfile, seasons: list[int] | None, values: Any
) -> Distribution:
    """Reference and current shares on 40 even bins over the reference's range, to plot."""
    import numpy as np

    counts, _, _, _ = profile.pooled(seasons)
    edges = np.asarray(profile.edges)
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    low = min(edges[0], finite.min()) if len(finite) else edges[0]
    high = max(edges[-1], finite.max()) if len(finite) else edges[-1]
    grid = np.linspace(low, high, 41)
    centres = (edges[:-1] + edges[1:]) / 2
    reference, _ = np.histogram(centres, bins=grid, weights=counts)
    current, _ = np.histogram(finite, bins=grid)
    return Distribution(
        edges=[round(float(e), 5) for e in grid],
        reference=[round(float(v), 6) for v in reference / max(reference.sum(), 1)],
        current=[round(float(v), 6) for v in current / max(current.sum(), 1)],
    )


def _write(params: Params, report: MonitorReport, recorded: dict[str, Any]) -> None:
    """The run's JSON and HTML, the history the plots read, and the `latest` copies."""
    from powerops.monitor import report as monitor_report

    root = params.monitor_reports_dir
    history_path = root / HISTORY_FILE
    history = events.load_json(history_path, {})
    history[report.date] = {
        "champion": report.champion.version,
        "model_age_days": report.champion.age_days,
        "drift": {c.column: c.wasserstein for c in report.drift.columns},
        "drifted": report.drift.drifted,
        "live_wape": report.live.wape,
        "benefit_kwh": report.live.benefit_kwh,
        "budget": {s.name: s.budget_remaining for s in report.slos},
        "alerts": report.alerts.firing,
        "by": report.by,
    }
    atomic_write_text(history_path, json.dumps(history, indent=1, sort_keys=True))
    folder = root / report.date
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.json", report.to_json())
    plots = monitor_report.figures(report, history, recorded, params)
    atomic_write_text(folder / FIGURES_FILE, json.dumps(plots))
    atomic_write_text(folder / "report.html", monitor_report.render(report, plots, params))
    latest = root / LATEST
    latest.mkdir(exist_ok=True)
    for name in ("report.json", "report.html", FIGURES_FILE):
        shutil.copyfile(folder / name, latest / name)


def summary_lines(report: MonitorReport) -> list[str]:
    """A few lines for the CLI and the task log."""
    champion, data, live = report.champion, report.data, report.live
    lines = [
        f"monitor {report.date}: champion v{champion.version} ({champion.age_days:.0f} days "
        f"past its training data), window {report.window.start[:10]}..{report.window.end[:10]}, "
        f"{periods_text(data.hours, report.window.frequency)}, data age {data.age_days:.1f} d",
        "drifted: "
        + (", ".join(report.drift.drifted) or "none")
        + (f" ({report.drift.note})" if report.drift.note else ""),
        f"outliers: {report.outliers.rate:.1%} of "
        f"{periods_text(report.outliers.hours, report.window.frequency)} (training "
        f"{report.outliers.training_rate:.1%}); schema issues: "
        + ("; ".join(report.schema_.issues) or "none"),
    ]
    if live.wape is not None and live.naive_wape is not None:
        lines.append(
            f"live WAPE {live.wape:.3f} vs seasonal naive {live.naive_wape:.3f} on "
            f"{len(live.days)} days; benefit {energy_text(live.benefit_kwh, live.energy_unit)} = "
            f"{live.benefit_money:,.2f} {live.currency}"
        )
    else:
        lines.append("live error: no day after the champion's training data yet")
    lines += [_slo_line(slo) for slo in report.slos]
    changes = report.alerts
    lines.append(
        f"alerts: firing {changes.firing or 'none'}; raised {changes.raised or 'none'}; "
        f"resolved {changes.resolved or 'none'}"
    )
    return lines


def _slo_line(slo: Any) -> str:
    if slo.sli is None or slo.budget_remaining is None:
        return f"SLO {slo.name}: no events yet"
    firing = [r.rule for r in slo.burn if r.firing]
    return (
        f"SLO {slo.name}: {slo.sli:.1%} good of {slo.events} (objective {slo.objective:.0%}), "
        f"budget left {format_budget(slo.budget_remaining)}"
        + (f", FIRING {', '.join(firing)}" if firing else "")
    )
